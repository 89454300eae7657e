"""Uniform cell-centred tensor grids in 1, 2 and 3 dimensions.

A grid holds, per axis, the bounds ``(lo, hi)``, the number of cells ``n`` and a boundary
condition.  Cell centres are ``x_i = lo + (i + 1/2) h`` with ``h = (hi - lo) / n``.

Boundary conditions, per axis and per side (the lower side ``lo`` and the upper side ``hi``):

* ``"reflecting"`` -- zero total (diffusive + advective) flux through the wall; the HJB side uses
  mirror ghosts so that the FP operator stays the exact transpose of the linearised HJB operator.
* ``"periodic"``   -- indices wrap (both sides of the axis must be periodic).
* ``"exit"``       -- absorbing / Dirichlet wall (aliases ``"absorbing"``, ``"dirichlet"``,
  ``"outflow"``): agents leave the domain there.  The value function takes a prescribed exit cost on
  the exit side (``MFGProblem(exit_cost=...)``) and the density vanishes outside: a ghost node at
  distance h beyond the last cell centre carries u = exit cost and m = 0 (see ``fd.kernels``).
  Mass is then not conserved; ``diagnostics.outflow`` reports the outflow balance instead.

``bc`` accepts one name for every side of every axis, one entry per axis, where an entry is a name
(both sides) or a ``(lo, hi)`` pair of names, e.g. ``bc=[("reflecting", "exit"), "reflecting"]``.
A 1-D grid also takes a bare ``(lo, hi)`` pair: ``Grid([(0, 1)], 64, bc=("exit", "reflecting"))``.
``Grid.bc`` keeps one entry per axis (a name when both sides agree, else a ``(lo, hi)`` tuple), so
``Grid(g.bounds, g.shape, g.bc)`` and the JSON of ``describe()`` round-trip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BC_REFLECTING = 0
BC_PERIODIC = 1
BC_ABSORBING = 2   # exit / absorbing / Dirichlet side
BC_EXIT = BC_ABSORBING

_BC_CODES = {"reflecting": BC_REFLECTING, "periodic": BC_PERIODIC, "exit": BC_EXIT}
_BC_ALIASES = {"neumann": "reflecting", "noflux": "reflecting", "no-flux": "reflecting",
               "reflect": "reflecting", "wrap": "periodic", "absorbing": "exit", "dirichlet": "exit",
               "outflow": "exit", "absorb": "exit"}
AXIS_NAMES = ("x", "y", "z")
SIDE_NAMES = ("lo", "hi")


@dataclass(frozen=True)
class Grid:
    """Uniform cell-centred grid.

    Parameters
    ----------
    bounds : sequence of (lo, hi) pairs, one per axis (1 to 3 axes).
    shape : sequence of cell counts, one per axis (each >= 3).
    bc : one boundary-condition name for every side of every axis, or one entry per axis, each a
        name or a ``(lo, hi)`` pair of names ("reflecting", "periodic", "exit"; see the module
        docstring).  A 1-D grid also takes a bare ``(lo, hi)`` pair.
    """

    bounds: tuple
    shape: tuple
    bc: tuple

    def __init__(self, bounds, shape, bc="reflecting"):
        bounds = _normalise_bounds(bounds)
        ndim = len(bounds)
        if np.isscalar(shape) or isinstance(shape, str):
            shape = (_cell_count(shape, "grid shape"),) * ndim
        else:
            try:
                entries = list(shape)
            except TypeError:
                raise ValueError(f"grid shape = {shape!r}: give the number of cells, one positive integer "
                                 "for every axis or one per axis, e.g. Grid(bounds, 64)") from None
            shape = tuple(_cell_count(n, f"grid shape[{k}]") for k, n in enumerate(entries))
        if len(shape) != ndim:
            raise ValueError(f"grid shape {shape} has {len(shape)} axes but bounds has {ndim}; "
                             "give one cell count per axis")
        for k, n in enumerate(shape):
            if n < 3:
                raise ValueError(f"grid shape[{k}] = {n}: need at least 3 cells per axis")
        bc = _normalise_bc_spec(bc, ndim)
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "bc", bc)

    # ------------------------------------------------------------------ geometry
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def spacing(self) -> tuple:
        """Cell widths h per axis."""
        return tuple((hi - lo) / n for (lo, hi), n in zip(self.bounds, self.shape))

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def axes(self) -> list:
        """Cell-centre coordinates, one 1-D array per axis."""
        return [lo + (np.arange(n) + 0.5) * h
                for (lo, hi), n, h in zip(self.bounds, self.shape, self.spacing)]

    @property
    def axis_names(self) -> tuple:
        return AXIS_NAMES[: self.ndim]

    def mesh(self, sparse: bool = False) -> list:
        """Coordinate arrays of the grid's shape (``sparse=True``: broadcastable)."""
        return np.meshgrid(*self.axes, indexing="ij", sparse=sparse)

    @property
    def bc_sides(self) -> tuple:
        """Boundary condition of every side: one ``(lo, hi)`` pair of names per axis."""
        return tuple((b, b) if isinstance(b, str) else tuple(b) for b in self.bc)

    @property
    def bc_side_codes(self) -> np.ndarray:
        """(ndim, 2) integer codes of the sides (BC_REFLECTING, BC_PERIODIC, BC_EXIT)."""
        return np.array([[_BC_CODES[s] for s in pair] for pair in self.bc_sides], dtype=np.int64).reshape(
            self.ndim, 2)

    @property
    def bc_codes(self) -> np.ndarray:
        """One code per axis: BC_PERIODIC, BC_EXIT if either side is an exit, else BC_REFLECTING."""
        return np.array([BC_PERIODIC if BC_PERIODIC in c else BC_EXIT if BC_EXIT in c else BC_REFLECTING
                         for c in self.bc_side_codes.tolist()], dtype=np.int64)

    @property
    def exit_sides(self) -> tuple:
        """The exit sides as (axis, side) pairs, side 0 = lo, 1 = hi."""
        return tuple((k, j) for k, pair in enumerate(self.bc_sides) for j, s in enumerate(pair) if s == "exit")

    @property
    def has_exits(self) -> bool:
        return bool(self.exit_sides)

    # ------------------------------------------------------------------ integrals
    def integrate(self, f: np.ndarray) -> np.ndarray:
        """Integral over space of f shaped (..., *grid) (midpoint rule)."""
        f = np.asarray(f)
        axes = tuple(range(f.ndim - self.ndim, f.ndim))
        return f.sum(axis=axes) * self.cell_volume

    def mean(self, m: np.ndarray) -> np.ndarray:
        """First moments of densities m shaped (..., *grid); returns (..., ndim)."""
        m = np.asarray(m)
        lead = m.shape[: m.ndim - self.ndim]
        out = np.empty(lead + (self.ndim,))
        mass = self.integrate(m)
        for k, xk in enumerate(self.mesh(sparse=True)):
            out[..., k] = self.integrate(m * xk) / mass
        return out

    def covariance(self, m: np.ndarray) -> np.ndarray:
        """Covariance matrices of densities m shaped (..., *grid); returns (..., ndim, ndim)."""
        m = np.asarray(m)
        lead = m.shape[: m.ndim - self.ndim]
        mu = self.mean(m)
        mass = self.integrate(m)
        xs = self.mesh(sparse=True)
        out = np.empty(lead + (self.ndim, self.ndim))
        for i in range(self.ndim):
            for j in range(i, self.ndim):
                idx = (Ellipsis,) + (None,) * self.ndim
                di = xs[i] - mu[..., i][idx]
                dj = xs[j] - mu[..., j][idx]
                out[..., i, j] = out[..., j, i] = self.integrate(m * di * dj) / mass
        return out

    def check_field(self, arr, name: str, leading: tuple = ()) -> np.ndarray:
        """Return arr as float64, raising a clear error if its shape is not leading + grid.shape."""
        arr = np.asarray(arr, dtype=float)
        want = tuple(leading) + self.shape
        if arr.shape != want:
            raise ValueError(f"{name} has shape {arr.shape} but the grid needs {want}; "
                             f"sample it on grid.mesh() (grid shape {self.shape})")
        return arr

    def describe(self) -> dict:
        """JSON-able description; ``Grid(d["bounds"], d["shape"], d["bc"])`` rebuilds the grid."""
        return {"bounds": [list(b) for b in self.bounds], "shape": list(self.shape),
                "bc": [b if isinstance(b, str) else list(b) for b in self.bc]}

    def __repr__(self) -> str:
        return f"Grid(bounds={self.bounds}, shape={self.shape}, bc={self.bc})"


def _cell_count(n, name: str) -> int:
    """A number of cells: an integer (an integral float such as 64.0 is accepted), else a ValueError
    naming the entry.  A fractional count is refused rather than truncated."""
    ok = not isinstance(n, (bool, np.bool_)) and isinstance(n, (int, float, np.integer, np.floating)) \
        and bool(np.isfinite(n)) and float(n).is_integer()
    if not ok:
        frac = isinstance(n, (float, np.floating)) and bool(np.isfinite(n))
        raise ValueError(f"{name} = {n!r}: the number of cells must be a positive integer (at least 3), "
                         "e.g. Grid(bounds, 64)" + ("; a fraction is not rounded for you" if frac else ""))
    return int(n)


def _normalise_bounds(bounds) -> tuple:
    arr = np.asarray(bounds, dtype=float)
    if arr.ndim == 1 and arr.size == 2:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2 or not 1 <= arr.shape[0] <= 3:
        raise ValueError(f"bounds {bounds!r}: give (lo, hi) or a list of 1 to 3 (lo, hi) pairs")
    for k, (lo, hi) in enumerate(arr):
        if not (np.isfinite(lo) and np.isfinite(hi)) or not hi > lo:
            raise ValueError(f"bounds[{k}] = ({lo}, {hi}): need finite lo < hi")
    return tuple((float(lo), float(hi)) for lo, hi in arr)


def _normalise_bc(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"boundary condition {name!r}: give a name such as 'reflecting', 'periodic' or 'exit'")
    key = name.strip().lower()
    key = _BC_ALIASES.get(key, key)
    if key not in _BC_CODES:
        raise ValueError(f"unknown boundary condition {name!r}; choose 'reflecting', 'periodic' or 'exit' "
                         "(aliases: 'absorbing', 'dirichlet')")
    return key


def _is_pair(entry) -> bool:
    return not isinstance(entry, str) and isinstance(entry, (tuple, list, np.ndarray))


def _normalise_axis_bc(entry, k: int):
    """One axis: a name (both sides) or a (lo, hi) pair -> a name when both sides agree, else a tuple."""
    if _is_pair(entry):
        pair = tuple(entry)
        if len(pair) != 2:
            raise ValueError(f"bc[{k}] = {entry!r}: give one name or a (lo, hi) pair of names for axis {k}")
        lo, hi = (_normalise_bc(b) for b in pair)
        if (lo == "periodic") != (hi == "periodic"):
            raise ValueError(f"bc[{k}] = {entry!r}: a periodic axis must be periodic on both sides; "
                             f"write 'periodic' for axis {k} or choose reflecting/exit for both of its sides")
        return lo if lo == hi else (lo, hi)
    return _normalise_bc(entry)


def _normalise_bc_spec(bc, ndim: int) -> tuple:
    if isinstance(bc, str):
        return (_normalise_bc(bc),) * ndim
    if not _is_pair(bc):
        raise ValueError(f"bc = {bc!r}: give a name, one entry per axis, or (lo, hi) pairs of names")
    bc = list(bc)
    if ndim == 1 and len(bc) == 2 and all(isinstance(b, str) for b in bc):
        bc = [tuple(bc)]   # 1-D: a bare (lo, hi) pair
    if len(bc) != ndim:
        raise ValueError(f"bc has {len(bc)} entries but the grid has {ndim} axes; "
                         "give one boundary condition, or one per axis (a name or a (lo, hi) pair)")
    return tuple(_normalise_axis_bc(b, k) for k, b in enumerate(bc))


def as_grid(obj) -> Grid:
    if isinstance(obj, Grid):
        return obj
    raise TypeError(f"expected a mfg_pde.Grid, got {type(obj).__name__}")


def interp_axis(values: np.ndarray, x_old: np.ndarray, x_new: np.ndarray, axis: int) -> np.ndarray:
    """Piecewise-linear interpolation of ``values`` along one axis from nodes x_old (increasing) to
    x_new; outside [x_old[0], x_old[-1]] the end value is kept (as numpy.interp)."""
    x_old = np.asarray(x_old, dtype=float)
    x_new = np.asarray(x_new, dtype=float)
    if values.shape[axis] != x_old.size:
        raise ValueError(f"values have {values.shape[axis]} entries along axis {axis}, x_old has {x_old.size}")
    if x_old.size == 1:
        return np.repeat(np.take(values, [0], axis=axis), x_new.size, axis=axis)
    j = np.clip(np.searchsorted(x_old, x_new, side="right") - 1, 0, x_old.size - 2)
    w = np.clip((x_new - x_old[j]) / (x_old[j + 1] - x_old[j]), 0.0, 1.0)
    shape = [1] * values.ndim
    shape[axis] = x_new.size
    w = w.reshape(shape)
    return (1.0 - w) * np.take(values, j, axis=axis) + w * np.take(values, j + 1, axis=axis)


def prolong(coarse: Grid, fine: Grid, field: np.ndarray, t_old=None, t_new=None) -> np.ndarray:
    """A field on ``coarse`` (shape (*lead, *coarse.shape)) linearly interpolated onto ``fine``'s cell
    centres (same bounds); with t_old/t_new also along the first (time) axis.  For warm starts of a
    finer solve (initial guesses only: no conservation is claimed)."""
    coarse, fine = as_grid(coarse), as_grid(fine)
    if coarse.ndim != fine.ndim:
        raise ValueError(f"grids have {coarse.ndim} and {fine.ndim} axes")
    out = np.asarray(field, dtype=float)
    lead = out.ndim - coarse.ndim
    if out.shape[lead:] != coarse.shape:
        raise ValueError(f"field has shape {out.shape}; the coarse grid needs (..., *{coarse.shape})")
    for k in range(coarse.ndim):
        out = interp_axis(out, coarse.axes[k], fine.axes[k], lead + k)
    if t_old is not None:
        out = interp_axis(out, t_old, t_new, 0)
    return out
