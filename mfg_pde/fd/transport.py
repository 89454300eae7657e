"""Fokker-Planck transport by a prescribed velocity field (no control, no coupling).

    dm/dt - nu Lap m + div(m v) = 0,   m(0) = m0

Discretised exactly like the core FP with zero control (the drift-only upwind factors M_k = I + dt
L_k(0), transposed, implicit Euler), so mass is conserved to round-off and m stays >= 0 for any dt
(on exit sides of the grid m = 0 outside and mass leaves there only).  Used by the diffusion-model cases (forward noising, reverse-time generation).
"""

from __future__ import annotations

import numpy as np

from ..model.grid import BC_PERIODIC, Grid
from . import kernels
from .operator import exit_faces, make_operator, pad3


def velocity_steps(grid: Grid, velocity, t_steps: np.ndarray) -> np.ndarray:
    """Velocity of each step, (len(t_steps), ndim, *grid): from an array or a callable v(*coords, t)."""
    if callable(velocity):
        xs = grid.mesh()
        out = np.empty((len(t_steps), grid.ndim) + grid.shape)
        for j, tj in enumerate(t_steps):
            v = velocity(*xs, float(tj))
            if grid.ndim == 1 and np.shape(v) == grid.shape:
                v = [v]
            for k in range(grid.ndim):
                out[j, k] = np.broadcast_to(v[k], grid.shape)
        return out
    v = np.asarray(velocity, dtype=float)
    want = (len(t_steps), grid.ndim) + grid.shape
    if v.shape != want:
        raise ValueError(f"velocity has shape {v.shape}; expected {want} (steps, ndim, *grid)")
    return v


def fp_transport(grid: Grid, m0: np.ndarray, T: float, Nt: int, nu: float, velocity) -> np.ndarray:
    """Density (Nt+1, *grid) transported by v (step n uses v at t_{n+1}) with diffusion nu."""
    if not (T > 0 and Nt >= 1 and nu >= 0):
        raise ValueError("fp_transport needs T > 0, Nt >= 1, nu >= 0")
    m0 = grid.check_field(m0, "m0")
    dt = T / Nt
    t = np.linspace(0.0, T, Nt + 1)
    v = velocity_steps(grid, velocity, t[1:])
    shape3 = pad3(grid.shape)
    h = np.ones(3)
    h[: grid.ndim] = grid.spacing
    periodic = np.zeros(3, dtype=np.bool_)
    periodic[: grid.ndim] = grid.bc_codes == BC_PERIODIC
    m = np.empty((Nt + 1,) + grid.shape)
    m[0] = m0
    zeros_u = np.zeros((Nt + 1,) + shape3)
    states = np.zeros((Nt, max(grid.ndim - 1, 0)) + shape3)
    faces = exit_faces(grid)  # exit sides: m = 0 outside (zero control: the ghost value of u is 0 too)
    exits, ghost = (None, None) if faces is None else faces[:2]
    op = make_operator(grid.ndim, nu, dt, h, periodic, v.reshape(v.shape[:2] + shape3), True, exits, ghost)
    kernels.fp_sweep_for(op)(m.reshape((Nt + 1,) + shape3), zeros_u, states, op)
    return m
