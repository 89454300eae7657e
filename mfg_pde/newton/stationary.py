"""Newton's method for stationary (discounted or ergodic) MFGs on 1-D and 2-D grids, with any Hamiltonian of
``model.hamiltonians`` (the congestion one included), K types with Poisson switching, and (discounted) exit sides
with an entry source (``model.stationary.StationaryProblem``; docs/method.md, section 'Stationary problems').

Discretisation.  The generator of an agent of type k that follows the Engquist-Osher upwind policy of u_k is
L(u_k) = sum_a (M_a(u_k) - I), where M_a is the implicit factor of axis a of the time-dependent HJB step with
dt = 1 (``fd.kernels.axis_coefficients``: the same stencil and rows for every kernel Hamiltonian, reflecting
mirror walls, periodic wrap or exit ghosts; nothing is re-derived here), and the Engquist-Osher cost is
c(u_k) = sum_a c_a(u_k) (``fd.kernels.axis_source``), so that L(u) u - c(u) = -nu Lap_h u + H_EO(D u).  With
the switching matrix Q (K x K) the generator of the pair (position, type) is A(u) = blockdiag_k L(u_k) - Q (x) I,
and the discrete system is

    R_H = rho u + A(u) u - c(u) - f(m) [+ lambda 1] = 0                      (K N equations)
    R_F = A(u)^T m + mu 1 = 0                                                 (K N equations)
    vol sum m - 1 = 0                      [ergodic: and  vol sum u = 0]

with f_k = V_k + F(x, sum_j m_j) and vol the cell volume.  Because the rows of A sum to 0, 1^T A^T m = 0 for
every m, so summing R_F gives K N mu = 0: the auxiliary unknown mu is 0 at every solution and only makes the
square system regular (one FP equation is redundant; the mass row replaces it).  The FP matrix is therefore
exactly A(u)^T, the transpose of the HJB matrix without its discount term, and m is its null vector normalised
to mass 1.  It is positive: A(u) is the generator of an irreducible Markov chain (off-diagonals <= 0 in A, rows
summing to 0, neighbours connected by the diffusion nu/h^2 > 0, types by an irreducible Q), so by
Perron-Frobenius the null space of A^T is spanned by one positive vector.

Exits (open problems, rho > 0).  Exit rows carry the exit rate r >= 0 on the diagonal (row sums r) and r g in
the cost: A is a non-singular M-matrix and R_F = A(u)^T m - S with the entry rate S; there is no mu and no mass
row, m = A^-T S >= 0, and the outflow vol r^T m equals the inflow vol 1^T S.

Newton.  By the Engquist-Osher identity d/du [A(u) u - c(u)] = A(u), the Jacobian of R_H in u is
rho I + A(u); the Jacobian of R_F in m is A(u)^T, in u the graph Laplacian Hs of the grid edges with the
weights of ``ham_terms.edge_weight`` (h'' of the Hamiltonian).  The step is solved by block elimination
(``StationarySystem.schur_direction``: LUs of the grid-sized bordered matrices, ``bordered.BorderedLU``, and
GMRES on the coupling) or, with linear_solver="lu", by one LU of the whole Jacobian; then the density is
projected onto the normalised null vector of A(u_new)^T (so every iterate has m >= 0, mass 1 and R_F = 0 to
round-off) and the step backtracks on max |R_H| (Armijo).  Near the solution the projection moves m by
O(|delta|^2), so the convergence stays quadratic.

Congestion.  With H = |p|^2 w(M) / 2, w = (c0 + c M)^(-alpha) and M = sum_k m_k the total density (the one F
sees), every row i of A and c takes the node weight w(M_i) (``weights``): A = A(u, m), and the Jacobian gains
d R_H / dm and d R_F / dm (``congestion_terms``).  The density of u_new then solves the nonlinear FP equations
A(u_new, m)^T m = 0 (``congested_density``: Newton for fixed u, each step projected onto the null vector at its
predicted weights, so m >= 0 and mass 1 hold exactly and R_F is driven to round-off), and the line search and
the stopping test use max(R_H, R_F) (relative).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numba import njit

from .. import io
from ..fd import kernels
from ..fd.operator import KernelData, exit_faces, pad3
from ..model.grid import BC_PERIODIC, Grid
from ..model.hamiltonians import Hamiltonian, from_description
from ..model.stationary import StationaryProblem
from . import ham_terms
from .bordered import ORDERING as BORDER_ORDERING
from .bordered import BorderedLU
from .derivatives import coupling_derivative
from .krylov import gmres

_LOG = logging.getLogger("mfg_pde")

__all__ = ["StationarySystem", "StationaryResult", "solve_stationary", "load_stationary"]


@njit(cache=True, error_model="numpy")
def edge_weights(u, m, w, right, valid, inv_h2, inv_h, hk, hp, E):
    """E_i of the edges (i, right_i) along one axis (``ham_terms.edge_weight``: the weights of the graph
    Laplacian d/du [L(u)^T m]; 0 where ``valid`` is False, the wall side of a reflecting axis).  u, m: one
    type's flattened fields; w: the nodes' congestion weights (read only for the congestion Hamiltonian)."""
    for i in range(u.size):
        if valid[i]:
            j = right[i]
            E[i] = ham_terms.edge_weight(u[j] - u[i], m[i], m[j], w[i], w[j], inv_h2, inv_h, hk, hp)
        else:
            E[i] = 0.0


@njit(cache=True, error_model="numpy")
def exit_edge_weights(ds, m_lo, m_hi, w, inv_h2, inv_h, hk, hp, E):
    """E_i of the edges between the wall cells of an exit side and their ghosts (``ham_terms.edge_weight`` with
    the ghost's density 0): ds = u_hi - u_lo along the edge, m_lo / m_hi the densities at its ends, w the wall
    cells' congestion weights (the ghost end carries no density, so its weight is never read)."""
    for i in range(ds.size):
        E[i] = ham_terms.edge_weight(ds[i], m_lo[i], m_hi[i], w[i], w[i], inv_h2, inv_h, hk, hp)


class StationarySystem:
    """The discrete stationary system of one problem (module docstring): generator, residuals, Jacobian and
    the null vector of the FP matrix.  Fields are (K, N) arrays (types x grid nodes, the grid flattened in C
    order)."""

    def __init__(self, problem: StationaryProblem):
        self.problem = problem
        grid = problem.grid
        self.ndim = grid.ndim
        self.shape3 = pad3(grid.shape)
        self.K, self.N = problem.K, grid.size
        self.spacing = np.array(grid.spacing, dtype=float)
        self.vol = float(grid.cell_volume)
        self.periodic = [bool(c == BC_PERIODIC) for c in grid.bc_codes]
        self.rho = float(problem.discount)
        self.ergodic = problem.ergodic
        self.Q = problem.switching
        h3 = np.ones(3)
        h3[:self.ndim] = self.spacing
        per3 = np.zeros(3, dtype=bool)
        per3[:self.ndim] = self.periodic
        ham = problem.hamiltonian
        #: open problem (exit sides, entry source): no mass row, no mu (module docstring, 'Exits')
        self.open = problem.is_open
        self.exit_cost = float(problem.exit_cost)
        faces = exit_faces(grid, np.full((self.ndim, 2), self.exit_cost)) if self.open else None
        exits, ghost, labels = (None, None, None) if faces is None else faces[:3]
        # the kernels' operator record with dt = 1: its factor M_k = I + L_k is axis k's generator plus I
        self.kd = KernelData(self.shape3, self.ndim, problem.nu, 1.0, h3, per3,
                             np.zeros((1, self.ndim, 1, 1, 1)), False, exits, ghost, labels,
                             hamiltonian=None if ham.is_quadratic else ham)
        self.axes = [self.kd.axis(k, dt=1.0) for k in range(self.ndim)]
        self.ham = ham
        #: whether H depends on m (congestion): the rows of A and the cost then carry the node weights w(M) of the
        #: total density M = sum_k m_k (``weights``), the density the coupling F sees
        self.congested = bool(ham.depends_on_m)
        # neighbours along each axis (wrapped; at a wall the wrapped entry's coefficient is 0) and the edges
        idx = np.arange(self.N).reshape(grid.shape)
        self._left = [np.roll(idx, 1, axis=k).ravel() for k in range(self.ndim)]
        self._right = [np.roll(idx, -1, axis=k).ravel() for k in range(self.ndim)]
        self._edge = []
        for k in range(self.ndim):
            valid = np.ones(grid.shape, dtype=bool)
            if not self.periodic[k]:
                sl = [slice(None)] * self.ndim
                sl[k] = -1
                valid[tuple(sl)] = False
            self._edge.append(valid.ravel())
        KN = self.K * self.N
        # exit sides: the wall cells of each exit side (flattened indices), per axis and side
        self._exit_cells = []
        if self.open:
            for k, j in grid.exit_sides:
                sl = [slice(None)] * self.ndim
                sl[k] = 0 if j == 0 else -1
                self._exit_cells.append((k, j, idx[tuple(sl)].ravel()))
        #: number of unknowns / equations: u, m, [lambda], [mu] (mu and the mass row: closed problems only)
        self.size = 2 * KN + int(not self.open) + int(self.ergodic)

    # ------------------------------------------------------------------ the congestion weights
    def weights(self, m: np.ndarray):
        """The node weights w(M) = 1 / (c0 + c M)^alpha (N,) of the congestion Hamiltonian at the total density
        M = sum_k m_k (``Congestion.weights``; every type moves through the same crowd, the one F(x, M) sees), or
        None when H does not depend on m (the kernels' static weights)."""
        if not self.congested:
            return None
        return np.ascontiguousarray(self.ham.weights(np.asarray(m, dtype=float).sum(axis=0)), dtype=float)

    def axes_at(self, w):
        """The per-axis kernel records with the node weights w (N,) (``weights``); the static ones for None."""
        if w is None:
            return self.axes
        w = np.ascontiguousarray(w, dtype=float)
        op = self.kd.op._replace(hw=w.reshape((1,) + tuple(self.shape3)), hlip=float(w.max()))
        return [self.kd.axis(k, dt=1.0, op=op) for k in range(self.ndim)]

    def node_weights(self, m: np.ndarray) -> np.ndarray:
        """The weights the Hessian's edges read (N,): w(M) with congestion, else the static weight of every
        node (1, or 1 / c0^alpha for a congestion Hamiltonian with c = 0)."""
        w = self.weights(m)
        return np.full(self.N, float(self.kd.op.hw.ravel()[0])) if w is None else w

    # ------------------------------------------------------------------ the stencil (from the kernels)
    def generator(self, u: np.ndarray, w=None):
        """Rows (lo, dg, up) of L(u_k) per type and axis, each (K, ndim, N): L_k = M_k - I with M_k the dt = 1
        factor of axis k (``kernels.axis_coefficients``; diag M_k = 1 - lo - up, so diag L_k = -(lo + up):
        rows sum to 0); w: the congestion node weights (``weights``; None: the static ones)."""
        K, N, d = self.K, self.N, self.ndim
        axes = self.axes_at(w)
        lo = np.empty((K, d) + self.shape3)
        di = np.empty((K, d) + self.shape3)
        up = np.empty((K, d) + self.shape3)
        for t in range(K):
            g = np.ascontiguousarray(u[t], dtype=float).reshape(self.shape3)
            for k in range(d):
                kernels.axis_coefficients(g, g, k, axes[k], lo[t, k], di[t, k], up[t, k])
        lo, up = lo.reshape(K, d, N), up.reshape(K, d, N)
        dg = -(lo + up)
        for k in range(d):   # exit rows: the diagonal carries the exit rate r (kernels module docstring)
            if axes[k].elo or axes[k].ehi:
                dg[:, k] = di[:, k].reshape(K, N) - 1.0
        return lo, dg, up

    def cost(self, u: np.ndarray, w=None) -> np.ndarray:
        """The Engquist-Osher Hamiltonian sum_k c_k(u_t) per type, (K, N): for h = p^2/2
        [min(D+u, 0)^2 + max(D-u, 0)^2] / 2 per axis, in general L(h'(min(D+u, 0))) + L(h'(max(D-u, 0)))
        (``kernels.axis_source``); w: the congestion node weights (``weights``; None: the static ones)."""
        out = np.zeros((self.K, self.N))
        tmp = np.empty(self.shape3)
        axes = self.axes_at(w)
        for t in range(self.K):
            g = np.ascontiguousarray(u[t], dtype=float).reshape(self.shape3)
            for k in range(self.ndim):
                kernels.axis_source(g, g, k, axes[k], tmp)
                out[t] += tmp.ravel()
        return out

    # ------------------------------------------------------------------ residuals
    def residuals(self, u, m, lam=0.0, mu=0.0, A=None) -> dict:
        """R_H (K, N), R_F (K, N), the mass and normalisation residuals, the running cost f and the generator
        matrix A (``generator_matrix``; A(u, m): with congestion its rows carry the weights of m's total
        density, and a given A must be that one)."""
        w = self.weights(m)
        A = self.generator_matrix(u, w=w) if A is None else A
        K, N = self.K, self.N
        f = self.problem.running_cost(m.sum(axis=0))
        RH = self.rho * u + (A @ u.ravel()).reshape(K, N) - self.cost(u, w) - f
        if self.ergodic:
            RH = RH + lam
        RF = (A.T @ m.ravel()).reshape(K, N) + mu
        if self.open:
            RF = RF - self.problem.S
        mass = 0.0 if self.open else self.vol * float(m.sum()) - 1.0
        norm = self.vol * float(u.sum()) if self.ergodic else 0.0
        return {"RH": RH, "RF": RF, "mass": mass, "norm": norm, "f": f, "A": A}

    # ------------------------------------------------------------------ sparse matrices
    def generator_matrix(self, u, rows=None, w=None) -> sp.csr_matrix:
        """A(u) = blockdiag_t L(u_t) - Q (x) I, sparse (K N x K N), L = sum_k L_k: the linearised HJB matrix
        without rho I (w: the congestion node weights, ``weights``; rows: ``generator``'s, if at hand)."""
        lo, dg, up = self.generator(u, w) if rows is None else rows
        K, N = self.K, self.N
        r, c, v = [], [], []
        for t in range(K):
            base = t * N
            node = base + np.arange(N)
            r.append(node)
            c.append(node)
            v.append(dg[t].sum(axis=0))
            for k in range(self.ndim):
                r += [node, node]
                c += [base + self._left[k], base + self._right[k]]
                v += [lo[t, k], up[t, k]]
        for t in range(K):
            for j in range(K):
                if self.Q[t, j] != 0.0:
                    r.append(t * N + np.arange(N))
                    c.append(j * N + np.arange(N))
                    v.append(np.full(N, -self.Q[t, j]))
        A = sp.coo_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))), shape=(K * N, K * N)).tocsr()
        A.sum_duplicates()
        A.eliminate_zeros()
        return A

    def density(self, u, A=None, with_lu: bool = False):
        """The normalised null vector m of A(u)^T (mass vol sum m = 1, rescaled after the solve), (K, N), and
        the bordered solve's mu (0 up to round-off): B_F [m; mu] = [0; 1] with the bordered FP matrix
        B_F = [A^T 1; vol 1^T 0], by ``bordered.BorderedLU`` pinned at the minimum of u (where the density
        peaks) (``with_lu``: that factorisation too, the Newton step reuses it).  With congestion A's weights
        are the caller's (a predicted density's: ``congested_density``); m is then the null vector of that A."""
        A = self.generator_matrix(u) if A is None else A
        KN = self.K * self.N
        if self.open:   # m = A^-T S (A a non-singular M-matrix: m >= 0)
            lu = spla.splu(A.T.tocsc(), permc_spec=BORDER_ORDERING)
            m = np.maximum(lu.solve(self.problem.S.ravel()).reshape(self.K, self.N), 0.0)
            return (m, 0.0, lu) if with_lu else (m, 0.0)
        lu = BorderedLU(A.T, np.ones(KN), np.full(KN, self.vol), pin=int(np.argmin(u)))
        rhs = np.zeros(KN + 1)
        rhs[-1] = 1.0
        x = lu.solve(rhs)
        m = x[:KN].reshape(self.K, self.N)
        # entries the LU leaves at round-off below 0 (far tails, where the exact value is below the solve's
        # round-off) are set to 0, then the mass is restored to 1 (both are round-off changes)
        m = np.maximum(m, 0.0)
        m, mu = m / (self.vol * m.sum()), float(x[-1])
        return (m, mu, lu) if with_lu else (m, mu)

    #: GMRES iterations of one Schur step before the whole-Jacobian LU takes over (``schur_direction``)
    gmres_maxiter = 100

    #: column ordering of the whole-Jacobian LU (scipy's SuperLU: COLAMD, the fastest of its orderings on the
    #: 2-D Jacobian with its dense border rows; the N-sized matrices of the Schur step use ``bordered``'s)
    ordering = "COLAMD"

    def hessian_triplets(self, u, m):
        """COO triplets (rows, cols, values) of d/du [A(u)^T m] (K N x K N): per type and axis the graph
        Laplacian of the edges with the weights of ``edge_weights`` (h'' = w(M) at the edge's upwind node
        with congestion)."""
        hk, hp = self.axes[0].hkind, kernels.ham_params(self.axes[0])
        W = self.node_weights(m)
        r, c, v = [], [], []
        E = np.empty(self.N)
        for t in range(self.K):
            ut = np.ascontiguousarray(u[t], dtype=float)
            mt = np.ascontiguousarray(m[t], dtype=float)
            base = t * self.N
            node = base + np.arange(self.N)
            for k in range(self.ndim):
                h = float(self.spacing[k])
                edge_weights(ut, mt, W, self._right[k], self._edge[k], 1.0 / (h * h), 1.0 / h, hk, hp, E)
                right = base + self._right[k]
                # (Hs x)_i += E (x_i - x_j), (Hs x)_j += E (x_j - x_i) for the edge (i, j = right_i)
                r += [node, node, right, right]
                c += [node, right, right, node]
                v += [E, -E, E, -E]
                E = np.empty(self.N)
            for k, j, cells in self._exit_cells:
                # the exit rate r of a wall cell depends on its u through the edge to the ghost (value g,
                # density 0): d/du_i (r_i m_i) = the weight of that edge, on the diagonal only
                h = float(self.spacing[k])
                ui, mi = ut[cells], mt[cells]
                ds = ui - self.exit_cost if j == 0 else self.exit_cost - ui
                zero = np.zeros_like(mi)
                Ex = np.empty(cells.size)
                exit_edge_weights(ds, zero if j == 0 else mi, mi if j == 0 else zero, W[cells], 1.0 / (h * h),
                                  1.0 / h, hk, hp, Ex)
                r.append(base + cells)
                c.append(base + cells)
                v.append(Ex)
        return np.concatenate(r), np.concatenate(c), np.concatenate(v)

    def congestion_terms(self, u, m, hjb: bool = True):
        """The m-derivatives of the rows for the congestion Hamiltonian h = w(M) p^2 / 2, M = sum_k m_k (None
        when H does not depend on m).  Row i of A(u) and of the cost c(u) is linear in its node's weight w_i
        (``kernels.ham_row``), so with dA = A(u; w = 1) - A(u; w = 0) and dc = c(u; 1) - c(u; 0) (the kernels'
        rows at unit and zero weights, exit rows included) and w' = ``Congestion.dweights``:

            d R_H[k, i] / d m[j, i] = g_H[k, i] = w'(M_i) [dA u - dc]_{k, i}      (w' times the unit-weight
                                                                                 Engquist-Osher Hamiltonian)
            d R_F / d m[j]          = C = dA^T diag(s),   s[k, i] = w'(M_i) m[k, i]

        for every type j (each type's rows see the total density).  Returns (g_H (K, N), C (K N x K N, csr)):
        the blocks act on the change of M tiled over the types (``tile_total``); g_H is None when ``hjb`` is
        False (the FP rows' block alone, ``congested_density``)."""
        if not self.congested:
            return None
        K, N = self.K, self.N
        ones, zeros = np.ones(N), np.zeros(N)
        A1 = self.generator_matrix(u, w=ones)
        A0 = self.generator_matrix(u, w=zeros)
        dA = (A1 - A0).tocsr()
        M = np.asarray(m, dtype=float).sum(axis=0)
        dw = np.asarray(self.ham.dweights(M), dtype=float)
        gH = None
        if hjb:
            gH = dw[None] * ((dA @ u.ravel()).reshape(K, N) - (self.cost(u, ones) - self.cost(u, zeros)))
        s = (dw[None] * m).ravel()
        C = (dA.T @ sp.diags(s)).tocsr()
        return gH, C

    #: the relative FP residual (``fp_scale``) the congested density is solved to, and the most steps it takes
    density_tol = 1e-13
    density_maxit = 12

    def fp_scale(self, A, m) -> float:
        """The FP residual's scale, max |diag(A) m| (the largest outflow of a node)."""
        return max(float(np.abs(A.diagonal() * np.asarray(m).ravel()).max()), 1e-300)

    def congested_density(self, u, m_pred):
        """With congestion, the density of u: m >= 0 with A(u, m)^T m = 0 and mass 1 (open: A(u, m)^T m = S),
        solved for fixed u by Newton on the FP equations, each step followed by the projection onto the null
        vector at the weights of the step's prediction (``density``):

            [A^T + C T, 1; vol 1^T, 0] [dm; dmu] = -[R_F; 0],      m <- null vector of A(u, m + dm)^T

        (C T: ``congestion_terms``), starting from the null vector at the weights of m_pred.  The step is solved
        by GMRES preconditioned with the LU of the projection's own FP matrix (B_F at the predicted weights,
        close to A(u, m)^T: ``density`` factors it anyway), so a step costs one sparse LU.  Every iterate has
        m >= 0 and mass 1; near the fixed point the projection moves m by O(|dm|^2), so the steps converge
        quadratically.  Stops when max |R_F| / ``fp_scale`` <= ``density_tol`` or after ``density_maxit``
        steps (the caller's merit then sees R_F).  Returns (m, A(u, m), the number of steps)."""
        K, N = self.K, self.N
        KN = K * N
        tail = 0 if self.open else 1   # dmu travels with dm in a closed problem
        for it in range(self.density_maxit + 1):
            m, _mu, lu = self.density(u, self.generator_matrix(u, w=self.weights(m_pred)), with_lu=True)
            A = self.generator_matrix(u, w=self.weights(m))
            RF = A.T @ m.ravel() - (self.problem.S.ravel() if self.open else 0.0)
            if not np.all(np.isfinite(RF)) or it == self.density_maxit or \
                    float(np.abs(RF).max()) <= self.density_tol * self.fp_scale(A, m):
                return m, A, it
            AT, C = A.T.tocsr(), self.congestion_terms(u, m, hjb=False)[1]

            def op(x, AT=AT, C=C, lu=lu):
                """B_p^-1 [A^T + C T, 1; vol 1^T, 0] x (B_p: the projection's bordered FP matrix)."""
                dm = x[:KN]
                y = AT @ dm + C @ self.tile_total(dm)
                if not tail:
                    return lu.solve(y)
                return lu.solve(np.append(y + x[KN], self.vol * dm.sum()))

            rhs = lu.solve(-RF) if not tail else lu.solve(np.append(-RF, 0.0))
            x, its = gmres(op, rhs, rtol=1e-12, maxiter=self.gmres_maxiter)
            if its >= self.gmres_maxiter:
                return m, A, it
            m_pred = m + x[:KN].reshape(K, N)
        return m, A, it

    def tile_total(self, x: np.ndarray) -> np.ndarray:
        """The total over the types of x (K N,), repeated for every type (K N,): T x with T = 1 1^T (x) I."""
        K, N = self.K, self.N
        return np.tile(x.reshape(K, N).sum(axis=0), K)

    def jacobian(self, u, m, A=None) -> sp.csc_matrix:
        """The sparse Jacobian of (R_H, R_F, mass[, normalisation]) with respect to (u, m[, lambda], mu), in
        that order (module docstring)."""
        J, U, W = self.jacobian_parts(u, m, A)
        return (J + sp.csc_matrix(U @ W.T)).tocsc() if U.shape[1] else J

    def jacobian_parts(self, u, m, A=None, congestion: bool = True):
        """(J0, U, W) with Jacobian = J0 + U W^T: J0 sparse, U W^T the low-rank part of -dF/dm (a coupling
        through the mean: one rank-one term per axis, for all type pairs at once), kept apart so that the
        Newton solve factors only the sparse J0 (Woodbury).  A: A(u, m) if at hand.  With congestion J0 holds
        the m-derivatives of the rows (``congestion_terms``) unless ``congestion`` is False (the duality check
        compares the generator blocks alone)."""
        K, N = self.K, self.N
        KN = K * N
        A = self.generator_matrix(u, w=self.weights(m)) if A is None else A
        n_lam = int(self.ergodic)
        i_lam, i_mu = 2 * KN, 2 * KN + n_lam   # (no mu column in an open problem)
        blocks_r, blocks_c, blocks_v = [], [], []
        U_cols, W_cols = [], []

        def put(r, c, v):
            blocks_r.append(np.asarray(r).ravel())
            blocks_c.append(np.asarray(c).ravel())
            blocks_v.append(np.broadcast_to(np.asarray(v, dtype=float), np.shape(r)).ravel())

        # HJB rows: rho I + A(u), -dF/dm (every type sees the total density), lambda
        Ac = A.tocoo()
        put(Ac.row, Ac.col, Ac.data)
        if self.rho:
            put(np.arange(KN), np.arange(KN), np.full(KN, self.rho))
        if self.problem.coupling is not None:
            dF = coupling_derivative(self.problem.coupling, self.problem.grid, np.zeros(1),
                                     m.sum(axis=0).reshape(1, N))
            low, dF.lowrank = dF.lowrank, []
            outer, dF.outer = dF.outer, []
            for k in range(K):
                for j in range(K):
                    r_, c_, v_ = dF.coo(k * N, KN + j * N, -1.0)
                    for a, b, c in zip(r_, c_, v_):
                        put(a, b, c)
            # -coef v w^T on every (type k row, type j column) block: rank one (v = w for lowrank terms)
            for coef, V, Wv in [(c, V, V) for c, V in low] + list(outer):
                Uc = np.zeros(self.size)
                Wc = np.zeros(self.size)
                Uc[:KN] = np.tile(-float(coef[0]) * V[0], K)
                Wc[KN:2 * KN] = np.tile(Wv[0], K)
                U_cols.append(Uc)
                W_cols.append(Wc)
        if self.ergodic:
            put(np.arange(KN), np.full(KN, i_lam), np.ones(KN))
        # FP rows: A(u)^T on m, the Hessian of u -> A(u)^T m on u, mu
        put(KN + Ac.col, KN + Ac.row, Ac.data)
        hr, hc, hv = self.hessian_triplets(u, m)
        put(KN + hr, hc, hv)
        cong = self.congestion_terms(u, m) if congestion else None
        if cong is not None:   # the rows' weights w(sum_j m_j): every type's m columns (``congestion_terms``)
            gH, C = cong
            Cc = C.tocoo()
            for j in range(K):
                put(np.arange(KN), KN + j * N + np.tile(np.arange(N), K), gH.ravel())
                put(KN + Cc.row, KN + j * N + Cc.col % N, Cc.data)
        if not self.open:
            put(KN + np.arange(KN), np.full(KN, i_mu), np.ones(KN))
            # mass row (on m) and, ergodic, normalisation row (on u)
            put(np.full(KN, i_mu), KN + np.arange(KN), np.full(KN, self.vol))
        if self.ergodic:
            put(np.full(KN, i_lam), np.arange(KN), np.full(KN, self.vol))
        J = sp.coo_matrix((np.concatenate(blocks_v), (np.concatenate(blocks_r), np.concatenate(blocks_c))),
                          shape=(self.size, self.size)).tocsc()
        J.sum_duplicates()
        J.eliminate_zeros()
        U = np.stack(U_cols, axis=1) if U_cols else np.zeros((self.size, 0))
        W = np.stack(W_cols, axis=1) if W_cols else np.zeros((self.size, 0))
        return J, U, W

    def newton_direction(self, u, m, res) -> np.ndarray:
        """The Newton step: (J0 + U W^T) dz = -R by one sparse LU of J0 and the Woodbury formula."""
        J0, U, W = self.jacobian_parts(u, m, res["A"])
        lu = spla.splu(J0, permc_spec=self.ordering)
        y = lu.solve(-self.vector(res))
        if U.shape[1] == 0:
            return y
        Z = lu.solve(U)
        C = np.eye(U.shape[1]) + W.T @ Z
        return y - Z @ np.linalg.solve(C, W.T @ y)

    def schur_direction(self, u, m, res, fp_lu, rtol: float = 1e-13):
        """The Newton step by block elimination (module docstring, 'Linear solves'): with the bordered HJB
        matrix B_H = [rho I + A, 1; vol 1^T, 0] (discounted: rho I + A) and the bordered FP matrix B_F (its LU
        ``fp_lu`` from ``density``), the step solves

            B_H [du; dlam] = -[R_H; norm] + [F' dm; 0],      B_F [dm; dmu] = -[R_F; mass] - [Hs du; 0]

        (F' = dF/dm on the total density, every type's row; Hs = d/du [A(u)^T m]).  Eliminating du leaves
        (I + B_F^-1 Hs B_H^-1 F') [dm; dmu] = b, solved by GMRES (``krylov.gmres``; F' of a coupling through
        the mean has rank ndim, so GMRES ends in ndim + 1 iterations).  Ergodic: B_H is B_F^T up to the scale
        of its border, so one LU serves both.  With congestion (``congestion_terms``) F' becomes F' - g_H T
        and the FP rows gain C T dm (T: ``tile_total``): the operator is I + B_F^-1 (Hs B_H^-1 (F' - g_H T)
        + C T), A = A(u, m) and ``fp_lu`` that of A(u, m).  Returns (dz in the Jacobian's column order, GMRES
        iterations); dz is None when GMRES does not converge in ``gmres_maxiter`` iterations (the caller falls
        back to the whole-Jacobian LU: h'' unbounded near p = 0, Power with q < 2, makes the product
        ill-conditioned)."""
        K, N = self.K, self.N
        KN = K * N
        vol = self.vol
        if self.ergodic:
            def solve_h(r, r_norm):
                x = fp_lu.solve(np.append(r, r_norm / vol), trans="T")
                return x[:KN], vol * x[KN]
        else:
            hlu = spla.splu((res["A"] + self.rho * sp.identity(KN, format="csr")).tocsc(), permc_spec=BORDER_ORDERING)

            def solve_h(r, r_norm):
                return hlu.solve(r), 0.0

        def solve_f(r, r_mass):
            if self.open:   # fp_lu: the LU of A^T itself
                return fp_lu.solve(r), 0.0
            x = fp_lu.solve(np.append(r, r_mass))
            return x[:KN], x[KN]

        hr, hc, hv = self.hessian_triplets(u, m)
        Hs = sp.coo_matrix((hv, (hr, hc)), shape=(KN, KN)).tocsr()
        du, dlam = solve_h(-res["RH"].ravel(), -res["norm"])
        dm, dmu = solve_f(-res["RF"].ravel() - Hs @ du, -res["mass"])
        its = 0
        cong = self.congestion_terms(u, m)
        if self.problem.coupling is not None or cong is not None:
            dF = None if self.problem.coupling is None else \
                coupling_derivative(self.problem.coupling, self.problem.grid, np.zeros(1), m.sum(axis=0).reshape(1, N))

            def coupled(x):
                """(F' - g_H T) x: F' of the total density of x (KN,) on every type's rows, less the congestion
                weights' share (``congestion_terms``)."""
                tot = self.tile_total(x)
                out = np.zeros(KN) if dF is None else np.tile(dF.matvec(tot[:N][None])[0], K)
                return out if cong is None else out - cong[0].ravel() * tot

            def fp_coupled(x):
                """C T x: the FP rows' change through the congestion weights (0 without congestion)."""
                return 0.0 if cong is None else cong[1] @ self.tile_total(x)

            tail = 0 if self.open else 1   # dmu travels with dm in a closed problem

            def op(x):
                du1, _ = solve_h(coupled(x[:KN]), 0.0)
                dm1, dmu1 = solve_f(Hs @ du1 + fp_coupled(x[:KN]), 0.0)
                return x + (np.append(dm1, dmu1) if tail else dm1)

            x, its = gmres(op, np.append(dm, dmu) if tail else dm, rtol=rtol, maxiter=self.gmres_maxiter)
            if its >= self.gmres_maxiter:
                return None, its
            dm, dmu = x[:KN], (x[KN] if tail else 0.0)
            du1, dlam1 = solve_h(coupled(dm), 0.0)
            du, dlam = du + du1, dlam + dlam1
        parts = [du, dm] + ([[dlam]] if self.ergodic else []) + ([] if self.open else [[dmu]])
        return np.concatenate(parts), its

    def vector(self, res: dict) -> np.ndarray:
        """The residual vector in the Jacobian's row order."""
        parts = [res["RH"].ravel(), res["RF"].ravel()]
        if self.ergodic:
            parts.append([res["norm"]])
        if not self.open:
            parts.append([res["mass"]])
        return np.concatenate(parts)


@dataclass
class StationaryResult:
    """The solution of a stationary MFG (``solve_stationary``).

    u, m : (N,) for one type, (K, N) with K types.  lam : the ergodic constant lambda (None when discounted).
    residuals : the final max-norm residuals: "hjb" (max |R_H| / scale), "fp" (max |A^T m| / scale), "mass"
        (|h sum m - 1|), "normalisation" (|h sum u|, ergodic), "duality" (||A_FP - A_HJB^T||_max, exactly 0).
    history : per Newton iteration: "hjb", "fp" residuals, "step" (line-search fraction), "time" (s).
    hamiltonian : the problem's Hamiltonian (Quadratic by default; a result file keeps its description and
        ``load_stationary`` rebuilds it, ``model.hamiltonians.from_description``).
    """

    grid: Grid
    u: np.ndarray
    m: np.ndarray
    lam: float | None
    discount: float
    sigma: float
    converged: bool
    status: str
    iterations: int
    residuals: dict
    history: dict
    wall_time: float = 0.0
    switching: np.ndarray | None = None
    solver: dict = field(default_factory=dict)
    problem: StationaryProblem | None = None
    case: str | None = None
    params: dict = field(default_factory=dict)
    case_report: object = None
    hamiltonian: Hamiltonian | None = None

    @property
    def ergodic(self) -> bool:
        return self.lam is not None

    @property
    def types(self) -> int:
        return 1 if self.u.ndim == self.grid.ndim else self.u.shape[0]

    @property
    def final_residual(self) -> float:
        return float(self.residuals.get("hjb", np.nan))

    def total_density(self) -> np.ndarray:
        return self.m if self.types == 1 else self.m.sum(axis=0)

    def mass(self) -> float:
        return float(self.grid.integrate(self.total_density()))

    def mass_error(self) -> float:
        return abs(self.mass() - 1.0)

    def mean(self):
        """The mean of the total density: a float in 1-D, an (ndim,) array in 2-D."""
        mean = self.grid.mean(self.total_density())
        return float(mean[0]) if self.grid.ndim == 1 else mean

    def alpha(self) -> np.ndarray:
        """The feedback -dH/dp(grad u[, m]) (centred differences, mirror walls; -grad u for the quadratic H; with
        congestion at the total density): the shape of u in 1-D, with a trailing axis of the ndim components in
        2-D."""
        from ..result import gradient

        p = gradient(self.grid, self.u)
        ham = self.hamiltonian
        if ham is not None and not ham.is_quadratic:
            p = ham.dH(p, self.total_density()[..., None]) if ham.depends_on_m else ham.dH(p)
        g = -p
        return g[..., 0] if self.grid.ndim == 1 else g

    def summary(self) -> str:
        kind = f"ergodic, lambda = {self.lam:.10g}" if self.ergodic else f"discounted, rho = {self.discount:g}"
        types = f", {self.types} types" if self.types > 1 else ""
        if "balance" in self.residuals:   # an open problem: the mass is what inflow and exits make it
            mass = f"mass {self.mass():.4g}, outflow - inflow {self.residuals['balance']:.2e} (relative)"
        else:
            mass = f"mass error {self.mass_error():.2e}"
        return (f"{'converged' if self.converged else 'NOT converged'}: {self.iterations} Newton iterations "
                f"({self.status}); {kind}{types}; HJB residual {self.residuals.get('hjb', np.nan):.2e}, FP residual "
                f"{self.residuals.get('fp', np.nan):.2e}, {mass}, min m "
                f"{float(self.m.min()):.2e}; grid {self.grid.size}, wall time {self.wall_time:.3f} s")

    def __repr__(self) -> str:
        return f"<StationaryResult {self.summary()}>"

    def save(self, path) -> None:
        save_stationary(self, path)


LINEAR_SOLVERS = ("schur", "lu")


def solve_stationary(problem: StationaryProblem, tol: float = 1e-10, max_iter: int = 50, u_init=None,
                     progress: bool = False, linear_solver: str = "schur", **_ignored) -> StationaryResult:
    """Solve a stationary MFG by Newton's method on (u, m[, lambda]) (module docstring).

    tol : stop when max |R_H| <= tol * scale (scale = max(1, max |V + F|)); the FP residual is round-off by
        construction.  max_iter : Newton iterations.  u_init : a start for u (the grid's shape, (N,), or per
        type (K, ...)); default 0.  linear_solver : "schur" (default: block elimination, LUs of the N-sized
        bordered HJB / FP matrices and GMRES on the coupling, ``StationarySystem.schur_direction``) or "lu"
        (one sparse LU of the whole Jacobian, ``StationarySystem.newton_direction``; slower in 2-D).
    Returns a ``StationaryResult``; ``converged`` False with the reason in ``status`` when the iteration fails."""
    if not isinstance(problem, StationaryProblem):
        raise TypeError(f"solve_stationary needs a mfg_pde.StationaryProblem, got {type(problem).__name__}")
    if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol = {tol!r}: the tolerance must be a number > 0, e.g. tol=1e-10")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter = {max_iter!r}: the number of Newton iterations must be an integer >= 1")
    if linear_solver not in LINEAR_SOLVERS:
        raise ValueError(f"linear_solver = {linear_solver!r}: choose one of {', '.join(LINEAR_SOLVERS)}")
    log = _LOG.info if progress else _LOG.debug
    t0 = time.perf_counter()
    sysm = StationarySystem(problem)
    K, N = sysm.K, sysm.N
    if u_init is None:
        u = np.zeros((K, N))
    else:
        u = np.array(np.broadcast_to(np.asarray(u_init, dtype=float).reshape(-1, N), (K, N)))
    lam = 0.0

    def project(u_t, m_pred):
        """(m, A(u_t, m), the bordered LU of the FP matrix or None): m the density of u_t (``density``).  With
        congestion m solves the FP equations of u_t with the weights of m itself (``congested_density``, from
        the predicted density m_pred = m + step dm of the Newton step); the LU of its A is left to the next
        step (None)."""
        if not sysm.congested:
            A_t = sysm.generator_matrix(u_t)
            m_t, _mu, lu_t = sysm.density(u_t, A_t, with_lu=True)
            return m_t, A_t, lu_t
        m_t, A_t, steps = sysm.congested_density(u_t, m_pred)
        hist["density_steps"].append(steps)
        return m_t, A_t, None

    # congestion: the first weights are those of the uniform density of mass 1 (closed) or of m = 0 (open)
    m_guess = np.full((K, N), 0.0 if sysm.open else 1.0 / (K * N * sysm.vol))
    hist = {"hjb": [], "fp": [], "step": [], "time": [], "gmres": [], "density_steps": []}
    m, A, fp_lu = project(u, m_guess)
    res = sysm.residuals(u, m, lam, A=A)

    def measure(res, m):
        """(HJB residual, FP residual), each relative: R_H to max(1, max |f|) (the normalisation residual
        vol sum u as a mean of u), R_F to max |diag(A) m|."""
        scale = max(1.0, float(np.abs(res["f"]).max()))
        hjb = max(float(np.abs(res["RH"]).max()), abs(res["norm"]) / (sysm.vol * N)) / scale
        return hjb, float(np.abs(res["RF"]).max()) / sysm.fp_scale(res["A"], m)

    def merit(hjb, fp):
        """The line search's and the stopping test's measure: the HJB residual (R_F is round-off by the
        projection), with congestion the larger of the two (R_F is solved to ``density_tol``, not round-off by
        construction, ``congested_density``)."""
        return max(hjb, fp) if sysm.congested else hjb

    status, converged, it, fallbacks = "max_iter reached", False, 0, 0
    hjb, fp = measure(res, m)
    for it in range(max_iter + 1):
        hist["hjb"].append(hjb)
        hist["fp"].append(fp)
        hist["time"].append(time.perf_counter() - t0)
        log("stationary Newton %d: HJB residual %.3e, FP residual %.3e", it, hjb, fp)
        if not np.isfinite(merit(hjb, fp)):
            status = "non-finite residual"
            break
        if merit(hjb, fp) <= tol:
            status, converged = "converged", True
            break
        if it == max_iter:
            break
        try:
            dz = None
            if linear_solver == "schur":
                if fp_lu is None:   # congestion: the LU of the bordered FP matrix of A(u, m) (``project``)
                    fp_lu = sysm.density(u, res["A"], with_lu=True)[2]
                dz, its = sysm.schur_direction(u, m, res, fp_lu)
                hist["gmres"].append(its)
                if dz is None:
                    fallbacks += 1
                    log("stationary Newton %d: GMRES did not converge in %d iterations; whole-Jacobian LU", it, its)
            if dz is None:
                dz = sysm.newton_direction(u, m, res)
        except (RuntimeError, np.linalg.LinAlgError) as exc:  # singular factor
            status = f"singular Newton matrix ({exc})"
            break
        KN = K * N
        du = dz[:KN].reshape(K, N)
        dm = dz[KN:2 * KN].reshape(K, N)
        dlam = float(dz[2 * KN]) if sysm.ergodic else 0.0
        step, accepted = 1.0, False
        current = merit(hjb, fp)
        while step >= 1.0 / 2 ** 20:
            u_t = u + step * du
            lam_t = lam + step * dlam
            m_t, A_t, lu_t = project(u_t, m + step * dm)
            if np.all(np.isfinite(m_t)):
                res_t = sysm.residuals(u_t, m_t, lam_t, A=A_t)
                hjb_t, fp_t = measure(res_t, m_t)
                if merit(hjb_t, fp_t) <= (1.0 - 1e-4 * step) * current:
                    accepted = True
                    break
            step *= 0.5
        hist["step"].append(step if accepted else 0.0)
        if not accepted:
            status = "line search failed"
            break
        u, lam, m, res, hjb, fp, fp_lu = u_t, lam_t, m_t, res_t, hjb_t, fp_t, lu_t
    # final diagnostics
    A = res["A"]
    # (the low-rank part is in the HJB rows' m columns only; the congestion blocks are left out: the generator
    # blocks alone are compared)
    J, _U, _W = sysm.jacobian_parts(u, m, A, congestion=False)
    KN = K * N
    # duality: the FP block of the Jacobian is the transpose of the HJB block without its discount rho I
    # (compared as FP + rho I against HJB^T: the diagonal sums in the same order, so the difference is exact)
    hjb_block = J[:KN, :KN]
    fp_block = J[KN:2 * KN, KN:2 * KN] + sysm.rho * sp.identity(KN, format="csc")
    duality = float(abs(fp_block - hjb_block.T).max()) if KN else 0.0
    rate = A @ np.ones(KN)   # row sums: 0, except the exit rate r on the wall cells of exit sides
    residuals = {"hjb": hjb, "fp": fp, "mass": abs(res["mass"]), "duality": duality, "min_m": float(m.min())}
    if sysm.open:
        # outflow vol sum_i r_i m_i = 1^T A^T m vol = inflow vol sum S, exactly up to the FP residual
        inflow = sysm.vol * float(problem.S.sum())
        outflow = sysm.vol * float(rate @ m.ravel())
        residuals.update(inflow=inflow, outflow=outflow, balance=abs(outflow - inflow) / inflow,
                         total_mass=sysm.vol * float(m.sum()))
    else:
        residuals["generator_row_sum"] = float(abs(rate).max())
    if sysm.ergodic:
        residuals["normalisation"] = abs(res["norm"])
    wall = time.perf_counter() - t0
    one = K == 1
    shape = problem.grid.shape
    result = StationaryResult(
        grid=problem.grid, u=u.reshape(shape) if one else u.reshape((K,) + shape),
        m=m.reshape(shape) if one else m.reshape((K,) + shape),
        lam=float(lam) if sysm.ergodic else None, discount=sysm.rho, sigma=problem.sigma, converged=converged,
        status=status, iterations=it, residuals=residuals, history={k: np.asarray(v) for k, v in hist.items()},
        wall_time=wall, switching=None if one else problem.switching.copy(), hamiltonian=problem.hamiltonian,
        solver={"method": "newton", "tol": tol, "max_iter": max_iter,
                "linear_solver": linear_solver, "lu_fallbacks": fallbacks,
                "ordering": sysm.ordering if linear_solver == "lu" else BORDER_ORDERING},
        problem=problem)
    log("stationary: %s", result.summary())
    return result


# ---------------------------------------------------------------------------------- HDF5
def save_stationary(result: StationaryResult, path) -> None:
    """Write a stationary result to HDF5 (atomically, ``io.write_atomic``).  Layout: datasets
    /x, /u, /m (K x N with types), /switching, group /history; attributes kind = "stationary", lambda (NaN when
    discounted), discount, sigma, converged, status, iterations, residuals, solver, case, params, hamiltonian
    (its ``describe()``; JSON), and the /provenance group of every result file (``io``)."""

    def fill(f):
        f.attrs["kind"] = "stationary"
        f.attrs["grid"] = json.dumps(io.json_safe(result.grid.describe()))
        f.attrs["lambda"] = np.nan if result.lam is None else float(result.lam)
        f.attrs["discount"] = float(result.discount)
        f.attrs["sigma"] = float(result.sigma)
        f.attrs["converged"] = bool(result.converged)
        f.attrs["status"] = str(result.status)
        f.attrs["iterations"] = int(result.iterations)
        f.attrs["wall_time"] = float(result.wall_time)
        for key in ("residuals", "solver", "params"):
            f.attrs[key] = json.dumps(io.json_safe(getattr(result, key)))
        f.attrs["case"] = result.case or ""
        if result.hamiltonian is not None:
            f.attrs["hamiltonian"] = json.dumps(io.json_safe(result.hamiltonian.describe()))
        if result.problem is not None:
            f.attrs["problem"] = json.dumps(io.json_safe(result.problem.describe()))
        for name, ax in zip(result.grid.axis_names, result.grid.axes):
            f.create_dataset(name, data=ax).attrs["long_name"] = f"cell centres along {name}"
        f.create_dataset("u", data=result.u).attrs["long_name"] = "value function u (types x cells)"
        f.create_dataset("m", data=result.m).attrs["long_name"] = "stationary density m (types x cells)"
        if result.switching is not None:
            f.create_dataset("switching", data=result.switching)
        g = f.create_group("history")
        for k, v in result.history.items():
            g.create_dataset(k, data=np.asarray(v, dtype=float))
        report = result.case_report
        if report is not None:   # a case's CaseReport: its arrays, errors and (if any) scalars
            g = f.create_group("case_report")
            for k, v in (getattr(report, "arrays", None) or {}).items():
                g.create_dataset(k, data=np.asarray(v))
            g.attrs["errors"] = json.dumps(io.json_safe(getattr(report, "errors", None) or {}))
            g.attrs["scalars"] = json.dumps(io.json_safe(getattr(report, "scalars", None) or {}))
        io._write_provenance(f)

    io.write_atomic(path, fill)


def load_stationary(path) -> StationaryResult:
    """Read a file written by ``StationaryResult.save`` (without the problem object; the Hamiltonian is rebuilt
    from its description, ``model.hamiltonians.from_description``: a Separable one needs importable h and dh)."""
    import h5py

    with h5py.File(path, "r") as f:
        if f.attrs.get("kind") != "stationary":
            raise io.ResultFileError(f"{path}: not a stationary result file (no kind = 'stationary' attribute); "
                                     "read time-dependent results with mfg_pde.load")
        g = json.loads(f.attrs["grid"])
        grid = Grid(g["bounds"], g["shape"], g["bc"])
        lam = float(f.attrs["lambda"])
        hist = {k: np.asarray(v) for k, v in f["history"].items()}
        ham = None
        if "hamiltonian" in f.attrs:
            try:
                ham = from_description(json.loads(f.attrs["hamiltonian"]))
            except ValueError as exc:   # a Separable H of a lambda or closure: only its description is stored
                _LOG.warning("%s: the result's hamiltonian is not rebuilt (%s)", path, exc)
        return StationaryResult(
            grid=grid, u=np.asarray(f["u"]), m=np.asarray(f["m"]), lam=None if np.isnan(lam) else lam,
            discount=float(f.attrs["discount"]), sigma=float(f.attrs["sigma"]), converged=bool(f.attrs["converged"]),
            status=str(f.attrs["status"]), iterations=int(f.attrs["iterations"]),
            residuals=json.loads(f.attrs["residuals"]), history=hist, wall_time=float(f.attrs["wall_time"]),
            switching=np.asarray(f["switching"]) if "switching" in f else None,
            solver=json.loads(f.attrs["solver"]), case=str(f.attrs["case"]) or None,
            params=json.loads(f.attrs["params"]), hamiltonian=ham)
