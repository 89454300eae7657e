"""The Hamiltonian's share of the Newton Jacobian, for every one-axis Hamiltonian of ``fd.kernels``.

The discrete Hamiltonian of one axis is the Engquist-Osher splitting h_EO = h(max(D-g, 0)) + h(min(D+g, 0))
(``kernels.ham_row``).  Newton needs, besides the rows M(g) the kernels already build (d/dg of the HJB row
is M(g): the Engquist-Osher identity), two more derivatives:

* the FP block d/dg [M(g)^T mu] = Hess_g [mu . (M(g) g - dt c(g))] = dt Hess_g [mu . h_EO(D g)]: the graph
  Laplacian of the edges (i, i+1) of the axis with the upwind weights (s = D+g_i = (g_{i+1} - g_i) / h)

      E_i = dt / h^2 [ mu_i h''_i(s) 1{s < 0} + mu_{i+1} h''_{i+1}(s) 1{s > 0} ]

  (node i sees the edge as its upper side, node i+1 as its lower side; ``ham_curv`` is h'', with the node's
  congestion weight where h depends on m).  h'' >= 0 (h convex), so the FP block stays a weighted
  Laplacian.  For the quadratic h, h'' = 1 and E is the mass carried along the edge.
* for the congestion Hamiltonian h = w(m) p^2 / 2, w = (c0 + c m)^(-alpha): the rows are linear in the node
  weight w_i, so d/dm_i of row i is w'(m_i) times the row of the unit-weight Hamiltonian part,
  M(g; w = 1) - M(g; w = 0); in the HJB row the same derivative of M(g) g - dt c(g) is dt w'(m_i) c1_i(g),
  c1 the unit-weight cost p^2/2 of the split (``kernels.ham_row``'s cost at w = 1).

``ham_curv`` is h''(p) for p != 0 of every kind: Power (q - 1) |p|^(q - 2) (unbounded at 0 when q < 2: the
scheme's h' is only Hoelder there, so Newton's quadratic rate needs gradients away from 0 on the edges
that carry mass), BoundedControl 1 inside |p| < a_max and 0 outside, the table of a Separable h the slope
of its piecewise-linear h' on p's segment (exactly the derivative of the h' the kernels interpolate)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..fd import kernels
from ..fd.kernels import HAM_BOUNDED, HAM_POWER, HAM_TABLE, HAM_WEIGHTED


POWER_SECANT = 1e-4


@njit(cache=True, error_model="numpy")
def ham_curv(p, hk, hp, wi):
    """h''(p) of the one-axis Hamiltonian of kind hk (parameters hp, node weight wi), p != 0: the derivative
    of the upwind coefficient h'(p) of ``kernels.ham_side`` (0 at p = 0, where no edge uses it)."""
    if hk == HAM_POWER:
        a = abs(p)
        if a == 0.0:
            return 0.0
        q = hp[0]
        if a < hp[1]:  # the linear continuation below delta (``model.hamiltonians.Power``)
            return hp[1] ** (q - 2.0)
        if a < POWER_SECANT:  # near a flat edge: the secant slope h'(p) / p (below)
            return a ** (q - 2.0)
        return (q - 1.0) * a ** (q - 2.0)
    if hk == HAM_BOUNDED:
        return 1.0 if abs(p) < hp[0] else 0.0
    if hk == HAM_WEIGHTED:
        return wi
    if hk == HAM_TABLE:  # the slope of the linear interpolant of h' on p's segment (``kernels.ham_side``)
        N = int(hp[2])
        mid = (N - 1) // 2
        j = int(np.floor(p * hp[1] + mid))
        if j < 0:
            j = 0
        elif j > N - 2:
            j = N - 2
        return (hp[4 + j] - hp[3 + j]) * hp[1]
    return 1.0


@njit(cache=True, error_model="numpy", inline="always")
def edge_weight(ds, mu_i, mu_ip, w_i, w_ip, scale, inv_h, hk, hp):
    """E of one edge (i, i+1) with g_{i+1} - g_i = ds (module docstring; scale = dt / h^2, node weights
    w_i, w_ip: congestion, 1 otherwise)."""
    if ds < 0.0:
        return scale * mu_i * ham_curv(ds * inv_h, hk, hp, w_i)
    if ds > 0.0:
        return scale * mu_ip * ham_curv(ds * inv_h, hk, hp, w_ip)
    return 0.0


@njit(cache=True, error_model="numpy")
def line_edge_weights(uu, m, W, dt, h, periodic, hk, hp, E):
    """E (levels, N) of the 1-D system: edge (i, i+1) of every level (the last one wraps on a periodic line,
    0 at a wall); W (levels, N) the congestion weights (read only for HAM_WEIGHTED)."""
    L, N = uu.shape
    scale = dt / (h * h)
    inv_h = 1.0 / h
    weighted = hk == HAM_WEIGHTED
    for n in range(L):
        for i in range(N):
            ip = i + 1
            if ip == N:
                if not periodic:
                    E[n, i] = 0.0
                    continue
                ip = 0
            wi = W[n, i] if weighted else 1.0
            wp = W[n, ip] if weighted else 1.0
            E[n, i] = edge_weight(uu[n, ip] - uu[n, i], m[n, i], m[n, ip], wi, wp, scale, inv_h, hk, hp)


@njit(cache=True, error_model="numpy")
def split_hessian_apply(U, Mu, op, X, Y):
    """Y[n,k] = Hs_k X[n,k] for the split chain (``system_split``): the graph Laplacian along axis k with the
    edge weights of ``edge_weight`` at s = U[n,k], mu = Mu[n+1,k] and the congestion weights of step n."""
    Nt = X.shape[0]
    ndim = op.ndim
    hk = op.hkind
    hp = kernels.ham_params(op)
    weighted = hk == HAM_WEIGHTED
    for n in range(Nt):
        hn = n if op.hw.shape[0] > 1 else 0
        for k in range(ndim):
            A, N, B = kernels._split(X[n, k].shape, k)
            s3 = U[n, k].reshape((A, N, B))
            m3 = Mu[n + 1, k].reshape((A, N, B))
            x3 = X[n, k].reshape((A, N, B))
            y3 = Y[n, k].reshape((A, N, B))
            w3 = op.hw[hn].reshape((A, N, B)) if weighted else s3
            hk_ = op.h[k]
            scale = op.dt / (hk_ * hk_)
            inv_h = 1.0 / hk_
            y3[:, :, :] = 0.0
            n_edges = N if op.periodic[k] else N - 1
            for a in range(A):
                for i in range(n_edges):
                    ip = i + 1 if i + 1 < N else 0
                    for b in range(B):
                        wi = w3[a, i, b] if weighted else 1.0
                        wp = w3[a, ip, b] if weighted else 1.0
                        e = edge_weight(s3[a, ip, b] - s3[a, i, b], m3[a, i, b], m3[a, ip, b], wi, wp, scale, inv_h,
                                        hk, hp)
                        g = e * (x3[a, i, b] - x3[a, ip, b])
                        y3[a, i, b] += g
                        y3[a, ip, b] -= g
