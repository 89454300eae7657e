"""McKean-Vlasov systems and propagation of chaos (docs/method.md, section 'Diffusion models
and interacting particles').

    dX = [ -a X - c (X - E X) - (grad W * m_t)(X) ] dt + sigma dW,      m_t = law(X_t)

* the mean-field limit: the nonlinear FP  dm/dt = div(m (a x + c (x - mean_t) + grad W * m)) + nu Lap m,
  solved on the grid with the core transport operators, the velocity of step n built from m^n
  (linearly implicit: first order in dt like the rest of the scheme);
* the N-particle system: each particle feels the EMPIRICAL mean and the empirical kernel average
  (1/N) sum_j grad W(X_i - X_j)  (Euler-Maruyama, numba, O(N^2) per step for the kernel);
* linear OU case (W = 0): the law stays Gaussian with mean' = -a mean, Sigma' = -2 (a + c) Sigma + sigma^2.

The attractive kernel used here is W(d) = -A exp(-d^2 / (2 l^2)), so grad W(d) = (A / l^2) d exp(-d^2/(2 l^2)).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..model.grid import Grid
from ..fd import kernels
from ..fd.operator import make_operator
from ..fd.operator import pad3


def kernel_gradient(d, A, ell):
    """grad W(d) for W(d) = -A exp(-d^2/(2 l^2))."""
    return (A / ell ** 2) * d * np.exp(-0.5 * d ** 2 / ell ** 2)


def solve_mean_field(grid: Grid, m0, T, Nt, *, a, c, A, ell, sigma):
    """Grid solution of the McKean-Vlasov FP (1-D), shape (Nt+1, N)."""
    if grid.ndim != 1:
        raise ValueError("solve_mean_field is 1-D")
    if grid.bc_codes[0] != 0:
        raise NotImplementedError(f"solve_mean_field uses reflecting walls; the grid has bc = {grid.bc} "
                                  "(periodic or exit sides are not supported here)")
    dt = T / Nt
    x = grid.axes[0]
    h = grid.spacing[0]
    n = grid.shape[0]
    disp = (np.arange(-(n - 1), n)) * h
    gW = kernel_gradient(disp, A, ell)
    shape3 = pad3(grid.shape)
    hh = np.ones(3)
    hh[0] = h
    periodic = np.zeros(3, dtype=np.bool_)
    m = np.empty((Nt + 1, n))
    m[0] = grid.check_field(m0, "m0")
    zero_u = np.zeros(shape3)
    states = np.zeros((0,) + shape3)
    work = kernels._workspace(shape3)
    tmp = np.empty(shape3)
    out = np.empty(shape3)
    nu = 0.5 * sigma ** 2
    op = make_operator(1, nu, dt, hh, periodic, np.zeros((1, 1, 1, 1, 1)))  # the drift goes in per step
    for k in range(Nt):
        mean = float(np.sum(x * m[k]) / np.sum(m[k]))
        v = -a * x - c * (x - mean)
        if A != 0.0:
            v = v - np.convolve(m[k], gW, mode="valid") * h
        drift = np.ascontiguousarray(v.reshape((1,) + shape3))
        kernels.fp_step(m[k].reshape(shape3), zero_u, states, drift, op, out, tmp, work, 0)
        m[k + 1] = out.reshape(n)
    return m


@njit(cache=True, parallel=True)
def _particles(x, a, c, A, ell, sigma, dt, n_steps, noise):
    N = x.shape[0]
    inv2 = 0.5 / (ell * ell)
    coef = A / (ell * ell)
    drift = np.empty(N)
    sq = np.sqrt(dt)
    for s in range(n_steps):
        mean = 0.0
        for i in range(N):
            mean += x[i]
        mean /= N
        for i in prange(N):
            xi = x[i]
            f = -a * xi - c * (xi - mean)
            if A != 0.0:
                acc = 0.0
                for j in range(N):
                    d = xi - x[j]
                    acc += d * np.exp(-d * d * inv2)
                f -= coef * acc / N
            drift[i] = f
        for i in range(N):
            x[i] += drift[i] * dt + sigma * sq * noise[s, i]
    return x


def simulate_particles(x0, T, n_steps, *, a, c, A, ell, sigma, seed=0):
    """Terminal positions of the N-particle system started at x0 (empirical interactions)."""
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=float).ravel()
    noise = rng.standard_normal((n_steps, len(x)))
    return _particles(x, float(a), float(c), float(A), float(ell), float(sigma), T / n_steps, n_steps, noise)


def ou_moments(t, *, a, c, sigma, mean0, var0):
    """Exact mean and variance of the linear McKean-Vlasov OU law."""
    t = np.asarray(t, float)
    mean = mean0 * np.exp(-a * t)
    lam = 2 * (a + c)
    var = var0 * np.exp(-lam * t) + sigma ** 2 * (1 - np.exp(-lam * t)) / lam
    return mean, var
