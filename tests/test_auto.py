"""The default loop (`auto`): it converges wherever one of its parts does, a linearly converging Anderson
is never stopped, and solve's arguments are checked by name and type for every method."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.iterate.auto import _Loop


def aggregation(c=0.1, sigma=0.1, N=51, Nt=20, d=1):
    """F = -c m (an aggregation, non-monotone coupling): the peer package's README problem at c = 0.1."""
    grid = mp.Grid([(0.0, 1.0)] * d, N)
    r2 = sum((x - 0.5) ** 2 for x in grid.mesh())
    m0 = np.exp(-5.0 * r2)
    return mp.MFGProblem(grid, 1.0, Nt, sigma, m0 / grid.integrate(m0), coupling=mp.LocalPower(-c))


def test_auto_converges_where_anderson_cycles_and_newton_stalls():
    p = aggregation()
    a = mp.solve(p, method="anderson", max_iter=150)
    n = mp.solve(p, method="newton", max_iter=20)
    assert not a.converged and not n.converged          # each part alone fails here ...
    pic = mp.solve(p, method="picard")
    r = mp.solve(p)                                      # ... the default does not
    assert pic.converged and r.converged, r.status
    assert r.solver["winner"] == "picard"
    assert r.history["residual"][-1] <= 1e-8 and r.history["hjb_residual"][-1] <= 1e-8
    np.testing.assert_allclose(r.m, pic.m, atol=1e-7 * pic.m.max())  # picard's equilibrium, from the same start
    assert r.solver["coupling_monotone"] == "no"
    assert "coupling not monotone: uniqueness is not guaranteed" in r.summary()


def test_monotonicity_of_the_couplings():
    g1 = mp.Grid([(0.0, 1.0)], 40)
    gp = mp.Grid([(0.0, 1.0)], 40, bc="periodic")
    gauss = lambda d: np.exp(-d ** 2 / 0.005)  # noqa: E731  (a positive-definite kernel)
    assert mp.LocalPower(1.0).monotone(g1) is True and mp.LocalPower(-0.1).monotone(g1) is False
    assert mp.LocalLog(1.0).monotone(g1) is True
    assert mp.KernelInteraction(gauss, 1.0).monotone(gp) is True
    assert mp.KernelInteraction(gauss, -1.0).monotone(gp) is False
    assert mp.KernelInteraction(gauss, 1.0).monotone(g1) is True
    assert mp.KernelInteraction(gauss, -1.0).monotone(g1) is False
    assert mp.QuadraticInteraction(2.0).monotone(g1) is False       # attraction to the mean
    assert mp.QuadraticInteraction(-1.0).monotone(g1) is True       # repulsion from the mean
    assert mp.QuadraticInteraction(lambda t: 1.0 - 2.0 * t).monotone(g1, np.linspace(0, 1, 5)) is None
    assert (mp.LocalPower(1.0) + mp.LocalLog(0.5)).monotone(g1) is True
    assert (mp.LocalPower(1.0) + mp.LocalPower(-0.5)).monotone(g1) is None
    assert (mp.LocalPower(-1.0) + mp.QuadraticInteraction(1.0)).monotone(g1) is False
    # a kernel that is positive definite but for its constant mode: monotone on equal-mass densities
    assert mp.KernelInteraction(lambda d: np.exp(-d ** 2 / 0.005) - 0.5, 1.0).monotone(gp) is True
    assert mp.KernelInteraction(lambda d: 1.0, -0.5).monotone(g1) is True  # F = -mass/2: no dependence
    p = mp.MFGProblem(g1, 1.0, 4, 0.5, np.ones(40), coupling=mp.LocalPower(1.0))
    r = mp.solve(p)
    assert r.solver["coupling_monotone"] == "yes" and "equilibri" not in r.summary()


def test_scaled_coupling_field_verdict_and_solve():
    """c * F is ScaledCoupling(F, c): c times the field, the verdict of F for c > 0, flipped for c < 0 where
    F's "not monotone" means anti-monotone; Newton sees its exact derivative (c dF/dm)."""
    g1 = mp.Grid([(0.0, 1.0)], 40)
    m = np.exp(-((g1.axes[0] - 0.4) ** 2) / 0.02)[None, :].repeat(3, axis=0)
    t = np.linspace(0.0, 1.0, 3)
    F = mp.LocalPower(1.0, 2.0)
    S = 2.5 * F
    assert isinstance(S, mp.ScaledCoupling) and S.base is F and S.scale == 2.5
    np.testing.assert_array_equal(S.field(g1, t, m), 2.5 * F.field(g1, t, m))
    assert S.describe() == {"type": "scaled", "scale": 2.5, "coupling": F.describe()}
    assert S.monotone(g1) is True
    assert (-1.0 * F).monotone(g1) is False                         # -m^2: anti-monotone
    assert (-2.0 * mp.LocalPower(-0.1)).monotone(g1) is True        # -(-0.1 m) = 0.1 m
    assert (0.0 * mp.LocalPower(-0.1)).monotone(g1) is True         # no dependence on m
    with pytest.raises(ValueError, match="scale"):
        mp.ScaledCoupling(F, np.inf)
    with pytest.raises(TypeError, match="Coupling"):
        mp.ScaledCoupling(lambda m: m, 2.0)
    p1 = mp.MFGProblem(g1, 1.0, 20, 0.5, mp.gaussian(g1, 0.5, 0.1), coupling=mp.LocalPower(0.5))
    p2 = mp.MFGProblem(g1, 1.0, 20, 0.5, mp.gaussian(g1, 0.5, 0.1), coupling=0.25 * mp.LocalPower(2.0))
    for method in ("anderson", "newton"):
        r1, r2 = mp.solve(p1, method=method), mp.solve(p2, method=method)
        assert r1.converged and r2.converged
        np.testing.assert_allclose(r2.m, r1.m, rtol=0, atol=1e-12 * r1.m.max())
        assert r2.iterations == r1.iterations


def test_monotonicity_is_saved(tmp_path):
    r = mp.solve(aggregation(N=20, Nt=6, sigma=0.5))
    r.save(tmp_path / "a.h5")
    back = mp.load(tmp_path / "a.h5")
    assert back.solver["coupling_monotone"] == "no"


def test_auto_converges_on_2d_aggregation():
    p = aggregation(N=21, Nt=12, d=2)
    r = mp.solve(p)
    assert r.converged and r.history["hjb_residual"][-1] <= 1e-8, r.status


def _fake_loop(bests, window=6):
    class L:
        pass
    loop = L()
    loop.k = len(bests)
    lp = _Loop("anderson", loop, window, 300, 1e2)
    lp.bests = list(bests)
    return lp


def test_slow_rule_leaves_a_linearly_converging_loop_alone():
    # rate 0.5 per iteration from 1: at k = 12 the residual is 5e-4, 16 more iterations to 1e-8 <= 3 k
    fast = _fake_loop(0.5 ** np.arange(12))
    assert fast.slow(1e-8) is None
    # rate 0.93: about 250 more iterations -> race
    slow = _fake_loop(0.93 ** np.arange(12))
    assert "slow" in slow.slow(1e-8)
    flat = _fake_loop([1.0] * 12)
    assert "no progress" in flat.slow(1e-8)
    assert _fake_loop([1.0] * 5).slow(1e-8) is None   # too early to judge


def test_a_racing_anderson_keeps_running_while_it_converges():
    """On the hard corner nu = 0.1, k = 10 Anderson converges slowly and linearly: with no other racer the
    race is Anderson alone, and its result is exactly method='anderson''s."""
    grid = mp.Grid([(0.0, 1.0)], 100, bc="periodic")
    p = mp.MFGProblem(grid, 1.0, 50, float(np.sqrt(0.2)), np.ones(100), coupling=mp.LocalPower(10.0),
                      potential=lambda x, t: -np.cos(2 * np.pi * x))
    r = mp.solve(p, racers=())
    a = mp.solve(p, method="anderson")
    assert r.converged and a.converged and r.iterations == a.iterations
    np.testing.assert_array_equal(r.m, a.m)


@pytest.mark.parametrize("method", ["picard", "fictitious-play", "anderson", "newton", "auto"])
def test_misspelled_options_are_refused_with_a_suggestion(method):
    p = aggregation(N=10, Nt=4)
    with pytest.raises(TypeError, match=r"max_iters.*did you mean 'max_iter'"):
        mp.solve(p, method=method, max_iters=1)
    with pytest.raises(TypeError, match=r"tolerance"):
        mp.solve(p, method=method, tolerance=1e-2)
    for bad in ("control_bound", "equilibrium", "maxiter", "options"):
        with pytest.raises(TypeError, match=bad):
            mp.solve(p, method=method, **{bad: 1})


@pytest.mark.parametrize("kw, match", [(dict(tol="abc"), "tol"), (dict(max_iter=2.5), "max_iter"),
                                       (dict(max_iter="3"), "max_iter"), (dict(damping=2.0), "damping"),
                                       (dict(tol=-1.0), "tol"), (dict(newton_maxit=0), "newton_maxit")])
def test_bad_solver_arguments_name_the_parameter(kw, match):
    with pytest.raises((TypeError, ValueError), match=match):
        mp.solve(aggregation(N=10, Nt=4), **kw)


def test_solve_none_is_a_clear_error():
    with pytest.raises(TypeError, match="expected an mp.MFGProblem, got None"):
        mp.solve(None)


def test_result_records_every_option_used():
    p = aggregation(N=10, Nt=4, sigma=0.5)
    r = mp.solve(p, method="picard", damping=0.4, max_iter=77, tol=1e-7)
    for key, value in dict(method="picard", damping=0.4, max_iter=77, tol=1e-7, anderson_depth=5,
                           newton_tol=1e-12, newton_maxit=50, inner_factor=1e-2, diagnostics="lean",
                           exploitability="final").items():
        assert r.solver[key] == value, key
    r = mp.solve(p, krylov_rtol=1e-4)
    assert r.solver["krylov_rtol"] == 1e-4 and r.solver["method"] == "auto"


def test_a_previous_result_starts_the_next_solve():
    """m_init=result: the loops start from its density (and Newton from its pair); started at an
    equilibrium, every method needs fewer iterations than from m0 and returns the same pair."""
    p = aggregation(sigma=0.3)
    first = mp.solve(p, method="anderson", tol=1e-11)
    assert first.converged
    for method in ("picard", "anderson", "auto"):
        cold = mp.solve(p, method=method, tol=1e-8)
        again = mp.solve(p, method=method, m_init=first, tol=1e-8)
        assert again.converged and again.iterations < cold.iterations, (method, again.status)
        np.testing.assert_allclose(again.m, first.m, atol=1e-7 * first.m.max())
    n = mp.solve(p, method="newton", m_init=first, tol=1e-8)
    assert n.converged and n.iterations == 1
    # on another grid it is interpolated (grid continuation; tests/test_warm_start.py)
    other = mp.solve(aggregation(sigma=0.3, N=40), m_init=first)
    assert other.converged and other.solver["init"].startswith("a result interpolated (grid (51,) -> (40,)")


def test_u_init_is_a_newton_option_only():
    p = aggregation(N=10, Nt=4, sigma=0.5)
    with pytest.raises(TypeError, match="u_init"):
        mp.solve(p, method="picard", u_init=np.zeros((5, 10)))


def test_divergence_factor_may_be_infinite():
    r = mp.solve(aggregation(N=10, Nt=4, sigma=0.5), method="picard", divergence_factor=np.inf)
    assert r.converged and r.solver["divergence_factor"] == np.inf


def test_lean_default_records_the_residuals_that_decide():
    """The default diagnostics="lean": the fixed-point residual at every iteration, the exact HJB residual
    where convergence is decided; with "every" the same iterates and result and the HJB residual throughout."""
    p = aggregation(N=30, Nt=10, sigma=0.4)
    lean = mp.solve(p, method="anderson")
    every = mp.solve(p, method="anderson", diagnostics="every")
    assert lean.converged and lean.solver["diagnostics"] == "lean"
    np.testing.assert_array_equal(lean.m, every.m)
    np.testing.assert_array_equal(lean.history["residual"], every.history["residual"])
    assert np.all(np.isfinite(every.history["hjb_residual"]))
    assert np.isnan(lean.history["hjb_residual"][0]) and lean.history["hjb_residual"][-1] <= 1e-8
    a_lean, a_every = mp.solve(p), mp.solve(p, diagnostics="every")   # auto, both modes
    assert a_lean.converged and a_every.converged


def test_fixed_guidance_centre_keyword():
    g = mp.Grid([(-2.0, 2.0)], 20)
    c = mp.FixedGuidance(2.0, centre=0.5)
    t = np.array([0.0, 0.5])
    np.testing.assert_allclose(c.field(g, t, None)[0], (g.axes[0] - 0.5) ** 2)
    assert c.describe()["centre"] == 0.5
    with pytest.raises(TypeError, match="centre"):
        mp.FixedGuidance(2.0, nu=0.5)
