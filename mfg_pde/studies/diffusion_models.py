"""Diffusion models as mean-field systems, on the grid (docs/method.md, section
'Diffusion models and interacting particles').

Score-based model with an Ornstein-Uhlenbeck noising SDE  dx = f dt + sigma dW,  f = -x,
sigma = sqrt(2) (nu = 1):

* forward noising FP:  dp/dt = -div(f p) + Lap p, from the data density p_0; for Gaussian-mixture data
  the exact law is the mixture with components N(mu e^{-t}, s^2 e^{-2t} + 1 - e^{-2t}).
* log-density equation ("HJB regulariser"): psi = log p solves
      dpsi/dt = -div f - f . grad psi + (sigma^2/2)(Lap psi + |grad psi|^2).
  With u(s) = -sigma^2 psi(T - s) this is exactly the core HJB
      -du/ds - nu Lap u + |grad u|^2/2 - b . grad u = F,   b = x (= -f),  F = -2 nu d,
  solved backward in s by the core solver from u(T) = -sigma^2 log p_0.
* reverse-time generative FP: dy = [-f + sigma^2 grad log p_{T - tau}] dtau + sigma dW, driven by the
  grid score of the forward solution, must return p_0.

Path-integral family (often called the "h-family"): reverse dynamics
dy = [-f + (1 + eta^2)/2 g^2 s_theta] dtau + eta g dW, g = sqrt(2), with the noise level eta (the paper's h,
renamed here because h is the grid spacing); its FP has diffusion nu = eta^2 and is exact for every eta when
the score is exact.
"""

from __future__ import annotations

import numpy as np

from ..model.grid import Grid
from ..model.mixtures import normalised_weights
from ..result import gradient


# ----------------------------------------------------------------------------- closed forms
def ou_mixture(grid: Grid, t: float, weights, means, stds) -> np.ndarray:
    """Exact law at time t of the OU noising (f = -x, sigma = sqrt 2) of a diagonal Gaussian mixture
    (means (K, d), stds (K, d) or scalars): components N(mu e^{-t}, s^2 e^{-2t} + 1 - e^{-2t})."""
    weights = normalised_weights(weights)
    means = np.asarray(means, float).reshape(len(weights), -1)
    stds = np.asarray(stds, float).reshape(len(weights), -1)
    xs = grid.mesh(sparse=True)
    out = np.zeros(grid.shape)
    for w, mu, s in zip(weights, means, stds):
        dens = w
        for k, xk in enumerate(xs):
            mk = mu[k if mu.size > 1 else 0] * np.exp(-t)
            vk = s[k if s.size > 1 else 0] ** 2 * np.exp(-2 * t) + 1 - np.exp(-2 * t)
            dens = dens * np.exp(-0.5 * (xk - mk) ** 2 / vk) / np.sqrt(2 * np.pi * vk)
        out = out + dens
    return out


def gaussian_reverse_moments(tau, *, eta=None, lam, mu, s, T, M0=0.0, V0=1.0, **renamed):
    """Moments (M, V) of the reverse path-integral dynamics with noise level eta and a mis-scaled exact
    Gaussian score lam * s_exact, started from N(M0, V0) (docs/method.md, section 'Diffusion models and
    interacting particles'), integrated with DOP853:
        dM/dtau = M - (1 + eta^2) lam (M - mu e^{-(T - tau)}) / v_{T - tau}
        dV/dtau = 2 V (1 - (1 + eta^2) lam / v_{T - tau}) + 2 eta^2,   v_t = s^2 e^{-2t} + 1 - e^{-2t}.
    (The noise level is not called h: h is the grid spacing in this package.)"""
    from scipy.integrate import solve_ivp

    if "h" in renamed:
        raise TypeError("gaussian_reverse_moments(h=...): the noise level is called eta now "
                        "(gaussian_reverse_moments(tau, eta=..., ...)); h means the grid spacing in this package")
    if renamed:
        raise TypeError(f"gaussian_reverse_moments got unexpected arguments {', '.join(sorted(renamed))}")
    if eta is None:
        raise TypeError("gaussian_reverse_moments needs the noise level eta=...")
    h2 = float(eta) ** 2

    def v(t):
        return s ** 2 * np.exp(-2 * t) + 1 - np.exp(-2 * t)

    def rhs(tt, y):
        M, V = y
        vt = v(T - tt)
        return [M - (1 + h2) * lam * (M - mu * np.exp(-(T - tt))) / vt,
                2 * V * (1 - (1 + h2) * lam / vt) + 2 * h2]

    tau = np.atleast_1d(np.asarray(tau, float))
    sol = solve_ivp(rhs, (0.0, float(tau[-1])), [M0, V0], method="DOP853", rtol=1e-11, atol=1e-13,
                    dense_output=True)
    M, V = sol.sol(tau)
    return M, V


def gaussian_w2_nll(M, V, mu, s):
    """W2 between N(M, V) and N(mu, s^2), and the NLL of the data N(mu, s^2) under N(M, V)."""
    w2 = np.sqrt((M - mu) ** 2 + (np.sqrt(V) - s) ** 2)
    nll = 0.5 * np.log(2 * np.pi * V) + ((mu - M) ** 2 + s ** 2) / (2 * V)
    return w2, nll


# ----------------------------------------------------------------------------- grid measures
def score(grid: Grid, m: np.ndarray, floor: float = 1e-300) -> np.ndarray:
    """grad log m by centred differences, shape (..., *grid, ndim) (m floored at ``floor``)."""
    return gradient(grid, np.log(np.maximum(m, floor)))


def w2_1d(grid: Grid, p: np.ndarray, q: np.ndarray, n_quantiles: int = 4000) -> float:
    """Wasserstein-2 distance of two 1-D grid densities via their quantile functions
    (piecewise-linear CDFs through the cell edges)."""
    if grid.ndim != 1:
        raise ValueError("w2_1d needs a 1-D grid")
    (lo, hi), = grid.bounds
    edges = np.linspace(lo, hi, grid.shape[0] + 1)
    h = grid.spacing[0]

    def quantile(m):
        cdf = np.concatenate([[0.0], np.cumsum(np.maximum(m, 0)) * h])
        cdf /= cdf[-1]
        u = (np.arange(n_quantiles) + 0.5) / n_quantiles
        return np.interp(u, cdf, edges)

    return float(np.sqrt(np.mean((quantile(p) - quantile(q)) ** 2)))


def nll_grid(grid: Grid, m: np.ndarray, data: np.ndarray, floor: float = 1e-300) -> float:
    """Negative log-likelihood of data with density ``data`` under the grid density ``m`` (both on the same
    grid): the cross-entropy -int data log m dx by the midpoint rule (m floored at ``floor``), the expected
    NLL of a data sample.  For m = N(M, V) and data N(mu, s^2) sampled on the grid it is ``gaussian_w2_nll``'s
    NLL up to the quadrature error."""
    if np.shape(m) != grid.shape or np.shape(data) != grid.shape:
        raise ValueError(f"m {np.shape(m)} and data {np.shape(data)} must be densities on the grid {grid.shape}")
    return float(-grid.integrate(data * np.log(np.maximum(m, floor))))


def marginal(grid: Grid, m: np.ndarray, axis: int) -> tuple:
    """(1-D grid, marginal density) of a d-D grid density along one axis."""
    others = tuple(k for k in range(grid.ndim) if k != axis)
    h_other = np.prod([grid.spacing[k] for k in others]) if others else 1.0
    g1 = Grid([grid.bounds[axis]], grid.shape[axis], grid.bc[axis])
    return g1, m.sum(axis=others) * h_other if others else m
