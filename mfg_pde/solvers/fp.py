"""Forward Fokker-Planck solve: the exact transpose of the linearised implicit HJB operator.

    dm/dt - nu Lap m + div(m (b - grad u)) = 0,   m(0) = m0
    discrete:  P(u^n)^T m^{n+1} = m^n,   P = M_0 M_1 M_2 (see ``kernels``)
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .layout import as3, kernel_data


def solve_fp(problem, u: np.ndarray, m0: np.ndarray | None = None) -> np.ndarray:
    """Density m shaped (Nt+1, *grid) transported by the feedback -grad u (plus drift)."""
    kd = kernel_data(problem)
    Nt = problem.Nt
    grid = problem.grid
    u = grid.check_field(u, "u", (Nt + 1,))
    m = np.empty((Nt + 1,) + grid.shape)
    m[0] = problem.m0 if m0 is None else grid.check_field(m0, "m0")
    kernels.fp_sweep(m.reshape((Nt + 1,) + kd.shape3), as3(u, 1, kd.shape3), kd.drift, kd.has_drift,
                     kd.ndim, kd.nu, kd.dt, kd.h, kd.periodic)
    return m


def fp_residual(problem, u: np.ndarray, m: np.ndarray) -> float:
    """Relative residual max_n |P(u^n)^T m^{n+1} - m^n| / max_n |m^n|."""
    kd = kernel_data(problem)
    norms = np.zeros((problem.Nt, 2))
    kernels.fp_residual(as3(m, 1, kd.shape3), as3(u, 1, kd.shape3), kd.drift, kd.has_drift, kd.ndim,
                        kd.nu, kd.dt, kd.h, kd.periodic, norms)
    scale = norms[:, 1].max()
    return float(norms[:, 0].max() / scale) if scale > 0 else float(norms[:, 0].max())
