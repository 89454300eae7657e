"""Solves with a bordered sparse matrix B = [S b; c^T 0] whose block S may be singular (rank n - 1): the
stationary FP matrix A^T with its mass row (``newton.stationary``), and B^T, the ergodic HJB matrix with its
normalisation row.

A direct LU of B itself is slow: SuperLU's orderings see the dense border row and column (measured on the
201 x 201 stationary FP matrix: COLAMD 0.77 s, MMD on A^T + A 1.0 s).  Instead S is made regular by a
"pin" at one node j, P = S + d e_j e_j^T (d = |S_jj|), P is factored with the minimum-degree ordering of
P^T + P (0.16 s on the same matrix: the 5-point pattern is symmetric), and B is recovered exactly by two
identities:

* the bordering of the regular P, M0 = [P b; c^T 0]:  x = P^-1 r - s z, s = (c^T P^-1 r - t) / gamma,
  z = P^-1 b, gamma = c^T z;
* Sherman-Morrison for the pin, B = M0 - d f f^T with f = [e_j; 0]:  B^-1 v = y + w d y_j / (1 - d w_j),
  y = M0^-1 v, w = M0^-1 f.

Each solve with B (or B^T, through P^T) costs one LU solve.  For the stationary FP matrix S = A^T (A the
generator of an irreducible chain) P^T = A + d e_j e_j^T is a non-singular M-matrix, so P^-1 >= 0 and
gamma = c^T P^-1 b > 0 for positive b, c; the pin should sit where the null vector of S is large (P is then
well conditioned): the caller passes j (the stationary solver: the minimum of u, where the density of the
optimal feedback peaks)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .system_1d import _dot

ORDERING = "MMD_AT_PLUS_A"


class BorderedLU:
    """B = [S b; c^T 0] (S sparse n x n, b and c vectors of length n), pinned at node ``pin`` (module
    docstring).  ``solve(v, trans="N")`` returns B^-1 v, ``trans="T"`` B^-T v; v has length n + 1."""

    def __init__(self, S, b, c, pin: int):
        S = sp.csc_matrix(S)
        n = S.shape[0]
        self.n = n
        self.b = np.asarray(b, dtype=float)
        self.c = np.asarray(c, dtype=float)
        self.j = int(pin)
        d = abs(float(S[self.j, self.j]))
        self.d = d if d > 0 else 1.0
        P = S + sp.csc_matrix(([self.d], ([self.j], [self.j])), shape=(n, n))
        self.lu = spla.splu(P.tocsc(), permc_spec=ORDERING)
        self._parts = {}

    def _setup(self, trans: str):
        """(z, gamma, w, 1 - d w_j) of one orientation: N for B, T for B^T (P^T, b and c swapped)."""
        if trans not in self._parts:
            b, c = (self.b, self.c) if trans == "N" else (self.c, self.b)
            z = self.lu.solve(b, trans=trans)
            gamma = float(_dot(c, z))
            f = np.zeros(self.n + 1)
            f[self.j] = 1.0
            parts = (z, gamma, None, None)
            self._parts[trans] = parts
            w = self._bordered(f, trans)
            self._parts[trans] = (z, gamma, w, 1.0 - self.d * w[self.j])
        return self._parts[trans]

    def _bordered(self, v, trans):
        """M0^-1 v (or M0^-T v): the bordered solve with the regular P."""
        z, gamma, _w, _den = self._parts[trans]
        c = self.c if trans == "N" else self.b
        x0 = self.lu.solve(np.ascontiguousarray(v[:self.n]), trans=trans)
        # a compiled dot: a multithreaded BLAS dot of one grid vector cost 5-8 ms per call on a busy 2-core
        # machine (threads waking after the LU solve), more than the LU solve itself
        s = (float(_dot(c, x0)) - float(v[self.n])) / gamma
        return np.append(x0 - s * z, s)

    def solve(self, v, trans: str = "N") -> np.ndarray:
        if trans not in ("N", "T"):
            raise ValueError(f"trans = {trans!r}: 'N' (solve with B) or 'T' (with B^T)")
        _z, _gamma, w, den = self._setup(trans)
        y = self._bordered(np.asarray(v, dtype=float), trans)
        return y + w * (self.d * y[self.j] / den)
