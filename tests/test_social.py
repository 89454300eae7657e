"""Mean-field control (objective="social") and the price of anarchy (docs/method.md, section 'Mean-field control
and the price of anarchy')."""

from __future__ import annotations

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde import cases, cli
from mfg_pde.diagnostics.anarchy import total_cost
from mfg_pde.studies.anarchy import price_of_anarchy
from mfg_pde.model.couplings import Coupling
from mfg_pde.model.social import social_problem
from mfg_pde.newton.derivatives import coupling_derivative
from mfg_pde.oracles import analytic

GRID1 = mp.Grid([(-2.0, 3.0)], 60)


def _phi(coupling, grid, m):
    """Total interaction cost per level, int F(x, m) m dx (the planner's Phi), for m shaped (K, *grid)."""
    f = coupling.field(grid, np.zeros(m.shape[0]), m)
    return np.sum(f * m, axis=tuple(range(1, m.ndim))) * grid.cell_volume


def _skewed(d):
    return np.exp(-d ** 2) * (1.0 + 0.5 * np.tanh(3.0 * d))   # not even: K(x, y) != K(y, x)


COUPLINGS = {
    "local-power": mp.LocalPower(0.7, 1.5),
    "local-linear": mp.LocalPower(-0.4, 1.0),
    "local-log": mp.LocalLog(0.3),
    "kernel-even": mp.KernelInteraction(lambda d: np.exp(-4.0 * d ** 2), 0.8),
    "kernel-skewed": mp.KernelInteraction(_skewed, 0.8),
    "quadratic-interaction": mp.QuadraticInteraction(1.3),
    "mean-attraction": mp.MeanAttraction(1.7, 0.3),
    "mean-attraction-s2": mp.MeanAttraction(0.9, 2.0),
    "fixed-guidance": mp.FixedGuidance(1.1, 0.4),
    "sum-scaled": 0.5 * mp.MeanAttraction(1.0, -0.5) + mp.LocalPower(0.3, 2.0),
}


@pytest.mark.parametrize("name", sorted(COUPLINGS))
def test_first_variation_is_the_derivative_of_the_total_interaction_cost(name):
    # d/de Phi(m + e dm) at e = 0 equals int F_soc(m) dm, for directions that change the mass too
    coupling = COUPLINGS[name]
    grid = GRID1
    x = grid.axes[0]
    rng = np.random.default_rng(3)
    m = mp.gaussian(grid, 0.4, 0.6)[None] * (1.0 + 0.3 * np.sin(2.0 * x))[None]
    dm = rng.standard_normal((1,) + grid.shape) * m
    eps = 1e-5
    fd = (_phi(coupling, grid, m + eps * dm) - _phi(coupling, grid, m - eps * dm)) / (2 * eps)
    social = coupling.first_variation()
    exact = np.sum(social.field(grid, np.zeros(1), m) * dm) * grid.cell_volume
    assert abs(fd[0] - exact) <= 1e-7 * max(1.0, abs(exact))


def test_nash_equals_social_where_the_extra_term_vanishes():
    # beta/2 |x - mean|^2: the first variation is F itself; MeanAttraction with s = 1 is the same coupling
    grid, m = GRID1, mp.gaussian(GRID1, 0.3, 0.5)[None]
    q = mp.QuadraticInteraction(2.0)
    assert q.first_variation() is q
    fv = mp.MeanAttraction(2.0, 1.0).first_variation()
    np.testing.assert_allclose(fv.field(grid, np.zeros(1), m), q.field(grid, np.zeros(1), m), rtol=0, atol=1e-13)
    # s != 1: the planner's field differs from F
    ma = mp.MeanAttraction(2.0, 0.3)
    assert np.max(np.abs(ma.first_variation().field(grid, np.zeros(1), m) - ma.field(grid, np.zeros(1), m))) > 0.1


def test_mean_attraction_newton_derivative_matches_finite_differences():
    grid = GRID1
    coupling = mp.MeanAttraction(1.7, 0.3)
    t = np.array([0.1, 0.5])
    m = np.stack([mp.gaussian(grid, 0.2, 0.5), mp.gaussian(grid, -0.3, 0.7)]).reshape(2, -1)
    dm = np.random.default_rng(0).standard_normal(m.shape) * m
    d = coupling_derivative(coupling, grid, t, m)
    assert d.outer and not d.lowrank   # the non-symmetric rank-one form, not a symmetric one
    eps = 1e-6
    fd = (coupling.field(grid, t, (m + eps * dm).reshape((2,) + grid.shape))
          - coupling.field(grid, t, (m - eps * dm).reshape((2,) + grid.shape))).reshape(2, -1) / (2 * eps)
    np.testing.assert_allclose(d.matvec(dm), fd, rtol=0, atol=1e-7 * np.abs(fd).max())
    # the COO assembly (1-D Newton's direct solve) is the same operator
    import scipy.sparse as sp
    r, c, v = d.coo(0, 0, 1.0)
    A = sp.coo_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))), shape=(m.size, m.size)).tocsr()
    np.testing.assert_allclose(A @ dm.ravel(), d.matvec(dm).ravel(), rtol=0, atol=1e-12 * np.abs(fd).max())


def _lq_problem(grid, Nt=30, kappa=3.0, s=0.3, sigma=0.4):
    m0 = mp.gaussian(grid, 1.2, 0.3) if grid.ndim == 1 else mp.gaussian(grid, (1.0, -0.6), 0.45)
    return mp.MFGProblem(grid, 1.0, Nt, sigma, m0, coupling=mp.MeanAttraction(kappa, s))


def test_every_loop_reaches_the_same_social_optimum_1d():
    problem = _lq_problem(mp.Grid([(-3.5, 3.5)], 80))
    ref = mp.solve(problem, method="newton", objective="social", tol=1e-11)
    nash = mp.solve(problem, method="newton", tol=1e-11)
    assert ref.converged and ref.solver["objective"] == "social" and nash.solver["objective"] == "nash"
    assert ref.problem is problem
    gap = np.abs(ref.m - nash.m).max()
    assert gap > 1e-2 * np.abs(ref.m).max()   # the two optima differ here
    for method in ("picard", "anderson", "auto"):
        res = mp.solve(problem, method=method, objective="social", tol=1e-11)
        assert res.converged and res.solver["objective"] == "social", method
        assert np.abs(res.m - ref.m).max() <= 1e-7 * np.abs(ref.m).max(), method
        assert np.abs(res.u - ref.u).max() <= 1e-7 * np.abs(ref.u).max(), method
    # what the package guarantees: mass to round-off, m >= 0, the FP step the transpose (the pair is FP-exact)
    assert ref.mass_error() <= 1e-12
    assert ref.m.min() >= 0.0
    assert "social optimum (objective='social')" in ref.summary() and "planner's system" in ref.summary()
    # the recorded gap certifies the planner's system; in the game itself an agent gains by leaving the optimum
    assert abs(ref.history["exploitability"][-1]) <= 1e-9
    assert mp.exploitability(problem, ref) > 1e-4
    assert abs(mp.exploitability(problem, nash)) <= 1e-9


def test_social_with_newton_and_anderson_in_2d():
    grid = mp.Grid([(-3.0, 3.0)] * 2, 24)
    problem = _lq_problem(grid, Nt=12)
    a = mp.solve(problem, method="anderson", objective="social", tol=1e-10)
    n = mp.solve(problem, method="newton", objective="social", tol=1e-10)
    assert a.converged and n.converged and n.solver["objective"] == "social"
    assert np.abs(a.m - n.m).max() <= 1e-6 * np.abs(a.m).max()
    assert max(a.mass_error(), n.mass_error()) <= 1e-12 and min(a.m.min(), n.m.min()) >= 0.0
    nash = mp.solve(problem, method="newton", tol=1e-10)
    assert np.abs(nash.mean()[-1] - a.mean()[-1]).max() > 0.05   # social pulls the mean further to 0


def test_social_of_a_local_coupling_is_the_nash_of_its_first_variation():
    # F = kappa m^p: the planner sees kappa (1 + p) m^p; a kernel: the symmetrised kernel
    grid = mp.Grid([(-2.0, 2.0)], 50)
    m0 = mp.gaussian(grid, 0.3, 0.5)
    base = dict(grid=grid, T=0.5, Nt=20, sigma=0.5, m0=m0)
    soc = mp.solve(mp.MFGProblem(coupling=mp.LocalPower(0.5, 2.0), **base), objective="social", method="anderson",
                   tol=1e-11)
    nash = mp.solve(mp.MFGProblem(coupling=mp.LocalPower(1.5, 2.0), **base), method="anderson", tol=1e-11)
    np.testing.assert_allclose(soc.m, nash.m, rtol=0, atol=1e-9)
    np.testing.assert_allclose(soc.u, nash.u, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name, ndim", [("lq-social", 1), ("lq-social-2d", 2)])
def test_lq_social_closed_form_errors_and_observed_orders(name, ndim):
    run = cases.get(name).validate()
    assert run.result.converged and run.result.grid.ndim == ndim
    names = {c.quantity: c for c in run.checks}
    for q in ("social mean", "social variance", "Nash mean", "social cost J", "price of anarchy"):
        assert names[q].passed, (q, names[q].error, names[q].tol)
        order = names[f"{q}: observed order"]
        assert order.passed and 0.8 <= order.error <= 1.3, (q, order.error)
    j_n, j_s, poa = run.result.case_report.table[0]
    assert poa > 1.0 and j_n > j_s


def test_mean_attraction_in_2d_is_the_sum_over_the_axes():
    # what lq-social-2d relies on: F = kappa/2 |x - s mean|^2 = sum_k kappa/2 (x_k - s mean_k)^2, and so is the
    # planner's field (QuadraticInteraction + FixedGuidance); written out here with the mean computed by hand
    grid = mp.Grid([(-3.0, 3.0), (-2.0, 2.5)], (30, 24))
    m = mp.gaussian(grid, (0.7, -0.4), (0.6, 0.5))
    X, Y = grid.mesh()
    mean = [float(grid.integrate(X * m)), float(grid.integrate(Y * m))]
    kappa, s = 1.7, 0.3
    by_hand = 0.5 * kappa * ((X - s * mean[0]) ** 2 + (Y - s * mean[1]) ** 2)
    coupling = mp.MeanAttraction(kappa, s)
    np.testing.assert_allclose(coupling.field(grid, np.zeros(1), m[None])[0], by_hand, rtol=0, atol=1e-12)
    g = s * (2 - s)
    planner = 0.5 * kappa * (g * ((X - mean[0]) ** 2 + (Y - mean[1]) ** 2) + (1 - g) * (X ** 2 + Y ** 2))
    np.testing.assert_allclose(coupling.first_variation().field(grid, np.zeros(1), m[None])[0], planner, rtol=0,
                               atol=1e-12)


def test_lq_price_of_anarchy_with_per_axis_data_sums_the_axes_costs():
    base = dict(T=1.0, sigma=0.4, kappa=3.0, s=0.3, q=0.5)
    x = analytic.lq_price_of_anarchy(mean0=1.2, var0=0.2, **base)
    y = analytic.lq_price_of_anarchy(mean0=-0.8, var0=0.25, **base)
    both = analytic.lq_price_of_anarchy(mean0=(1.2, -0.8), var0=(0.2, 0.25), **base)
    for key in ("nash_cost", "social_cost"):
        assert both[key] == pytest.approx(x[key] + y[key], rel=1e-14)
    assert both["price_of_anarchy"] == pytest.approx((x["nash_cost"] + y["nash_cost"])
                                                     / (x["social_cost"] + y["social_cost"]), rel=1e-14)
    # the ratio of the sums lies strictly between the axes' ratios when they differ
    lo, hi = sorted((x["price_of_anarchy"], y["price_of_anarchy"]))
    assert lo < both["price_of_anarchy"] < hi


def _orders(name, levels) -> dict:
    """quantity -> (errors, observed orders log2(e_k / e_{k+1})) of case ``name`` over the grid levels (N, Nt)."""
    case = cases.get(name)
    errs = []
    for N, Nt in levels:
        run = case.run({"N": N, "Nt": Nt})
        assert run.result.converged
        errs.append(case.errors(run.result, run.params))
    out = {}
    for q in errs[0]:
        e = np.array([x[q] for x in errs])
        out[q] = (e, np.log2(e[:-1] / e[1:]))
    return out


@pytest.mark.slow
def test_lq_social_2d_orders_over_three_refinements():
    for q, (e, orders) in _orders("lq-social-2d", ((40, 20), (80, 40), (160, 80))).items():
        # the price of anarchy is a ratio of two first-order costs whose leading errors nearly cancel: its
        # order is 0.85 on the first refinement and approaches 1 on the next
        assert np.all(orders >= 0.8) and np.all(orders <= 1.2) and orders[-1] >= 0.9, (q, e, orders)


def test_lq_closed_form_social_cost_is_the_minimum_over_mean_paths():
    # independent of the Riccati algebra: minimise the discretised mean part of J directly (a quadratic in the
    # path), J_mean[mu] = int (mu'^2 + kappa (1 - s)^2 mu^2)/2 dt + q mu_T^2 / 2, mu(0) = mean0
    T, kappa, s, q, mean0 = 1.0, 3.0, 0.3, 0.7, 1.2
    n = 4000
    dt = T / n
    # unknowns mu_1..mu_n; J = sum ((mu_k - mu_{k-1})/dt)^2 dt/2 + sum kappa (1-s)^2 mu_k^2 dt/2 (trapezoid) + ...
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve
    D = sp.diags([-np.ones(n), np.ones(n)], [0, 1], shape=(n, n + 1)) / dt
    w = np.full(n + 1, dt)
    w[[0, -1]] = dt / 2
    w[-1] += q / (kappa * (1 - s) ** 2)
    H = (D.T @ D * dt + sp.diags(kappa * (1 - s) ** 2 * w)).tocsc()
    mu = np.empty(n + 1)
    mu[0] = mean0
    mu[1:] = spsolve(H[1:, 1:], -H[1:, [0]].toarray().ravel() * mean0)
    t = np.linspace(0.0, T, n + 1)
    ref = analytic.lq_mean_attraction(t, T=T, sigma=0.4, kappa=kappa, s=s, mean0=mean0, var0=0.09, q=q,
                                      objective="social")
    assert np.abs(mu - ref["mean"]).max() < 2e-3
    nash = analytic.lq_mean_attraction(t, T=T, sigma=0.4, kappa=kappa, s=s, mean0=mean0, var0=0.09, q=q)
    assert np.abs(nash["mean"] - ref["mean"]).max() > 0.05
    poa = analytic.lq_price_of_anarchy(T=T, sigma=0.4, kappa=kappa, s=s, mean0=mean0, var0=0.09, q=q)
    assert poa["price_of_anarchy"] > 1.0
    same = analytic.lq_price_of_anarchy(T=T, sigma=0.4, kappa=kappa, s=1.0, mean0=mean0, var0=0.09, q=q)
    assert same["price_of_anarchy"] == pytest.approx(1.0, abs=1e-13)


def test_price_of_anarchy_on_the_grid_is_one_when_nash_is_social():
    grid = mp.Grid([(-3.5, 3.5)], 70)
    problem = _lq_problem(grid, Nt=25, s=1.0)
    out = price_of_anarchy(problem, method="anderson", tol=1e-11)
    assert out["price_of_anarchy"] == pytest.approx(1.0, abs=1e-8)
    problem = _lq_problem(grid, Nt=25, s=0.3)
    out = price_of_anarchy(problem, method="anderson", tol=1e-11)
    assert out["price_of_anarchy"] > 1.0
    # the Nash cost equals the equilibrium value int m0 u^0 (the same quadrature, by the discrete duality)
    assert total_cost(problem, out["nash"]) == pytest.approx(
        float(grid.integrate(problem.m0 * out["nash"].u[0])), rel=1e-9)
    with pytest.raises(ValueError, match="solved with objective='social'"):
        price_of_anarchy(problem, nash=out["social"], social=out["social"])


def test_unknown_objective_lists_the_choices():
    problem = _lq_problem(mp.Grid([(-3.5, 3.5)], 40), Nt=5)
    with pytest.raises(ValueError, match=r"objective = 'planner': choose one of 'nash', 'social'"):
        mp.solve(problem, objective="planner")


def test_social_refuses_what_has_no_first_variation():
    grid = mp.Grid([(-2.0, 2.0)], 30)
    m0 = mp.gaussian(grid, 0.0, 0.5)

    class Mine(Coupling):
        def field(self, grid, t, m):
            return m ** 2

        def describe(self):
            return {"type": "mine"}

    p = mp.MFGProblem(grid, 0.5, 5, 0.5, m0, coupling=Mine())
    with pytest.raises(NotImplementedError, match="coupling Mine cannot supply its first variation"):
        mp.solve(p, objective="social")
    class Crowd(mp.Congestion):   # a user Hamiltonian that depends on m and does not give H + m dH/dm
        first_variation = mp.Hamiltonian.first_variation

    p = mp.MFGProblem(grid, 0.5, 5, 0.5, m0, coupling=mp.LocalPower(1.0), hamiltonian=Crowd(1.0, 0.5, 1.0))
    with pytest.raises(NotImplementedError, match="Hamiltonian Crowd depends on m but gives no first_variation"):
        mp.solve(p, objective="social")

    def G(x, mT):
        return 0.3 * mT

    p = mp.MFGProblem(grid, 0.5, 5, 0.5, m0, terminal_cost=mp.TerminalCost(G, depends_on_m=True))
    with pytest.raises(NotImplementedError, match="terminal cost G depends on m_T"):
        mp.solve(p, objective="social")
    # with its first variation, delta/delta m int 0.3 m^2 = 0.6 m: the social optimum is the Nash of 0.6 m
    soc = mp.solve(mp.MFGProblem(grid, 0.5, 10, 0.5, m0, terminal_cost=mp.TerminalCost(
        G, depends_on_m=True, first_variation=lambda x, mT: 0.6 * mT)), objective="social", method="anderson", tol=1e-11)
    nash = mp.solve(mp.MFGProblem(grid, 0.5, 10, 0.5, m0, terminal_cost=mp.TerminalCost(
        lambda x, mT: 0.6 * mT, depends_on_m=True)), method="anderson", tol=1e-11)
    np.testing.assert_allclose(soc.m, nash.m, rtol=0, atol=1e-10)


def test_social_problem_keeps_the_original(tmp_path):
    problem = _lq_problem(mp.Grid([(-3.5, 3.5)], 40), Nt=10)
    sp = social_problem(problem)
    assert sp is not problem and problem.coupling.describe()["type"] == "mean-attraction"
    assert sp.coupling.describe()["type"] == "sum"
    res = mp.solve(problem, objective="social", method="anderson", tol=1e-10)
    path = tmp_path / "social.h5"
    res.save(path)
    back = mp.load(path)
    assert back.solver["objective"] == "social"
    assert isinstance(back.problem.coupling, mp.MeanAttraction) and back.problem.coupling.s == 0.3
    again = mp.solve(back.problem, objective=back.solver["objective"], method="anderson", tol=1e-10)
    np.testing.assert_allclose(again.m, res.m, rtol=0, atol=1e-12)
    # LocalLog's first variation carries a constant shift, rebuilt from a file too
    g = mp.Grid([(-2.0, 2.0)], 30)
    pl = mp.MFGProblem(g, 0.5, 5, 0.5, mp.gaussian(g, 0.0, 0.5), coupling=mp.LocalLog(0.2).first_variation())
    r = mp.solve(pl, method="anderson", tol=1e-10)
    r.save(tmp_path / "log.h5")
    assert mp.load(tmp_path / "log.h5").problem.coupling.shift == pytest.approx(0.2)


def test_price_of_anarchy_case_table_figure_and_file(tmp_path, capsys):
    fig, out = tmp_path / "poa.png", tmp_path / "poa.h5"
    rc = cli.main(["run", "price-of-anarchy", "--quiet", "--set", "kappas=1,4", "--set", "N=70", "--set", "Nt=25",
                   "--set", f"figure={fig}", "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text
    assert "PoA closed form" in text.out + text.err
    assert fig.stat().st_size > 1000
    back = mp.load(out)
    table = back.case_report.table
    assert table.shape == (2, 8) and np.all(table[:, 3] > 1.0)
    assert np.all(np.abs(table[:, 3] - table[:, 4]) < 0.01)


def test_social_with_a_skewed_kernel_newton_and_anderson_agree():
    # F = c int W(x - y) m(y) dy with W not even: the planner sees the symmetrised kernel (dense dF/dm for Newton)
    grid = mp.Grid([(-2.0, 2.0)], 40)
    problem = mp.MFGProblem(grid, 0.5, 10, 0.5, mp.gaussian(grid, 0.3, 0.4),
                            coupling=mp.KernelInteraction(_skewed, 0.8))
    a = mp.solve(problem, method="anderson", objective="social", tol=1e-11)
    n = mp.solve(problem, method="newton", objective="social", tol=1e-11)
    nash = mp.solve(problem, method="anderson", tol=1e-11)
    assert a.converged and n.converged
    assert np.abs(a.m - n.m).max() <= 1e-8 * np.abs(a.m).max()
    assert np.abs(a.m - nash.m).max() > 1e-3 * np.abs(a.m).max()


@pytest.mark.slow
def test_lq_social_orders_over_three_refinements():
    for q, (e, orders) in _orders("lq-social", ((140, 50), (280, 100), (560, 200))).items():
        assert np.all(orders >= 0.85) and np.all(orders <= 1.2), (q, e, orders)


def _population_cost(problem, u):
    """Total cost J of the population that follows the policy of u (transported by it from m0; F at that density)."""
    from mfg_pde.diagnostics.exploitability import nash_gap, policy_cost

    frozen = np.broadcast_to(problem.m0, (problem.Nt + 1,) + problem.grid.shape)
    m = nash_gap(problem, u, frozen, details=True)["policy_density"]
    return policy_cost(problem, u, m)


@pytest.mark.parametrize("coupling", [mp.LocalPower(0.8, 1.0), mp.MeanAttraction(3.0, 0.3),
                                      mp.KernelInteraction(lambda d: np.exp(-4.0 * d ** 2), 0.8)],
                         ids=["local", "mean-attraction", "kernel"])
def test_the_social_pair_minimises_the_discrete_total_cost(coupling):
    # independent of the first-variation algebra: perturb the social policy, transport m0 with it and score the
    # population's total cost; the social pair is a stationary minimum (growth ~ eps^2, even in eps), the Nash
    # pair is not (a first-order change: one direction lowers the cost)
    grid = mp.Grid([(-2.0, 2.0)], 60)
    x = grid.axes[0]
    problem = mp.MFGProblem(grid, 0.5, 20, 0.5, mp.gaussian(grid, 0.4, 0.4), coupling=coupling,
                            potential=lambda x, t: 0.5 * x ** 2)
    phi = np.sin(2.0 * x)[None] * np.linspace(0.0, 1.0, problem.Nt + 1)[:, None]
    out = {}
    for objective in ("nash", "social"):
        res = mp.solve(problem, objective=objective, method="anderson", tol=1e-12)
        J0 = _population_cost(problem, res.u)
        out[objective] = [_population_cost(problem, res.u + e * phi) - J0 for e in (-2e-2, -1e-2, 1e-2, 2e-2)]
    dm2, dm1, dp1, dp2 = out["social"]
    assert min(out["social"]) > 0.0
    assert abs(dp1 - dm1) <= 0.05 * dp1 and abs(dp2 - dm2) <= 0.05 * dp2     # no first-order term
    assert 3.5 <= dp2 / dp1 <= 4.5                                           # quadratic growth
    assert min(out["nash"]) < 0.0


def _control_cost_route(problem, ham):
    """An independent numpy route for 1-D reflecting problems: the total cost J(a, b) of the population driven by
    the node speeds a (rightward) and b (leftward) of every step -- the FP step with rows lower_i =
    dt (-nu/h^2 - b_i/h), upper_i = dt (-nu/h^2 - a_i/h), the control cost (a^2 + b^2)/(2 w(m^{n+1})) --, and the
    speeds of a solved pair, a = -w min(D+u, 0), b = w max(D-u, 0) with w = dH/dp / p of the ORIGINAL Hamiltonian."""
    grid = problem.grid
    h, dt, nu, N, Nt = grid.spacing[0], problem.dt, problem.nu, grid.shape[0], problem.Nt
    V = problem.potential_steps()
    weights = (lambda m: np.ones_like(m)) if ham is None else ham.weights

    def speeds(res):
        a, b = np.zeros((Nt, N)), np.zeros((Nt, N))
        for n in range(Nt):
            w, du = weights(res.m[n + 1]), np.diff(res.u[n]) / h
            a[n, :-1] = -w[:-1] * np.minimum(du, 0.0)
            b[n, 1:] = w[1:] * np.maximum(du, 0.0)
        return a, b

    def cost(a, b):
        m, total = problem.m0.copy(), 0.0
        for n in range(Nt):
            lo, up = np.zeros(N), np.zeros(N)
            lo[1:] = dt * (-nu / h ** 2 - b[n, 1:] / h)
            up[:-1] = dt * (-nu / h ** 2 - a[n, :-1] / h)
            M = np.diag(1.0 - lo - up) + np.diag(lo[1:], -1) + np.diag(up[:-1], 1)
            m = np.linalg.solve(M.T, m)
            f = problem.coupling.field(grid, np.array([problem.t[n + 1]]), m[None])[0] + V[0]
            total += dt * h * float(np.sum(m * ((a[n] ** 2 + b[n] ** 2) / (2.0 * weights(m)) + f)))
        return total, m

    return speeds, cost


@pytest.mark.parametrize("ham", [None, mp.Congestion(1.0, 2.0, 1.0), mp.Congestion(0.5, 1.0, 0.5)],
                         ids=["quadratic", "congestion", "congestion-half"])
def test_the_social_pair_is_the_discrete_planners_optimum_over_controls(ham):
    # the planner chooses the agents' speeds; the social pair's speeds are a stationary minimum of the discrete
    # total cost (even in eps, quadratic growth), the Nash pair's are not -- with congestion this checks the
    # correction -m dH/dm of the planner's HJB (independent numpy route, not the package's kernels)
    grid = mp.Grid([(-2.0, 2.0)], 60)
    problem = mp.MFGProblem(grid, 0.5, 20, 0.5, mp.gaussian(grid, 0.4, 0.4), coupling=mp.LocalPower(0.3, 1.0),
                            potential=lambda x, t: 0.5 * x ** 2, hamiltonian=ham)
    speeds, cost = _control_cost_route(problem, ham)
    rng = np.random.default_rng(1)
    ra, rb = rng.standard_normal((2, problem.Nt, grid.shape[0]))
    out = {}
    for objective in ("nash", "social"):
        res = mp.solve(problem, objective=objective, method="anderson", tol=1e-12)
        assert res.converged and res.mass_error() <= 1e-12 and res.m.min() >= 0.0
        assert max(res.history["hjb_residual"][-1], res.history["fp_residual"][-1]) <= 1e-11
        a, b = speeds(res)
        J0, mT = cost(a, b)
        # the route reproduces the solver's density and its total cost (the same quadrature)
        assert np.abs(mT - res.m[-1]).max() <= 1e-12
        assert J0 == pytest.approx(total_cost(problem, res), rel=1e-12)
        out[objective] = [cost(a * (1 + e * ra), b * (1 + e * rb))[0] - J0 for e in (-2e-2, -1e-2, 1e-2, 2e-2)]
    dm2, dm1, dp1, dp2 = out["social"]
    assert min(out["social"]) > 0.0
    assert abs(dp1 - dm1) <= 0.05 * dp1 and abs(dp2 - dm2) <= 0.05 * dp2
    assert 3.5 <= dp2 / dp1 <= 4.5
    assert min(out["nash"]) < 0.0


def test_congestion_without_a_coupling_is_still_a_coupled_game():
    # H depends on m: one HJB + FP sweep is not the answer (the loop iterates and certifies both residuals), and
    # the planner's correction -m dH/dm alone makes the social optimum differ from the equilibrium
    grid = mp.Grid([(-2.0, 2.0)], 60)
    problem = mp.MFGProblem(grid, 0.5, 20, 0.5, mp.gaussian(grid, 0.4, 0.4), potential=lambda x, t: 0.5 * x ** 2,
                            hamiltonian=mp.Congestion(1.0, 2.0, 1.0))
    assert problem.is_coupled
    for objective in ("nash", "social"):
        res = mp.solve(problem, objective=objective, tol=1e-11)
        assert res.converged and res.iterations > 1
        assert max(res.history["hjb_residual"][-1], res.history["fp_residual"][-1]) <= 1e-11
    out = price_of_anarchy(problem, method="anderson", tol=1e-11)
    assert out["price_of_anarchy"] > 1.0
