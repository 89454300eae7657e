"""Backward HJB solve (implicit Euler, Engquist-Osher upwinding, Newton/policy iteration per step).

    -du/dt - nu Lap u + |grad u|^2/2 - b . grad u = f(x, t),   u(T) = u_T

See ``kernels`` for the discrete equations.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .layout import as3, kernel_data


def solve_hjb(problem, f: np.ndarray, u_terminal: np.ndarray, guess: np.ndarray | None = None,
              tol: float = 1e-12, maxit: int = 50):
    """Return (u, its): u shaped (Nt+1, *grid) with u[Nt] = u_terminal; its[n] = Newton iterations
    of step n (negative where the cap was hit).  f is the running cost per step, (Nt, *grid)."""
    kd = kernel_data(problem)
    Nt = problem.Nt
    grid = problem.grid
    f = grid.check_field(f, "running cost f", (Nt,))
    u = np.empty((Nt + 1,) + grid.shape)
    u[Nt] = grid.check_field(u_terminal, "terminal values u_T")
    u3 = u.reshape((Nt + 1,) + kd.shape3)
    use_guess = guess is not None
    g3 = as3(guess, 1, kd.shape3) if use_guess else u3
    its = np.zeros(Nt, dtype=np.int64)
    kernels.hjb_sweep(u3, as3(f, 1, kd.shape3), kd.drift, kd.has_drift, kd.ndim, kd.nu, kd.dt, kd.h,
                      kd.periodic, tol, maxit, g3, use_guess, its)
    return u, its


def hjb_residual(problem, u: np.ndarray, f: np.ndarray) -> float:
    """Relative residual of the discrete HJB: max_n |P(u^n) u^n - u^{n+1} - dt(f^n + c(u^n))|
    divided by max_n |u^{n+1} + dt(f^n + c(u^n))|."""
    kd = kernel_data(problem)
    Nt = problem.Nt
    norms = np.zeros((Nt, 2))
    kernels.hjb_residual(as3(u, 1, kd.shape3), as3(f, 1, kd.shape3), kd.drift, kd.has_drift, kd.ndim,
                         kd.nu, kd.dt, kd.h, kd.periodic, norms)
    scale = norms[:, 1].max()
    return float(norms[:, 0].max() / scale) if scale > 0 else float(norms[:, 0].max())
