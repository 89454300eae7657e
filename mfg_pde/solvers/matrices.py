"""Sparse assembly of the per-step operators (for tests, diagnostics and Newton solvers).

For time step n and policy state u^n, ``step_factors`` returns the sparse matrices M_k = I + dt L_k
(one per axis) whose product P = M_0 M_1 ... is the implicit HJB operator of the step:
HJB solves P u^n = u^{n+1} + dt (f^n + c(u^n)) and FP solves P^T m^{n+1} = m^n.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import kernels
from .layout import as3, kernel_data


def step_factors(problem, u_n: np.ndarray, n: int) -> list:
    """Sparse M_k (flattened C-order index) of step n at policy state u_n."""
    kd = kernel_data(problem)
    grid = problem.grid
    g = as3(grid.check_field(u_n, "u_n"), 0, kd.shape3)
    dn = kd.drift[0] if kd.drift.shape[0] == 1 else kd.drift[n]
    size = grid.size
    idx = np.arange(size).reshape(grid.shape)
    mats = []
    for k in range(grid.ndim):
        lo = np.empty(kd.shape3)
        di = np.empty(kd.shape3)
        up = np.empty(kd.shape3)
        kernels.axis_coefficients(g, dn[k], kd.has_drift, k, kd.nu, kd.dt, kd.h[k], kd.periodic[k], lo, di, up)
        lo, di, up = (a.reshape(grid.shape) for a in (lo, di, up))
        below = np.roll(idx, 1, axis=k)   # neighbour i-1 (wrapped)
        above = np.roll(idx, -1, axis=k)  # neighbour i+1 (wrapped)
        rows = [idx.ravel()]
        cols = [idx.ravel()]
        vals = [di.ravel()]
        for nb, coef in ((below, lo), (above, up)):
            mask = coef.ravel() != 0.0
            rows.append(idx.ravel()[mask])
            cols.append(nb.ravel()[mask])
            vals.append(coef.ravel()[mask])
        mats.append(sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                  shape=(size, size)))
    return mats


def step_operator(problem, u_n: np.ndarray, n: int):
    """P = M_0 M_1 ... (sparse) of step n."""
    mats = step_factors(problem, u_n, n)
    P = mats[0]
    for M in mats[1:]:
        P = P @ M
    return P.tocsr()
