"""Outflow through exit (absorbing) sides and the outflow balance that replaces mass conservation.

On a grid with exit sides the density is not conserved: mass leaves through the exit faces (m = 0
on the ghost node one cell outside, see ``kernels``).  The FP factor M_k^T has column sums 1 + dt r_i
on the wall cells i of an exit side (r_i >= 0 the exit rate: diffusion nu/h^2 plus the upwind outward
speed over h), 1 elsewhere, so step n loses exactly

    outflow^n = cell_volume * sum_k sum_{exit cells i of axis k} dt r_i(s_k) z_k,i
                (z_0 = m^{n+1}, z_{k+1} = M_k(s_k)^T z_k: the step undone factor by factor)

and the discrete balance

    mass(t_n) + outflow(0, t_n) = mass(0),      outflow(0, t_n) = sum_{j < n} outflow^j,

holds to round-off.  Doors (``MFGProblem(doors=...)``) are exits on parts of a side: their outflow is
computed face by face and reported per door (``OutflowHistory.per_door``) and summed into their side.
``outflow_history`` computes the per-step, per-side outflow from the HJB
solution's exit rates (``kernels.exit_outflow``, independent of the FP solve itself) and checks the
balance against the density; ``attach_outflow`` stores it on an ``MFGResult`` (``result.outflow``,
written to HDF5 as the ``/outflow`` group by ``mfg_pde.io``).
"""

from __future__ import annotations

import numpy as np

from ..fd import kernels
from ..fd.operator import as3, kernel_data
from ..result import OutflowHistory

__all__ = ["OutflowHistory", "outflow_history", "attach_outflow"]


def _side_labels(grid, kd) -> list:
    if kd.exits is None:
        return []
    return [f"{grid.axis_names[k]} {('lo', 'hi')[j]}" for k in range(grid.ndim) for j in range(2)
            if not np.isnan(kd.exits[k, j])]


def outflow_history(problem, sol, m: np.ndarray) -> OutflowHistory:
    """Per-step, per-side outflow of the density m (Nt+1, *grid) transported by the HJB solution ``sol``
    (an ``hjb.HJBSolution``: its u and, in 2-D/3-D, the split states), and the balance (module docstring).

    For a grid without exits the outflow is zero and the balance error is the mass error."""
    kd = kernel_data(problem, exits_supported=True)
    grid, Nt = problem.grid, problem.Nt
    m = grid.check_field(m, "m", (Nt + 1,))
    u = grid.check_field(sol.u, "sol.u", (Nt + 1,))
    per_side = np.zeros((Nt, grid.ndim, 2))
    per_door = None
    if kd.exits is not None:
        states = np.ascontiguousarray(sol.states, dtype=float)
        want = (Nt, max(kd.ndim - 1, 0)) + kd.shape3
        if states.shape != want:
            raise ValueError(f"sol.states has shape {states.shape}, expected {want}: pass the HJBSolution of "
                             "the solve (result.hjb_solution) that transported m")
        per_exit = np.zeros((Nt, len(kd.exit_names)))
        op = kd.op if getattr(sol, "op", None) is None else sol.op   # the HJB's own (m-dependent H: its weights)
        kernels.exit_outflow(as3(m, 1, kd.shape3), as3(u, 1, kd.shape3), states, op, kd.labels, per_exit)
        per_exit *= grid.cell_volume
        for e in range(per_exit.shape[1]):   # each exit lies on one side: sum the exits of every side
            k, j, _ = np.argwhere(kd.labels == e)[0]
            per_side[:, k, j] += per_exit[:, e]
        if kd.n_doors:
            per_door = per_exit[:, : kd.n_doors].copy()
        total = per_exit.sum(axis=1)
    else:
        total = np.zeros(Nt)
    cumulative = np.concatenate([[0.0], np.cumsum(total)])
    doors = list(kd.exit_names[: kd.n_doors])
    return OutflowHistory(t=np.asarray(problem.t, dtype=float), mass=np.asarray(grid.integrate(m), dtype=float),
                          per_side=per_side, cumulative=cumulative, sides=_side_labels(grid, kd),
                          per_door=per_door, doors=doors)


def attach_outflow(result, problem, sol=None):
    """Compute the outflow of ``result`` (an MFGResult of ``problem``) and store it as
    ``result.outflow`` (an ``OutflowHistory``); returns it.  ``sol`` defaults to ``result.hjb_solution``
    (set by ``mfg_pde.solve``); in 1-D u alone suffices."""
    if sol is None:
        sol = result.hjb_solution
    if sol is None:
        if problem.grid.ndim > 1:
            raise ValueError("attach_outflow needs the HJB solution (its split states) in 2-D/3-D: pass sol= "
                             "or a result of mfg_pde.solve (result.hjb_solution)")
        from ..fd.hjb import HJBSolution

        kd = kernel_data(problem, True)
        sol = HJBSolution(result.u, np.empty((problem.Nt, 0) + kd.shape3), np.zeros(problem.Nt, dtype=np.int64),
                          kd.op_for(result.m) if kd.depends_on_m else None)
    hist = outflow_history(problem, sol, result.m)
    result.outflow = hist
    return hist
