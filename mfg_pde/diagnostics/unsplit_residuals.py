"""Residuals of the core finite-difference HJB and FP equations for ANY pair (u, m).

Unsplit implicit Euler with the core Engquist-Osher operators (see ``kernels``), step n:

    r_HJB^n = (u^n - u^{n+1})/dt + sum_k [L_k(u^n) u^n - c_k(u^n)] - f^n        (f^n = V + F(m^{n+1}))
    r_FP^n  = (m^{n+1} - m^n)/dt + sum_k L_k(u^n)^T m^{n+1}

with L_k = (M_k - I)/dt and c_k including the exit terms on exit sides (``kernels.axis_source``: the
ghost u = exit cost enters there; m = 0 outside is the transpose of M_k without ghost column).  A pair
produced by any solver (the core loop, the planning solver, a file) is a discrete solution to
accuracy O(h + dt) exactly when these are O(h + dt); the 1-D core solution satisfies them to
round-off (no splitting in 1-D).

Norms: ``hjb`` = sum_n dt int m^{n+1} |r_HJB^n| (density-weighted: where the agents are; u may be
+inf where m(T) = 0 under a hard terminal constraint), ``fp`` = sum_n dt int |r_FP^n|.
"""

from __future__ import annotations

import numpy as np

from ..fd import kernels
from ..fd.operator import as3, kernel_data


def pde_residuals(problem, u: np.ndarray, m: np.ndarray) -> dict:
    """{'hjb': ..., 'fp': ..., 'hjb_max': max over the support of m, 'fp_max': ...}."""
    kd = kernel_data(problem, exits_supported=True)
    grid, Nt, dt = problem.grid, problem.Nt, problem.dt
    u = grid.check_field(u, "u", (Nt + 1,))
    m = grid.check_field(m, "m", (Nt + 1,))
    f = problem.running_cost(m)
    work = kernels._workspace(kd.shape3)
    tmp = np.empty(kd.shape3)
    cost = np.empty(kd.shape3)
    hjb = fp = 0.0
    hjb_max = fp_max = 0.0
    support = m > 1e-12 * m.max()
    for n in range(Nt):
        un = as3(u[n], 0, kd.shape3)
        dn = kd.drift[0] if kd.drift.shape[0] == 1 else kd.drift[n]
        if not np.all(np.isfinite(un)):
            # u^n infinite somewhere (only possible at a hard terminal constraint): skip the level
            continue
        r_h = (un - as3(u[n + 1], 0, kd.shape3)) / dt - as3(f[n], 0, kd.shape3)
        mn1 = as3(m[n + 1], 0, kd.shape3)
        r_f = (mn1 - as3(m[n], 0, kd.shape3)) / dt
        for k in range(kd.ndim):
            ax = kd.axis(k, dt)
            kernels.apply_axis(un, dn[k], k, ax, False, un, tmp, work)
            kernels.axis_source(un, dn[k], k, ax, cost)
            r_h += (tmp - un) / dt - cost
            kernels.apply_axis(un, dn[k], k, ax, True, mn1, tmp, work)
            r_f += (tmp - mn1) / dt
        r_h = r_h.reshape(grid.shape)
        r_f = r_f.reshape(grid.shape)
        with np.errstate(invalid="ignore"):
            w = np.where(support[n + 1], m[n + 1] * np.abs(r_h), 0.0)
        hjb += dt * float(grid.integrate(w))
        fp += dt * float(grid.integrate(np.abs(r_f)))
        if np.any(support[n + 1]):
            hjb_max = max(hjb_max, float(np.max(np.abs(r_h[support[n + 1]]))))
        fp_max = max(fp_max, float(np.max(np.abs(r_f))))
    return {"hjb": hjb, "fp": fp, "hjb_max": hjb_max, "fp_max": fp_max}
