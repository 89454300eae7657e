"""The Gaussian-mixture posterior mean and agent drift: the one implementation (docs/method.md, section
'Gaussian-mixture closed form').  Used by the agent simulator (``agents.simulate_gm``, ``agents.gm_drift``),
the oracle (``oracles.analytic.gm_agent_drift``) and the demand-response energies
(``studies.demand_response``).

Product coupling, target a diagonal Gaussian mixture m1(y) = sum_j pi_j N(y; m_j, diag S_j)
(``model.mixtures.DiagonalMixture``).  With the protocol's bridge coefficients a, b, c, g at time t, an
agent started at z and now at x observes the endpoint through

    e = x - a z - c = b Y + sqrt(g) xi,   xi ~ N(0, I),   Y ~ m1,

so, per axis k and component j (all covariances diagonal),

    V_jk  = b^2 S_jk + g                                       (the variance of e under component j)
    w_j   = pi_j N(e; b m_j, diag V_j) / sum_i pi_i N(e; b m_i, diag V_i)     (responsibilities)
    y_jk  = m_jk + (S_jk b / V_jk) (e_k - b m_jk)              (E[Y | e, component j], Kalman form)
    yhat  = sum_j w_j y_j = E[X_T | X_t = x, X_0 = z]

and the optimal control of the agent is

    alpha(t, x; z) = [yhat + p_t' (x - c_t)] / p_t + c_t'.

The responsibilities are evaluated in the log domain, lw_j = logc_j - 1/2 sum_k (e_k - b m_jk)^2 / V_jk
with logc_j = log pi_j - 1/2 sum_k log V_jk (the 2 pi constant cancels), terms below exp(-700) of the
largest dropped (a zero weight has log 0 = -inf and never contributes).  Where nothing is observed
(b = 0 or some V = 0: t = 0), yhat is the prior mean sum_j pi_j m_j.  The per-time tables
(``posterior_tables``) are built in numpy; ``gm_posterior_mean`` and ``gm_alpha`` evaluate the formula
per agent in numba.

The kernels take the tables as one record, ``GMTables`` (a module-level named tuple: numba compiles it as
an argument and its cache keeps it, a closure over the tables would be neither), built once per run by
``protocol_tables`` (or ``gm_tables``, which fixes the dtypes so that every caller compiles the same
signature).

Numba caches a kernel by its own file only: ``agents._gm_kernel`` and ``demand_response._energy_kernel``
inline the kernels of this module, so after editing it delete their cached ``*.nbi``/``*.nbc`` files
(``__pycache__``) or touch those two modules.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit

from ..model.mixtures import DiagonalMixture, as_mixture

__all__ = ["GMTables", "gm_agent_alpha", "gm_alpha", "gm_drift", "gm_posterior_mean", "gm_tables", "posterior_tables",
           "protocol_tables"]

#: The protocol and posterior tables of the drift at n simulation times t_0..t_{n-1} (K mixture components, d axes),
#: what ``gm_alpha`` / ``gm_agent_alpha`` read at row n:
#:
#: * A (n,): a_t, the weight of the start z in the residual e = x - a z - c;
#: * P, DP (n,): the fundamental solution p_t and its derivative p_t' (alpha = [yhat + p' (x - c)] / p + c');
#: * C, DC (n, d): the guidance shift c_t and c_t';
#: * prior (n,) bool: nothing observed at t (b = 0 or some V = 0): yhat = pmean;
#: * logc (n, K): log pi_j - 1/2 sum_k log V_jk (-inf for a zero weight);
#: * ivar, gain, bm (n, K, d): 1/V, the Kalman gain S b / V and b m (``posterior_tables``);
#: * means (K, d): the target's component means m_j;  pmean (d,): the target mean sum_j pi_j m_j.
GMTables = namedtuple("GMTables", ("A", "P", "DP", "C", "DC", "prior", "logc", "ivar", "gain", "bm", "means",
                                   "pmean"))


def posterior_tables(b, g, weights, means, variances):
    """Per-time tables of the posterior of Y ~ mixture (weights (K,), means, variances (K, d)) given
    e = b_n Y + N(0, g_n I), for the times n of b, g (n,) (module docstring)::

        V = b^2 S + g,   ivar = 1/V,   logc = log pi - 1/2 sum_k log V,   gain = S b / V,   bm = b m

    Returns (prior (n,) bool: nothing observed at n, so yhat = the prior mean; logc (n, K);
    ivar, gain, bm (n, K, d)).  ivar = 0 on prior rows; a zero weight has logc = -inf."""
    b = np.asarray(b, dtype=float)
    g = np.maximum(np.asarray(g, dtype=float), 0.0)
    w = np.asarray(weights, dtype=float)
    S = np.asarray(variances, dtype=float)
    var = b[:, None, None] ** 2 * S[None] + g[:, None, None]                 # (n, K, d)
    prior = ~(np.all(var > 0, axis=(1, 2)) & (b > 0))
    safe = np.where(var > 0, var, 1.0)
    ivar = np.where(prior[:, None, None], 0.0, 1.0 / safe)
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    logc = logw[None, :] - 0.5 * np.log(safe).sum(axis=2)
    gain = S[None] * b[:, None, None] * ivar
    bm = b[:, None, None] * np.asarray(means, dtype=float)[None]
    return prior, logc, ivar, gain, bm


def gm_tables(A, P, DP, C, DC, prior, logc, ivar, gain, bm, means, pmean) -> GMTables:
    """The ``GMTables`` record with the types the kernels are compiled for (C-contiguous float64 arrays, prior
    a bool array): every caller then shares one numba signature."""
    def f64(a):
        return np.ascontiguousarray(a, dtype=float)
    return GMTables(f64(A), f64(P), f64(DP), f64(C), f64(DC), np.ascontiguousarray(prior, dtype=np.bool_),
                    f64(logc), f64(ivar), f64(gain), f64(bm), f64(means), f64(pmean))


def protocol_tables(proto, target: DiagonalMixture, times, d) -> GMTables:
    """The protocol interpolated linearly at ``times`` and the posterior tables there: the ``GMTables`` record
    (A, P, DP, C, DC, prior, logc, ivar, gain, bm, means, pmean) that ``gm_agent_alpha`` reads.

    a = p/W, b = q/W, g = sigma^2 p q / W from the interpolated fundamental solutions p, q (smooth, where g
    is a product).  A protocol c with one column is broadcast to d (a shared guidance)."""
    tp = np.asarray(proto.t, dtype=float)

    def at(arr):
        return np.interp(times, tp, np.asarray(arr, dtype=float))

    W = float(proto.W)
    P, DP, Q = at(proto.p), at(proto.dp), at(proto.q)
    A, B, G = P / W, Q / W, float(proto.sigma) ** 2 * P * Q / W
    c = np.asarray(proto.c, dtype=float).reshape(len(tp), -1)
    dc = np.asarray(proto.dc, dtype=float).reshape(len(tp), -1)
    if c.shape[1] == 1 and d > 1:
        c = np.repeat(c, d, axis=1)
        dc = np.repeat(dc, d, axis=1)
    if c.shape[1] != d:
        raise ValueError(f"protocol c has {c.shape[1]} components; the agents live in d = {d}")
    C = np.stack([np.interp(times, tp, c[:, k]) for k in range(d)], axis=1)
    DC = np.stack([np.interp(times, tp, dc[:, k]) for k in range(d)], axis=1)
    if np.any(P <= 0):
        raise ValueError("the protocol's p vanishes at a simulation time (the drift is singular at t = T); "
                         "the left-endpoint rule needs times < T")
    prior, logc, ivar, gain, bm = posterior_tables(B, G, target.weights, target.means, target.variances)
    return gm_tables(A, P, DP, C, DC, prior, logc, ivar, gain, bm, target.means, target.mean())


@njit(cache=True, inline="always")
def gm_posterior_mean(e, n, logc, bm, ivar, gain, means, lw, out):
    """out_k += yhat_k = sum_j w_j (means_jk + gain_njk (e_k - bm_njk)), the responsibilities
    w_j = exp(lw_j) / sum_i exp(lw_i), lw_j = logc_nj - 1/2 sum_k (e_k - bm_njk)^2 ivar_njk (log-sum-exp;
    terms below exp(-700) of the largest dropped): the posterior mean of the mixture endpoint given the
    observation e at table row n (``posterior_tables``).  lw: scratch of length K."""
    d = e.shape[0]
    K = logc.shape[1]
    best = -np.inf
    for j in range(K):
        acc = logc[n, j]
        for k in range(d):
            r = e[k] - bm[n, j, k]
            acc -= 0.5 * r * r * ivar[n, j, k]
        lw[j] = acc
        if acc > best:  # noqa: PLR1730  (explicit compare: the kernel as it was, bit for bit)
            best = acc
    tot = 0.0
    for j in range(K):
        u = lw[j] - best
        wj = math.exp(u) if u > -700.0 else 0.0
        lw[j] = wj
        tot += wj
    inv = 1.0 / tot
    for j in range(K):
        wj = lw[j] * inv
        if wj == 0.0:
            continue
        for k in range(d):
            out[k] += wj * (means[j, k] + gain[n, j, k] * (e[k] - bm[n, j, k]))


@njit(cache=True, inline="always")
def gm_alpha(e, x, n, tab, lw, al):
    """al = alpha = [yhat(e) + p_n' (x - c_n)] / p_n + c_n' for one agent at x with residual
    e = x - a_n z - c_n (passed in: a caller that knows e = b y + sqrt(g) xi directly avoids the
    cancellation), from row n of the ``GMTables`` record tab.  yhat = tab.pmean on prior rows, the single
    component's Kalman mean when K = 1, else ``gm_posterior_mean``.  lw, al: scratch of lengths K, d."""
    d = x.shape[0]
    K = tab.logc.shape[1]
    for k in range(d):
        al[k] = 0.0
    if tab.prior[n]:
        for k in range(d):
            al[k] = tab.pmean[k]
    elif K == 1:
        for k in range(d):
            al[k] = tab.means[0, k] + tab.gain[n, 0, k] * (e[k] - tab.bm[n, 0, k])
    else:
        gm_posterior_mean(e, n, tab.logc, tab.bm, tab.ivar, tab.gain, tab.means, lw, al)
    ip = 1.0 / tab.P[n]
    dpn = tab.DP[n]
    for k in range(d):
        al[k] = (al[k] + dpn * (x[k] - tab.C[n, k])) * ip + tab.DC[n, k]


@njit(cache=True, inline="always")
def gm_agent_alpha(xi, zi, n, tab, e, lw, al):
    """al = alpha(t_n, x; z) for the agent at xi started at zi: e = x - a_n z - c_n, then ``gm_alpha``
    (tab: the ``GMTables`` record of ``protocol_tables``; e, lw, al: scratch of lengths d, K, d)."""
    An = tab.A[n]
    for k in range(xi.shape[0]):
        e[k] = xi[k] - An * zi[k] - tab.C[n, k]
    gm_alpha(e, xi, n, tab, lw, al)


@njit(cache=True, error_model="numpy")
def _gm_eval_kernel(x, z, n_idx, tab, out):
    """out[i] = alpha(t_n, x_i; z_i) at table row n_idx of the ``GMTables`` record tab."""
    N, d = x.shape
    K = tab.logc.shape[1]
    lw = np.empty(K)
    e = np.empty(d)
    al = np.empty(d)
    for i in range(N):
        gm_agent_alpha(x[i], z[i], n_idx, tab, e, lw, al)
        for k in range(d):
            out[i, k] = al[k]


def gm_drift(t: float, x, z, proto, target) -> np.ndarray:
    """alpha(t, x; z) (module docstring) at one time 0 <= t < T for agents x and their starts z (N, d)
    (z may be (d,)); proto: a ``GMProtocol`` (``oracles.analytic.gm_protocol``), linearly interpolated at
    t; target: the endpoint mixture in any form ``model.mixtures.as_mixture`` accepts.  Returns (N, d).
    At t = 0 nothing is observed: yhat = the target mean."""
    x = np.ascontiguousarray(np.atleast_2d(np.asarray(x, dtype=float)))
    # a copy, always writable: a read-only view (the broadcast of an (N, d) z) would compile a second kernel
    z = np.array(np.broadcast_to(np.atleast_2d(np.asarray(z, dtype=float)), x.shape), dtype=float, order="C")
    tgt = as_mixture(target, x.shape[1], name="target")
    tab = protocol_tables(proto, tgt, np.array([float(t)]), x.shape[1])
    out = np.empty_like(x)
    _gm_eval_kernel(x, z, int(0), tab, out)
    return out
