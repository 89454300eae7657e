"""Forward Fokker-Planck solve: the exact transpose of the linearised implicit HJB step.

    dm/dt - nu Lap m + div(m (b - dH/dp(grad u))) = S (0 unless the problem has an fp_source),   m(0) = m0
    discrete:  m^{n+1} = M_0(s_0)^{-T} ... M_{d-1}(s_{d-1})^{-T} m^n   (see ``kernels``)

On a grid with exit (absorbing) sides m = 0 outside and mass leaves through the exits only; the
outflow history and its balance are in ``outflow``.
"""

from __future__ import annotations

import numpy as np

from . import kernels, warm
from .hjb import HJBSolution
from .split_residuals import relative_residuals
from .operator import as3, check_out, kernel_data


def solve_fp(problem, sol: HJBSolution, m0: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Density m shaped (Nt+1, *grid) transported by the feedback of the HJB solution ``sol``
    (written into ``out`` if given: a C-contiguous float64 (Nt+1, *grid) buffer)."""
    kd = kernel_data(problem, exits_supported=True)
    Nt = problem.Nt
    grid = problem.grid
    if out is None:
        m = np.empty((Nt + 1,) + grid.shape)
    else:
        check_out(out, (Nt + 1,) + grid.shape)
        m = out
    m[0] = problem.m0 if m0 is None else grid.check_field(m0, "m0")
    warm.wait()  # a first run compiling the forward kernels in a helper process: load them from the cache
    op = kd.op if getattr(sol, "op", None) is None else sol.op
    if getattr(sol, "fp_op", None) is not None:
        op = sol.fp_op   # the planner's congestion Hamiltonian: the density moves with -dH/dp (hjb.HJBSolution)
    S = problem.fp_source_steps() if hasattr(problem, "fp_source_steps") else None
    if S is None:
        kernels.fp_sweep_for(op)(m.reshape((Nt + 1,) + kd.shape3), as3(sol.u, 1, kd.shape3), sol.states, op)
    else:
        kernels.fp_sweep_source(m.reshape((Nt + 1,) + kd.shape3), as3(sol.u, 1, kd.shape3), sol.states, op,
                                as3(S, 1, kd.shape3))
    return m


def fp_residual(problem, sol: HJBSolution, m: np.ndarray) -> float:
    """Relative residual max_n |P_n^T m^{n+1} - m^n| / max_n |m^n| of the discrete FP
    (``split_residuals``; the HJB half of that pass runs with a zero running cost)."""
    f = np.zeros((problem.Nt,) + problem.grid.shape)
    return relative_residuals(problem, sol, f, m)[1]
