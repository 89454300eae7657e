"""Walls and doors (model/geometry.py): shapes and masks, zero-flux obstacle walls (no mass crosses them, to
round-off), doors (all outflow leaves through them, per door), the FP step as the exact transpose of the
linearised HJB step with masks, every coupling loop, a 3-D smoke test, saved and reloaded problems, errors."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from scipy import sparse

import mfg_pde as mp
from mfg_pde.diagnostics.matrices import step_factors, step_operator
from mfg_pde.diagnostics.outflow import outflow_history
from mfg_pde.fd.fp import fp_residual, solve_fp
from mfg_pde.fd.hjb import hjb_residual, solve_hjb
from mfg_pde.fd.kernels import axis_source
from mfg_pde.fd.operator import as3, kernel_data


# ---------------------------------------------------------------------------------- shapes and masks
def test_shapes_give_the_cells_whose_centre_is_inside():
    g = mp.Grid([(0, 1), (0, 1)], 10)            # centres 0.05, 0.15, ..., 0.95
    X, Y = g.mesh()
    r = mp.Rectangle((0.2, 0.4), (0.5, 0.9)).mask(g)
    np.testing.assert_array_equal(r, (X >= 0.2) & (X <= 0.5) & (Y >= 0.4) & (Y <= 0.9))
    assert r.sum() == 3 * 5
    d = mp.Disc((0.5, 0.5), 0.25).mask(g)
    np.testing.assert_array_equal(d, (X - 0.5) ** 2 + (Y - 0.5) ** 2 <= 0.25 ** 2)
    assert d.sum() == 16
    # triangle (0,0), (1,0), (0,1): inside iff x + y < 1 (no centre lies on the hypotenuse here)
    tri = mp.Polygon([(0, 0), (1, 0), (0, 1)]).mask(g)
    np.testing.assert_array_equal(tri, X + Y < 1)
    # an L-shaped (non-convex) polygon: the unit square minus its upper-right quarter
    ell = mp.Polygon([(0, 0), (1, 0), (1, 0.5), (0.5, 0.5), (0.5, 1), (0, 1)]).mask(g)
    np.testing.assert_array_equal(ell, ~((X > 0.5) & (Y > 0.5)))
    # union, of shapes and of a list mixing shapes and arrays
    u = (mp.Rectangle((0.2, 0.4), (0.5, 0.9)) | mp.Disc((0.5, 0.5), 0.25)).mask(g)
    np.testing.assert_array_equal(u, r | d)
    np.testing.assert_array_equal(mp.obstacle_mask(g, [mp.Disc((0.5, 0.5), 0.25), r]), r | d)
    np.testing.assert_array_equal(mp.obstacle_mask(g, r.astype(int)), r)
    # 1-D and 3-D
    g1 = mp.Grid([(0, 1)], 10)
    np.testing.assert_array_equal(mp.Interval(0.3, 0.6).mask(g1), (g1.axes[0] >= 0.3) & (g1.axes[0] <= 0.6))
    g3 = mp.Grid([(0, 1)] * 3, 6)
    X3, Y3, Z3 = g3.mesh()
    np.testing.assert_array_equal(mp.Disc((0.5, 0.5, 0.5), 0.3).mask(g3),
                                  (X3 - 0.5) ** 2 + (Y3 - 0.5) ** 2 + (Z3 - 0.5) ** 2 <= 0.09)


def test_face_codes_mark_the_wall_faces():
    g = mp.Grid([(0, 1), (0, 1)], 6, bc=["reflecting", "periodic"])
    solid = np.zeros(g.shape, dtype=bool)
    solid[2, 3] = True
    solid[4, 5] = True                       # on the periodic seam of y
    pb_geo = mp.model.geometry.Geometry(g, solid)
    cx = pb_geo.face_codes(0)
    cy = pb_geo.face_codes(1)
    assert cx[2, 3] == 3 and cx[1, 3] == 2 and cx[3, 3] == 1 and cx[0, 0] == 0
    assert cy[2, 3] == 3 and cy[2, 2] == 2 and cy[2, 4] == 1
    assert cy[4, 0] == 1 and cy[4, 4] == 2  # the wrap face between y index 5 and 0 is a wall


# ---------------------------------------------------------------------------------- the FP is the transpose
def _problem(shape, bc, obstacles=None, doors=None, Nt=5, T=0.3, sigma=0.6, exit_cost=0.0):
    bounds = [(-2.0, 2.0)] * len(shape)
    grid = mp.Grid(bounds, shape, bc)
    solid = mp.obstacle_mask(grid, obstacles)
    m0 = mp.gaussian(grid, 0.3, max(0.6, 1.5 * max(grid.spacing)))
    if solid is not None:
        m0 = mp.normalise(grid, m0 * ~solid)

    def b(*args):
        *xs, t = args
        return [np.sin(x + t) - 0.5 * x + 0.3 for x in xs]

    pot = lambda *args: 0.5 * sum(x ** 2 for x in args[:-1]) * (1 + args[-1])  # noqa: E731
    return mp.MFGProblem(grid, T, Nt, sigma, m0, potential=pot, drift=b, terminal_cost=lambda *xs: np.cos(sum(xs)),
                         exit_cost=exit_cost, obstacles=obstacles, doors=doors)


WALL_CASES = [
    ((40,), "reflecting", mp.Interval(0.2, 0.6), None),
    ((40,), "periodic", mp.Interval(-2.0, -1.7), None),              # a wall across the periodic seam
    ((14, 11), "reflecting", mp.Disc((0.5, 0.0), 0.9), None),
    ((14, 11), ("periodic", "reflecting"), mp.Rectangle((-0.3, -2), (0.3, 0.5)), None),
    ((14, 11), ("reflecting", "periodic"), mp.Polygon([(-1, -1), (1, -1), (0, 1)]), None),
    ((14, 11), "reflecting", mp.Rectangle((0.5, -1), (1.0, 1)), [mp.Door(("x", "hi"), mp.Interval(-1, 1), cost=0.7),
                                                                 mp.Door(("y", "lo"), mp.Interval(-2, 0), cost=0.2)]),
    ((7, 6, 8), "reflecting", mp.Disc((0, 0, 0), 1.0), [mp.Door(("z", "lo"), mp.Disc((0.5, 0.5), 1.2), cost=0.4)]),
    ((7, 6, 8), ["periodic", "reflecting", "reflecting"], mp.Rectangle((-2, -1, -1), (-1.2, 1, 2)), None),
]


@pytest.mark.parametrize("shape,bc,obstacles,doors", WALL_CASES)
def test_fp_is_exact_transpose_of_hjb_with_walls_and_doors(shape, bc, obstacles, doors):
    pb = _problem(shape, bc, obstacles, doors)
    grid = pb.grid
    solid = pb.solid
    f = pb.running_cost(None)
    sol = solve_hjb(pb, f, pb.terminal_values(None))
    m = solve_fp(pb, sol)
    kd = kernel_data(pb, exits_supported=True)
    assert kd.has_walls
    exit_cells = np.zeros((grid.ndim,) + grid.shape, dtype=bool)
    for (k, j, faces) in pb.geometry.door_faces:
        sl = [slice(None)] * grid.ndim
        sl[k] = 0 if j == 0 else -1
        exit_cells[k][tuple(sl)] |= faces
    for n in range(pb.Nt):
        P = step_operator(pb, sol.u[n], n, sol.states[n])
        m_ref = spla.spsolve(P.T.tocsc(), m[n].ravel())
        np.testing.assert_allclose(m[n + 1].ravel(), m_ref, rtol=1e-10, atol=1e-13)
        x = np.cos(np.arange(grid.size))
        assert abs(m[n + 1].ravel() @ (P @ x) - m[n].ravel() @ x) < 1e-12     # discrete duality
        prev = sol.u[n + 1].ravel() + pb.dt * f[n].ravel()
        for k, M in enumerate(step_factors(pb, sol.u[n], n, sol.states[n])):
            s_k = sol.u[n] if k == grid.ndim - 1 else sol.states[n, k].reshape(grid.shape)
            c = np.empty(kd.shape3)
            axis_source(as3(s_k, 0, kd.shape3), kd.drift[n][k], k, kd.axis(k), c)
            rhs = prev + pb.dt * c.ravel()
            np.testing.assert_allclose(M @ s_k.ravel(), rhs, rtol=0, atol=1e-10 * np.abs(rhs).max())
            prev = s_k.ravel()
            M = M.tocsr()
            rowsum = np.asarray(M.sum(axis=1)).reshape(grid.shape)
            np.testing.assert_allclose(rowsum[~exit_cells[k]], 1.0, atol=1e-13)
            assert np.all(rowsum[exit_cells[k]] > 1.0)
            off = (M - sparse.diags(M.diagonal())).tocsr()
            assert off.data.max(initial=0.0) <= 0.0
            # no entry couples a solid cell with any other cell; its row is the identity
            s = solid.ravel()
            assert abs(off[s]).sum() == 0 and abs(off[:, s]).sum() == 0
            np.testing.assert_array_equal(M.diagonal()[s], 1.0)
    assert np.all(m[:, solid] == 0.0) and np.all(sol.u[:, solid] == 0.0)
    assert hjb_residual(pb, sol, f) < 1e-12 and fp_residual(pb, sol, m) < 1e-12
    out = outflow_history(pb, sol, m)
    np.testing.assert_allclose(grid.integrate(m) + out.cumulative, 1.0, atol=1e-13)


def test_only_faces_next_to_a_solid_cell_change():
    # a lone solid cell: along axis k its row becomes an identity row and its two neighbours along k lose their
    # coupling to it; every other entry of M_k is that of the plain box (same state u)
    solid = np.zeros((10, 9), dtype=bool)
    solid[4, 4] = True
    pb = _problem((10, 9), "reflecting", solid)
    plain = _problem((10, 9), "reflecting")
    sol = solve_hjb(plain, plain.running_cost(None), plain.terminal_values(None))
    Ms = step_factors(pb, sol.u[0], 0, sol.states[0])
    Mp = step_factors(plain, sol.u[0], 0, sol.states[0])
    idx = np.arange(90).reshape(10, 9)
    for k in range(2):
        A, B = Ms[k].toarray(), Mp[k].toarray()
        nbs = [idx[3, 4], idx[5, 4]] if k == 0 else [idx[4, 3], idx[4, 5]]
        touched = [idx[4, 4]] + nbs
        keep = np.setdiff1d(idx.ravel(), touched)
        np.testing.assert_array_equal(A[np.ix_(keep, keep)], B[np.ix_(keep, keep)])
        for nb in nbs:
            assert A[nb, idx[4, 4]] == 0.0 and B[nb, idx[4, 4]] < 0.0
            assert A[nb].sum() == pytest.approx(1.0, abs=1e-14)


# ---------------------------------------------------------------------------------- no mass crosses a wall
def _split_room(gap, Nt=20, T=2.0, bc="reflecting"):
    """A room [0, 1]^2 split by a wall x in [0.45, 0.55]; ``gap``: an opening |y - 0.5| < gap/2 in it (0: closed).
    Two crowds, 30 % left and 70 % right; potential and a drift push everybody to the right."""
    g = mp.Grid([(0, 1), (0, 1)], 24, bc=bc)
    wall = mp.Rectangle((0.45, 0.0), (0.55, 1.0))
    if gap > 0:
        wall = np.asarray(wall.mask(g) & ~mp.Rectangle((0.4, 0.5 - gap / 2), (0.6, 0.5 + gap / 2)).mask(g))
    solid = mp.obstacle_mask(g, wall)
    m0 = mp.gaussian_mixture(g, [0.3, 0.7], [(0.2, 0.5), (0.8, 0.4)], [(0.1, 0.12), (0.1, 0.12)])
    m0 = mp.normalise(g, m0 * ~solid)
    pb = mp.MFGProblem(g, T, Nt, 0.5, m0, coupling=mp.LocalPower(1.0), potential=lambda x, y, t: 4 * (x - 1) ** 2,
                       drift=lambda x, y, t: (2.0 + 0 * x, 0 * y), obstacles=wall)
    X = g.mesh()[0]
    left = (X < 0.5) & ~solid
    return pb, left


@pytest.mark.parametrize("bc", ["reflecting", ("reflecting", "periodic")])
def test_a_closed_wall_keeps_the_mass_on_each_side_to_round_off(bc):
    pb, left = _split_room(0.0, bc=bc)
    r = mp.solve(pb, method="anderson", tol=1e-9)
    assert r.converged
    mass_left = pb.grid.integrate(r.m * left)
    mass = pb.grid.integrate(r.m)
    assert abs(mass_left[0] - 0.3) < 1e-3
    np.testing.assert_allclose(mass_left, mass_left[0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(mass, 1.0, rtol=0, atol=1e-13)
    assert np.all(r.m[:, pb.solid] == 0.0) and r.m.min() >= 0.0
    # huge time steps: still no crossing (no CFL condition)
    big, left = _split_room(0.0, Nt=2, T=50.0, bc=bc)
    sol = solve_hjb(big, big.running_cost(big.m0[None].repeat(3, 0)), big.terminal_values(big.m0))
    m = solve_fp(big, sol)
    np.testing.assert_allclose(big.grid.integrate(m * left), big.grid.integrate(m * left)[0], atol=1e-13)
    assert m.min() >= 0.0


def test_an_open_gap_lets_the_crowd_through():
    # the negative control of the test above: with a gap in the wall, mass moves from left to right
    pb, left = _split_room(0.3)
    r = mp.solve(pb, method="anderson", tol=1e-8)
    mass_left = pb.grid.integrate(r.m * left)
    assert r.converged and mass_left[-1] < mass_left[0] - 0.05
    np.testing.assert_allclose(pb.grid.integrate(r.m), 1.0, atol=1e-13)


# ---------------------------------------------------------------------------------- doors
def _room_with_doors(doors, N=20, Nt=24, obstacles=None, bc="reflecting"):
    g = mp.Grid([(0, 1), (0, 1)], N, bc=bc)
    m0 = mp.gaussian(g, (0.4, 0.5), (0.12, 0.12))
    solid = mp.obstacle_mask(g, obstacles)
    if solid is not None:
        m0 = mp.normalise(g, m0 * ~solid)
    return mp.MFGProblem(g, 1.5, Nt, 0.4, m0, coupling=mp.LocalPower(1.0), potential=np.ones(g.shape),
                         terminal_cost=np.full(g.shape, 2.0), obstacles=obstacles, doors=doors)


def test_all_outflow_leaves_through_the_doors():
    doors = [mp.Door(("x", "hi"), mp.Interval(0.4, 0.6), name="east"),
             mp.Door(("y", "lo"), mp.Interval(0.0, 0.25), cost=0.5, name="south"),
             mp.Door(("x", "hi"), mp.Interval(0.8, 1.0), cost=0.1, name="north-east")]
    pb = _room_with_doors(doors, obstacles=mp.Disc((0.7, 0.5), 0.1))
    r = mp.solve(pb, tol=1e-9)
    out = r.outflow
    assert r.converged and out.doors == ["east", "south", "north-east"] and out.sides == ["x hi", "y lo"]
    assert out.balance_error < 1e-13 and out.evacuated_fraction > 0.5
    assert np.all(out.per_door >= 0) and np.all(out.per_door.sum(axis=0) > 1e-3)
    lost = out.mass[0] - out.mass
    door_total = sum(out.door_cumulative(name) for name in out.doors)
    np.testing.assert_allclose(lost, door_total, rtol=0, atol=1e-13)        # every bit of it through a door
    np.testing.assert_allclose(out.per_side[:, 0, 1], out.per_door[:, 0] + out.per_door[:, 2], atol=1e-16)
    np.testing.assert_allclose(out.per_side[:, 1, 0], out.per_door[:, 1], atol=1e-16)
    assert np.all(out.per_side[:, 0, 0] == 0) and np.all(out.per_side[:, 1, 1] == 0)
    # the rest of a door's side is a wall: no density leaks on the closed cells of the east side next to the
    # doors -- the outflow of each step is exactly what the door faces' exit rates take
    assert "doors 'east', 'south', 'north-east'" in out.summary()
    assert np.all(r.m[:, pb.solid] == 0.0)


def test_a_door_over_a_whole_side_is_the_exit_side():
    door = _room_with_doors([mp.Door(("x", "hi"), cost=0.3)], N=16, Nt=12)
    g = mp.Grid([(0, 1), (0, 1)], 16, bc=[("reflecting", "exit"), "reflecting"])
    side = mp.MFGProblem(g, 1.5, 12, 0.4, door.m0, coupling=mp.LocalPower(1.0), potential=np.ones(g.shape),
                         terminal_cost=np.full(g.shape, 2.0), exit_cost=0.3)
    a = mp.solve(door, method="picard", tol=1e-10)
    b = mp.solve(side, method="picard", tol=1e-10)
    assert a.iterations == b.iterations
    np.testing.assert_allclose(a.u, b.u, rtol=0, atol=1e-13)
    np.testing.assert_allclose(a.m, b.m, rtol=0, atol=1e-13)
    np.testing.assert_allclose(a.outflow.per_side, b.outflow.per_side, rtol=0, atol=1e-15)
    np.testing.assert_allclose(a.outflow.per_door[:, 0], a.outflow.per_side[:, 0, 1], atol=0)


def test_a_cheaper_door_draws_more_of_the_crowd():
    doors = lambda c: [mp.Door(("x", "lo"), name="west"), mp.Door(("x", "hi"), cost=c, name="east")]  # noqa: E731
    even = mp.solve(_room_with_doors(doors(0.0), N=16, Nt=12), tol=1e-8).outflow.per_door.sum(axis=0)
    dear = mp.solve(_room_with_doors(doors(1.0), N=16, Nt=12), tol=1e-8).outflow.per_door.sum(axis=0)
    assert dear[1] < even[1] and dear[0] > even[0]   # a dearer east door sends part of the crowd west


@pytest.mark.parametrize("method", ["picard", "anderson", "fictitious-play", "auto"])
def test_every_coupling_loop_runs_with_walls_and_doors(method):
    pb = _room_with_doors([mp.Door(("x", "hi"), mp.Interval(0.3, 0.7))], N=14, Nt=10,
                          obstacles=mp.Rectangle((0.55, 0.3), (0.7, 0.7)))
    r = mp.solve(pb, method=method, tol=1e-8, max_iter=400 if method == "fictitious-play" else 200)
    if method != "fictitious-play":   # sublinear by design: it reaches a loose tolerance only
        assert r.converged, r.status
    assert r.outflow.balance_error < 1e-13 and np.all(r.m[:, pb.solid] == 0.0)
    assert r.obstacle is not None and np.array_equal(r.obstacle, pb.solid)
    if method == "auto":
        assert "newton" not in r.solver.get("winner", "")
    gap = mp.exploitability(pb, r)
    assert gap > -1e-10 and (gap < 1e-6 or method == "fictitious-play")


def test_newton_and_planning_refuse_walls_clearly():
    pb = _room_with_doors([mp.Door(("x", "hi"), mp.Interval(0.3, 0.7))], N=14, Nt=6,
                          obstacles=mp.Rectangle((0.55, 0.3), (0.7, 0.7)))
    with pytest.raises(NotImplementedError, match="walls and doors.*obstacles.*doors"):
        mp.solve(pb, method="newton")
    walled = _room_with_doors(None, N=14, Nt=6, obstacles=mp.Rectangle((0.55, 0.3), (0.7, 0.7)))
    with pytest.raises(NotImplementedError, match="walls and doors.*obstacles"):
        mp.solve(walled, method="newton")
    from mfg_pde.fd.operator import kernel_data as kd

    with pytest.raises(NotImplementedError, match="walls and doors"):
        kd(walled)        # a solver built on the kernels without wall support (planning, Newton systems)


def test_3d_room_with_a_ball_and_a_round_door():
    g = mp.Grid([(0, 1)] * 3, 10)
    ball = mp.Disc((0.5, 0.5, 0.5), 0.2)
    m0 = mp.normalise(g, mp.gaussian(g, (0.5, 0.5, 0.25), (0.16, 0.16, 0.16)) * ~ball.mask(g))
    pb = mp.MFGProblem(g, 1.0, 8, 0.5, m0, coupling=mp.LocalPower(0.5), potential=np.ones(g.shape),
                       terminal_cost=np.ones(g.shape), obstacles=ball,
                       doors=mp.Door(("z", "hi"), mp.Disc((0.5, 0.5), 0.25), name="hatch"))
    r = mp.solve(pb, tol=1e-8)
    assert r.converged and r.outflow.doors == ["hatch"] and r.outflow.sides == ["z hi"]
    assert r.outflow.balance_error < 1e-13 and r.outflow.evacuated_fraction > 0.05
    assert np.all(r.m[:, pb.solid] == 0.0) and np.all(r.u[:, pb.solid] == 0.0) and r.m.min() >= 0.0


def test_walls_and_doors_round_trip_through_a_file(tmp_path):
    pb = _room_with_doors([mp.Door(("x", "hi"), mp.Interval(0.3, 0.7), cost=0.2, name="main"),
                           mp.Door(("y", "lo"), mp.Interval(0.0, 0.3))], N=14, Nt=8,
                          obstacles=[mp.Disc((0.7, 0.5), 0.12), mp.Polygon([(0.1, 0.8), (0.3, 0.8), (0.2, 0.95)])])
    r = mp.solve(pb, method="anderson", tol=1e-9)
    path = tmp_path / "room.h5"
    r.save(path)
    back = mp.load(path)
    assert back.outflow.doors == ["main", "door 1"]
    np.testing.assert_array_equal(back.outflow.per_door, r.outflow.per_door)
    again = mp.load_problem(path)
    np.testing.assert_array_equal(again.solid, pb.solid)
    assert [d.name for d in again.geometry.doors] == ["main", "door 1"]
    assert [d.cost for d in again.geometry.doors] == [0.2, 0.0]
    for (k, j, f), (k2, j2, f2) in zip(pb.geometry.door_faces, again.geometry.door_faces):
        assert (k, j) == (k2, j2) and np.array_equal(f, f2)
    r2 = mp.solve(again, method="anderson", tol=1e-9)
    np.testing.assert_allclose(r2.m, r.m, rtol=0, atol=1e-14)
    np.testing.assert_allclose(r2.u, r.u, rtol=0, atol=1e-13)


def test_a_maskless_problem_is_unchanged_by_the_geometry_code():
    pb = _room_with_doors(None, N=14, Nt=6)
    kd = kernel_data(pb)             # no walls, no doors: accepted by every solver
    assert not kd.has_walls and kd.exits is None and not pb.has_exits and pb.solid is None


# ---------------------------------------------------------------------------------- errors
def test_bad_geometry_gives_clear_errors():
    g = mp.Grid([(0, 1), (0, 1)], 10)
    m0 = mp.gaussian(g, (0.3, 0.5), (0.16, 0.16))
    mk = lambda **kw: mp.MFGProblem(g, 1.0, 4, 0.5, kw.pop("m0", m0), **kw)  # noqa: E731
    with pytest.raises(ValueError, match=r"obstacles has shape \(9, 10\).*\(10, 10\)"):
        mk(obstacles=np.zeros((9, 10), dtype=bool))
    with pytest.raises(ValueError, match="obstacles: give a boolean array"):
        mk(obstacles=np.full(g.shape, 0.5))
    with pytest.raises(ValueError, match="m0 has mass .* on solid.*normalise"):
        mk(obstacles=mp.Disc((0.3, 0.5), 0.2))
    with pytest.raises(ValueError, match="every cell"):
        mk(obstacles=np.ones(g.shape, dtype=bool), m0=m0)
    with pytest.raises(ValueError, match="no cell centre.*thicken"):
        mk(obstacles=mp.Rectangle((0.51, 0), (0.54, 1)))
    with pytest.raises(ValueError, match="1-D but the grid has 2 axes"):
        mk(obstacles=mp.Interval(0.2, 0.3))
    with pytest.raises(ValueError, match=r"where = Interval\(1.2, 1.5\) contains no face centre.*widen"):
        mk(doors=mp.Door(("x", "hi"), mp.Interval(1.2, 1.5)))           # a door outside the side
    with pytest.raises(ValueError, match="Door where has shape \\(7,\\).*\\(10,\\)"):
        mk(doors=mp.Door(("x", "hi"), np.ones(7, dtype=bool)))
    with pytest.raises(ValueError, match="axis 'w' is not one of"):
        mk(doors=mp.Door(("w", "hi")))
    with pytest.raises(ValueError, match="side 'top' must be 'lo' or 'hi'"):
        mk(doors=mp.Door(("x", "top")))
    with pytest.raises(ValueError, match="overlaps"):
        mk(doors=[mp.Door(("x", "hi"), mp.Interval(0.1, 0.5)), mp.Door(("x", "hi"), mp.Interval(0.4, 0.8))])
    with pytest.raises(ValueError, match="repeated names"):
        mk(doors=[mp.Door(("x", "hi"), name="a"), mp.Door(("y", "hi"), name="a")])
    with pytest.raises(ValueError, match="opens onto 3 solid cell.*cut the opening"):
        mk(obstacles=mp.Rectangle((0.8, 0.0), (1.0, 1.0)), doors=mp.Door(("x", "hi"), mp.Interval(0.2, 0.5)))
    with pytest.raises(ValueError, match="Door cost"):
        mp.Door(("x", "hi"), cost=float("inf"))
    with pytest.raises(TypeError, match="Door objects"):
        mk(doors=[("x", "hi")])
    gp = mp.Grid([(0, 1), (0, 1)], 10, bc=["periodic", "reflecting"])
    with pytest.raises(ValueError, match="is 'periodic'.*door goes on a reflecting side"):
        mp.MFGProblem(gp, 1.0, 4, 0.5, m0, doors=mp.Door(("x", "hi")))
    ge = mp.Grid([(0, 1), (0, 1)], 10, bc=[("reflecting", "exit"), "reflecting"])
    with pytest.raises(ValueError, match="is 'exit'"):
        mp.MFGProblem(ge, 1.0, 4, 0.5, m0, doors=mp.Door(("x", "hi"), mp.Interval(0.2, 0.4)))
    with pytest.raises(ValueError, match="at least 3 finite"):
        mp.Polygon([(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="need lo < hi"):
        mp.Rectangle((0, 0), (1, 0))
    with pytest.raises(ValueError, match="radius"):
        mp.Disc((0, 0), -1)
    g1 = mp.Grid([(0, 1)], 10)
    with pytest.raises(ValueError, match="one point; give where=None"):
        mp.MFGProblem(g1, 1.0, 4, 0.5, mp.gaussian(g1, 0.5, 0.16), doors=mp.Door(("x", "hi"), mp.Interval(0, 1)))
