"""Closed-form validation of the core solver: error AND observed order under refinement.

Each study refines h and dt together (N, Nt doubled) and asserts (a) the error at every level is
small and (b) the observed order log2(e_coarse/e_fine) is that of the first-order scheme.
The fast default runs two levels; the ``slow`` variants run three on finer grids.
"""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.oracles import analytic
from mfg_pde.cases import get


def _study(case, levels, overrides=None):
    errs = []
    for N, Nt in levels:
        run = case.run({**(overrides or {}), "N": N, "Nt": Nt})
        assert run.result.converged, run.result.status
        assert run.result.mass_error() < 1e-12
        errs.append(case.errors(run.result, run.params))
    keys = list(errs[0])
    E = np.array([[e[k] for k in keys] for e in errs])
    orders = np.log2(E[:-1] / E[1:])
    return keys, E, orders


LQ_VARIANTS = [
    {},                                   # quadratic interaction, beta = 2
    {"kappa": 0.7},                       # with OU base drift (Riccati ODE oracle)
    {"beta": 0.0, "sigma": 0.5, "T": 1.5},  # no interaction, sigma != 1, T != 1
]


@pytest.mark.parametrize("over", LQ_VARIANTS)
def test_lq_terminal_cost_mean_variance_curvature(over):
    keys, E, orders = _study(get("lqg"), [(100, 100), (200, 200)], over)
    assert E[-1].max() < 0.03, dict(zip(keys, E[-1]))
    assert np.all((orders > 0.85) & (orders < 1.2)), dict(zip(keys, orders[-1]))


@pytest.mark.slow
@pytest.mark.parametrize("over", LQ_VARIANTS)
def test_lq_terminal_cost_three_levels(over):
    keys, E, orders = _study(get("lqg"), [(200, 200), (400, 400), (800, 800)], over)
    assert E[-1].max() < 0.008
    assert np.all((orders > 0.9) & (orders < 1.1)), orders


@pytest.mark.parametrize("schedule", ["pwc", "smooth"])
def test_mean_interpolant_bimodal_time_varying_beta(schedule):
    case = get("mean-interpolant-soft")
    keys, E, orders = _study(case, [(120, 100), (240, 200)], {"schedule": schedule})
    assert E[-1, 0] < 0.02
    assert 0.85 < orders[0, 0] < 1.2
    # the initial density really is far from Gaussian (bimodal, skewed)
    grid = mp.Grid([(-6, 6)], 240)
    m0 = case.m0(grid)
    x = grid.axes[0]
    mu = grid.mean(m0)[0]
    sd = np.sqrt(grid.covariance(m0)[0, 0])
    skew = grid.integrate(m0 * ((x - mu) / sd) ** 3)
    assert abs(skew) > 0.3


def test_mean_interpolant_not_linear_with_fixed_guidance():
    """Counter-check: with a FIXED centre nu = 2 (independent agents) the mean is not linear; it
    follows the IA mean ODE (shape-independent, so the Gaussian oracle applies to the bimodal m0)."""
    from mfg_pde.cases.mean_interpolant import beta_schedule

    case = get("mean-interpolant-soft")
    p = case.resolve({"N": 240, "Nt": 200})
    pb, _ = case.build(p)
    sched = beta_schedule(p)
    pb.coupling = mp.FixedGuidance(sched, 2.0)  # centre far from the path
    r = mp.solve(pb)
    mean = r.mean()[:, 0]
    ref = analytic.lq_terminal(pb.t, T=p["T"], sigma=p["sigma"], q=p["q"], x_target=p["x_target"],
                               mean0=mean[0], var0=1.0, beta=sched, guidance=2.0, method="ode")["mean"]
    err = np.max(np.abs(mean - ref))
    mf_line = mean[0] + analytic.mean_terminal_velocity(p["q"], p["x_target"], mean[0], p["T"]) * pb.t
    assert err < 0.02
    assert np.max(np.abs(mean - mf_line)) > 5 * err


def test_2d_product_gaussian_per_axis_closed_forms():
    keys, E, orders = _study(get("lqg-2d"), [(30, 30), (60, 60)])
    assert E[-1].max() < 0.06
    assert np.all((orders > 0.85) & (orders < 1.2)), dict(zip(keys, orders[0]))


@pytest.mark.slow
def test_2d_product_gaussian_three_levels():
    keys, E, orders = _study(get("lqg-2d"), [(40, 40), (80, 80), (160, 160)])
    assert np.all((orders > 0.9) & (orders < 1.1)), orders


def test_3d_smoke_product_gaussian():
    """3-D: converges, conserves mass, stays symmetric, and the per-axis means track the closed form."""
    grid = mp.Grid([(-4, 4)] * 3, 24)
    target = (1.0, -0.5, 0.0)
    pb = mp.MFGProblem(grid, 1.0, 24, 0.8, mp.gaussian(grid, (-0.5, 0.3, 0.0), (0.6, 0.6, 0.6)),
                       coupling=mp.QuadraticInteraction(2.0), terminal_cost=mp.QuadraticTerminalCost(1.0, target))
    r = mp.solve(pb)
    assert r.converged and r.mass_error() < 1e-12 and r.m.min() >= 0
    mean = r.mean()
    for k, (m0k, tk) in enumerate(zip((-0.5, 0.3, 0.0), target)):
        ref = analytic.lq_terminal(pb.t, T=1.0, sigma=0.8, q=1.0, x_target=tk, mean0=m0k, var0=0.36, beta=2.0)
        assert np.max(np.abs(mean[:, k] - ref["mean"])) < 0.15
    # the z-axis problem is symmetric about 0: its mean stays at 0 to round-off
    assert np.max(np.abs(mean[:, 2])) < 1e-10
    assert r.alpha.shape == (25, 24, 24, 24, 3)


def test_validate_reports_orders_for_lqg():
    run = get("lqg").validate()
    order_rows = [c for c in run.checks if "order" in c.quantity]
    assert len(order_rows) == 3 and all(c.passed for c in run.checks)
