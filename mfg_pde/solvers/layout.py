"""Packing problem data into the padded 3-D layout the numba kernels expect."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import BC_PERIODIC


@dataclass
class KernelData:
    """Arrays shared by every sweep of one problem."""

    shape3: tuple          # grid shape padded to 3 axes
    ndim: int
    nu: float
    dt: float
    h: np.ndarray          # (3,) spacings (1.0 on padded axes)
    periodic: np.ndarray   # (3,) bool
    drift: np.ndarray      # (Nt or 1, ndim, n0, n1, n2) or a (1, ndim, 1, 1, 1) dummy
    has_drift: bool


def pad3(shape) -> tuple:
    return tuple(shape) + (1,) * (3 - len(shape))


def kernel_data(problem) -> KernelData:
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
    kd = KernelData(shape3, grid.ndim, problem.nu, problem.dt, h, periodic, drift, has)
    cache["kernel"] = kd
    return kd


def as3(arr: np.ndarray, lead: int, shape3: tuple) -> np.ndarray:
    """View a C-contiguous array (lead dims, *grid) as (lead dims, *shape3)."""
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    return arr.reshape(arr.shape[:lead] + shape3)
