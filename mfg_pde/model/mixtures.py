"""Diagonal Gaussian mixtures: the one representation, validation and normalisation used by the package.

A diagonal Gaussian mixture on R^d with K components::

    m(y) = sum_k pi_k N(y; mu_k, diag(S_k)),   pi_k >= 0, sum_k pi_k = 1,  mu_k in R^d,  S_k in [0, inf)^d

is held as ``DiagonalMixture(weights (K,), means (K, d), variances (K, d))``.  Weights are normalised
to sum 1 on construction (once: an existing ``DiagonalMixture`` passes through ``as_mixture``
unchanged).  A zero variance is a point mass along that axis (e.g. agents started at one point z);
callers that need a density pass ``allow_point_masses=False``.

Accepted forms (``as_mixture``): a ``DiagonalMixture``; a tuple/list (weights, means, variances); a dict
with those keys; any object with those attributes.  Shapes, with K = len(weights):

    means      (K, d); (K,) or a number: one value per component (d = 1, or broadcast to d);
               (d,) when K = 1
    variances  (K, d); (K,): one per component, the same on every axis; (d,): one per axis, the same
               for every component (read as (K,) when K = d); a number: all
    a column count of 1 is broadcast to d (given; else the means' column count, or the variances' when the
    means have one column).

Moments: mean = sum_k pi_k mu_k, covariance = sum_k pi_k (mu_k mu_k^T + diag S_k) - mean mean^T.

The Gaussian-mixture posterior mean and agent drift that use these mixtures live in
``mfg_pde.particles.gm_drift`` (numba).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DiagonalMixture", "as_mixture", "normalised_weights"]


def normalised_weights(weights, name: str = "mixture") -> np.ndarray:
    """Mixture weights as a float array (K,), divided by their sum (the one weight validation).

    Raises ValueError unless the weights are finite, >= 0 and have a positive sum."""
    w = np.atleast_1d(np.asarray(weights, dtype=float)).ravel()
    if w.size < 1 or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"{name} weights {w.tolist()}: need non-negative numbers with a positive sum "
                         "(give weights >= 0, not all zero; they are normalised to sum 1)")
    return w / w.sum()


def _columns(a, K, what, name):
    """means / variances as (K, n) (n = the column count before broadcasting to d)."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return np.full((K, 1), float(a))
    if a.ndim == 1:
        if a.shape[0] == K:
            return a[:, None]
        if K == 1 or what == "variances":       # one row (K = 1), or per-axis variances shared by all components
            return a[None, :]
    if a.ndim == 2 and a.shape[0] == K:
        return a
    raise ValueError(f"{name} {what} have shape {a.shape}; need (K, d) with K = {K} (the number of weights), "
                     f"or (K,) / a number" + (" / (d,)" if what == "variances" else ""))


def _shapes(weights, means, variances, d, name):
    """(weights (K,) unnormalised, means (K, d), variances (K, d)): shapes only, no value checks."""
    w = np.atleast_1d(np.asarray(weights, dtype=float)).ravel()
    K = len(w)
    m = _columns(means, K, "means", name)
    v = _columns(variances, K, "variances", name)
    if d is None:                               # the means' column count, unless they are one column
        d = v.shape[1] if m.shape[1] == 1 else m.shape[1]
    d = int(d)
    for a, what in ((m, "means"), (v, "variances")):
        if a.shape[1] not in (1, d):
            raise ValueError(f"{name} {what} have {a.shape[1]} columns; need d = {d} (or 1, broadcast to d)")
    return w, np.array(np.broadcast_to(m, (K, d))), np.array(np.broadcast_to(v, (K, d)))


@dataclass(frozen=True, eq=False)
class DiagonalMixture:
    """sum_k weights_k N(means_k, diag(variances_k)) on R^d (see the module docstring).

    weights (K,) >= 0, normalised to sum 1 here; means (K, d) finite; variances (K, d) finite and >= 0.
    Construction validates and normalises; ``as_mixture`` also accepts tuples, dicts and broadcasts to d.
    Unpacks like the tuple it replaces: ``w, m, v = mixture``."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def __post_init__(self):
        w, m, v = _shapes(self.weights, self.means, self.variances, None, "mixture")
        w, m, v = _validated(w, m, v, True, "mixture")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "variances", v)

    @classmethod
    def _checked(cls, w, m, v) -> DiagonalMixture:
        """An instance from arrays ``_validated`` has already checked and normalised (no second
        normalisation, which could move the weights by an ulp)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "weights", w)
        object.__setattr__(obj, "means", m)
        object.__setattr__(obj, "variances", v)
        return obj

    def __iter__(self):
        return iter((self.weights, self.means, self.variances))

    @property
    def K(self) -> int:
        return int(self.weights.shape[0])

    @property
    def d(self) -> int:
        return int(self.means.shape[1])

    def mean(self) -> np.ndarray:
        """sum_k pi_k mu_k, shape (d,)."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """sum_k pi_k (mu_k mu_k^T + diag S_k) - mean mean^T, shape (d, d) (the components are
        diagonal, the mixture in general is not)."""
        w, m = self.weights, self.means
        mean = self.mean()
        return np.einsum("k,ki,kj->ij", w, m, m) + np.diag(w @ self.variances) - np.outer(mean, mean)

    def cov_diag(self) -> np.ndarray:
        """The per-axis variances of the mixture: the diagonal of ``covariance()``, shape (d,)."""
        return np.diagonal(self.covariance()).copy()

    def sample_component(self, k: int, n: int, seed=0) -> np.ndarray:
        """n samples (n, d) of component k: mu_k + sqrt(S_k) * standard normals."""
        rng = np.random.default_rng(seed)
        return self.means[k] + np.sqrt(self.variances[k]) * rng.standard_normal((int(n), self.d))

    def sample(self, n: int, seed=0) -> tuple[np.ndarray, np.ndarray]:
        """n samples of the mixture: (x (n, d), labels (n,) = the component drawn for each sample).

        seed: int, SeedSequence or numpy Generator (a Generator is used, and advanced, as is)."""
        rng = np.random.default_rng(seed)
        lab = rng.choice(self.K, size=int(n), p=self.weights)
        x = self.means[lab] + np.sqrt(self.variances[lab]) * rng.standard_normal((int(n), self.d))
        return x, lab.astype(np.int64)


def _validated(w, m, v, allow_point_masses, name):
    w = normalised_weights(w, name)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} means must be finite (got {m.tolist()})")
    bad = ~np.isfinite(v) | ((v < 0) if allow_point_masses else (v <= 0))
    if np.any(bad):
        k, i = np.argwhere(bad)[0]
        need = ">= 0 (0 = a point mass on that axis)" if allow_point_masses else "> 0"
        raise ValueError(f"{name} variances must be finite and {need}; variances[{k}, {i}] = {v[k, i]} "
                         "(variances are squared standard deviations)")
    return w, m, v


def as_mixture(mix, d: int | None = None, *, allow_point_masses: bool = True,
               name: str = "mixture") -> DiagonalMixture:
    """The ``DiagonalMixture`` of any accepted form (module docstring), broadcast to d columns when d is
    given.  An existing ``DiagonalMixture`` with the right d is returned as is.

    allow_point_masses=False rejects zero variances (for callers that need a density).  name: how error
    messages call the mixture (e.g. "target").  Raises ValueError naming the offending parameter."""
    if isinstance(mix, DiagonalMixture):
        if (d is None or mix.d == d) and (allow_point_masses or np.all(mix.variances > 0)):
            return mix
        w, m, v = mix.weights, mix.means, mix.variances
        w, m, v = _shapes(w, m, v, d, name)
        _validated(w, m, v, allow_point_masses, name)
        return DiagonalMixture._checked(mix.weights, m, v)
    if isinstance(mix, dict):
        missing = [k for k in ("weights", "means", "variances") if k not in mix]
        if missing:
            raise ValueError(f"{name}: the dict lacks {missing}; give weights, means and variances")
        w, m, v = mix["weights"], mix["means"], mix["variances"]
    elif isinstance(mix, (tuple, list)) and len(mix) == 3:
        w, m, v = mix
    elif all(hasattr(mix, a) for a in ("weights", "means", "variances")):
        w, m, v = mix.weights, mix.means, mix.variances
    else:
        raise ValueError(f"{name}: a Gaussian mixture is (weights (K,), means (K, d), variances (K, d)) "
                         "as a tuple, a dict with those keys or a DiagonalMixture")
    w, m, v = _shapes(w, m, v, d, name)
    return DiagonalMixture._checked(*_validated(w, m, v, allow_point_masses, name))
