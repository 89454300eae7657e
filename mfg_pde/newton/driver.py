"""Newton's method on the whole discrete forward-backward MFG system.

This module holds the 1-D system and the driver (line search, forcing terms, warm starts, continuation,
history); 2-D/3-D problems use the same driver on the direction-split chain of ``newton_split``
(``SplitSystem``: the intermediate split states are unknowns too, Krylov solves preconditioned by the
linearised backward-forward sweep).

Unknowns: u^0..u^{Nt-1} and m^1..m^Nt at once (m^0 = m0 is data, u^Nt = G(m^Nt) is eliminated).
With the per-step M-matrix M(u) = I + dt L(u) of ``kernels`` (rows lower/diag/upper, Engquist-Osher
upwinding, drift included) and its cost c(u) = [min(D+u, 0)^2 + max(D-u, 0)^2] / 2, the equations
of step n = 0..Nt-1 are

    R_H^n = M(u^n) u^n - u^{n+1} - dt (f^n(m^{n+1}) + c(u^n))          (HJB, implicit Euler backward)
    R_F^n = M(u^n)^T m^{n+1} - m^n                                     (FP, the exact transpose)

with f^n = V + F(m^{n+1}) (``MFGProblem.running_cost``).  This is exactly the system the core loop
solves (1-D has no direction splitting), so a Newton solution is the same discrete solution.

Exact Jacobian (assembled sparse from the same coefficients as ``kernels.axis_coefficients``):

    dR_H^n/du^n     = M(u^n)              (d/du [M(u) u - dt c(u)] = M(u): the Engquist-Osher identity)
    dR_H^n/du^{n+1} = -I
    dR_H^n/dm^{n+1} = -dt dF^n/dm         (local couplings: diagonal; KernelInteraction: the dense
                                           kernel matrix; QuadraticInteraction: rank one through the
                                           mean; m-dependent terminal cost: - dG/dm_T on the last level)
    dR_F^n/dm^{n+1} = M(u^n)^T,           dR_F^n/dm^n = -I
    dR_F^n/du^n     = d/du [M(u)^T m^{n+1}] = Hess_u [m^{n+1} . (M(u) u - dt c(u))]

The last block is symmetric: M(u)^T m is the gradient of phi(u) = m . (M(u) u - dt c(u)), whose only
non-linear part is dt m . H_EO(Du) with H_EO piecewise quadratic (the drift term is linear in u).
Its Hessian is the graph Laplacian of the edges (i, i+1) with the upwind weight

    E_i = dt / h^2 [ m_i 1{D+u_i < 0} + m_{i+1} 1{D+u_i > 0} ]      (D+u_i = (u_{i+1} - u_i) / h)

(the mass carried along the edge; no edge across a reflecting wall, wrap-around on a periodic axis).
The Jacobian is therefore [[P, -Phi], [Hs, P^T]] with P the block-bidiagonal HJB matrix, Phi = dt dF/dm
and Hs the Hessians: the FP block is the transpose of the HJB block, as in the continuous problem.
dF/dm is exact for the built-in couplings (``coupling_derivative``); a user-defined Coupling subclass and
an m-dependent terminal cost G(x, m_T) (user callables without a derivative) get central finite
differences of their values, level-wise (N evaluations).

Linear solves (``linear_solver``):

* ``"krylov"`` eliminates du and solves the reduced system for dm,

      (I + K Phi) dm = b,  K = P^{-T} Hs P^{-1},  b = P^{-T} (Hs P^{-1} R_H - R_F),  du = P^{-1} (Phi dm - R_H),

  with exact operator applications: P^{-1} and P^{-T} are one backward / forward block sweep with the
  tridiagonal (cyclic) factors of M(u^n), factored once per Newton step (``ReducedSystem``).  For a
  monotone local coupling (Phi diagonal, >= 0) the system is symmetrised, (I + S K S) y = S b with
  S = Phi^{1/2} and y = S dm, an SPD matrix with eigenvalues >= 1: conjugate gradients.  Otherwise
  (non-local or non-monotone coupling, m-dependent terminal cost) GMRES.  Inexact Newton: the Krylov
  tolerance is tightened until ||J d + R|| <= eta ||R|| in the merit norm, eta = min(0.1, residual)
  (checked with the matrix-free ``DiscreteSystem.jvp``).
* ``"direct"`` assembles the sparse Jacobian (``DiscreteSystem.jacobian``) and factorises it with
  ``scipy.sparse.linalg.splu`` (unknowns interleaved (u^n_i, m^{n+1}_i), MMD on A^T A) once per step.
  Exact, but the space-time LU fills in like a 2-D problem: 0.25 s at 200 x 100, 2 s at 400 x 200.
* ``"auto"`` (default): Krylov; on systems of at most ``direct_max`` unknowns, the sparse LU takes over a
  step whose Krylov solve misses its tolerance or whose direction fails the line search.

Globalisation: backtracking (Armijo, non-monotone over the last ``nonmonotone`` merits) line search on
phi = 1/2 ||(R_H / sH, R_F / sF)||^2, with sH, sF the denominators of the core loop's relative
residuals.  Stopping: max(hjb_residual, fp_residual) <= tol, where (as in ``hjb.hjb_residual`` and
``fp.fp_residual``)

    hjb_residual = max |R_H| / max |u^{n+1} + dt (f^n + c(u^n))|,      fp_residual = max |R_F| / max_n |m^n|.

Start (``warm_start``): by default (None) a cold start, m = m_init (default m0 frozen in time) and
u = HJB(m) (one best response): on the four hard-corner regimes of docs/method.md this needs 4-6 Newton steps where
30 fictitious-play steps followed by Newton need 2-9.  ``warm_start="fictitious-play"``, ``"picard"`` or
``"anderson"`` first runs ``warm_iter`` (default 30) iterations of that cheap loop (``coupling.solve``)
and starts Newton from its last candidate pair.  Continuation (``continuation``): "sigma" solves a
sequence of problems with larger noise, "coupling" one with the coupling F scaled down (the potential V
and the terminal cost are kept), each started from the previous solution and solved to
``continuation_tol``; ``continuation_steps`` lists the sigmas (default 4 sigma, 2 sigma) or the scale
factors in (0, 1) (default 0.1, 0.3) passed through before the target problem.

``auto.solve_auto`` (the default method) steps ``NewtonRun`` one iteration at a time in a race with the
fixed-point loops; see that module.

History (per record, the keys of the core loop plus):

    residual      Newton phase: max(hjb_residual, fp_residual) of the iterate (the stopping test)
    damping       Newton phase: the line-search factor of the step taken
    line_search   the line-search factor (nan in a cheap-loop phase)
    step_norm     max|du, dm| / max|u, m| of the full Newton step (nan in a cheap-loop phase)
    linear_iterations  GMRES iterations of the step (0 for the direct solver, nan in a cheap phase)
    phase         0 cheap loop (warm start / before the switch), 1 Newton
    continuation  the continuation parameter of the stage (sigma, or the coupling scale; nan if none)
    exploitability  Nash gap (``exploitability.nash_gap``) of the returned pair at the last record, nan
                  elsewhere; of every iterate with ``exploitability="every"``
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numba import njit

from ..iterate.fixed_point import run_fixed_point
from ..iterate.monitor import HISTORY_KEYS, Progress
from ..model.problem import MFGProblem
from ..result import MFGResult
from ..fd import kernels
from ..diagnostics.exploitability import nash_gap
from ..fd.hjb import HJBSolution, empty_states, solve_hjb
from .derivatives import ScaledCoupling, coupling_derivative, terminal_derivative
from .krylov import gmres
from ..fd.layout import kernel_data

NEWTON_KEYS = ("line_search", "step_norm", "linear_iterations", "phase", "continuation", "exploitability")
WARM_METHODS = ("fictitious-play", "picard", "anderson")


# ============================================================================ the discrete system
@njit(cache=True, error_model="numpy")
def _factor_levels(lo, di, up, periodic, cp, inv, al, z, den):
    """Thomas factors of every level's tridiagonal matrix (rows lo, di, up; (Nt, N)), cyclic when
    periodic: the corners lo[0] (column N-1) and up[N-1] (column 0) by Sherman-Morrison, with
    z = T^{-1} (gamma e_0 + up[N-1] e_{N-1}) and den = 1 + v . z stored per level (as kernels._cyclic).
    Elimination x_i = r_i inv_i - al_i x_{i-1}, back substitution x_i -= cp_i x_{i+1}."""
    Nt, N = di.shape
    for n in range(Nt):
        a = lo[n]
        b = di[n]
        c = up[n]
        gamma = -b[0]
        if periodic:
            b0 = b[0] - gamma
            bl = b[N - 1] - c[N - 1] * a[0] / gamma
        else:
            b0 = b[0]
            bl = b[N - 1]
        iv = 1.0 / b0
        inv[n, 0] = iv
        al[n, 0] = 0.0
        cp[n, 0] = c[0] * iv
        for i in range(1, N):
            bi = bl if i == N - 1 else b[i]
            iv = 1.0 / (bi - a[i] * cp[n, i - 1])
            inv[n, i] = iv
            al[n, i] = a[i] * iv
            cp[n, i] = c[i] * iv
        if periodic:
            zz = z[n]
            zz[0] = gamma * inv[n, 0]
            for i in range(1, N):
                rhs = c[N - 1] if i == N - 1 else 0.0
                zz[i] = rhs * inv[n, i] - al[n, i] * zz[i - 1]
            for i in range(N - 2, -1, -1):
                zz[i] -= cp[n, i] * zz[i + 1]
            den[n] = 1.0 + zz[0] + a[0] * zz[N - 1] / gamma


@njit(cache=True, error_model="numpy", inline="always")
def _solve_level(n, lo, di, cp, inv, al, z, den, periodic, r, prev, has_prev, x):
    """x <- M_n^{-1} (r + prev) with the factors of _factor_levels (prev ignored unless has_prev)."""
    N = x.shape[0]
    ivn = inv[n]
    aln = al[n]
    cpn = cp[n]
    if has_prev:
        v = (r[0] + prev[0]) * ivn[0]
        x[0] = v
        for i in range(1, N):
            v = (r[i] + prev[i]) * ivn[i] - aln[i] * v
            x[i] = v
    else:
        v = r[0] * ivn[0]
        x[0] = v
        for i in range(1, N):
            v = r[i] * ivn[i] - aln[i] * v
            x[i] = v
    for i in range(N - 2, -1, -1):
        v = x[i] - cpn[i] * v
        x[i] = v
    if periodic:
        gamma = -di[n, 0]
        fact = (x[0] + lo[n, 0] * x[N - 1] / gamma) / den[n]
        zz = z[n]
        for i in range(N):
            x[i] -= fact * zz[i]


@njit(cache=True, error_model="numpy")
def _backward_solve(lo, di, cp, inv, al, z, den, periodic, r, out):
    """P x = r for the block-bidiagonal HJB matrix: M(u^n) x^n - x^{n+1} = r^n, x^{Nt} = 0 (all (Nt, N))."""
    Nt = r.shape[0]
    for n in range(Nt - 1, -1, -1):
        has_prev = n + 1 < Nt
        _solve_level(n, lo, di, cp, inv, al, z, den, periodic, r[n], out[n + 1] if has_prev else r[n], has_prev,
                     out[n])


@njit(cache=True, error_model="numpy")
def _forward_solve(lo, di, cp, inv, al, z, den, periodic, r, out):
    """P^T y = r: M(u^n)^T y^n - y^{n-1} = r^n, y^{-1} = 0 (factors of the TRANSPOSED levels; y^n is m^{n+1})."""
    Nt = r.shape[0]
    for n in range(Nt):
        has_prev = n > 0
        _solve_level(n, lo, di, cp, inv, al, z, den, periodic, r[n], out[n - 1] if has_prev else r[n], has_prev,
                     out[n])


@njit(cache=True, error_model="numpy")
def _hessian_apply(E, x, out):
    """(Hs x)_i = E_i (x_i - x_{i+1}) + E_{i-1} (x_i - x_{i-1}) per level (indices wrap; E_{N-1} = 0 at a wall)."""
    Nt, N = x.shape
    for n in range(Nt):
        for i in range(N):
            ip = i + 1 if i + 1 < N else 0
            im = i - 1 if i > 0 else N - 1
            out[n, i] = E[n, i] * (x[n, i] - x[n, ip]) + E[n, im] * (x[n, i] - x[n, im])


@njit(cache=True)
def _dot(x, y):
    s = 0.0
    for i in range(x.size):
        s += x[i] * y[i]
    return s


@njit(cache=True)
def _scale(S, x, out):
    """out = S * x (elementwise, 2-D)."""
    for n in range(x.shape[0]):
        for i in range(x.shape[1]):
            out[n, i] = S[n, i] * x[n, i]


@njit(cache=True)
def _cg_q(p, S, kq, q):
    """q = p + S * kq; returns p . q."""
    s = 0.0
    for n in range(p.shape[0]):
        for i in range(p.shape[1]):
            v = p[n, i] + S[n, i] * kq[n, i]
            q[n, i] = v
            s += p[n, i] * v
    return s


@njit(cache=True)
def _cg_update(alpha, p, q, y, r, rr_old):
    """y += alpha p, r -= alpha q, p = r + (r.r / rr_old) p; returns r.r."""
    rr = 0.0
    for n in range(p.shape[0]):
        for i in range(p.shape[1]):
            y[n, i] += alpha * p[n, i]
            v = r[n, i] - alpha * q[n, i]
            r[n, i] = v
            rr += v * v
    beta = rr / rr_old
    for n in range(p.shape[0]):
        for i in range(p.shape[1]):
            p[n, i] = r[n, i] + beta * p[n, i]
    return rr


class _Levels:
    """Factored per-level matrices M(u^n) (or their transposes) for fast block sweeps."""

    def __init__(self, lo, di, up, periodic):
        Nt, N = di.shape
        self.lo = np.ascontiguousarray(lo)
        self.di = np.ascontiguousarray(di)
        self.periodic = periodic
        self.cp = np.empty((Nt, N))
        self.inv = np.empty((Nt, N))
        self.al = np.empty((Nt, N))
        self.z = np.empty((Nt, N)) if periodic else np.empty((1, 1))
        self.den = np.empty(Nt)
        _factor_levels(self.lo, self.di, np.ascontiguousarray(up), periodic, self.cp, self.inv, self.al, self.z,
                       self.den)

    def args(self):
        return self.lo, self.di, self.cp, self.inv, self.al, self.z, self.den, self.periodic


class ReducedSystem:
    """The Newton system with du eliminated (see the module docstring):

        (I + K Phi) dm = b,   K = P^{-T} Hs P^{-1},   b = P^{-T} (Hs P^{-1} R_H - R_F),   du = P^{-1} (Phi dm - R_H)

    * Phi = dt dF/dm diagonal and >= 0 (monotone local coupling, G independent of m): conjugate gradients
      on the SPD system (I + S K S) y = S b, S = Phi^{1/2}, y = S dm, then dm = b - K S y;
    * otherwise GMRES on (I + K Phi) dm = b.

    Each iteration costs one backward and one forward block sweep with the tridiagonal (cyclic) factors
    of M(u^n) and M(u^n)^T, computed once.  ``solve(rtol)`` can be called again with a smaller rtol:
    the iteration resumes where it stopped."""

    def __init__(self, sysm, u, m, ev, deriv):
        Nt, N = sysm.Nt, sysm.N
        self.shape = (Nt, N)
        self.sysm = sysm
        self.dF, self.dG = deriv
        lo, di, up = ev["lo"], ev["di"], ev["up"]
        self.fa = _Levels(lo, di, up, sysm.periodic).args()
        self.ba = _Levels(np.roll(up, 1, axis=1), di, np.roll(lo, -1, axis=1), sysm.periodic).args()
        self.E = np.ascontiguousarray(sysm.edge_weights(u[:Nt], m[1:]))
        self.t1 = np.empty((Nt, N))
        self.t2 = np.empty((Nt, N))
        self.RH = ev["RH"]
        self.P_inv(self.RH, self.t1)
        _hessian_apply(self.E, self.t1, self.t2)
        self.b = self.PT_inv(self.t2 - ev["RF"])
        self.use_cg = self.dF.is_local and self.dG is None and bool(np.all(self.dF.diag >= 0.0))
        self.iterations = 0
        if self.use_cg:
            self.S = np.sqrt(sysm.dt * self.dF.diag)
            rhs = self.S * self.b
            self.y = np.zeros(self.shape)
            self.r = rhs
            self.p = rhs.copy()
            self.bb = _dot(rhs.ravel(), rhs.ravel())
            self.rr = self.bb
        else:
            self.x = None

    def P_inv(self, r, out=None):
        out = np.empty(self.shape) if out is None else out
        _backward_solve(*self.fa, np.ascontiguousarray(r), out)
        return out

    def PT_inv(self, r, out=None):
        out = np.empty(self.shape) if out is None else out
        _forward_solve(*self.ba, np.ascontiguousarray(r), out)
        return out

    def K(self, x):
        """P^{-T} Hs P^{-1} x."""
        self.P_inv(x, self.t1)
        _hessian_apply(self.E, self.t1, self.t2)
        return self.PT_inv(self.t2)

    def Phi(self, x):
        y = self.sysm.dt * self.dF.matvec(x)
        if self.dG is not None:
            y[-1] += self.dG @ x[-1]
        return y

    def solve(self, rtol: float, maxiter: int = 1000):
        """Iterate until the relative Krylov residual is <= rtol; returns (du, dm, iterations so far)."""
        if self.use_cg:
            S = self.S
            its = 0
            sp_ = np.empty(self.shape)
            q = np.empty(self.shape)
            while its < maxiter and self.rr > rtol * rtol * self.bb:
                _scale(S, self.p, sp_)
                kq = self.K(sp_)
                pq = _cg_q(self.p, S, kq, q)
                if not pq > 0.0:  # not SPD here (negative densities in the iterate): stop, the caller checks
                    break
                self.rr = _cg_update(self.rr / pq, self.p, q, self.y, self.r, self.rr)
                its += 1
            self.iterations += its
            _scale(S, self.y, sp_)
            dm = self.b - self.K(sp_)
        else:
            Nt, N = self.shape
            x, its = gmres(lambda v: v + self.K(self.Phi(v.reshape(Nt, N))).ravel(), self.b.ravel(), rtol=rtol,
                           maxiter=maxiter, x0=self.x)
            self.x = x
            self.iterations += its
            dm = x.reshape(Nt, N)
        du = self.P_inv(self.Phi(dm) - self.RH)
        return du, dm, self.iterations


class DiscreteSystem:
    """The 1-D forward-backward system of one problem: residual, Jacobian, linear solves.

    Iterates are full arrays u, m shaped (Nt+1, N) with m[0] = m0 and u[Nt] = G(m[Nt])."""

    has_direct = True

    def __init__(self, problem):
        if problem.grid.ndim != 1:
            raise NotImplementedError("the Newton system is 1-D only")
        self.problem = problem
        kd = kernel_data(problem)
        self.kd = kd
        self.Nt, self.N = problem.Nt, problem.grid.size
        self.dt, self.nu = problem.dt, problem.nu
        self.h = float(kd.h[0])
        self.periodic = bool(kd.periodic[0])
        self.has_drift = kd.has_drift
        Nt, N = self.Nt, self.N
        if kd.has_drift:
            d = kd.drift[:, 0].reshape(kd.drift.shape[0], N)
            self.drift_all = np.ascontiguousarray(np.broadcast_to(d, (Nt, N))).reshape(Nt, N, 1)
        else:
            self.drift_all = np.zeros((1, 1, 1))
        # per-step drift in the (Nt or 1, ndim=1, N, 1, 1) layout solve_axis wants (per level: (1, N, 1, 1))
        self.drift_steps = np.ascontiguousarray(kd.drift.reshape(kd.drift.shape[0], 1, -1, 1, 1)) \
            if kd.has_drift else np.zeros((1, 1, 1, 1, 1))
        self.t = problem.t[1:]
        self.m_dep_G = bool(getattr(problem.terminal_cost, "depends_on_m", False))

    # ------------------------------------------------------------------ pieces
    def coefficients(self, uu: np.ndarray):
        """Rows (lo, di, up) of M(u^n) for every level n of uu (Nt, N): one kernels.axis_coefficients call."""
        Nt, N = uu.shape
        g = np.ascontiguousarray(uu).reshape(Nt, N, 1)
        lo = np.empty((Nt, N, 1))
        di = np.empty((Nt, N, 1))
        up = np.empty((Nt, N, 1))
        drift = self.drift_all if self.has_drift else g
        kernels.axis_coefficients(g, drift, self.has_drift, 1, self.nu, self.dt, self.h, self.periodic, lo, di, up)
        return lo.reshape(Nt, N), di.reshape(Nt, N), up.reshape(Nt, N)

    def cost(self, uu: np.ndarray) -> np.ndarray:
        Nt, N = uu.shape
        out = np.empty((Nt, N, 1))
        kernels.axis_cost(np.ascontiguousarray(uu).reshape(Nt, N, 1), 1, self.h, self.periodic, out)
        return out.reshape(Nt, N)

    def fields(self, u: np.ndarray, m: np.ndarray):
        """The plain fields of an iterate (here the iterate itself)."""
        return u, m

    def lift(self, u, m, newton_tol=1e-12, newton_maxit=50):
        """The iterate of plain fields (here the fields themselves)."""
        return u, m

    def mass_error(self, m: np.ndarray, mass0: float) -> float:
        return float(np.abs(self.problem.grid.integrate(m) - mass0).max())

    def complete(self, u: np.ndarray, m: np.ndarray):
        """Impose the data: m[0] = m0, u[Nt] = G(m[Nt])."""
        m[0] = self.problem.m0
        u[self.Nt] = self.problem.terminal_values(m[self.Nt])

    def evaluate(self, u: np.ndarray, m: np.ndarray) -> dict:
        """Residuals R_H, R_F (Nt, N), their scales, and the pieces the Jacobian reuses."""
        Nt = self.Nt
        uu = u[:Nt]
        lo, di, up = self.coefficients(uu)
        f = self.problem.running_cost(m)
        c = self.cost(uu)
        src = u[1:] + self.dt * (f + c)
        RH = di * uu + lo * np.roll(uu, 1, axis=1) + up * np.roll(uu, -1, axis=1) - src
        m1 = m[1:]
        RF = di * m1 + np.roll(up * m1, 1, axis=1) + np.roll(lo * m1, -1, axis=1) - m[:-1]
        sH = float(np.abs(src).max())
        sF = float(np.abs(m[:-1]).max())
        sH = sH if sH > 0 else 1.0
        sF = sF if sF > 0 else 1.0
        hjb = float(np.abs(RH).max()) / sH
        fp = float(np.abs(RF).max()) / sF
        return {"RH": RH, "RF": RF, "sH": sH, "sF": sF, "hjb": hjb, "fp": fp, "lo": lo, "di": di, "up": up,
                "finite": bool(np.isfinite(hjb) and np.isfinite(fp))}

    def edge_weights(self, uu: np.ndarray, m1: np.ndarray) -> np.ndarray:
        """E_i (Nt, N): Hessian weights of the edges (i, i+1) (the last one wraps, zero at a wall)."""
        s = np.roll(uu, -1, axis=1) - uu
        E = (self.dt / self.h ** 2) * (np.where(s < 0.0, m1, 0.0) + np.where(s > 0.0, np.roll(m1, -1, axis=1), 0.0))
        if not self.periodic:
            E[:, -1] = 0.0
        return E

    def hessian_apply(self, E: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Hs x level-wise: (Hs x)_i = E_i (x_i - x_{i+1}) + E_{i-1} (x_i - x_{i-1})."""
        g = E * (x - np.roll(x, -1, axis=1))
        return g - np.roll(g, 1, axis=1)

    def derivative(self, m: np.ndarray):
        """(dF/dm, dG/dm_T) at m."""
        dF = coupling_derivative(self.problem.coupling, self.problem.grid, self.t, m[1:])
        dG = terminal_derivative(self.problem, m[self.Nt]) if self.m_dep_G else None
        return dF, dG

    def jvp(self, u, m, ev, deriv, du, dm):
        """Matrix-free J (du, dm) (du for u^0..u^{Nt-1}, dm for m^1..m^Nt, both (Nt, N)); the same blocks
        as ``jacobian``."""
        dF, dG = deriv
        lo, di, up = ev["lo"], ev["di"], ev["up"]
        JH = di * du + lo * np.roll(du, 1, axis=1) + up * np.roll(du, -1, axis=1) - self.dt * dF.matvec(dm)
        JH[:-1] -= du[1:]
        if dG is not None:
            JH[-1] -= dG @ dm[-1]
        JF = di * dm + np.roll(up * dm, 1, axis=1) + np.roll(lo * dm, -1, axis=1)
        JF[1:] -= dm[:-1]
        E = np.ascontiguousarray(self.edge_weights(u[:self.Nt], m[1:]))
        Hd = np.empty_like(du)
        _hessian_apply(E, np.ascontiguousarray(du), Hd)
        return JH, JF + Hd

    # ------------------------------------------------------------------ Jacobian
    def jacobian(self, u: np.ndarray, m: np.ndarray, ev: dict | None = None, deriv=None,
                 interleave: bool = False) -> sp.csc_matrix:
        """Sparse Jacobian of (R_H, R_F) with respect to (u^0..u^{Nt-1}, m^1..m^Nt), in that order (rows:
        R_H^0..R_H^{Nt-1}, R_F^0..R_F^{Nt-1}); with ``interleave`` unknown and row j of level n, node i
        are ordered (u^n_i, m^{n+1}_i) and (R_H^n_i, R_F^n_i) side by side (less fill in the LU)."""
        Nt, N = self.Nt, self.N
        ev = ev if ev is not None else self.evaluate(u, m)
        dF, dG = deriv if deriv is not None else self.derivative(m)
        lo, di, up = ev["lo"], ev["di"], ev["up"]
        NN = Nt * N
        idx = np.arange(NN).reshape(Nt, N)
        left = np.roll(idx, 1, axis=1)    # (n, i-1)
        right = np.roll(idx, -1, axis=1)  # (n, i+1)
        rows, cols, vals = [], [], []

        def put(r, c, v):
            rows.append(np.asarray(r).ravel())
            cols.append(np.asarray(c).ravel())
            vals.append(np.asarray(v, dtype=float).ravel())

        # HJB rows: M(u^n), -I on u^{n+1}, -dt dF/dm on m^{n+1}
        put(idx, idx, di)
        put(idx, left, lo)
        put(idx, right, up)
        put(idx[:-1], idx[1:], -np.ones((Nt - 1, N)))
        r_, c_, v_ = dF.coo(0, NN, -self.dt)
        rows += r_
        cols += c_
        vals += v_
        if dG is not None:
            last = idx[-1]
            put(np.repeat(last, N), NN + np.tile(last, N), -dG.ravel())
        # FP rows: M(u^n)^T on m^{n+1}, -I on m^n, Hessian on u^n
        put(NN + idx, NN + idx, di)
        put(NN + idx, NN + left, np.roll(up, 1, axis=1))
        put(NN + idx, NN + right, np.roll(lo, -1, axis=1))
        put(NN + idx[1:], NN + idx[:-1], -np.ones((Nt - 1, N)))
        E = self.edge_weights(u[:Nt], m[1:])
        El = np.roll(E, 1, axis=1)
        put(NN + idx, idx, E + El)
        put(NN + idx, right, -E)
        put(NN + idx, left, -El)
        rows = np.concatenate(rows)
        cols = np.concatenate(cols)
        if interleave:  # block index b -> 2 b (u, R_H) or 2 (b - NN) + 1 (m, R_F)
            rows = np.where(rows < NN, 2 * rows, 2 * (rows - NN) + 1)
            cols = np.where(cols < NN, 2 * cols, 2 * (cols - NN) + 1)
        J = sp.coo_matrix((np.concatenate(vals), (rows, cols)), shape=(2 * NN, 2 * NN)).tocsc()
        J.sum_duplicates()
        J.eliminate_zeros()
        return J

    # ------------------------------------------------------------------ Newton direction
    def direction_direct(self, u, m, ev, deriv):
        J = self.jacobian(u, m, ev, deriv, interleave=True)
        lu = spla.splu(J, permc_spec="MMD_ATA")
        rhs = np.empty(2 * self.Nt * self.N)
        rhs[0::2] = -ev["RH"].ravel()
        rhs[1::2] = -ev["RF"].ravel()
        x = lu.solve(rhs)
        return x[0::2].reshape(self.Nt, self.N), x[1::2].reshape(self.Nt, self.N), 0

    def reduced(self, u, m, ev, deriv) -> "ReducedSystem":
        """The reduced (dm-only) Newton system at (u, m), solved by a Krylov method (``ReducedSystem``)."""
        return ReducedSystem(self, u, m, ev, deriv)


# ============================================================================ Newton driver
def _new_history():
    return {k: [] for k in HISTORY_KEYS + NEWTON_KEYS}


def _append(history, rec: dict):
    for key in history:
        history[key].append(float(rec.get(key, np.nan)))


def _merge_core_history(history, core_hist: dict, phase: float, cont: float, t_offset: float):
    n = len(core_hist.get("residual", ()))
    for key in history:
        if key in core_hist and key not in ("exploitability", "wall_time"):
            history[key].extend(float(v) for v in core_hist[key][:n])
        elif key == "wall_time":
            history[key].extend(float(v) + t_offset for v in core_hist[key][:n])
        elif key == "phase":
            history[key].extend([phase] * n)
        elif key == "continuation":
            history[key].extend([cont] * n)
        else:
            history[key].extend([np.nan] * n)


def _with_params(problem, sigma=None, scale=None):
    """A copy of ``problem`` with another sigma, or with its coupling scaled by ``scale``."""
    coupling = problem.coupling
    if scale is not None and coupling is not None:
        coupling = ScaledCoupling(coupling, scale)
    return MFGProblem(problem.grid, problem.T, problem.Nt, problem.sigma if sigma is None else sigma, problem.m0,
                      coupling=coupling, potential=problem.potential, drift=problem.drift,
                      terminal_cost=problem.terminal_cost, name=problem.name, exit_cost=problem.exit_costs)


def make_system(problem):
    """The discrete system Newton drives: ``DiscreteSystem`` (1-D) or ``newton_split.SplitSystem``
    (2-D/3-D, the direction-split chain)."""
    if problem.grid.ndim == 1:
        return DiscreteSystem(problem)
    from .system_split import SplitSystem
    return SplitSystem(problem)


def _check_options(problem, warm_start, warm_iter, continuation, linear_solver):
    from ..fd.layout import check_no_exits
    check_no_exits(problem, "method='newton'")
    if problem.grid.ndim != 1:
        from .system_split import check_split_coupling
        check_split_coupling(problem.coupling)
        if linear_solver == "direct":
            raise ValueError("linear_solver = 'direct' is 1-D only (the 2-D/3-D space-time LU fills in like a "
                             "3-D/4-D problem); use 'krylov' or 'auto'")
    if warm_start is not None and warm_start not in WARM_METHODS:
        raise ValueError(f"warm_start = {warm_start!r}: choose one of {', '.join(WARM_METHODS)} or None")
    if int(warm_iter) < 0:
        raise ValueError(f"warm_iter = {warm_iter}: must be >= 0")
    if continuation not in (None, "sigma", "coupling"):
        raise ValueError(f"continuation = {continuation!r}: choose 'sigma', 'coupling' or None")
    if linear_solver not in ("auto", "direct", "krylov"):
        raise ValueError(f"linear_solver = {linear_solver!r}: choose 'auto', 'direct' or 'krylov'")


def _krylov_direction(sysm, u, m, ev, deriv, eta, krylov_rtol, phi0, krylov_maxiter=1000):
    """Inexact Newton direction: tighten the Krylov tolerance until ||J d + R|| <= eta ||R|| in the merit
    norm (at most 8 tenfold tightenings, resuming the iteration), within ``krylov_maxiter`` Krylov
    iterations in all (a Krylov solve that has not converged by then -- an indefinite system far from a
    solution -- returns its best direction for the line search to judge, instead of spending thousands of
    iterations on one step).  Returns (du, dm, iterations, ratio)."""
    sH, sF = ev["sH"], ev["sF"]
    rtol = min(krylov_rtol, eta)
    red = sysm.reduced(u, m, ev, deriv)
    lin = np.inf
    its = 0
    for _attempt in range(8):
        du, dm, its = red.solve(rtol, maxiter=max(krylov_maxiter - its, 1))
        JH, JF = sysm.jvp(u, m, ev, deriv, du, dm)
        lin = np.sqrt(0.5 * (np.sum(((JH + ev["RH"]) / sH) ** 2) + np.sum(((JF + ev["RF"]) / sF) ** 2)) / phi0)
        if lin <= eta or rtol < 1e-13 or its >= krylov_maxiter:
            break
        rtol *= 0.1
    return du, dm, its, lin


def _line_search(sysm, u, m, du, dm, sH, sF, phi_ref, max_backtracks):
    """Backtracking (Armijo, halving) on phi = 1/2 ||(R_H / sH, R_F / sF)||^2 against phi_ref."""
    Nt = sysm.Nt
    alpha = 1.0
    u_new = u.copy()
    m_new = m.copy()
    ev_new = None
    for _ in range(int(max_backtracks) + 1):
        u_new[:Nt] = u[:Nt] + alpha * du
        m_new[1:] = m[1:] + alpha * dm
        sysm.complete(u_new, m_new)
        with np.errstate(all="ignore"):
            ev_new = sysm.evaluate(u_new, m_new)
            phi = 0.5 * (np.sum((ev_new["RH"] / sH) ** 2) + np.sum((ev_new["RF"] / sF) ** 2))
        if ev_new["finite"] and np.isfinite(phi) and phi <= (1.0 - 1e-4 * alpha) * phi_ref:
            return True, alpha, u_new, m_new, ev_new
        alpha *= 0.5
    return False, alpha, u_new, m_new, ev_new


class NewtonRun:
    """Newton with backtracking line search from (u, m) (full (Nt+1, N) arrays -- in 2-D/3-D the lifted
    split-chain arrays -- modified in place), one Newton iteration per ``step()``; ``newton_iterations``
    runs it to the end, ``auto`` interleaves it with the fixed-point loop.

    ``step()`` evaluates the current iterate, records it, and (unless it converged or failed) takes one
    Newton step.  Returns (state, record) with state "converged", "continue", "non-finite",
    "line-search" (no acceptable step) or "max-iter"."""

    def __init__(self, problem, u, m, tol=1e-10, max_iter=50, linear_solver="auto", direct_max=400_000,
                 max_backtracks=30, cont=np.nan, krylov_rtol=1e-3, nonmonotone=5, every_gap=False,
                 krylov_maxiter=1000):
        self.problem, self.u, self.m = problem, u, m
        self.krylov_maxiter = int(krylov_maxiter)  # Krylov iterations per Newton step (auto adapts it)
        self.last_krylov = 0
        self.tol, self.max_iter = tol, int(max_iter)
        self.linear_solver, self.max_backtracks = linear_solver, max_backtracks
        self.cont, self.krylov_rtol, self.nonmonotone, self.every_gap = cont, krylov_rtol, nonmonotone, every_gap
        self.sysm = make_system(problem)
        self.sysm.complete(u, m)
        self.small = self.sysm.has_direct and 2 * self.sysm.Nt * self.sysm.N <= direct_max
        self.mass0 = float(problem.grid.integrate(problem.m0))
        self.ev = self.sysm.evaluate(u, m)
        self.merits = []
        self.k = 0

    @property
    def residual(self) -> float:
        """max(hjb_residual, fp_residual) of the current iterate."""
        return max(self.ev["hjb"], self.ev["fp"]) if self.ev["finite"] else np.inf

    def step(self):
        self.k += 1
        sysm, ev, u, m = self.sysm, self.ev, self.u, self.m
        res = max(ev["hjb"], ev["fp"])
        rec = {"residual": res, "hjb_residual": ev["hjb"], "fp_residual": ev["fp"],
               "mass_error": sysm.mass_error(m, self.mass0), "newton_max": 0.0,
               "phase": 1.0, "continuation": self.cont}
        if not ev["finite"]:
            return "non-finite", rec
        if res <= self.tol:
            rec.update(change_m=0.0, damping=0.0, line_search=0.0, step_norm=0.0, linear_iterations=0.0)
            return "converged", rec
        if self.k > self.max_iter:
            return "max-iter", rec
        if self.every_gap:
            rec["exploitability"] = nash_gap(self.problem, *sysm.fields(u, m))
        deriv = sysm.derivative(m)
        sH, sF = ev["sH"], ev["sF"]
        phi0 = 0.5 * (np.sum((ev["RH"] / sH) ** 2) + np.sum((ev["RF"] / sF) ** 2))
        self.merits.append(phi0)
        # non-monotone Armijo reference: the largest merit of the last ``nonmonotone`` iterates
        phi_ref = max(self.merits[-max(int(self.nonmonotone), 1):])
        eta = min(0.1, max(res, 1e-12))  # forcing term of the inexact (Krylov) solves
        if self.linear_solver == "direct":
            kinds = ["direct"]
        elif self.linear_solver == "krylov":
            kinds = ["krylov"]
        else:  # auto: Krylov; sparse LU if Krylov misses its tolerance or its direction fails the line search
            kinds = ["krylov", "direct"] if self.small else ["krylov"]
        lin_its = 0
        for kind in kinds:
            if kind == "direct":
                du, dm, _ = sysm.direction_direct(u, m, ev, deriv)
            else:
                du, dm, lin_its, lin = _krylov_direction(sysm, u, m, ev, deriv, eta, self.krylov_rtol, phi0,
                                                         self.krylov_maxiter)
                self.last_krylov = lin_its
                if lin > eta and len(kinds) > 1:
                    continue
            accepted, alpha, u_new, m_new, ev_new = _line_search(sysm, u, m, du, dm, sH, sF, phi_ref,
                                                                 self.max_backtracks)
            if accepted:
                break
        scale = max(float(np.abs(u).max()), float(np.abs(m).max()), 1e-300)
        step = max(float(np.abs(du).max()), float(np.abs(dm).max())) / scale
        norm_m = float(np.abs(m[1:]).sum())
        rec.update(change_m=float(np.abs(m_new[1:] - m[1:]).sum()) / norm_m if accepted else 0.0,
                   damping=alpha if accepted else 0.0, line_search=alpha if accepted else 0.0, step_norm=step,
                   linear_iterations=float(lin_its))
        if not accepted:
            return "line-search", rec
        u[:] = u_new
        m[:] = m_new
        self.ev = ev_new
        return "continue", rec


def newton_iterations(problem, u, m, tol=1e-10, max_iter=50, linear_solver="auto", direct_max=400_000,
                      max_backtracks=30, history=None, t_start=None, progress=None, callback=None, cont=np.nan,
                      krylov_rtol=1e-3, nonmonotone=5, every_gap=False):
    """Newton with backtracking line search from (u, m) (``NewtonRun`` to the end).

    Returns (converged, status, k, ev) and appends one record per iterate to ``history``."""
    run = NewtonRun(problem, u, m, tol=tol, max_iter=max_iter, linear_solver=linear_solver, direct_max=direct_max,
                    max_backtracks=max_backtracks, cont=cont, krylov_rtol=krylov_rtol, nonmonotone=nonmonotone,
                    every_gap=every_gap)
    t_start = time.perf_counter() if t_start is None else t_start
    history = _new_history() if history is None else history
    status = f"not converged: newton max_iter = {max_iter} reached"
    converged = False
    while True:
        state, rec = run.step()
        rec["wall_time"] = time.perf_counter() - t_start
        _append(history, rec)
        k, res = run.k, rec["residual"]
        if state == "non-finite":
            status = f"diverged: non-finite residual in newton iteration {k}"
            break
        if state == "converged":
            if progress:
                progress(len(history["residual"]), rec, force=True)
            converged, status = True, "converged"
            break
        if state == "max-iter":
            status = f"not converged: newton max_iter = {max_iter} reached with residual {res:.3e} (tol {tol:.1e})"
            break
        if progress:
            progress(len(history["residual"]), rec)
        if state == "line-search":
            status = (f"not converged: line search failed in newton iteration {k} (residual {res:.3e}, "
                      f"{max_backtracks} backtracks)")
            break
        if callback is not None and callback(len(history["residual"]), rec):
            status = f"stopped by callback at iteration {len(history['residual'])}"
            break
    return converged, status, run.k, run.ev


def _initial_pair(problem, m_init, newton_tol, newton_maxit):
    grid, Nt = problem.grid, problem.Nt
    if m_init is None:
        m = np.broadcast_to(problem.m0, (Nt + 1,) + grid.shape).copy()
    else:
        m = grid.check_field(m_init, "m_init", (Nt + 1,)).copy()
        m[0] = problem.m0
    sol = solve_hjb(problem, problem.running_cost(m), problem.terminal_values(m[Nt]), tol=newton_tol,
                    maxit=newton_maxit)
    return sol.u.copy(), m


def solve_newton(problem, tol: float = 1e-10, max_iter: int = 50, warm_start: str | None = None,
                 warm_iter: int = 30, continuation: str | None = None, continuation_steps=None,
                 continuation_tol: float = 1e-6, linear_solver: str = "auto", direct_max: int = 400_000,
                 krylov_rtol: float = 1e-3, max_backtracks: int = 30, nonmonotone: int = 5, m_init=None, u_init=None,
                 newton_tol: float = 1e-12, newton_maxit: int = 50, anderson_depth: int = 5,
                 progress: bool = False, callback=None, exploitability: str = "final") -> MFGResult:
    """Newton on the full discrete system (1-D, or the split chain in 2-D/3-D); see the module docstring.

    Parameters
    ----------
    tol : stopping tolerance on max(hjb_residual, fp_residual) of the iterate.
    max_iter : cap on the Newton iterations (per continuation stage).
    warm_start : None (default: cold start m = m_init, u = HJB(m)), or "fictitious-play", "picard",
        "anderson": a cheap loop run first for ``warm_iter`` iterations (0: cold start).
    continuation : None, "sigma" or "coupling"; continuation_steps: the sigmas (default 4 sigma, 2 sigma)
        or coupling scales (default 0.1, 0.3) passed through first; continuation_tol: their tolerance.
    linear_solver : "krylov" (CG / GMRES on the reduced system), "direct" (sparse LU of the Jacobian) or
        "auto" (Krylov, sparse LU as fallback up to ``direct_max`` unknowns).  krylov_rtol: first Krylov
        tolerance of a step (tightened as needed, see the module docstring).
    max_backtracks : line-search halvings before giving up.
    m_init, u_init : initial iterate (full (Nt+1, N) arrays); m_init alone starts the warm-up loop or
        the cold start, both together are the Newton starting point.
    nonmonotone : the line search compares with the largest merit of this many last iterates.
    newton_tol, newton_maxit, anderson_depth : passed to the warm-start loop.
    exploitability : "final" (Nash gap of the result at the last record), "every" (each Newton iterate
        too) or "none".
    """
    _check_options(problem, warm_start, warm_iter, continuation, linear_solver)
    if u_init is not None and m_init is None:
        raise ValueError("u_init needs m_init: the pair (u_init, m_init) is the Newton starting point")
    if exploitability not in ("final", "every", "none"):
        raise ValueError(f"exploitability = {exploitability!r}: choose 'final', 'every' or 'none'")
    t_start = time.perf_counter()
    history = _new_history()
    report = Progress(progress)
    grid, Nt = problem.grid, problem.Nt
    options = {}
    options.update({"method": options.get("method", "newton"), "tol": tol, "max_iter": int(max_iter),
                    "warm_start": warm_start, "warm_iter": int(warm_iter), "continuation": continuation,
                    "continuation_steps": None if continuation_steps is None else list(continuation_steps),
                    "linear_solver": linear_solver})

    # ---- stages: continuation problems, then the target
    stages = []
    if continuation == "sigma":
        steps = continuation_steps if continuation_steps is not None else \
            [4 * problem.sigma, 2 * problem.sigma] if problem.sigma > 0 else [0.4, 0.2]
        stages = [(_with_params(problem, sigma=s), float(s)) for s in steps]
    elif continuation == "coupling":
        steps = continuation_steps if continuation_steps is not None else [0.1, 0.3]
        for s in steps:
            if not 0 < s <= 1:
                raise ValueError(f"continuation_steps: coupling scale {s} must be in (0, 1]")
        stages = [(_with_params(problem, scale=s), float(s)) for s in steps]
    target_cont = np.nan if continuation is None else (problem.sigma if continuation == "sigma" else 1.0)
    stages.append((problem, target_cont))

    u = m = None
    states0 = None  # split states of the warm start's pair (2-D/3-D), when known
    converged, status = False, "not started"
    for j, (pb, cont) in enumerate(stages):
        last = j == len(stages) - 1
        stage_tol = tol if last else max(tol, continuation_tol)
        if u is None:
            if u_init is not None and m_init is not None:
                u = grid.check_field(u_init, "u_init", (Nt + 1,)).copy()
                m = grid.check_field(m_init, "m_init", (Nt + 1,)).copy()
            elif warm_start is not None and int(warm_iter) > 0:
                t0 = time.perf_counter() - t_start
                r = run_fixed_point(pb, warm_start, tol=stage_tol, max_iter=int(warm_iter), m_init=m_init,
                                    newton_tol=newton_tol, newton_maxit=newton_maxit, anderson_depth=anderson_depth,
                                    exploitability="none")
                _merge_core_history(history, r.history, 0.0, cont, t0)
                u, m = r.u.copy(), r.m.copy()
                if "hjb_solution" in r.extras:
                    states0 = r.extras["hjb_solution"].states
            else:
                u, m = _initial_pair(pb, m_init, newton_tol, newton_maxit)
            if grid.ndim > 1:  # the split chain's iterate carries the intermediate states
                u, m = make_system(pb).lift(u, m, newton_tol, newton_maxit, states=states0)
        converged, status, _, _ = newton_iterations(
            pb, u, m, tol=stage_tol, max_iter=max_iter, linear_solver=linear_solver, direct_max=direct_max,
            max_backtracks=max_backtracks, history=history, t_start=t_start, progress=report,
            callback=callback, cont=cont, krylov_rtol=krylov_rtol, nonmonotone=nonmonotone,
            every_gap=exploitability == "every")
        if not converged and not last:
            status = f"{status} (continuation stage {j + 1} of {len(stages)}, parameter {cont:g})"
            break
    hist = {key: np.asarray(v, dtype=float) for key, v in history.items()}
    n_rec = len(hist["residual"])
    if grid.ndim > 1 and u is not None:
        sysm = make_system(problem)
        states = sysm.states(u)
        u, m = sysm.fields(u, m)
    else:
        states = empty_states(problem)
    sol = HJBSolution(u, states, np.zeros(Nt, dtype=np.int64))
    if exploitability != "none" and n_rec and u is not None:
        gap = nash_gap(problem, u, m, sol.states, tol=newton_tol, maxit=newton_maxit)
        hist["exploitability"][-1] = gap
    hist["iteration"] = np.arange(1, n_rec + 1, dtype=float)
    result = MFGResult(grid=grid, t=problem.t, u=u, m=m, converged=converged, status=status, iterations=n_rec,
                       history=hist, params=problem.describe(), solver=options)
    result.extras["hjb_solution"] = sol
    report.done(result)
    return result
