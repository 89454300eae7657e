"""Newton on the whole discrete system (1-D), the "auto" driver, and exploitability (Nash gap)."""

import numpy as np
import pytest
import scipy.sparse as sp

import mfg_pde as mp
from mfg_pde.model.couplings import Coupling
from mfg_pde.diagnostics.exploitability import exploitability, nash_gap
from mfg_pde.fd.fp import fp_residual
from mfg_pde.fd.hjb import HJBSolution, empty_states, hjb_residual
from mfg_pde.diagnostics.matrices import step_factors
from mfg_pde.newton.system_1d import DiscreteSystem


# ----------------------------------------------------------------------------- problems
def regime(nu, k, N=200, Nt=100):
    """The hard-corner regimes of docs/method.md: periodic [0, 1], F = k m - cos(2 pi x) (potential -cos,
    coupling k m), T = 1,
    u_T = 0, m0 uniform."""
    grid = mp.Grid([(0.0, 1.0)], N, bc="periodic")
    return mp.MFGProblem(grid, 1.0, Nt, np.sqrt(2 * nu), np.ones(N), coupling=mp.LocalPower(k),
                         potential=lambda x, t: -np.cos(2 * np.pi * x))


def lq(N=60, Nt=40):
    grid = mp.Grid([(-4, 4)], N)
    return mp.MFGProblem(grid, 1.0, Nt, 0.8, mp.gaussian(grid, -0.5, 0.5), coupling=mp.QuadraticInteraction(2.0),
                         terminal_cost=mp.QuadraticTerminalCost(1.0, 1.0))


class Softplus(Coupling):
    """A user coupling (no closed-form derivative in the solver): F = log(1 + exp(m))."""

    def field(self, grid, t, m):
        return np.logaddexp(0.0, m)

    def describe(self):
        return {"type": "softplus"}


def small_problems():
    g = mp.Grid([(0.0, 1.0)], 12, bc="periodic")
    x = g.axes[0]
    m0 = mp.normalise(g, 1.0 + 0.5 * np.sin(2 * np.pi * x))
    yield "periodic-local", mp.MFGProblem(g, 1.0, 6, 0.3, m0, coupling=mp.LocalPower(3.0),
                                          potential=lambda x, t: -np.cos(2 * np.pi * x))
    g = mp.Grid([(-2.0, 2.0)], 12)
    m0 = mp.gaussian(g, 0.2, 0.6)
    yield "reflecting-power-drift", mp.MFGProblem(g, 1.0, 6, 0.5, m0, coupling=mp.LocalPower(2.0, 1.5),
                                                  drift=lambda x, t: [0.7 * np.sin(x + t)])
    yield "kernel+log", mp.MFGProblem(g, 1.0, 6, 0.5, m0,
                                      coupling=mp.KernelInteraction(lambda d: np.exp(-d ** 2), 0.7)
                                      + mp.LocalLog(0.3))
    yield "quadratic-interaction", mp.MFGProblem(g, 1.0, 6, 0.5, m0, coupling=mp.QuadraticInteraction(1.5),
                                                 terminal_cost=mp.QuadraticTerminalCost(1.0, 0.5))
    yield "user-coupling", mp.MFGProblem(g, 1.0, 6, 0.5, m0, coupling=Softplus())

    def G(x, mT, grid=g):
        mu = grid.integrate(mT * x) / grid.integrate(mT)
        return (x - mu - 1.0) ** 2

    yield "terminal-G(m)", mp.MFGProblem(g, 1.0, 6, 0.5, m0, coupling=mp.LocalPower(1.0),
                                         terminal_cost=mp.TerminalCost(G, depends_on_m=True))


def _random_iterate(pb, rng):
    Nt, N = pb.Nt, pb.grid.size
    u = rng.normal(size=(Nt + 1, N)) * 0.5
    m = pb.m0[None] * (1.0 + 0.3 * rng.uniform(-1, 1, size=(Nt + 1, N)))
    S = DiscreteSystem(pb)
    S.complete(u, m)
    return S, u, m


def _residual_vector(S, u, m):
    ev = S.evaluate(u, m)
    return np.concatenate([ev["RH"].ravel(), ev["RF"].ravel()])


# ----------------------------------------------------------------------------- the Jacobian
@pytest.mark.parametrize("name,pb", list(small_problems()), ids=[n for n, _ in small_problems()])
def test_jacobian_matches_finite_differences_of_the_residual(name, pb, rng):
    S, u, m = _random_iterate(pb, rng)
    Nt, N = pb.Nt, pb.grid.size
    J = S.jacobian(u, m).toarray()
    n = Nt * N
    fd = np.empty((2 * n, 2 * n))
    for j in range(2 * n):
        cols = []
        for sgn in (1.0, -1.0):
            uu, mm = u.copy(), m.copy()
            if j < n:
                uu[:Nt].reshape(-1)[j] += sgn * 1e-6
            else:
                mm[1:].reshape(-1)[j - n] += sgn * 1e-6
            S.complete(uu, mm)
            cols.append(_residual_vector(S, uu, mm))
        fd[:, j] = (cols[0] - cols[1]) / 2e-6
    scale = np.abs(J).max()
    assert np.abs(fd - J).max() <= 1e-6 * scale, name
    # the FP-u block (Hessian of m . (M(u) u - dt c(u))) is symmetric, the FP-m block is the HJB-u block^T
    np.testing.assert_allclose(J[n:, :n], J[n:, :n].T, atol=1e-12 * scale)
    np.testing.assert_allclose(J[n:, n:], J[:n, :n].T, atol=1e-12 * scale)
    # the matrix-free product and the interleaved assembly are the same matrix
    ev = S.evaluate(u, m)
    der = S.derivative(m)
    x = rng.normal(size=2 * n)
    JH, JF = S.jvp(u, m, ev, der, x[:n].reshape(Nt, N), x[n:].reshape(Nt, N))
    np.testing.assert_allclose(np.concatenate([JH.ravel(), JF.ravel()]), J @ x, atol=1e-10 * scale)
    Ji = S.jacobian(u, m, interleave=True)
    perm = np.empty(2 * n, dtype=int)
    perm[0::2] = np.arange(n)
    perm[1::2] = n + np.arange(n)
    np.testing.assert_allclose(Ji.toarray(), J[perm][:, perm], atol=0)


def test_jacobian_blocks_are_the_step_matrices(rng):
    pb = next(iter(small_problems()))[1]
    S, u, m = _random_iterate(pb, rng)
    Nt, N = pb.Nt, pb.grid.size
    J = sp.csr_matrix(S.jacobian(u, m))
    n = Nt * N
    for k in (0, Nt // 2, Nt - 1):
        M = step_factors(pb, u[k], k)[0].toarray()
        blk = slice(k * N, (k + 1) * N)
        np.testing.assert_array_equal(J[blk, blk].toarray(), M)
        np.testing.assert_array_equal(J[n + k * N:n + (k + 1) * N, n + k * N:n + (k + 1) * N].toarray(), M.T)


def test_newton_residuals_are_the_core_residuals(rng):
    """DiscreteSystem's relative residuals are hjb.hjb_residual / fp.fp_residual of the same pair."""
    pb = regime(0.1, 1.0, 40, 20)
    S, u, m = _random_iterate(pb, rng)
    ev = S.evaluate(u, m)
    sol = HJBSolution(u, empty_states(pb), np.zeros(pb.Nt, dtype=np.int64))
    assert ev["hjb"] == pytest.approx(hjb_residual(pb, sol, pb.running_cost(m)), rel=1e-12)
    assert ev["fp"] == pytest.approx(fp_residual(pb, sol, m), rel=1e-12)


# ----------------------------------------------------------------------------- the four regimes
@pytest.mark.parametrize("method", ["newton", "auto"])
@pytest.mark.parametrize("nu,k", [(0.1, 1), (0.1, 10), (0.01, 1), (0.01, 10)])
def test_four_regimes_converge_to_1e_10(nu, k, method):
    pb = regime(nu, k)
    r = mp.solve(pb, method=method, tol=1e-10)
    assert r.converged and r.status.startswith("converged"), r.status
    # certified with the core loop's own residual functions
    sol = HJBSolution(r.u, empty_states(pb), np.zeros(pb.Nt, dtype=np.int64))
    assert hjb_residual(pb, sol, pb.running_cost(r.m), pb.terminal_values(r.m[-1])) <= 1e-10
    assert fp_residual(pb, sol, r.m) <= 1e-10
    assert r.mass_error() < 1e-12 and r.m.min() > 0
    h = r.history
    for key in ("residual", "hjb_residual", "fp_residual", "change_m", "mass_error", "damping", "wall_time",
                "line_search", "step_norm", "phase", "exploitability", "iteration"):
        assert len(h[key]) == r.iterations, key
    assert h["residual"][-1] <= 1e-10
    assert abs(h["exploitability"][-1]) < 1e-10
    assert np.all(np.diff(h["wall_time"]) >= 0)
    newton_steps = int(np.sum(h["phase"] == 1)) - 1
    if method == "newton":
        assert np.all(h["phase"] == 1) and 1 <= newton_steps <= 15
        assert np.all(h["line_search"][:-1] > 0)


def test_newton_matches_the_anderson_solution():
    pb = regime(0.1, 1, 100, 50)
    a = mp.solve(pb, method="anderson", tol=1e-11)
    for solver in ("krylov", "direct"):
        r = mp.solve(pb, method="newton", tol=1e-11, linear_solver=solver)
        assert r.converged
        np.testing.assert_allclose(r.m, a.m, atol=1e-8 * a.m.max())
        np.testing.assert_allclose(r.u, a.u, atol=1e-8 * np.abs(a.u).max())


@pytest.mark.parametrize("name,pb", [("lq", lq()), *list(small_problems())[1:]],
                         ids=["lq"] + [n for n, _ in list(small_problems())[1:]])
def test_newton_on_other_couplings_matches_anderson(name, pb):
    a = mp.solve(pb, method="anderson", tol=1e-11, max_iter=500)
    assert a.converged
    r = mp.solve(pb, method="newton", tol=1e-11)
    assert r.converged, (name, r.status)
    np.testing.assert_allclose(r.m, a.m, atol=1e-7 * a.m.max())
    np.testing.assert_allclose(r.u, a.u, atol=1e-7 * np.abs(a.u).max())


@pytest.mark.parametrize("kw", [dict(warm_start="fictitious-play", warm_iter=10), dict(warm_start="anderson"),
                                dict(warm_start="picard", warm_iter=5), dict(continuation="coupling"),
                                dict(continuation="sigma", continuation_steps=[0.6, 0.3]),
                                dict(linear_solver="direct")])
def test_newton_options(kw):
    pb = regime(0.01, 10, 100, 50)
    r = mp.solve(pb, method="newton", tol=1e-10, **kw)
    assert r.converged, r.status
    h = r.history
    if "warm_start" in kw:
        n_warm = int(np.sum(h["phase"] == 0))
        assert 1 <= n_warm <= kw.get("warm_iter", 30) and r.solver["warm_start"] == kw["warm_start"]
    if "continuation" in kw:
        stages = np.unique(h["continuation"])
        assert len(stages) == 3
        target = pb.sigma if kw["continuation"] == "sigma" else 1.0
        assert h["continuation"][-1] == pytest.approx(target)


def test_auto_records_the_race():
    """Anderson stalls on the hard corner (nu = 0.01, k = 10): auto races Newton and damped Picard against
    it, Newton wins, and the history says which loop ran each record."""
    pb = regime(0.01, 10)
    r = mp.solve(pb, method="auto", tol=1e-10)
    assert r.converged and r.solver["winner"] == "newton", r.status
    assert "newton won" in r.status and "newton from" in r.solver["auto"]
    ph = r.history["phase"]
    k = int(np.argmax(ph != 0))
    assert k >= r.solver["stall_window"] and np.all(ph[:k] == 0)  # Anderson alone first
    assert ph[-1] == 1 and r.history["residual"][-1] <= 1e-10
    assert set(np.unique(ph)) == {0.0, 1.0, 2.0}                    # all three loops ran
    n = mp.solve(pb, method="newton", tol=1e-10)
    np.testing.assert_allclose(r.m, n.m, atol=1e-8 * n.m.max())     # the same discrete solution (monotone F)
    # an easy problem never leaves Anderson: exactly method="anderson"'s result
    e = mp.solve(regime(0.1, 1, 100, 50), method="auto", tol=1e-10)
    a = mp.solve(regime(0.1, 1, 100, 50), method="anderson", tol=1e-10)
    assert e.converged and e.status == "converged" and np.all(e.history["phase"] == 0)
    assert e.solver["winner"] == "anderson" and e.iterations == a.iterations
    np.testing.assert_array_equal(e.m, a.m)


def test_newton_and_auto_run_in_2d():
    """2-D goes through the split-chain system (tests/test_newton_split.py has the details)."""
    g = mp.Grid([(0, 1), (0, 1)], 12)
    pb = mp.MFGProblem(g, 1.0, 8, 0.5, mp.gaussian(g, [0.5, 0.5], 0.2), coupling=mp.LocalPower(1.0))
    r = mp.solve(pb, method="newton", tol=1e-10)
    assert r.converged and r.history["residual"][-1] <= 1e-10
    r = mp.solve(pb, method="auto", tol=1e-8)
    assert r.converged and r.solver["method"] == "auto"


@pytest.mark.parametrize("kw,word", [({"warm_start": "nope"}, "warm_start"), ({"continuation": "time"}, "continuation"),
                                     ({"linear_solver": "cholesky"}, "linear_solver"),
                                     ({"exploitability": "sometimes"}, "exploitability")])
def test_bad_newton_options_name_the_parameter(kw, word):
    with pytest.raises(ValueError, match=word):
        mp.solve(regime(0.1, 1, 20, 10), method="newton", **kw)


def test_newton_options_are_refused_by_the_cheap_loops():
    with pytest.raises(TypeError, match="warm_start"):
        mp.solve(regime(0.1, 1, 20, 10), method="picard", warm_start="anderson")


# ----------------------------------------------------------------------------- exploitability
def test_exploitability_is_nonnegative_and_vanishes_as_the_loop_converges():
    pb = regime(0.1, 1, 100, 50)
    r = mp.solve(pb, method="picard", tol=1e-10, exploitability="every")
    assert r.converged
    e = r.history["exploitability"]
    assert len(e) == r.iterations and np.all(np.isfinite(e))
    scale = np.abs(r.u).max()
    assert np.all(e >= -1e-12 * scale)
    assert e[0] > 1e-4 and abs(e[-1]) < 1e-10
    # decreases with the fixed-point residual (geometric decay, checked on a coarse scale)
    assert e[len(e) // 2] < 1e-2 * e[0] and e[-1] < 1e-4 * e[len(e) // 2]


def test_exploitability_of_a_result_and_of_a_wrong_density():
    pb = regime(0.1, 10, 100, 50)
    r = mp.solve(pb, method="newton", tol=1e-11)
    d = exploitability(pb, r, details=True)
    assert abs(d["exploitability"]) < 1e-10
    # the policy cost by backward policy evaluation equals the forward (FP) expected cost: discrete duality
    assert d["policy_cost"] == pytest.approx(d["policy_cost_forward"], rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(d["policy_density"], r.m, atol=1e-9)
    # against a population frozen at m0 the optimal policy of the result is exploitable
    wrong = mp.MFGResult(grid=r.grid, t=r.t, u=r.u, m=np.broadcast_to(pb.m0, r.m.shape).copy())
    gap = exploitability(pb, wrong)
    assert gap > 1e-3
    # and so is a wrong policy against the right population
    bad = mp.MFGResult(grid=r.grid, t=r.t, u=0.5 * r.u, m=r.m)
    assert exploitability(pb, bad) > 1e-5


def test_exploitability_is_nonnegative_for_arbitrary_pairs(rng):
    for name, pb in small_problems():
        S, u, m = _random_iterate(pb, rng)
        d = nash_gap(pb, u, np.abs(m), details=True)
        assert d["exploitability"] >= -1e-12 * max(1.0, abs(d["best_response_value"])), name
        assert d["policy_cost"] == pytest.approx(d["policy_cost_forward"], rel=1e-10, abs=1e-12)


def test_exploitability_2d_with_split_states():
    g = mp.Grid([(0, 1), (0, 1)], 16)
    pb = mp.MFGProblem(g, 1.0, 10, 0.5, mp.gaussian(g, [0.4, 0.6], 0.15), coupling=mp.LocalPower(1.0),
                       potential=lambda x, y, t: np.cos(2 * np.pi * x))
    early = mp.solve(pb, method="picard", max_iter=2, tol=1e-12)
    r = mp.solve(pb, method="anderson", tol=1e-10)
    assert r.converged
    e_final = r.history["exploitability"][-1]
    e_early = early.history["exploitability"][-1]
    assert np.all(np.isnan(r.history["exploitability"][:-1]))
    assert abs(e_final) < 1e-9 and e_early > 1e3 * abs(e_final) and e_early > 0
    d = exploitability(pb, r, details=True)
    assert d["policy_cost"] == pytest.approx(d["policy_cost_forward"], rel=1e-12)


def test_exploitability_lands_in_hdf5(tmp_path):
    pytest.importorskip("h5py")
    pb = regime(0.1, 1, 40, 20)
    for method in ("anderson", "newton"):
        r = mp.solve(pb, method=method, tol=1e-10)
        path = tmp_path / f"{method}.h5"
        r.save(path)
        back = mp.load(path)
        assert "exploitability" in back.history
        np.testing.assert_array_equal(back.history["exploitability"], r.history["exploitability"])
        assert abs(back.history["exploitability"][-1]) < 1e-10


@pytest.mark.slow
def test_newton_1000x1000_hardest_regime():
    """The issue's speed row (timed in benchmarks/bench_newton.py): converges to 1e-10 in a few steps."""
    pb = regime(0.01, 10, 1000, 1000)
    r = mp.solve(pb, method="newton", tol=1e-10)
    assert r.converged and r.iterations <= 10
    assert r.mass_error() < 1e-11 and abs(r.history["exploitability"][-1]) < 1e-10


def test_cli_runs_cases_with_newton_and_exit_room_refuses_it(capsys):
    """``mfg-pde run CASE --set method=newton`` reaches Newton; the exit-room case does not offer it."""
    from mfg_pde import cli
    assert cli.main(["run", "lqg", "-q", "--set", "method=newton"]) == 0
    capsys.readouterr()
    assert cli.main(["run", "exit-room", "-q", "--set", "method=newton"]) == 2
    err = capsys.readouterr().err
    assert "method='newton'" in err and "auto" in err
