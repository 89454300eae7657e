"""Bad input gets a clear error naming the parameter; grids, densities, schedules, couplings."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.model.schedules import FromCallable, PiecewiseConstant, as_schedule


def grid1(N=50):
    return mp.Grid([(-3, 3)], N)


@pytest.mark.parametrize("kwargs,match", [
    (dict(bounds=[(1, 0)], shape=10), "lo < hi"),
    (dict(bounds=[(0, 1)], shape=2), "at least 3"),
    (dict(bounds=[(0, 1), (0, 1)], shape=(10,)), "one cell count per axis"),
    (dict(bounds=[(0, 1)], shape=10, bc="sticky"), "unknown boundary condition"),
    (dict(bounds=[(0, 1)] * 4, shape=10), "1 to 3"),
    (dict(bounds=[(0, np.inf)], shape=10), "finite"),
])
def test_grid_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mp.Grid(**kwargs)


def test_exit_sides_are_accepted_per_axis_and_side():
    # exit / absorbing / dirichlet are one boundary condition, per axis and per side
    g = mp.Grid([(0, 1)], 10, "absorbing")
    assert g.bc == ("exit",) and g.exit_sides == ((0, 0), (0, 1))
    g = mp.Grid([(0, 1)], 10, ("reflecting", "dirichlet"))          # 1-D: a bare (lo, hi) pair
    assert g.bc == (("reflecting", "exit"),) and g.exit_sides == ((0, 1),)
    g = mp.Grid([(0, 1), (0, 2)], 8, bc=[("reflecting", "exit"), "reflecting"])
    assert g.bc_sides == (("reflecting", "exit"), ("reflecting", "reflecting"))
    assert g.bc_codes.tolist() == [2, 0] and g.has_exits
    # today's forms are unchanged
    g = mp.Grid([(0, 1), (-1, 1)], (4, 8), ("periodic", "reflecting"))
    assert g.bc == ("periodic", "reflecting") and not g.has_exits
    assert mp.Grid([(0, 1)], 5, [("exit", "exit")]).bc == ("exit",)


@pytest.mark.parametrize("bc,match", [
    ([("periodic", "reflecting"), "reflecting"], "periodic on both sides"),
    ([("exit", "periodic"), "reflecting"], "periodic on both sides"),
    ([("exit", "exit", "exit"), "reflecting"], "pair"),
    ([("exit", "sticky"), "reflecting"], "unknown boundary condition"),
    (["exit"], "one per axis"),
])
def test_bad_side_conditions(bc, match):
    with pytest.raises(ValueError, match=match):
        mp.Grid([(0, 1), (0, 1)], 6, bc)


def test_grid_with_exits_round_trips_through_describe():
    import json
    g = mp.Grid([(0, 1), (0, 2), (0, 3)], (4, 5, 6), [("reflecting", "exit"), "periodic", ("exit", "exit")])
    d = json.loads(json.dumps(g.describe()))
    assert mp.Grid(d["bounds"], d["shape"], d["bc"]) == g
    g1 = mp.Grid([(0, 1)], 7, ("exit", "reflecting"))
    d = json.loads(json.dumps(g1.describe()))
    assert mp.Grid(d["bounds"], d["shape"], d["bc"]) == g1


def test_exit_cost_validation():
    g = mp.Grid([(0, 1), (0, 1)], 16, [("reflecting", "exit"), "reflecting"])
    m0 = mp.gaussian(g, (0.5, 0.5), (0.15, 0.15))
    pb = mp.MFGProblem(g, 1.0, 4, 0.5, m0, exit_cost=2.5)
    assert pb.exit_costs[0, 1] == 2.5 and np.isnan(pb.exit_costs[0, 0]) and np.all(np.isnan(pb.exit_costs[1]))
    assert pb.describe()["exit_cost"] == [[None, 2.5], [None, None]]
    pb = mp.MFGProblem(g, 1.0, 4, 0.5, m0, exit_cost=[(None, 1.0), None])
    assert pb.exit_costs[0, 1] == 1.0
    with pytest.raises(ValueError, match="not an exit"):
        mp.MFGProblem(g, 1.0, 4, 0.5, m0, exit_cost=[(3.0, 1.0), None])
    with pytest.raises(ValueError, match="finite"):
        mp.MFGProblem(g, 1.0, 4, 0.5, m0, exit_cost=np.inf)
    with pytest.raises(ValueError, match="no exit side"):
        mp.MFGProblem(mp.Grid([(0, 1)], 16), 1.0, 4, 0.5, mp.gaussian(mp.Grid([(0, 1)], 16), 0.5, 0.2),
                      exit_cost=1.0)
    with pytest.raises(NotImplementedError, match="exit"):
        mp.PlanningProblem(g, 1.0, 4, 0.5, m0, m0)


def test_grid_geometry():
    g = mp.Grid([(0, 1), (-1, 1)], (4, 8), ("periodic", "reflecting"))
    assert g.spacing == (0.25, 0.25) and g.ndim == 2 and g.size == 32
    np.testing.assert_allclose(g.axes[0], [0.125, 0.375, 0.625, 0.875])
    assert g.integrate(np.ones(g.shape)) == pytest.approx(2.0)


@pytest.mark.parametrize("m0,match", [
    (lambda g: -mp.gaussian(g, 0, 0.5), "negative"),
    (lambda g: 2 * mp.gaussian(g, 0, 0.5), "integrates to 2"),
    (lambda g: np.ones(7), "shape"),
    (lambda g: np.full(g.shape, np.nan), "non-finite"),
    (lambda g: np.zeros(g.shape), "zero mass"),
])
def test_bad_initial_density(m0, match):
    g = grid1()
    with pytest.raises(ValueError, match=match):
        mp.MFGProblem(g, 1.0, 10, 0.5, m0(g))


@pytest.mark.parametrize("kw,match", [
    (dict(T=0.0), "T = 0.0"), (dict(T=-1.0), "horizon"), (dict(Nt=0), "Nt"), (dict(Nt=2.5), "Nt"),
    (dict(sigma=-0.1), "sigma"), (dict(sigma=np.nan), "sigma"),
])
def test_bad_numbers(kw, match):
    g = grid1()
    args = dict(T=1.0, Nt=10, sigma=0.5, m0=mp.gaussian(g, 0, 0.5))
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        mp.MFGProblem(g, **args)


def test_under_resolved_gaussian_is_rejected():
    with pytest.raises(ValueError, match="under-resolved"):
        mp.gaussian(grid1(10), 0.0, 0.1)


def test_potential_and_terminal_shapes_are_checked():
    g = grid1()
    pb = mp.MFGProblem(g, 1.0, 10, 0.5, mp.gaussian(g, 0, 0.5), potential=np.ones(7))
    with pytest.raises(ValueError, match="potential has shape"):
        pb.potential_steps()
    with pytest.raises(ValueError, match="terminal_cost"):
        mp.MFGProblem(g, 1.0, 10, 0.5, mp.gaussian(g, 0, 0.5), terminal_cost=np.ones(3))


def test_normalise_and_mixture():
    g = grid1(200)
    m = mp.gaussian_mixture(g, [3, 1], [-1, 1], [0.3, 0.5])
    assert g.integrate(m) == pytest.approx(1.0, abs=1e-14)
    assert g.mean(m)[0] == pytest.approx(-0.5, abs=1e-4)  # the 4-sd wall truncates the right component
    with pytest.raises(ValueError, match="weights"):
        mp.gaussian_mixture(g, [-1, 2], [0, 1], [0.3, 0.3])


def test_schedules():
    s = PiecewiseConstant.uniform(1.0, [3.0, 2.0, 1.0])
    np.testing.assert_allclose(s(np.array([0.0, 0.2, 0.34, 0.7, 1.0])), [3, 3, 2, 1, 1])
    assert as_schedule(2.5)(np.zeros(3)).tolist() == [2.5] * 3
    assert isinstance(as_schedule(lambda t: t), FromCallable)
    with pytest.raises(ValueError, match="breaks"):
        PiecewiseConstant([0, 1], [1, 2])
    with pytest.raises(ValueError, match="beta"):
        as_schedule("abc", "beta")


def test_quadratic_interaction_field():
    g = grid1(100)
    m = mp.gaussian(g, 0.7, 0.4)[None]
    f = mp.QuadraticInteraction(3.0).field(g, np.array([0.0]), m)
    np.testing.assert_allclose(f[0], 1.5 * (g.axes[0] - g.mean(m)[0, 0]) ** 2)


@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
def test_kernel_interaction_matches_direct_sum(bc):
    g = mp.Grid([(0, 1), (0, 2)], (12, 10), bc)
    m = np.random.default_rng(0).random((2,) + g.shape)
    W = lambda dx, dy: np.exp(-(dx ** 2 + dy ** 2) / 0.1)  # noqa: E731
    f = mp.KernelInteraction(W).field(g, np.zeros(2), m)
    X, Y = g.mesh()
    L = np.array([1.0, 2.0])
    ref = np.zeros_like(m)
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            dx, dy = X[i, j] - X, Y[i, j] - Y
            if bc == "periodic":
                dx = dx - L[0] * np.round(dx / L[0])
                dy = dy - L[1] * np.round(dy / L[1])
            ref[:, i, j] = (W(dx, dy) * m).sum(axis=(1, 2)) * g.cell_volume
    np.testing.assert_allclose(f, ref, rtol=1e-10, atol=1e-12)


def test_local_couplings():
    g = grid1(20)
    m = np.full((1,) + g.shape, 0.25)
    np.testing.assert_allclose(mp.LocalPower(2.0, 2.0).field(g, None, m), 0.125)
    np.testing.assert_allclose(mp.LocalLog(1.0).field(g, None, m), np.log(0.25))
    f = (mp.LocalPower(1.0) + mp.LocalLog(2.0)).field(g, None, m)
    np.testing.assert_allclose(f, 0.25 + 2 * np.log(0.25))


def test_prolong_is_exact_for_linear_fields_and_checks_shapes():
    from mfg_pde.model.grid import prolong

    c, f = mp.Grid([(-1.0, 2.0), (0.0, 1.0)], [30, 20]), mp.Grid([(-1.0, 2.0), (0.0, 1.0)], [60, 40])
    xc, yc = c.mesh()
    xf, yf = f.mesh()
    t_old, t_new = np.linspace(0, 1, 5), np.linspace(0, 1, 9)
    field = np.stack([2 * xc - 3 * yc + tt for tt in t_old])
    out = prolong(c, f, field, t_old, t_new)
    inner = (slice(None), slice(1, -1), slice(1, -1))  # outside the coarse centres the end value is kept
    ref = np.stack([2 * xf - 3 * yf + tt for tt in t_new])
    assert np.allclose(out[inner], ref[inner], atol=1e-12)
    with pytest.raises(ValueError, match="coarse grid needs"):
        prolong(c, f, np.zeros((5, 7)))


def test_potential_at_steps_and_midpoints():
    """potential_steps is V at t_{n+1}, potential_midpoints V at t_{n+1/2} (Strang); a per-level array
    gives its step values and step averages; a wrong shape is a clear error."""
    grid = mp.Grid([(0, 1)], 20)
    x = grid.axes[0]
    V = lambda x, t: np.sin(3 * x) * (1 + t ** 2)  # noqa: E731
    pb = mp.MFGProblem(grid, 1.0, 8, 0.5, mp.gaussian(grid, 0.5, 0.15), potential=V)
    t = pb.t
    np.testing.assert_allclose(pb.potential_steps(), np.stack([V(x, tj) for tj in t[1:]]))
    np.testing.assert_allclose(pb.potential_midpoints(), np.stack([V(x, tj) for tj in 0.5 * (t[:-1] + t[1:])]))
    levels = np.stack([V(x, tj) for tj in t])
    pa = mp.MFGProblem(grid, 1.0, 8, 0.5, mp.gaussian(grid, 0.5, 0.15), potential=levels)
    np.testing.assert_array_equal(pa.potential_steps(), levels[1:])
    np.testing.assert_allclose(pa.potential_midpoints(), 0.5 * (levels[:-1] + levels[1:]))
    ps = mp.MFGProblem(grid, 1.0, 8, 0.5, mp.gaussian(grid, 0.5, 0.15), potential=np.cos(x))
    np.testing.assert_array_equal(ps.potential_midpoints(), np.cos(x)[None])
    with pytest.raises(ValueError, match="potential has shape"):
        mp.MFGProblem(grid, 1.0, 8, 0.5, mp.gaussian(grid, 0.5, 0.15), potential=np.ones(7)).potential_midpoints()
