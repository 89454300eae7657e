"""Stationary MFGs with the congestion Hamiltonian H(p, m) = |p|^2 / (2 (c0 + c m)^alpha), m the total density:
the Jacobian's m-blocks against finite differences (1-D with two types, 2-D with an exit), c = 0 against the
quadratic Hamiltonian, manufactured solutions (error and observed order, 1-D and 2-D), Newton's quadratic
rate, the Schur step against the whole-Jacobian LU, the turnpike of the time-dependent solver with the same
Hamiltonian, HDF5 and bad input (docs/method.md, section 'Stationary problems')."""

import logging

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.cases.stationary import manufactured_congestion
from mfg_pde.newton.stationary import StationarySystem, load_stationary
from mfg_pde.richardson import observed_order

Q2 = np.array([[-0.5, 0.5], [0.3, -0.3]])
HAM = mp.Congestion(0.5, 3.0, 0.5)


def _fd_jacobian(sysm, z, unpack):
    """Central differences of the residual vector at z (``unpack``: z -> (u, m, lambda, mu))."""
    def R(zz):
        return sysm.vector(sysm.residuals(*unpack(zz)))

    eps = 1e-7
    return np.stack([(R(z + eps * e) - R(z - eps * e)) / (2 * eps) for e in np.eye(z.size)], axis=1)


@pytest.mark.parametrize("alpha", [1.0, 0.6])
@pytest.mark.parametrize("ergodic", [True, False])
def test_jacobian_with_congestion_matches_finite_differences(ergodic, alpha):
    """Two types (each sees the total density), periodic, a local and a mean coupling: every block, the
    congestion blocks d R_H / dm and d R_F / dm included, against central differences."""
    grid = mp.Grid([(0, 1)], 16, bc="periodic")
    x = grid.axes[0]
    pb = mp.StationaryProblem(grid, 0.5, coupling=mp.LocalPower(0.7, 2) + mp.QuadraticInteraction(0.8),
                              potential=[np.cos(2 * np.pi * x), np.sin(2 * np.pi * x)],
                              discount=0.0 if ergodic else 0.5, switching=Q2,
                              hamiltonian=mp.Congestion(1.0, 2.0, alpha))
    sysm = StationarySystem(pb)
    rng = np.random.default_rng(0)
    u = np.stack([np.sin(2 * np.pi * x + 0.3), 0.5 * np.cos(4 * np.pi * x)]) + 0.01 * rng.random((2, 16))
    m = 0.5 + rng.random((2, 16))
    KN = 32

    def unpack(z):
        return z[:KN].reshape(2, 16), z[KN:2 * KN].reshape(2, 16), (z[2 * KN] if ergodic else 0.0), z[-1]

    z = np.concatenate([u.ravel(), m.ravel()] + ([[0.3]] if ergodic else []) + [[0.0]])
    J = sysm.jacobian(u, m).toarray()
    Jfd = _fd_jacobian(sysm, z, unpack)
    assert np.abs(J - Jfd).max() <= 1e-6 * np.abs(J).max()
    # the congestion blocks are far above the differences' error: without them the check fails
    J0 = sysm.jacobian_parts(u, m, congestion=False)[0].toarray()
    assert np.abs(J0 - Jfd).max() >= 1e3 * np.abs(J - Jfd).max()


def test_jacobian_with_congestion_2d_exit_matches_finite_differences():
    """2-D, an exit side with a source (open problem: the exit rows' rate depends on the weights too)."""
    grid = mp.Grid([(0, 1), (0, 1)], (5, 4), bc=(("reflecting", "exit"), "periodic"))
    X, Y = grid.mesh()
    pb = mp.StationaryProblem(grid, 0.6, coupling=mp.LocalPower(1.0), potential=X + np.cos(2 * np.pi * Y),
                              discount=0.5, source=np.exp(-5 * X ** 2), exit_cost=0.2, hamiltonian=HAM)
    sysm = StationarySystem(pb)
    N = grid.size
    rng = np.random.default_rng(1)
    u = (np.sin(2 * X + 0.3) * np.cos(2 * np.pi * Y)).reshape(1, N) + 0.01 * rng.random((1, N))
    m = 0.5 + rng.random((1, N))

    def unpack(z):
        return z[:N].reshape(1, N), z[N:].reshape(1, N), 0.0, 0.0

    z = np.concatenate([u.ravel(), m.ravel()])
    J = sysm.jacobian(u, m).toarray()
    assert np.abs(J - _fd_jacobian(sysm, z, unpack)).max() <= 1e-6 * np.abs(J).max()


def test_zero_congestion_is_the_quadratic_hamiltonian():
    """c = 0 (c0 = 1): the same solution as the default quadratic Hamiltonian to round-off, 1-D with two types
    and 2-D."""
    grid = mp.Grid([(-2, 2)], 120)
    pots = [lambda x: 2 * x ** 2, lambda x: (x - 0.5) ** 2]
    kw = {"coupling": mp.LocalPower(0.5), "potential": pots, "switching": Q2}
    q = mp.solve_stationary(mp.StationaryProblem(grid, 0.6, **kw))
    c = mp.solve_stationary(mp.StationaryProblem(grid, 0.6, hamiltonian=mp.Congestion(1.0, 0.0, 1.0), **kw))
    assert q.converged and c.converged
    assert np.abs(c.u - q.u).max() <= 1e-13 * np.abs(q.u).max() and np.abs(c.m - q.m).max() <= 1e-13 * q.m.max()
    assert abs(c.lam - q.lam) <= 1e-13
    grid2 = mp.Grid([(0, 1), (0, 1)], (20, 18), bc=("reflecting", "periodic"))
    kw2 = {"coupling": mp.LocalPower(0.5), "potential": lambda x, y: np.cos(np.pi * x) + np.sin(2 * np.pi * y),
           "discount": 0.4}
    q2 = mp.solve_stationary(mp.StationaryProblem(grid2, 0.6, **kw2))
    c2 = mp.solve_stationary(mp.StationaryProblem(grid2, 0.6, hamiltonian=mp.Congestion(1.0, 0.0, 0.5), **kw2))
    assert np.abs(c2.u - q2.u).max() <= 1e-13 * np.abs(q2.u).max() and np.abs(c2.m - q2.m).max() <= 1e-13 * q2.m.max()


def _manufactured_errors(ndim, N, ham=HAM):
    ref = manufactured_congestion(ham, 0.8, ndim=ndim)
    grid = mp.Grid([(0, 1)], N) if ndim == 1 else mp.Grid([(0, 1), (0, 1)], (N, N), bc=("reflecting", "periodic"))
    r = mp.solve_stationary(mp.StationaryProblem(grid, 0.8, coupling=mp.LocalPower(1.0), potential=ref["V"],
                                                 hamiltonian=ham))
    assert r.converged and r.residuals["fp"] <= 1e-10 and r.mass_error() <= 1e-14 and r.m.min() >= 0.0
    X = grid.mesh()
    e = r.u - ref["u"](*X)
    return {"u": float(np.abs(e - e.mean()).max()), "lambda": abs(r.lam - ref["lam"]),
            "m": float(np.abs(r.m - ref["m"](*X)).max())}


def test_manufactured_solution_1d_error_and_order():
    """m* = 1 + cos(pi x)/2 on [0, 1], u* = -nu Phi(m*) (zero flux), c m* up to 4.5 (alpha = 1/2):
    measured errors at N = 100 of 3.8e-4 (u), 5.9e-5 (lambda), 2.3e-3 (m), orders 0.96, 1.01, 0.99."""
    errs = [_manufactured_errors(1, N) for N in (100, 200)]
    budget = {"u": 1e-3, "lambda": 2e-4, "m": 5e-3}
    for q, t in budget.items():
        assert errs[0][q] <= t, (q, errs[0][q])
        order = float(observed_order([errs[0][q], errs[1][q]])[0])
        assert 0.9 <= order <= 1.1, (q, errs[0][q], errs[1][q], order)


def test_manufactured_solution_2d_case_validates():
    """The `stationary-congestion` case (2-D, the Schur/GMRES step): errors at 40 x 40 and the observed orders
    at 80 x 80 (measured 0.87, 0.90, 0.94 for u, lambda, m)."""
    from mfg_pde import cases

    case = cases.get("stationary-congestion")
    assert case.has_oracle      # part of `mfg-pde validate`
    run = case.validate()
    assert run.result.converged and run.passed
    orders = [c for c in run.checks if c.quantity.endswith("observed order")]
    assert len(orders) == 3 and all(0.8 <= c.error <= 1.3 for c in orders)
    assert run.result.hamiltonian.describe() == {"type": "congestion", "c0": 0.5, "c": 3.0, "alpha": 0.5}


def test_newton_converges_quadratically_on_a_congested_problem(caplog):
    """V = 2 x^2 on [-2, 2], c = 5 (c m up to 4.8): from u = 0 to 1e-10 in 6 steps, HJB residual
    e_{k+1} <= 10 e_k^2 on the last steps; the density of every iterate solves its FP equations (weights of
    its own total density) to round-off."""
    grid = mp.Grid([(-2, 2)], 200)
    pb = mp.StationaryProblem(grid, 0.5, coupling=mp.LocalPower(0.2), potential=lambda x: 2 * x ** 2,
                              hamiltonian=mp.Congestion(1.0, 5.0, 1.0))
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        r = mp.solve_stationary(pb, progress=True)
    assert "stationary Newton 3: HJB residual" in caplog.text      # the residuals are printed per step
    hjb, fp = r.history["hjb"], r.history["fp"]
    assert r.converged and r.iterations <= 8 and r.history["step"][-1] == 1.0
    assert 3.0 <= float(pb.hamiltonian.c * r.m.max()) <= 6.0       # moderately congested
    assert hjb[-1] <= 1e-10 and hjb[-2] <= 10 * hjb[-3] ** 2 and hjb[-3] <= 10 * hjb[-4] ** 2
    assert fp.max() <= 1e-12 and r.history["density_steps"].max() < StationarySystem.density_maxit
    assert r.mass_error() <= 1e-14 and r.m.min() >= 0.0 and r.residuals["duality"] == 0.0


def test_strong_congestion_converges():
    """c m up to 130: the density of each trial point solved to round-off keeps the line search continuous at
    step 0 (a single null vector at the predicted weights made the backtracking fail here)."""
    grid = mp.Grid([(-2, 2)], 300)
    pb = mp.StationaryProblem(grid, 0.4, coupling=mp.LocalPower(0.2), potential=lambda x: 4 * x ** 2,
                              hamiltonian=mp.Congestion(1.0, 200.0, 1.0))
    r = mp.solve_stationary(pb)
    assert r.converged and r.iterations <= 10 and float(200.0 * r.m.max()) >= 100.0
    assert r.history["hjb"][-2] <= 10 * r.history["hjb"][-3] ** 2 and r.history["fp"].max() <= 1e-12


@pytest.mark.parametrize("open_", [False, True])
def test_congested_density_solves_the_fp_equations(open_):
    """For a fixed u the density solves A(u, m)^T m = 0 (mass 1) or = S (exits) with the weights of its own
    total density, m >= 0, from a poor start (the uniform density's weights), the steps converging fast."""
    bc = (("reflecting", "exit"), "periodic") if open_ else ("reflecting", "periodic")
    grid = mp.Grid([(0, 1), (0, 1)], (14, 12), bc=bc)
    X, Y = grid.mesh()
    extra = {"discount": 0.5, "source": np.exp(-10 * (X - 0.3) ** 2), "exit_cost": 0.2} if open_ else {}
    pb = mp.StationaryProblem(grid, 0.5, switching=Q2, hamiltonian=mp.Congestion(1.0, 20.0, 1.0), **extra)
    sysm = StationarySystem(pb)
    u = np.stack([2 * np.cos(np.pi * X) + np.sin(2 * np.pi * Y), (X - 0.5) ** 2]).reshape(2, -1)
    m0 = np.full((2, grid.size), 0.0 if open_ else 0.5)
    m, A, steps = sysm.congested_density(u, m0)
    assert 2 <= steps < sysm.density_maxit and m.min() >= 0.0
    RF = A.T @ m.ravel() - (pb.S.ravel() if open_ else 0.0)
    assert np.abs(RF).max() <= 1e-13 * sysm.fp_scale(A, m)
    assert abs(A - sysm.generator_matrix(u, w=sysm.weights(m))).max() == 0.0   # A is A(u, m)
    if not open_:
        assert abs(grid.cell_volume * m.sum() - 1.0) <= 1e-14


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_schur_step_is_the_newton_step_with_congestion(rho):
    grid = mp.Grid([(-2, 2), (-2, 2)], (9, 8))
    X, Y = grid.mesh()
    pb = mp.StationaryProblem(grid, 0.8, coupling=mp.LocalPower(1.0), discount=rho, switching=Q2, hamiltonian=HAM,
                              potential=[0.5 * X ** 2 + Y ** 2, (X - 0.5) ** 2 + 0.3 * Y ** 2])
    sysm = StationarySystem(pb)
    u = np.stack([0.7 * (X - 0.3) ** 2 + 0.9 * (Y + 0.2) ** 2 + 0.1 * np.sin(X * Y), 0.4 * X ** 2 + Y ** 2])
    u = u.reshape(2, -1)
    m = np.stack([np.exp(-X ** 2 - Y ** 2), 0.5 * np.exp(-(X - 0.5) ** 2 - Y ** 2)]).reshape(2, -1)
    m /= m.sum() * grid.cell_volume
    A = sysm.generator_matrix(u, w=sysm.weights(m))
    _m, _mu, lu = sysm.density(u, A, with_lu=True)   # the FP factor of A(u, m) (its null vector is not m)
    res = sysm.residuals(u, m, 0.3, A=A)
    assert np.abs(res["RF"]).max() > 0.1                # away from a solution in both equations
    d_lu = sysm.newton_direction(u, m, res)
    d_schur, its = sysm.schur_direction(u, m, res, lu)
    assert 0 < its < sysm.gmres_maxiter
    assert np.abs(d_schur - d_lu).max() <= 1e-10 * np.abs(d_lu).max()


def test_ergodic_congestion_matches_turnpike_of_time_dependent_solver():
    """The time-dependent Newton solver with the same Congestion Hamiltonian (its step n sees m^{n+1}) over a
    long horizon: in the middle m(T/2) = m, the slope of u is lambda, u(T/2) = u up to a constant."""
    N, sigma = 60, 0.6
    grid = mp.Grid([(0, 1)], N, bc="periodic")

    def V(x):
        return -np.cos(2 * np.pi * x)

    rs = mp.solve_stationary(mp.StationaryProblem(grid, sigma, coupling=mp.LocalPower(1.0), potential=V,
                                                  hamiltonian=HAM))
    assert rs.converged and float(HAM.c * rs.m.max()) >= 3.0
    T, Nt = 10.0, 500
    td = mp.MFGProblem(grid, T=T, Nt=Nt, sigma=sigma, m0=np.ones(N), coupling=mp.LocalPower(1.0),
                       potential=lambda x, t: V(x), hamiltonian=HAM)
    r = mp.solve(td, method="newton", tol=1e-12)
    n, j = Nt // 2, Nt // 10
    assert np.abs(r.m[n] - rs.m).max() <= 1e-10
    assert abs((r.u[n - j].mean() - r.u[n + j].mean()) / (2 * j * td.dt) - rs.lam) <= 1e-10
    assert np.abs((r.u[n] - r.u[n].mean()) - (rs.u - rs.u.mean())).max() <= 1e-10
    # the feedback is the congested one, -u_x / (c0 + c m)^alpha
    ux = np.gradient(rs.u, grid.spacing[0])   # interior centred differences, as ``alpha`` takes them
    assert np.abs(rs.alpha()[1:-1] + ux[1:-1] / (0.5 + 3.0 * rs.m[1:-1]) ** 0.5).max() <= 1e-12


def test_save_and_load_keep_the_congestion_hamiltonian(tmp_path):
    grid = mp.Grid([(0, 1), (0, 1)], (12, 10), bc=(("reflecting", "exit"), "periodic"))
    pb = mp.StationaryProblem(grid, 0.6, coupling=mp.LocalPower(1.0), potential=[lambda x, y: x, lambda x, y: y],
                              discount=0.5, source=[lambda x, y: np.exp(-20 * (x - 0.3) ** 2), np.zeros((12, 10))],
                              exit_cost=0.2, switching=Q2, hamiltonian=HAM)
    r = mp.solve_stationary(pb)
    assert r.converged and r.residuals["balance"] <= 1e-12 and r.m.min() >= 0.0
    r.save(tmp_path / "cong.h5")
    back = load_stationary(tmp_path / "cong.h5")
    assert isinstance(back.hamiltonian, mp.Congestion) and back.hamiltonian.describe() == HAM.describe()
    assert np.array_equal(back.u, r.u) and np.array_equal(back.m, r.m)
    assert np.array_equal(back.alpha(), r.alpha())      # the congested feedback, from the rebuilt Hamiltonian


def test_time_dependent_counterpart_with_congestion():
    """mp.time_dependent keeps the Congestion Hamiltonian, one type or K switching types (both see the total
    density).  Two identical types whose shares start at the long-run ones are one population: the stationary state
    of the one-type problem, started there, stays there to the solver tolerance."""
    grid = mp.Grid([(0, 1)], 30, bc="periodic")
    V = lambda x: -np.cos(2 * np.pi * x)   # noqa: E731
    one = mp.StationaryProblem(grid, 0.6, coupling=mp.LocalPower(1.0), potential=V, hamiltonian=HAM)
    assert mp.time_dependent(one, 1.0, 10, np.ones(30)).hamiltonian is HAM
    rs = mp.solve_stationary(one, tol=1e-13)
    two = mp.StationaryProblem(grid, 0.6, coupling=mp.LocalPower(1.0), potential=V, hamiltonian=HAM, switching=Q2)
    pi = two.type_shares
    game = mp.time_dependent(two, 1.0, 20, np.stack([pi[0] * rs.m, pi[1] * rs.m]), terminal_cost=np.stack([rs.u] * 2))
    r = mp.solve(game, tol=1e-12, newton_tol=1e-14)
    assert r.converged
    # each type is pi_k m_s, and its congestion is that of m_s: with its own density it would move
    assert np.abs(r.m - np.stack([pi[0] * rs.m, pi[1] * rs.m])[:, None]).max() < 1e-10 * rs.m.max()


def test_bad_input_with_congestion():
    grid = mp.Grid([(0, 1)], 10)
    with pytest.raises(NotImplementedError, match="PlannerCongestion.*social planner.*Congestion"):
        mp.StationaryProblem(grid, 0.5, hamiltonian=HAM.first_variation())
    with pytest.raises(ValueError, match="c = -1.0 must be >= 0"):
        mp.StationaryProblem(grid, 0.5, hamiltonian=mp.Congestion(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="alpha = 2.0 must lie in"):
        mp.StationaryProblem(grid, 0.5, hamiltonian=mp.Congestion(1.0, 1.0, 2.0))
