"""Newton's method on the whole discrete forward-backward MFG system.

This module holds the driver (line search, forcing terms, warm starts, continuation, history); it drives
the 1-D system of ``system_1d`` (``DiscreteSystem``) and, in 2-D/3-D, the direction-split chain of
``system_split`` (``SplitSystem``: the intermediate split states are unknowns too, Krylov solves
preconditioned by the linearised backward-forward sweep).

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
and Hs the Hessians: the FP block is the transpose of the HJB block, as in the continuous problem.  (Except
for the planner's congestion Hamiltonian of objective='social', whose FP rows take the agents' weights w and its
HJB rows the planner's w_s: there the FP blocks are built from the FP rows, [[P, -Phi], [Hs_w, Q^T + C]] with Q
the block-bidiagonal matrix of the FP rows' M_w(u^n); ``system_1d``, ``system_split``.)
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

from ..iterate.fixed_point import run_fixed_point
from ..iterate.monitor import HISTORY_KEYS, Progress
from ..model.problem import MFGProblem
from ..result import MFGResult
from ..diagnostics.exploitability import nash_gap
from ..fd.hjb import HJBSolution, empty_states, solve_hjb
from ..fd.operator import kernel_data
from ..model.couplings import ScaledCoupling
from .system_1d import DiscreteSystem

NEWTON_KEYS = ("line_search", "step_norm", "linear_iterations", "phase", "continuation", "exploitability")
WARM_METHODS = ("fictitious-play", "picard", "anderson")


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
                      terminal_cost=problem.terminal_cost, name=problem.name, exit_cost=problem.exit_costs,
                      hamiltonian=problem.hamiltonian, fp_source=problem.fp_source)


def check_supported(problem, what: str) -> None:
    """NotImplementedError when the problem has an FP source.  Every Hamiltonian is supported: the Jacobian's
    Hamiltonian blocks are those of ``ham_terms``, and a Hamiltonian whose FP rows take other weights than its HJB
    rows (``fp_weights``: the planner's congestion Hamiltonian of objective='social') gets FP blocks with their
    own weights (``system_1d``, ``system_split``)."""
    if getattr(problem, "fp_source", None) is not None:
        raise NotImplementedError(f"{what} does not support an fp_source; use method='anderson' or 'picard'")


def make_system(problem):
    """The discrete system Newton drives: ``DiscreteSystem`` (1-D) or ``system_split.SplitSystem``
    (2-D/3-D, the direction-split chain)."""
    if problem.grid.ndim == 1:
        return DiscreteSystem(problem)
    from .system_split import SplitSystem
    return SplitSystem(problem)


def _check_options(problem, warm_start, warm_iter, continuation, linear_solver):
    from ..fd.operator import check_no_exits
    check_no_exits(problem, "method='newton'")
    check_supported(problem, "method='newton'")
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
                 krylov_maxiter=1000, system=None):
        self.problem, self.u, self.m = problem, u, m
        self.krylov_maxiter = int(krylov_maxiter)  # Krylov iterations per Newton step (auto adapts it)
        self.last_krylov = 0
        self.tol, self.max_iter = tol, int(max_iter)
        self.linear_solver, self.max_backtracks = linear_solver, max_backtracks
        self.cont, self.krylov_rtol, self.nonmonotone, self.every_gap = cont, krylov_rtol, nonmonotone, every_gap
        # the system Newton drives: the problem's own (make_system), or one given (several populations:
        # newton.multipop.JointSystem)
        self.sysm = make_system(problem) if system is None else system
        self.sysm.complete(u, m)
        self.small = self.sysm.has_direct and 2 * self.sysm.Nt * self.sysm.N <= direct_max
        # the initial mass (a joint system of several populations measures each against its own)
        self.mass0 = float(problem.grid.integrate(problem.m0)) if hasattr(problem, "m0") else None
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


def _hjb_solution(problem, u, m, states) -> HJBSolution:
    """The result's HJB solution, with the Operators the loops' sweeps record for an m-dependent Hamiltonian
    (``fd.hjb.solve_hjb``): the HJB's at m and, where the FP rows take other weights, the FP's."""
    kd = kernel_data(problem)
    op = kd.op_for(m) if kd.depends_on_m and m is not None else None
    fp_op = kd.fp_op_for(m) if kd.separate_fp and m is not None else None
    return HJBSolution(u, states, np.zeros(problem.Nt, dtype=np.int64), op, fp_op)


def _initial_pair(problem, m_init, newton_tol, newton_maxit):
    grid, Nt = problem.grid, problem.Nt
    if m_init is None:
        m = np.broadcast_to(problem.m0, (Nt + 1,) + grid.shape).copy()
    else:
        m = grid.check_field(m_init, "m_init", (Nt + 1,)).copy()
        m[0] = problem.m0
    sol = solve_hjb(problem, problem.running_cost(m), problem.terminal_values(m[Nt]), tol=newton_tol,
                    maxit=newton_maxit, m=m)
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
    report = Progress(progress, tol=tol)
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
                states0 = r.split_states
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
    sol = _hjb_solution(problem, u, m, states)
    if exploitability != "none" and n_rec and u is not None:
        gap = nash_gap(problem, u, m, sol.states, tol=newton_tol, maxit=newton_maxit)
        hist["exploitability"][-1] = gap
    hist["iteration"] = np.arange(1, n_rec + 1, dtype=float)
    result = MFGResult(grid=grid, t=problem.t, u=u, m=m, converged=converged, status=status, iterations=n_rec,
                       history=hist, params=problem.describe(), solver=options, hjb_solution=sol,
                       problem=problem)
    report.done(result)
    return result
