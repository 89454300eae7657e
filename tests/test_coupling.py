"""Coupling loop: methods, statuses, history, progress, bad options."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.model.couplings import Coupling


def lq_problem(N=80, beta=2.0):
    grid = mp.Grid([(-4, 4)], N)
    return mp.MFGProblem(grid, 1.0, N, 0.8, mp.gaussian(grid, -0.5, 0.5), coupling=mp.QuadraticInteraction(beta),
                         terminal_cost=mp.QuadraticTerminalCost(1.0, 1.0))


def congestion(N=80, sigma=0.6):
    grid = mp.Grid([(0, 1)], N)
    return mp.MFGProblem(grid, 1.0, N, sigma, mp.gaussian(grid, 0.5, 0.1), coupling=mp.LocalPower(1.0),
                         potential=lambda x, t: np.cos(2 * np.pi * x))


@pytest.mark.parametrize("method", ["picard", "anderson"])
def test_methods_agree(method):
    ref = mp.solve(lq_problem(), method="anderson", tol=1e-11)
    r = mp.solve(lq_problem(), method=method, tol=1e-11)
    assert r.converged and r.status == "converged"
    np.testing.assert_allclose(r.m, ref.m, atol=1e-8)
    np.testing.assert_allclose(r.u, ref.u, atol=1e-8)
    assert r.history["hjb_residual"][-1] <= 1e-11
    assert r.history["fp_residual"][-1] < 1e-13


def test_history_records_every_iteration():
    r = mp.solve(congestion(), method="anderson", tol=1e-9)
    h = r.history
    for key in ("residual", "hjb_residual", "fp_residual", "change_m", "mass_error", "newton_max", "wall_time",
                "iteration"):
        assert len(h[key]) == r.iterations, key
    assert np.all(np.diff(h["wall_time"]) >= 0)
    assert np.all(h["mass_error"] < 1e-12)
    assert h["residual"][-1] <= 1e-9 < h["residual"][0]


@pytest.mark.parametrize("method,problem,kw", [("picard", "1d", {}), ("anderson", "1d", {}), ("anderson", "2d", {}),
                                               ("fictitious-play", "1d", {"max_iter": 12})])
def test_lean_diagnostics_give_the_same_solve(method, problem, kw):
    """diagnostics='lean' skips the HJB/FP residuals where they decide nothing: same iterates, decision and
    result; the residuals are recorded (equal to the default's) exactly where residual <= tol and last."""
    if problem == "1d":
        pb = congestion()
    else:
        grid = mp.Grid([(0, 1), (0, 1)], 24)
        pb = mp.MFGProblem(grid, 1.0, 20, 0.6, mp.gaussian(grid, (0.5, 0.5), (0.12, 0.12)),
                           coupling=mp.LocalPower(1.0), potential=lambda x, y, t: np.cos(2 * np.pi * x) * y)
    ref = mp.solve(pb, method=method, tol=1e-9, **kw)
    lean = mp.solve(pb, method=method, tol=1e-9, diagnostics="lean", **kw)
    assert lean.converged == ref.converged == ("max_iter" not in kw) and lean.iterations == ref.iterations
    np.testing.assert_array_equal(lean.u, ref.u)
    np.testing.assert_array_equal(lean.m, ref.m)
    for key in ("residual", "change_m", "mass_error", "newton_max"):
        np.testing.assert_array_equal(lean.history[key], ref.history[key])
    decided = lean.history["residual"] <= 1e-9
    decided[-1] = True
    for key in ("hjb_residual", "fp_residual"):
        np.testing.assert_array_equal(lean.history[key][decided], ref.history[key][decided])
        assert np.all(np.isnan(lean.history[key][~decided])) and np.sum(~decided) >= 3
    # capped runs end with the residuals of their last candidate
    capped = mp.solve(pb, method=method, tol=1e-14, max_iter=4, diagnostics="lean")
    assert not capped.converged and np.isfinite(capped.history["hjb_residual"][-1])


def test_fictitious_play_reports_non_convergence_honestly():
    r = mp.solve(congestion(), method="fictitious-play", tol=1e-10, max_iter=15)
    assert not r.converged
    assert r.status.startswith("not converged: max_iter = 15")
    assert r.iterations == 15 and len(r.history["residual"]) == 15
    # damping 1/(k+1) is recorded
    np.testing.assert_allclose(r.history["damping"][:3], [1 / 2, 1 / 3, 1 / 4])


class Exploding(Coupling):
    """A coupling that returns inf from the 3rd evaluation on (to test divergence handling)."""

    def __init__(self):
        self.calls = 0

    def field(self, grid, t, m):
        self.calls += 1
        return np.full(m.shape, np.inf if self.calls > 4 else 0.1)

    def describe(self):
        return {"type": "exploding"}


def test_non_finite_values_stop_with_diverged_status_and_history():
    pb = lq_problem()
    pb.coupling = Exploding()
    r = mp.solve(pb, method="picard", max_iter=50)
    assert not r.converged and r.status.startswith("diverged: non-finite")
    assert r.iterations >= 2 and np.isnan(r.history["residual"][-1])


def test_uncoupled_problem_is_one_sweep():
    pb = lq_problem(beta=0.0)
    pb.coupling = None
    r = mp.solve(pb)
    assert r.converged and r.iterations == 1


def test_progress_lines_and_quiet(capsys):
    mp.solve(lq_problem(), progress=True)
    err = capsys.readouterr().err
    assert "iter" in err and "residual" in err and "converged" in err and "elapsed" in err
    mp.solve(lq_problem(), progress=False)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


def test_callback_can_stop():
    r = mp.solve(congestion(), callback=lambda k, rec: k >= 2, tol=1e-14)
    assert r.status == "stopped by callback at iteration 2" and not r.converged


@pytest.mark.parametrize("kw,word", [({"method": "newtonish"}, "method"), ({"damping": 0.0}, "damping"),
                                     ({"damping": 1.5}, "damping"), ({"tol": -1.0}, "tol"),
                                     ({"max_iter": 0}, "max_iter"), ({"anderson_depth": 0}, "anderson_depth"),
                                     ({"diagnostics": "some"}, "diagnostics")])
def test_bad_options_name_the_parameter(kw, word):
    with pytest.raises(ValueError, match=word):
        mp.solve(lq_problem(), **kw)


def test_m_init_shape_is_checked():
    with pytest.raises(ValueError, match="m_init"):
        mp.solve(lq_problem(), m_init=np.ones((3, 3)))


def test_small_viscosity_congestion_converges_with_safeguarded_anderson():
    # the reference problem of docs/method.md, section 'Aggregation couplings', with the congestion sign
    # F = +0.1 m: plain damped Picard cycles here (eigenvalue below -1)
    grid = mp.Grid([(0.0, 1.0)], 51)
    m0 = mp.normalise(grid, np.exp(-5 * (grid.axes[0] - 0.5) ** 2))
    pb = mp.MFGProblem(grid, 1.0, 20, 0.1, m0, coupling=mp.LocalPower(0.1))
    assert not mp.solve(pb, method="picard", damping=0.5, tol=1e-6, max_iter=60).converged
    r = mp.solve(pb, method="anderson", tol=1e-8)
    assert r.converged and r.mass_error() < 1e-13


def test_terminal_cost_depending_on_m_T():
    """G(x, m_T) = q/2 (x - mean(m_T) - 1)^2: the target sits one unit beyond the final crowd mean.
    With b = V = F = 0 each agent takes c = mean_T + 1 as given, so mean_t = mean0 + v t with
    v = q (c - mean0)/(1 + q T) and mean_T = mean0 + v T, i.e. v = q.  Error and order asserted."""
    errs = []
    for N in (100, 200):
        grid = mp.Grid([(-5, 5)], N)

        def G(x, mT, grid=grid):
            mu = grid.integrate(mT * x) / grid.integrate(mT)
            return 0.5 * 2.0 * (x - mu - 1.0) ** 2

        pb = mp.MFGProblem(grid, 1.0, N, 0.6, mp.gaussian(grid, -0.5, 0.5),
                           terminal_cost=mp.TerminalCost(G, depends_on_m=True))
        assert pb.is_coupled
        r = mp.solve(pb, tol=1e-10)
        assert r.converged and r.iterations > 1
        errs.append(np.max(np.abs(r.mean()[:, 0] - (-0.5 + 2.0 * pb.t))))
    assert errs[-1] < 0.05
    assert 0.85 < np.log2(errs[0] / errs[1]) < 1.2


def test_callable_drift_and_guidance_paths():
    """A time-dependent callable drift b = -kappa x and a callable guidance centre reproduce the
    LinearDrift / constant-centre results exactly."""
    grid = mp.Grid([(-4, 4)], 80)
    m0 = mp.gaussian(grid, 0.5, 0.5)
    common = dict(terminal_cost=mp.QuadraticTerminalCost(1.0, 0.0))
    a = mp.solve(mp.MFGProblem(grid, 1.0, 40, 0.7, m0, drift=mp.LinearDrift(0.8),
                               coupling=mp.FixedGuidance(2.0, 0.3), **common))
    b = mp.solve(mp.MFGProblem(grid, 1.0, 40, 0.7, m0, drift=lambda x, t: -0.8 * x,
                               coupling=mp.FixedGuidance(2.0, lambda t: np.full_like(t, 0.3)), **common))
    np.testing.assert_allclose(a.m, b.m, atol=1e-12)
    np.testing.assert_allclose(a.u, b.u, atol=1e-12)


def test_sweeps_write_into_reused_buffers():
    """solve_hjb / solve_fp with ``out`` give the same fields as with fresh arrays; an ``out`` that
    aliases the Newton guess is refused (the predictor reads the old guess while writing u)."""
    from mfg_pde.fd.fp import solve_fp
    from mfg_pde.fd.hjb import solve_hjb
    p = congestion(40)
    m = np.repeat(p.m0[None], p.Nt + 1, axis=0)
    f, uT = p.running_cost(m), p.terminal_values(m[-1])
    first = solve_hjb(p, f, uT)
    ref = solve_hjb(p, f, uT, guess=first)
    u_buf = np.full_like(first.u, np.nan)
    got = solve_hjb(p, f, uT, guess=first, out=u_buf)
    assert got.u is u_buf
    np.testing.assert_array_equal(got.u, ref.u)
    m_buf = np.full_like(m, np.nan)
    assert solve_fp(p, got, out=m_buf) is m_buf
    np.testing.assert_array_equal(m_buf, solve_fp(p, ref))
    with pytest.raises(ValueError, match="out must not share memory"):
        solve_hjb(p, f, uT, guess=first, out=first.u)
    with pytest.raises(ValueError, match="expected a C-contiguous"):
        solve_fp(p, got, out=np.empty((3, 3)))


def _fused_case(kind):
    """Problems covering every path of the fused residual kernels (reflecting/periodic/exit lines,
    contiguous and strided axes, with and without drift)."""
    pot1 = lambda x, t: np.cos(2 * np.pi * x)  # noqa: E731
    if kind in ("1d", "1d-drift", "1d-periodic", "1d-exit"):
        bc = {"1d-periodic": "periodic", "1d-exit": ("reflecting", "exit")}.get(kind, "reflecting")
        grid = mp.Grid([(0, 1)], 60, bc)
        drift = (lambda x, t: np.sin(5 * x) - t) if kind != "1d" else None
        return mp.MFGProblem(grid, 1.0, 40, 0.5, mp.gaussian(grid, 0.4, 0.1), coupling=mp.LocalPower(2.0),
                             potential=pot1, drift=drift, terminal_cost=mp.QuadraticTerminalCost(1.0, 0.7),
                             exit_cost=0.7 if kind == "1d-exit" else 0.0)
    if kind == "3d":
        grid = mp.Grid([(0, 1)] * 3, (10, 12, 9), ["reflecting", "periodic", "reflecting"])
        return mp.MFGProblem(grid, 0.5, 8, 0.5, mp.gaussian(grid, (0.4, 0.5, 0.5), (0.2,) * 3),
                             coupling=mp.LocalPower(1.0), drift=mp.LinearDrift(0.7),
                             potential=lambda x, y, z, t: np.cos(2 * np.pi * x) * np.sin(2 * np.pi * y))
    bc = {"2d": "reflecting", "2d-periodic": ["periodic", "reflecting"],
          "2d-exit": [("reflecting", "exit"), "reflecting"]}[kind]
    grid = mp.Grid([(0, 1), (0, 1)], (24, 20), bc)
    return mp.MFGProblem(grid, 0.5, 16, 0.5, mp.gaussian(grid, (0.4, 0.5), (0.12, 0.15)),
                         coupling=mp.LocalPower(1.5), drift=mp.LinearDrift(0.8),
                         potential=lambda x, y, t: np.cos(2 * np.pi * x) * np.cos(np.pi * y) + t * x,
                         exit_cost=0.6 if kind == "2d-exit" else 0.0)


def _numpy_split_residuals(p, sol, f, m, uT):
    """Independent reference for the relative split residuals (numpy shifts over rows from
    kernels.axis_coefficients and costs from kernels.axis_source, one axis and level at a time)."""
    from mfg_pde.fd import kernels as K
    from mfg_pde.fd.operator import as3, kernel_data
    kd = kernel_data(p, exits_supported=True)
    sh, dt = kd.shape3, kd.dt
    u, f3, m3 = as3(sol.u, 1, sh), as3(f, 1, sh), as3(m, 1, sh)
    rh = sc = rf = sf = 0.0
    for n in range(p.Nt):
        dn = kd.drift[0] if kd.drift.shape[0] == 1 else kd.drift[n]
        prev, x = u[n + 1] + dt * f3[n], m3[n + 1]
        for k in range(kd.ndim):
            s = u[n] if k == kd.ndim - 1 else sol.states[n, k]

            def at(a, d):  # a[i + d] along axis k; zero beyond a wall
                r = np.roll(a, -d, axis=k)
                if not kd.periodic[k]:
                    idx = [slice(None)] * 3
                    idx[k] = -1 if d == 1 else 0
                    r[tuple(idx)] = 0.0
                return r

            lo, di, up, cost = (np.zeros(sh) for _ in range(4))
            K.axis_coefficients(s, dn[k], k, kd.axis(k, dt), lo, di, up)
            K.axis_source(s, dn[k], k, kd.axis(k, dt), cost)
            rhs = prev + dt * cost
            rh = max(rh, np.abs(di * s + lo * at(s, -1) + up * at(s, 1) - rhs).max())
            sc = max(sc, np.abs(rhs).max())
            x = di * x + at(up * x, -1) + at(lo * x, 1)  # (M^T x)_i = up_{i-1} x_{i-1} + di_i x_i + lo_{i+1} x_{i+1}
            prev = s
        rf, sf = max(rf, np.abs(x - m3[n]).max()), max(sf, np.abs(m3[n]).max())
    tscale = np.abs(uT).max()
    terminal = np.abs(sol.u[-1] - uT).max() / (tscale if tscale > 0 else 1.0)
    return max(rh / sc, terminal), rf / sf


@pytest.mark.parametrize("kind", ["1d", "1d-drift", "1d-periodic", "1d-exit", "2d", "2d-periodic", "2d-exit", "3d"])
def test_split_residuals_match_a_numpy_reference(kind):
    """split_residuals (one fused pass: pair_residual on any
    grid) gives the split HJB/FP residuals of an independent numpy evaluation, for a pair that solves
    neither equation exactly: u from loose Newton solves (an error in every substep, exit rows with a
    non-zero exit cost), m perturbed.  candidate_residuals is that evaluation with f = F(m_hat)."""
    from mfg_pde.iterate.fixed_point import candidate_residuals
    from mfg_pde.fd.split_residuals import relative_residuals
    from mfg_pde.fd.fp import solve_fp
    from mfg_pde.fd.hjb import solve_hjb
    p = _fused_case(kind)
    m = np.repeat(p.m0[None], p.Nt + 1, axis=0)
    f, uT = p.running_cost(m), p.terminal_values(m[-1])
    sol = solve_hjb(p, f, uT, tol=1e-3)  # loose: residuals well above 0 in every substep
    m_hat = solve_fp(p, sol)
    m_hat[3] *= 1.01  # a pair that is not FP-exact either
    hjb, fp = relative_residuals(p, sol, f, m_hat, uT)
    ref_hjb, ref_fp = _numpy_split_residuals(p, sol, f, m_hat, uT)
    assert hjb == pytest.approx(ref_hjb, rel=1e-10) and hjb > 1e-8
    assert fp == pytest.approx(ref_fp, rel=1e-10) and fp > 1e-4
    f_hat, uT_hat = p.running_cost(m_hat), p.terminal_values(m_hat[-1])
    assert candidate_residuals(p, sol, m_hat) == pytest.approx(
        _numpy_split_residuals(p, sol, f_hat, m_hat, uT_hat), rel=1e-10)
