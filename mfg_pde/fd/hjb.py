"""Backward HJB solve (implicit Euler, Engquist-Osher upwinding, Newton per substep).

    -du/dt - nu Lap u + H(grad u[, m]) - b . grad u = f(x, t),   u(T) = u_T

(H = |p|^2/2 unless the problem has another ``hamiltonian``: ``model.hamiltonians``)

See ``kernels`` for the discrete equations (direction splitting in 2-D/3-D).  Exit (absorbing) sides
of the grid impose u = exit cost at a ghost node one cell outside (``MFGProblem.exit_costs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .split_residuals import relative_residuals
from .operator import as3, check_out, kernel_data


@dataclass
class HJBSolution:
    """u (Nt+1, *grid); states (Nt, ndim-1, *grid): intermediate split states the FP needs;
    newton (Nt,): Newton count of each step (negative where the cap was hit)."""

    u: np.ndarray
    states: np.ndarray
    newton: np.ndarray
    #: the kernels' Operator the sweep used (None: the problem's own, ``kernel_data(problem).op``); with an
    #: m-dependent Hamiltonian it carries the weights of the density the HJB saw, and the FP sweep of this
    #: solution uses the same (the exact transpose)
    op: object = None
    #: the Operator of this solution's FP sweep where it differs from ``op`` (the planner's congestion
    #: Hamiltonian: the HJB sees H + m dH/dm, the density moves with -dH/dp; ``KernelData.fp_op_for``)
    fp_op: object = None


def empty_states(problem) -> np.ndarray:
    kd = kernel_data(problem, exits_supported=True)
    return np.empty((problem.Nt, max(kd.ndim - 1, 0)) + kd.shape3)


def solve_hjb(problem, f: np.ndarray, u_terminal: np.ndarray, guess: HJBSolution | None = None,
              tol: float = 1e-12, maxit: int = 50, out: np.ndarray | None = None, m: np.ndarray | None = None
              ) -> HJBSolution:
    """Backward sweep with running cost f (Nt, *grid) per step and terminal values u_T.

    ``m`` (Nt+1, *grid): the density the Hamiltonian sees when it depends on m (congestion; step n takes
    m^{n+1}); required then, ignored otherwise.

    ``guess`` (a previous solution, e.g. from the last coupling iteration) starts Newton; its
    ``states`` array is reused (overwritten) in place.  ``out`` (Nt+1, *grid), if given, receives u
    (it must not be ``guess.u``): the coupling loop alternates two buffers instead of allocating
    -- and page-faulting -- a fresh space-time array every iteration."""
    kd = kernel_data(problem, exits_supported=True)
    Nt = problem.Nt
    grid = problem.grid
    f = grid.check_field(f, "running cost f", (Nt,))
    if out is None:
        u = np.empty((Nt + 1,) + grid.shape)
    else:
        check_out(out, (Nt + 1,) + grid.shape)
        if guess is not None and np.shares_memory(out, guess.u):
            raise ValueError("out must not share memory with guess.u (the predictor reads the old guess)")
        u = out
    u[Nt] = grid.check_field(u_terminal, "terminal values u_T")
    u3 = u.reshape((Nt + 1,) + kd.shape3)
    if guess is not None:
        states = guess.states
        g3 = as3(guess.u, 1, kd.shape3)
    else:
        states = empty_states(problem)
        g3 = u3
    its = np.zeros(Nt, dtype=np.int64)
    start = kernels.START_COLD if guess is None else kernels.START_PREDICTOR
    op = kd.op_for(None if m is None else grid.check_field(m, "m", (Nt + 1,))) if kd.depends_on_m else kd.op
    kernels.hjb_sweep_for(op)(u3, states, as3(f, 1, kd.shape3), op, tol, maxit, g3, start, its)
    return HJBSolution(u, states, its, op if kd.depends_on_m else None, kd.fp_op_for(m) if kd.separate_fp else None)


def hjb_residual(problem, sol: HJBSolution, f: np.ndarray, u_terminal: np.ndarray | None = None) -> float:
    """Relative residual of the discrete HJB for the running cost f:
    max over steps and substeps of |M_k(s_k) s_k - s_{k-1} - dt c_k(s_k)| divided by
    max |s_{k-1} + dt c_k(s_k)|; with u_terminal, also |u[Nt] - u_T| / max|u_T|
    (``split_residuals``; the FP half of that pass runs on a zero density)."""
    m = np.zeros((problem.Nt + 1,) + problem.grid.shape)
    return relative_residuals(problem, sol, f, m, u_terminal)[0]
