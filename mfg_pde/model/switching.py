"""Types of agents with Poisson switching: the switching-rate matrix and what follows from it.

K types; an agent of type k switches to type j at rate q_kj >= 0 (k != j), and q_kk = -sum_{j != k} q_kj, so
every row of Q sums to 0.  The shares p(t) of the types (masses of the type densities) solve p' = p Q, so
p(t) = p(0) exp(t Q); the long-run shares pi solve pi Q = 0.

In a time-dependent game on the grid the switching part of one step is taken exactly (``propagator``): over a
step dt the type of an agent changes with the probabilities E = exp(dt Q), a stochastic matrix (E >= 0, rows
summing to 1) for any dt.  The HJB step of type k starts from sum_j E_kj u_j^{n+1}, the FP step ends by mixing
the transported densities with E^T, so the FP stays the exact transpose of the linearised HJB step, the total
mass is conserved to round-off and m >= 0 for any dt (``fd.switching``).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import expm


def check_switching(Q, name: str = "switching", rtol: float = 1e-12) -> np.ndarray:
    """The switching-rate matrix as a (K, K) float array, or a ValueError naming ``name``: Q must be square
    and finite, its off-diagonal rates q_kj (type k -> type j) >= 0 and every row must sum to 0 (the diagonal
    is minus the total rate of leaving the type).  ``rtol``: the row-sum tolerance relative to the largest
    rate."""
    try:
        Q = np.array(Q, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {Q!r}: give the switching-rate matrix as a K x K array of numbers") from None
    if Q.ndim != 2 or Q.shape[0] != Q.shape[1] or Q.shape[0] < 1:
        raise ValueError(f"{name} has shape {Q.shape}: the switching-rate matrix must be square (K x K, one row "
                         "and one column per type)")
    if not np.all(np.isfinite(Q)):
        raise ValueError(f"{name} has non-finite entries: switching rates must be finite numbers")
    off = Q - np.diag(np.diag(Q))
    if np.any(off < 0):
        k, j = (int(v) for v in np.argwhere(off < 0)[0])
        raise ValueError(f"{name}[{k}, {j}] = {Q[k, j]:g} < 0: the off-diagonal entries are rates of switching "
                         f"from type {k} to type {j} and must be >= 0")
    scale = max(float(np.abs(Q).max()), 1.0)
    rows = Q.sum(axis=1)
    bad = np.flatnonzero(np.abs(rows) > rtol * scale)
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{name}: row {k} sums to {rows[k]:.3g}, not 0; each row of the switching-rate matrix "
                         f"must sum to 0 (set the diagonal to minus the row's off-diagonal rates: "
                         f"{name}[{k}, {k}] = {-(rows[k] - Q[k, k]):g})")
    return Q


def stationary_distribution(Q: np.ndarray) -> np.ndarray:
    """pi >= 0 with pi Q = 0, sum pi = 1 (the long-run shares of the types); a ValueError when Q is reducible
    in a way that makes pi not unique."""
    K = Q.shape[0]
    A = np.vstack([Q.T, np.ones((1, K))])
    b = np.zeros(K + 1)
    b[-1] = 1.0
    pi, _res, rank, _sv = np.linalg.lstsq(A, b, rcond=None)
    if rank < K:
        raise ValueError("switching: the types do not form one communicating class (the long-run shares of the "
                         "types are not unique); make the switching-rate matrix irreducible")
    return pi


def propagator(Q: np.ndarray, dt: float) -> np.ndarray:
    """E = exp(dt Q): E_kj is the probability that an agent of type k at t is of type j at t + dt.

    Entries below 0 by round-off are set to 0 and each diagonal entry is 1 minus the rest of its row, so E is
    stochastic to round-off (E >= 0, E 1 = 1): the switching step then moves mass between the types without
    creating or losing any."""
    E = expm(float(dt) * np.asarray(Q, dtype=float))
    np.clip(E, 0.0, None, out=E)
    for k in range(E.shape[0]):
        E[k, k] = 1.0 - (E[k].sum() - E[k, k])
    return E


def shares_path(Q: np.ndarray, p0, t) -> np.ndarray:
    """p(t) = p(0) exp(t Q) for the times t (len(t), K): the shares of the types when the switching does not
    depend on position."""
    p0 = np.asarray(p0, dtype=float)
    return np.stack([p0 @ expm(float(tn) * np.asarray(Q, dtype=float)) for tn in np.atleast_1d(t)])
