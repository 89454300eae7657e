"""Uniform cell-centred tensor grids in 1, 2 and 3 dimensions.

A grid holds, per axis, the bounds ``(lo, hi)``, the number of cells ``n`` and a boundary
condition.  Cell centres are ``x_i = lo + (i + 1/2) h`` with ``h = (hi - lo) / n``.

Boundary conditions (per axis):

* ``"reflecting"`` -- zero total (diffusive + advective) flux through the wall; the HJB side uses
  mirror ghosts so that the FP operator stays the exact transpose of the linearised HJB operator.
* ``"periodic"``   -- indices wrap.

Absorbing / exit (Dirichlet) walls are reserved as a name (``"absorbing"``) and rejected for now
with a clear error: the kernels take the boundary as a per-axis integer code, so a third code
slots in without changing any signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

BC_REFLECTING = 0
BC_PERIODIC = 1
BC_ABSORBING = 2  # reserved: not implemented yet

_BC_CODES = {"reflecting": BC_REFLECTING, "periodic": BC_PERIODIC}
_BC_ALIASES = {"neumann": "reflecting", "noflux": "reflecting", "no-flux": "reflecting",
               "reflect": "reflecting", "wrap": "periodic"}
AXIS_NAMES = ("x", "y", "z")


@dataclass(frozen=True)
class Grid:
    """Uniform cell-centred grid.

    Parameters
    ----------
    bounds : sequence of (lo, hi) pairs, one per axis (1 to 3 axes).
    shape : sequence of cell counts, one per axis (each >= 3).
    bc : one boundary-condition name for every axis, or one per axis.
    """

    bounds: tuple
    shape: tuple
    bc: tuple

    def __init__(self, bounds, shape, bc="reflecting"):
        bounds = _normalise_bounds(bounds)
        ndim = len(bounds)
        if np.isscalar(shape):
            shape = (int(shape),) * ndim
        shape = tuple(int(s) for s in shape)
        if len(shape) != ndim:
            raise ValueError(f"grid shape {shape} has {len(shape)} axes but bounds has {ndim}; "
                             "give one cell count per axis")
        for k, n in enumerate(shape):
            if n < 3:
                raise ValueError(f"grid shape[{k}] = {n}: need at least 3 cells per axis")
        if isinstance(bc, str):
            bc = (bc,) * ndim
        bc = tuple(_normalise_bc(b) for b in bc)
        if len(bc) != ndim:
            raise ValueError(f"bc has {len(bc)} entries but the grid has {ndim} axes; "
                             "give one boundary condition or one per axis")
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
    def bc_codes(self) -> np.ndarray:
        return np.array([_BC_CODES[b] for b in self.bc], dtype=np.int64)

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
        return {"bounds": [list(b) for b in self.bounds], "shape": list(self.shape),
                "bc": list(self.bc)}

    def __repr__(self) -> str:
        return f"Grid(bounds={self.bounds}, shape={self.shape}, bc={self.bc})"


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
        raise ValueError(f"boundary condition {name!r}: give a name such as 'reflecting' or 'periodic'")
    key = name.strip().lower()
    key = _BC_ALIASES.get(key, key)
    if key in ("absorbing", "exit", "dirichlet"):
        raise NotImplementedError("absorbing/exit boundaries are not implemented yet; "
                                  "use 'reflecting' or 'periodic'")
    if key not in _BC_CODES:
        raise ValueError(f"unknown boundary condition {name!r}; choose 'reflecting' or 'periodic'")
    return key


def as_grid(obj) -> Grid:
    if isinstance(obj, Grid):
        return obj
    raise TypeError(f"expected a mfg_pde.Grid, got {type(obj).__name__}")
