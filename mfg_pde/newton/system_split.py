"""Newton's method on the whole direction-split discrete MFG system (2-D and 3-D).

In 2-D/3-D one step of the core scheme (``kernels``) is a chain of d one-axis substeps.  Newton works
on exactly that discrete system, with the split intermediate states as unknowns of their own:

    HJB   s_{-1}^n = u^{n+1} + dt f^n(m^{n+1}),   s_{d-1}^n = u^n,
          R_H[n, k] = M_k(s_k^n) s_k^n - dt c_k(s_k^n) - s_{k-1}^n                 (k = 0..d-1)
    FP    mu_d^n = m^n,   mu_0^n = m^{n+1},
          R_F[n, k] = M_k(s_k^n)^T mu_k^n - mu_{k+1}^n                             (k = 0..d-1)

so the problem is a chain of Nt d "levels" (n, k) -- backward in the order (n, 0), (n, 1), ...,
(n, d-1), (n-1, 0), ... for HJB and forward in the reverse order for FP -- each with the one-axis
M-matrix M_k = I + dt L_k of the core kernels (lines along axis k).  A converged Newton iterate is the
same discrete solution the core coupling loop converges to.

Exact Jacobian, level by level (the one-axis form of ``newton``'s 1-D identities):

    dR_H[n,k]/ds_k = M_k(s_k)          (Engquist-Osher: d/ds [M_k(s) s - dt c_k(s)] = M_k(s))
    dR_H[n,k]/ds_{k-1} = -I,           dR_H[n,0]/dm^{n+1} = -dt dF^n/dm
    dR_F[n,k]/dmu_k = M_k(s_k)^T,      dR_F[n,k]/dmu_{k+1} = -I
    dR_F[n,k]/ds_k  = Hs_k = Hess_s [mu_k . (M_k(s) s - dt c_k(s))]

Hs_k is the graph Laplacian of the edges (i, i+1) along axis k with the upwind weights
E = dt / h_k^2 [mu_i 1{D+s < 0} + mu_{i+1} 1{D+s > 0}] (no edge across a reflecting wall).
With P the block-bidiagonal chain of the M_k (so P^T is the FP chain) and Phi the coupling block,
the Newton system is [[P, -Phi], [Hs, P^T]] (du, dmu) = -(R_H, R_F).

Linear solve (preconditioned Krylov): du is eliminated exactly with one backward chain of line
solves (P^{-1}, the linearised HJB sweep) and dmu with one forward chain (P^{-T}, the FP sweep), which
leaves a system for the coupled unknowns dm^{n+1} = dmu_0^n only:

    (I + E K E^T Phi) dm = E b,   K = P^{-T} Hs P^{-1},   b = P^{-T} (Hs P^{-1} R_H - R_F),

(E: restriction to the k = 0 levels), then dmu = b - K E^T Phi dm and du = P^{-1} (E^T Phi dm - R_H).
For a monotone local coupling (dF/dm diagonal, >= 0) it is symmetrised with S = (dt dF/dm)^{1/2}:
(I + S E K E^T S) y = S E b, an SPD matrix with eigenvalues >= 1, solved by conjugate gradients;
otherwise GMRES.  One Krylov iteration costs one linearised backward-forward sweep (2 d Nt batched
tridiagonal line solves): the sweep IS the preconditioner, and the Krylov method only has to resolve
the coupling.  The driver (line search, forcing terms, continuation, warm starts, history) is
``newton.newton_iterations``; this module supplies the system object it drives (``SplitSystem``,
the same interface as ``newton.DiscreteSystem``).

Iterates are "extended" arrays U, Mu shaped (Nt+1, d, n0, n1, n2) (kernel layout):
U[n, k] = s_k^n for n < Nt (U[n, d-1] = u^n), U[Nt, :] = u^Nt = G;  Mu[n+1, k] = mu_k^n
(Mu[n+1, 0] = m^{n+1}), Mu[0, :] = m^0.  ``lift`` builds them from plain fields (u, m), ``fields`` gives
the plain fields back.

FP rows of their own: the planner's congestion Hamiltonian (``PlannerCongestion``, objective='social') builds
the HJB factors with the weights w_s of H + m dH/dm and the FP factors with the agents' weights w,
R_F[n, k] = M_k^w(s_k)^T mu_k - mu_{k+1}.  The FP blocks then take their own Operator (``fp_op``): the forward
chain is Q^{-T} (Q the chain of the M_k^w), Hs_k has the edge weights of w, and the weights' m-derivative in the
FP rows is w' (in the HJB rows w_s').

Supported: reflecting and periodic axes, any drift, potential, local couplings (``LocalPower``,
``LocalLog``), ``QuadraticInteraction`` (dF/dm of rank d: GMRES), ``FixedGuidance``, sums and scalings
of them, and terminal costs independent of m_T.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..model import couplings as cpl
from ..fd import kernels
from .derivatives import coupling_derivative
from .ham_terms import split_hessian_apply
from .krylov import gmres
from ..fd.operator import kernel_data


# ============================================================================ numba chains
@njit(cache=True, error_model="numpy")
def split_residuals(U, Mu, f, op, fop, RH, RF):
    """R_H, R_F of every level (module docstring) into RH, RF (Nt, d, *shape3), the HJB rows with the Operator
    op, the FP rows with fop (op itself unless the FP rows take other weights); returns
    (max|R_H|, max|s_{k-1} + dt c_k(s_k)|, max|R_F|, max_n |m^n|)."""
    Nt = RH.shape[0]
    shape = U.shape[2:]
    prev = np.empty(shape)
    cost = np.empty(shape)
    work = kernels._workspace(shape)
    ndim = op.ndim
    dt = op.dt
    rh = 0.0
    sh = 0.0
    rf = 0.0
    sf = 0.0
    for n in range(Nt):
        dn = kernels.drift_at(op, n)
        prev[:, :, :] = U[n + 1, ndim - 1] + dt * f[n]
        for k in range(ndim):
            s = U[n, k]
            r = RH[n, k]
            ax = kernels.axis_at(op, k, dt, n)
            kernels.apply_axis(s, dn[k], k, ax, bool(False), s, r, work)
            kernels.axis_source(s, dn[k], k, ax, cost)
            rf3 = r.reshape(r.size)
            pf = prev.reshape(prev.size)
            cf = cost.reshape(cost.size)
            for j in range(r.size):
                src = pf[j] + dt * cf[j]
                v = rf3[j] - src
                rf3[j] = v
                rh = max(rh, abs(v))
                sh = max(sh, abs(src))
            prev[:, :, :] = s
        for k in range(ndim):
            q = RF[n, k]
            kernels.apply_axis(U[n, k], dn[k], k, kernels.axis_at(fop, k, dt, n), bool(True), Mu[n + 1, k], q, work)
            nxt = Mu[n + 1, k + 1] if k < ndim - 1 else Mu[n, 0]
            qf = q.reshape(q.size)
            nf = nxt.reshape(nxt.size)
            for j in range(q.size):
                v = qf[j] - nf[j]
                qf[j] = v
                rf = max(rf, abs(v))
        m = Mu[n, 0].reshape(q.size)
        for j in range(q.size):
            sf = max(sf, abs(m[j]))
    return rh, sh, rf, sf


@njit(cache=True, error_model="numpy", inline="always")
def _level(idx, Nt, ndim, transpose):
    """The idx-th level (n, k) in solve order: backward (HJB) n = Nt-1..0 with k = 0..d-1 inside;
    forward (FP, transpose) n = 0..Nt-1 with k = d-1..0 inside."""
    if transpose:
        return idx // ndim, ndim - 1 - idx % ndim
    return Nt - 1 - idx // ndim, idx % ndim


@njit(cache=True, error_model="numpy", inline="always")
def _link(n, k, Nt, ndim, transpose):
    """The level feeding (n, k) in the chain: backward, the previous substep (n, k-1), or (n+1, d-1) for
    k = 0; forward, (n, k+1), or (n-1, 0) for k = d-1.  Returns (exists, n', k')."""
    if not transpose:
        if k > 0:
            return True, n, k - 1
        return n + 1 < Nt, n + 1, ndim - 1
    if k < ndim - 1:
        return True, n, k + 1
    return n > 0, n - 1, 0


@njit(cache=True, error_model="numpy")
def chain_solve(U, op, transpose, Y, X):
    """X = P^{-1} Y (backward chain: M_k X[n,k] - X[prev] = Y[n,k], prev of (n,0) = (n+1, d-1), of
    (n,k) = (n,k-1)) or, with ``transpose``, X = P^{-T} Y (forward chain: M_k^T X[n,k] - X[next] = Y[n,k],
    next of (n,k) = (n,k+1), of (n,d-1) = (n-1,0)).  Y, X: (Nt, d, *shape3)."""
    Nt = Y.shape[0]
    shape = Y.shape[2:]
    rhs = np.empty(shape)
    work = kernels._workspace(shape)
    ndim = op.ndim
    size = rhs.size
    rf = rhs.reshape(size)
    for idx in range(Nt * ndim):
        n, k = _level(idx, Nt, ndim, transpose)
        yf = Y[n, k].reshape(size)
        linked, n2, k2 = _link(n, k, Nt, ndim, transpose)
        if linked:
            pf = X[n2, k2].reshape(size)
            for j in range(size):
                rf[j] = yf[j] + pf[j]
        else:
            for j in range(size):
                rf[j] = yf[j]
        dn = kernels.drift_at(op, n)
        kernels.solve_axis(U[n, k], dn[k], k, kernels.axis_at(op, k, op.dt, n), transpose, rhs, X[n, k], work)


@njit(cache=True, error_model="numpy")
def chain_apply(U, op, transpose, X, Y):
    """Y = P X (or P^T X): the forward products of ``chain_solve``'s operators."""
    Nt = X.shape[0]
    work = kernels._workspace(X.shape[2:])
    ndim = op.ndim
    size = Y[0, 0].size
    for n in range(Nt):
        dn = kernels.drift_at(op, n)
        for k in range(ndim):
            kernels.apply_axis(U[n, k], dn[k], k, kernels.axis_at(op, k, op.dt, n), transpose, X[n, k], Y[n, k], work)
            linked, n2, k2 = _link(n, k, Nt, ndim, transpose)
            if linked:
                yf = Y[n, k].reshape(size)
                pf = X[n2, k2].reshape(size)
                for j in range(size):
                    yf[j] -= pf[j]


@njit(cache=True, error_model="numpy")
def congestion_cost(U, op1, out):
    """out[n, k] = c1_k(s_k^n): the cost of axis k at unit Hamiltonian weights (op1: hw = 1), the factor of
    dR_H[n,k]/dm^{n+1} = dt w'(m^{n+1}) c1_k(s_k^n) for a congestion Hamiltonian (``ham_terms``)."""
    Nt = out.shape[0]
    for n in range(Nt):
        dn = kernels.drift_at(op1, n)
        for k in range(op1.ndim):
            kernels.axis_source(U[n, k], dn[k], k, kernels.axis_at(op1, k, op1.dt, 0), out[n, k])


@njit(cache=True, error_model="numpy")
def congestion_fp_apply(U, Mu, op1, op0, dw, x, out):
    """out[n, k] = (M_k(s; 1) - M_k(s; 0))^T (mu_k^n w'(m^{n+1}) x^n): the change of R_F[n, k] through the
    congestion weights of m^{n+1} (M_k is linear in the node weight: op1 / op0 carry hw = 1 / 0)."""
    Nt = out.shape[0]
    shape = out.shape[2:]
    y = np.empty(shape)
    t0 = np.empty(shape)
    work = kernels._workspace(shape)
    for n in range(Nt):
        dn = kernels.drift_at(op1, n)
        for k in range(op1.ndim):
            y[:, :, :] = Mu[n + 1, k] * dw[n] * x[n]
            kernels.apply_axis(U[n, k], dn[k], k, kernels.axis_at(op1, k, op1.dt, 0), bool(True), y, out[n, k], work)
            kernels.apply_axis(U[n, k], dn[k], k, kernels.axis_at(op0, k, op0.dt, 0), bool(True), y, t0, work)
            out[n, k] -= t0


@njit(cache=True, error_model="numpy")
def lift_states(U, f, op, tol, maxit):
    """Given u^n = U[n, d-1] (all n) and the running cost f, solve the first d-1 substeps of every step
    exactly (Newton): U[n, k] for k < d-1, leaving only the last substep's residual."""
    Nt = f.shape[0]
    shape = U.shape[2:]
    src = np.empty(shape)
    new = np.empty(shape)
    work = kernels._workspace(shape)
    ndim = op.ndim
    dt = op.dt
    for n in range(Nt):
        dn = kernels.drift_at(op, n)
        src[:, :, :] = U[n + 1, ndim - 1] + dt * f[n]
        for k in range(ndim - 1):
            U[n, k] = src  # guess: the incoming state
            kernels.newton_axis(U[n, k], src, dn[k], k, kernels.axis_at(op, k, dt, n), tol, maxit, new, work)
            src[:, :, :] = U[n, k]


@njit(cache=True, error_model="numpy")
def lift_densities(U, Mu, op):
    """Given m^n = Mu[n, 0] (all n), fill the FP intermediates Mu[n+1, k] (k >= 1) by the exact
    substeps mu_k = M_k^{-T} mu_{k+1} from mu_d = m^n, leaving only the last substep's residual."""
    Nt = Mu.shape[0] - 1
    work = kernels._workspace(Mu.shape[2:])
    ndim = op.ndim
    for n in range(Nt):
        dn = kernels.drift_at(op, n)
        for k in range(ndim - 1, 0, -1):
            src = Mu[n, 0] if k == ndim - 1 else Mu[n + 1, k + 1]
            kernels.solve_axis(U[n, k], dn[k], k, kernels.axis_at(op, k, op.dt, n), bool(True), src, Mu[n + 1, k],
                               work)


# ============================================================================ the system object
_SUPPORTED = (cpl.LocalPower, cpl.LocalLog, cpl.FixedGuidance, cpl.QuadraticInteraction, cpl.MeanAttraction)


def check_split_coupling(coupling):
    """Newton in 2-D/3-D needs a cheap dF/dm: local couplings and the interaction through the mean (one
    rank-one term per axis), and sums / scalings of them; not a general kernel (dense N x N)."""
    if coupling is None or type(coupling) in _SUPPORTED:
        return
    if isinstance(coupling, cpl.SumCoupling):
        for part in coupling.parts:
            check_split_coupling(part)
        return
    if isinstance(coupling, cpl.ScaledCoupling):
        check_split_coupling(coupling.base)
        return
    raise NotImplementedError(
        f"method='newton' in 2-D/3-D supports local couplings (LocalPower, LocalLog), QuadraticInteraction, "
        f"MeanAttraction, FixedGuidance and their sums; {type(coupling).__name__} needs a dense dF/dm there: use method='anderson'")


class SplitSystem:
    """The direction-split forward-backward system of a 2-D/3-D problem: residual, Jacobian products,
    reduced Krylov solves (module docstring).  Same interface as ``newton.DiscreteSystem``; its
    iterates are the extended arrays (U, Mu)."""

    has_direct = False

    def __init__(self, problem):
        kd = kernel_data(problem)
        if kd.ndim < 2:
            raise ValueError("SplitSystem is for 2-D/3-D grids; 1-D uses newton.DiscreteSystem")
        check_split_coupling(problem.coupling)
        if getattr(problem.terminal_cost, "depends_on_m", False):
            raise NotImplementedError("method='newton' in 2-D/3-D needs a terminal cost independent of m_T")
        self.problem = problem
        self.kd = kd
        self.d = kd.ndim
        self.Nt = problem.Nt
        self.N = problem.grid.size
        self.dt = problem.dt
        self.t = problem.t[1:]
        self.ext_shape = (self.Nt + 1, self.d) + kd.shape3
        self.ham = problem.hamiltonian
        self.congested = self.ham is not None and bool(self.ham.depends_on_m)
        self.separate_fp = bool(kd.separate_fp)   # FP rows with their own weights (module docstring)

    # ------------------------------------------------------------------ layout
    def _k(self, Mu=None):
        """(op,): the kernels' Operator, with the congestion weights of the densities Mu (levels m^{n+1})."""
        if not self.congested:
            return (self.kd.op,)
        return (self.kd.op_for(self._plain_m(Mu)),)

    def _fp_k(self, Mu=None, ops=None):
        """(fop,): the Operator of the FP rows: that of the HJB rows (``ops``, default ``_k(Mu)``) unless they take
        other weights (the planner's congestion Hamiltonian)."""
        if not self.separate_fp:
            return self._k(Mu) if ops is None else ops
        return (self.kd.fp_op_for(self._plain_m(Mu)),)

    def _plain_m(self, Mu):
        return Mu[:, 0].reshape((self.Nt + 1,) + self.problem.grid.shape)

    def fields(self, U, Mu):
        """Plain fields (u, m) shaped (Nt+1, *grid) (copies)."""
        shape = (self.Nt + 1,) + self.problem.grid.shape
        return U[:, self.d - 1].reshape(shape).copy(), Mu[:, 0].reshape(shape).copy()

    def states(self, U):
        """The intermediate split states (Nt, d-1, *shape3) in the layout of ``HJBSolution.states``."""
        return np.ascontiguousarray(U[:self.Nt, :self.d - 1])

    def lift(self, u, m, newton_tol=1e-12, newton_maxit=50, states=None):
        """Extended (U, Mu) from plain fields: u^n, m^n as given; the intermediate HJB states ``states``
        (those of the sweep that produced u, which keep a core-loop pair (u_k, Phi(m_k)) FP-exact) or,
        without them, solved exactly against f(m); the FP intermediates by exact substeps from m^n."""
        Nt, d = self.Nt, self.d
        shape3 = self.kd.shape3
        U = np.empty(self.ext_shape)
        Mu = np.empty(self.ext_shape)
        u3 = np.ascontiguousarray(u, dtype=float).reshape((Nt + 1,) + shape3)
        m3 = np.ascontiguousarray(m, dtype=float).reshape((Nt + 1,) + shape3)
        for k in range(d):
            U[:, k] = u3
            Mu[:, k] = m3
        self.complete(U, Mu)
        if states is not None:
            U[:Nt, :d - 1] = np.asarray(states, dtype=float).reshape((Nt, d - 1) + shape3)
            lift_densities(U, Mu, *self._fp_k(Mu))
            return U, Mu
        f = self.problem.running_cost(Mu[:, 0].reshape((Nt + 1,) + self.problem.grid.shape))
        lift_states(U, np.ascontiguousarray(f).reshape((Nt,) + shape3), *self._k(Mu), newton_tol, newton_maxit)
        lift_densities(U, Mu, *self._fp_k(Mu))
        return U, Mu

    def complete(self, U, Mu):
        """Impose the data: m^0 = m0, u^Nt = G(m^Nt)."""
        shape3 = self.kd.shape3
        Mu[0, :] = self.problem.m0.reshape(shape3)
        mT = Mu[self.Nt, 0].reshape(self.problem.grid.shape)
        U[self.Nt, :] = self.problem.terminal_values(mT).reshape(shape3)

    def mass_error(self, Mu, mass0):
        vol = float(self.problem.grid.cell_volume)
        return float(np.abs(Mu[:, 0].reshape(self.Nt + 1, -1).sum(axis=1) * vol - mass0).max())

    # ------------------------------------------------------------------ residual and derivatives
    def evaluate(self, U, Mu, f=None) -> dict:
        """Residuals and scales of the split chain; ``f``: the running cost (Nt, *grid) when it is not
        ``problem.running_cost(m)`` (a population of a multi-population game)."""
        Nt = self.Nt
        grid = self.problem.grid
        if f is None:
            f = self.problem.running_cost(Mu[:, 0].reshape((Nt + 1,) + grid.shape))
        RH = np.empty((Nt,) + self.ext_shape[1:])
        RF = np.empty_like(RH)
        ops = self._k(Mu)
        fops = self._fp_k(Mu, ops)
        rh, sH, rf, sF = split_residuals(U, Mu, np.ascontiguousarray(f).reshape((Nt,) + self.kd.shape3),
                                         ops[0], fops[0], RH, RF)
        sH = sH if sH > 0 else 1.0
        sF = sF if sF > 0 else 1.0
        hjb, fp = rh / sH, rf / sF
        return {"RH": RH, "RF": RF, "sH": sH, "sF": sF, "hjb": hjb, "fp": fp, "op": ops[0], "fop": fops[0],
                "finite": bool(np.isfinite(hjb) and np.isfinite(fp))}

    def congestion(self, U, Mu, ev):
        """For a congestion Hamiltonian (None otherwise; cached in ev): cH[n, k] = dt w'(m^{n+1}) c1_k(s_k^n)
        (dR_H[n,k]/dm^{n+1}, diagonal) and what ``fp_m`` needs (``congestion_fp_apply``; the FP rows' own w' where
        their weights differ, the planner's congestion Hamiltonian)."""
        if not self.congested:
            return None
        if "cong" not in ev:
            op = self.kd.op
            shape3 = self.kd.shape3
            op1 = op._replace(hw=np.ones((1,) + shape3))
            op0 = op._replace(hw=np.zeros((1,) + shape3))
            dw = np.ascontiguousarray(self.ham.dweights(Mu[1:, 0]), dtype=float)
            dw_fp = np.ascontiguousarray(self.ham.fp_dweights(Mu[1:, 0]), dtype=float) if self.separate_fp else dw
            c1 = np.empty((self.Nt,) + self.ext_shape[1:])
            congestion_cost(U, op1, c1)
            ev["cong"] = {"cH": self.dt * dw[:, None] * c1, "dw": dw_fp, "op1": op1, "op0": op0, "U": U, "Mu": Mu}
        return ev["cong"]

    def fp_m(self, cong, dmu):
        """C E dmu: the FP rows' change through the congestion weights of m^{n+1} = dmu[:, 0] (all levels k)."""
        out = np.empty_like(dmu)
        congestion_fp_apply(cong["U"], cong["Mu"], cong["op1"], cong["op0"], cong["dw"],
                            np.ascontiguousarray(dmu[:, 0]), out)
        return out

    def derivative(self, Mu):
        m = Mu[1:, 0].reshape(self.Nt, self.N)
        return coupling_derivative(self.problem.coupling, self.problem.grid, self.t, m), None

    def phi_full(self, deriv, dmu, cong=None):
        """E^T Phi dmu: the coupling source dt dF^n/dm dm^{n+1} on the (n, 0) levels, zero elsewhere; with a
        congestion Hamiltonian also -cH[n, k] dm^{n+1} on every level (``congestion``)."""
        dF = deriv[0]
        out = np.zeros_like(dmu)
        out[:, 0] = (self.dt * dF.matvec(dmu[:, 0].reshape(self.Nt, self.N))).reshape(out[:, 0].shape)
        if cong is not None:
            out -= cong["cH"] * dmu[:, 0][:, None]
        return out

    def P_inv(self, U, Y, out=None, op=None):
        X = np.empty_like(Y) if out is None else out
        chain_solve(U, self.kd.op if op is None else op, False, np.ascontiguousarray(Y), X)
        return X

    def PT_inv(self, U, Y, out=None, op=None):
        X = np.empty_like(Y) if out is None else out
        chain_solve(U, self.kd.op if op is None else op, True, np.ascontiguousarray(Y), X)
        return X

    def hessian(self, U, Mu, X, out=None, op=None):
        Y = np.empty_like(X) if out is None else out
        split_hessian_apply(U, Mu, self.kd.op if op is None else op, np.ascontiguousarray(X), Y)
        return Y

    def jvp(self, U, Mu, ev, deriv, du, dm):
        """J (du, dmu) with the blocks of the module docstring (the FP blocks with the FP rows' Operator)."""
        op, fop = ev["op"], ev["fop"]
        cong = self.congestion(U, Mu, ev)
        JH = np.empty_like(du)
        JF = np.empty_like(dm)
        chain_apply(U, op, False, np.ascontiguousarray(du), JH)
        JH -= self.phi_full(deriv, dm, cong)
        chain_apply(U, fop, True, np.ascontiguousarray(dm), JF)
        JF += self.hessian(U, Mu, du, op=fop)
        if cong is not None:
            JF += self.fp_m(cong, dm)
        return JH, JF

    def reduced(self, U, Mu, ev, deriv) -> "SplitReduced":
        return SplitReduced(self, U, Mu, ev, deriv)


class SplitReduced:
    """The reduced Newton system for the coupled unknowns dm^{n+1} (module docstring), resumable:
    ``solve(rtol)`` may be called again with a smaller rtol."""

    def __init__(self, sysm: SplitSystem, U, Mu, ev, deriv):
        self.sysm, self.U, self.Mu = sysm, U, Mu
        self.deriv = deriv
        self.dF = deriv[0]
        self.RH = ev["RH"]
        self.op = ev["op"]
        self.fop = ev["fop"]   # the FP rows' Operator: P^{-T} and Hs are the FP chain's
        self.cong = sysm.congestion(U, Mu, ev)
        Nt, N = sysm.Nt, sysm.N
        self.lev_shape = (Nt, N)
        self.b = self.PT_inv(self.hessian(self.P_inv(self.RH)) - ev["RF"])
        self.b0 = self.b[:, 0].reshape(Nt, N).copy()
        self.use_cg = self.cong is None and self.dF.is_local and bool(np.all(self.dF.diag >= 0.0))
        self.iterations = 0
        ext = (Nt,) + sysm.ext_shape[1:]
        self.X0 = np.zeros(ext)  # only its k = 0 levels are ever written: E^T x
        self.T1 = np.empty(ext)
        self.T2 = np.empty(ext)
        if self.use_cg:
            self.S = np.sqrt(sysm.dt * self.dF.diag)
            rhs = self.S * self.b0
            self.y = np.zeros(self.lev_shape)
            self.r = rhs
            self.p = rhs.copy()
            self.bb = float(np.vdot(rhs, rhs))
            self.rr = self.bb
        else:
            self.x = None

    def P_inv(self, Y, out=None):
        return self.sysm.P_inv(self.U, Y, out, self.op)

    def PT_inv(self, Y, out=None):
        return self.sysm.PT_inv(self.U, Y, out, self.fop)

    def hessian(self, X, out=None):
        return self.sysm.hessian(self.U, self.Mu, X, out, self.fop)

    def K0(self, x0):
        """E K E^T x0: level-0 vector -> level-0 part of P^{-T} Hs P^{-1} (x0 on the (n, 0) levels)."""
        self.X0[:, 0] = x0.reshape(self.X0[:, 0].shape)
        self.P_inv(self.X0, self.T1)
        self.hessian(self.T1, self.T2)
        self.PT_inv(self.T2, self.T1)
        return self.T1[:, 0].reshape(self.lev_shape)

    def coupled(self, Z):
        """P^{-T} (Hs P^{-1} E^T Phi + C) Z: what the coupled unknowns E Z = dm feed back into dmu (the
        congestion term C of ``SplitSystem.fp_m`` included)."""
        sysm = self.sysm
        src = sysm.phi_full(self.deriv, Z, self.cong)
        T = self.hessian(self.P_inv(src))
        if self.cong is not None:
            T += sysm.fp_m(self.cong, Z)
        return self.PT_inv(T)

    def solve(self, rtol: float, maxiter: int = 1000):
        sysm = self.sysm
        if self.use_cg:
            S = self.S
            its = 0
            while its < maxiter and self.rr > rtol * rtol * self.bb:
                q = self.p + S * self.K0(S * self.p)
                pq = float(np.vdot(self.p, q))
                if not pq > 0.0:  # not SPD here (negative densities in the iterate): the caller checks
                    break
                alpha = self.rr / pq
                self.y += alpha * self.p
                self.r -= alpha * q
                rr = float(np.vdot(self.r, self.r))
                self.p = self.r + (rr / self.rr) * self.p
                self.rr = rr
                its += 1
            self.iterations += its
            Z = np.zeros((sysm.Nt,) + sysm.ext_shape[1:])
            Z[:, 0] = (S * self.y).reshape(Z[:, 0].shape)  # E^T Phi dm = E^T S y  (y = S dm)
            src = Z
            dmu = self.b - self.PT_inv(self.hessian(self.P_inv(src)))
        else:
            ext = (sysm.Nt,) + sysm.ext_shape[1:]
            if self.cong is None:
                dF = self.dF
                dt = sysm.dt

                def op(v):
                    return v + self.K0(dt * dF.matvec(v.reshape(self.lev_shape))).ravel()
            else:
                def op(v):
                    Z = np.zeros(ext)
                    Z[:, 0] = v.reshape(Z[:, 0].shape)
                    return v + self.coupled(Z)[:, 0].ravel()
            x, its = gmres(op, self.b0.ravel(), rtol=rtol, maxiter=maxiter, x0=self.x)
            self.x = x
            self.iterations += its
            Z = np.zeros(ext)
            Z[:, 0] = x.reshape(Z[:, 0].shape)
            dmu = self.b - self.coupled(Z)
        src = sysm.phi_full(self.deriv, dmu, self.cong)
        du = self.P_inv(src - self.RH)
        return du, dmu, self.iterations
