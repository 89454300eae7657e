"""Sparse assembly of the per-step operators (for tests, diagnostics and Newton solvers).

For time step n, ``step_factors`` returns the sparse matrices M_k = I + dt L_k(s_k), one per axis,
each linearised at its split state (s_{d-1} = u^n, s_k = states[n, k] for k < d-1).  The HJB
substeps solve M_k(s_k) s_k = s_{k-1} + dt c_k(s_k); the FP step is P^T m^{n+1} = m^n with
P = M_0 M_1 ... M_{d-1}.  On exit (absorbing) sides M_k has no ghost column: the wall row's diagonal
carries the exit rate dt r (row sum 1 + dt r >= 1) and the ghost term dt r g is part of c_k
(``kernels.axis_source``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..fd import kernels
from ..fd.operator import as3, kernel_data


def step_factors(problem, u_n: np.ndarray, n: int, states_n=None, op=None) -> list:
    """Sparse M_k (flattened C-order index) of step n; states_n: the split states of the step
    (HJBSolution.states[n]), needed in 2-D/3-D; op: the kernels' Operator (default the problem's; with an
    m-dependent Hamiltonian the one of the HJB solution, ``HJBSolution.op``)."""
    kd = kernel_data(problem, exits_supported=True)
    grid = problem.grid
    u3 = as3(grid.check_field(u_n, "u_n"), 0, kd.shape3)
    if grid.ndim > 1 and states_n is None:
        raise ValueError("step_factors needs the split states of the step in 2-D/3-D (HJBSolution.states[n])")
    dn = kd.drift[0] if kd.drift.shape[0] == 1 else kd.drift[n]
    size = grid.size
    idx = np.arange(size).reshape(grid.shape)
    mats = []
    for k in range(grid.ndim):
        g = u3 if k == grid.ndim - 1 else np.ascontiguousarray(states_n[k])
        lo = np.empty(kd.shape3)
        di = np.empty(kd.shape3)
        up = np.empty(kd.shape3)
        kernels.axis_coefficients(g, dn[k], k, kd.axis(k, op=op, n=n), lo, di, up)
        lo, di, up = (a.reshape(grid.shape) for a in (lo, di, up))
        below = np.roll(idx, 1, axis=k)   # neighbour i-1 (wrapped)
        above = np.roll(idx, -1, axis=k)  # neighbour i+1 (wrapped)
        rows = [idx.ravel()]
        cols = [idx.ravel()]
        vals = [di.ravel()]
        # no wrap-around entries on a non-periodic axis (walls and exits: lo/up are 0 there anyway)
        pos = np.indices(grid.shape)[k].ravel()
        wrap_below = (pos == 0) & (not kd.periodic[k])
        wrap_above = (pos == grid.shape[k] - 1) & (not kd.periodic[k])
        for nb, coef, wrap in ((below, lo, wrap_below), (above, up, wrap_above)):
            mask = (coef.ravel() != 0.0) & ~wrap
            rows.append(idx.ravel()[mask])
            cols.append(nb.ravel()[mask])
            vals.append(coef.ravel()[mask])
        mats.append(sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                  shape=(size, size)))
    return mats


def step_operator(problem, u_n: np.ndarray, n: int, states_n=None, op=None):
    """P = M_0 M_1 ... M_{d-1} (sparse) of step n: the FP step solves P^T m^{n+1} = m^n."""
    mats = step_factors(problem, u_n, n, states_n, op)
    P = mats[0]
    for M in mats[1:]:
        P = P @ M
    return P.tocsr()
