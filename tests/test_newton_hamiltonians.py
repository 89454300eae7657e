"""Newton on the whole discrete system for the general Hamiltonians (``newton.ham_terms``): the Jacobian is
exact (against central differences of the residual, 1-D assembled and 2-D matrix-free), Newton converges
quadratically, agrees with the fixed-point loops to round-off, and converges on a hard congestion corner
where Picard fails (and ``auto`` then lets Newton win).  The same for the social optimum with congestion
(``PlannerCongestion``: the FP rows take other weights than the planner's HJB rows)."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.newton.ham_terms import ham_curv
from mfg_pde.newton.system_1d import DiscreteSystem
from mfg_pde.newton.system_split import SplitSystem
from mfg_pde.result import ProblemRebuildError


def _sep():
    return mp.Separable(lambda p: np.cosh(p) - 1.0, np.sinh, p_max=6.0, name="cosh")


HAMS = {"power": lambda: mp.Power(1.7), "bounded": lambda: mp.BoundedControl(0.3),
        "congestion": lambda: mp.Congestion(1.0, 2.0, 1.0), "congestion-sqrt": lambda: mp.Congestion(0.5, 3.0, 0.5),
        "separable": _sep,
        # the planner's HJB Hamiltonian of objective='social' (HJB weights w_s = w + m w', FP weights w)
        "planner-congestion": lambda: mp.Congestion(1.0, 2.0, 1.0).first_variation(),
        "planner-congestion-sqrt": lambda: mp.Congestion(0.5, 3.0, 0.5).first_variation()}


def _problem(grid, ham, Nt=6, T=0.5, sigma=0.4):
    ax = grid.mesh()
    m0 = mp.normalise(grid, 1.0 + 0.5 * np.sin(2 * np.pi * ax[0]) * (np.cos(2 * np.pi * ax[1]) if grid.ndim > 1 else 1))
    pot = (lambda x, t: -np.cos(2 * np.pi * x)) if grid.ndim == 1 else (lambda x, y, t: -np.cos(2 * np.pi * x))
    return mp.MFGProblem(grid, T, Nt, sigma, m0, coupling=mp.LocalPower(1.0), potential=pot, hamiltonian=ham)


def test_curvature_is_the_derivative_of_the_upwind_coefficient():
    """ham_curv = d/dp h'(p) (the kernels' h', ``Hamiltonian.dH``) away from the Power secant zone."""
    p = np.array([-2.3, -0.7, -0.05, 0.05, 0.4, 1.9])
    for make in (lambda: mp.Power(1.5), lambda: mp.BoundedControl(1.0), _sep):
        ham = make()
        eps = 1e-6
        fd = (ham.dH(p + eps) - ham.dH(p - eps)) / (2 * eps)
        got = np.array([ham_curv(v, ham.kind, ham.params(), 1.0) for v in p])
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-8)
    cong = mp.Congestion(1.0, 2.0, 1.0)
    assert ham_curv(0.3, cong.kind, cong.params(), 0.25) == 0.25   # h = w p^2 / 2: h'' = w


@pytest.mark.parametrize("bc", ["periodic", "reflecting"])
@pytest.mark.parametrize("name", list(HAMS))
def test_jacobian_1d_is_exact(name, bc):
    grid = mp.Grid([(0, 1)], 12, bc)
    pb = _problem(grid, HAMS[name](), Nt=4)
    S = DiscreteSystem(pb)
    rng = np.random.default_rng(3)
    Nt, N = pb.Nt, grid.size
    u = 0.3 * rng.normal(size=(Nt + 1, N))
    m = 0.5 + np.abs(rng.normal(size=(Nt + 1, N)))
    S.complete(u, m)
    ev = S.evaluate(u, m)
    J = S.jacobian(u, m, ev).toarray()
    x0 = np.concatenate([u[:Nt].ravel(), m[1:].ravel()])
    eps = 1e-7
    Jfd = np.empty_like(J)
    for j in range(x0.size):
        r = []
        for sg in (1.0, -1.0):
            x = x0.copy()
            x[j] += sg * eps
            uu, mm = u.copy(), m.copy()
            uu[:Nt] = x[:Nt * N].reshape(Nt, N)
            mm[1:] = x[Nt * N:].reshape(Nt, N)
            S.complete(uu, mm)
            e = S.evaluate(uu, mm)
            r.append(np.concatenate([e["RH"].ravel(), e["RF"].ravel()]))
        Jfd[:, j] = (r[0] - r[1]) / (2 * eps)
    assert np.abs(J - Jfd).max() <= 1e-7 * np.abs(J).max()
    du, dm = rng.normal(size=(Nt, N)), rng.normal(size=(Nt, N))
    JH, JF = S.jvp(u, m, ev, S.derivative(m), du, dm)
    v = J @ np.concatenate([du.ravel(), dm.ravel()])
    np.testing.assert_allclose(np.concatenate([JH.ravel(), JF.ravel()]), v, atol=1e-12 * np.abs(v).max())


@pytest.mark.parametrize("bc", ["periodic", "reflecting"])
@pytest.mark.parametrize("name", list(HAMS))
def test_jacobian_split_2d_is_exact(name, bc):
    grid = mp.Grid([(0, 1), (0, 1)], [7, 6], bc)
    pb = _problem(grid, HAMS[name](), Nt=3)
    S = SplitSystem(pb)
    rng = np.random.default_rng(4)
    U = 0.3 * rng.normal(size=S.ext_shape)
    Mu = 0.5 + np.abs(rng.normal(size=S.ext_shape))
    S.complete(U, Mu)
    ev = S.evaluate(U, Mu)
    Nt = pb.Nt
    du, dm = rng.normal(size=(2, Nt) + S.ext_shape[1:])
    JH, JF = S.jvp(U, Mu, ev, S.derivative(Mu), du, dm)
    eps = 1e-8
    r = []
    for sg in (1.0, -1.0):
        U2, M2 = U.copy(), Mu.copy()
        U2[:Nt] += sg * eps * du
        M2[1:] += sg * eps * dm
        S.complete(U2, M2)
        e = S.evaluate(U2, M2)
        r.append((e["RH"], e["RF"]))
    assert np.abs((r[0][0] - r[1][0]) / (2 * eps) - JH).max() <= 1e-6 * np.abs(JH).max()
    assert np.abs((r[0][1] - r[1][1]) / (2 * eps) - JF).max() <= 1e-6 * np.abs(JF).max()


def _quadratic_step(res, tol):
    """Whether some Newton step from a residual in (tol, 1e-2] lands below 100 res^2 (quadratic rate)."""
    return any(a <= 1e-2 and tol < a and b <= 100.0 * a * a for a, b in zip(res[:-1], res[1:]))


@pytest.mark.parametrize("name,ham", [("bounded", mp.BoundedControl(0.5)), ("congestion", mp.Congestion(1.0, 2.0, 1.0)),
                                      ("separable", _sep()), ("power", mp.Power(1.8))])
def test_newton_1d_quadratic_and_equal_to_anderson(name, ham):
    grid = mp.Grid([(0, 1)], 100, "periodic")
    pb = mp.MFGProblem(grid, 1.0, 50, 0.5, mp.normalise(grid, np.ones(100)), coupling=mp.LocalPower(1.0),
                       potential=lambda x, t: -np.cos(2 * np.pi * x), hamiltonian=ham)
    tol = 1e-10
    r = mp.solve(pb, method="newton", tol=tol)
    a = mp.solve(pb, method="anderson", tol=1e-11)
    assert r.converged and a.converged
    res = r.history["residual"]
    assert r.iterations <= 8, res
    assert _quadratic_step(res, tol), res
    assert np.abs(r.u - a.u).max() < 1e-9 and np.abs(r.m - a.m).max() < 1e-9
    assert r.history["mass_error"][-1] < 1e-12 and r.m.min() >= 0.0


def test_newton_power_15_reaches_its_residual_floor():
    """Power(1.5): h' is only Hoelder at 0, the residual has a floor near 1e-7 here (README); to tol 1e-6 Newton
    takes 7 steps where Anderson needs 85 (periodic) or does not converge in 300 (reflecting: measured)."""
    for bc in ("periodic", "reflecting"):
        grid = mp.Grid([(0, 1)], 100, bc)
        pb = mp.MFGProblem(grid, 1.0, 50, 0.5, mp.normalise(grid, np.ones(100)), coupling=mp.LocalPower(1.0),
                           potential=lambda x, t: -np.cos(2 * np.pi * x), hamiltonian=mp.Power(1.5))
        n = mp.solve(pb, method="newton", tol=1e-6)
        assert n.converged and n.iterations <= 8, (bc, n.history["residual"])
        if bc == "periodic":
            a = mp.solve(pb, method="anderson", tol=1e-6, max_iter=200)
            assert a.converged and a.iterations >= 4 * n.iterations
            assert np.abs(n.m - a.m).max() < 1e-5 and np.abs(n.u - a.u).max() < 1e-7


@pytest.mark.parametrize("name,ham", [("congestion", mp.Congestion(1.0, 2.0, 1.0)), ("power", mp.Power(1.8)),
                                      ("separable", _sep())])
def test_newton_2d_converges_and_equals_anderson(name, ham):
    grid = mp.Grid([(0, 1), (0, 1)], 16, "periodic")
    X = grid.mesh()[0]
    pb = mp.MFGProblem(grid, 0.5, 12, 0.5, mp.normalise(grid, 1 + 0.5 * np.sin(2 * np.pi * X)),
                       coupling=mp.LocalPower(1.0), hamiltonian=ham,
                       potential=lambda x, y, t: -np.cos(2 * np.pi * x) * np.cos(2 * np.pi * y))
    r = mp.solve(pb, method="newton", tol=1e-10)
    a = mp.solve(pb, method="anderson", tol=1e-11)
    assert r.converged and a.converged
    assert r.iterations <= 12, r.history["residual"]
    if name != "power":
        assert _quadratic_step(r.history["residual"], 1e-10), r.history["residual"]
    assert np.abs(r.u - a.u).max() < 1e-9 and np.abs(r.m - a.m).max() < 1e-9


def test_newton_3d_congestion_equals_anderson():
    grid = mp.Grid([(0, 1)] * 3, 8, "periodic")
    X = grid.mesh()[0]
    pb = mp.MFGProblem(grid, 0.5, 6, 0.5, mp.normalise(grid, 1 + 0.5 * np.sin(2 * np.pi * X)),
                       coupling=mp.LocalPower(1.0), hamiltonian=mp.Congestion(1.0, 2.0, 1.0),
                       potential=lambda x, y, z, t: -np.cos(2 * np.pi * x) * np.cos(2 * np.pi * z))
    r = mp.solve(pb, method="newton", tol=1e-10)
    a = mp.solve(pb, method="anderson", tol=1e-11)
    assert r.converged and r.iterations <= 6
    assert np.abs(r.u - a.u).max() < 1e-10 and np.abs(r.m - a.m).max() < 1e-10


def test_newton_converges_on_the_hard_congestion_corner():
    """Strong congestion (c = 50) and little noise (sigma = 0.05) with an attractive potential and a stiff local
    cost: damped Picard does not converge in 200 iterations, Anderson needs about ten times Newton's count,
    Newton converges in a handful; ``auto`` races them and Newton wins."""
    grid = mp.Grid([(0, 1)], 100, "periodic")
    pb = mp.MFGProblem(grid, 1.0, 50, 0.05, mp.normalise(grid, np.ones(100)), coupling=mp.LocalPower(4.0),
                       potential=lambda x, t: -2 * np.cos(2 * np.pi * x), hamiltonian=mp.Congestion(1.0, 50.0, 1.0))
    newton = mp.solve(pb, method="newton", tol=1e-10)
    assert newton.converged and newton.iterations <= 8, newton.history["residual"]
    picard = mp.solve(pb, method="picard", tol=1e-10, max_iter=200)
    assert not picard.converged
    anderson = mp.solve(pb, method="anderson", tol=1e-10, max_iter=200)
    assert anderson.iterations >= 4 * newton.iterations
    auto = mp.solve(pb, method="auto", tol=1e-10)
    assert auto.converged and auto.solver.get("winner") == "newton"
    assert np.abs(auto.m - newton.m).max() < 1e-8 and np.abs(auto.u - newton.u).max() < 1e-8
    assert newton.history["mass_error"][-1] < 1e-12 and newton.m.min() >= 0.0


# ----------------------------------------------------------------------------- HDF5 round trip
def _cosh_h(p):
    return np.cosh(p) - 1.0


def _cosh_dh(p):
    return np.sinh(p)


@pytest.mark.parametrize("ham", [mp.Power(1.6), mp.BoundedControl(0.4), mp.Congestion(0.5, 3.0, 0.5),
                                 mp.Separable(_cosh_h, _cosh_dh, p_max=5.0, n=2001, name="cosh")],
                         ids=["power", "bounded", "congestion", "separable"])
def test_hdf5_round_trip_rebuilds_the_hamiltonian(ham, tmp_path):
    grid = mp.Grid([(0, 1)], 60, "periodic")
    pb = mp.MFGProblem(grid, 0.5, 20, 0.5, mp.normalise(grid, np.ones(60)), coupling=mp.LocalPower(1.0),
                       potential=lambda x, t: -np.cos(2 * np.pi * x), hamiltonian=ham)
    r = mp.solve(pb, method="anderson", tol=1e-12)
    path = tmp_path / "ham.h5"
    r.save(path)
    back = mp.load(path).problem
    assert back is not None
    assert type(back.hamiltonian) is type(ham) and back.hamiltonian.describe() == ham.describe()
    again = mp.solve(back, method="anderson", tol=1e-12)
    assert np.abs(again.u - r.u).max() < 1e-12 and np.abs(again.m - r.m).max() < 1e-12


def test_every_hamiltonian_description_rebuilds():
    from mfg_pde.model.hamiltonians import PlannerCongestion, from_description
    for ham in (mp.Quadratic(), mp.Power(1.3), mp.BoundedControl(2.0), mp.Congestion(0.5, 2.0, 0.5),
                PlannerCongestion(mp.Congestion(0.5, 2.0, 0.5)), mp.Separable(_cosh_h, _cosh_dh, p_max=4.0, n=801)):
        back = from_description(ham.describe())
        assert type(back) is type(ham) and back.describe() == ham.describe()
    with pytest.raises(ValueError, match="unknown type 'cubic'"):
        from_description({"type": "cubic"})


def test_hdf5_separable_with_lambdas_refuses_to_rebuild(tmp_path):
    grid = mp.Grid([(0, 1)], 40, "periodic")
    ham = mp.Separable(lambda p: np.cosh(p) - 1.0, np.sinh, p_max=5.0, name="cosh-lambda")
    pb = mp.MFGProblem(grid, 0.5, 10, 0.5, mp.normalise(grid, np.ones(40)), hamiltonian=ham,
                       potential=lambda x, t: -np.cos(2 * np.pi * x))
    r = mp.solve(pb, method="anderson", tol=1e-10)
    path = tmp_path / "sep.h5"
    r.save(path)
    loaded = mp.load(path)
    assert loaded.problem is None       # the result loads; the problem cannot be rebuilt
    assert loaded.params["hamiltonian"]["name"] == "cosh-lambda" and loaded.params["hamiltonian"]["h"] is None
    with pytest.raises(ProblemRebuildError, match="Separable 'cosh-lambda': h and dh are not importable"):
        mp.load_problem(path)


# ----------------------------------------------------------------------------- validate entries
@pytest.mark.parametrize("name", ["ham-power", "ham-bounded", "ham-congestion"])
def test_validate_entries_pass_with_first_order(name):
    """The manufactured-solution cases of ``mfg-pde validate``: errors within their budgets at N = Nt = 80 and
    observed orders >= 0.8 on the twice finer grid (the checks cannot pass without the order rows)."""
    from mfg_pde import cases
    case = cases.get(name)
    assert case.has_oracle
    run = case.validate({})
    assert run.result.converged
    names = [c.quantity for c in run.checks]
    assert "u (max): observed order" in names and "m (L1 in x and t): observed order" in names
    assert all(c.passed for c in run.checks), [(c.quantity, c.error, c.tol) for c in run.checks]
    orders = [c.error for c in run.checks if c.at_least]
    assert min(orders) > 0.8 and max(orders) < 1.4, orders


# ----------------------------------------------------------------------------- the crowd-congestion case
def test_congestion_without_coupling_is_still_a_coupled_game():
    """H depends on m: no one-shot solve even without a coupling F (``MFGProblem.is_coupled``)."""
    grid = mp.Grid([(0, 1)], 40, "periodic")
    pb = mp.MFGProblem(grid, 0.5, 20, 0.3, mp.normalise(grid, 1 + 0.5 * np.sin(2 * np.pi * grid.axes[0])),
                       potential=lambda x, t: -np.cos(2 * np.pi * x), hamiltonian=mp.Congestion(1.0, 3.0, 1.0))
    assert pb.is_coupled
    r = mp.solve(pb, tol=1e-11)
    n = mp.solve(pb, method="newton", tol=1e-11)
    assert r.converged and r.iterations > 1 and n.converged
    np.testing.assert_allclose(r.m, n.m, atol=1e-9)


def test_crowd_congestion_case_exits_slower_with_mass_balance(tmp_path):
    from mfg_pde import cases
    run = cases.get("crowd-congestion").run({"N": 24, "Nt": 30})
    assert run.result.converged and run.passed, [(c.quantity, c.error, c.tol) for c in run.checks]
    checks = {c.quantity: c for c in run.checks}
    assert checks["outflow balance (mass + outflow - mass0)"].error < 1e-12
    assert checks["slower: mean time in the room, congested - free"].error > 0.05
    out = run.result.outflow
    np.testing.assert_allclose(out.mass + out.cumulative, out.mass0, atol=1e-12)
    path = tmp_path / "crowd.h5"
    run.result.save(path)
    back = mp.load(path)
    assert isinstance(back.problem.hamiltonian, mp.Congestion) and back.problem.hamiltonian.c == 0.5
    np.testing.assert_array_equal(back.case_report.arrays["evacuated_free"], run.result.case_report.arrays["evacuated_free"])


# ----------------------------------------------------------------------------- bad input
def test_bad_hamiltonian_input_names_the_parameter():
    # convex near 0 but not beyond |p| = 1: the sampled table names where h' decreases most
    with pytest.raises(ValueError, match=r"Separable 'wiggle': dh decreases between p = -2 and -1\.99: h is not "
                                         "convex"):
        mp.Separable(lambda p: p * p / 2 - p ** 4 / 12, lambda p: p - p ** 3 / 3, p_max=2.0, n=401, name="wiggle")
    for q in (1.0, 2.01, 3.0):
        with pytest.raises(ValueError, match=r"Power: q = .* must lie in \(1, 2\]"):
            mp.Power(q)
    with pytest.raises(ValueError, match=r"Congestion: c = -0.5 must be >= 0"):
        mp.Congestion(c=-0.5)
    for n in (2.5, "many", True):
        with pytest.raises(ValueError, match="Separable: n = .* whole number"):
            mp.Separable(lambda p: p * p / 2, lambda p: p, n=n)
    from mfg_pde import cases
    from mfg_pde.cases import CaseError
    with pytest.raises(CaseError, match="parameter c=-1"):
        cases.get("crowd-congestion").resolve({"c": -1})


def _social_congestion_1d(bc):
    grid = mp.Grid([(0, 1)], 50, bc)
    return mp.MFGProblem(grid, 0.5, 20, 0.4, mp.normalise(grid, 1 + 0.5 * np.sin(2 * np.pi * grid.axes[0])),
                         coupling=mp.LocalPower(1.0), hamiltonian=mp.Congestion(1.0, 2.0, 1.0),
                         potential=lambda x, t: -np.cos(2 * np.pi * x))


def test_planner_congestion_weight_derivatives_match_differences():
    """dweights (HJB: w_s = w + m w') and fp_dweights (FP: w) of the planner's Hamiltonian, which Newton's
    Jacobian uses, against central differences of the weights."""
    m = np.array([0.05, 0.3, 1.7, 5.0])
    for c0, c, alpha in ((1.0, 2.0, 1.0), (0.5, 3.0, 0.5), (1.0, 1.0, 0.3)):
        ham = mp.Congestion(c0, c, alpha).first_variation()
        eps = 1e-6
        for w, dw in ((ham.weights, ham.dweights), (ham.fp_weights, ham.fp_dweights)):
            fd = (w(m + eps) - w(m - eps)) / (2 * eps)
            np.testing.assert_allclose(dw(m), fd, rtol=1e-7, atol=0)
        assert np.all(ham.dweights(m) != ham.fp_dweights(m))


@pytest.mark.parametrize("bc", ["periodic", "reflecting"])
def test_newton_social_congestion_1d_quadratic_and_equal_to_anderson(bc):
    """objective='social' with congestion: the planner's HJB rows take w_s, the FP rows w (their own blocks in the
    Jacobian); Newton converges quadratically to the Anderson loop's solution of the same planner's system."""
    pb = _social_congestion_1d(bc)
    tol = 1e-10
    n = mp.solve(pb, method="newton", objective="social", tol=tol)
    a = mp.solve(pb, method="anderson", objective="social", tol=1e-11)
    assert n.converged and a.converged and n.solver["objective"] == "social"
    res = n.history["residual"]
    assert n.iterations <= 6 and _quadratic_step(res, tol), res
    assert np.abs(n.u - a.u).max() < 1e-9 and np.abs(n.m - a.m).max() < 1e-9
    assert n.history["mass_error"][-1] < 1e-12 and n.m.min() >= 0.0
    assert abs(n.history["exploitability"][-1]) < 1e-9   # of the planner's system: a convergence certificate
    nash = mp.solve(pb, method="newton", tol=tol)
    assert np.abs(nash.m - n.m).max() > 1e-2   # the two optima differ here: the FP weights matter


@pytest.mark.parametrize("ndim", [2, 3])
def test_newton_social_congestion_split_equals_anderson(ndim):
    grid = mp.Grid([(0, 1)] * ndim, 16 if ndim == 2 else 8, "periodic")
    X = grid.mesh()[0]
    pot = (lambda x, y, t: -np.cos(2 * np.pi * x) * np.cos(2 * np.pi * y)) if ndim == 2 else \
        (lambda x, y, z, t: -np.cos(2 * np.pi * x) * np.cos(2 * np.pi * z))
    pb = mp.MFGProblem(grid, 0.5, 12 if ndim == 2 else 6, 0.5, mp.normalise(grid, 1 + 0.5 * np.sin(2 * np.pi * X)),
                       coupling=mp.LocalPower(1.0), hamiltonian=mp.Congestion(1.0, 2.0, 1.0), potential=pot)
    n = mp.solve(pb, method="newton", objective="social", tol=1e-10)
    a = mp.solve(pb, method="anderson", objective="social", tol=1e-11)
    assert n.converged and n.iterations <= 6, n.history["residual"]
    assert _quadratic_step(n.history["residual"], 1e-10), n.history["residual"]
    assert np.abs(n.u - a.u).max() < 1e-9 and np.abs(n.m - a.m).max() < 1e-9
    assert n.history["mass_error"][-1] < 1e-12 and n.m.min() >= 0.0


def test_auto_races_newton_on_the_social_congestion_corner():
    """The hard congestion corner (c = 50, sigma = 0.05) for the planner: damped Picard does not converge, Anderson
    needs many times Newton's count, and ``auto`` now races Newton, which wins."""
    grid = mp.Grid([(0, 1)], 100, "periodic")
    pb = mp.MFGProblem(grid, 1.0, 50, 0.05, mp.normalise(grid, np.ones(100)), coupling=mp.LocalPower(4.0),
                       potential=lambda x, t: -2 * np.cos(2 * np.pi * x), hamiltonian=mp.Congestion(1.0, 50.0, 1.0))
    newton = mp.solve(pb, method="newton", objective="social", tol=1e-10)
    assert newton.converged and newton.iterations <= 6, newton.history["residual"]
    picard = mp.solve(pb, method="picard", objective="social", tol=1e-10, max_iter=200)
    assert not picard.converged
    anderson = mp.solve(pb, method="anderson", objective="social", tol=1e-10, max_iter=300)
    assert anderson.converged and anderson.iterations >= 4 * newton.iterations
    assert np.abs(anderson.m - newton.m).max() < 1e-8
    auto = mp.solve(pb, method="auto", objective="social", tol=1e-10)
    assert auto.converged and auto.solver.get("winner") == "newton"
    assert np.abs(auto.m - newton.m).max() < 1e-8 and np.abs(auto.u - newton.u).max() < 1e-8
