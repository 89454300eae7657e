"""Discrete duality, mass conservation (outflow balance with exits) and positivity of the HJB/FP kernels."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from scipy import sparse

import mfg_pde as mp
from mfg_pde.fd.fp import fp_residual, solve_fp
from mfg_pde.fd.hjb import hjb_residual, solve_hjb
from mfg_pde.fd import kernels
from mfg_pde.fd.kernels import axis_source
from mfg_pde.fd.operator import as3, kernel_data
from mfg_pde.diagnostics.matrices import step_factors, step_operator
from mfg_pde.diagnostics.outflow import outflow_history


def _problem(shape, bc, drift=True, Nt=6, T=0.3, sigma=0.6):
    bounds = [(-2.0, 2.0)] * len(shape)
    grid = mp.Grid(bounds, shape, bc)
    # exit sides: a different exit cost per side (0.7, 0.9, ...), so that the ghost terms are tested
    exit_cost = [tuple(0.7 + 0.2 * (2 * k + j) if s == "exit" else None for j, s in enumerate(sides))
                 for k, sides in enumerate(grid.bc_sides)]
    m0 = mp.gaussian(grid, 0.3, max(0.6, 1.5 * max(grid.spacing)))

    def b(*args):
        *xs, t = args
        return [np.sin(x + t) - 0.5 * x for x in xs]

    pot = lambda *args: 0.5 * sum(x ** 2 for x in args[:-1]) * (1 + args[-1])  # noqa: E731
    return mp.MFGProblem(grid, T, Nt, sigma, m0, potential=pot, drift=b if drift else None,
                         terminal_cost=lambda *xs: np.cos(sum(xs)), exit_cost=exit_cost)


CASES = [((40,), "reflecting"), ((40,), "periodic"), ((12, 9), "reflecting"), ((12, 9), ("periodic", "reflecting")),
         ((6, 5, 7), "reflecting"), ((6, 5, 7), "periodic"),
         # exit (absorbing) sides, per axis and per side
         ((40,), "exit"), ((40,), ("reflecting", "exit")), ((12, 9), [("exit", "reflecting"), "periodic"]),
         ((12, 9), [("reflecting", "exit"), ("exit", "exit")]), ((6, 5, 7), ["exit", "reflecting", ("exit", "reflecting")])]


@pytest.mark.parametrize("shape,bc", CASES)
def test_fp_is_exact_transpose_of_hjb_operator(shape, bc):
    pb = _problem(shape, bc)
    f = pb.running_cost(None)
    sol = solve_hjb(pb, f, pb.terminal_values(None))
    u = sol.u
    assert np.all(sol.newton > 0)
    m = solve_fp(pb, sol)
    kd = kernel_data(pb, exits_supported=True)
    for n in range(pb.Nt):
        P = step_operator(pb, u[n], n, sol.states[n])
        # FP step = solve with the transpose of the same assembled operator
        m_ref = spla.spsolve(P.T.tocsc(), m[n].ravel())
        np.testing.assert_allclose(m[n + 1].ravel(), m_ref, rtol=1e-10, atol=1e-13)
        # HJB substeps: M_k(s_k) s_k = s_{k-1} + dt c_k(s_k), s_{-1} = u^{n+1} + dt f^n, s_{d-1} = u^n
        mats = step_factors(pb, u[n], n, sol.states[n])
        prev = u[n + 1].ravel() + pb.dt * f[n].ravel()
        for k, M in enumerate(mats):
            s_k = u[n] if k == pb.grid.ndim - 1 else sol.states[n, k].reshape(pb.grid.shape)
            c = np.empty(kd.shape3)
            dk = kd.drift[0 if kd.drift.shape[0] == 1 else n][k]
            axis_source(as3(s_k, 0, kd.shape3), dk, k, kd.axis(k), c)
            rhs = prev + pb.dt * c.ravel()
            np.testing.assert_allclose(M @ s_k.ravel(), rhs, rtol=0, atol=1e-10 * np.abs(rhs).max())
            prev = s_k.ravel()
            # each factor is an M-matrix with unit row sums (=> mass conservation, positivity); on the wall
            # cells of an exit side the row sum is 1 + dt r > 1 (the outflow), nowhere below 1
            rowsum = np.asarray(M.sum(axis=1)).reshape(pb.grid.shape)
            exit_cells = np.zeros(pb.grid.shape, dtype=bool)
            for kk, j in pb.grid.exit_sides:
                if kk == k:
                    exit_cells[(slice(None),) * k + (0 if j == 0 else -1,)] = True
            np.testing.assert_allclose(rowsum[~exit_cells], 1.0, atol=1e-13)
            assert np.all(rowsum[exit_cells] > 1.0 + 1e-3 * pb.dt)
            off = (M - sparse.diags(M.diagonal())).tocsr()
            assert off.data.max(initial=0.0) <= 0.0
        # discrete duality: <m^{n+1}, P x> = <m^n, x> for any x
        x = np.cos(np.arange(pb.grid.size))
        assert abs(m[n + 1].ravel() @ (P @ x) - m[n].ravel() @ x) < 1e-12
    assert hjb_residual(pb, sol, f) < 1e-12
    assert fp_residual(pb, sol, m) < 1e-12


@pytest.mark.parametrize("shape,bc", CASES)
def test_mass_and_positivity_for_huge_dt(shape, bc):
    # dt far beyond any CFL limit: mass still exact (with exits: mass + outflow), density still non-negative
    pb = _problem(shape, bc, Nt=2, T=50.0, sigma=0.3)
    sol = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None))
    m = solve_fp(pb, sol)
    mass = pb.grid.integrate(m)
    out = outflow_history(pb, sol, m)
    np.testing.assert_allclose(mass + out.cumulative, 1.0, atol=1e-13)
    if pb.grid.has_exits:
        assert mass[-1] < 1.0 - 1e-3 and np.all(out.per_side >= 0.0)
    else:
        np.testing.assert_allclose(mass, 1.0, atol=1e-13)
    assert m.min() >= 0.0


def test_newton_converges_quadratically_in_few_iterations():
    pb = _problem((200,), "reflecting", drift=False, Nt=50, T=1.0)
    its = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None), tol=1e-13).newton
    assert np.all(its > 0) and its.max() <= 6


@pytest.mark.parametrize("shape", [(30, 25), (8, 9, 10)])
def test_newton_substeps_converge_fast_in_2d_3d(shape):
    pb = _problem(shape, "reflecting", Nt=10, T=1.0)
    its = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None), tol=1e-13).newton
    assert np.all(its > 0) and its.max() <= 8


def test_hjb_residual_detects_a_wrong_solution():
    pb = _problem((50,), "reflecting")
    f = pb.running_cost(None)
    sol = solve_hjb(pb, f, pb.terminal_values(None))
    sol.u[2] += 1e-3
    assert hjb_residual(pb, sol, f) > 1e-5


@pytest.mark.parametrize("shape", [(7, 5, 1), (5, 2, 1), (9, 1, 1), (4, 6, 3)])
def test_axis_cost_matches_numpy_in_every_layout(shape):
    """c_k(g) = [min(D+g, 0)^2 + max(D-g, 0)^2] / 2 along each axis (contiguous fast path and batched)."""
    rng = np.random.default_rng(1)
    g = rng.standard_normal(shape)
    for axis in range(3):
        if shape[axis] < 2:
            continue
        for per in (False, True):
            out = np.empty(shape)
            kernels.axis_cost(g, axis, 0.3, per, out)
            gm = np.moveaxis(g, axis, 0)
            if per:
                gp, gmm = np.roll(gm, -1, 0), np.roll(gm, 1, 0)
            else:  # mirror walls
                gp, gmm = np.concatenate([gm[1:], gm[-1:]]), np.concatenate([gm[:1], gm[:-1]])
            ref = 0.5 * (np.minimum((gp - gm) / 0.3, 0) ** 2 + np.maximum((gm - gmm) / 0.3, 0) ** 2)
            np.testing.assert_allclose(out, np.moveaxis(ref, 0, axis), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("n,B", [(1, 5), (2, 7), (9, 13), (50, 3)])
def test_transposed_thomas_without_transposition_is_bitwise_the_transposed_solve(n, B):
    """_thomas_t(rows of M) = _thomas(rows of M^T from _transpose_lines), bit for bit, and solves M^T x = r."""
    from mfg_pde.fd import kernels as K
    rng = np.random.default_rng(n * B)
    lo, up = -rng.random((n, B)), -rng.random((n, B))
    lo[0], up[-1] = 0.0, 0.0
    di = 1.0 - lo - up + rng.random((n, B))
    rhs = rng.random((n, B))
    x1, x2, cp, lt, ut = (np.empty((n, B)) for _ in range(5))
    K._transpose_lines(lo, di, up, lt, ut, False)
    K._thomas(lt, di, ut, rhs, x1, cp)
    K._thomas_t(lo, di, up, rhs, x2, cp)
    np.testing.assert_array_equal(x1, x2)
    for b in range(B):
        M = np.diag(di[:, b]) + np.diag(lo[1:, b], -1) + np.diag(up[:-1, b], 1)
        np.testing.assert_allclose(M.T @ x2[:, b], rhs[:, b], rtol=1e-12, atol=1e-14)
