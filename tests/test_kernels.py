"""Discrete duality, mass conservation and positivity of the HJB/FP kernels."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import mfg_pde as mp
from mfg_pde.solvers.fp import fp_residual, solve_fp
from mfg_pde.solvers.hjb import hjb_residual, solve_hjb
from mfg_pde.solvers.matrices import step_factors, step_operator


def _problem(shape, bc, drift=True, Nt=6, T=0.3, sigma=0.6):
    bounds = [(-2.0, 2.0)] * len(shape)
    grid = mp.Grid(bounds, shape, bc)
    m0 = mp.gaussian(grid, 0.3, max(0.6, 1.5 * max(grid.spacing)))

    def b(*args):
        *xs, t = args
        return [np.sin(x + t) - 0.5 * x for x in xs]

    pot = lambda *args: 0.5 * sum(x ** 2 for x in args[:-1]) * (1 + args[-1])  # noqa: E731
    return mp.MFGProblem(grid, T, Nt, sigma, m0, potential=pot, drift=b if drift else None,
                         terminal_cost=lambda *xs: np.cos(sum(xs)))


CASES = [((40,), "reflecting"), ((40,), "periodic"), ((12, 9), "reflecting"), ((12, 9), ("periodic", "reflecting")),
         ((6, 5, 7), "reflecting"), ((6, 5, 7), "periodic")]


@pytest.mark.parametrize("shape,bc", CASES)
def test_fp_is_exact_transpose_of_hjb_operator(shape, bc):
    pb = _problem(shape, bc)
    f = pb.running_cost(None)
    u, its = solve_hjb(pb, f, pb.terminal_values(None))
    assert np.all(its > 0)
    m = solve_fp(pb, u)
    for n in range(pb.Nt):
        P = step_operator(pb, u[n], n)
        # FP step = solve with the transpose of the same assembled operator
        m_ref = spla.spsolve(P.T.tocsc(), m[n].ravel())
        np.testing.assert_allclose(m[n + 1].ravel(), m_ref, rtol=1e-10, atol=1e-13)
        # HJB step: the policy-iteration fixed point satisfies P u^n = u^{n+1} + dt (f + c(u^n))
        from mfg_pde.solvers.kernels import hamiltonian_cost
        from mfg_pde.solvers.layout import as3, kernel_data
        kd = kernel_data(pb)
        c = np.empty(kd.shape3)
        hamiltonian_cost(as3(u[n], 0, kd.shape3), kd.ndim, kd.h, kd.periodic, c)
        rhs = u[n + 1].ravel() + pb.dt * (f[n].ravel() + c.ravel())
        np.testing.assert_allclose(P @ u[n].ravel(), rhs, rtol=0, atol=1e-10 * np.abs(rhs).max())
        # each factor is an M-matrix with unit row sums (=> mass conservation, positivity)
        for M in step_factors(pb, u[n], n):
            np.testing.assert_allclose(np.asarray(M.sum(axis=1)).ravel(), 1.0, atol=1e-13)
            off = M - __import__("scipy.sparse").sparse.diags(M.diagonal())
            assert off.data.max(initial=0.0) <= 0.0
    # discrete duality: sum m^{n+1} (P u^n) = sum m^n u^n for every n
    for n in range(pb.Nt):
        P = step_operator(pb, u[n], n)
        assert abs(m[n + 1].ravel() @ (P @ u[n].ravel()) - m[n].ravel() @ u[n].ravel()) < 1e-12 * np.abs(u).max()
    assert hjb_residual(pb, u, f) < 1e-12
    assert fp_residual(pb, u, m) < 1e-12


@pytest.mark.parametrize("shape,bc", CASES)
def test_mass_and_positivity_for_huge_dt(shape, bc):
    # dt far beyond any CFL limit: mass still exact, density still non-negative
    pb = _problem(shape, bc, Nt=2, T=50.0, sigma=0.3)
    u, _ = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None))
    m = solve_fp(pb, u)
    mass = pb.grid.integrate(m)
    np.testing.assert_allclose(mass, 1.0, atol=1e-13)
    assert m.min() >= 0.0


def test_newton_converges_quadratically_in_few_iterations():
    pb = _problem((200,), "reflecting", drift=False, Nt=50, T=1.0)
    u, its = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None), tol=1e-13)
    assert np.all(its > 0) and its.max() <= 6


def test_hjb_residual_detects_a_wrong_solution():
    pb = _problem((50,), "reflecting")
    f = pb.running_cost(None)
    u, _ = solve_hjb(pb, f, pb.terminal_values(None))
    u_bad = u.copy()
    u_bad[2] += 1e-3
    assert hjb_residual(pb, u_bad, f) > 1e-5
