"""Stationary MFGs (discounted and ergodic, K types with switching): closed forms with error and observed
order, exact discrete identities (mass, duality, the time-dependent stencil, the turnpike limit), the Newton
Jacobian, bad input and HDF5 (docs/method.md, section 'Stationary problems')."""

import numpy as np
import pytest
import scipy.sparse as sp

import mfg_pde as mp
from mfg_pde.diagnostics.matrices import step_factors
from mfg_pde.newton.stationary import StationarySystem, load_stationary
from mfg_pde.oracles.analytic import lq_stationary
from mfg_pde.richardson import observed_order

A_POT, SIGMA, BETA = 1.0, 0.8, 1.0
Q2 = np.array([[-0.5, 0.5], [0.3, -0.3]])


def _lq_problem(N, rho, centres, switching=None, beta=BETA, L=5.0, bc="reflecting"):
    grid = mp.Grid([(-L, L)], N, bc=bc)
    pots = [lambda x, c=c: 0.5 * A_POT * (x - c) ** 2 for c in centres]
    return mp.StationaryProblem(grid, SIGMA, coupling=mp.QuadraticInteraction(beta) if beta else None,
                                potential=pots if len(centres) > 1 else pots[0], discount=rho, switching=switching)


def _lq_errors(result, ref):
    """Errors against lq_stationary: lambda, u in the bulk (ergodic: up to the common constant), per-type
    masses, means and variances, and (one type) the Gaussian density."""
    grid = result.grid
    x, h = grid.axes[0], grid.spacing[0]
    u = np.atleast_2d(result.u)
    m = np.atleast_2d(result.m)
    e = u - ref["u"](x)
    if result.lam is not None:
        e = e - (e * m).sum() * h
    mt = m.sum(axis=0)
    cdf = np.cumsum(mt) * h
    bulk = (cdf > 5e-4) & (cdf < 1 - 5e-4)
    pis = m.sum(axis=1) * h
    means = (m * x).sum(axis=1) * h / pis
    var = (m * x ** 2).sum(axis=1) * h / pis - means ** 2
    out = {"u": float(np.abs(e[:, bulk]).max()), "mean": float(np.abs(means - ref["mean"]).max()),
           "var": float(np.abs(var - ref["var"]).max()), "pi": float(np.abs(pis - ref["pi"]).max())}
    if result.lam is not None:
        out["lambda"] = abs(result.lam - ref["lam"])
    if m.shape[0] == 1:
        g = np.exp(-ref["P"] * (x - ref["mean"][0]) ** 2 / (2 * ref["nu"]))
        out["m"] = float(np.abs(m[0] - g / (g.sum() * h)).max())
    return out


@pytest.mark.parametrize("rho", [0.0, 0.4])
def test_lq_one_type_closed_form_and_order(rho):
    c = 0.33   # not a symmetry centre of the grid (there the discrete mean would be exact)
    ref = lq_stationary(A_POT, [c], SIGMA, rho, BETA)
    assert ref["mu"] == pytest.approx(c, abs=1e-14)                      # the mean is the potential's centre
    assert ref["P"] ** 2 + rho * ref["P"] == pytest.approx(A_POT + BETA)
    if rho == 0:
        assert ref["lam"] == pytest.approx(ref["nu"] * ref["P"])         # lambda = nu sqrt(a + beta)
    errs = []
    for N in (100, 200):
        r = mp.solve_stationary(_lq_problem(N, rho, [c]))
        assert r.converged and r.residuals["hjb"] <= 1e-10
        assert r.mass_error() <= 1e-14 and r.m.min() >= 0.0
        assert r.residuals["duality"] == 0.0
        errs.append(_lq_errors(r, ref))
    # first-order budget at N = 100 (h = 0.1) and the observed order under refinement
    # (one type: the mean is not first-order limited, 2e-5 -> 6e-7 measured, so it has a bound, no order)
    assert errs[0]["mean"] <= 1e-4 and errs[1]["mean"] <= errs[0]["mean"]
    assert errs[0]["pi"] <= 1e-14
    tol = {"u": 0.15, "var": 0.04, "m": 0.03, "lambda": 0.04}
    for q, t in tol.items():
        if q not in errs[0]:
            continue
        assert errs[0][q] <= t, (q, errs[0][q])
        order = float(observed_order([errs[0][q], errs[1][q]])[0])
        assert 0.85 <= order <= 1.3, (q, errs[0][q], errs[1][q], order)


@pytest.mark.parametrize("rho", [0.0, 0.4])
def test_lq_two_types_with_switching_closed_form_and_order(rho):
    centres = [-0.5, 1.0]
    ref = lq_stationary(A_POT, centres, SIGMA, rho, BETA, Q2)
    assert ref["pi"] == pytest.approx([0.375, 0.625])
    assert ref["mu"] == pytest.approx(ref["pi"] @ centres)              # mean of the total density: pi . c
    errs = []
    for N in (100, 200):
        r = mp.solve_stationary(_lq_problem(N, rho, centres, Q2))
        assert r.converged and r.u.shape == (2, N) and r.m.shape == (2, N)
        assert r.mass_error() <= 1e-14 and r.m.min() >= 0.0 and r.residuals["duality"] == 0.0
        errs.append(_lq_errors(r, ref))
    # the type shares are exact: summing the FP of type k over x leaves (pi Q)_k = 0
    assert errs[0]["pi"] <= 1e-13 and errs[1]["pi"] <= 1e-13
    tol = {"u": 0.15, "mean": 0.01, "var": 0.04, "lambda": 0.05}
    for q, t in tol.items():
        if q not in errs[0]:
            continue
        assert errs[0][q] <= t, (q, errs[0][q])
        order = float(observed_order([errs[0][q], errs[1][q]])[0])
        assert 0.85 <= order <= 1.3, (q, errs[0][q], errs[1][q], order)


def test_symmetric_types_reduce_to_one_type():
    """Two types with the same data: u_1 = u_2 = the one-type u, m_k = pi_k m (to solver tolerance)."""
    Q = np.array([[-2.0, 2.0], [1.0, -1.0]])
    one = mp.solve_stationary(_lq_problem(80, 0.3, [0.2]))
    two = mp.solve_stationary(_lq_problem(80, 0.3, [0.2, 0.2], Q))
    assert np.abs(two.u - one.u[None]).max() <= 1e-10
    assert np.abs(two.m - np.array([[1 / 3], [2 / 3]]) * one.m[None]).max() <= 1e-10


@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
def test_generator_is_the_time_dependent_stencil_and_fp_is_its_transpose(bc):
    rng = np.random.default_rng(3)
    grid = mp.Grid([(0, 1)], 40, bc=bc)
    x = grid.axes[0]
    u = np.sin(2 * np.pi * x) + 0.3 * np.cos(6 * np.pi * x)
    m = 1.0 + 0.5 * rng.random(40)
    m /= m.sum() * grid.spacing[0]
    sp_pb = mp.StationaryProblem(grid, 0.5, coupling=mp.LocalPower(1.0), potential=np.cos(2 * np.pi * x),
                                 discount=0.7)
    sysm = StationarySystem(sp_pb)
    A = sysm.generator_matrix(u[None])
    # the same rows as the time-dependent implicit step: M = I + dt L
    td = mp.MFGProblem(grid, T=1.0, Nt=8, sigma=0.5, m0=m)
    M = step_factors(td, u, 0)[0]
    L = (M - sp.identity(40)) / td.dt
    assert abs(A - L).max() <= 1e-12 * abs(L).max()
    # generator rows sum to 0; Jacobian: HJB block rho I + A, FP block exactly A^T
    assert np.abs(A @ np.ones(40)).max() <= 1e-12 * abs(A).max()
    J = sysm.jacobian(u[None], m[None])
    H = J[:40, :40]
    F = J[40:80, 40:80]
    assert abs((F + 0.7 * sp.identity(40)) - H.T).max() == 0.0
    assert abs(F - A.T).max() == 0.0


@pytest.mark.parametrize("ergodic", [True, False])
def test_jacobian_matches_finite_differences(ergodic):
    """Every block of the assembled Jacobian (two types, periodic, a local and a mean coupling) against central
    differences of the residuals."""
    grid = mp.Grid([(0, 1)], 16, bc="periodic")
    x = grid.axes[0]
    pb = mp.StationaryProblem(grid, 0.5, coupling=mp.LocalPower(0.7, 2) + mp.QuadraticInteraction(0.8),
                              potential=[np.cos(2 * np.pi * x), np.sin(2 * np.pi * x)],
                              discount=0.0 if ergodic else 0.5, switching=Q2)
    sysm = StationarySystem(pb)
    rng = np.random.default_rng(0)
    u = np.stack([np.sin(2 * np.pi * x + 0.3), 0.5 * np.cos(4 * np.pi * x)]) + 0.01 * rng.random((2, 16))
    m = 0.5 + rng.random((2, 16))
    lam = 0.3

    def R(z):
        KN = 32
        uu, mm = z[:KN].reshape(2, 16), z[KN:2 * KN].reshape(2, 16)
        la = z[2 * KN] if ergodic else 0.0
        mu = z[-1]
        return sysm.vector(sysm.residuals(uu, mm, la, mu))

    z = np.concatenate([u.ravel(), m.ravel()] + ([[lam]] if ergodic else []) + [[0.0]])
    J = sysm.jacobian(u, m).toarray()
    assert J.shape == (sysm.size, sysm.size)
    eps = 1e-7
    Jfd = np.stack([(R(z + eps * e) - R(z - eps * e)) / (2 * eps) for e in np.eye(z.size)], axis=1)
    assert np.abs(J - Jfd).max() <= 1e-6 * np.abs(J).max()


def test_quadratic_convergence_and_history():
    r = mp.solve_stationary(_lq_problem(100, 0.0, [0.3]))
    hist = r.history["hjb"]
    assert r.iterations == len(hist) - 1 and len(r.history["step"]) == r.iterations
    # the last steps above round-off: e_{k+1} <= C e_k^2 (quadratic), with full steps
    assert hist[-1] <= 1e-10
    assert hist[-2] <= 10 * hist[-3] ** 2 and hist[-3] <= 10 * hist[-4] ** 2
    assert r.history["step"][-1] == 1.0


def test_periodic_ergodic_matches_turnpike_of_time_dependent_solver():
    """Ergodic periodic game (potential -cos 2 pi x, congestion): in the middle of a long horizon the
    time-dependent discrete solution is the stationary discrete one (to the exponentially small turnpike
    error): m(T/2) = m, (u(t) - u(t'))/(t' - t) = lambda, u(T/2) = u up to a constant."""
    N, sigma = 60, 0.6
    grid = mp.Grid([(0, 1)], N, bc="periodic")

    def V(x):
        return -np.cos(2 * np.pi * x)

    rs = mp.solve_stationary(mp.StationaryProblem(grid, sigma, coupling=mp.LocalPower(1.0), potential=V))
    assert rs.converged and rs.m.min() > 0.5
    T, Nt = 10.0, 500
    td = mp.MFGProblem(grid, T=T, Nt=Nt, sigma=sigma, m0=np.ones(N), coupling=mp.LocalPower(1.0),
                       potential=lambda x, t: V(x))
    r = mp.solve(td, method="newton", tol=1e-12)
    n, j = Nt // 2, Nt // 10
    assert np.abs(r.m[n] - rs.m).max() <= 1e-10
    assert abs((r.u[n - j].mean() - r.u[n + j].mean()) / (2 * j * td.dt) - rs.lam) <= 1e-10
    assert np.abs((r.u[n] - r.u[n].mean()) - (rs.u - rs.u.mean())).max() <= 1e-10


def test_bad_input_names_the_parameter():
    grid = mp.Grid([(0, 1)], 20)
    with pytest.raises(ValueError, match="discount"):
        mp.StationaryProblem(grid, 0.5, discount=-0.1)
    with pytest.raises(ValueError, match="sigma"):
        mp.StationaryProblem(grid, 0.0)
    with pytest.raises(ValueError, match=r"switching: row 0 sums to"):
        mp.StationaryProblem(grid, 0.5, switching=[[-1.0, 0.5], [0.3, -0.3]])
    with pytest.raises(ValueError, match=r"switching\[1, 0\] = -0.3 < 0"):
        mp.StationaryProblem(grid, 0.5, switching=[[0.0, 0.0], [-0.3, 0.3]])
    with pytest.raises(ValueError, match="square"):
        mp.StationaryProblem(grid, 0.5, switching=[[0.0, 0.0]])
    with pytest.raises(ValueError, match="potential: 3 entries for 2 types"):
        mp.StationaryProblem(grid, 0.5, switching=Q2, potential=[0, 0, 0])
    with pytest.raises(NotImplementedError, match="3-D grid: the stationary solver takes 1-D and 2-D"):
        mp.StationaryProblem(mp.Grid([(0, 1)] * 3, 4), 0.5)
    with pytest.raises(ValueError, match="discount = 0 with exit sides"):
        mp.StationaryProblem(mp.Grid([(0, 1)], 8, bc=(("reflecting", "exit"),)), 0.5)
    with pytest.raises(ValueError, match="tol"):
        mp.solve_stationary(mp.StationaryProblem(grid, 0.5), tol=-1)


def test_save_and_load_roundtrip(tmp_path):
    r = mp.solve_stationary(_lq_problem(60, 0.0, [-0.5, 1.0], Q2))
    path = tmp_path / "stat.h5"
    r.save(path)
    back = load_stationary(path)
    assert np.array_equal(back.u, r.u) and np.array_equal(back.m, r.m)
    assert back.lam == r.lam and back.converged and back.status == r.status
    assert np.array_equal(back.switching, Q2) and back.grid == r.grid
    assert np.array_equal(back.history["hjb"], r.history["hjb"])


@pytest.mark.parametrize("name", ["lq-ergodic", "lq-discounted", "lq-switching"])
def test_stationary_cases_validate(name):
    from mfg_pde import cases

    case = cases.get(name)
    assert case.has_oracle      # part of `mfg-pde validate`
    run = case.validate()
    assert run.result.converged and run.passed
    orders = [c for c in run.checks if c.quantity.endswith("observed order")]
    assert orders and all(0.8 <= c.error <= 1.3 for c in orders)
    assert {"duality ||A_FP - A_HJB^T||", "negative density max(-min m, 0)"} <= {c.quantity for c in run.checks}


def test_stationary_case_cli_run_and_method(tmp_path, capsys):
    from mfg_pde.cli import main

    out = tmp_path / "sw.h5"
    assert main(["run", "lq-switching", "--set", "rho=0.5", "--out", str(out), "-q"]) == 0
    back = load_stationary(out)
    assert back.case == "lq-switching" and back.params["rho"] == 0.5 and back.lam is None
    assert main(["run", "lq-ergodic", "--method", "anderson", "-q"]) == 2
    assert "solved by Newton" in capsys.readouterr().err
