"""The 1-D forward-backward system Newton drives (``DiscreteSystem``): residuals R_H, R_F of the discrete HJB
and FP equations, the exact Jacobian (assembled sparse, or applied matrix-free), and the reduced system
for the density update solved by CG or GMRES (``ReducedSystem``, with block-bidiagonal level solves on
numba kernels).  See ``newton.driver`` for the equations and the driver.

The FP rows are those of the HJB step, M(u^n)^T, except for the planner's congestion Hamiltonian
(``PlannerCongestion``, objective='social'): its HJB rows carry the weights w_s = w + m w' of H + m dH/dm and its
FP rows the agents' weights w, R_F^n = M_w(u^n)^T m^{n+1} - m^n.  The FP blocks then use their own weights:
dR_F/dm^{n+1} = M_w(u^n)^T (+ the weights' m-derivative with w'), dR_F/du^n = the Hessian with the edge weights
of w, and the reduced system's forward sweep is Q^{-T} with Q the block-bidiagonal matrix of the M_w(u^n)
(``ReducedSystem``); the HJB blocks keep w_s (and w_s' in dR_H/dm)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numba import njit

from ..fd import kernels
from ..fd.split_residuals import line_pair_residuals
from ..fd.operator import kernel_data
from .derivatives import coupling_derivative, terminal_derivative
from .ham_terms import line_edge_weights
from .krylov import gmres


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


def edge_weights(uu: np.ndarray, m: np.ndarray, dt: float, h: float, periodic: bool) -> np.ndarray:
    """E_i (levels, N): weights of the edges (i, i+1) in d/du [M(u)^T m] (M = I + dt L(u), Engquist-Osher rows;
    the last edge wraps, zero at a wall): d/du (M(u)^T m) x = Hs x with
    (Hs x)_i = E_i (x_i - x_{i+1}) + E_{i-1} (x_i - x_{i-1}).  The drift does not enter (its upwinding does not
    depend on u)."""
    s = np.roll(uu, -1, axis=1) - uu
    E = (dt / h ** 2) * (np.where(s < 0.0, m, 0.0) + np.where(s > 0.0, np.roll(m, -1, axis=1), 0.0))
    if not periodic:
        E[:, -1] = 0.0
    return E


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
    of M(u^n) and M(u^n)^T, computed once.  With FP rows of their own (the planner's congestion Hamiltonian,
    module docstring) the forward sweep and the FP blocks take those rows: P^{-T}, Hs and C are then Q^{-T}, the
    Hessian and the weight derivative of the FP rows M_w(u^n)^T.  ``solve(rtol)`` can be called again with a smaller rtol:
    the iteration resumes where it stopped."""

    def __init__(self, sysm, u, m, ev, deriv):
        Nt, N = sysm.Nt, sysm.N
        self.shape = (Nt, N)
        self.sysm = sysm
        self.dF, self.dG = deriv
        self.fa = _Levels(ev["lo"], ev["di"], ev["up"], sysm.periodic).args()
        flo, fdi, fup = ev["flo"], ev["fdi"], ev["fup"]   # the FP rows (the HJB rows unless they differ)
        self.ba = _Levels(np.roll(fup, 1, axis=1), fdi, np.roll(flo, -1, axis=1), sysm.periodic).args()
        self.E = np.ascontiguousarray(sysm.edge_weights(u[:Nt], m[1:], ev["WF"]))
        self.cong = sysm.congestion(u, m, ev)
        self.t1 = np.empty((Nt, N))
        self.t2 = np.empty((Nt, N))
        self.RH = ev["RH"]
        self.P_inv(self.RH, self.t1)
        _hessian_apply(self.E, self.t1, self.t2)
        self.b = self.PT_inv(self.t2 - ev["RF"])
        self.use_cg = (self.dF.is_local and self.dG is None and self.cong is None
                       and bool(np.all(self.dF.diag >= 0.0)))
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
        """Phi x: minus the HJB rows' derivative in m^{n+1} (the coupling, an m-dependent G, congestion)."""
        y = self.sysm.dt * self.dF.matvec(x)
        if self.dG is not None:
            y[-1] += self.dG @ x[-1]
        if self.cong is not None:
            y -= self.cong["cH"] * x
        return y

    def fp_m(self, x):
        """The FP rows' derivative in m^{n+1} through an m-dependent Hamiltonian (``DiscreteSystem.congestion``)."""
        return self.sysm.congestion_fp(self.cong, x)

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
            if self.cong is None:
                def op(v):
                    return v + self.K(self.Phi(v.reshape(Nt, N))).ravel()
            else:  # (I + P^{-T} (Hs P^{-1} Phi + C)) dm = b
                def op(v):
                    v2 = v.reshape(Nt, N)
                    self.P_inv(self.Phi(v2), self.t1)
                    _hessian_apply(self.E, self.t1, self.t2)
                    return v + self.PT_inv(self.t2 + self.fp_m(v2)).ravel()
            x, its = gmres(op, self.b.ravel(), rtol=rtol, maxiter=maxiter, x0=self.x)
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
        self.ham = problem.hamiltonian
        self.quadratic = self.ham is None or self.ham.is_quadratic
        self.congested = self.ham is not None and bool(self.ham.depends_on_m)
        # FP rows with other weights than the HJB rows (the planner's congestion Hamiltonian: module docstring)
        self.separate_fp = bool(kd.separate_fp)

    # ------------------------------------------------------------------ pieces
    def weights(self, m: np.ndarray, fp: bool = False):
        """The congestion weights W^n = w(m^{n+1}) (Nt, N) of every step (None unless H depends on m); ``fp``:
        those of the FP rows (``fp_weights`` where they differ from the HJB's)."""
        if not self.congested:
            return None
        w = self.ham.fp_weights if fp and self.separate_fp else self.ham.weights
        return np.ascontiguousarray(w(m[1:]), dtype=float).reshape(self.Nt, self.N)

    def dweights(self, m: np.ndarray, fp: bool = False) -> np.ndarray:
        """d/dm of ``weights`` (Nt, N) at m^{n+1} (``fp``: of the FP rows' weights)."""
        dw = self.ham.fp_dweights if fp and self.separate_fp else self.ham.dweights
        return np.asarray(dw(m[1:]), dtype=float).reshape(self.Nt, self.N)

    def operator(self, W=None):
        """The kernels' Operator with the Hamiltonian weights W (Nt, N) laid out as ONE level of the
        (Nt, N, 1) array the level-batched calls below pass (the problem's own Operator when W is None)."""
        op = self.kd.op
        if W is None:
            return op
        return op._replace(hw=np.ascontiguousarray(W, dtype=float).reshape(1, self.Nt, self.N, 1))

    def coefficients(self, uu: np.ndarray, W=None):
        """Rows (lo, di, up) of M(u^n) for every level n of uu (Nt, N) (congestion weights W (Nt, N)): one
        kernels.axis_coefficients call."""
        Nt, N = uu.shape
        g = np.ascontiguousarray(uu).reshape(Nt, N, 1)
        lo = np.empty((Nt, N, 1))
        di = np.empty((Nt, N, 1))
        up = np.empty((Nt, N, 1))
        drift = self.drift_all if self.has_drift else g
        kernels.axis_coefficients(g, drift, 1, self.kd.axis(0, op=self.operator(W)), lo, di, up)
        return lo.reshape(Nt, N), di.reshape(Nt, N), up.reshape(Nt, N)

    def cost(self, uu: np.ndarray, W=None) -> np.ndarray:
        """c(u^n) of every level: the Engquist-Osher cost of ``kernels`` (W: congestion weights)."""
        Nt, N = uu.shape
        out = np.empty((Nt, N, 1))
        g = np.ascontiguousarray(uu).reshape(Nt, N, 1)
        if self.quadratic:
            kernels.axis_cost(g, 1, self.h, self.periodic, out)
        else:
            kernels.axis_cost_h(g, 1, self.kd.axis(0, op=self.operator(W)), out)
        return out.reshape(Nt, N)

    def congestion(self, u, m, ev):
        """For a Hamiltonian h = w(m) h1(p) (congestion), the m-derivatives of the rows (None otherwise;
        cached in ev): cH = dt w'(m^{n+1}) c1(u^n) (dR_H^n/dm^{n+1}, diagonal; c1 the unit-weight cost) and
        the unit-weight Hamiltonian part of the rows, dM = M(u; 1) - M(u; 0), with s = w'(m^{n+1}) m^{n+1}:
        dR_F^n/dm^{n+1} gains C = (diag(s) dM)^T (``congestion_fp``).  The HJB rows' w' is that of ``weights``,
        the FP rows' that of their own weights (the planner's congestion Hamiltonian: w_s' and w')."""
        if not self.congested:
            return None
        if "cong" not in ev:
            uu = u[:self.Nt]
            one, zero = np.ones((self.Nt, self.N)), np.zeros((self.Nt, self.N))
            r1 = self.coefficients(uu, one)
            r0 = self.coefficients(uu, zero)
            ev["cong"] = {"cH": self.dt * self.dweights(m) * self.cost(uu, one), "s": self.dweights(m, fp=True) * m[1:],
                          "dlo": r1[0] - r0[0], "ddi": r1[1] - r0[1], "dup": r1[2] - r0[2]}
        return ev["cong"]

    @staticmethod
    def congestion_fp(cong, x):
        """C x = dM^T (s x) (``congestion``): the FP rows' change through the weights of m^{n+1}."""
        y = cong["s"] * x
        return cong["ddi"] * y + np.roll(cong["dup"] * y, 1, axis=1) + np.roll(cong["dlo"] * y, -1, axis=1)

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

    def evaluate(self, u: np.ndarray, m: np.ndarray, f: np.ndarray | None = None) -> dict:
        """Residuals R_H, R_F (Nt, N), their scales, and the pieces the Jacobian reuses; ``f``: the running
        cost when it is not ``problem.running_cost(m)`` (a population of a multi-population game)."""
        Nt = self.Nt
        uu = u[:Nt]
        W = self.weights(m)
        lo, di, up = self.coefficients(uu, W)
        f = self.problem.running_cost(m) if f is None else f
        c = self.cost(uu, W)
        src = u[1:] + self.dt * (f + c)
        RH, RF = line_pair_residuals(lo, di, up, uu, src, m[1:], m[:-1])
        WF, rows_fp = W, (lo, di, up)
        if self.separate_fp:   # the FP rows take the agents' weights (module docstring)
            WF = self.weights(m, fp=True)
            rows_fp = self.coefficients(uu, WF)
            _, RF = line_pair_residuals(*rows_fp, uu, src, m[1:], m[:-1])
        sH = float(np.abs(src).max())
        sF = float(np.abs(m[:-1]).max())
        sH = sH if sH > 0 else 1.0
        sF = sF if sF > 0 else 1.0
        hjb = float(np.abs(RH).max()) / sH
        fp = float(np.abs(RF).max()) / sF
        return {"RH": RH, "RF": RF, "sH": sH, "sF": sF, "hjb": hjb, "fp": fp, "lo": lo, "di": di, "up": up,
                "flo": rows_fp[0], "fdi": rows_fp[1], "fup": rows_fp[2], "W": W, "WF": WF,
                "finite": bool(np.isfinite(hjb) and np.isfinite(fp))}

    def edge_weights(self, uu: np.ndarray, m1: np.ndarray, W=None) -> np.ndarray:
        """E_i (Nt, N): Hessian weights of the edges (i, i+1) (the last one wraps, zero at a wall); for a
        non-quadratic Hamiltonian with h'' (``ham_terms``), W the congestion weights."""
        if self.quadratic:
            return edge_weights(uu, m1, self.dt, self.h, self.periodic)
        uu = np.ascontiguousarray(uu, dtype=float)
        E = np.empty(uu.shape)
        Wa = uu if W is None else np.ascontiguousarray(W, dtype=float)
        line_edge_weights(uu, np.ascontiguousarray(m1, dtype=float), Wa, self.dt, self.h, self.periodic,
                          int(self.kd.op.hkind), self.kd.op.hpar, E)
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
        flo, fdi, fup = ev["flo"], ev["fdi"], ev["fup"]
        JF = fdi * dm + np.roll(fup * dm, 1, axis=1) + np.roll(flo * dm, -1, axis=1)
        JF[1:] -= dm[:-1]
        cong = self.congestion(u, m, ev)
        if cong is not None:
            JH += cong["cH"] * dm
            JF += self.congestion_fp(cong, dm)
        E = np.ascontiguousarray(self.edge_weights(u[:self.Nt], m[1:], ev["WF"]))
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
        # FP rows: M(u^n)^T on m^{n+1}, -I on m^n, Hessian on u^n (the FP rows' own M and weights)
        flo, fdi, fup = ev["flo"], ev["fdi"], ev["fup"]
        put(NN + idx, NN + idx, fdi)
        put(NN + idx, NN + left, np.roll(fup, 1, axis=1))
        put(NN + idx, NN + right, np.roll(flo, -1, axis=1))
        put(NN + idx[1:], NN + idx[:-1], -np.ones((Nt - 1, N)))
        cong = self.congestion(u, m, ev)
        if cong is not None:  # the rows' dependence on m^{n+1} through the weights (``congestion``)
            put(idx, NN + idx, cong["cH"])
            s_ = cong["s"]
            put(NN + left, NN + idx, cong["dlo"] * s_)
            put(NN + idx, NN + idx, cong["ddi"] * s_)
            put(NN + right, NN + idx, cong["dup"] * s_)
        E = self.edge_weights(u[:Nt], m[1:], ev["WF"])
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
