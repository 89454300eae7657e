"""Coupling iterations: find m with  m = Phi(m) := FP(HJB(m)).

Methods (``mp.solve(problem, method=...)``, dispatched by ``iterate.solve``):

* ``"picard"``          damped fixed point  m_{k+1} = (1 - theta) m_k + theta Phi(m_k)  (theta = damping).
* ``"fictitious-play"`` theta_k = 1/(k+1): m_{k+1} is the running average of best responses.
* ``"newton"``          Newton with line search on the whole discrete space-time system (1-D: sparse
                        direct or Krylov; 2-D/3-D: Krylov on the split chain, ``newton.system_split``; cold
                        start or an optional cheap warm start; see ``newton``, whose keyword options
                        ``solve`` passes on).  ``tol`` applies to max(hjb_residual, fp_residual) and
                        ``max_iter`` caps the Newton steps.
* ``"auto"`` (default)  Anderson alone while it converges fast, else a race of Anderson, Newton and
                        damped Picard on shares of the wall time; the first to converge wins (``auto``).
* ``"anderson"``        Anderson acceleration (depth M) on the damped Picard map, safeguarded: a
                        residual that grew by half over the best one restarts the memory and halves
                        the mixing parameter theta (best-response maps of congestion games at small
                        viscosity have eigenvalues below -1, where undamped steps oscillate); a
                        mixed density with negative values falls back to the plain damped step.

Iterates are the density on time levels 1..Nt (m^0 = m0 is fixed).  Every iteration records

    residual      ||Phi(m_k) - m_k||_1 / ||m_k||_1                (the stopping test, relative)
    hjb_residual  relative residual of the discrete HJB for the candidate pair (u_k, Phi(m_k))
    fp_residual   relative residual of the discrete FP for that pair (round-off: FP is solved exactly)
    change_m      ||m_{k+1} - m_k||_1 / ||m_k||_1                 (size of the step taken)
    mass_error    max_n |mass(Phi(m_k)^n) - mass(m0)|; on a grid with exit sides the outflow balance error
                  max_n |mass(Phi(m_k)^n) + outflow(0, t_n) - mass(m0)| (``outflow``)
    newton_max    largest number of Newton/policy iterations in one HJB step
    wall_time     seconds since the start of ``solve``
    exploitability  Nash gap of the candidate pair (``exploitability.nash_gap``: cost of the policy of
                  u_k against Phi(m_k) minus the best response, from m0): at the final record by
                  default (nan before), at every iteration with ``exploitability="every"``

``diagnostics="lean"`` (the default) computes hjb_residual and fp_residual (a third of an iteration's work
in 2-D) only where they decide something -- iterations whose residual is <= tol -- and at max_iter, and
records nan elsewhere (also at a stop by divergence or by the callback).  The iterates, the convergence
decision and the result are identical with ``diagnostics="every"``, which records them at every iteration:
the HJB/FP residuals enter the loop only through the test ``residual <= tol and hjb_residual <= tol``
(unless a callback reads them: it sees nan in lean mode).

Inexact Newton: the per-step HJB Newton solves of iteration k stop at the relative tolerance
max(newton_tol, inner_factor * residual_{k-1}) -- tight solves are wasted while m is still far from
the fixed point.  Convergence therefore requires BOTH ``residual <= tol`` and
``hjb_residual <= tol`` for the returned pair, so the answer is certified on both equations.

The returned pair is the last candidate (u_k, Phi(m_k)); ``converged`` is True only when both
tests pass.  A non-finite value or a blow-up of the residual stops the loop with a
``diverged`` status; the history is kept in every case.
"""

from __future__ import annotations

import time

import numpy as np

from ..result import MFGResult
from ..fd.split_residuals import relative_residuals
from ..diagnostics.exploitability import nash_gap
from ..fd.fp import solve_fp
from ..fd.hjb import HJBSolution, solve_hjb
from ..fd.kernels import coupling_stats, mix_inplace
from ..diagnostics.outflow import attach_outflow, outflow_history
from .anderson import Anderson, anderson_update
from .monitor import HISTORY_KEYS, Progress, max_iter_status, record, stop_status


def best_response(problem, m, sol_prev, inner_tol, newton_maxit, cell_volume, mass0, buffers=None, f=None):
    """One evaluation of Phi(m): the HJB against m (Newton warm-started from sol_prev), the FP of its
    feedback, and in one fused pass (kernels.coupling_stats) finiteness, ||m||_1, ||Phi(m) - m||_1
    and the mass error.  Returns (sol, m_hat, finite, norm_m, res_sum, mass_err, f, uT).

    ``buffers`` (a ``Buffers``) supplies u and m_hat storage reused across iterations; ``f`` the running
    cost when it is not ``problem.running_cost(m)`` (a population of a multi-population game)."""
    Nt = problem.Nt
    f = problem.running_cost(m) if f is None else f
    uT = problem.terminal_values(m[Nt])
    u_out = m_out = None
    if buffers is not None:
        u_out, m_out = buffers.next(sol_prev)
    sol = solve_hjb(problem, f, uT, guess=sol_prev, tol=inner_tol, maxit=newton_maxit, out=u_out, m=m)
    m_hat = solve_fp(problem, sol, out=m_out)
    if problem.has_exits:  # mass leaves through the exits/doors: the error is that of the outflow balance
        outflow = outflow_history(problem, sol, m_hat).cumulative
        finite, norm_m, res_sum, mass_err = coupling_stats(m.reshape(Nt + 1, -1), m_hat.reshape(Nt + 1, -1),
                                                           sol.u.reshape(Nt + 1, -1), cell_volume, mass0, outflow)
    else:
        finite, norm_m, res_sum, mass_err = coupling_stats(m.reshape(Nt + 1, -1), m_hat.reshape(Nt + 1, -1),
                                                           sol.u.reshape(Nt + 1, -1), cell_volume, mass0)
    return sol, m_hat, finite, norm_m, res_sum, mass_err, f, uT


class Buffers:
    """Space-time storage reused by the coupling loop: two u arrays used alternately (the new HJB
    sweep reads the previous iterate as its Newton guess) and one m_hat array (each candidate density
    is consumed -- mixed into the iterate, measured -- before the next one is computed).  Reusing
    them avoids allocating and page-faulting 2-3 fresh (Nt+1) x grid arrays per iteration, which
    cost more than the FP sweep itself on a 1000 x 1000 problem."""

    def __init__(self, problem):
        shape = (problem.Nt + 1,) + problem.grid.shape
        self.u = [np.empty(shape), np.empty(shape)]
        self.m_hat = np.empty(shape)

    def next(self, sol_prev):
        if sol_prev is not None and np.shares_memory(sol_prev.u, self.u[0]):
            return self.u[1], self.m_hat
        return self.u[0], self.m_hat


def candidate_residuals(problem, sol, m_hat, f=None, uT=None):
    """Relative HJB and FP residuals of the candidate pair (u_k, Phi(m_k)) (``split_residuals``: one
    pass, rows of M_k built once for both); for an uncoupled problem the running cost f and terminal
    values uT of the sweep are reused."""
    if problem.is_coupled or f is None:
        f = problem.running_cost(m_hat)
        uT = problem.terminal_values(m_hat[problem.Nt])
    return relative_residuals(problem, sol, f, m_hat, uT)


def initial_density(problem, m_init=None) -> np.ndarray:
    """Starting density on all levels: m_init (shape-checked, level 0 reset to m0) or m0 frozen in time."""
    grid, Nt = problem.grid, problem.Nt
    if m_init is None:
        return np.broadcast_to(problem.m0, (Nt + 1,) + grid.shape).copy()
    m = grid.check_field(m_init, "m_init", (Nt + 1,)).copy()
    m[0] = problem.m0
    return m


class FixedPoint:
    """The damped fixed-point loop m <- m + theta_k (Phi(m) - m) (picard, fictitious play, anderson), one
    coupling iteration per ``step()``.  ``solve`` drives it to the end; ``auto`` interleaves it with Newton.

    State: the iterate ``m`` (levels 1..Nt are updated in place), the last candidate pair (``sol``,
    ``m_hat``), the Anderson memory, and -- with ``keep_best`` -- copies of the best candidate pair
    (``best_pair``: Newton's starting point in ``auto``): by the Newton residual max(hjb_residual,
    fp_residual) with diagnostics="every"; with "lean" by the fixed-point residual, its Newton residual
    evaluated when ``best_pair`` is read."""

    def __init__(self, problem, method, tol, damping, anderson_depth, newton_tol, newton_maxit, inner_factor,
                 m_init=None, diagnostics="every", keep_best=False):
        self.problem, self.method, self.tol = problem, method, tol
        self.damping = damping
        self.newton_tol, self.newton_maxit, self.inner_factor = newton_tol, newton_maxit, inner_factor
        self.diagnostics = diagnostics
        self._setup(m_init)
        self.accel = Anderson(int(anderson_depth), damping) if method == "anderson" else None
        self.one_shot = not problem.is_coupled
        self.sol_prev = self.sol = self.m_hat = None
        self.best = np.inf          # safeguard reference (reset on Anderson restarts)
        self.best_residual = np.inf  # smallest fixed-point residual seen
        self.first_residual = np.nan
        # inexact inner solves scale with the last residual; a given starting density may already be a
        # solution, so its first best response is solved tightly
        self.last_residual = 1.0 if m_init is None else 0.0
        self.tight = False
        self.k = 0
        self.keep_best = keep_best
        self._keep = None           # storage of the kept pair (u, m_hat, states), allocated once
        self._kept = None           # [key it was kept by, Newton residual or None, iteration]

    def _setup(self, m_init):
        """The iterate m, the initial mass, the cell volume and the reused storage (subclasses: other
        iterates, e.g. the joint density of several populations)."""
        problem = self.problem
        self.m = initial_density(problem, m_init)
        self.mass0 = float(problem.grid.integrate(problem.m0))
        self.cell_volume = float(problem.grid.cell_volume)
        self.buffers = Buffers(problem)

    def _best_response(self, inner_tol):
        """(sol, m_hat, finite, norm_m, res_sum, mass_err, f, uT) of the current iterate (``best_response``)."""
        return best_response(self.problem, self.m, self.sol_prev, inner_tol, self.newton_maxit, self.cell_volume,
                             self.mass0, self.buffers)

    def _candidate_residuals(self, sol, m_hat, f, uT):
        """(hjb_residual, fp_residual) of the candidate pair (``candidate_residuals``)."""
        return candidate_residuals(self.problem, sol, m_hat, f, uT)

    @property
    def best_pair(self):
        """(u, m_hat, states, Newton residual, iteration) of the kept pair, or None."""
        if self._kept is None:
            return None
        if self._kept[1] is None:  # lean: the Newton residual of the kept pair, once
            u, m_hat, states = self._keep
            sol = HJBSolution(u, states, np.zeros(self.problem.Nt, dtype=np.int64))
            self._kept[1] = max(candidate_residuals(self.problem, sol, m_hat))
        return (*self._keep, self._kept[1], self._kept[2])

    def _remember(self, residual, hjb_res, fp_res):
        newton_metric = self.diagnostics == "every"
        key = max(hjb_res, fp_res) if newton_metric else residual
        if not np.isfinite(key) or (self._kept is not None and key >= self._kept[0]):
            return
        if self._keep is None:
            self._keep = (np.empty_like(self.sol.u), np.empty_like(self.m_hat), np.empty_like(self.sol.states))
        for dst, src in zip(self._keep, (self.sol.u, self.m_hat, self.sol.states)):
            np.copyto(dst, src)
        self._kept = [key, key if newton_metric else None, self.k]

    def step(self, final: bool = False):
        """One iteration: the best response Phi(m_k), its statistics, and (unless converged) the update of m.

        Returns (state, record): state is "converged", "continue" or "non-finite"; the record holds the
        history values of this iteration (residual, hjb_residual, fp_residual, change_m, mass_error,
        newton_max, damping)."""
        self.k += 1
        k = self.k
        inner_tol = self.newton_tol if self.tight else max(self.newton_tol, self.inner_factor * self.last_residual)
        sol, m_hat, finite, norm_m, res_sum, mass_err, f, uT = self._best_response(inner_tol)
        self.sol, self.m_hat = sol, m_hat
        newton = _newton_count(sol.newton)
        if not finite:
            return "non-finite", {"residual": np.nan, "hjb_residual": np.nan, "fp_residual": np.nan,
                                  "change_m": np.nan, "mass_error": np.nan, "newton_max": newton, "damping": np.nan}
        residual = float(np.float64(res_sum) / norm_m)
        if np.isnan(self.first_residual):
            self.first_residual = residual
        tol = self.tol
        if self.diagnostics == "every" or residual <= tol or self.one_shot or final:
            hjb_res, fp_res = self._candidate_residuals(sol, m_hat, f, uT)
        else:
            hjb_res = fp_res = np.nan
        if self.keep_best:
            self._remember(residual, hjb_res, fp_res)
        rec = {"residual": residual, "hjb_residual": hjb_res, "fp_residual": fp_res, "mass_error": mass_err,
               "newton_max": newton}
        if residual <= tol and hjb_res > tol and not self.tight and not self.one_shot:
            self.tight = True  # m has converged: one more pass with tight Newton solves to certify u
        elif self.one_shot or (residual <= tol and hjb_res <= tol):
            rec.update(residual=0.0 if self.one_shot else residual, change_m=0.0 if self.one_shot else residual,
                       damping=self.damping)
            self.best_residual = min(self.best_residual, residual)
            return "converged", rec
        # next iterate (m itself is not returned, so the damped methods update it in place here)
        Nt = self.problem.Nt
        m1 = self.m[1:].reshape(Nt, -1)
        if self.method in ("picard", "fictitious-play"):
            theta = self.damping if self.method == "picard" else 1.0 / (k + 1)
            change = float(np.float64(mix_inplace(m1, m_hat[1:].reshape(Nt, -1), theta)) / norm_m)
        else:
            change_sum, theta, self.best = anderson_update(self.accel, self.m, m_hat, residual, self.best)
            change = change_sum / norm_m
        rec.update(change_m=change, damping=theta)
        self.best = min(self.best, residual)
        self.best_residual = min(self.best_residual, residual)
        self.last_residual = residual
        self.sol_prev = sol
        return "continue", rec


def _newton_count(its) -> float:
    its = np.asarray(its)
    return float(np.abs(its).max()) if its.size else 0.0


def run_fixed_point(problem, method: str, tol: float, max_iter: int, damping: float | None = None,
                    anderson_depth: int = 5, newton_tol: float = 1e-12, newton_maxit: int = 50,
                    inner_factor: float = 1e-2, m_init=None, progress: bool = False, callback=None,
                    divergence_factor: float = 1e4, exploitability: str = "final",
                    diagnostics: str = "lean") -> MFGResult:
    """Run the damped fixed point (``method`` "picard", "fictitious-play" or "anderson") to convergence, a
    stop or ``max_iter``; see the module docstring.  Arguments as ``mp.solve`` (checked there)."""
    if damping is None:
        damping = 0.5 if method == "picard" else 1.0

    grid, Nt = problem.grid, problem.Nt
    t_start = time.perf_counter()
    solver = {"method": method, "tol": tol, "max_iter": max_iter, "damping": damping,
              "anderson_depth": int(anderson_depth), "newton_tol": newton_tol, "newton_maxit": newton_maxit,
              "inner_factor": inner_factor, "diagnostics": diagnostics, "divergence_factor": divergence_factor,
              "exploitability": exploitability, "m_init": "given" if m_init is not None else "m0"}
    history = {k: [] for k in HISTORY_KEYS + ("exploitability",)}
    report = Progress(progress, tol=tol)
    loop = FixedPoint(problem, method, tol, damping, anderson_depth, newton_tol, newton_maxit, inner_factor,
                      m_init=m_init, diagnostics=diagnostics)
    status, converged = "not converged", False
    k = 0
    for k in range(1, max_iter + 1):
        state, rec = loop.step(final=k == max_iter)
        rec = record(history, rec, t_start)
        if state == "non-finite":
            status = f"diverged: non-finite values in u or m at iteration {k}"
            history["exploitability"].append(np.nan)
            break
        if state == "converged":
            history["exploitability"].append(
                nash_gap(problem, loop.sol.u, loop.m_hat, loop.sol.states, newton_tol, newton_maxit)
                if exploitability != "none" else np.nan)
            report(k, rec, force=True)
            status, converged = "converged", True
            break
        history["exploitability"].append(
            nash_gap(problem, loop.sol.u, loop.m_hat, loop.sol.states, newton_tol, newton_maxit)
            if exploitability == "every" else np.nan)
        report(k, rec)
        stop = stop_status(k, k, rec, loop.best, divergence_factor, callback)
        if stop:
            status = stop
            break
    else:
        status = max_iter_status(max_iter, history, tol)
    sol, u, m_hat = loop.sol, (loop.sol.u if loop.sol is not None else None), loop.m_hat
    if not converged and history["residual"]:
        if exploitability == "final" and m_hat is not None and np.isnan(history["exploitability"][-1]) \
                and np.isfinite(history["residual"][-1]):
            history["exploitability"][-1] = nash_gap(problem, u, m_hat, sol.states, newton_tol, newton_maxit)
        report(k, {key: v[-1] for key, v in history.items()}, force=True)
    hist = {key: np.asarray(v, dtype=float) for key, v in history.items()}
    hist["iteration"] = np.arange(1, len(hist["residual"]) + 1, dtype=float)
    u_out = u if u is not None else np.full((Nt + 1,) + grid.shape, np.nan)
    m_out = m_hat if m_hat is not None else loop.m
    result = MFGResult(grid=grid, t=problem.t, u=u_out, m=m_out, converged=converged, status=status,
                       iterations=len(hist["residual"]), history=hist, params=problem.describe(),
                       solver=solver, hjb_solution=sol, problem=problem, obstacle=problem.solid)
    if sol is not None and problem.has_exits:
        attach_outflow(result, problem, sol)
    report.done(result)
    return result


