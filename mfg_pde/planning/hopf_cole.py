"""Numba sweeps of the Hopf-Cole linear pair (quadratic Hamiltonian), on the core operators.

With phi = exp(-u / sigma^2) and Vtot = V + F:

    backward   -dphi/dt - nu Lap phi - b . grad phi + (Vtot/sigma^2) phi = 0
    forward     dpsi/dt - nu Lap psi + div(b psi) + (Vtot/sigma^2) psi = 0,     m = phi psi

Discretised with the core factors at zero policy, M_k = I + dt L_k(0) (diffusion plus upwinded
drift, see ``kernels``), and the diagonal D_n = I + dt Vtot^n / sigma^2 (step n uses Vtot at
t_{n+1}, as the core HJB does):

    phi^n     = M_{d-1}^{-1} ... M_0^{-1} D_n^{-1} phi^{n+1}          (K_n phi^{n+1})
    psi^{n+1} = D_n^{-1} M_0^{-T} ... M_{d-1}^{-T} psi^n              (K_n^T psi^n)

so sum phi^n psi^n is the same at every n: m = phi psi keeps its mass exactly.  Both fields are
stored scaled to max 1 per level, with the logarithm of the scale in ``logscale`` (the true field
is field[n] * exp(logscale[n])): the sweeps never overflow, and slow decay never underflows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..fd.kernels import _workspace, axis_of, drift_at, solve_axis


@njit(cache=True)
def backward_sweep(phi, logscale, vpot, op, inv_sigma2):
    """Fill phi[Nt-1..0] from phi[Nt] (given, with logscale[Nt]); vpot (Nt or 1, *shape3)."""
    Nt = phi.shape[0] - 1
    shape = phi.shape[1:]
    zero = np.zeros(shape)
    a = np.empty(shape)
    b = np.empty(shape)
    work = _workspace(shape)
    ndim = op.ndim
    dt = op.dt
    static_v = vpot.shape[0] == 1
    for n in range(Nt - 1, -1, -1):
        vn = vpot[0] if static_v else vpot[n]
        dn = drift_at(op, n)
        af = a.reshape(a.size)
        pf = phi[n + 1].reshape(a.size)
        vf = vn.reshape(a.size)
        for j in range(a.size):
            af[j] = pf[j] / (1.0 + dt * vf[j] * inv_sigma2)
        src = a
        dst = b
        for k in range(ndim):
            solve_axis(zero, dn[k], k, axis_of(op, k, dt), bool(False), src, dst, work)
            src, dst = dst, src
        _store_scaled(src, phi[n], logscale, n, logscale[n + 1])


@njit(cache=True)
def forward_sweep(psi, logscale, vpot, op, inv_sigma2):
    """Fill psi[1..Nt] from psi[0] (given, with logscale[0])."""
    Nt = psi.shape[0] - 1
    shape = psi.shape[1:]
    zero = np.zeros(shape)
    a = np.empty(shape)
    b = np.empty(shape)
    work = _workspace(shape)
    ndim = op.ndim
    dt = op.dt
    static_v = vpot.shape[0] == 1
    for n in range(Nt):
        vn = vpot[0] if static_v else vpot[n]
        dn = drift_at(op, n)
        src = psi[n]
        dst = a
        other = b
        for j in range(ndim):
            k = ndim - 1 - j
            solve_axis(zero, dn[k], k, axis_of(op, k, dt), bool(True), src, dst, work)
            src = dst
            dst = other
            other = src
        sf = src.reshape(src.size)
        vf = vn.reshape(src.size)
        for i in range(src.size):
            sf[i] = sf[i] / (1.0 + dt * vf[i] * inv_sigma2)
        _store_scaled(src, psi[n + 1], logscale, n + 1, logscale[n])


@njit(cache=True)
def _store_scaled(src, out, logscale, n, prev_log):
    """out = src / max(src), logscale[n] = prev_log + log(max(src)) (max 0: all zero, -inf)."""
    sf = src.reshape(src.size)
    of = out.reshape(src.size)
    mx = 0.0
    for i in range(sf.size):
        if sf[i] > mx:
            mx = sf[i]
    if mx > 0.0:
        inv = 1.0 / mx
        for i in range(sf.size):
            of[i] = sf[i] * inv
        logscale[n] = prev_log + np.log(mx)
    else:
        for i in range(sf.size):
            of[i] = 0.0
        logscale[n] = -np.inf
