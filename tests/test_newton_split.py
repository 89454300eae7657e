"""Newton on the direction-split 2-D/3-D system (``newton.system_split``): exact Jacobian products,
agreement with the core loop's discrete solution, the hard regime, and clear refusals."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.newton.driver import _initial_pair
from mfg_pde.newton.system_split import SplitSystem


def regime2(nu=0.1, k=1.0, N=16, Nt=12, bc="periodic", drift=None):
    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], N, bc=bc)
    return mp.MFGProblem(grid, 1.0, Nt, float(np.sqrt(2 * nu)), np.ones((N, N)), coupling=mp.LocalPower(k),
                         potential=lambda x, y, t: -np.cos(2 * np.pi * x) - 0.5 * np.cos(2 * np.pi * y),
                         drift=drift)


def _merit(ev):
    return np.concatenate([ev["RH"].ravel(), ev["RF"].ravel()])


@pytest.mark.parametrize("bc, drift", [("periodic", None), ("reflecting", lambda x, y, t: (np.sin(3 * x), -y))])
def test_jacobian_products_match_finite_differences(bc, drift):
    """J (du, dmu) from the assembled blocks equals the central difference of the residual map."""
    p = regime2(0.05, 2.0, N=10, Nt=6, bc=bc, drift=drift)
    sysm = SplitSystem(p)
    u, m = _initial_pair(p, None, 1e-12, 50)
    rng = np.random.default_rng(0)
    m = m * (1.0 + 0.2 * rng.random(m.shape))  # a non-solution iterate, positive densities
    U, Mu = sysm.lift(u + 0.05 * rng.standard_normal(u.shape), m)
    ev = sysm.evaluate(U, Mu)
    deriv = sysm.derivative(Mu)
    Nt = p.Nt
    du = rng.standard_normal(U[:Nt].shape)
    dm = rng.standard_normal(Mu[1:].shape)
    JH, JF = sysm.jvp(U, Mu, ev, deriv, du, dm)
    eps = 1e-6

    def res(s):
        U2, M2 = U.copy(), Mu.copy()
        U2[:Nt] += s * du
        M2[1:] += s * dm
        sysm.complete(U2, M2)
        return _merit(sysm.evaluate(U2, M2))

    fd = (res(eps) - res(-eps)) / (2 * eps)
    J = np.concatenate([JH.ravel(), JF.ravel()])
    # the Engquist-Osher residual is piecewise smooth: a few kinks may sit inside the difference stencil
    bad = np.abs(fd - J) > 1e-5 * (1 + np.abs(J))
    assert bad.mean() < 2e-3
    assert np.median(np.abs(fd - J)) < 1e-8


def test_lift_leaves_only_the_last_substep_residual():
    p = regime2(N=8, Nt=5)
    sysm = SplitSystem(p)
    u, m = _initial_pair(p, None, 1e-13, 50)  # u = HJB(m) exactly
    U, Mu = sysm.lift(u, m)
    ev = sysm.evaluate(U, Mu)
    assert np.abs(ev["RH"]).max() / ev["sH"] < 1e-11  # u solves the split HJB against m: all substeps
    assert np.abs(ev["RF"][:, 1:]).max() < 1e-13       # the FP intermediates are exact substeps
    np.testing.assert_array_equal(sysm.fields(U, Mu)[1], m)


@pytest.mark.parametrize("bc", ["periodic", "reflecting"])
def test_newton_2d_is_the_core_discrete_solution(bc):
    p = regime2(0.1, 1.0, N=14, Nt=10, bc=bc)
    ra = mp.solve(p, method="anderson", tol=1e-11)
    rn = mp.solve(p, method="newton", tol=1e-11)
    assert ra.converged and rn.converged, (ra.status, rn.status)
    np.testing.assert_allclose(rn.m, ra.m, atol=1e-9)
    np.testing.assert_allclose(rn.u, ra.u, atol=1e-9)
    assert rn.history["residual"][-1] <= 1e-11
    assert rn.mass_error() < 1e-12
    r = rn.history["residual"]
    assert r[-2] < 1e-3 and r[-1] < 1e-2 * r[-2]  # fast local convergence at the end
    # states of the returned HJB solution make the FP reproduce m exactly (same split chain)
    from mfg_pde.fd.fp import solve_fp
    np.testing.assert_allclose(solve_fp(p, rn.hjb_solution), rn.m, atol=1e-12)


def test_newton_3d_smoke():
    grid = mp.Grid([(0.0, 1.0)] * 3, 8, bc="periodic")
    p = mp.MFGProblem(grid, 0.5, 6, 0.4, np.ones((8, 8, 8)), coupling=mp.LocalPower(2.0),
                      potential=lambda x, y, z, t: -np.cos(2 * np.pi * x) * np.cos(2 * np.pi * z))
    rn = mp.solve(p, method="newton", tol=1e-10)
    ra = mp.solve(p, method="anderson", tol=1e-10)
    assert rn.converged and ra.converged
    np.testing.assert_allclose(rn.m, ra.m, atol=1e-8)


def test_hard_regime_2d_converges_to_1e_10():
    """nu = 0.01, k = 10 (the hardest of the hard-corner regimes of docs/method.md) in 2-D."""
    p = regime2(0.01, 10.0, N=20, Nt=16)
    r = mp.solve(p, method="newton", tol=1e-10)
    assert r.converged, r.status
    assert r.history["residual"][-1] <= 1e-10
    assert np.all(r.m >= -1e-12)


def test_auto_2d_switches_to_newton_when_anderson_stalls():
    p = regime2(0.01, 10.0, N=20, Nt=16)
    r = mp.solve(p, method="auto", tol=1e-10, stall_window=5)
    assert r.converged and r.solver["winner"] == "newton", r.status
    ph = r.history["phase"]
    assert ph[0] == 0 and ph[-1] == 1 and np.sum(ph == 1) >= 2
    n = mp.solve(p, method="newton", tol=1e-10)
    assert n.converged, n.status
    np.testing.assert_allclose(r.m, n.m, atol=1e-8 * n.m.max())


def test_newton_2d_mean_interaction_lq():
    """QuadraticInteraction (rank-one dF/dm per axis, GMRES) in 2-D: Newton reaches the core loop's
    discrete solution of an LQ game with an off-centre start."""
    grid = mp.Grid([(-2.5, 2.5), (-2.5, 2.5)], 20)
    p = mp.MFGProblem(grid, 1.0, 12, 0.7, mp.gaussian(grid, (-0.6, 0.3), (0.5, 0.4)),
                      coupling=mp.QuadraticInteraction(2.0), terminal_cost=mp.QuadraticTerminalCost(1.0, (0.5, -0.2)))
    ra = mp.solve(p, method="anderson", tol=1e-11)
    rn = mp.solve(p, method="newton", tol=1e-11)
    assert ra.converged and rn.converged, (ra.status, rn.status)
    np.testing.assert_allclose(rn.m, ra.m, atol=1e-9)
    assert rn.history["linear_iterations"][-2] > 0  # Krylov (GMRES) steps were taken


def test_refusals_are_clear():
    grid = mp.Grid([(-2.0, 2.0), (-2.0, 2.0)], 16)
    p = mp.MFGProblem(grid, 1.0, 5, 0.5, mp.gaussian(grid, (0, 0), (0.5, 0.5)),
                      coupling=mp.KernelInteraction(lambda dx, dy: np.exp(-(dx ** 2 + dy ** 2)), 0.5))
    with pytest.raises(NotImplementedError, match="dense dF/dm"):
        mp.solve(p, method="newton")
    r = mp.solve(p, method="auto", tol=1e-8)  # no 2-D Newton derivative: auto is the Anderson loop
    assert r.converged and "anderson" in r.solver["auto"]
    with pytest.raises(ValueError, match="linear_solver = 'direct' is 1-D only"):
        mp.solve(regime2(N=6, Nt=3), method="newton", linear_solver="direct")
