"""Open stationary MFGs: exit sides with an entry source (discounted only): a manufactured solution with
error and observed order, the inflow/outflow balance, the Jacobian's exit terms against finite differences, the
Schur step against the whole-Jacobian LU, and the refusals (docs/method.md, section 'Stationary problems')."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.newton.stationary import StationarySystem
from mfg_pde.richardson import observed_order

SIGMA, NU, RHO, KAPPA, G = 1.0, 0.5, 0.5, 1.0, 0.3
AMP = 0.05   # u* = g + AMP (1 + cos pi x); the source stays >= 0 for AMP <= nu / 8


def _u(x):
    return G + AMP * (1 + np.cos(np.pi * x))


def _du(x):
    return -AMP * np.pi * np.sin(np.pi * x)


def _d2u(x):
    return -AMP * np.pi ** 2 * np.cos(np.pi * x)


def _m(x):
    return np.cos(np.pi * x / 2)          # m* = 0 on the exit x = 1, zero flux on the wall x = 0


def _source(x):
    """S = -nu m*'' - (m* u*')' (the FP equation of the feedback -u*' with the source)."""
    dm = -np.pi / 2 * np.sin(np.pi * x / 2)
    d2m = -np.pi ** 2 / 4 * np.cos(np.pi * x / 2)
    return -NU * d2m - dm * _du(x) - _m(x) * _d2u(x)


def _potential(x):
    return RHO * _u(x) + 0.5 * _du(x) ** 2 - NU * _d2u(x) - KAPPA * _m(x)


def _problem(N):
    grid = mp.Grid([(0, 1)], N, bc=(("reflecting", "exit"),))
    return mp.StationaryProblem(grid, SIGMA, coupling=mp.LocalPower(KAPPA), potential=_potential, discount=RHO,
                                source=_source, exit_cost=G)


def test_manufactured_exit_problem_error_and_order():
    assert _source(np.linspace(0, 1, 1001)).min() >= -1e-15
    errs = []
    for N in (50, 100):
        r = mp.solve_stationary(_problem(N))
        assert r.converged and r.residuals["duality"] == 0.0 and r.m.min() >= 0.0
        # what enters leaves: outflow = inflow to round-off (1^T A^T m = r^T m)
        assert r.residuals["balance"] <= 1e-12
        x = r.grid.axes[0]
        errs.append({"u": float(np.abs(r.u - _u(x)).max()), "m": float(np.abs(r.m - _m(x)).max())})
    for q, t in {"u": 0.01, "m": 0.03}.items():
        assert errs[0][q] <= t, (q, errs[0][q])
        order = float(observed_order([errs[0][q], errs[1][q]])[0])
        assert 0.9 <= order <= 1.2, (q, errs[0][q], errs[1][q], order)


def _open_2d(ham, shape=(14, 10)):
    grid = mp.Grid([(0, 1), (0, 1)], shape, bc=(("exit", "reflecting"), "periodic"))
    X, Y = grid.mesh()
    return mp.StationaryProblem(grid, 0.6, coupling=mp.LocalPower(0.7, 2) + mp.QuadraticInteraction(0.8),
                                potential=np.cos(2 * np.pi * Y) * 0.3 + X, discount=0.5, hamiltonian=ham,
                                source=lambda x, y: np.exp(-20 * ((x - 0.6) ** 2 + (y - 0.5) ** 2)), exit_cost=0.2)


@pytest.mark.parametrize("ham", [mp.Quadratic(), mp.BoundedControl(0.8), mp.Power(1.7)], ids=["quad", "bnd", "pow"])
def test_exit_jacobian_matches_finite_differences(ham):
    pb = _open_2d(ham, (5, 4))
    sysm = StationarySystem(pb)
    N = pb.grid.size
    X, Y = pb.grid.mesh()
    rng = np.random.default_rng(0)
    u = (np.sin(2 * np.pi * X + 0.3) * (1 + Y)).reshape(1, -1) + 0.01 * rng.random((1, N))
    m = 0.5 + rng.random((1, N))

    def R(z):
        return sysm.vector(sysm.residuals(z[:N].reshape(1, -1), z[N:].reshape(1, -1)))

    z = np.concatenate([u.ravel(), m.ravel()])
    J = sysm.jacobian(u, m).toarray()
    assert J.shape == (2 * N, 2 * N) == (sysm.size, sysm.size)    # no lambda, mu or mass row
    eps = 1e-7
    Jfd = np.stack([(R(z + eps * e) - R(z - eps * e)) / (2 * eps) for e in np.eye(z.size)], axis=1)
    assert np.abs(J - Jfd).max() <= 1e-6 * np.abs(J).max()


def test_exit_rows_carry_the_exit_rate_and_schur_matches_lu():
    pb = _open_2d(mp.Power(1.8))
    r = mp.solve_stationary(pb)
    lu = mp.solve_stationary(pb, linear_solver="lu")
    assert r.converged and lu.converged and r.residuals["balance"] <= 1e-12
    assert np.abs(r.u - lu.u).max() <= 1e-10 and np.abs(r.m - lu.m).max() <= 1e-10 * r.m.max()
    sysm = StationarySystem(pb)
    rate = (sysm.generator_matrix(r.u.reshape(1, -1)) @ np.ones(pb.grid.size)).reshape(pb.grid.shape)
    assert np.all(rate[0] > 0) and np.abs(rate[1:]).max() <= 1e-12 * np.abs(rate).max()   # only the exit cells
    assert r.mass() == pytest.approx(r.residuals["total_mass"], rel=1e-14)


def test_exit_bad_input():
    grid = mp.Grid([(0, 1)], 20, bc=(("reflecting", "exit"),))
    with pytest.raises(ValueError, match="discount = 0 with exit sides"):
        mp.StationaryProblem(grid, 0.5, source=np.ones(20))
    with pytest.raises(ValueError, match="source: with exit sides"):
        mp.StationaryProblem(grid, 0.5, discount=0.5)
    with pytest.raises(ValueError, match="source: the entry rate S must be >= 0"):
        mp.StationaryProblem(grid, 0.5, discount=0.5, source=-np.ones(20))
    with pytest.raises(ValueError, match="exit_cost"):
        mp.StationaryProblem(grid, 0.5, discount=0.5, source=np.ones(20), exit_cost=np.inf)
    with pytest.raises(ValueError, match="source: agents that enter must be able to leave"):
        mp.StationaryProblem(mp.Grid([(0, 1)], 20), 0.5, discount=0.5, source=np.ones(20))


def test_open_problem_with_two_types_balance_and_hdf5(tmp_path):
    """Two types that enter by type-1 only and switch: the outflow of both types equals the inflow; the file
    keeps the exit grid and the balance."""
    from mfg_pde.newton.stationary import load_stationary

    grid = mp.Grid([(0, 1), (0, 1)], (20, 16), bc=(("reflecting", "exit"), "periodic"))
    pb = mp.StationaryProblem(grid, 0.6, coupling=mp.LocalPower(1.0), potential=[lambda x, y: x, lambda x, y: y],
                              discount=0.5, source=[lambda x, y: np.exp(-20 * (x - 0.3) ** 2), np.zeros((20, 16))],
                              exit_cost=0.2, switching=[[-0.5, 0.5], [0.3, -0.3]], hamiltonian=mp.Power(1.8))
    r = mp.solve_stationary(pb)
    assert r.converged and r.m.shape == (2, 20, 16) and r.m.min() >= 0.0
    assert r.residuals["balance"] <= 1e-12 and r.m[1].sum() > 0    # type 2 exists only by switching
    r.save(tmp_path / "open.h5")
    back = load_stationary(tmp_path / "open.h5")
    assert back.grid == grid and np.array_equal(back.m, r.m) and back.residuals["balance"] == r.residuals["balance"]
