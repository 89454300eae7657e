"""Walls and doors: obstacle masks on a grid and exit segments (doors) of the box's sides.

**Obstacles.**  A boolean mask on the grid, True on the *solid* cells (outside the domain).  Shapes build
masks from their cell centres (a cell is solid when its centre is inside the shape):

    Rectangle(lo, hi)      an axis-aligned box, lo/hi one corner per axis (any dimension)
    Disc(centre, radius)   a disc (2-D), a ball (3-D), an interval (1-D)
    Polygon(vertices)      a simple or self-intersecting polygon (2-D; even-odd rule)
    a | b                  the union of shapes (``Union``); raw boolean arrays of the grid's shape, and
                           lists of shapes and arrays (their union), are accepted wherever a shape is

``obstacle_mask(grid, obstacles)`` gives the mask.  The face between a domain cell and a solid cell is a
zero-flux wall, discretised exactly like the reflecting sides of the box (``fd.kernels``): no diffusive and
no advective flux crosses it, the FP step stays the exact transpose of the linearised HJB step, so mass
is conserved to round-off and m >= 0 for any dt.  Solid cells are decoupled from everything: their rows
of every factor M_k are identity rows, m = 0 there at all times, and u = 0 there (the problem sets the
running and terminal costs of solid cells to 0, see ``MFGProblem.running_cost``).

**Doors.**  ``Door(side, where=None, cost=0.0, name=None)`` is an exit (absorbing, Dirichlet: u = cost on
a ghost node one cell outside, m = 0 there) on part of one side of the box; the rest of that side is a
reflecting wall.  ``side`` is ``("x", "hi")`` (axis name or index, "lo"/"hi" or 0/1); ``where`` selects
the faces of the side, tested at the face centres in the coordinates of the side's own axes (the other
axes, in order): ``Interval(lo, hi)`` on a 2-D grid, a 2-D shape (Rectangle, Disc, Polygon) on a 3-D
grid, a boolean array of the side's shape (the grid shape without that axis), or None for the whole side.
Each door has its own exit cost and its own outflow history (``result.outflow.per_door``).  The side of a
door must be reflecting in the grid's ``bc`` (a side that is "exit" is already an exit as a whole).
"""

from __future__ import annotations

import numpy as np

from .grid import AXIS_NAMES, SIDE_NAMES, Grid

__all__ = ["Disc", "Door", "Geometry", "Interval", "Polygon", "Rectangle", "Shape", "Union", "obstacle_mask"]


class Shape:
    """A region of R^d; ``contains(*coords)`` tests points, ``mask(grid)`` the grid's cell centres."""

    ndim: int | None = None

    def contains(self, *coords) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def mask(self, grid: Grid) -> np.ndarray:
        """Boolean array of the grid's shape, True on the cells whose centre lies in the shape."""
        _check_dim(self, grid.ndim, "grid")
        return np.broadcast_to(self.contains(*grid.mesh(sparse=True)), grid.shape).copy()

    def __or__(self, other):
        return Union(self, other)

    def describe(self) -> dict:  # pragma: no cover - overridden
        return {"type": type(self).__name__}


def _check_dim(shape, ndim: int, what: str) -> None:
    if shape.ndim is not None and shape.ndim != ndim:
        raise ValueError(f"{shape!r} is {shape.ndim}-D but the {what} has {ndim} axes; give a "
                         f"{ndim}-D shape (one coordinate per axis)")


def _vector(value, name: str, ndim=None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1 or (ndim is not None and arr.size != ndim) or not np.all(np.isfinite(arr)):
        want = f"{ndim} finite numbers" if ndim else "finite numbers, one per axis"
        raise ValueError(f"{name} = {value!r}: give {want}")
    return arr


class Rectangle(Shape):
    """The axis-aligned box lo <= x <= hi (one corner per axis; closed, so a centre on the edge is inside)."""

    def __init__(self, lo, hi):
        self.lo = _vector(lo, "Rectangle lo")
        self.hi = _vector(hi, "Rectangle hi", self.lo.size)
        if not np.all(self.hi > self.lo):
            raise ValueError(f"Rectangle(lo={self.lo.tolist()}, hi={self.hi.tolist()}): need lo < hi on every axis")
        self.ndim = int(self.lo.size)

    def contains(self, *coords):
        _check_dim(self, len(coords), "point")
        out = True
        for x, a, b in zip(coords, self.lo, self.hi):
            out = out & (x >= a) & (x <= b)
        return np.asarray(out)

    def describe(self):
        return {"type": "Rectangle", "lo": self.lo.tolist(), "hi": self.hi.tolist()}

    def __repr__(self):
        return f"Rectangle(lo={self.lo.tolist()}, hi={self.hi.tolist()})"


class Interval(Rectangle):
    """lo <= x <= hi in one dimension (a door's extent along a 2-D grid's side)."""

    def __init__(self, lo, hi):
        if np.ndim(lo) or np.ndim(hi):
            raise ValueError(f"Interval({lo!r}, {hi!r}): give two numbers (for boxes use Rectangle)")
        super().__init__([lo], [hi])

    def __repr__(self):
        return f"Interval({self.lo[0]:g}, {self.hi[0]:g})"


class Disc(Shape):
    """|x - centre| <= radius: a disc in 2-D, a ball in 3-D, an interval in 1-D."""

    def __init__(self, centre, radius):
        self.centre = _vector(centre, "Disc centre")
        self.radius = float(radius)
        if not (np.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"Disc radius = {radius!r}: must be finite and > 0")
        self.ndim = int(self.centre.size)

    def contains(self, *coords):
        _check_dim(self, len(coords), "point")
        r2 = 0.0
        for x, c in zip(coords, self.centre):
            r2 = r2 + (x - c) ** 2
        return np.asarray(r2 <= self.radius ** 2)

    def describe(self):
        return {"type": "Disc", "centre": self.centre.tolist(), "radius": self.radius}

    def __repr__(self):
        return f"Disc(centre={self.centre.tolist()}, radius={self.radius:g})"


class Polygon(Shape):
    """A polygon in the plane given by its vertices (in order; closed automatically).  Inside is decided
    by the even-odd rule (a ray from the point crosses the boundary an odd number of times), so a
    self-intersecting outline has holes where it overlaps itself."""

    ndim = 2

    def __init__(self, vertices):
        v = np.asarray(vertices, dtype=float)
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not np.all(np.isfinite(v)):
            raise ValueError(f"Polygon vertices have shape {v.shape}: give at least 3 finite (x, y) points")
        self.vertices = v

    def contains(self, *coords):
        _check_dim(self, len(coords), "point")
        x, y = np.broadcast_arrays(*(np.asarray(c, dtype=float) for c in coords))
        inside = np.zeros(x.shape, dtype=bool)
        v = self.vertices
        for (x1, y1), (x2, y2) in zip(v, np.roll(v, -1, axis=0)):
            if y1 == y2:
                continue  # a horizontal edge is never crossed by a horizontal ray
            crosses = (y1 > y) != (y2 > y)
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            inside ^= crosses & (x < xc)
        return inside

    def describe(self):
        return {"type": "Polygon", "vertices": self.vertices.tolist()}

    def __repr__(self):
        return f"Polygon({len(self.vertices)} vertices)"


class Union(Shape):
    """The union of shapes (``a | b``)."""

    def __init__(self, *parts):
        flat = []
        for p in parts:
            if not isinstance(p, Shape):
                raise TypeError(f"Union of {type(p).__name__}: combine Shape objects (Rectangle, Disc, Polygon); "
                                "pass boolean arrays in a list instead, e.g. obstacles=[shape, mask]")
            flat.extend(p.parts if isinstance(p, Union) else [p])
        dims = {p.ndim for p in flat if p.ndim is not None}
        if len(dims) > 1:
            raise ValueError(f"Union of shapes of different dimensions {sorted(dims)}")
        self.parts = tuple(flat)
        self.ndim = dims.pop() if dims else None

    def contains(self, *coords):
        out = np.zeros(np.broadcast_shapes(*(np.shape(c) for c in coords)), dtype=bool)
        for p in self.parts:
            out = out | p.contains(*coords)
        return out

    def describe(self):
        return {"type": "Union", "parts": [p.describe() for p in self.parts]}

    def __repr__(self):
        return " | ".join(repr(p) for p in self.parts)


def _as_mask(spec, shape: tuple, coords, what: str, param: str) -> np.ndarray:
    """A boolean array of ``shape`` from a Shape (tested at ``coords``), a boolean array, or a list of them."""
    if isinstance(spec, Shape):
        _check_dim(spec, len(shape), what)
        return np.broadcast_to(spec.contains(*coords), shape).copy()
    if isinstance(spec, (list, tuple)) and not (len(spec) and np.isscalar(spec[0])):
        out = np.zeros(shape, dtype=bool)
        for j, s in enumerate(spec):
            out |= _as_mask(s, shape, coords, what, f"{param}[{j}]")
        return out
    arr = np.asarray(spec)
    if arr.dtype != bool:
        if arr.dtype.kind in "iuf" and arr.size and np.all((arr == 0) | (arr == 1)):
            arr = arr.astype(bool)
        else:
            raise ValueError(f"{param}: give a boolean array (True = solid / selected), a Shape (Rectangle, Disc, "
                             f"Polygon, Interval) or a list of them; got {type(spec).__name__} of dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{param} has shape {arr.shape} but the {what} has shape {tuple(shape)}; give a mask of "
                         f"that shape (e.g. built from grid.mesh()) or a Shape")
    return arr.copy()


def obstacle_mask(grid: Grid, obstacles) -> np.ndarray | None:
    """The solid-cell mask (True = solid) of ``obstacles``: None, a Shape, a boolean array of the grid's
    shape, or a list of these (their union); None for None.  An obstacle that covers no cell centre is an
    error (it would silently do nothing)."""
    if obstacles is None:
        return None
    mask = _as_mask(obstacles, grid.shape, grid.mesh(sparse=True), "grid", "obstacles")
    if not mask.any():
        raise ValueError(f"obstacles = {obstacles!r} contain no cell centre of the grid (cell widths "
                         f"{', '.join(f'{h:.3g}' for h in grid.spacing)}): a solid cell is one whose centre is "
                         "inside; thicken the obstacle or refine the grid")
    return mask


def _side(side, ndim: int) -> tuple[int, int]:
    """(axis, j) of a side given as ("x", "hi"), (0, 1), (0, "hi") ..."""
    try:
        ax, sd = side
    except (TypeError, ValueError):
        raise ValueError(f"door side = {side!r}: give (axis, side), e.g. ('x', 'hi') or (0, 1)") from None
    if isinstance(ax, str) and ax.lower() in AXIS_NAMES[:ndim]:
        k = AXIS_NAMES.index(ax.lower())
    elif isinstance(ax, (int, np.integer)) and not isinstance(ax, bool) and 0 <= ax < ndim:
        k = int(ax)
    else:
        raise ValueError(f"door side = {side!r}: axis {ax!r} is not one of {list(AXIS_NAMES[:ndim])} "
                         f"(or 0..{ndim - 1}) on this {ndim}-D grid")
    if isinstance(sd, str) and sd.lower() in SIDE_NAMES:
        j = SIDE_NAMES.index(sd.lower())
    elif isinstance(sd, (int, np.integer)) and not isinstance(sd, bool) and sd in (0, 1):
        j = int(sd)
    else:
        raise ValueError(f"door side = {side!r}: side {sd!r} must be 'lo' or 'hi' (or 0 / 1)")
    return k, j


class Door:
    """An exit on part of a side of the box (module docstring).

    Parameters
    ----------
    side : (axis, side), e.g. ("x", "hi") or (0, 1).
    where : the door's faces on that side: None (the whole side), a Shape in the coordinates of the
        side's other axes (``Interval(0.4, 0.6)`` on a 2-D grid; a Rectangle/Disc/Polygon on a 3-D grid),
        or a boolean array of the side's shape (the grid shape without ``axis``).
    cost : exit cost paid on leaving through the door (the Dirichlet value of u; finite).
    name : label of its outflow history (default "door <i>").
    """

    def __init__(self, side, where=None, cost: float = 0.0, name: str | None = None):
        self.side = side
        self.where = where
        try:
            self.cost = float(cost)
        except (TypeError, ValueError):
            raise ValueError(f"Door cost = {cost!r}: must be a number") from None
        if not np.isfinite(self.cost):
            raise ValueError(f"Door cost = {cost!r}: must be finite")
        self.name = None if name is None else str(name)

    def resolve(self, grid: Grid) -> tuple[int, int, np.ndarray]:
        """(axis, side j, faces): the boolean face mask of the side (shape: grid.shape without the axis)."""
        k, j = _side(self.side, grid.ndim)
        shape = tuple(n for a, n in enumerate(grid.shape) if a != k)
        if self.where is None:
            faces = np.ones(shape, dtype=bool)
        else:
            if grid.ndim == 1:
                raise ValueError(f"{self!r}: a side of a 1-D grid is one point; give where=None")
            coords = np.meshgrid(*[x for a, x in enumerate(grid.axes) if a != k], indexing="ij", sparse=True)
            names = "".join(n for a, n in enumerate(grid.axis_names) if a != k)
            faces = _as_mask(self.where, shape, coords, f"side {grid.axis_names[k]} {SIDE_NAMES[j]} "
                             f"(coordinates {names})", "Door where")
        return k, j, faces

    def describe(self) -> dict:
        where = self.where
        if where is not None:
            where = where.describe() if isinstance(where, Shape) else "mask"
        return {"side": list(self.side) if isinstance(self.side, (tuple, list)) else self.side, "where": where,
                "cost": self.cost, "name": self.name}

    def __repr__(self):
        return f"Door(side={self.side!r}, where={self.where!r}, cost={self.cost:g}" + \
            (f", name={self.name!r})" if self.name else ")")


class Geometry:
    """The walls and doors of a problem, resolved on its grid (``MFGProblem.geometry``).

    Attributes: ``solid`` (bool mask or None), ``doors`` (tuple of Door), ``door_names``, ``door_faces``
    (one (axis, side, face mask) per door), ``exit_cost`` (the costs of the whole-side exits, (ndim, 2)
    NaN elsewhere)."""

    def __init__(self, grid: Grid, obstacles=None, doors=None, exit_costs=None):
        self.grid = grid
        self.solid = obstacle_mask(grid, obstacles)
        if self.solid is not None and self.solid.all():
            raise ValueError("obstacles cover every cell of the grid: no domain is left; shrink the obstacles "
                             "(True marks solid cells)")
        if doors is None:
            doors = ()
        if isinstance(doors, Door):
            doors = (doors,)
        doors = tuple(doors)
        for d in doors:
            if not isinstance(d, Door):
                raise TypeError(f"doors: expected mfg_pde.Door objects, got {type(d).__name__}")
        self.doors = doors
        self.door_names = [d.name or f"door {i}" for i, d in enumerate(doors)]
        if len(set(self.door_names)) != len(self.door_names):
            raise ValueError(f"doors have repeated names {self.door_names}: give each door its own name")
        sides = grid.bc_sides
        self.door_faces = []
        taken = {}
        for i, d in enumerate(doors):
            k, j, faces = d.resolve(grid)
            label = f"{self.door_names[i]} ({grid.axis_names[k]} {SIDE_NAMES[j]})"
            if sides[k][j] != "reflecting":
                raise ValueError(f"{label}: side {grid.axis_names[k]} {SIDE_NAMES[j]} is {sides[k][j]!r} in the "
                                 f"grid's bc = {grid.bc}; a door goes on a reflecting side (the rest of the side "
                                 "stays a wall): make that side 'reflecting'")
            if not faces.any():
                h = [grid.spacing[a] for a in range(grid.ndim) if a != k]
                raise ValueError(f"{label}: where = {d.where!r} contains no face centre of the side (cell widths "
                                 f"{', '.join(f'{x:.3g}' for x in h)}); widen the door or refine the grid")
            if self.solid is not None:
                cells = np.take(self.solid, 0 if j == 0 else grid.shape[k] - 1, axis=k)
                bad = faces & cells
                if bad.any():
                    raise ValueError(f"{label} opens onto {int(bad.sum())} solid cell(s): the cells behind a door "
                                     "must be domain cells; cut the opening out of the obstacle mask or move "
                                     "the door")
            prev = taken.get((k, j))
            if prev is not None:
                other, pf = prev
                if (pf & faces).any():
                    raise ValueError(f"{label} overlaps {other} on {int((pf & faces).sum())} face(s); doors of "
                                     "one side must not overlap")
                taken[(k, j)] = (f"{other}, {label}", pf | faces)
            else:
                taken[(k, j)] = (label, faces.copy())
            self.door_faces.append((k, j, faces))
        if self.solid is not None and grid.has_exits:
            for k, j in grid.exit_sides:  # whole-side exits: closed where the wall cell is solid
                if np.take(self.solid, 0 if j == 0 else grid.shape[k] - 1, axis=k).all():
                    raise ValueError(f"exit side {grid.axis_names[k]} {SIDE_NAMES[j]} lies entirely on solid "
                                     "cells: nothing can leave there; make it reflecting or clear the obstacle")

    @property
    def active(self) -> bool:
        """Whether there is anything beyond the plain box (solid cells or doors)."""
        return self.solid is not None or bool(self.doors)

    def face_codes(self, k: int) -> np.ndarray:
        """int8 array of the grid's shape for axis k: bit 0 set where the cell's lower face along k is a
        wall (the cell or its lower neighbour is solid), bit 1 where its upper face is.  Box sides are left
        to the box's own boundary conditions except where a periodic wrap meets a solid cell."""
        grid = self.grid
        solid = self.solid
        codes = np.zeros(grid.shape, dtype=np.int8)
        if solid is None:
            return codes
        lo_nb = np.roll(solid, 1, axis=k)   # neighbour i-1 (wrapped)
        hi_nb = np.roll(solid, -1, axis=k)  # neighbour i+1 (wrapped)
        codes |= ((solid | lo_nb).astype(np.int8))
        codes |= ((solid | hi_nb).astype(np.int8) << 1)
        return codes

    def check_density(self, m, name: str) -> None:
        """ValueError when m has mass on solid cells."""
        if self.solid is None:
            return
        bad = float(np.abs(np.asarray(m)[self.solid]).sum() * self.grid.cell_volume)
        if bad > 0:
            raise ValueError(f"{name} has mass {bad:.3g} on solid (obstacle) cells, which are outside the domain; "
                             f"set it to 0 there and renormalise, e.g. {name} = mp.normalise(grid, {name} * ~mask)")

    def describe(self) -> dict:
        d = {}
        if self.solid is not None:
            d["solid_cells"] = int(self.solid.sum())
        if self.doors:
            d["doors"] = [dict(door.describe(), name=nm) for door, nm in zip(self.doors, self.door_names)]
        return d
