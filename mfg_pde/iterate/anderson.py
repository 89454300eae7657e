"""Anderson acceleration of the damped fixed point (type II, depth-M memory) and its safeguarded update."""

from __future__ import annotations

import numpy as np

from ..fd.kernels import l1_diff


class Anderson:
    """Type-II Anderson mixing on x -> x + theta g(x), g = Phi(x) - x, with a depth-M memory.

    Differences dX, dG live in preallocated ring buffers and their Gram matrix is updated one row
    per iteration, so a step costs a few BLAS matrix-vector products over the iterate."""

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

    def step(self, x, g):
        self._alloc(x.size)
        if self.have_prev:
            j = self.head
            np.subtract(x, self.x_prev, out=self.DX[j])
            np.subtract(g, self.g_prev, out=self.DG[j])
            self.count = min(self.count + 1, self.depth)
            self.head = (self.head + 1) % self.depth
            row = self.DG[: self.count] @ self.DG[j]
            self.gram[j, : self.count] = row
            self.gram[: self.count, j] = row
        np.copyto(self.x_prev, x)
        np.copyto(self.g_prev, g)
        self.have_prev = True
        x_new = x + self.theta * g
        c = self.count
        if c == 0:
            return x_new
        gram = self.gram[:c, :c]
        rhs = self.DG[:c] @ g
        reg = 1e-12 * np.trace(gram) / c
        try:
            gamma = np.linalg.solve(gram + reg * np.eye(c), rhs)
        except np.linalg.LinAlgError:
            return x_new
        x_new -= self.DX[:c].T @ gamma
        x_new -= self.theta * (self.DG[:c].T @ gamma)
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


