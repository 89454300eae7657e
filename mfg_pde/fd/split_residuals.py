"""Residuals of the discrete equations the core sweeps solve (implicit Euler, direction splitting).

For a pair (u with its intermediate split states, m) and a running cost f, step n:

    HJB substep k:  r_k = M_k(s_k) s_k - s_{k-1} - dt c_k(s_k),   s_{-1} = u^{n+1} + dt f^n,  s_{d-1} = u^n
    FP step n:      r^n = M_{d-1}^T ... M_0^T m^{n+1} - m^n

(``kernels``: M_k, c_k, exit rows).  Relative values: max |r_k| / max |s_{k-1} + dt c_k| (with u_T given,
also max |u^Nt - u_T| / max |u_T|) and max |r^n| / max |m^n|.  One pass per step (and axis) builds the
rows of M_k(s_k) once for both equations (``kernels.pair_residual``; on a reflecting 1-D line
``kernels.pair_residual_line``, the same per-line arithmetic compiled without the other paths).  ``residuals`` has the UNSPLIT residuals of any pair, for comparisons across solvers.
"""

from __future__ import annotations

import numpy as np

from .kernels import pair_residual, pair_residual_line
from .operator import as3, kernel_data


def split_residual_norms(problem, sol, f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(Nt, 4) per step: (max_k max|r_k|, max_k max|s_{k-1} + dt c_k|, max|r^n|, max|m^n|)."""
    kd = kernel_data(problem, exits_supported=True)
    grid, Nt = problem.grid, problem.Nt
    f = grid.check_field(f, "running cost f", (Nt,))
    m = grid.check_field(m, "m", (Nt + 1,))
    op = kd.op_for(m)   # an m-dependent Hamiltonian is evaluated at this m, like the running cost f
    if kd.separate_fp:  # the planner's congestion Hamiltonian: the FP equation has its own weights
        fp_norms = _norms(problem, kd, sol, f, m, kd.fp_op_for(m))
        norms = _norms(problem, kd, sol, f, m, op)
        norms[:, 2:] = fp_norms[:, 2:]
        return norms
    return _norms(problem, kd, sol, f, m, op)


def _norms(problem, kd, sol, f, m, op) -> np.ndarray:
    """``split_residual_norms`` with the rows of the Operator op (one pass for both equations)."""
    grid, Nt = problem.grid, problem.Nt
    norms = np.empty((Nt, 4))
    S = problem.fp_source_steps() if hasattr(problem, "fp_source_steps") else None
    z = m
    if S is not None:   # the FP equation with a source: M^T m^{n+1} = m^n + dt S^n
        z = np.array(m, dtype=float)
        z[:Nt] += problem.dt * S
    if kd.ndim == 1 and not kd.periodic[0] and kd.exits is None and not kd.has_walls:
        N = grid.size
        pair_residual_line(np.ascontiguousarray(sol.u, dtype=float).reshape(Nt + 1, N),
                           np.ascontiguousarray(f, dtype=float).reshape(Nt, N),
                           np.ascontiguousarray(m, dtype=float).reshape(Nt + 1, N),
                           np.ascontiguousarray(z, dtype=float).reshape(Nt + 1, N), op, norms)
    else:
        pair_residual(as3(sol.u, 1, kd.shape3), sol.states, as3(f, 1, kd.shape3), as3(m, 1, kd.shape3),
                      as3(z, 1, kd.shape3), op, norms)
    return norms


def line_pair_residuals(lo, di, up, u_now, src, m_next, m_now):
    """The residual VECTORS of a 1-D discrete pair, given the rows (lo, di, up) of M(u^n) at every level (Nt, N)
    and the HJB right-hand side src^n (Newton's residual; ``pair_residual`` gives only norms):

        R_H^n = M(u^n) u^n - src^n,      R_F^n = M(u^n)^T m^{n+1} - m^n

    (row i of M: lo_i at i-1, di_i, up_i at i+1, wrapping on a periodic line; lo_0 = up_{N-1} = 0 at walls).
    u_now = u^0..u^{Nt-1}, m_next = m^1..m^Nt, m_now = m^0..m^{Nt-1}."""
    RH = di * u_now + lo * np.roll(u_now, 1, axis=1) + up * np.roll(u_now, -1, axis=1) - src
    RF = di * m_next + np.roll(up * m_next, 1, axis=1) + np.roll(lo * m_next, -1, axis=1) - m_now
    return RH, RF


def _ratio(num, den) -> float:
    return float(num / den) if den > 0 else float(num)


def relative_residuals(problem, sol, f: np.ndarray, m: np.ndarray, u_terminal: np.ndarray | None = None):
    """(hjb, fp): the relative residuals of the module docstring."""
    norms = split_residual_norms(problem, sol, f, m)
    hjb = _ratio(norms[:, 0].max(), norms[:, 1].max())
    if u_terminal is not None:
        diff = np.abs(sol.u[problem.Nt] - u_terminal).max()
        hjb = max(hjb, _ratio(diff, np.abs(u_terminal).max()))
    return hjb, _ratio(norms[:, 2].max(), norms[:, 3].max())
