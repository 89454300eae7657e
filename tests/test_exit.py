"""Exit (absorbing / Dirichlet) boundaries: the discretisation against an independent numpy reference,
discrete duality, the outflow balance, closed forms with observed orders, unsupported solvers, HDF5,
and the `exit-room` case through the command line."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde import cli
from mfg_pde import io as mio
from mfg_pde.diagnostics.exploitability import nash_gap
from mfg_pde.fd.fp import fp_residual, solve_fp
from mfg_pde.fd.hjb import hjb_residual, solve_hjb
from mfg_pde.diagnostics.matrices import step_factors, step_operator
from mfg_pde.diagnostics.outflow import attach_outflow, outflow_history
from mfg_pde.diagnostics.unsplit_residuals import pde_residuals


# ---------------------------------------------------------------------------------- numpy reference
def _padded(s, side_bc, side_g):
    """s (n, ...) with one ghost row at each end: exit -> its exit cost, reflecting -> mirror, periodic -> wrap."""
    lo = {"exit": np.full_like(s[:1], side_g[0]), "reflecting": s[:1], "periodic": s[-1:]}[side_bc[0]]
    hi = {"exit": np.full_like(s[:1], side_g[1]), "reflecting": s[-1:], "periodic": s[:1]}[side_bc[1]]
    return np.concatenate([lo, s, hi])


def ref_substep(pb, s, b, k):
    """Independent numpy reference of the split substep along axis k at the state s (grid shape):

        F(s) = s + dt [-nu D2 s + (min(D+s, 0)^2 + max(D-s, 0)^2)/2 - b+ D+s + b- D-s]

    with ghost values (exit: u = exit cost; reflecting: mirror; periodic: wrap), and the dense matrix M
    of the linearisation (rows lower/diag/upper as in docs/method.md, section 'HJB step'; wall rows: lower/upper 0;
    exit rows:
    the ghost coefficient stays in the diagonal, no ghost column).  The HJB substep is F(s_k) = s_{k-1}."""
    grid, nu, dt = pb.grid, pb.nu, pb.dt
    h = grid.spacing[k]
    sides = grid.bc_sides[k]
    g = [0.0 if np.isnan(v) else v for v in pb.exit_costs[k]]
    s2 = np.moveaxis(s, k, 0)
    b2 = np.moveaxis(b, k, 0) if b is not None else np.zeros_like(s2)
    sp = _padded(s2, sides, g)
    Dp = (sp[2:] - sp[1:-1]) / h
    Dm = (sp[1:-1] - sp[:-2]) / h
    bp, bm = np.maximum(b2, 0.0), np.maximum(-b2, 0.0)
    F = s2 + dt * (-nu * (Dp - Dm) / h + 0.5 * (np.minimum(Dp, 0) ** 2 + np.maximum(Dm, 0) ** 2) - bp * Dp + bm * Dm)
    Ap = np.minimum(Dp, 0.0) - bp
    Bm = np.maximum(Dm, 0.0) + bm
    lower = dt * (-nu / h ** 2 - Bm / h)
    upper = dt * (-nu / h ** 2 + Ap / h)
    n = s2.shape[0]
    if sides[0] == "reflecting":
        lower[0] = 0.0
    if sides[1] == "reflecting":
        upper[n - 1] = 0.0
    diag = 1.0 - lower - upper
    idx = np.moveaxis(np.arange(grid.size).reshape(grid.shape), k, 0)
    M = np.zeros((grid.size, grid.size))
    M[idx.ravel(), idx.ravel()] = diag.ravel()
    for off, coef, end, side in ((-1, lower, 0, sides[0]), (1, upper, n - 1, sides[1])):
        nb = np.roll(idx, -off, axis=0)  # neighbour index i + off (wrapped)
        keep = np.ones(idx.shape, dtype=bool)
        if side != "periodic":
            keep[end] = False   # wall: no entry; exit: the ghost column is not part of M
        M[idx[keep], nb[keep]] += coef[keep]
    return np.moveaxis(F, 0, k), M


def _problem(shape, bc, Nt=5, T=0.4, sigma=0.5, drift=True, exit_cost=None):
    grid = mp.Grid([(-1.0, 1.0)] * len(shape), shape, bc)
    if exit_cost is None:
        exit_cost = [tuple(0.4 + 0.3 * (2 * k + j) if s == "exit" else None for j, s in enumerate(sides))
                     for k, sides in enumerate(grid.bc_sides)]
    m0 = mp.gaussian(grid, 0.1, max(0.45, 1.5 * max(grid.spacing)))

    def b(*args):
        *xs, t = args
        return [0.8 * np.sin(2 * x + t) - 0.3 for x in xs]

    pot = lambda *args: 1.0 + 0.5 * sum(x ** 2 for x in args[:-1])  # noqa: E731
    return mp.MFGProblem(grid, T, Nt, sigma, m0, potential=pot, drift=b if drift else None,
                         terminal_cost=lambda *xs: 0.5 + 0.3 * np.cos(sum(xs)), exit_cost=exit_cost)


REF_CASES = [((11,), "exit"), ((12,), ("exit", "reflecting")), ((9, 8), [("reflecting", "exit"), ("exit", "exit")]),
             ((8, 7), ["exit", "periodic"]), ((5, 4, 6), [("exit", "reflecting"), "reflecting", ("reflecting", "exit")])]


@pytest.mark.parametrize("shape,bc", REF_CASES)
def test_kernels_match_an_independent_reference_and_fp_is_the_transpose(shape, bc):
    pb = _problem(shape, bc)
    f = pb.running_cost(None)
    sol = solve_hjb(pb, f, pb.terminal_values(None), tol=1e-14)
    m = solve_fp(pb, sol)
    d = pb.grid.ndim
    drift = pb.drift_steps()
    for n in range(pb.Nt):
        prev = sol.u[n + 1] + pb.dt * f[n]
        kernel_mats = step_factors(pb, sol.u[n], n, sol.states[n])
        P_ref = np.eye(pb.grid.size)
        for k in range(d):
            s_k = sol.u[n] if k == d - 1 else sol.states[n, k].reshape(pb.grid.shape)
            F, M = ref_substep(pb, s_k, drift[min(n, drift.shape[0] - 1), k], k)
            # the HJB substep solved by the kernels is the reference equation F(s_k) = s_{k-1}
            np.testing.assert_allclose(F, prev, rtol=0, atol=1e-12 * np.abs(prev).max())
            # the kernels' operator is the reference matrix: M-matrix, row sums >= 1
            np.testing.assert_allclose(kernel_mats[k].toarray(), M, rtol=0, atol=1e-13)
            off = M - np.diag(np.diag(M))
            assert off.max() <= 0.0 and M.sum(axis=1).min() >= 1.0 - 1e-13
            P_ref = P_ref @ M
            prev = s_k
        # FP: the exact transpose of the reference step, and the discrete duality <m^{n+1}, P x> = <m^n, x>
        m_ref = np.linalg.solve(P_ref.T, m[n].ravel())
        np.testing.assert_allclose(m[n + 1].ravel(), m_ref, rtol=0, atol=1e-12 * m[n].max())
        P = step_operator(pb, sol.u[n], n, sol.states[n])
        x = np.cos(np.arange(pb.grid.size))
        assert abs(m[n + 1].ravel() @ (P @ x) - m[n].ravel() @ x) < 1e-12
    assert hjb_residual(pb, sol, f) < 1e-12
    assert fp_residual(pb, sol, m) < 1e-12
    # the residual sees the exit terms: the same u is not a solution for another exit cost
    other = _problem(shape, bc, exit_cost=0.0)
    assert hjb_residual(other, sol, f) > 1e-4
    out = outflow_history(pb, sol, m)
    assert out.balance_error < 1e-13 and out.cumulative[-1] > 1e-4
    assert m.min() >= 0.0


@pytest.mark.parametrize("shape,bc,k", [((21,), "exit", 0), ((21,), ("reflecting", "exit"), 0),
                                        ((9, 7), [("exit", "reflecting"), ("exit", "exit")], 1)])
def test_newton_is_policy_iteration_at_exit_rows(shape, bc, k):
    """d/du [M(u) u - dt c(u)] = M(u) still holds with the exit ghost (Newton = policy iteration):
    central differences of the reference substep map F against the kernels' assembled M_k."""
    pb = _problem(shape, bc)
    grid = pb.grid
    X = grid.mesh()
    u = sum((x - 0.13 * (j + 1)) ** 2 for j, x in enumerate(X)) + 0.25 * X[0]   # no zero differences
    b = pb.drift_steps()[0, k]
    _, M_ref = ref_substep(pb, u, b, k)
    shape3 = grid.shape + (1,) * (3 - grid.ndim)
    states = np.broadcast_to(u.reshape(shape3), (max(grid.ndim - 1, 0),) + shape3).copy()
    M = step_factors(pb, u, 0, states)[k].toarray()
    np.testing.assert_allclose(M, M_ref, rtol=0, atol=1e-13)
    J = np.empty_like(M)
    eps = 1e-7
    for j in range(grid.size):
        e = np.zeros(grid.size)
        e[j] = eps
        Fp, _ = ref_substep(pb, u + e.reshape(grid.shape), b, k)
        Fm, _ = ref_substep(pb, u - e.reshape(grid.shape), b, k)
        J[:, j] = (Fp - Fm).ravel() / (2 * eps)
    np.testing.assert_allclose(J, M, rtol=0, atol=1e-6)
    # and the kernels' Newton converges in a few (policy) iterations
    its = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None), tol=1e-13).newton
    assert np.all(its > 0) and its.max() <= 8


# ---------------------------------------------------------------------------------- outflow balance
@pytest.mark.parametrize("shape,bc", [((60,), ("exit", "reflecting")), ((24, 20), [("reflecting", "exit"), "exit"])])
def test_outflow_balance_of_a_coupled_game(shape, bc):
    grid = mp.Grid([(0.0, 1.0)] * len(shape), shape, bc)
    m0 = mp.gaussian(grid, 0.4, 0.12)
    pb = mp.MFGProblem(grid, 1.0, 30, 0.4, m0, coupling=mp.LocalPower(0.5), potential=np.ones(grid.shape),
                       terminal_cost=np.full(grid.shape, 0.5), exit_cost=0.1)
    res = mp.solve(pb, method="anderson", tol=1e-9)
    assert res.converged, res.status
    out = attach_outflow(res, pb)
    assert res.outflow is out
    assert out.balance_error < 1e-13
    assert res.balance_error() == out.balance_error and "outflow balance error" in res.summary()
    mass = res.mass()
    assert np.all(np.diff(mass) <= 1e-15) and mass[-1] < 0.9   # mass only leaves
    assert np.all(out.per_side >= 0.0) and np.all(np.diff(out.cumulative) >= 0.0)
    for k in range(grid.ndim):
        for j in range(2):
            if (k, j) not in grid.exit_sides:
                assert np.all(out.per_side[:, k, j] == 0.0)
    assert out.sides == [f"{grid.axis_names[k]} {('lo', 'hi')[j]}" for k, j in grid.exit_sides]
    assert res.m.min() >= 0.0
    assert 0.0 < out.evacuated_fraction == pytest.approx(1.0 - mass[-1] / mass[0], abs=1e-13)
    # the coupling loop's fused reduction: with the cumulative outflow its "mass error" is the balance error
    from mfg_pde.fd.kernels import coupling_stats

    Nt = pb.Nt
    mm, uu = res.m.reshape(Nt + 1, -1), res.u.reshape(Nt + 1, -1)
    assert coupling_stats(mm, mm, uu, grid.cell_volume, 1.0)[3] > 0.1             # mass leaves
    assert coupling_stats(mm, mm, uu, grid.cell_volume, 1.0, out.cumulative)[3] < 1e-13
    # the exit terms are consistent in the other solvers built on the kernels
    gap = nash_gap(pb, res.u, res.m, res.hjb_solution.states, details=True)
    assert gap["exploitability"] >= -1e-9
    assert gap["policy_cost"] == pytest.approx(gap["policy_cost_forward"], rel=1e-11)   # exit payments counted
    r = pde_residuals(pb, res.u, res.m)
    if grid.ndim == 1:   # no splitting in 1-D: the core solution satisfies the unsplit equations
        assert r["fp_max"] < 1e-10 and r["hjb_max"] < 1e-6
    else:
        assert r["fp"] < 0.5 and r["hjb"] < 0.05   # O(dt) splitting error only


# ---------------------------------------------------------------------------------- closed forms
def exit_time_value(x, nu, g=0.0):
    """u on [0, 1] solving -nu u'' + |u'|^2/2 = 1, u(0) = u(1) = g (the stationary exit-time problem with
    running cost 1 and exit cost g).  Hopf-Cole u = g - 2 nu log w: 2 nu^2 w'' = w, w(0) = w(1) = 1, so
    w = cosh(k (x - 1/2)) / cosh(k/2), k = 1 / (sqrt(2) nu).  nu -> 0: u -> g + sqrt(2) min(x, 1 - x)."""
    k = 1.0 / (np.sqrt(2.0) * nu)
    return g - 2.0 * nu * (np.log(np.cosh(k * (x - 0.5))) - np.log(np.cosh(0.5 * k)))


def test_exit_time_problem_matches_hopf_cole_closed_form_first_order():
    """Long horizon (implicit Euler steps dt = 1 relax to the discrete stationary solution), running cost 1,
    exit cost 0.3 on both sides of [0, 1]: u(0, x) -> the closed form, error O(h) (the ghost sits h/2
    beyond the wall: error ~ |u'| h / 2 = h / sqrt 2)."""
    sigma, g = 0.3, 0.3
    errors = []
    Ns = (25, 50, 100, 200)
    for N in Ns:
        grid = mp.Grid([(0.0, 1.0)], N, "exit")
        pb = mp.MFGProblem(grid, 20.0, 20, sigma, mp.gaussian(grid, 0.5, 0.1), potential=np.ones(N),
                           exit_cost=g)
        sol = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None), tol=1e-13)
        assert np.abs(sol.u[0] - sol.u[1]).max() < 1e-12   # stationary
        errors.append(np.abs(sol.u[0] - exit_time_value(grid.axes[0], pb.nu, g)).max())
    errors = np.array(errors)
    assert np.all(errors < 0.75 / np.array(Ns))
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all((orders > 0.95) & (orders < 1.05)), orders


def test_pure_diffusion_survival_matches_closed_form_first_order():
    """u = 0 (no running/exit/terminal cost): the FP is the heat equation with absorbing walls on [0, 1];
    m0 ~ sin(pi x) is its first mode, so mass(t) = exp(-nu pi^2 t).  h and dt refined together: order 1;
    both walls let out the same mass (symmetry) and the balance holds to round-off."""
    sigma = 0.5
    nu = sigma ** 2 / 2
    errors = []
    for N in (20, 40, 80, 160):
        grid = mp.Grid([(0.0, 1.0)], N, "exit")
        pb = mp.MFGProblem(grid, 1.0, N, sigma, mp.normalise(grid, np.sin(np.pi * grid.axes[0])))
        sol = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None))
        assert np.all(sol.u == 0.0)
        m = solve_fp(pb, sol)
        out = outflow_history(pb, sol, m)
        assert out.balance_error < 1e-12
        np.testing.assert_allclose(out.per_side[:, 0, 0], out.per_side[:, 0, 1], rtol=1e-9)
        errors.append(np.abs(out.mass - np.exp(-nu * np.pi ** 2 * pb.t)).max())
    errors = np.array(errors)
    assert errors[-1] < 0.01
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(orders > 0.9), orders


# ---------------------------------------------------------------------------------- other solvers
def test_solvers_without_exit_support_raise_clearly():
    grid = mp.Grid([(0.0, 1.0)], 30, ("reflecting", "exit"))
    m0 = mp.gaussian(grid, 0.4, 0.1)
    pb = mp.MFGProblem(grid, 0.5, 10, 0.4, m0, coupling=mp.LocalPower(0.5), potential=np.ones(30))
    with pytest.raises(NotImplementedError, match="exit"):
        mp.solve(pb, method="newton")
    res = mp.solve(pb, method="auto", tol=1e-8)   # the Anderson phase handles exits
    assert res.converged, res.status
    with pytest.raises(NotImplementedError, match="exit"):
        mp.PlanningProblem(grid, 0.5, 10, 0.4, m0, m0)
    from mfg_pde.particles.agents import simulate_feedback
    with pytest.raises(NotImplementedError, match="exit"):
        simulate_feedback(res, N=10)
    from mfg_pde.fd.operator import kernel_data
    with pytest.raises(NotImplementedError, match="exit"):
        kernel_data(pb)            # a caller that does not declare exit support


def test_fp_transport_with_exits():
    from mfg_pde.fd.transport import fp_transport

    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], 16, [("reflecting", "exit"), "reflecting"])
    m0 = mp.gaussian(grid, (0.5, 0.5), (0.12, 0.12))
    m = fp_transport(grid, m0, 1.0, 10, 0.02, lambda x, y, t: (np.ones_like(x), np.zeros_like(y)))
    mass = grid.integrate(m)
    assert m.min() >= 0.0 and np.all(np.diff(mass) < 0) and mass[-1] < 0.7


def test_hdf5_round_trip_with_outflow_and_obstacle(tmp_path):
    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], 16, [("reflecting", "exit"), "reflecting"])
    pb = mp.MFGProblem(grid, 0.5, 8, 0.4, mp.gaussian(grid, (0.5, 0.5), (0.12, 0.12)), potential=np.ones(grid.shape))
    res = mp.solve(pb, tol=1e-8)
    out = attach_outflow(res, pb)
    res.obstacle = grid.mesh()[0] > 0.8
    path = tmp_path / "exit.h5"
    res.save(path)
    back = mp.load(path)
    assert back.grid == grid and back.grid.bc == (("reflecting", "exit"), "reflecting")
    for key in ("mass", "cumulative", "per_side"):
        np.testing.assert_array_equal(getattr(back.outflow, key), getattr(out, key))
    assert back.outflow.sides == ["x hi"]
    assert back.balance_error() == out.balance_error
    np.testing.assert_array_equal(back.obstacle, res.obstacle)
    meta = mio.read_metadata(path)
    assert meta["outflow"]["sides"] == ["x hi"] and meta["grid"]["bc"] == [["reflecting", "exit"], "reflecting"]
    with h5py.File(path) as f:
        assert f["outflow/evacuated"].shape == (9,) and f["outflow/per_side"].shape == (8, 2, 2)
        assert f["outflow"].attrs["balance_error"] < 1e-13
        assert f["obstacle"].dtype == np.uint8


# ---------------------------------------------------------------------------------- the exit-room case
def test_exit_room_case_cli_run_hdf5_and_figure(tmp_path, capsys):
    h5 = tmp_path / "room.h5"
    png = tmp_path / "room.png"
    rc = cli.main(["run", "exit-room", "-q", "--set", "N=24", "--set", "Nt=20", "--set", "kappa=2",
                   "--out", str(h5)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "outflow balance" in out and "evacuated" in out and "PASS" in out and "mass error" not in out
    with h5py.File(h5) as f:
        assert json.loads(f.attrs["params"])["kappa"] == 2.0
        # a reflecting box with a door in the right wall (x hi) and a solid pillar
        assert json.loads(f.attrs["grid"])["bc"] == ["reflecting", "reflecting"]
        doors = json.loads(f["problem"].attrs["doors"])
        assert [(d["axis"], d["side"], d["name"]) for d in doors] == [(0, 1, "door")]
        assert f["m"].shape == (21, 24, 24) and f["obstacle"].shape == (24, 24)
        np.testing.assert_array_equal(f["problem/obstacles"][()].astype(bool), f["obstacle"][()].astype(bool))
        g = f["outflow"]
        assert g.attrs["balance_error"] < 1e-12 and json.loads(g.attrs["sides"]) == ["x hi"]
        assert json.loads(g.attrs["doors"]) == ["door"] and g["per_door"].shape == (20, 1)
        assert 0.5 < g.attrs["evacuated_fraction"] <= 1.0
        ev = g["evacuated"][()]
        assert ev[0] == 0.0 and np.all(np.diff(ev) >= 0)
        np.testing.assert_allclose(g["balance"][()], 0.0, atol=1e-12)
    assert cli.main(["info", str(h5)]) == 0
    assert "outflow: evacuated" in capsys.readouterr().out
    assert cli.main(["plot", str(h5), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    from mfg_pde.plotting import plot_result

    fig = plot_result(mp.load(h5))
    titles = [a.get_title() for a in fig.axes]
    assert sum("% out" in t for t in titles) == 4                      # density snapshots over the room
    assert any(t.startswith("evacuated fraction") for t in titles)
    snap = next(a for a in fig.axes if "% out" in a.get_title())
    assert snap.collections and len(snap.collections) >= 2            # density mesh + obstacle outline


def test_exit_room_case_in_validate_and_parameters(capsys):
    from mfg_pde import cases

    case = cases.get("exit-room")
    assert not case.has_oracle and "exit-room" in cases.names()
    assert "exit-room" not in [c.name for c in cases.all_cases() if c.has_oracle]   # default validate skips it
    with pytest.raises(cases.CaseError, match="door"):
        case.resolve({"door": "1.5"})
    assert cli.main(["validate", "--case", "exit-room", "-q"]) == 0
    out = capsys.readouterr().out
    assert "exit-room" in out and "outflow balance" in out and "3 passed, 0 failed" in out
    assert "door carries the outflow" in out and "no mass in the walls" in out
