"""The household problem at given prices and its stationary wealth distribution (``model.household``;
docs/method.md, section 'Household problems and market clearing').

Upwind scheme on the wealth nodes a_i = a_min + i h (i = 0 .. N-1).  From the one-sided differences of v_j

    D+ v_i = (v_{i+1} - v_i) / h,      D- v_i = (v_i - v_{i-1}) / h,

the consumptions c_F = c*(D+ v), c_B = c*(D- v) (``CRRA.consumption``) give the drifts s_F = y - c_F,
s_B = y - c_B (y = w z_j + r a_i).  The forward difference is used where s_F > 0, the backward one where s_B < 0,
and otherwise the household stays put: c = y, s = 0.  The state constraints are imposed through this choice:
at a_min the backward difference is replaced by u'(y(a_min)) and at a_max the forward one by u'(y(a_max)), so
s_B(a_min) = s_F(a_max) = 0 and no drift points out of [a_min, a_max].

The generator A(v) of (wealth, type) has the rows

    (A v)_{j,i} = max(s_{j,i}, 0) (v_{j,i+1} - v_{j,i}) / h + min(s_{j,i}, 0) (v_{j,i} - v_{j,i-1}) / h
                  + sum_k q_jk (v_{k,i} - v_{j,i})

(rows sum to 0, off-diagonals >= 0), and the HJB is solved by the implicit policy iteration

    ((1/Delta + rho) I - A(v^n)) v^{n+1} = u(c(v^n)) + v^n / Delta,

whose fixed point is the discrete HJB rho v = u(c) + A(v) v.  The stationary density g_j(a_i) >= 0 is the null
vector of the FP matrix A(v)^T (its exact transpose), normalised to h sum g = 1; h g_{j,0} is the mass of
type-j households at the borrowing limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import solve_banded

from ..model.household import Household

_LOG = logging.getLogger("mfg_pde")

#: the consumption cap of ``policy`` (a multiple of the largest income), a safeguard that is never active at a
#: solution
C_CAP = 1e3

__all__ = [
    "HouseholdSolution",
    "Policy",
    "banded_solve",
    "generator",
    "policy",
    "solve_household",
    "sqrt_law_coefficient",
    "sqrt_law_estimate",
    "stationary_density",
    "value_residual",
]


@dataclass
class Policy:
    """The upwind policy of a value v (K, N): consumption c, drift s, and the generator A (sparse, K N x K N)."""

    c: np.ndarray
    s: np.ndarray
    A: sp.csr_matrix


@dataclass
class HouseholdSolution:
    """The household problem at the prices (r, w) and its stationary distribution.

    a : (N,) wealth nodes.  v, c, s, g : (K, N) value, consumption, drift (savings) and density per type.
    assets : h sum_j sum_i a_i g_{j,i} (the households' aggregate wealth).
    residuals : "hjb" (max |rho v - u(c) - A v|), "fp" (max |A^T g| / max |diag(A) g|), "mass" (|h sum g - 1|).
    """

    r: float
    w: float
    a: np.ndarray
    h: float
    v: np.ndarray
    c: np.ndarray
    s: np.ndarray
    g: np.ndarray
    iterations: int
    converged: bool
    residuals: dict
    A: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def assets(self) -> float:
        return float((self.g * self.a[None, :]).sum() * self.h)

    @property
    def mass_at_limit(self) -> np.ndarray:
        """h g_{j,0}: the mass of each type at the borrowing limit a_min (the first node)."""
        return self.g[:, 0] * self.h

    @property
    def fraction_at_limit(self) -> float:
        """The fraction of all households at the borrowing limit."""
        return float(self.mass_at_limit.sum())


def _index(K, N):
    """Unknown number of (type j, node i): i K + j (node-major, so that A is banded with half-width K and the
    sparse LU has no fill-in); ``flat`` and ``unflat`` convert (K, N) arrays to and from this order."""
    return np.arange(K * N).reshape(N, K).T


def flat(x: np.ndarray) -> np.ndarray:
    """(K, N) -> the vector of unknowns (node-major: entry i K + j is x[j, i])."""
    return np.ascontiguousarray(np.asarray(x).T).ravel()


def unflat(vec: np.ndarray, K: int) -> np.ndarray:
    """The vector of unknowns -> (K, N)."""
    return np.asarray(vec).reshape(-1, K).T.copy()


def generator(hh: Household, s: np.ndarray) -> sp.csr_matrix:
    """The generator A (module docstring) of the drift s (K, N), upwinded by its sign, plus Q (x) I."""
    K, N, h = hh.K, hh.N, hh.h
    up = np.maximum(s, 0.0) / h            # rate to a_{i+1}
    down = -np.minimum(s, 0.0) / h         # rate to a_{i-1}
    up[:, -1] = 0.0                        # the state constraint keeps these 0; round-off cannot leave the grid
    down[:, 0] = 0.0
    idx = _index(K, N)
    diag = -(up + down) + np.diag(hh.Q)[:, None]
    rows = [idx.ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    cols = [idx.ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel()]
    vals = [diag.ravel(), up[:, :-1].ravel(), down[:, 1:].ravel()]
    for j in range(K):
        for k in range(K):
            if j != k and hh.Q[j, k] != 0.0:
                rows.append(idx[j])
                cols.append(idx[k])
                vals.append(np.full(N, hh.Q[j, k]))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(K * N, K * N))


def policy(hh: Household, v: np.ndarray, r: float, w: float = 1.0) -> Policy:
    """The upwind consumption and drift of the value v (K, N) at prices (r, w), with the state constraints at
    a_min and a_max (module docstring), and their generator."""
    U, h = hh.utility, hh.h
    y = w * hh.z[:, None] + r * hh.a[None, :]
    dv = np.diff(v, axis=1) / h
    dvf = np.empty_like(v)
    dvb = np.empty_like(v)
    dvf[:, :-1] = dv
    dvb[:, 1:] = dv
    dvf[:, -1] = U.marginal(y[:, -1])
    dvb[:, 0] = U.marginal(y[:, 0])
    # safeguard far from the solution: a flat or decreasing v would ask for unbounded consumption (and, through
    # round-off, a spurious flat fixed point); cap consumption at C_CAP times the largest income
    floor = U.marginal(C_CAP * float(np.abs(y).max()))
    cf = U.consumption(np.maximum(dvf, floor))
    cb = U.consumption(np.maximum(dvb, floor))
    sf = y - cf
    sb = y - cb
    sf[:, -1] = 0.0      # the state constraints: exactly no drift out (round-off in y - c*(u'(y)) must not
    sb[:, 0] = 0.0       # select the forward difference at a_max, which would make that node absorbing)
    fwd = sf > 0
    bwd = (sb < 0) & ~fwd
    c = np.where(fwd, cf, np.where(bwd, cb, y))
    s = np.where(fwd, sf, np.where(bwd, sb, 0.0))
    return Policy(c=c, s=s, A=generator(hh, s))


def value_residual(hh: Household, v: np.ndarray, pol: Policy) -> float:
    """max |rho v - u(c) - A v| (the discrete HJB at v with its own upwind policy)."""
    return float(np.abs(hh.rho * flat(v) - flat(hh.utility.u(pol.c)) - pol.A @ flat(v)).max())


def banded_solve(M: sp.spmatrix, b: np.ndarray, K: int) -> np.ndarray:
    """Solve M x = b for a matrix of half-bandwidth K (the node-major generators here: neighbours at offset K,
    switching within a node at offsets < K), by the banded LU of LAPACK (O(K^2 N) operations)."""
    C = M.tocoo()
    n = M.shape[0]
    if C.nnz and int(np.abs(C.row - C.col).max()) > K:
        raise ValueError("banded_solve: the matrix is not banded with half-bandwidth K")
    ab = np.zeros((2 * K + 1, n))
    np.add.at(ab, (K + C.row - C.col, C.col), C.data)
    return solve_banded((K, K), ab, b, check_finite=False)


def _density_fixing(hh: Household, AT: sp.csr_matrix, fix: int) -> np.ndarray:
    """A^T g = 0 with the (redundant: the rows of A sum to 0) equation of unknown ``fix`` replaced by g_fix = 1."""
    M = AT.tolil()
    M.rows[fix] = [fix]
    M.data[fix] = [1.0]
    rhs = np.zeros(AT.shape[0])
    rhs[fix] = 1.0
    with np.errstate(all="ignore"):
        try:
            return banded_solve(M.tocsr(), rhs, hh.K)
        except np.linalg.LinAlgError:      # an exactly zero pivot: f carried no mass
            return np.full(AT.shape[0], np.nan)


def stationary_density(hh: Household, A: sp.spmatrix, g_guess=None) -> np.ndarray:
    """g >= 0 with A^T g = 0 and h sum g = 1, (K, N).

    One FP equation is redundant (1^T A^T = 0): it is replaced by g_f = 1 for an unknown f that carries mass (the
    largest entry of ``g_guess``; without one the lowest-income type at a_min, where the borrowing constraint
    binds), the banded system solved and g normalised.  If f carried no mass the replaced system is singular; this
    is detected (non-finite or clearly negative entries, or a residual above round-off) and the solve repeated
    with f the largest entry of that first answer, then by a bordered sparse solve [[A^T, 1], [h 1^T, 0]]."""
    AT = sp.csr_matrix(A.T)
    KN = AT.shape[0]
    first = int(np.argmax(flat(g_guess))) if g_guess is not None else int(_index(hh.K, hh.N)[np.argmin(hh.z), 0])
    tries = [first]
    for attempt in range(2):
        x = _density_fixing(hh, AT, tries[-1])
        ok = bool(np.all(np.isfinite(x))) and float(x.sum()) > 0
        if ok:
            x = x / (x.sum() * hh.h)
            big = float(np.abs(x).max())
            scale = max(float(np.abs(AT.diagonal() * x).max()), 1e-300)
            ok = float(x.min()) >= -1e-9 * big and float(np.abs(AT @ x).max()) <= 1e-9 * scale
        if ok:
            g = np.maximum(x, 0.0)     # round-off below 0 only
            return unflat(g / (g.sum() * hh.h), hh.K)
        if attempt == 0 and np.all(np.isfinite(x)):
            tries.append(int(np.argmax(np.abs(x))))
        else:
            break
    ones = np.ones((KN, 1))
    B = sp.bmat([[AT, sp.csc_matrix(ones)], [sp.csc_matrix(hh.h * ones.T), None]], format="csc")
    rhs = np.zeros(KN + 1)
    rhs[-1] = 1.0
    g = np.maximum(spla.spsolve(B, rhs)[:KN], 0.0)
    return unflat(g / (g.sum() * hh.h), hh.K)


def initial_value(hh: Household, r: float, w: float = 1.0) -> np.ndarray:
    """v_j(a) = u(w z_j + r a) / rho (consume the income forever): increasing and concave, a safe start."""
    y = np.maximum(w * hh.z[:, None] + r * hh.a[None, :], 1e-10)
    return hh.utility.u(y) / hh.rho


def solve_household(hh: Household, r: float, w: float = 1.0, v_init=None, Delta: float = 1e3, tol: float = 1e-11,
                    max_iter: int = 100, density: bool = True, g_guess=None) -> HouseholdSolution:
    """The household problem at prices (r, w) by implicit policy iteration, then its stationary density from the
    transposed generator (module docstring).  Converged when max |v^{n+1} - v^n| <= tol max(1, max |v|).
    ValueError (naming a_min) when the borrowing limit is at or below the natural limit."""
    hh.check_borrowing_limit(r, w)
    v = initial_value(hh, r, w) if v_init is None else np.array(v_init, dtype=float)
    I = sp.identity(hh.K * hh.N, format="csr")
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        pol = policy(hh, v, r, w)
        B = (1.0 / Delta + hh.rho) * I - pol.A
        v_new = unflat(banded_solve(B, flat(hh.utility.u(pol.c) + v / Delta), hh.K), hh.K)
        diff = float(np.abs(v_new - v).max())
        v = v_new
        if diff <= tol * max(1.0, float(np.abs(v).max())):
            converged = True
            break
    pol = policy(hh, v, r, w)
    res = {"hjb": value_residual(hh, v, pol)}
    g = np.zeros_like(v)
    if density:
        g = stationary_density(hh, pol.A, g_guess)
        scale = max(float(np.abs(pol.A.diagonal() * flat(g)).max()), 1e-300)
        res["fp"] = float(np.abs(pol.A.T @ flat(g)).max()) / scale
        res["mass"] = abs(float(g.sum() * hh.h) - 1.0)
    if not converged:
        _LOG.warning("household: policy iteration not converged after %d iterations at r = %.6g", it, r)
    return HouseholdSolution(r=float(r), w=float(w), a=hh.a, h=hh.h, v=v, c=pol.c, s=pol.s, g=g, iterations=it,
                             converged=converged, residuals=res, A=pol.A)


def sqrt_law_coefficient(hh: Household, sol) -> float:
    """nu_1 of the square-root law s_1(a) ~ -sqrt(2 nu_1 (a - a_min)) of the lowest-income type at the borrowing
    limit: differentiating its HJB in a and letting s_1 -> 0 gives

        nu_1 = [(rho - r) u'(c_1) + sum_k q_1k (u'(c_1) - u'(c_k))] / (-u''(c_1)),   c_k = c_k(a_min),

    with c_1(a_min) = w z_1 + r a_min (the constrained household consumes its income)."""
    U, j = hh.utility, int(np.argmin(hh.z))
    c = sol.c[:, 0]
    jump = sum(hh.Q[j, k] * (U.marginal(c[j]) - U.marginal(c[k])) for k in range(hh.K) if k != j)
    return float(((hh.rho - sol.r) * U.marginal(c[j]) + jump) / U.curvature(c[j]))


def sqrt_law_estimate(hh: Household, sol) -> float:
    """The discrete solution's s_1(a_1)^2 / (2 (a_1 - a_min)) at the first node above the limit (it tends to nu_1
    as h -> 0, at order 1/2: the savings have a square-root singularity there)."""
    j = int(np.argmin(hh.z))
    return float(sol.s[j, 1] ** 2 / (2.0 * hh.h))
