"""A problem's operator as the numba kernels take it: ``kernel_data`` packs the grid, nu, dt, drift and exit
sides into the padded 3-D layout and the kernels' ``Operator`` / ``Axis`` records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.grid import BC_PERIODIC
from .kernels import Axis, Operator


@dataclass
class KernelData:
    """Arrays shared by every sweep of one problem; ``op`` is the same as the kernels' Operator record."""

    shape3: tuple          # grid shape padded to 3 axes
    ndim: int
    nu: float
    dt: float
    h: np.ndarray          # (3,) spacings (1.0 on padded axes)
    periodic: np.ndarray   # (3,) bool
    drift: np.ndarray      # (Nt or 1, ndim, n0, n1, n2) or a (1, ndim, 1, 1, 1) dummy
    has_drift: bool
    exits: np.ndarray | None = None   # (3, 2) exit cost of side (axis, lo/hi), NaN if not an exit; None: no exits

    def __post_init__(self):
        self.op = make_operator(self.ndim, self.nu, self.dt, self.h, self.periodic, self.drift, self.has_drift,
                                self.exits)

    def axis(self, k: int, dt: float | None = None) -> Axis:
        """The kernels' Axis record of axis k for the factor I + dt L_k (dt: the problem's time step by default)."""
        lo, hi = self.op.exits[k]
        elo, ehi = bool(not np.isnan(lo)), bool(not np.isnan(hi))
        return Axis(float(self.nu), float(self.dt if dt is None else dt), float(self.h[k]), bool(self.periodic[k]),
                    bool(self.has_drift), elo, ehi, float(lo) if elo else 0.0, float(hi) if ehi else 0.0)

    def step_drift(self, n: int) -> np.ndarray:
        """The drift of time step n, (ndim, n0, n1, n2)."""
        return self.drift[0] if self.drift.shape[0] == 1 else self.drift[n]


def make_operator(ndim, nu, dt, h, periodic, drift, has_drift=True, exits=None) -> Operator:
    """The kernels' Operator record with the types the compiled kernels expect (one signature for all callers):
    h (3,) spacings, periodic (3,) flags, drift (Nt or 1, ndim, n0, n1, n2), exits (3, 2) or None (no exits)."""
    exits = np.full((3, 2), np.nan) if exits is None else np.ascontiguousarray(exits, dtype=float)
    return Operator(int(ndim), float(nu), float(dt), np.ascontiguousarray(h, dtype=float),
                    np.ascontiguousarray(periodic, dtype=np.bool_), bool(has_drift),
                    np.ascontiguousarray(drift, dtype=float), exits)


def pad3(shape) -> tuple:
    return tuple(shape) + (1,) * (3 - len(shape))


def exit_array(grid, exit_costs=None) -> np.ndarray | None:
    """(3, 2) exit costs in the kernel layout (NaN on sides that are not exits), None for a grid without exits.
    ``exit_costs``: the (ndim, 2) per-side costs (``MFGProblem.exit_costs``); default 0 on every exit side."""
    if not grid.has_exits:
        return None
    out = np.full((3, 2), np.nan)
    for k, j in grid.exit_sides:
        g = 0.0 if exit_costs is None else float(exit_costs[k][j])
        if not np.isfinite(g):
            raise ValueError(f"exit cost of axis {k} side {('lo', 'hi')[j]} is {g}: must be finite")
        out[k, j] = g
    return out


def exit_sides_text(grid) -> str:
    return ", ".join(f"axis {k} ({grid.axis_names[k]}) {('lo', 'hi')[j]}" for k, j in grid.exit_sides)


def check_no_exits(problem_or_grid, what: str) -> None:
    """Raise NotImplementedError naming the boundary condition if the grid has exit (absorbing) sides:
    for solvers that do not implement them (call at their entry point)."""
    grid = getattr(problem_or_grid, "grid", problem_or_grid)
    if grid.has_exits:
        raise NotImplementedError(
            f"{what} does not support exit (absorbing) boundaries; this grid has exit sides "
            f"[{exit_sides_text(grid)}] (bc = {grid.bc}). Solve exit problems with mfg_pde.solve(problem, "
            "method='anderson' | 'picard' | 'fictitious-play'), or use reflecting/periodic sides")


def kernel_data(problem, exits_supported: bool = False) -> KernelData:
    """The kernel layout of ``problem`` (cached on it).

    A problem whose grid has exit sides is only handed to callers that pass ``exits_supported=True``
    (the kernels then see the exits in ``KernelData.op`` / ``axis(k)``): any other caller gets a
    NotImplementedError naming the boundary condition instead of silently treating exits as walls."""
    if problem.grid.has_exits and not exits_supported:
        check_no_exits(problem, "this solver (e.g. method='newton', planning, or another solver built on "
                                "kernel_data without exit support)")
    cache = problem._static_cache
    if "kernel" in cache:
        return cache["kernel"]
    grid = problem.grid
    shape3 = pad3(grid.shape)
    h = np.ones(3)
    h[: grid.ndim] = grid.spacing
    periodic = np.zeros(3, dtype=np.bool_)
    periodic[: grid.ndim] = grid.bc_codes == BC_PERIODIC
    b = problem.drift_steps()
    if b is None:
        drift = np.zeros((1, grid.ndim, 1, 1, 1))
        has = False
    else:
        drift = np.ascontiguousarray(b.reshape(b.shape[:2] + shape3))
        has = True
    exits = exit_array(grid, getattr(problem, "exit_costs", None))
    kd = KernelData(shape3, grid.ndim, problem.nu, problem.dt, h, periodic, drift, has, exits)
    cache["kernel"] = kd
    return kd


def as3(arr: np.ndarray, lead: int, shape3: tuple) -> np.ndarray:
    """View a C-contiguous array (lead dims, *grid) as (lead dims, *shape3)."""
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    return arr.reshape(arr.shape[:lead] + shape3)


def check_out(out: np.ndarray, shape: tuple, name: str = "out") -> np.ndarray:
    """A caller-supplied output buffer: C-contiguous float64 of exactly ``shape`` (else ValueError)."""
    if out.shape != tuple(shape) or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"{name} has shape {out.shape}; expected a C-contiguous float64 array {tuple(shape)}")
    return out
