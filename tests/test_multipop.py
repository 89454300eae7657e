"""Several populations (mfg_pde/model/multipop.py, iterate/multipop.py, newton/multipop.py; docs/method.md,
section 'Several populations'): mirror symmetry, the decoupled limit, the LQ closed form with its observed
order, the joint Newton's Jacobian, files, bad input."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.cases.two_crowds import lq_errors, lq_problem
from mfg_pde.newton.multipop import JointSystem, cold_pair
from mfg_pde.oracles import analytic


def _mirror_pops(grid, Nt=20, cross=0.6, sigma=0.5, own=None):
    """Two populations that are mirror images in x: m0, potential and terminal cost reflected."""
    xs = grid.mesh()
    x = xs[0]
    rest = sum(0 * y for y in xs[1:]) if grid.ndim > 1 else 0.0
    m0a = mp.normalise(grid, np.exp(-8 * (x + 0.35) ** 2) + 0.05 + rest)
    m0b = mp.normalise(grid, np.exp(-8 * (-x + 0.35) ** 2) + 0.05 + rest)
    V = (lambda *a: 0.3 * a[0]) if grid.ndim == 1 else (lambda *a: 0.3 * a[0] + 0.1 * a[1] ** 2)
    Vm = (lambda *a: -0.3 * a[0]) if grid.ndim == 1 else (lambda *a: -0.3 * a[0] + 0.1 * a[1] ** 2)
    own = mp.LocalPower(1.0) if own is None else own
    a = mp.MFGProblem(grid, 0.5, Nt, sigma, m0a, coupling=own, potential=V,
                      terminal_cost=lambda *c: 0.5 * (c[0] - 0.5) ** 2)
    b = mp.MFGProblem(grid, 0.5, Nt, sigma, m0b, coupling=own, potential=Vm,
                      terminal_cost=lambda *c: 0.5 * (c[0] + 0.5) ** 2)
    return mp.MultiPopulationProblem([a, b], coupling=mp.CrossCoupling.local([[0.0, cross], [cross, 0.0]]))


@pytest.mark.parametrize("method", ["anderson", "picard", "newton", "auto"])
def test_mirror_populations_stay_mirror_images_1d(method):
    grid = mp.Grid([(-1, 1)], 60)
    r = mp.solve(_mirror_pops(grid), method=method, tol=1e-10)
    assert r.converged, r.status
    m, u = r.m, r.u
    assert np.abs(m[1] - m[0][:, ::-1]).max() <= 1e-12 * np.abs(m).max()
    assert np.abs(u[1] - u[0][:, ::-1]).max() <= 1e-12 * np.abs(u).max()
    # the segregation: the two crowds are not on top of each other, and each keeps its mass, m >= 0
    assert r.mean()[0, -1, 0] < 0 < r.mean()[1, -1, 0]
    for k in range(2):
        assert np.abs(grid.integrate(m[k]) - 1.0).max() <= 1e-13
        assert m[k].min() >= 0.0


@pytest.mark.parametrize("method", ["anderson", "newton"])
def test_mirror_populations_stay_mirror_images_2d(method):
    grid = mp.Grid([(-1, 1), (-1, 1)], 16)
    r = mp.solve(_mirror_pops(grid, Nt=10), method=method, tol=1e-10)
    assert r.converged, r.status
    assert np.abs(r.m[1] - r.m[0][:, ::-1, :]).max() <= 1e-12 * np.abs(r.m).max()
    assert np.abs(r.u[1] - r.u[0][:, ::-1, :]).max() <= 1e-12 * np.abs(r.u).max()
    assert r.mass_error() <= 1e-13


def _two_independent(grid):
    x = grid.mesh()[0]
    a = mp.MFGProblem(grid, 0.5, 25, 0.6, mp.normalise(grid, 1 + 0.6 * np.cos(2 * np.pi * x)),
                      coupling=mp.LocalPower(2.0), potential=lambda x, t: np.sin(2 * np.pi * x))
    b = mp.MFGProblem(grid, 0.5, 25, 0.3, mp.normalise(grid, 1 + 0.4 * np.sin(2 * np.pi * x)),
                      coupling=mp.LocalLog(0.2), terminal_cost=lambda x: np.cos(2 * np.pi * x),
                      hamiltonian=None)
    return a, b


@pytest.mark.parametrize("method", ["newton", "anderson"])
def test_zero_cross_coupling_reproduces_single_population_solves(method):
    """The decoupled limit: a cross term of strength 0 leaves two independent games; the joint solve gives
    each one's discrete solution.  Newton's quadratic convergence puts both solves at round-off of that
    solution; Anderson stops at its tolerance (1e-12 here) and agrees to that level."""
    grid = mp.Grid([(0, 1)], 80, bc="periodic")
    a, b = _two_independent(grid)
    joint = mp.MultiPopulationProblem([a, b], coupling=mp.CrossCoupling({(0, 1): mp.LocalPower(0.0),
                                                                         (1, 0): mp.LocalPower(0.0)}))
    tol = 1e-12
    r = mp.solve(joint, method=method, tol=tol)
    assert r.converged, r.status
    bound = 1e-12 if method == "newton" else 1e-9
    for k, single in enumerate((a, b)):
        s = mp.solve(single, method=method, tol=tol)
        assert s.converged, s.status
        assert np.abs(r.m[k] - s.m).max() <= bound * np.abs(s.m).max()
        assert np.abs(r.u[k] - s.u).max() <= bound * np.abs(s.u).max()


def test_uncoupled_populations_are_one_sweep_each_bit_for_bit():
    grid = mp.Grid([(0, 1)], 50, bc="periodic")
    x = grid.mesh()[0]
    a = mp.MFGProblem(grid, 0.5, 20, 0.6, mp.normalise(grid, 1 + 0.6 * np.cos(2 * np.pi * x)),
                      potential=lambda x, t: np.sin(2 * np.pi * x))
    b = mp.MFGProblem(grid, 0.5, 20, 0.3, mp.normalise(grid, 1 + 0.4 * np.sin(2 * np.pi * x)),
                      terminal_cost=lambda x: np.cos(2 * np.pi * x))
    r = mp.solve(mp.MultiPopulationProblem([a, b]), method="anderson")
    assert r.converged and r.iterations == 1
    for k, single in enumerate((a, b)):
        s = mp.solve(single, method="anderson")
        assert np.array_equal(r.m[k], s.m) and np.array_equal(r.u[k], s.u)


# ------------------------------------------------------------------ LQ closed form
def _lq_errors(result):
    e = lq_errors(result)
    return e["mean"], e["variance"]


def test_lq_multipop_oracle_reduces_to_the_single_population_closed_form():
    t = np.linspace(0, 1, 21)
    single = analytic.lq_terminal(t, T=1.0, sigma=0.8, q=1.0, x_target=1.0, mean0=-0.5, var0=0.25, beta=2.0)
    one = analytic.lq_multipop(t, T=1.0, sigma=[0.8], q=[1.0], x_target=[1.0], mean0=[-0.5], var0=[0.25],
                               beta=[[2.0]])
    # two identical populations that split the stiffness between them are the one population
    two = analytic.lq_multipop(t, T=1.0, sigma=[0.8, 0.8], q=[1.0, 1.0], x_target=[1.0, 1.0], mean0=[-0.5, -0.5],
                               var0=[0.25, 0.25], beta=[[1.3, 0.7], [0.7, 1.3]])
    for key in ("mean", "var", "S"):
        assert np.abs(one[key][0] - single[key]).max() <= 1e-11
        assert np.abs(two[key] - single[key]).max() <= 1e-11


@pytest.mark.parametrize("method", ["anderson", "newton"])
def test_lq_two_populations_error_and_observed_order(method):
    errors = []
    for N in (50, 100):
        pb = lq_problem(N, N)
        r = mp.solve(pb, method=method, tol=1e-10)
        assert r.converged, r.status
        errors.append(_lq_errors(r))
    errors = np.array(errors)   # rows: N = 50, 100; columns: mean, variance
    assert errors[1, 0] <= 0.03 and errors[1, 1] <= 0.045
    orders = np.log2(errors[0] / errors[1])
    assert np.all(orders >= 0.9), orders


def test_lq_two_populations_order_on_finer_grids():
    errors = []
    for N in (100, 200, 400):
        pb = lq_problem(N, N)
        r = mp.solve(pb, method="auto", tol=1e-10)
        assert r.converged, r.status
        errors.append(_lq_errors(r))
    errors = np.array(errors)
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(orders >= 0.95), orders
    assert errors[-1, 0] <= 0.008


# ------------------------------------------------------------------ joint Newton
@pytest.mark.parametrize("ndim", [1, 2])
def test_joint_jacobian_matches_finite_differences(ndim):
    """jvp of the joint system against a one-sided difference of its residual at two step sizes (the
    difference error is first order in eps), and the reduced solve gives J d = -R."""
    grid = mp.Grid([(0, 1)] * ndim, 30 if ndim == 1 else 10, bc="periodic")
    xs = grid.mesh()
    V = (lambda *a: np.cos(2 * np.pi * a[0]))
    pops = [mp.MFGProblem(grid, 0.5, 8, s, mp.normalise(grid, 1 + 0.5 * np.cos(2 * np.pi * (xs[0] - c))),
                          coupling=own, potential=V)
            for s, c, own in ((0.4, 0.3, mp.LocalPower(1.0)), (0.5, 0.7, None))]
    cross = mp.CrossCoupling({(0, 1): mp.LocalPower(0.7), (1, 0): mp.QuadraticInteraction(1.5),
                              (1, 1): mp.LocalPower(0.3)})
    pb = mp.MultiPopulationProblem(pops, coupling=cross)
    sysm = JointSystem(pb)
    U, M = sysm.lift(*cold_pair(pb))
    rng = np.random.default_rng(1)
    U += 0.01 * rng.standard_normal(U.shape)
    M *= 1 + 0.1 * rng.standard_normal(M.shape)
    sysm.complete(U, M)
    ev, der = sysm.evaluate(U, M), sysm.derivative(M)
    Nt = sysm.Nt
    du, dm = rng.standard_normal(U[:Nt].shape), rng.standard_normal(M[1:].shape)
    JH, JF = sysm.jvp(U, M, ev, der, du, dm)
    gaps = []
    for eps in (1e-6, 1e-7):
        U2, M2 = U.copy(), M.copy()
        U2[:Nt] += eps * du
        M2[1:] += eps * dm
        sysm.complete(U2, M2)
        ev2 = sysm.evaluate(U2, M2)
        gaps.append(max(np.abs(JH - (ev2["RH"] - ev["RH"]) / eps).max() / np.abs(JH).max(),
                        np.abs(JF - (ev2["RF"] - ev["RF"]) / eps).max() / np.abs(JF).max()))
    assert gaps[1] <= 1e-5 and gaps[1] <= 0.2 * gaps[0], gaps
    d_u, d_m, _ = sysm.reduced(U, M, ev, der).solve(1e-12, 2000)
    JH, JF = sysm.jvp(U, M, ev, der, d_u, d_m)
    assert np.abs(JH + ev["RH"]).max() <= 1e-9 * np.abs(ev["RH"]).max()
    assert np.abs(JF + ev["RF"]).max() <= 1e-9 * np.abs(ev["RF"]).max()


def test_newton_and_anderson_agree_and_newton_converges_fast():
    pb = lq_problem(60, 40)
    rn = mp.solve(pb, method="newton", tol=1e-11)
    ra = mp.solve(pb, method="anderson", tol=1e-11)
    assert rn.converged and ra.converged
    assert rn.iterations <= 8
    assert np.abs(rn.m - ra.m).max() <= 1e-8 * np.abs(ra.m).max()
    assert abs(rn.history["exploitability"][-1]) <= 1e-9


# ------------------------------------------------------------------ files, verdicts, bad input
def test_save_and_load_keep_the_population_dimension(tmp_path):
    grid = mp.Grid([(-1, 1)], 30)
    r = mp.solve(_mirror_pops(grid, Nt=8), method="anderson", tol=1e-9)
    path = tmp_path / "two.h5"
    r.save(path)
    q = mp.load(path)
    assert q.names == r.names and q.converged and q.iterations == r.iterations
    assert q.m.shape == (2, 9, 30) and np.array_equal(q.m, r.m) and np.array_equal(q.u, r.u)
    assert np.array_equal(q.alpha, r.alpha) and np.array_equal(q[1].m, r[1].m)
    assert np.array_equal(q.history["residual"], r.history["residual"])
    import h5py
    with h5py.File(path) as f:
        assert [d.label for d in f["m"].dims] == ["population", "t", "x"]


def test_monotone_verdict():
    grid = mp.Grid([(-1, 1)], 20)
    pb = _mirror_pops(grid, cross=0.6)           # own 1, cross 0.6: a + a^T positive definite
    assert pb.monotone() is True
    assert _mirror_pops(grid, cross=1.5).monotone() is False   # segregation stronger than congestion
    r = mp.solve(pb, method="anderson", tol=1e-8)
    assert r.solver["coupling_monotone"] == "yes"


def test_bad_input_names_the_parameter():
    grid = mp.Grid([(-1, 1)], 20)
    m0 = mp.gaussian(grid, 0.0, 0.2)
    a = mp.MFGProblem(grid, 1.0, 10, 0.5, m0)
    with pytest.raises(ValueError, match=r"populations\[1\]\.grid"):
        mp.MultiPopulationProblem([a, mp.MFGProblem(mp.Grid([(-1, 1)], 22), 1.0, 10, 0.5,
                                                    mp.gaussian(mp.Grid([(-1, 1)], 22), 0.0, 0.2))])
    with pytest.raises(ValueError, match=r"populations\[1\]\.T"):
        mp.MultiPopulationProblem([a, mp.MFGProblem(grid, 2.0, 10, 0.5, m0)])
    with pytest.raises(ValueError, match=r"populations\[1\]\.Nt"):
        mp.MultiPopulationProblem([a, mp.MFGProblem(grid, 1.0, 20, 0.5, m0)])
    with pytest.raises(ValueError, match=r"coupling has a term \(0, 2\).*only 2 populations"):
        mp.MultiPopulationProblem([a, a], coupling=mp.CrossCoupling({(0, 2): mp.LocalPower(1.0)}))
    with pytest.raises(TypeError, match="coupling must be a mfg_pde.CrossCoupling"):
        mp.MultiPopulationProblem([a, a], coupling=mp.LocalPower(1.0))
    with pytest.raises(TypeError, match=r"populations\[0\]"):
        mp.MultiPopulationProblem([mp.PlanningProblem(grid, 1.0, 10, 0.5, m0, m0), a])
    with pytest.raises(ValueError, match="names"):
        mp.MultiPopulationProblem([a, a], names=["x", "x"])
    with pytest.raises(ValueError, match="key"):
        mp.CrossCoupling({(0, -1): mp.LocalPower(1.0)})
    with pytest.raises(ValueError, match="m_init"):
        mp.solve(mp.MultiPopulationProblem([a, a]), m_init=np.ones((11, 20)))
    with pytest.raises(TypeError, match="unexpected option"):
        mp.solve(mp.MultiPopulationProblem([a, a]), method="anderson", racers=2)
    with pytest.raises(NotImplementedError, match="objective = 'social'.*several populations"):
        mp.solve(mp.MultiPopulationProblem([a, a]), objective="social")


# ------------------------------------------------------------------ the cases
@pytest.mark.parametrize("dim, N, Nt", [(1, 60, 30), (2, 20, 10)])
def test_two_crowds_case_segregates_and_passes_its_checks(dim, N, Nt, tmp_path):
    from mfg_pde.cases import get
    from mfg_pde.plotting.populations import plot_populations

    run = get("two-crowds").run({"dim": dim, "N": N, "Nt": Nt})
    assert run.passed, [(c.quantity, c.error) for c in run.checks]
    r = run.result
    before, after = r.case_report.table[0]
    assert after < 0.5 * before          # the crowds have moved apart
    path = tmp_path / "crowds.h5"
    r.save(path)
    q = mp.load(path)
    assert q.case == "two-crowds" and np.array_equal(q.m, r.m)
    assert np.allclose(q.case_report.table, r.case_report.table)
    plot_populations(q, path=tmp_path / "crowds.png")
    assert (tmp_path / "crowds.png").stat().st_size > 10_000


def test_two_crowds_validate_includes_the_decoupled_limit():
    from mfg_pde.cases import get

    run = get("two-crowds").validate({"N": 40, "Nt": 20})
    names = [c.quantity for c in run.checks]
    assert "decoupled limit (b = 0)" in names and run.passed


def test_exits_keep_each_populations_outflow_balance_and_newton_says_why_not():
    grid = mp.Grid([(0, 1)], 50, bc=[("reflecting", "exit")])
    x = grid.mesh()[0]
    pops = [mp.MFGProblem(grid, 0.5, 20, s, mp.normalise(grid, np.exp(-20 * (x - c) ** 2)), coupling=mp.LocalPower(0.5),
                          exit_cost=0.0, potential=lambda x, t: 1.0 + 0 * x) for s, c in ((0.4, 0.3), (0.6, 0.5))]
    pb = mp.MultiPopulationProblem(pops, coupling=mp.CrossCoupling.local([[0, 0.5], [0.5, 0]]))
    r = mp.solve(pb, method="anderson", tol=1e-10)
    assert r.converged, r.status
    for res in r.populations:
        assert res.outflow is not None and res.outflow.balance_error <= 1e-13
        assert res.outflow.evacuated_fraction > 0.05
    assert r.mass_error() <= 1e-13
    with pytest.raises(NotImplementedError, match="population 0: newton does not support exit"):
        mp.solve(pb, method="newton")
    assert mp.solve(pb, method="auto", tol=1e-10).converged


def test_kernel_cross_term_newton_matches_anderson_1d():
    """Avoidance at a distance: the cross term is a KernelInteraction (a dense dF/dm block in Newton)."""
    grid = mp.Grid([(-1, 1)], 50)
    x = grid.mesh()[0]
    pops = [mp.MFGProblem(grid, 0.5, 20, 0.4, mp.normalise(grid, np.exp(-10 * (x - c) ** 2) + 0.01),
                          coupling=mp.LocalPower(0.5)) for c in (-0.2, 0.3)]
    W = mp.KernelInteraction(lambda d: np.exp(-(d / 0.2) ** 2), strength=1.0)
    pb = mp.MultiPopulationProblem(pops, coupling=mp.CrossCoupling({(0, 1): W, (1, 0): W}))
    rn = mp.solve(pb, method="newton", tol=1e-11)
    ra = mp.solve(pb, method="anderson", tol=1e-11)
    assert rn.converged and ra.converged and rn.iterations <= 8
    assert np.abs(rn.m - ra.m).max() <= 1e-8 * np.abs(ra.m).max()
    assert rn.mean()[0, -1, 0] < -0.2 and rn.mean()[1, -1, 0] > 0.3     # pushed apart


def test_populations_with_their_own_hamiltonians():
    """Each population keeps its Hamiltonian (here one with bounded speed): the loops and the joint Newton
    handle it and agree, mass and m >= 0 hold per population; a Hamiltonian that depends on m (congestion) is
    refused by the joint Newton, naming the population."""
    grid = mp.Grid([(-1, 1)], 50)
    x = grid.mesh()[0]
    slow = mp.MFGProblem(grid, 0.5, 20, 0.4, mp.normalise(grid, np.exp(-10 * (x + 0.3) ** 2) + 0.01),
                         coupling=mp.LocalPower(0.5), hamiltonian=mp.BoundedControl(0.3),
                         terminal_cost=lambda x: 2.0 * (x - 0.5) ** 2)
    fast = mp.MFGProblem(grid, 0.5, 20, 0.4, mp.normalise(grid, np.exp(-10 * (x - 0.3) ** 2) + 0.01),
                         coupling=mp.LocalPower(0.5), terminal_cost=lambda x: 2.0 * (x + 0.5) ** 2)
    pb = mp.MultiPopulationProblem([slow, fast], coupling=mp.CrossCoupling.local([[0, 0.3], [0.3, 0]]))
    r = mp.solve(pb, method="auto", tol=1e-10)
    assert r.converged, r.status
    assert r.mass_error() <= 1e-13 and r.m.min() >= 0.0
    assert np.abs(r[0].alpha).max() <= 0.3 + 1e-12 < np.abs(r[1].alpha).max()
    rn = mp.solve(pb, method="newton", tol=1e-10)
    assert rn.converged and rn.iterations <= 10
    assert np.abs(rn.m - r.m).max() <= 1e-7 * np.abs(r.m).max()
    crowded = mp.MFGProblem(grid, 0.5, 20, 0.4, fast.m0, hamiltonian=mp.Congestion(1.0, 1.0, 1.0))
    pc = mp.MultiPopulationProblem([fast, crowded], coupling=mp.CrossCoupling.local([[0, 0.3], [0.3, 0]]))
    with pytest.raises(NotImplementedError, match="population 1: the joint Newton does not take a Hamiltonian"):
        mp.solve(pc, method="newton")
    assert mp.solve(pc, method="auto", tol=1e-10).converged


def test_three_populations_and_a_terminal_cost_of_the_density():
    """K = 3, and one population whose terminal cost depends on its final density (the dG block of the joint
    Newton): Newton converges in a few steps to Anderson's solution."""
    grid = mp.Grid([(-1, 1)], 60)
    x = grid.mesh()[0]
    G = mp.TerminalCost(lambda x, m: 0.3 * m + 0.5 * x ** 2, depends_on_m=True)
    pops = [mp.MFGProblem(grid, 0.5, 20, 0.4, mp.normalise(grid, np.exp(-10 * (x - c) ** 2) + 0.01),
                          coupling=mp.LocalPower(1.0), terminal_cost=G if c == 0 else None) for c in (-0.4, 0.0, 0.4)]
    pb = mp.MultiPopulationProblem(pops, coupling=mp.CrossCoupling.local([[0, .5, .2], [.5, 0, .5], [.2, .5, 0]]))
    assert pb.monotone() is None          # a terminal cost of m: not decided
    rn = mp.solve(pb, method="newton", tol=1e-11)
    ra = mp.solve(pb, method="anderson", tol=1e-11)
    assert rn.converged and ra.converged and rn.iterations <= 8
    assert rn.m.shape == (3, 21, 60)
    assert np.abs(rn.m - ra.m).max() <= 1e-9 * np.abs(ra.m).max()


def test_joint_newton_in_3d_matches_anderson():
    grid = mp.Grid([(0, 1)] * 3, 8, bc="periodic")
    X, Y, Z = grid.mesh()
    pops = [mp.MFGProblem(grid, 0.3, 5, 0.5, mp.normalise(grid, 1 + 0.5 * np.cos(2 * np.pi * (X - c)) + 0 * Y * Z),
                          coupling=mp.LocalPower(1.0)) for c in (0.3, 0.7)]
    pb = mp.MultiPopulationProblem(pops, coupling=mp.CrossCoupling.local([[0, 0.5], [0.5, 0]]))
    rn = mp.solve(pb, method="newton", tol=1e-11)
    ra = mp.solve(pb, method="anderson", tol=1e-11)
    assert rn.converged and ra.converged and rn.iterations <= 8
    assert np.abs(rn.m - ra.m).max() <= 1e-9 * np.abs(ra.m).max()
    assert rn.mass_error() <= 1e-13


def test_command_line_run_and_solve_write_file_and_figure(tmp_path, capsys):
    from mfg_pde import cli

    h5, png = tmp_path / "crowds.h5", tmp_path / "crowds.png"
    assert cli.main(["run", "two-crowds", "--set", "N=40", "--set", "Nt=20", "--out", str(h5), "--plot", str(png),
                     "-q"]) == 0
    out = capsys.readouterr().out
    assert "mirror symmetry" in out and "PASS" in out
    assert mp.load(h5).m.shape == (2, 21, 40) and png.stat().st_size > 10_000
    src = tmp_path / "game.py"
    src.write_text("import mfg_pde as mp\n"
                   "grid = mp.Grid([(-1, 1)], 40)\n"
                   "crowd = lambda c: mp.MFGProblem(grid, 1.0, 20, 0.3, mp.gaussian(grid, c, 0.25), "
                   "coupling=mp.LocalPower(1.0))\n"
                   "problem = mp.MultiPopulationProblem([crowd(-0.2), crowd(0.2)], "
                   "coupling=mp.CrossCoupling.local([[0, 2.0], [2.0, 0]]))\n")
    out_h5 = tmp_path / "game.h5"
    assert cli.main(["solve", str(src), "--out", str(out_h5), "--figure", str(tmp_path / "game.png"), "-q"]) == 0
    assert "2 populations" in capsys.readouterr().out
    assert mp.load(out_h5).converged


def test_auto_falls_back_to_picard_when_the_joint_newton_fails(monkeypatch):
    """auto's sequence: Anderson (stopped as slow), then Newton; a Newton that fails hands over to damped
    Picard from the start, and the status says what happened."""
    from mfg_pde.newton import multipop as jn

    def failing_newton(problem, us, ms, states, **kw):
        return False, "not converged: line search failed (forced by the test)", None, None

    monkeypatch.setattr(jn, "joint_newton", failing_newton)
    grid = mp.Grid([(-1, 1)], 40)
    r = mp.solve(_mirror_pops(grid, Nt=10), method="auto", tol=1e-10, stall_window=2)
    assert r.converged and r.solver["winner"] == "picard"
    assert "forced by the test" in r.solver["auto_note"]
    assert set(np.unique(r.history["phase"])) == {0.0, 2.0}


def test_memory_of_all_populations_is_checked_before_the_solve(monkeypatch):
    from mfg_pde.model import problem as problem_module

    grid = mp.Grid([(-1, 1)], 40)
    pb = _mirror_pops(grid, Nt=10)
    one = problem_module.solve_memory_estimate(grid.shape, 10, "anderson")
    monkeypatch.setattr(problem_module, "available_memory", lambda: int(1.5 * one))   # room for one, not two
    with pytest.raises(MemoryError, match="2 populations on grid shape"):
        mp.solve(pb, method="anderson")


@pytest.mark.parametrize("cross, own, cg", [(0.6, None, True), (1.5, None, False),
                                             (0.6, mp.LocalPower(1.0) + mp.LocalPower(0.5, 2.0), True)])
def test_joint_reduced_system_uses_cg_exactly_when_the_coupling_is_monotone_and_symmetric(cross, own, cg):
    """Congestion a = 1 within a crowd, aversion b to the other: Phi = dt [[a, b], [b, a]] per node is positive
    semi-definite for b <= a (conjugate gradients after symmetrisation) and indefinite for b > a (GMRES);
    with F_own = m + m^2/2, Phi = dt [[1 + m_A, b], [b, 1 + m_B]] differs from node to node (one root per node).
    Every direction solves the Newton system."""
    from mfg_pde.newton.multipop import JointReduced

    pb = _mirror_pops(mp.Grid([(-1, 1)], 60), cross=cross, own=own)
    sysm = JointSystem(pb)
    U, M = sysm.lift(*cold_pair(pb))
    M[1:] *= 1 + 0.05 * np.sin(np.arange(M[1:].size)).reshape(M[1:].shape)   # off the cold pair: R_H != 0
    sysm.complete(U, M)
    ev, der = sysm.evaluate(U, M), sysm.derivative(M)
    red = JointReduced(sysm, U, M, ev, der)
    assert red.use_cg is cg
    if cg:
        assert red.S.ndim == (2 if own is None else 4)
    du, dm, _ = red.solve(1e-12, 2000)
    JH, JF = sysm.jvp(U, M, ev, der, du, dm)
    scale = max(np.abs(ev["RH"]).max(), np.abs(ev["RF"]).max())
    assert np.abs(ev["RH"]).max() > 1e-6
    assert max(np.abs(JH + ev["RH"]).max(), np.abs(JF + ev["RF"]).max()) <= 1e-10 * scale
