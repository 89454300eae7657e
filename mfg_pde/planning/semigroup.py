"""Exact per-axis semigroups of the finite-difference generator, for second-order Hopf-Cole sweeps.

At zero policy the core operator along axis k is M_k = I + dt L_k with L_k = -nu D2 + upwinded drift
(``kernels``).  Q_k = -L_k is the generator of a continuous-time Markov chain on the axis' cells: it is
Metzler (off-diagonal >= 0) with zero row sums on reflecting and periodic axes.  The backward
Hopf-Cole equation without potential, -dphi/dt = Q phi with Q = sum_k Q_k acting per axis, is solved
exactly over a step by

    G_k = exp(dt Q_k),        phi^n = G_0 G_1 ... G_{d-1} phi^{n+1}

(the Q_k act on different axes of the tensor grid, so they commute and the product is exp(dt Q)
exactly: there is no splitting error between axes).  ``semigroup`` computes exp(tau Q) by
uniformisation with scaling and squaring,

    exp(tau Q) = [ e^{-s} sum_j (tau Q / 2^k + s I)^j / j! ]^(2^k),    s = max_i |tau Q_ii| / 2^k <= 1/2,

a series and products of entrywise non-negative matrices: every entry is computed to relative
accuracy (no cancellation), so the semigroup is positive down to the underflow threshold and keeps
the log-domain Sinkhorn tails meaningful (a DCT or a Pade approximant is only accurate to 1e-16 of
the largest entry and turns small tails negative).

Only drifts whose k-th component depends on x_k alone (and not on t) give commuting per-axis
generators: ``axis_generators`` checks that and says so otherwise.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from ..fd.kernels import _workspace, apply_axis

#: entries below this are set to 0 (fields are stored scaled to max 1, so such an entry changes a value
#: only where the value itself is below ~1e-280; without it the series runs into subnormal numbers)
TINY = 1e-280


def axis_generators(kd) -> list:
    """The generator matrices Q_k (n_k x n_k) of the core zero-policy operator along each axis.

    Built from the kernels' own stencil (``apply_axis`` of M_k = I + L_k at dt = 1 on the identity),
    so the semigroup is that of exactly the operator the implicit-Euler sweeps invert."""
    mats = []
    for k in range(kd.ndim):
        n = int(kd.shape3[k])
        line = np.zeros(n)
        if kd.has_drift:
            if kd.drift.shape[0] != 1:
                raise ValueError("the exact-semigroup (Strang) planning sweeps need a time-independent base drift "
                                 "b(x); use time_scheme='euler' for b(x, t)")
            bk = np.moveaxis(kd.drift[0, k], k, 0).reshape(n, -1)
            if not np.allclose(bk, bk[:, :1], rtol=1e-12, atol=1e-14 * (1.0 + np.abs(bk).max())):
                raise ValueError(f"the exact-semigroup (Strang) planning sweeps need a drift whose component {k} "
                                 f"depends on x_{k} only (e.g. LinearDrift); use time_scheme='euler' otherwise")
            line = bk[:, 0].copy()
        shape = (n, n, 1)
        g = np.zeros(shape)
        drift_k = np.ascontiguousarray(np.broadcast_to(line[:, None, None], shape))
        eye = np.ascontiguousarray(np.eye(n).reshape(shape))
        out = np.empty(shape)
        apply_axis(g, drift_k, 0, kd.axis(k, 1.0), False, eye, out, _workspace(shape))
        mats.append(np.eye(n) - out.reshape(n, n))
    return mats


def semigroup(Q: np.ndarray, tau: float) -> np.ndarray:
    """exp(tau Q) for a Metzler matrix Q (off-diagonal >= 0), entrywise non-negative and accurate to
    relative round-off in every entry above the underflow threshold: uniformisation (a series of
    non-negative matrices, summed until every entry has converged) on tau Q / 2^k with
    s = max |diag| / 2^k <= 1/2, then k squarings (products of non-negative matrices)."""
    Q = np.asarray(Q, dtype=float)
    n = Q.shape[0]
    if Q.shape != (n, n):
        raise ValueError(f"Q must be square (got shape {Q.shape})")
    off = Q - np.diag(np.diag(Q))
    if off.min() < 0:
        raise ValueError("semigroup needs a Metzler generator (off-diagonal entries >= 0)")
    if not tau >= 0:
        raise ValueError(f"tau = {tau}: must be >= 0")
    s0 = float(tau * np.max(np.abs(np.diag(Q)))) if n else 0.0
    k = max(0, int(np.ceil(np.log2(max(s0, 1e-300) / 0.5)))) if s0 > 0.5 else 0
    s = s0 / 2.0 ** k
    B = (tau / 2.0 ** k) * Q + s * np.eye(n)
    B[B < 0] = 0.0  # the diagonal of B is >= 0 up to round-off
    term = np.eye(n)
    total = np.eye(n)
    # entrywise convergence: entry (i, j) first appears in the power |i - j| of the (tri)diagonal B and
    # its later terms shrink by s / j; stop when every term is below round-off of its own entry (or
    # underflows), so far-off-diagonal entries are accurate relative to themselves, not to the largest
    for j in range(1, 4 * n + 64):
        term = term @ B
        term *= 1.0 / j
        term[term < TINY] = 0.0  # no subnormals (they make BLAS ~100x slower); see TINY
        total += term
        if np.all(term <= 1e-17 * total):
            break
    E = np.exp(-s) * total
    for _ in range(k):
        E = E @ E
        E[E < TINY] = 0.0
    return E


#: the last few semigroups computed (axes of one grid share their generator, and the solves of one grid
#: level -- guidances, outer iterations of a study -- share grid and dt): read-only matrices
_CACHE: OrderedDict = OrderedDict()
CACHE_SIZE = 8


def cached_semigroup(Q: np.ndarray, tau: float) -> np.ndarray:
    """``semigroup(Q, tau)``, reused when the same generator (by content) and tau were seen recently.
    The returned matrix is read-only."""
    Q = np.ascontiguousarray(Q, dtype=float)
    key = (float(tau), Q.shape, hashlib.blake2b(Q.tobytes(), digest_size=16).digest())
    G = _CACHE.get(key)
    if G is None:
        G = semigroup(Q, tau)
        G.setflags(write=False)
        _CACHE[key] = G
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return G


def apply_axes(mats, x: np.ndarray, transpose: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """y = (G_0 (x) G_1 (x) ...) x on a field x of the grid's shape: G_k applied along axis k (G_k^T if
    transpose).  One matrix product per axis (BLAS)."""
    y = x
    for k, G in enumerate(mats):
        A = G.T if transpose else G
        if y.ndim == 1:
            y = A @ y
        elif k == 0:
            y = (A @ y.reshape(y.shape[0], -1)).reshape(y.shape)
        elif k == y.ndim - 1:
            y = y @ A.T
        else:
            y = np.moveaxis(np.tensordot(A, y, axes=([1], [k])), 0, k)
    if out is not None:
        out[...] = y
        return out
    return y
