"""General convex Hamiltonians (``model.hamiltonians``, ``fd.kernels.ham_row``): parameter checks, the reductions
to the quadratic Hamiltonian, the exact transpose (duality, mass, positivity) for each Hamiltonian, and
manufactured solutions with error and observed order in 1-D and 2-D."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from scipy import sparse

import mfg_pde as mp
from mfg_pde.diagnostics.matrices import step_factors, step_operator
from mfg_pde.diagnostics.outflow import outflow_history
from mfg_pde.fd import kernels
from mfg_pde.fd.fp import fp_residual, solve_fp
from mfg_pde.fd.hjb import hjb_residual, solve_hjb
from mfg_pde.fd.operator import as3, kernel_data
from mfg_pde.cases.hamiltonians import manufactured_errors, manufactured_problem, power_solution, sine_solution


# ----------------------------------------------------------------------------- objects and errors
def test_bad_parameters_name_the_parameter():
    for q in (1.0, 0.5, 2.5, np.nan):
        with pytest.raises(ValueError, match="q"):
            mp.Power(q)
    for a in (0.0, -1.0):
        with pytest.raises(ValueError, match="a_max"):
            mp.BoundedControl(a)
    with pytest.raises(ValueError, match="c0"):
        mp.Congestion(c0=0.0)
    with pytest.raises(ValueError, match="c = -1"):
        mp.Congestion(c=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        mp.Congestion(alpha=1.5)
    with pytest.raises(ValueError, match="not convex"):
        mp.Separable(lambda p: np.cos(p) - 1, lambda p: -np.sin(p), p_max=3.0)
    with pytest.raises(ValueError, match=r"dh\(0\)"):
        mp.Separable(lambda p: 0.5 * p * p + p, lambda p: p + 1.0, p_max=3.0)
    with pytest.raises(ValueError, match="integral"):
        mp.Separable(lambda p: p * p, lambda p: p, p_max=3.0)
    grid = mp.Grid([(0, 1)], 10)
    with pytest.raises(TypeError, match="hamiltonian"):
        mp.MFGProblem(grid, 1.0, 4, 0.5, np.ones(10), hamiltonian="quadratic")


def test_derivatives_and_duals():
    p = np.linspace(-3, 3, 61)
    eps = 1e-6
    for H in (mp.Quadratic(), mp.Power(1.5), mp.BoundedControl(0.7), mp.Congestion(1.0, 2.0, 0.5),
              mp.Separable(lambda x: np.cosh(x) - 1, np.sinh, p_max=4.0)):
        m = 0.3
        num = (H.H(p + eps, m) - H.H(p - eps, m)) / (2 * eps)
        np.testing.assert_allclose(H.dH(p, m), num, atol=1e-5)
        # Legendre duality at the optimal control a = -H'(p): H(p) = -a p - l(a)
        a = -H.dH(p, m)
        np.testing.assert_allclose(H.H(p, m), -a * p - H.lagrangian(a, m), atol=1e-6 * (1 + np.abs(p).max()) ** 2)
    C = mp.Congestion(1.0, 2.0, 0.5)
    num = (C.H(p, 0.3 + eps) - C.H(p, 0.3 - eps)) / (2 * eps)
    np.testing.assert_allclose(C.dHdm(p, 0.3), num, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(mp.Power(1.5).lagrangian(2.0), 2.0 ** 3 / 3)   # q' = 3


def test_power_linear_continuation_below_delta():
    """Power(q, delta): h' = delta^(q-2) p below |p| = delta, the power law above; h is C^1 and convex with
    h(0) = h'(0) = 0, within delta^q / 2 of |p|^q / q, Legendre-dual to its lagrangian in both regimes, and the
    kernels' row function returns the same h' and dual cost (``kernels.ham_side``)."""
    from mfg_pde.fd import kernels

    d = 1e-2
    P = mp.Power(1.5, delta=d)
    exact = mp.Power(1.5, delta=0.0)
    p = np.concatenate([np.linspace(-3 * d, 3 * d, 601), np.linspace(-3, 3, 61)])
    assert P.H(0.0) == 0.0 and P.dH(0.0) == 0.0
    np.testing.assert_allclose(P.dH(p), np.where(np.abs(p) < d, d ** -0.5 * p, np.sign(p) * np.abs(p) ** 0.5),
                               rtol=1e-15)
    assert np.max(np.abs(P.H(p) - exact.H(p))) <= 0.5 * d ** 1.5
    eps = 1e-7
    np.testing.assert_allclose(P.dH(p), (P.H(p + eps) - P.H(p - eps)) / (2 * eps), atol=2e-6)
    for side in (d * (1 - 1e-12), d * (1 + 1e-12)):   # continuous at delta (h and h')
        assert abs(P.H(side) - P.H(d)) < 1e-14 and abs(P.dH(side) - P.dH(d)) < 1e-10   # h' d 1e-12 = 1e-15
    a = -P.dH(p)
    np.testing.assert_allclose(P.H(p), -a * p - P.lagrangian(a), atol=1e-14)
    side = [kernels.ham_side(x, P.kind, P.params(), 1.0) for x in p]
    np.testing.assert_allclose([t[0] for t in side], P.dH(p), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose([t[1] for t in side], P.lagrangian(P.dH(p)), rtol=1e-12, atol=1e-18)
    assert P.lipschitz == pytest.approx(d ** -0.5) and exact.lipschitz == np.inf and mp.Power(2.0).lipschitz == 1.0
    # a file written before delta existed rebuilds the exact power law
    from mfg_pde.model.hamiltonians import from_description
    assert from_description({"type": "power", "q": 1.5}).delta == 0.0
    assert from_description(P.describe()).delta == d
    with pytest.raises(ValueError, match="delta"):
        mp.Power(1.5, delta=-1.0)


def test_power_default_converges_where_the_exact_power_law_could_not():
    """The README's Power(1.5) example with the defaults: auto converges to tol 1e-8.  With the exact power law
    (delta = 0) every loop stopped near a residual of 3e-7 (the best response moves by (round-off of D u)^(1/2)
    where u is flat)."""
    grid = mp.Grid([(0, 1)], 200, "periodic")
    base = dict(T=1.0, Nt=100, sigma=0.4, m0=mp.normalise(grid, np.ones(200)), coupling=mp.LocalPower(1.0),
                potential=lambda x, t: -np.cos(2 * np.pi * x))
    r = mp.solve(mp.MFGProblem(grid, hamiltonian=mp.Power(1.5), **base))
    assert r.converged and r.history["residual"][-1] <= 1e-8
    assert r.mass_error() < 1e-12 and r.m.min() >= 0.0


# ----------------------------------------------------------------------------- reductions to the quadratic case
def _lq_problems(ham):
    kw = {} if ham is None else {"hamiltonian": ham}
    g1 = mp.Grid([(-2, 2)], 60)
    yield mp.MFGProblem(g1, 0.5, 20, 0.6, mp.gaussian(g1, 0.3, 0.5), coupling=mp.LocalPower(1.0),
                        potential=lambda x, t: 0.5 * x ** 2, drift=lambda x, t: [np.sin(x)],
                        terminal_cost=lambda x: np.cos(x), **kw)
    gp = mp.Grid([(0, 1)], 64, "periodic")
    yield mp.MFGProblem(gp, 0.5, 20, 0.4, mp.normalise(gp, 1 + 0.5 * np.sin(2 * np.pi * gp.axes[0])),
                        coupling=mp.LocalPower(1.0), potential=lambda x, t: -np.cos(2 * np.pi * x), **kw)
    g2 = mp.Grid([(-2, 2), (-2, 2)], (20, 17), [("reflecting", "exit"), "periodic"])
    yield mp.MFGProblem(g2, 0.5, 10, 0.6, mp.gaussian(g2, (0.3, 0.0), (0.6, 0.6)), coupling=mp.LocalPower(1.0),
                        potential=lambda x, y, t: 0.5 * x ** 2, terminal_cost=lambda x, y: np.cos(x + y),
                        exit_cost=0.5, **kw)


@pytest.mark.parametrize("ham", [mp.Power(2.0), mp.Congestion(1.0, 0.0, 1.0), mp.BoundedControl(1e6),
                                 mp.Separable(lambda p: 0.5 * p * p, lambda p: p, p_max=50.0, n=11)],
                         ids=["power2", "congestion-c0", "bounded-inf", "separable-quadratic"])
def test_reductions_reproduce_the_quadratic_hamiltonian(ham):
    """Power(2), congestion with c = 0, a bound never reached and a tabulated p^2/2 take the general kernels
    (not the quadratic fast path) and must give the quadratic solution to round-off (1-D reflecting with a
    drift, 1-D periodic, 2-D with an exit side)."""
    for ref_pb, pb in zip(_lq_problems(None), _lq_problems(ham)):
        assert kernel_data(pb, exits_supported=True).op.hkind != 0
        ref = mp.solve(ref_pb, method="anderson", tol=1e-10)
        res = mp.solve(pb, method="anderson", tol=1e-10)
        assert ref.converged and res.converged
        for a, b in ((ref.u, res.u), (ref.m, res.m)):
            assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()


# ----------------------------------------------------------------------------- duality, mass, positivity
HAMS = [("power", mp.Power(1.4)), ("bounded", mp.BoundedControl(0.4)), ("congestion", mp.Congestion(0.5, 3.0, 0.7)),
        ("separable", mp.Separable(lambda p: np.cosh(p) - 1, np.sinh, p_max=6.0, n=2001))]
DUAL_CASES = [((40,), "reflecting"), ((40,), "periodic"), ((12, 9), [("exit", "reflecting"), "periodic"]),
              ((6, 5, 7), ["reflecting", "periodic", ("exit", "reflecting")])]


def _dual_problem(shape, bc, ham, Nt=6, T=0.3, sigma=0.6):
    grid = mp.Grid([(-2.0, 2.0)] * len(shape), shape, bc)
    m0 = mp.gaussian(grid, 0.3, max(0.6, 1.5 * max(grid.spacing)))

    def b(*args):
        *xs, t = args
        return [np.sin(x + t) - 0.5 * x for x in xs]

    pot = lambda *args: 0.5 * sum(x ** 2 for x in args[:-1]) * (1 + args[-1])  # noqa: E731
    return mp.MFGProblem(grid, T, Nt, sigma, m0, potential=pot, drift=b, hamiltonian=ham,
                         terminal_cost=lambda *xs: 2 * np.cos(sum(xs)), exit_cost=0.8 if grid.has_exits else 0.0)


@pytest.mark.parametrize("name,ham", HAMS, ids=[h[0] for h in HAMS])
@pytest.mark.parametrize("shape,bc", DUAL_CASES)
def test_fp_is_exact_transpose_for_every_hamiltonian(name, ham, shape, bc):
    pb = _dual_problem(shape, bc, ham)
    grid = pb.grid
    f = pb.running_cost(None)
    rng = np.random.default_rng(1)
    m_data = np.broadcast_to(pb.m0, (pb.Nt + 1,) + grid.shape) * (1 + rng.random((pb.Nt + 1,) + grid.shape))
    sol = solve_hjb(pb, f, pb.terminal_values(None), m=m_data)
    assert np.all(sol.newton > 0)
    m = solve_fp(pb, sol)
    kd = kernel_data(pb, exits_supported=True)
    op = kd.op_for(m_data)
    for n in range(pb.Nt):
        P = step_operator(pb, sol.u[n], n, sol.states[n], op)
        np.testing.assert_allclose(m[n + 1].ravel(), spla.spsolve(P.T.tocsc(), m[n].ravel()), rtol=1e-10, atol=1e-13)
        prev = sol.u[n + 1].ravel() + pb.dt * f[n].ravel()
        for k, M in enumerate(step_factors(pb, sol.u[n], n, sol.states[n], op)):
            s_k = sol.u[n] if k == grid.ndim - 1 else sol.states[n, k].reshape(grid.shape)
            c = np.empty(kd.shape3)
            dk = kd.drift[0 if kd.drift.shape[0] == 1 else n][k]
            kernels.axis_source(as3(s_k, 0, kd.shape3), dk, k, kd.axis(k, op=op, n=n), c)
            rhs = prev + pb.dt * c.ravel()
            np.testing.assert_allclose(M @ s_k.ravel(), rhs, rtol=0, atol=1e-10 * np.abs(rhs).max())
            prev = s_k.ravel()
            off = (M - sparse.diags(M.diagonal())).tocsr()
            assert off.data.max(initial=0.0) <= 0.0                      # monotone: an M-matrix
            assert np.asarray(M.sum(axis=1)).min() >= 1.0 - 1e-13        # row sums 1 (1 + dt r on exit cells)
        x = np.cos(np.arange(grid.size))
        assert abs(m[n + 1].ravel() @ (P @ x) - m[n].ravel() @ x) < 1e-12   # discrete duality
    # the residual pass evaluates the Hamiltonian at the density it is given: the weights of m_data
    assert hjb_residual(pb, sol, f) < 1e-11 or pb.hamiltonian.depends_on_m
    fake = type(sol)(sol.u, sol.states, sol.newton, op)
    from mfg_pde.fd.split_residuals import relative_residuals
    h_res, f_res = relative_residuals(pb, fake, f, m_data)
    assert h_res < 1e-11
    assert fp_residual(pb, sol, m) < 1e-12 or pb.hamiltonian.depends_on_m
    # mass (outflow balance with exits) and positivity
    out = outflow_history(pb, sol, m)
    np.testing.assert_allclose(grid.integrate(m) + out.cumulative, 1.0, atol=1e-13)
    assert m.min() >= 0.0


@pytest.mark.parametrize("name,ham", HAMS, ids=[h[0] for h in HAMS])
def test_mass_and_positivity_for_huge_dt(name, ham):
    pb = _dual_problem((12, 9), "reflecting", ham, Nt=2, T=50.0, sigma=0.3)
    sol = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None),
                    m=np.broadcast_to(pb.m0, (3,) + pb.grid.shape))
    m = solve_fp(pb, sol)
    np.testing.assert_allclose(pb.grid.integrate(m), 1.0, atol=1e-13)
    assert m.min() >= 0.0


# ----------------------------------------------------------------------------- coupled solves
def test_congestion_coupled_loops_converge():
    grid = mp.Grid([(0.0, 1.0)], 80, "periodic")
    pb = mp.MFGProblem(grid, 1.0, 40, 0.5, mp.normalise(grid, np.ones(80)), coupling=mp.LocalPower(1.0),
                       potential=lambda x, t: -np.cos(2 * np.pi * x), hamiltonian=mp.Congestion(1.0, 2.0, 1.0))
    res = {meth: mp.solve(pb, method=meth, tol=1e-9) for meth in ("anderson", "picard", "auto")}
    for meth, r in res.items():
        assert r.converged, meth
        assert r.history["mass_error"][-1] < 1e-13 and r.m.min() >= 0.0
        gap = mp.exploitability(pb, r)
        assert -1e-9 <= gap < 1e-6, (meth, gap)
    np.testing.assert_allclose(res["picard"].m, res["anderson"].m, atol=1e-7)
    # congestion slows the crowd down: against the quadratic Hamiltonian the density is less concentrated
    quad = mp.solve(mp.MFGProblem(grid, 1.0, 40, 0.5, pb.m0, coupling=mp.LocalPower(1.0),
                                  potential=lambda x, t: -np.cos(2 * np.pi * x)), tol=1e-9)
    assert res["anderson"].m[-1].max() < quad.m[-1].max()
    newton = mp.solve(pb, method="newton", tol=1e-10)   # tests/test_newton_hamiltonians.py has the rest
    assert newton.converged
    np.testing.assert_allclose(newton.m, res["anderson"].m, atol=1e-8)


# ----------------------------------------------------------------------------- manufactured solutions
def _power_solution(q):
    return power_solution(q)


def _bounded_solution(a_max):
    return sine_solution(a_max)


def _manufactured(ham, sol, N, ndim=1, T=0.5):
    """Errors (u max, m L1) of the manufactured MFG of ``cases.hamiltonians`` (its docstring has the solution)."""
    pb, exact_u, exact_m = manufactured_problem(ham, sol, N, ndim=ndim, T=T)
    r = mp.solve(pb, method="anderson", tol=1e-10)
    assert r.converged
    return manufactured_errors(r, pb, exact_u, exact_m)


def _orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


@pytest.mark.parametrize("ham,sol", [(mp.Power(1.5), _power_solution(1.5)),
                                     (mp.BoundedControl(0.9), _bounded_solution(0.9))], ids=["power1.5", "bounded0.9"])
def test_manufactured_solution_1d_first_order(ham, sol):
    """h = dt = 1/N: the coupled discrete solution converges to the manufactured one at first order (u: orders
    0.86, 0.92 (power), 0.96, 0.97 (bounded) measured; m: 1.06-1.4, its O(h) error changes sign in places)."""
    errs = [_manufactured(ham, sol, N) for N in (80, 160, 320)]
    eu = [e[0] for e in errs]
    em = [e[1] for e in errs]
    ou, om = _orders(eu), _orders(em)
    assert eu[-1] < 0.003 and em[-1] < 0.002, (eu, em)
    assert np.all(ou > 0.8) and np.all(ou < 1.3), (eu, ou)
    assert np.all(om > 0.8), (em, om)


def test_manufactured_solution_2d_first_order():
    """The same in 2-D (u = U(x) + U(y), m = M(x) M(y)), BoundedControl through the direction-split kernels:
    measured orders 0.83, 0.93 (u) and 0.85, 0.93 (m)."""
    ham, sol = mp.BoundedControl(0.9), _bounded_solution(0.9)
    errs = [_manufactured(ham, sol, N, ndim=2) for N in (16, 32, 64)]
    ou, om = _orders([e[0] for e in errs]), _orders([e[1] for e in errs])
    assert errs[-1][0] < 0.02 and errs[-1][1] < 0.012, errs
    assert np.all(ou > 0.75) and np.all(ou < 1.3) and ou[-1] > 0.85, (errs, ou)
    assert np.all(om > 0.75) and np.all(om < 1.3) and om[-1] > 0.85, (errs, om)


def test_result_alpha_is_minus_dH_dp():
    """result.alpha applies the problem's Hamiltonian: |alpha| <= a_max with a bound that is active (the
    quadratic solution's speeds exceed it), and -u_x / (c0 + c m) with congestion."""
    grid = mp.Grid([(0.0, 1.0)], 100, "periodic")
    base = dict(T=1.0, Nt=50, sigma=0.4, m0=mp.normalise(grid, np.ones(100)), coupling=mp.LocalPower(1.0),
                potential=lambda x, t: -np.cos(2 * np.pi * x))
    quad = mp.solve(mp.MFGProblem(grid, **base), tol=1e-9)
    assert np.abs(quad.alpha).max() > 0.8
    bounded = mp.solve(mp.MFGProblem(grid, hamiltonian=mp.BoundedControl(0.5), **base), tol=1e-9)
    assert bounded.converged
    np.testing.assert_allclose(np.abs(bounded.alpha).max(), 0.5, rtol=1e-12)
    cong = mp.solve(mp.MFGProblem(grid, hamiltonian=mp.Congestion(1.0, 2.0, 1.0), **base), tol=1e-9)
    ux = (np.roll(cong.u, -1, axis=1) - np.roll(cong.u, 1, axis=1)) / (2 * grid.spacing[0])
    np.testing.assert_allclose(cong.alpha[..., 0], -ux / (1 + 2 * cong.m), rtol=1e-10, atol=1e-12)
