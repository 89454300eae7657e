"""Planning problem (m(0) = m0, m(T) = m1): closed forms with error AND observed order, the
mean-interpolant theorem, IA counter-checks, consistency with the core equations, bad input."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.oracles import analytic
from mfg_pde.cases import get
from mfg_pde.cases.planning import bimodal_ends, curved_guess
from mfg_pde.model.grid import prolong
from mfg_pde.model.problem import Drift
from mfg_pde.planning.sinkhorn import PlanningError
from mfg_pde.diagnostics.unsplit_residuals import pde_residuals


def orders(E):
    E = np.asarray(E, dtype=float)
    return np.log2(E[:-1] / E[1:])


def case_study(name, levels, over=None, **solver):
    case = get(name)
    errs = []
    for N in levels:
        run = case.run({**(over or {}), "N": N, "Nt": N}, **solver)
        r = run.result
        assert r.converged, r.status
        assert r.planning.terminal_mismatch < 1e-10
        assert r.mass_error() < 1e-12
        errs.append(case.errors(r, run.params))
    keys = list(errs[0])
    return keys, np.array([[e[k] for k in keys] for e in errs])


#: (observed-order window, largest mean error, variance error at N = 200) of each time scheme
BRIDGE_EXPECT = {"auto": ((1.8, 2.3), 5e-4, 3e-3), "euler": ((0.85, 1.3), 0.005, 0.02)}


@pytest.mark.parametrize("scheme", ["auto", "euler"])
@pytest.mark.parametrize("over", [{"beta": 0.0}, {"beta": 2.0}, {"beta": 6.0, "sigma": 1.3, "T": 0.7}])
def test_gaussian_bridge_mean_variance_energy(over, scheme):
    """The default (Crank-Nicolson substeps, Strang-split potential) is second order in h = dt; the
    implicit-Euler sweeps first order."""
    keys, E = case_study("lqg-bridge", [100, 200], over, time_scheme=scheme)
    (lo, hi), mean_tol, var_tol = BRIDGE_EXPECT[scheme]
    i_mean = keys.index("mean")
    if over["beta"] == 0.0:
        # no interaction, no drift: the discrete bridge keeps the mean exactly linear (symmetric
        # diffusion), so its error is round-off and has no order; the other quantities do
        assert E[:, i_mean].max() < 1e-10
        E = np.delete(E, i_mean, axis=1)
        keys = [k for k in keys if k != "mean"]
    else:
        assert E[-1][i_mean] < mean_tol
    assert E[-1][keys.index("variance")] < var_tol
    o = orders(E)[0]
    assert np.all((o > lo) & (o < hi)), dict(zip(keys, o))


@pytest.mark.parametrize("schedule", ["pwc", "smooth"])
def test_mean_interpolant_theorem_from_curved_guess(schedule):
    case = get("mean-interpolant")
    p = case.resolve({"N": 150, "Nt": 150, "schedule": schedule})
    pb, opts = case.build(p)
    guess_mean = pb.grid.mean(opts["m_init"])[:, 0]
    line = case.oracle_mean(p, pb.t)
    assert np.max(np.abs(guess_mean - line)) > 1.0  # the start is deliberately far from the line
    keys, E = case_study("mean-interpolant", [150, 300], {"schedule": schedule})
    assert E[-1, 0] < 0.003
    assert 1.8 < orders(E)[0, 0] < 2.3


def test_ia_mean_and_energy_identity_non_gaussian_ends():
    keys, E = case_study("ia-vs-mf", [150, 300])
    o = orders(E)[0]
    assert E[-1][keys.index("IA mean path")] < 0.003
    assert E[-1][keys.index("energy gap E_IA - E_MF")] < 0.012
    assert np.all((o > 1.8) & (o < 2.3)), dict(zip(keys, o))


def test_energy_gap_is_positive_and_mf_minimises():
    run = get("ia-vs-mf").run({"N": 150, "Nt": 150, "nu": 1.5})
    assert run.result.case_report.mf_converged
    assert run.result.planning.energy_E > run.result.case_report.mf_energy_E


def test_base_drift_gives_sinh_mean_not_linear():
    errs, bends = [], []
    for N in (150, 300):
        grid = mp.Grid([(-6, 6)], N)
        m0, m1 = bimodal_ends(grid)
        kappa = 1.5
        pb = mp.PlanningProblem(grid, 1.0, N, 1.0, m0, m1, coupling=mp.QuadraticInteraction(3.0),
                                drift=mp.LinearDrift(kappa))
        r = mp.solve_planning(pb)
        assert r.converged
        mu0, mu1 = grid.mean(m0)[0], grid.mean(m1)[0]
        ref, _ = analytic.mf_mean_path(pb.t, T=1.0, mean0=mu0, mean1=mu1, kappa=kappa)
        mean = r.mean()[:, 0]
        errs.append(np.max(np.abs(mean - ref)))
        bends.append(np.max(np.abs(mean - (mu0 + (mu1 - mu0) * pb.t))))
    assert errs[-1] < 0.03 and 0.85 < orders(errs)[0] < 1.3
    assert bends[-1] > 5 * errs[-1]  # clearly sinh-shaped, not the straight line


def _two_d_ends(grid):
    """Non-separable bimodal densities (components off the axes' product structure)."""
    m0 = mp.gaussian_mixture(grid, [0.6, 0.4], [(-1.5, -1.0), (0.5, 1.0)], [(0.55, 0.45), (0.45, 0.55)])
    m1 = mp.gaussian_mixture(grid, [0.3, 0.7], [(1.5, -0.5), (0.5, 1.5)], [(0.45, 0.45), (0.55, 0.45)])
    return m0, m1


def test_2d_mean_theorem_per_axis_non_separable():
    errs = []
    for N in (32, 64):
        grid = mp.Grid([(-4, 4)] * 2, N)
        m0, m1 = _two_d_ends(grid)
        cov0 = grid.covariance(m0)
        assert abs(cov0[0, 1]) > 0.1  # correlated: not a product density
        pb = mp.PlanningProblem(grid, 1.0, N, 1.0, m0, m1, coupling=mp.QuadraticInteraction(
            mp.PiecewiseConstant.uniform(1.0, 8.0 * 0.65 ** np.arange(8))))
        r = mp.solve_planning(pb)
        assert r.converged and r.planning.terminal_mismatch < 1e-10
        mu0, mu1 = grid.mean(m0), grid.mean(m1)
        line = mu0[None] + (mu1 - mu0)[None] * (pb.t / pb.T)[:, None]
        errs.append(np.max(np.abs(r.mean() - line), axis=0))
    errs = np.array(errs)
    assert errs[-1].max() < 0.004
    assert np.all((orders(errs) > 1.8) & (orders(errs) < 2.3)), orders(errs)


def test_3d_smoke():
    grid = mp.Grid([(-3, 3)] * 3, 16)
    pb = mp.PlanningProblem(grid, 1.0, 16, 1.0, mp.gaussian(grid, (-0.5, 0.0, 0.3), 0.7),
                            mp.gaussian(grid, (0.5, 0.2, -0.3), 0.6), coupling=mp.QuadraticInteraction(2.0))
    r = mp.solve_planning(pb)
    assert r.converged and r.planning.terminal_mismatch < 1e-10 and r.mass_error() < 1e-12
    assert r.alpha.shape == (17, 16, 16, 16, 3)


def test_consistency_with_core_finite_difference_equations():
    """The planning result satisfies the core (unsplit) HJB and FP equations to O(h + dt)."""
    res = []
    for N in (100, 200, 400):
        grid = mp.Grid([(-5, 5)], N)
        pb = mp.PlanningProblem(grid, 1.5, N, 0.7, mp.gaussian(grid, -1.0, 0.5), mp.gaussian(grid, 1.5, 0.4),
                                coupling=mp.QuadraticInteraction(2.0))
        r = mp.solve_planning(pb)
        d = pde_residuals(pb, r.u, r.m)
        res.append([d["hjb"], d["fp"]])
    o = orders(res)
    assert np.all((o > 0.85) & (o < 1.3)), o
    # and the same functions accept a core solution to round-off (1-D: no splitting)
    run = get("lqg").run({"N": 100, "Nt": 100})
    pb, _ = get("lqg").build(run.params)
    d = pde_residuals(pb, run.result.u, run.result.m)
    assert d["hjb_max"] < 1e-8 and d["fp_max"] < 1e-10


def test_uncoupled_planning_is_one_outer_iteration():
    grid = mp.Grid([(-5, 5)], 100)
    pb = mp.PlanningProblem(grid, 1.0, 100, 1.0, mp.gaussian(grid, -1, 0.5), mp.gaussian(grid, 1, 0.5))
    r = mp.solve_planning(pb)
    assert r.converged and r.iterations == 1


@pytest.mark.parametrize("m1,match", [
    (lambda g: -mp.gaussian(g, 1.0, 0.5), "negative"),
    (lambda g: 3 * mp.gaussian(g, 1.0, 0.5), "integrates to 3"),
    (lambda g: mp.normalise(g, np.exp(-0.5 * ((g.axes[0] - 1.0) / 0.05) ** 2)), "too narrow"),
    (lambda g: mp.normalise(g, np.exp(-0.5 * ((g.axes[0] - 4.9) / 0.3) ** 2)), "edge of the box"),
])
def test_bad_end_densities_fail_before_iterating(m1, match):
    g = mp.Grid([(-5, 5)], 100)
    with pytest.raises(ValueError, match=match):
        mp.PlanningProblem(g, 1.0, 50, 1.0, mp.gaussian(g, -1.0, 0.5), m1(g))


def test_sinkhorn_cap_gives_clear_status():
    grid = mp.Grid([(-5, 5)], 100)
    pb = mp.PlanningProblem(grid, 1.0, 100, 0.3, mp.gaussian(grid, -1, 0.5), mp.gaussian(grid, 1, 0.5))
    r = mp.solve_planning(pb, max_sinkhorn=2)
    assert not r.converged and r.status.startswith("sinkhorn max iterations: mismatch")


def test_planning_needs_noise():
    grid = mp.Grid([(-5, 5)], 100)
    pb = mp.PlanningProblem(grid, 1.0, 100, 0.0, mp.gaussian(grid, -1, 0.5), mp.gaussian(grid, 1, 0.5))
    with pytest.raises(PlanningError, match="sigma > 0"):
        mp.solve_planning(pb)


def test_planning_result_round_trips_hdf5(tmp_path):
    run = get("lqg-bridge").run({"N": 80, "Nt": 80})
    path = tmp_path / "bridge.h5"
    run.result.save(path)
    back = mp.load(path)
    np.testing.assert_array_equal(back.m, run.result.m)
    np.testing.assert_array_equal(back.u, run.result.u)
    assert back.planning == run.result.planning
    assert back.history["terminal_mismatch"][-1] < 1e-10
    assert back.case == "lqg-bridge"


def test_curved_guess_keeps_mass():
    grid = mp.Grid([(-6, 6)], 200)
    m0, m1 = bimodal_ends(grid)
    t = np.linspace(0, 1, 11)
    g = curved_guess(grid, m0, m1, t, 1.0)
    np.testing.assert_allclose(grid.integrate(g), 1.0, atol=1e-12)


def test_theorem_holds_for_an_even_pairwise_kernel():
    """Any even pairwise interaction W(x - y) cancels in d^2 mean/dt^2: an attractive Gaussian kernel
    (not mean-only: the outer loop iterates on the whole density) keeps the mean linear."""
    errs = []
    for N in (120, 240):
        grid = mp.Grid([(-6, 6)], N)
        m0, m1 = bimodal_ends(grid)
        W = lambda d: -3.0 * np.exp(-d ** 2 / 2.0)  # noqa: E731  (attractive, even)
        pb = mp.PlanningProblem(grid, 1.0, N, 1.0, m0, m1, coupling=mp.KernelInteraction(W))
        r = mp.solve_planning(pb, tol=1e-9)
        assert r.converged and r.iterations > 2
        mu0, mu1 = grid.mean(m0)[0], grid.mean(m1)[0]
        errs.append(np.max(np.abs(r.mean()[:, 0] - (mu0 + (mu1 - mu0) * pb.t))))
    assert errs[-1] < 1e-4 and 1.8 < orders(errs)[0] < 2.3


def test_ia_with_callable_centre():
    grid = mp.Grid([(-6, 6)], 150)
    m0, m1 = bimodal_ends(grid)
    a = mp.solve_planning(mp.PlanningProblem(grid, 1.0, 150, 1.0, m0, m1, coupling=mp.FixedGuidance(4.0, 0.5)))
    b = mp.solve_planning(mp.PlanningProblem(grid, 1.0, 150, 1.0, m0, m1,
                                             coupling=mp.FixedGuidance(4.0, lambda t: 0.5 + 0 * t)))
    np.testing.assert_allclose(a.m, b.m, atol=1e-12)


# ------------------------------------------------------------------ second-order (Strang) sweeps

@pytest.mark.parametrize("over", [{"beta": 2.0}, {"beta": 6.0, "sigma": 1.3, "T": 0.7}])
def test_strang_bridge_closed_form_second_order(over):
    """time_scheme='strang': mean, variance and energy of the LQG bridge at O(h^2 + dt^2), with Nt = N / 5."""
    case = get("lqg-bridge")
    errs = []
    for N in (100, 200):
        run = case.run({**over, "N": N, "Nt": N // 5}, time_scheme="strang", sinkhorn_anderson=5)
        r = run.result
        assert r.converged, r.status
        assert r.planning.terminal_mismatch < 1e-10 and r.mass_error() < 1e-12
        e = case.errors(r, run.params)
        errs.append([e["mean"], e["variance"], e["energy E"]])
    E = np.array(errs)
    assert E[-1, 0] < 5e-4 and E[-1, 1] < 2e-3 and E[-1, 2] < 0.05
    o = orders(E)[0]
    assert np.all((o > 1.8) & (o < 2.3)), o


def test_strang_is_second_order_in_dt_at_fixed_grid():
    """Self-convergence in dt alone (h fixed): successive differences of the energy shrink ~4x."""
    grid = mp.Grid([(-5, 5)], 200)
    E = []
    for Nt in (10, 20, 40, 80):
        pb = mp.PlanningProblem(grid, 1.5, Nt, 0.7, mp.gaussian(grid, -1.0, 0.5), mp.gaussian(grid, 1.5, 0.4),
                                coupling=mp.QuadraticInteraction(2.0))
        E.append(mp.solve_planning(pb, time_scheme="strang").planning.energy_E)
    diffs = np.abs(np.diff(E))
    assert np.all((orders(diffs) > 1.8) & (orders(diffs) < 2.3)), orders(diffs)


def test_strang_2d_mean_theorem_non_separable_second_order():
    errs = []
    for N, Nt in ((32, 16), (64, 32)):
        grid = mp.Grid([(-4, 4)] * 2, N)
        m0, m1 = _two_d_ends(grid)
        pb = mp.PlanningProblem(grid, 1.0, Nt, 1.0, m0, m1, coupling=mp.QuadraticInteraction(
            mp.PiecewiseConstant.uniform(1.0, 8.0 * 0.65 ** np.arange(8))))
        r = mp.solve_planning(pb, time_scheme="strang", method="anderson", sinkhorn_anderson=5)
        assert r.converged and r.planning.terminal_mismatch < 1e-10 and r.mass_error() < 1e-12
        mu0, mu1 = grid.mean(m0), grid.mean(m1)
        line = mu0[None] + (mu1 - mu0)[None] * (pb.t / pb.T)[:, None]
        errs.append(np.max(np.abs(r.mean() - line), axis=0))
    errs = np.array(errs)
    assert errs[-1].max() < 0.005
    assert np.all(orders(errs) > 1.7), orders(errs)


def test_accelerations_and_warm_start_reach_the_same_solution():
    """Sinkhorn-Anderson, undamped outer Anderson and a warm start from a coarser solution change the
    iteration counts, not the discrete solution (to the tolerances)."""
    def problem(N):
        grid = mp.Grid([(-6, 6)], N)
        m0, m1 = bimodal_ends(grid)
        return mp.PlanningProblem(grid, 1.0, 40, 1.0, m0, m1, coupling=mp.QuadraticInteraction(
            mp.PiecewiseConstant.uniform(1.0, 12.0 * 0.65 ** np.arange(8))))
    pb = problem(200)
    plain = mp.solve_planning(pb, time_scheme="strang", tol=1e-10, method="picard", damping=0.5, sinkhorn_anderson=0)
    fast = mp.solve_planning(pb, time_scheme="strang", tol=1e-10, method="anderson", damping=1.0, sinkhorn_anderson=5)
    assert plain.converged and fast.converged
    assert fast.planning.sinkhorn_iterations_total < 0.75 * plain.planning.sinkhorn_iterations_total
    assert np.max(np.abs(fast.m - plain.m)) < 1e-7 * plain.m.max()
    assert fast.planning.energy_E == pytest.approx(plain.planning.energy_E, rel=1e-8)
    coarse = mp.solve_planning(problem(100), time_scheme="strang", method="anderson", sinkhorn_anderson=5)
    g = pb.grid
    warm = mp.solve_planning(pb, time_scheme="strang", tol=1e-10, method="anderson", damping=1.0,
                             sinkhorn_anderson=5, m_init=prolong(coarse.grid, g, coarse.m),
                             potential_init=prolong(coarse.grid, g, -coarse.u[-1] / pb.sigma ** 2))
    assert warm.converged
    assert warm.planning.energy_E == pytest.approx(plain.planning.energy_E, rel=1e-8)
    with pytest.raises(ValueError, match="potential_init has shape"):
        mp.solve_planning(pb, time_scheme="strang", potential_init=np.zeros(7))


def test_fixed_guidance_planning_needs_no_outer_iteration():
    grid = mp.Grid([(-6, 6)], 150)
    m0, m1 = bimodal_ends(grid)
    r = mp.solve_planning(mp.PlanningProblem(grid, 1.0, 40, 1.0, m0, m1, coupling=mp.FixedGuidance(4.0, 0.5)))
    assert r.converged and r.iterations == 1 and r.planning.terminal_mismatch < 1e-10


def test_unknown_time_scheme_and_unsupported_drift_are_refused():
    grid = mp.Grid([(-5, 5)], 100)
    pb = mp.PlanningProblem(grid, 1.0, 20, 1.0, mp.gaussian(grid, -1, 0.5), mp.gaussian(grid, 1, 0.5))
    with pytest.raises(ValueError, match="unknown time_scheme 'rk4'"):
        mp.solve_planning(pb, time_scheme="rk4")
    pb = mp.PlanningProblem(grid, 1.0, 20, 1.0, mp.gaussian(grid, -1, 0.5), mp.gaussian(grid, 1, 0.5),
                            drift=Drift(lambda x, t: -x * (1 + t)))
    with pytest.raises(ValueError, match="time-independent base drift"):
        mp.solve_planning(pb, time_scheme="strang")


def test_strang_3d_smoke():
    grid = mp.Grid([(-3, 3)] * 3, 16)
    pb = mp.PlanningProblem(grid, 1.0, 8, 1.0, mp.gaussian(grid, (-0.5, 0.0, 0.3), 0.7),
                            mp.gaussian(grid, (0.5, 0.2, -0.3), 0.6), coupling=mp.QuadraticInteraction(2.0))
    r = mp.solve_planning(pb, time_scheme="strang")
    assert r.converged and r.planning.terminal_mismatch < 1e-10 and r.mass_error() < 1e-12
