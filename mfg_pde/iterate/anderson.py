"""Anderson acceleration of the damped fixed point (type II, depth-M memory) and its safeguarded update."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..fd.kernels import l1_diff


@njit(cache=True, error_model="numpy")
def _record(x, g, x_prev, g_prev, DX, DG, j, count, have_prev, row, rhs):
    """One pass over the iterate: with a previous pair, DX[j] = x - x_prev and DG[j] = g - g_prev, and
    row[r] = DG[r] . DG[j] for r < count (count including the new difference); always rhs[r] = DG[r] . g for
    r < count, and x_prev, g_prev <- x, g.  (Fused: a multithreaded BLAS product per row cost milliseconds on a
    busy machine, and each was a pass of its own over the space-time iterate.)"""
    for r in range(count):
        row[r] = 0.0
        rhs[r] = 0.0
    for i in range(x.size):
        xi = x[i]
        gi = g[i]
        if have_prev:
            dg = gi - g_prev[i]
            DX[j, i] = xi - x_prev[i]
            DG[j, i] = dg
            for r in range(count):
                d = DG[r, i]
                row[r] += d * dg
                rhs[r] += d * gi
        else:
            for r in range(count):
                rhs[r] += DG[r, i] * gi
        x_prev[i] = xi
        g_prev[i] = gi


@njit(cache=True, error_model="numpy")
def _mix(x, g, DX, DG, gamma, theta, out):
    """out = x + theta g - sum_r gamma_r (DX[r] + theta DG[r])  (the type-II Anderson update, one pass)."""
    c = gamma.size
    for i in range(x.size):
        v = x[i] + theta * g[i]
        for r in range(c):
            v -= gamma[r] * (DX[r, i] + theta * DG[r, i])
        out[i] = v


class Anderson:
    """Type-II Anderson mixing on x -> x + theta g(x), g = Phi(x) - x, with a depth-M memory.

    Differences dX, dG live in preallocated ring buffers and their Gram matrix is updated one row
    per iteration; a step is two compiled passes over the iterate (``_record``, ``_mix``)."""

    def __init__(self, depth: int, theta: float):
        self.depth = depth
        self.theta = theta
        self.reset()

    def reset(self):
        self.count = 0
        self.head = 0
        self.have_prev = False

    def _alloc(self, n):
        if getattr(self, "DX", None) is None or self.DX.shape[1] != n:
            self.DX = np.empty((self.depth, n))
            self.DG = np.empty((self.depth, n))
            self.gram = np.zeros((self.depth, self.depth))
            self.x_prev = np.empty(n)
            self.g_prev = np.empty(n)
            self.row = np.empty(self.depth)
            self.rhs = np.empty(self.depth)

    def step(self, x, g):
        self._alloc(x.size)
        x = np.ascontiguousarray(x, dtype=float)
        g = np.ascontiguousarray(g, dtype=float)
        j = self.head
        if self.have_prev:
            self.count = min(self.count + 1, self.depth)
            self.head = (self.head + 1) % self.depth
        c = self.count
        _record(x, g, self.x_prev, self.g_prev, self.DX, self.DG, j, c, self.have_prev, self.row, self.rhs)
        if self.have_prev:
            self.gram[j, :c] = self.row[:c]
            self.gram[:c, j] = self.row[:c]
        self.have_prev = True
        x_new = np.empty_like(x)
        if c == 0:
            np.add(x, self.theta * g, out=x_new)
            return x_new
        gram = self.gram[:c, :c]
        reg = 1e-12 * np.trace(gram) / c
        try:
            gamma = np.linalg.solve(gram + reg * np.eye(c), self.rhs[:c])
        except np.linalg.LinAlgError:
            np.add(x, self.theta * g, out=x_new)
            return x_new
        _mix(x, g, self.DX, self.DG, np.ascontiguousarray(gamma), float(self.theta), x_new)
        return x_new


def anderson_update(accel, m, m_hat, residual, best):
    """Safeguarded Anderson step on levels 1..Nt of m, written in place: a residual above 1.5 x best
    restarts the memory and halves theta; a mixed density with negative values falls back to the plain
    damped step.  Returns (change_sum = ||m_new - m_old||_1, theta, best)."""
    Nt = m.shape[0] - 1
    m1 = m[1:].reshape(Nt, -1)
    if residual > best * 1.5:
        accel.reset()
        accel.theta = max(accel.theta * 0.5, 0.05)
        best = residual  # measure growth from the restart
    theta = accel.theta
    g = (m_hat[1:] - m[1:]).reshape(-1)
    m_next = accel.step(m1.reshape(-1), g)
    if m_next.min() < -1e-12 * m_hat.max():
        accel.reset()
        m_next = m1.reshape(-1) + theta * g
    change_sum = float(np.float64(l1_diff(m_next, m1.reshape(-1))))
    m1.reshape(-1)[:] = m_next
    return change_sum, theta, best


