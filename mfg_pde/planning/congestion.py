"""MFG planning with a congestion Hamiltonian, solved by Newton's method on the whole discrete system (1-D).

Continuous problem (nu = sigma^2 / 2, c >= 0 the congestion parameter, b the optional base drift):

    -u_t - nu u_xx + H(u_x, m) - b u_x = V(x, t) + F(x, m),      H(p, m) = |p|^2 / (2 (1 + c m))
     m_t - nu m_xx - ( m H_p(u_x, m) )_x + (b m)_x = 0,         H_p = p / (1 + c m)
     m(0) = m0,  m(T) = m1,  u(T) unknown (the Lagrange multiplier of the terminal constraint).

The agents' control is alpha = -H_p(u_x, m) = -u_x / (1 + c m) and their running cost
(1 + c m) |alpha|^2 / 2 + V + F: moving fast through a dense region is expensive.  c = 0 is the
quadratic planning problem of ``planning`` (Hopf-Cole + Sinkhorn).

Discretisation (the core scheme of ``kernels`` with the Hamiltonian divided by 1 + c m).  Cell-centred
grid, D+u_i = (u_{i+1} - u_i)/h, D-u_i = (u_i - u_{i-1})/h, a_i = min(D+u_i, 0), bb_i = max(D-u_i, 0)
(mirror ghosts at a reflecting wall: a_{N-1} = bb_0 = 0; periodic: indices wrap), b = b+ - b- at t_{n+1}.
Step n = 0..Nt-1 (implicit Euler backward, running data at t_{n+1} with m^{n+1}: the core convention),
with w^{n+1}_i = 1 / (1 + c m^{n+1}_i) evaluated at node i:

    R_H^n = (u^n - u^{n+1}) + dt [ -nu D2 u^n + w^{n+1} (a^2 + bb^2)/2 - b+ D+u^n + b- D-u^n - f^n(m^{n+1}) ]
          = M^n u^n - u^{n+1} - dt ( f^n + w^{n+1} cc(u^n) ),              cc = (a^2 + bb^2) / 2
    R_F^n = (M^n)^T m^{n+1} - m^n

where M^n = M(u^n, m^{n+1}) = I + dt L is tridiagonal with rows

    lower_i = dt (-nu/h^2 - Bm_i/h),   upper_i = dt (-nu/h^2 + Ap_i/h),   diag_i = 1 - lower_i - upper_i,
    Ap_i = w_i a_i - b+_i (<= 0),      Bm_i = w_i bb_i + b-_i (>= 0)      (lower_0 = upper_{N-1} = 0 at walls)

and f^n = V(t_{n+1}) + F(m^{n+1}) (``MFGProblem.running_cost``).  As in the core scheme,
d/du [M u - dt w cc(u)] = M(u, m) (the Engquist-Osher identity, w frozen), so the FP equation is the
EXACT adjoint of the linearisation in u of the discrete HJB operator: M is an M-matrix with unit row
sums, hence (M^n)^T has unit column sums (mass is conserved to round-off) and a nonnegative inverse
(a solution has m >= 0).  At c = 0 the equations are literally the core ones (``newton.DiscreteSystem``),
with the terminal condition u^Nt = G replaced by m^Nt = m1.

Unknowns: u^0..u^Nt and m^1..m^{Nt-1} (m^0 = m0 and m^Nt = m1 are data), 2 Nt N numbers; equations:
R_H^0..R_H^{Nt-1} and R_F^0..R_F^{Nt-1}, 2 Nt N numbers.  Two degeneracies cancel: u -> u + const solves
the same equations (right null vector), and sum_{n,i} R_F^n_i = sum m1 - sum m0 identically (a left null
vector: one FP equation is implied by the others).  Gauge: the FP equation of the last step at the node
j* = argmax m1 is replaced by

    g(u) = h sum_i m1_i u^Nt_i = 0          (the m1-weighted mean of u(T) is zero)

which makes the Jacobian nonsingular; the dropped equation still holds at a solution (its residual is
the mass difference of m0 and m1, round-off) and is part of the reported FP residual.  Gauge-invariant
quantities (m, u_x, controls, energies) do not depend on this choice; compare u only after shifting it
to the same gauge (``gauge_shift``).

Exact Jacobian (assembled sparse, unknowns and equations interleaved per node for less fill in the LU):

    dR_H^n/du^n     = M^n                                    dR_H^n/du^{n+1} = -I
    dR_H^n/dm^{n+1} = -dt diag(c w^2 cc) - dt dF^n/dm       (n < Nt-1; dF/dm from ``derivatives.coupling_derivative``)
    dR_F^n/du^n     = Hessian of m^{n+1} . (M u - dt w cc(u)): the graph Laplacian of the edges (i, i+1)
                      with weights E_i = dt/h^2 [ m_i w_i 1{D+u_i < 0} + m_{i+1} w_{i+1} 1{D+u_i > 0} ]
                      (at D+u_i = 0 exactly the average of the two: an element of the generalised Jacobian)
    dR_F^n/dm^{n+1} = (M^n)^T + Q^n,  Q_{ji} = m_i dM_{ij}/dm_i  (dw/dm = -c w^2; columns of Q sum to 0)
    dR_F^n/dm^n     = -I                                     (n >= 1)

(verified against finite differences of the residual in tests/test_planning_newton.py).  An interaction
through the mean (``QuadraticInteraction``: dF^n/dm = coef_n v_n v_n^T, dense) is not expanded into dense
blocks: chains of extra unknowns carry v_n . dm^{n+1} along the grid (``jacobian``), so the LU stays sparse
(about 5x the cost of a local coupling per Newton step; a dense block per level would be far worse).

Newton step: ``scipy.sparse.linalg.splu`` (MMD on A^T A) of the equilibrated Jacobian (FP rows divided by
the local density, m columns multiplied by it: the LU's round-off is then relative to the local density).
Globalisation: backtracking (Armijo, halving) line search on phi = 1/2 ||(R_H / sH, R_F / sF, g / sH)||^2.
Trial densities (``density_update``): "safe" (default) m + alpha dm while no density is more than halved,
otherwise m + alpha dm where dm >= 0 and m exp(alpha dm/m) where dm < 0 -- positive for every alpha and
Newton's step to first order; "linear" m + alpha dm (trial steps with min m < -negative_tol max m are
rejected); "log" m exp(alpha dm/m).  A full additive step makes the per-level mass balance (linear in m)
exact, so near convergence the mass is conserved to round-off.  Stop when

    residual = max(hjb, fp) <= tol,   hjb = max(|R_H|, |g|) / max|u^{n+1} + dt (f^n + w cc)|,
                                      fp = max|R_F| / max|m^n|

(the relative residuals of the core solver).

Start (``initial``): "sinkhorn" (default) -- the c = 0 solution of the Hopf-Cole/Sinkhorn planning solver
(``planning.solve_planning``); "interpolate" -- m^n = (1 - t_n/T) m0 + (t_n/T) m1 and u = 0; or arrays
``m_init``/``u_init``.  Continuation in c (``continuation=True``, default): the stages 0, c_steps..., c are
solved in turn, each from the previous solution, intermediate ones to ``continuation_tol``; a stage that
fails is retried from the last solved one after inserting the midpoint c value (at most ``max_stages``
stages).  A run that does not converge returns with converged=False and a status saying why.

Relation with the quadratic planning solver (c = 0).  The two discrete schemes do NOT coincide: Sinkhorn
solves the Hopf-Cole transform of the equations discretised linearly (centred diffusion of phi = e^{-u/sigma^2}),
this module the Engquist-Osher upwind scheme of the core solver.  At c = 0 the Newton solution is the core
scheme's solution to round-off (the core terminal-cost solver with G = u(T) of the Newton result reproduces
u and m, m(T) = m1 included, to 1e-14), and it differs from the Sinkhorn solution by O(h + dt): for the
floored Gaussian bridge of the tests the space-time L1 distance of the densities is 7.1e-2, 4.0e-2, 2.2e-2,
1.1e-2 at N = Nt = 50, 100, 200, 400 (observed orders 0.83, 0.87, 0.93), the density-weighted L1 distance of
the controls 0.69, 0.31, 0.15, 0.070 (orders 1.1).

Limitation: thin tails.  Where m1 is many orders of magnitude below its peak (a Gaussian sampled out to
10 standard deviations: 1e-50), the upwind scheme's numerical diffusion h |u_x| / 2 dominates nu, and the
discrete solution needs an enormous u(T) there (u ~ 1e34 was seen at N = 50); Newton's region of
convergence shrinks to nothing and the run stops without converging (its status says so).  Give m1 a
floor (e.g. 1e-6 of its peak); densities bounded away from zero converge in 4-15 Newton steps.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..model.densities import check_density
from ..model.grid import BC_PERIODIC, BC_REFLECTING
from ..result import MFGResult, PlanningRecord, gradient
from ..fd.split_residuals import line_pair_residuals
from ..iterate.monitor import Progress
from ..newton.derivatives import coupling_derivative
from .energies import running_cost

HISTORY_KEYS = ("residual", "hjb_residual", "fp_residual", "gauge", "line_search", "step_norm", "min_density",
                "mass_error", "c", "stage", "wall_time")


# ============================================================================ the discrete system
class PlanningSystem:
    """The discrete congestion planning system of one problem (1-D): residuals, Jacobian, Newton step.

    Iterates are full arrays u, m shaped (Nt+1, N); ``complete`` imposes m[0] = m0, m[Nt] = m1."""

    def __init__(self, problem, c: float = 0.0):
        grid = problem.grid
        if grid.ndim != 1:
            raise NotImplementedError(f"solve_planning_newton is 1-D only (this grid has {grid.ndim} axes); "
                                      "use solve_planning (quadratic Hamiltonian, any dimension)")
        self.problem = problem
        self.c = _check_c(c)
        self.grid = grid
        self.Nt, self.N = problem.Nt, grid.size
        self.dt, self.nu = problem.dt, problem.nu
        self.h = float(grid.spacing[0])
        self.periodic = bool(grid.bc_codes[0] == BC_PERIODIC)
        Nt, N = self.Nt, self.N
        b = problem.drift_steps()
        if b is None:
            self.bp = self.bm = None
        else:
            b = np.broadcast_to(b[:, 0], (Nt, N))
            self.bp = np.maximum(b, 0.0)
            self.bm = np.maximum(-b, 0.0)
        self.m0 = np.asarray(problem.m0, dtype=float)
        self.m1 = np.asarray(problem.m1, dtype=float)
        self.jstar = int(np.argmax(self.m1))
        # interleaved numbering: slot p = n N + i of level n = 0..Nt-1 holds (u^n_i, m^{n+1}_i), and
        # (u^{Nt-1}_i, u^{Nt}_i) on the last level; rows (R_H^n_i, R_F^n_i), the gauge on R_F^{Nt-1}_{j*}
        P = np.arange(Nt * N).reshape(Nt, N)
        self.ucol = np.vstack([2 * P, 2 * P[-1:] + 1])      # (Nt+1, N): column of u^n_i
        self.mcol = 2 * P[:-1] + 1                         # (Nt-1, N): column of m^{k}_i, k = 1..Nt-1
        self.hrow = 2 * P
        self.frow = 2 * P + 1
        self.grow = int(self.frow[-1, self.jstar])
        self.size = 2 * Nt * N
        self.permc_spec = "MMD_ATA"

    # ------------------------------------------------------------------ layout
    def complete(self, u: np.ndarray, m: np.ndarray) -> None:
        """Impose the data m[0] = m0 and m[Nt] = m1 (in place)."""
        m[0] = self.m0
        m[self.Nt] = self.m1

    def pack(self, u: np.ndarray, m: np.ndarray) -> np.ndarray:
        z = np.empty(self.size)
        z[self.ucol.ravel()] = u.ravel()
        z[self.mcol.ravel()] = m[1:self.Nt].ravel()
        return z

    def unpack(self, z: np.ndarray):
        """Full (u, m) arrays from the unknown vector (data levels of m filled in)."""
        u = z[self.ucol]
        m = np.empty((self.Nt + 1, self.N))
        m[1:self.Nt] = z[self.mcol]
        self.complete(u, m)
        return u, m

    def gauge(self, u: np.ndarray) -> float:
        """g(u) = h sum_i m1_i u^Nt_i (zero in the chosen gauge)."""
        return self.h * float(np.dot(self.m1, u[self.Nt]))

    # ------------------------------------------------------------------ residuals
    def _pieces(self, uu: np.ndarray, mm: np.ndarray) -> dict:
        """Upwind pieces of every step n (uu = u[:Nt], mm = m[1:], both (Nt, N))."""
        h, dt, nu = self.h, self.dt, self.nu
        sp_ = (np.roll(uu, -1, axis=1) - uu) / h       # D+u
        sm_ = (uu - np.roll(uu, 1, axis=1)) / h        # D-u
        if not self.periodic:
            sp_[:, -1] = 0.0
            sm_[:, 0] = 0.0
        a = np.minimum(sp_, 0.0)
        bb = np.maximum(sm_, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = 1.0 / (1.0 + self.c * mm) if self.c > 0 else np.ones_like(mm)
        Ap = w * a
        Bm = w * bb
        if self.bp is not None:
            Ap = Ap - self.bp
            Bm = Bm + self.bm
        dif = nu / h ** 2
        lo = dt * (-dif - Bm / h)
        up = dt * (-dif + Ap / h)
        if not self.periodic:
            lo[:, 0] = 0.0
            up[:, -1] = 0.0
        di = 1.0 - lo - up
        cc = 0.5 * (a * a + bb * bb)
        return {"sp": sp_, "a": a, "bb": bb, "w": w, "lo": lo, "up": up, "di": di, "cc": cc}

    def evaluate(self, u: np.ndarray, m: np.ndarray) -> dict:
        """Residuals R_H, R_F (Nt, N), the gauge g, their relative sizes and the pieces the Jacobian reuses."""
        Nt = self.Nt
        uu = u[:Nt]
        mm = m[1:]
        pc = self._pieces(uu, mm)
        lo, di, up = pc["lo"], pc["di"], pc["up"]
        f = self.problem.running_cost(m)
        src = u[1:] + self.dt * (f + pc["w"] * pc["cc"])
        RH, RF = line_pair_residuals(lo, di, up, uu, src, mm, m[:-1])
        g = self.gauge(u)
        sH = float(np.abs(src).max())
        sF = float(np.abs(m[:-1]).max())
        sH = sH if np.isfinite(sH) and sH > 0 else 1.0
        sF = sF if np.isfinite(sF) and sF > 0 else 1.0
        hjb = max(float(np.abs(RH).max()), abs(g)) / sH
        fp = float(np.abs(RF).max()) / sF
        finite = bool(np.isfinite(hjb) and np.isfinite(fp))
        return {"RH": RH, "RF": RF, "g": g, "sH": sH, "sF": sF, "hjb": hjb, "fp": fp,
                "residual": max(hjb, fp), "finite": finite, "pieces": pc}

    def merit(self, ev: dict, sH: float, sF: float) -> float:
        return 0.5 * (float(np.sum((ev["RH"] / sH) ** 2)) + float(np.sum((ev["RF"] / sF) ** 2))
                      + (ev["g"] / sH) ** 2)

    def residual_vector(self, ev: dict) -> np.ndarray:
        """The equations in the interleaved row order of ``jacobian`` (the gauge in row ``grow``)."""
        r = np.empty(self.size)
        r[self.hrow.ravel()] = ev["RH"].ravel()
        r[self.frow.ravel()] = ev["RF"].ravel()
        r[self.grow] = ev["g"]
        return r

    # ------------------------------------------------------------------ Jacobian
    def jacobian(self, u: np.ndarray, m: np.ndarray, ev: dict | None = None, border: bool = False):
        """Exact sparse Jacobian of ``residual_vector`` with respect to ``pack(u, m)`` (csc, size x size).

        With ``border=True`` the rank-one terms of interactions through the mean (``QuadraticInteraction``:
        dF^n/dm = coef_n v_n v_n^T) are not expanded into dense N x N blocks: the product v_n . dm^{n+1} is
        carried by local chains of extra unknowns, the prefix sums sigma_i = sigma_{i-1} + v_i dm_i and their
        broadcast tau_i = tau_{i+1}, tau_{N-1} = sigma_{N-1}, and HJB row i reads -dt coef_n v_i tau_i.  Every
        extra row has at most 3 entries, so the LU fills like the plain system (a dense bordering row per level
        would fill each level completely).  Returns (matrix of size (size + k)^2, k) then; the first ``size``
        components of its solution are the step."""

        Nt, N, dt, h, c = self.Nt, self.N, self.dt, self.h, self.c
        ev = ev if ev is not None else self.evaluate(u, m)
        pc = ev["pieces"]
        lo, di, up, w, a, bb, cc = pc["lo"], pc["di"], pc["up"], pc["w"], pc["a"], pc["bb"], pc["cc"]
        mm = m[1:]
        rows, cols, vals = [], [], []

        def put(r, col, v):
            r = np.asarray(r)
            rows.append(r.ravel())
            cols.append(np.broadcast_to(np.asarray(col), r.shape).ravel())
            vals.append(np.broadcast_to(np.asarray(v, dtype=float), r.shape).ravel())

        U = self.ucol[:Nt]
        Ul = np.roll(U, 1, axis=1)
        Ur = np.roll(U, -1, axis=1)
        extra = 0
        # ---- HJB rows
        put(self.hrow, U, di)
        put(self.hrow, Ul, lo)
        put(self.hrow, Ur, up)
        put(self.hrow, self.ucol[1:], -1.0)
        if Nt > 1:
            Mc = self.mcol                       # m^{n+1} of rows n = 0..Nt-2
            if c > 0:
                put(self.hrow[:-1], Mc, -dt * c * (w * w * cc)[:-1])
            coupling = self.problem.coupling
            if coupling is not None:
                dF = coupling_derivative(coupling, self.grid, self.problem.t[1:Nt], m[1:Nt])
                lowrank = dF.lowrank if border else []
                if border:
                    dF.lowrank = []
                r_, c_, v_ = dF.coo(0, 0, -dt)
                rows += [2 * np.asarray(x) for x in r_]
                cols += [2 * np.asarray(x) + 1 for x in c_]
                vals += [np.asarray(x, dtype=float) for x in v_]
                for coef, V in lowrank:  # -dt coef_n v_n (v_n . dm^{n+1}) through local chains (see docstring)
                    base = self.size + extra + 2 * np.arange((Nt - 1) * N).reshape(Nt - 1, N)
                    sig, tau = base, base + 1
                    put(sig, sig, 1.0)                         # sigma_i - sigma_{i-1} - v_i dm_i = 0
                    put(sig[:, 1:], sig[:, :-1], -1.0)
                    put(sig, Mc, -V)
                    put(tau, tau, 1.0)                         # tau_i - tau_{i+1} = 0, tau_{N-1} = sigma_{N-1}
                    put(tau[:, :-1], tau[:, 1:], -1.0)
                    put(tau[:, -1], sig[:, -1], -1.0)
                    put(self.hrow[:-1], tau, -dt * coef[:, None] * V)
                    extra += 2 * (Nt - 1) * N
        # ---- FP rows: Hessian on u^n (at a kink D+u = 0 the two one-sided second derivatives are
        # averaged: an element of the generalised Jacobian, so u = const is no singular start)
        s = pc["sp"]
        mw = mm * w
        mwr = np.roll(mw, -1, axis=1)
        E = (dt / h ** 2) * np.where(s < 0.0, mw, np.where(s > 0.0, mwr, 0.5 * (mw + mwr)))
        if not self.periodic:
            E[:, -1] = 0.0
        El = np.roll(E, 1, axis=1)
        put(self.frow, U, E + El)
        put(self.frow, Ur, -E)
        put(self.frow, Ul, -El)
        if Nt > 1:
            # (M^n)^T on m^{n+1}
            F_ = self.frow[:-1]
            Mc = self.mcol
            Ml = np.roll(Mc, 1, axis=1)
            Mr = np.roll(Mc, -1, axis=1)
            put(F_, Mc, di[:-1])
            put(F_, Ml, np.roll(up, 1, axis=1)[:-1])
            put(F_, Mr, np.roll(lo, -1, axis=1)[:-1])
            if c > 0:  # Q: the m-dependence of M through w
                k = dt * c * w * w / h
                dlo = k * bb
                dup = -k * a
                ddi = -(dlo + dup)
                put(F_, Mc, (mm * ddi)[:-1])
                put(F_, Ml, np.roll(mm * dup, 1, axis=1)[:-1])
                put(F_, Mr, np.roll(mm * dlo, -1, axis=1)[:-1])
            # -I on m^n (rows n = 1..Nt-1)
            put(self.frow[1:], Mc, -1.0)
        rows = np.concatenate(rows)
        cols = np.concatenate(cols)
        vals = np.concatenate(vals)
        keep = rows != self.grow
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        rows = np.concatenate([rows, np.full(N, self.grow)])
        cols = np.concatenate([cols, self.ucol[Nt]])
        vals = np.concatenate([vals, h * self.m1])
        n = self.size + extra
        J = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsc()
        J.sum_duplicates()
        J.eliminate_zeros()
        return (J, extra) if border else J

    def direction(self, u, m, ev):
        """Newton step by sparse LU: du (Nt+1, N) and the relative density change drel = dm / |m| (Nt+1, N,
        zero on the data levels).

        The system is solved equilibrated: FP rows divided by the local density scale max(m^n_j, m^{n+1}_j),
        the m columns multiplied by |m^k_j|.  The same step in exact arithmetic, but the LU's round-off is
        then relative to the local density instead of max m: densities spanning many orders of magnitude
        keep accurate steps in their tails."""
        J, extra = self.jacobian(u, m, ev, border=True)
        Nt = self.Nt
        tiny = 1e-300
        n = self.size + extra
        rs = np.ones(n)
        rs[self.frow.ravel()] = 1.0 / np.maximum(np.maximum(np.abs(m[:-1]), np.abs(m[1:])), tiny).ravel()
        rs[self.grow] = 1.0
        cs = np.ones(n)
        cs[self.mcol.ravel()] = np.maximum(np.abs(m[1:Nt]), tiny).ravel()
        Js = sp.diags(rs) @ J @ sp.diags(cs)
        lu = spla.splu(Js.tocsc(), permc_spec=self.permc_spec)
        rhs = np.zeros(n)
        rhs[:self.size] = -self.residual_vector(ev)
        y = lu.solve(rs * rhs)
        du = y[self.ucol]
        drel = np.zeros((self.Nt + 1, self.N))
        drel[1:self.Nt] = y[self.mcol]
        return du, drel

    # ------------------------------------------------------------------ derived quantities
    def control(self, u: np.ndarray, m: np.ndarray) -> np.ndarray:
        """alpha = -H_p(u_x, m) = -u_x / (1 + c m) with centred u_x (``result.gradient``), (Nt+1, N, 1)."""
        return -gradient(self.grid, u) / (1.0 + self.c * m)[..., None]

    def energies(self, u: np.ndarray, m: np.ndarray) -> dict:
        """Scheme-consistent (upwind) space-time sums over the steps n = 0..Nt-1:

        energy_E       = sum dt h m^{n+1} w^2 (a^2 + bb^2)    ~ int int m |alpha|^2 dt dx   (no 1/2)
        kinetic_cost   = sum dt h m^{n+1} w (a^2 + bb^2)/2    ~ int int m (1 + c m) |alpha|^2 / 2
        """
        pc = self._pieces(u[:self.Nt], m[1:])
        q = pc["a"] ** 2 + pc["bb"] ** 2
        scale = self.dt * self.h
        return {"energy_E": float(scale * np.sum(m[1:] * pc["w"] ** 2 * q)),
                "kinetic_cost": float(scale * np.sum(m[1:] * pc["w"] * 0.5 * q))}


# ============================================================================ helpers
def _check_c(c) -> float:
    try:
        c = float(c)
    except (TypeError, ValueError):
        raise ValueError(f"c = {c!r}: the congestion parameter must be a number >= 0") from None
    if not (np.isfinite(c) and c >= 0):
        raise ValueError(f"c = {c}: the congestion parameter must be finite and >= 0 "
                         "(H = |p|^2 / (2 (1 + c m)); c = 0 is the quadratic Hamiltonian)")
    return c


def check_planning_data(problem) -> None:
    """Refuse data the Newton planning solver cannot work with, naming the parameter and the fix."""
    from ..model.problem import PlanningProblem

    if not isinstance(problem, PlanningProblem):
        raise ValueError(f"problem is a {type(problem).__name__}; solve_planning_newton needs a "
                         "mfg_pde.PlanningProblem (both end densities m0 and m1)")
    grid = problem.grid
    if grid.ndim != 1:
        raise NotImplementedError(f"solve_planning_newton is 1-D only (this grid has {grid.ndim} axes); "
                                  "use solve_planning (quadratic Hamiltonian, any dimension)")
    if int(grid.bc_codes[0]) not in (BC_REFLECTING, BC_PERIODIC):
        raise ValueError(f"grid bc = {grid.bc[0]!r}: solve_planning_newton supports 'reflecting' or 'periodic' "
                         "boundaries (a planning problem keeps its mass)")
    if not problem.sigma > 0:
        raise ValueError(f"sigma = {problem.sigma}: the planning problem needs noise (sigma > 0); with sigma = 0 "
                         "it is optimal transport, which this solver does not handle")
    if problem.Nt < 2:
        raise ValueError(f"Nt = {problem.Nt}: need at least 2 time steps (one interior density level)")
    if getattr(problem, "terminal_cost", None) is not None:
        raise ValueError("a planning problem has no terminal cost (m(T) = m1 replaces u(T) = G); remove it")
    m0 = check_density(grid, problem.m0, "m0")
    m1 = check_density(grid, problem.m1, "m1")  # shape, finite, >= 0, integral 1
    if np.any(m1 <= 0):
        raise ValueError(f"m1 vanishes at {int(np.sum(m1 <= 0))} nodes: u(T) would be +inf there and the "
                         "Newton system singular; use a strictly positive m1, e.g. "
                         "m1 = mfg_pde.normalise(grid, m1 + 1e-12 * m1.max())")
    d = abs(float(grid.integrate(m1)) - float(grid.integrate(m0)))
    if d > 1e-12:
        raise ValueError(f"m0 and m1 have masses differing by {d:.2e}: the discrete FP equations conserve mass "
                         "exactly, so no solution exists; normalise both (mfg_pde.normalise(grid, m))")


def gauge_shift(grid, m1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """u shifted by a constant so that h sum_i m1_i u^Nt_i = 0 (the gauge of ``solve_planning_newton``)."""
    return u - float(grid.integrate(m1 * u[-1]))


def _initial_pair(problem, initial, m_init, u_init):
    """Starting iterate (u, m) and a note on how it was made."""
    grid, Nt = problem.grid, problem.Nt
    if m_init is not None or u_init is not None:
        if m_init is None:
            raise ValueError("u_init needs m_init: the pair (u_init, m_init) is the Newton starting point")
        m = grid.check_field(m_init, "m_init", (Nt + 1,)).astype(float).copy()
        if not np.all(np.isfinite(m)):
            raise ValueError("m_init has non-finite values")
        u = np.zeros((Nt + 1,) + grid.shape) if u_init is None else \
            grid.check_field(u_init, "u_init", (Nt + 1,)).astype(float).copy()
        if not np.all(np.isfinite(u)):
            raise ValueError("u_init has non-finite values")
        if np.any(m < 0):
            raise ValueError(f"m_init has negative values (min {m.min():.3g}); give a density guess >= 0")
        return u, m, "user"
    if initial not in ("sinkhorn", "interpolate"):
        raise ValueError(f"initial = {initial!r}: choose 'sinkhorn' (c = 0 Hopf-Cole solution) or 'interpolate'")
    if initial == "sinkhorn":
        from .sinkhorn import PlanningError, solve_planning

        try:
            # the implicit-Euler sweeps: the c = 0 solution of the very scheme Newton solves (the second-order
            # default is a different discretisation, O(dt) away, which Newton would first have to undo)
            r = solve_planning(problem, tol=1e-8, sinkhorn_tol=1e-10, time_scheme="euler")
        except PlanningError as exc:
            r = None
            why = str(exc)
        if r is not None and np.all(np.isfinite(r.u)) and np.all(np.isfinite(r.m)):
            return r.u.copy(), r.m.copy(), f"sinkhorn ({r.status})"
        if r is not None:
            why = "non-finite u (m1 underflows)"
        note = f"interpolate (sinkhorn start failed: {why})"
    else:
        note = "interpolate"
    tt = (problem.t / problem.T)[:, None]
    m = (1.0 - tt) * problem.m0[None] + tt * problem.m1[None]
    return np.zeros((Nt + 1,) + grid.shape), m, note


def _positive_start(m: np.ndarray) -> np.ndarray:
    """Interior levels floored at 1e-14 max m: the steps are computed relative to m (``direction``), so an
    exact zero would never move."""
    m = m.copy()
    m[1:-1] = np.maximum(m[1:-1], 1e-14 * float(np.abs(m).max()))
    return m


# ============================================================================ Newton
def _line_search(sysm, u, m, du, drel, sH, sF, phi0, max_backtracks, negative_tol, update):
    alpha = 1.0
    rejected_negative = 0
    am = np.abs(m)
    for _ in range(int(max_backtracks) + 1):
        u_new = u + alpha * du
        with np.errstate(over="ignore"):
            if update == "linear":
                m_new = m + alpha * am * drel
            elif update == "log":
                m_new = m * np.exp(alpha * drel)
            elif float((alpha * drel).min()) >= -0.5:  # "safe", no density more than halved: plain Newton
                m_new = m + alpha * am * drel
            else:  # "safe": Newton where m grows, m exp(alpha drel) where it shrinks (stays > 0, C^1 in alpha)
                m_new = np.where(drel >= 0.0, m + alpha * am * drel, m * np.exp(np.minimum(alpha * drel, 0.0)))
        sysm.complete(u_new, m_new)
        if m_new.min() < -negative_tol * m_new.max():
            rejected_negative += 1
            alpha *= 0.5
            continue
        with np.errstate(all="ignore"):
            ev_new = sysm.evaluate(u_new, m_new)
            phi = sysm.merit(ev_new, sH, sF)
        if ev_new["finite"] and np.isfinite(phi) and phi <= (1.0 - 1e-4 * alpha) * phi0:
            return True, alpha, u_new, m_new, ev_new, rejected_negative
        alpha *= 0.5
    return False, alpha, None, None, None, rejected_negative


def newton_planning_iterations(sysm: PlanningSystem, u, m, tol=1e-10, max_iter=30, max_backtracks=30,
                               negative_tol=1e-12, update="safe", history=None, t_start=None, stage=0,
                               progress=False):
    """Newton with backtracking from (u, m) (full arrays, modified in place).  Returns (converged, status).
    progress: bool or an ``iterate.monitor.Progress`` (one line per Newton step on the ``mfg_pde`` logger)."""
    t_start = time.perf_counter() if t_start is None else t_start
    history = {k: [] for k in HISTORY_KEYS} if history is None else history
    sysm.complete(u, m)
    mass0 = float(sysm.grid.integrate(sysm.m0))
    with np.errstate(all="ignore"):
        ev = sysm.evaluate(u, m)

    report = progress if isinstance(progress, Progress) else Progress(progress, tol=tol)

    pending = [None]   # the length of the step that led to the next iterate (its progress row says it)

    def push(rec):
        rec["wall_time"] = time.perf_counter() - t_start
        for key in history:
            history[key].append(float(rec.get(key, np.nan)))
        # one progress row per iterate, numbered by the Newton steps taken to reach it (the result's
        # ``iterations``): the stage's start, then the iterate after each step with that step's length
        alpha = rec["line_search"]
        taken = np.asarray(history["line_search"][:-1])
        steps = int(np.sum(taken > 0))
        how = "start" if pending[0] is None else f"step {pending[0]:.3g}"
        if alpha == 0:
            how += ", line search failed"
        pending[0] = alpha if np.isfinite(alpha) and alpha > 0 else None
        report(steps, rec, force=True, label=f"c = {sysm.c:g}, {how}")

    for k in range(int(max_iter) + 1):
        res = ev["residual"]
        rec = {"residual": res, "hjb_residual": ev["hjb"], "fp_residual": ev["fp"], "gauge": abs(ev["g"]),
               "min_density": float(m.min() / np.abs(m).max()), "c": sysm.c, "stage": float(stage),
               "mass_error": float(np.abs(sysm.grid.integrate(m) - mass0).max()),
               "line_search": np.nan, "step_norm": np.nan}
        if not ev["finite"]:
            push(rec)
            return False, f"diverged: non-finite residual at newton iteration {k} (c = {sysm.c:g})"
        if res <= tol:
            push(rec)
            return True, "converged"
        if k == int(max_iter):
            push(rec)
            return False, (f"not converged: max_iter = {max_iter} reached with residual {res:.3e} > tol {tol:.1e} "
                           f"(c = {sysm.c:g})")
        sH, sF = ev["sH"], ev["sF"]
        phi0 = sysm.merit(ev, sH, sF)
        try:
            with np.errstate(all="ignore"):
                du, drel = sysm.direction(u, m, ev)
        except RuntimeError as exc:  # splu: exactly singular
            push(rec)
            return False, f"not converged: singular Newton matrix at iteration {k + 1} (c = {sysm.c:g}): {exc}"
        if not (np.all(np.isfinite(du)) and np.all(np.isfinite(drel))):
            push(rec)
            return False, f"diverged: non-finite Newton step at iteration {k + 1} (c = {sysm.c:g})"
        ok, alpha, u_new, m_new, ev_new, neg = _line_search(sysm, u, m, du, drel, sH, sF, phi0, max_backtracks,
                                                            negative_tol, update)
        rec["step_norm"] = max(float(np.abs(du).max()) / max(float(np.abs(u).max()), 1e-300),
                               float(np.abs(drel).max()))
        rec["line_search"] = alpha if ok else 0.0
        push(rec)
        if not ok:
            why = f", {neg} trial steps rejected for negative densities" if neg else ""
            return False, (f"not converged: line search failed at newton iteration {k + 1} (residual {res:.3e}, "
                           f"{max_backtracks} backtracks{why}; c = {sysm.c:g})")
        u[:] = u_new
        m[:] = m_new
        ev = ev_new
    return False, "not converged"  # not reached


def _tail_hint(grid, m1) -> str:
    span = float(np.log10(m1.max() / m1.min()))
    if span <= 12:
        return ""
    return (f"; m1 spans {span:.0f} orders of magnitude: in its thin tails the upwind solution needs a huge u(T) "
            "and Newton's region of convergence shrinks -- give m1 a floor, e.g. "
            "normalise(grid, m1 + 1e-6 * m1.max())")


def solve_planning_newton(problem, c: float = 0.0, tol: float = 1e-10, max_iter: int = 30,
                          initial: str = "sinkhorn", m_init=None, u_init=None, continuation: bool = True,
                          c_steps=None, continuation_tol: float = 1e-6, max_stages: int = 12,
                          max_backtracks: int = 30, density_update: str = "safe", negative_tol: float = 1e-12,
                          progress: bool = False) -> MFGResult:
    """Solve the planning problem with H = |p|^2 / (2 (1 + c m)) by Newton on the whole discrete system.

    Parameters
    ----------
    problem : PlanningProblem (1-D grid, reflecting or periodic; sigma > 0; potential, coupling, drift allowed;
        m1 > 0 at every node).
    c : congestion parameter (>= 0); c = 0 is the quadratic Hamiltonian.
    tol : stopping tolerance on the relative residual max(hjb, fp) (module docstring).
    max_iter : Newton iterations per continuation stage.
    initial : "sinkhorn" (the c = 0 Hopf-Cole solution; default) or "interpolate" (m^n = (1 - t_n/T) m0 +
        (t_n/T) m1, u = 0); ignored when ``m_init`` (and optionally ``u_init``) are given ((Nt+1, N) arrays).
    continuation : solve c = 0 first, then ``c_steps`` (increasing intermediate values), then c; a failed stage
        is retried after inserting the midpoint of the last solved and the failed c (at most ``max_stages``
        stages in all).  False: Newton on the target c directly from the start.
    continuation_tol : tolerance of the intermediate stages.
    max_backtracks : halvings of the line search before it gives up.
    density_update : how a step dm enters the trial densities m(alpha):
        "safe" (default) m + alpha dm while no density is more than halved, otherwise m + alpha dm where
            dm >= 0 and m exp(alpha dm / m) where dm < 0: positive for every alpha, equal to Newton's step to
            first order (so the Armijo search works);
        "linear" m + alpha dm (pure Newton; trial steps with min m < -negative_tol max m are rejected);
        "log" m exp(alpha dm / m) (Newton in log m).
    negative_tol : tolerance of the positivity check (line search and ``planning.positive``).

    Returns an MFGResult: u (gauge h sum m1 u(T) = 0), m (m[0] = m0, m[Nt] = m1 exactly), converged, status,
    iterations (Newton steps taken, all stages), history (one record per Newton iterate: residual,
    hjb_residual, fp_residual, gauge, line_search (the step length taken; nan on a stage's last record),
    step_norm, min_density (min m / max m), mass_error, c, stage, wall_time), planning (a
    ``result.PlanningRecord``): terminal_mismatch (h sum |m^Nt - m1|: 0 by construction), min_density,
    positive, energy_E and kinetic_cost (``PlanningSystem.energies``: E and int int m (1 + c m) |alpha|^2 / 2),
    congestion_c, stages (the c values solved, in order), initial (how the start was made).
    ``result.alpha`` is the congested control -u_x / (1 + c m) (centred u_x).
    """
    c = _check_c(c)
    check_planning_data(problem)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol = {tol}: must be > 0")
    if int(max_iter) < 0:
        raise ValueError(f"max_iter = {max_iter}: must be >= 0")
    if density_update not in ("safe", "linear", "log"):
        raise ValueError(f"density_update = {density_update!r}: choose 'safe', 'linear' or 'log'")
    if not negative_tol >= 0:
        raise ValueError(f"negative_tol = {negative_tol}: must be >= 0")
    steps = [] if c_steps is None else [_check_c(x) for x in c_steps]
    if any(x >= c for x in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"c_steps = {steps}: give increasing values in [0, c) = [0, {c:g})")
    t_start = time.perf_counter()
    grid = problem.grid
    u, m, init_note = _initial_pair(problem, initial, m_init, u_init)
    u = gauge_shift(grid, problem.m1, u)
    m = _positive_start(m)
    history = {k: [] for k in HISTORY_KEYS}
    report = Progress(progress, tol=tol)

    pending = [c]
    if continuation and c > 0:
        pending = ([] if steps and steps[0] == 0 else [0.0]) + steps + [c]
    solved = []
    converged, status = False, "not started"
    n_stages = 0
    while pending:
        cs = pending[0]
        last = len(pending) == 1
        n_stages += 1
        sysm = PlanningSystem(problem, cs)
        uu, mm = u.copy(), m.copy()
        converged, status = newton_planning_iterations(
            sysm, uu, mm, tol=tol if last else max(tol, continuation_tol), max_iter=max_iter,
            max_backtracks=max_backtracks, negative_tol=negative_tol, update=density_update, history=history,
            t_start=t_start, stage=n_stages - 1, progress=report)
        if converged:
            solved.append(cs)
            u, m = uu, mm
            pending.pop(0)
            continue
        if continuation and solved and n_stages < int(max_stages) and cs - solved[-1] > 1e-6 * c:
            pending.insert(0, 0.5 * (solved[-1] + cs))  # bisect towards the failed c from the last solved one
            continue
        u, m = uu, mm  # the last iterate of the failed stage
        if not last or solved:
            status += f" (continuation: solved c = {[float(f'{x:.6g}') for x in solved]}, target c = {c:g})"
        status += _tail_hint(grid, problem.m1)
        break

    sysm = PlanningSystem(problem, c)
    sysm.complete(u, m)
    hist = {k: np.asarray(v, dtype=float) for k, v in history.items()}
    hist["iteration"] = np.arange(1, len(hist["residual"]) + 1, dtype=float)
    finite = bool(np.all(np.isfinite(u)) and np.all(np.isfinite(m)))
    en = sysm.energies(u, m) if finite else {"energy_E": np.nan, "kinetic_cost": np.nan}
    # the running part with the scheme's own rule (step n: m^{n+1} against V + F at t_{n+1}), as the Sinkhorn solver
    en["running_cost"] = running_cost(problem, m, "left") if finite else np.nan
    en["total_cost"] = en["kinetic_cost"] + en["running_cost"]
    min_density = float(m.min())
    options = {"method": "planning-newton", "c": c, "tol": tol, "max_iter": int(max_iter), "initial": init_note,
               "continuation": bool(continuation), "c_steps": list(steps), "continuation_tol": continuation_tol,
               "density_update": density_update, "gauge": "h sum m1 u(T) = 0"}
    params = problem.describe()
    params["congestion_c"] = c
    n_steps = int(np.sum(hist["line_search"] > 0))
    planning = PlanningRecord(**en,
                              terminal_mismatch=float(grid.integrate(np.abs(m[-1] - problem.m1))),
                              congestion_c=c, stages=solved, min_density=min_density,
                              positive=bool(min_density >= -negative_tol * float(np.abs(m).max())),
                              initial=init_note)
    result = MFGResult(grid=grid, t=problem.t, u=u, m=m, converged=converged, status=status, iterations=n_steps,
                       history=hist, params=params, solver=options, planning=planning,
                       problem=problem)
    if finite:
        result.alpha = sysm.control(u, m)
    report.done(result)
    return result
