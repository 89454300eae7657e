"""Planning with the congestion Hamiltonian H = |p|^2 / (2 (1 + c m)) by Newton (planning.congestion):
exact Jacobian vs finite differences, c = 0 is the core scheme (to round-off) and agrees with the Sinkhorn
solver to first order, the discrete equations hold (checked by an independent flux-form evaluation), the
congestion acts in the expected direction, self-convergence at c > 0, result fields, failures, bad input."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import mfg_pde as mp
from mfg_pde.cases import get
from mfg_pde.cases.planning_congestion import floored_gaussian
from mfg_pde.planning.congestion import solve_planning_newton
from mfg_pde.fd.fp import solve_fp
from mfg_pde.fd.hjb import solve_hjb
from mfg_pde.planning.congestion import PlanningSystem, gauge_shift


def orders(E):
    E = np.asarray(E, dtype=float)
    return np.log2(E[:-1] / E[1:])


def bridge(N, Nt=None, L=4.0, bc="reflecting", floor=1e-3, **kw):
    """Gaussian bridge N(-1, 0.5^2) -> N(1.5, 0.4^2) (with a floor: m1 > 0 everywhere), T = 1, sigma = 0.7."""
    g = mp.Grid([(-L, L)], N, bc=bc)
    m0 = floored_gaussian(g, -1.0, 0.5, floor)
    m1 = floored_gaussian(g, 1.5, 0.4, floor)
    return mp.PlanningProblem(g, 1.0, N if Nt is None else Nt, 0.7, m0, m1, **kw)


def independent_residuals(pb, c, u, m):
    """The discrete equations written out directly (flux form for FP), not through PlanningSystem:

    (u^n - u^{n+1})/dt - nu D2 u^n + [min(D+u,0)^2 + max(D-u,0)^2] / (2 (1 + c m^{n+1})) - b+ D+u + b- D-u = f^n
    (m^{n+1} - m^n)/dt - nu D2 m^{n+1} + (Phi_{i+1/2} - Phi_{i-1/2}) / h = 0,
    Phi_{i+1/2} = m_i (b+_i - w_i min(D+u_i, 0)) - m_{i+1} (w_{i+1} max(D-u_{i+1}, 0) + b-_{i+1})
    (mirror ghosts / zero wall flux on a reflecting grid, wrap-around on a periodic one)."""
    g = pb.grid
    h, dt, nu, Nt, N = g.spacing[0], pb.dt, pb.nu, pb.Nt, g.size
    periodic = g.bc[0] == "periodic"
    f = pb.running_cost(m)
    b = pb.drift_steps()
    b = np.zeros((Nt, N)) if b is None else np.broadcast_to(b[:, 0], (Nt, N))
    rH = np.empty((Nt, N))
    rF = np.empty((Nt, N))
    for n in range(Nt):
        un, mn1 = u[n], m[n + 1]
        if periodic:
            up_, um_ = np.roll(un, -1), np.roll(un, 1)
            mp_, mm_ = np.roll(mn1, -1), np.roll(mn1, 1)
        else:
            up_ = np.concatenate([un[1:], un[-1:]])
            um_ = np.concatenate([un[:1], un[:-1]])
            mp_ = np.concatenate([mn1[1:], mn1[-1:]])
            mm_ = np.concatenate([mn1[:1], mn1[:-1]])
        dp, dm = (up_ - un) / h, (un - um_) / h
        w = 1.0 / (1.0 + c * mn1)
        bp, bm = np.maximum(b[n], 0), np.maximum(-b[n], 0)
        rH[n] = ((un - u[n + 1]) / dt - nu * (up_ - 2 * un + um_) / h ** 2
                 + w * (np.minimum(dp, 0) ** 2 + np.maximum(dm, 0) ** 2) / 2 - bp * dp + bm * dm - f[n])
        vr = bp - w * np.minimum(dp, 0)            # rightward speed out of i
        vl = w * np.maximum(dm, 0) + bm            # leftward speed out of i
        if not periodic:
            vr[-1] = 0.0
            vl[0] = 0.0
        flux = mn1 * vr - np.roll(mn1 * vl, -1)    # Phi_{i+1/2}
        if not periodic:
            flux[-1] = 0.0
        rF[n] = (mn1 - m[n]) / dt - nu * (mp_ - 2 * mn1 + mm_) / h ** 2 + (flux - np.roll(flux, 1)) / h
    return rH, rF


# ----------------------------------------------------------------------------- the Jacobian
def small_problems():
    for bc in ("reflecting", "periodic"):
        for name, kw in [("plain", {}),
                         ("local+V+drift", dict(coupling=mp.LocalPower(2.0, 2.0), drift=mp.LinearDrift(0.7),
                                                potential=lambda x, t: 0.3 * np.sin(x + t))),
                         ("mean-interaction", dict(coupling=mp.QuadraticInteraction(1.5))),
                         ("kernel", dict(coupling=mp.KernelInteraction(lambda d: np.exp(-d ** 2))))]:
            g = mp.Grid([(-3, 3)], 16, bc=bc)
            yield f"{bc}-{name}", mp.PlanningProblem(g, 1.0, 5, 0.8, mp.gaussian(g, -0.3, 0.6),
                                                     mp.gaussian(g, 0.4, 0.58), **kw)


@pytest.mark.parametrize("c", [0.0, 0.9])
@pytest.mark.parametrize("name,pb", list(small_problems()), ids=[n for n, _ in small_problems()])
def test_jacobian_matches_finite_differences_of_the_residual(name, pb, c, rng):
    S = PlanningSystem(pb, c)
    Nt, N = pb.Nt, pb.grid.size
    u = rng.normal(size=(Nt + 1, N))
    m = pb.m0[None] * (1.0 + 0.3 * rng.uniform(-1, 1, size=(Nt + 1, N)))
    S.complete(u, m)
    z = S.pack(u, m)
    J = S.jacobian(u, m).toarray()

    def F(zz):
        uu, mm = S.unpack(zz)
        return S.residual_vector(S.evaluate(uu, mm))

    fd = np.empty_like(J)
    for j in range(z.size):
        e = np.zeros(z.size)
        e[j] = 1e-6
        fd[:, j] = (F(z + e) - F(z - e)) / 2e-6
    assert np.abs(fd - J).max() <= 1e-7 * np.abs(J).max(), name
    # the Newton step (equilibrated, mean interactions bordered) solves J d = -R
    ev = S.evaluate(u, m)
    du, drel = S.direction(u, m, ev)
    d = np.zeros(z.size)
    d[S.ucol.ravel()] = du.ravel()
    d[S.mcol.ravel()] = (np.abs(m) * drel)[1:Nt].ravel()
    ref = spla.spsolve(S.jacobian(u, m).tocsc(), -F(z))
    np.testing.assert_allclose(d, ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


def test_c_zero_fp_block_is_the_transpose_of_the_hjb_block(rng):
    """c = 0, interior levels: dR_F/dm^{n+1} = (dR_H/du^n)^T (the FP equation is the exact adjoint)."""
    pb = dict(small_problems())["reflecting-plain"]
    S = PlanningSystem(pb, 0.0)
    u = rng.normal(size=(pb.Nt + 1, pb.grid.size))
    m = np.broadcast_to(pb.m0, u.shape).copy()
    J = S.jacobian(u, m).toarray()
    for n in range(pb.Nt - 1):
        A = J[np.ix_(S.hrow[n], S.ucol[n])]
        B = J[np.ix_(S.frow[n], S.mcol[n])]
        np.testing.assert_array_equal(B, A.T)


# ----------------------------------------------------------------------------- c = 0
@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
def test_c_zero_is_the_core_scheme_to_round_off(bc):
    """The core terminal-cost solver with G = u(T) of the Newton result reproduces u and m -- and so hits
    m(T) = m1 -- to round-off: at c = 0 the planning scheme IS the core scheme."""
    pb = bridge(60, bc=bc, coupling=mp.LocalPower(0.5), potential=lambda x, t: 0.3 * np.cos(x),
                drift=mp.LinearDrift(0.4))
    r = solve_planning_newton(pb)
    assert r.converged, r.status
    core = mp.MFGProblem(pb.grid, pb.T, pb.Nt, pb.sigma, pb.m0, coupling=pb.coupling, potential=pb.potential,
                         drift=pb.drift, terminal_cost=r.u[-1])
    sol = solve_hjb(core, core.running_cost(r.m), r.u[-1])
    m = solve_fp(core, sol)
    assert np.abs(sol.u - r.u).max() < 1e-10 * np.abs(r.u).max()
    assert np.abs(m - r.m).max() < 1e-10 * r.m.max()
    assert np.abs(m[-1] - pb.m1).max() < 1e-10 * pb.m1.max()


def test_c_zero_agrees_with_sinkhorn_to_first_order():
    """The implicit-Euler Hopf-Cole/Sinkhorn solver discretises differently (linear scheme for
    phi = e^{-u/sigma^2}), so the two first-order solutions differ by O(h + dt), not round-off: the
    differences of densities (space-time L1), controls and (gauge-shifted) values, density-weighted, halve
    with h and dt."""
    diffs = []
    for N in (50, 100, 200):
        pb = bridge(N)
        r = solve_planning_newton(pb)
        s = mp.solve_planning(pb, time_scheme="euler")
        assert r.converged and s.converged
        g, dt = pb.grid, pb.dt
        w = 0.5 * (r.m + s.m)[:-1]
        dm = float(g.integrate(np.abs(r.m - s.m)).sum() * dt)
        da = float(g.integrate(w * np.abs(r.alpha - s.alpha)[:-1, :, 0]).sum() * dt)
        du = float(g.integrate(w * np.abs(gauge_shift(g, pb.m1, r.u) - gauge_shift(g, pb.m1, s.u))[:-1]).sum() * dt)
        diffs.append((dm, da, du))
    diffs = np.array(diffs)
    o = orders(diffs)
    assert np.all((o > 0.75) & (o < 1.3)), o
    assert diffs[-1, 0] < 0.03 and diffs[-1, 1] < 0.2
    assert diffs[0, 0] > 1e-2  # genuinely different schemes: not round-off


# ----------------------------------------------------------------------------- c > 0
@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
def test_discrete_equations_hold_for_c_positive(bc):
    pb = bridge(60, bc=bc, coupling=mp.LocalPower(0.5), potential=lambda x, t: 0.3 * np.cos(x),
                drift=mp.LinearDrift(0.4))
    c = 2.5
    r = solve_planning_newton(pb, c=c)
    assert r.converged, r.status
    assert r.final_residual <= 1e-10 and r.planning.stages == [0.0, c]
    rH, rF = independent_residuals(pb, c, r.u, r.m)
    assert np.abs(rH).max() * pb.dt <= 1e-9 * np.abs(r.u).max()
    assert np.abs(rF).max() * pb.dt <= 1e-9 * r.m.max()
    assert r.planning.terminal_mismatch == 0.0 and np.array_equal(r.m[-1], pb.m1)
    assert r.mass_error() < 1e-12
    assert r.planning.positive and r.m.min() > 0


def test_congestion_slows_the_dense_crowd_and_spreads_it():
    """c > 0 makes speed expensive where m is large: the crowd travels more spread out (larger variance in
    the middle of the horizon), its speed in dense regions (m^2-weighted) drops, and the plain kinetic energy
    E = int m |alpha|^2 rises above the c = 0 value (c = 0 minimises it for these end densities)."""
    pb = bridge(80)
    E, var, dense_speed = [], [], []
    for c in (0.0, 1.0, 3.0):
        r = solve_planning_newton(pb, c=c)
        assert r.converged and r.final_residual <= 1e-10
        m, speed = r.m[1:-1], np.abs(r.alpha[1:-1, :, 0])
        E.append(r.planning.energy_E)
        var.append(r.covariance()[pb.Nt // 2, 0, 0])
        dense_speed.append(float((m ** 2 * speed).sum() / (m ** 2).sum()))
    assert np.all(np.diff(E) > 0), E
    assert np.all(np.diff(var) > 0.05), var
    assert np.all(np.diff(dense_speed) < 0), dense_speed
    # the congested control is -u_x / (1 + c m), as result.alpha reports
    np.testing.assert_allclose(r.alpha[..., 0], -mp.result.gradient(pb.grid, r.u)[..., 0] / (1 + 3.0 * r.m))


def _self_convergence(levels, c=2.0):
    out = []
    for N in levels:
        r = solve_planning_newton(bridge(N), c=c)
        assert r.converged, r.status
        out.append((r.covariance()[N // 2, 0, 0], r.planning.energy_E))
    out = np.array(out)
    d = np.abs(np.diff(out, axis=0))
    return d[:-1] / d[1:]


def test_self_convergence_first_order_c_positive():
    """Variance at t = T/2 of the c = 2 solution on N = Nt = 40, 80, 160: successive differences halve."""
    ratio = _self_convergence((40, 80, 160))
    assert 1.6 < ratio[0, 0] < 2.5, ratio


@pytest.mark.slow
def test_self_convergence_first_order_c_positive_fine():
    ratio = _self_convergence((40, 80, 160, 320))
    assert np.all((ratio[:, 0] > 1.7) & (ratio[:, 0] < 2.4)), ratio
    assert np.all((ratio[:, 1] > 1.6) & (ratio[:, 1] < 3.0)), ratio


# ----------------------------------------------------------------------------- result and options
def test_result_fields_and_history():
    pb = bridge(50)
    r = solve_planning_newton(pb, c=1.0)
    assert r.converged and r.status == "converged"
    h = r.history
    for key in ("residual", "hjb_residual", "fp_residual", "line_search", "step_norm", "min_density", "c",
                "wall_time", "iteration"):
        assert len(h[key]) == len(h["residual"]), key
    assert np.all(np.diff(h["wall_time"]) >= 0)
    assert h["residual"][-1] <= 1e-10 and h["residual"][0] > 1e-6
    assert set(h["c"]) == {0.0, 1.0}
    assert r.iterations == int(np.sum(h["line_search"] > 0))
    assert abs(pb.grid.integrate(pb.m1 * r.u[-1])) < 1e-12 * np.abs(r.u).max()  # the gauge
    assert r.planning.terminal_mismatch == 0.0
    assert r.params["congestion_c"] == 1.0 and r.solver["method"] == "planning-newton"
    assert r.planning.kinetic_cost > 0 and r.planning.energy_E > 0


def test_progress_lines_are_numbered_like_the_result(capsys):
    """progress=True writes one line per Newton step on the mfg_pde logger (stderr), numbered by the steps
    taken (the result's ``iterations``), then the summary; quiet by default."""
    pb = bridge(50)
    r = solve_planning_newton(pb, c=1.0)
    assert capsys.readouterr().err == ""
    r = solve_planning_newton(pb, c=1.0, progress=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == r.summary()
    rows = [line for line in err[:-1] if line.split()[0].isdigit()]
    steps = [int(line.split()[0]) for line in rows]
    assert steps[-1] == r.iterations
    # one row per iterate: each stage's start, then the iterate after each step (no repeated final row)
    assert steps == sorted(steps) and len(steps) == len(r.history["residual"])
    assert not any("step nan" in line for line in rows)
    keys = [(int(line.split()[0]), line.split("c = ")[1].split(",")[0]) for line in rows]
    assert len(keys) == len(set(keys))
    assert sum(line.endswith(", start") for line in rows) == len(r.planning.stages)
    assert float(rows[-1].split()[1]) == pytest.approx(r.final_residual, rel=1e-3)
    assert all("c = " in line for line in err[1:-1])


@pytest.mark.parametrize("kw", [dict(initial="interpolate"), dict(density_update="linear"),
                                dict(density_update="log"), dict(continuation=False),
                                dict(c_steps=[0.5, 1.0])])
def test_options_reach_the_same_solution(kw):
    pb = bridge(40)
    ref = solve_planning_newton(pb, c=2.0)
    r = solve_planning_newton(pb, c=2.0, **kw)
    assert r.converged, r.status
    assert np.abs(r.m - ref.m).max() < 1e-8 * ref.m.max()
    assert np.abs(r.u - ref.u).max() < 1e-8 * np.abs(ref.u).max()
    if "c_steps" in kw:
        assert r.planning.stages == [0.0, 0.5, 1.0, 2.0]


def test_mean_interaction_is_bordered_and_matches_the_dense_solve():
    pb = bridge(40, coupling=mp.QuadraticInteraction(2.0))
    r = solve_planning_newton(pb, c=1.5)
    assert r.converged, r.status
    rH, rF = independent_residuals(pb, 1.5, r.u, r.m)
    assert np.abs(rF).max() * pb.dt <= 1e-9 * r.m.max()
    assert np.abs(rH).max() * pb.dt <= 1e-9 * np.abs(r.u).max()


def test_failed_continuation_stage_is_bisected():
    r = solve_planning_newton(bridge(50), c=30.0, max_iter=5)
    assert r.converged, r.status
    st = r.planning.stages
    assert st[0] == 0.0 and st[-1] == 30.0 and len(st) > 2 and np.all(np.diff(st) > 0)


def test_non_convergence_is_a_status_not_an_exception():
    r = solve_planning_newton(bridge(40), c=1.0, max_iter=1, continuation=False)
    assert not r.converged and r.status.startswith("not converged: max_iter = 1")
    assert np.all(np.isfinite(r.u)) and np.all(np.isfinite(r.m))
    # thin Gaussian tails (m1 spans ~50 orders of magnitude): no convergence, and the status says why
    g = mp.Grid([(-5, 5)], 50)
    pb = mp.PlanningProblem(g, 1.5, 50, 0.7, mp.gaussian(g, -1.0, 0.5), mp.gaussian(g, 1.5, 0.4))
    r = solve_planning_newton(pb, max_iter=3)
    assert not r.converged and "orders of magnitude" in r.status and "floor" in r.status


def test_case_runs_and_keeps_the_constraints():
    run = get("planning-congestion").run({"N": 50, "Nt": 50, "c": 1.0})
    assert run.passed, [(c.quantity, c.error) for c in run.checks]


# ----------------------------------------------------------------------------- bad input
def test_bad_input_names_the_parameter():
    pb = bridge(30)
    with pytest.raises(ValueError, match="c = -1"):
        solve_planning_newton(pb, c=-1.0)
    with pytest.raises(ValueError, match="c = nan"):
        solve_planning_newton(pb, c=float("nan"))
    with pytest.raises(ValueError, match="PlanningProblem"):
        solve_planning_newton(mp.MFGProblem(pb.grid, 1.0, 30, 0.7, pb.m0))
    with pytest.raises(ValueError, match="m_init"):
        solve_planning_newton(pb, m_init=np.ones((5, 30)))
    with pytest.raises(ValueError, match="c_steps"):
        solve_planning_newton(pb, c=1.0, c_steps=[0.5, 0.2])
    with pytest.raises(ValueError, match="density_update"):
        solve_planning_newton(pb, density_update="clip")
    g2 = mp.Grid([(-3, 3)] * 2, 16)
    pb2 = mp.PlanningProblem(g2, 1.0, 4, 1.0, mp.gaussian(g2, -0.3, 0.6), mp.gaussian(g2, 0.3, 0.6))
    with pytest.raises(NotImplementedError, match="1-D"):
        solve_planning_newton(pb2)


@pytest.mark.parametrize("edit,match", [
    (lambda m1: -m1, "negative"),
    (lambda m1: 3.0 * m1, "integrates to 3"),
    (lambda m1: np.where(np.arange(m1.size) < 3, 0.0, m1), "vanishes"),
    (lambda m1: m1 * (1 + 1e-9), "masses differing"),
])
def test_bad_end_density_is_refused_before_iterating(edit, match):
    pb = bridge(30)
    m1 = pb.m1.copy()
    pb.m1 = edit(m1)
    if match == "vanishes":
        pb.m1 = mp.normalise(pb.grid, pb.m1)
    with pytest.raises(ValueError, match=match):
        solve_planning_newton(pb)
