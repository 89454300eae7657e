"""Initial/terminal densities: validation and Gaussian / Gaussian-mixture helpers.

Densities are sampled at cell centres and normalised so that their discrete integral
(midpoint rule, ``grid.integrate``) is exactly 1.
"""

from __future__ import annotations

import numpy as np

from .grid import Grid
from .mixtures import normalised_weights

MASS_TOL = 1e-6


def _per_axis(value, ndim, name):
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(ndim, float(arr))
    if arr.shape != (ndim,):
        raise ValueError(f"{name} has shape {arr.shape}; give a number or one value per axis ({ndim})")
    return arr


def gaussian(grid: Grid, mean, std) -> np.ndarray:
    """Product Gaussian N(mean, diag(std^2)) sampled on the grid, discretely normalised."""
    mean = _per_axis(mean, grid.ndim, "mean")
    std = _per_axis(std, grid.ndim, "std")
    for k, (s, h) in enumerate(zip(std, grid.spacing)):
        if not s > 0:
            raise ValueError(f"std[{k}] = {s}: must be > 0")
        if s < 1.5 * h:
            raise ValueError(f"std[{k}] = {s} is under-resolved by the grid spacing h = {h:.3g}; "
                             "refine the grid (need std >= 1.5 h)")
    logp = 0.0
    for xk, mk, sk in zip(grid.mesh(sparse=True), mean, std):
        logp = logp - 0.5 * ((xk - mk) / sk) ** 2
    return normalise(grid, np.exp(logp) * np.ones(grid.shape))


def gaussian_mixture(grid: Grid, weights, means, stds) -> np.ndarray:
    """Mixture sum_j w_j N(mean_j, diag(std_j^2)) sampled on the grid, each component discretely
    normalised (``gaussian``); weights are validated and normalised to sum to 1 as for every mixture of the
    package (``model.mixtures.normalised_weights``).  means[j], stds[j]: a number or one value per axis."""
    if np.ndim(weights) != 1:
        raise ValueError(f"mixture weights have shape {np.shape(weights)}; give one weight per component")
    weights = normalised_weights(weights)
    if len(means) != len(weights) or len(stds) != len(weights):
        raise ValueError("gaussian_mixture: weights, means and stds need the same length")
    out = np.zeros(grid.shape)
    for w, mu, s in zip(weights, means, stds):
        out += w * gaussian(grid, mu, s)
    return out


def normalise(grid: Grid, m) -> np.ndarray:
    """m divided by its discrete integral (raises if that is not positive and finite)."""
    m = np.asarray(m, dtype=float)
    mass = float(grid.integrate(m))
    if not (np.isfinite(mass) and mass > 0):
        raise ValueError(f"cannot normalise a density with integral {mass}")
    return m / mass


def check_density(grid: Grid, m, name: str = "m0") -> np.ndarray:
    """Validate a density on the grid: shape, finite, non-negative, integral 1 (within 1e-6)."""
    m = grid.check_field(m, name)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} has non-finite values (NaN or inf)")
    if np.any(m < 0):
        raise ValueError(f"{name} has negative values (min {m.min():.3g}); a density must be >= 0")
    mass = float(grid.integrate(m))
    if not mass > 0:
        raise ValueError(f"{name} has zero mass on the grid; is it supported inside the bounds?")
    if abs(mass - 1.0) > MASS_TOL:
        raise ValueError(f"{name} integrates to {mass:.6g}, not 1; normalise it first "
                         "(mfg_pde.model.densities.normalise(grid, m)) or build it with gaussian()/gaussian_mixture()")
    return m
