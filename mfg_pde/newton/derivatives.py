"""Derivatives of the running coupling and the terminal cost with respect to the density, for the Newton
systems: dF/dm exact for the built-in couplings (local: diagonal; KernelInteraction: the kernel matrix;
QuadraticInteraction: rank one through the mean), central finite differences for user couplings and an
m-dependent terminal cost; sums and scalings (``SumCoupling``, ``ScaledCoupling``) by their parts."""

from __future__ import annotations

import numpy as np

from ..model import couplings as cpl


class CouplingDerivative:
    """dF^n/dm^{n+1} for n = 0..Nt-1 (1-D), as a sum of structured terms:

    diag   (Nt, N)                     local part
    shared [(coef (Nt,), W (N, N))]    coef_n W  (kernel interactions: one matrix for all levels)
    lowrank [(coef (Nt,), V (Nt, N))]  coef_n v_n v_n^T  (interactions through the mean)
    outer  [(coef (Nt,), U, V (Nt, N))] coef_n u_n v_n^T  (non-symmetric terms through the mean: MeanAttraction)
    dense  (Nt, N, N) or None          anything else (finite differences of a user coupling)
    """

    def __init__(self, Nt, N):
        self.Nt, self.N = Nt, N
        self.diag = np.zeros((Nt, N))
        self.shared = []
        self.lowrank = []
        self.outer = []
        self.dense = None

    @property
    def is_local(self) -> bool:
        return not (self.shared or self.lowrank or self.outer or self.dense is not None)

    def add(self, other: "CouplingDerivative", scale: float = 1.0):
        self.diag += scale * other.diag
        self.shared += [(scale * c, W) for c, W in other.shared]
        self.lowrank += [(scale * c, V) for c, V in other.lowrank]
        self.outer += [(scale * c, U, V) for c, U, V in other.outer]
        if other.dense is not None:
            self.dense = scale * other.dense if self.dense is None else self.dense + scale * other.dense

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """(dF/dm) x for x shaped (Nt, N), level by level."""
        out = self.diag * x
        for c, W in self.shared:
            out += c[:, None] * (x @ W.T)
        for c, V in self.lowrank:
            out += (c * np.einsum("ij,ij->i", V, x))[:, None] * V
        for c, U, V in self.outer:
            out += (c * np.einsum("ij,ij->i", V, x))[:, None] * U
        if self.dense is not None:
            out += np.einsum("nij,nj->ni", self.dense, x)
        return out

    def coo(self, row0: int, col0: int, scale: float):
        """COO triplets of scale * dF/dm as a block-diagonal matrix (level n at row0 + n N, col0 + n N)."""
        Nt, N = self.Nt, self.N
        idx = np.arange(Nt * N)
        rows, cols, vals = [row0 + idx], [col0 + idx], [scale * self.diag.ravel()]
        base = (np.arange(Nt) * N)[:, None, None]
        ii = np.arange(N)[:, None]
        jj = np.arange(N)[None, :]
        full = [c[:, None, None] * W[None] for c, W in self.shared]
        full += [c[:, None, None] * V[:, :, None] * V[:, None, :] for c, V in self.lowrank]
        full += [c[:, None, None] * U[:, :, None] * V[:, None, :] for c, U, V in self.outer]
        if self.dense is not None:
            full.append(self.dense)
        for blk in full:
            r = np.broadcast_to(base + ii, blk.shape)
            c_ = np.broadcast_to(base + jj, blk.shape)
            rows.append(row0 + r.ravel())
            cols.append(col0 + c_.ravel())
            vals.append(scale * blk.ravel())
        return rows, cols, vals


def coupling_derivative(coupling, grid, t: np.ndarray, m: np.ndarray, fd_max: int = 20_000_000) -> CouplingDerivative:
    """Derivative of ``coupling.field(grid, t, m)`` (m shaped (Nt, N): levels x grid nodes, the grid
    flattened) with respect to m, level-wise.

    Exact where the coupling gives its derivative (``Coupling.derivative``: every built-in coupling); a user
    coupling without one gets a central finite-difference derivative (N evaluations of its field on all
    levels at once; refused beyond ``fd_max`` dense entries)."""
    Nt, N = m.shape
    d = CouplingDerivative(Nt, N)
    if coupling is None:
        return d
    if isinstance(coupling, cpl.SumCoupling):
        for part in coupling.parts:
            d.add(coupling_derivative(part, grid, t, m, fd_max))
        return d
    if isinstance(coupling, cpl.ScaledCoupling):
        d.add(coupling_derivative(coupling.base, grid, t, m, fd_max), coupling.scale)
        return d
    parts = coupling.derivative(grid, t, m)  # the coupling's own exact dF/dm, None when it has none
    if parts is not None:
        if "diag" in parts:
            d.diag[:] = parts["diag"]
        d.lowrank.extend(parts.get("lowrank", ()))
        d.outer.extend(parts.get("outer", ()))
        d.shared.extend(parts.get("shared", ()))
        return d
    # unknown coupling: finite differences, column j of every level at once
    if Nt * N * N > fd_max:
        raise NotImplementedError(f"Newton needs dF/dm of the coupling {type(coupling).__name__}; its finite-"
                                  f"difference derivative would have {Nt * N * N} entries (> {fd_max})")
    dense = np.empty((Nt, N, N))
    scale = max(float(np.abs(m).max()), 1e-300)
    for j in range(N):
        eps = 1e-6 * max(abs(float(np.abs(m[:, j]).max())), 1e-3 * scale)
        mp_ = m.copy()
        mm_ = m.copy()
        mp_[:, j] += eps
        mm_[:, j] -= eps
        dense[:, :, j] = (coupling.field(grid, t, mp_) - coupling.field(grid, t, mm_)) / (2 * eps)
    d.dense = dense
    return d


def terminal_derivative(problem, mT: np.ndarray) -> np.ndarray | None:
    """dG/dm_T (N, N) for a terminal cost G(x, m_T) (central finite differences of the user callable:
    no closed form is available); None when G does not depend on m."""
    if not getattr(problem.terminal_cost, "depends_on_m", False):
        return None
    N = mT.size
    out = np.empty((N, N))
    scale = max(float(np.abs(mT).max()), 1e-300)
    for j in range(N):
        eps = 1e-6 * max(abs(float(mT[j])), 1e-3 * scale)
        a = mT.copy()
        b = mT.copy()
        a[j] += eps
        b[j] -= eps
        out[:, j] = (problem.terminal_values(a) - problem.terminal_values(b)) / (2 * eps)
    return out
