"""Krylov solvers for the Newton systems: restarted GMRES with classical Gram-Schmidt twice (CGS2) on
numba kernels (``gmres``)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _norm(x):
    s = 0.0
    for i in range(x.size):
        s += x[i] * x[i]
    return np.sqrt(s)


@njit(cache=True)
def _cgs2(V, k, w, h):
    """Orthogonalise w against V[:k] (classical Gram-Schmidt, twice), h += coefficients; returns ||w||.
    (Plain loops: BLAS threads fight over the cores of a busy 2-core machine.)"""
    n = w.size
    for _ in range(2):
        for j in range(k):
            s = 0.0
            for i in range(n):
                s += V[j, i] * w[i]
            h[j] += s
            for i in range(n):
                w[i] -= s * V[j, i]
    return _norm(w)


@njit(cache=True)
def _combine(V, y, x):
    """x += sum_j y_j V[j]."""
    for j in range(y.size):
        c = y[j]
        for i in range(x.size):
            x[i] += c * V[j, i]


def gmres(op, b: np.ndarray, rtol: float, maxiter: int = 200, restart: int = 80, x0=None):
    """Restarted GMRES for op(x) = b from x0 (default 0; classical Gram-Schmidt with one
    re-orthogonalisation, Givens rotations); stops at ||b - op(x)|| <= rtol ||b||.  Returns (x, iterations)."""
    n = b.size
    x = np.zeros(n) if x0 is None else x0.copy()
    bnorm = _norm(b)
    if bnorm == 0.0:
        return x, 0
    total = 0
    r = b.copy() if x0 is None else b - op(x)
    while total < maxiter:
        beta = _norm(r)
        if beta <= rtol * bnorm:
            break
        m = min(restart, maxiter - total)
        V = np.empty((m + 1, n))
        Hm = np.zeros((m + 1, m))
        cs = np.zeros(m)
        sn = np.zeros(m)
        g = np.zeros(m + 1)
        g[0] = beta
        V[0] = r / beta
        j_done = 0
        for j in range(m):
            w = op(V[j])
            h = np.zeros(j + 1)
            hn = _cgs2(V, j + 1, w, h)
            Hm[: j + 1, j] = h
            Hm[j + 1, j] = hn
            for i in range(j):  # apply previous rotations
                a, c = Hm[i, j], Hm[i + 1, j]
                Hm[i, j] = cs[i] * a + sn[i] * c
                Hm[i + 1, j] = -sn[i] * a + cs[i] * c
            a, c = Hm[j, j], Hm[j + 1, j]
            den = np.hypot(a, c)
            cs[j], sn[j] = (a / den, c / den) if den > 0 else (1.0, 0.0)
            Hm[j, j] = cs[j] * a + sn[j] * c
            Hm[j + 1, j] = 0.0
            g[j + 1] = -sn[j] * g[j]
            g[j] = cs[j] * g[j]
            j_done = j + 1
            total += 1
            if abs(g[j + 1]) <= rtol * bnorm or hn == 0.0:
                break
            V[j + 1] = w / hn
        y = np.linalg.solve(np.triu(Hm[:j_done, :j_done]), g[:j_done])
        _combine(V, y, x)
        if abs(g[j_done]) <= rtol * bnorm:
            break
        r = b - op(x)
    return x, total
