"""Coupling loops of a multi-population game (``model.multipop``) on the joint density (m_1..m_K).

The fixed-point map is Phi(m_1..m_K) = (FP_1(HJB_1(m)), .., FP_K(HJB_K(m))): every population's best
response is computed against the SAME joint iterate (a Jacobi sweep, so mirror-image populations stay mirror
images), with the single-population HJB and FP sweeps (``fixed_point.best_response`` with the population's
running cost V_k + F_k(x, m_1..m_K)).  Damped Picard, fictitious play and the safeguarded Anderson
acceleration then act on the joint vector exactly as in ``fixed_point`` (``JointFixedPoint`` is a
``FixedPoint`` whose iterate has a population axis: (Nt+1, K, *grid)).  The recorded quantities are those
of the single-population loop, taken over all populations:

    residual      sum_k ||Phi_k(m) - m_k||_1 / sum_k ||m_k||_1
    hjb_residual, fp_residual   the largest over the populations
    mass_error    the largest over the populations
    phase         the loop that produced the record: 0 Anderson, 1 Newton, 2 damped Picard, 3 fictitious play

``method="auto"``: Anderson alone; when it is slow (the rate test of ``iterate.auto``: after W iterations
the predicted remaining count exceeds max(3k, 4W)), stalls or diverges, Newton on the joint system takes
over from Anderson's last pair where Newton has a system (``newton.multipop``); where it has none, or when
Newton fails, damped Picard (theta = 0.5) from the start.  It is a sequence, not the time-shared race of the
single-population ``auto``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..diagnostics.exploitability import nash_gap
from ..fd.kernels import coupling_stats
from ..fd.split_residuals import relative_residuals
from ..fd.switching import solve_fp_types, solve_hjb_types, type_residuals, types_gap
from .fixed_point import Buffers, FixedPoint, best_response
from .monitor import HISTORY_KEYS, Progress, max_iter_status, record, stop_status


@dataclass
class JointSolution:
    """The HJB solutions of the populations (``sols[k]``: an ``fd.hjb.HJBSolution``)."""

    sols: list

    @property
    def newton(self) -> np.ndarray:
        return np.concatenate([np.asarray(s.newton).ravel() for s in self.sols])


class JointFixedPoint(FixedPoint):
    """``FixedPoint`` on the joint density of a ``MultiPopulationProblem``: the iterate ``m`` is
    (Nt+1, K, *grid), the candidate ``m_hat`` likewise, ``sol`` a ``JointSolution``."""

    def _setup(self, m_init):
        problem = self.problem
        self.m = problem.initial_density(m_init)
        self.m_hat_joint = np.empty_like(self.m)
        self.mass0 = [float(problem.grid.integrate(p.m0)) for p in problem.populations]
        self.cell_volume = float(problem.grid.cell_volume)
        self.buffers = [Buffers(p) for p in problem.populations]

    def densities(self, M) -> list:
        """The per-population densities (contiguous copies) of a joint array."""
        return [np.ascontiguousarray(M[:, k]) for k in range(self.problem.K)]

    def _best_response(self, inner_tol):
        problem = self.problem
        ms = self.densities(self.m)
        sols, fs, uTs = [], [], []
        finite, norm_m, res_sum, mass_err = True, 0.0, 0.0, 0.0
        for k, pop in enumerate(problem.populations):
            prev = None if self.sol_prev is None else self.sol_prev.sols[k]
            sol, m_hat, fin, nm, rs, me, f, uT = best_response(
                pop, ms[k], prev, inner_tol, self.newton_maxit, self.cell_volume, self.mass0[k], self.buffers[k],
                f=problem.running_cost(k, ms))
            self.m_hat_joint[:, k] = m_hat
            sols.append(sol)
            fs.append(f)
            uTs.append(uT)
            finite = finite and bool(fin)
            norm_m += float(nm)
            res_sum += float(rs)
            mass_err = max(mass_err, float(me))
        return JointSolution(sols), self.m_hat_joint, finite, norm_m, res_sum, mass_err, fs, uTs

    def _candidate_residuals(self, sol, m_hat, f, uT):
        problem = self.problem
        ms = self.densities(m_hat)
        hjb = fp = 0.0
        for k, pop in enumerate(problem.populations):
            fk = problem.running_cost(k, ms) if problem.is_coupled else f[k]
            h, p = relative_residuals(pop, sol.sols[k], fk, ms[k], problem.terminal_values(k, ms))
            hjb, fp = max(hjb, h), max(fp, p)
        return hjb, fp

    def gaps(self, newton_tol, newton_maxit) -> list:
        """Nash gap of each population's candidate pair, the other densities frozen at the candidate."""
        return joint_gaps(self.problem, [s.u for s in self.sol.sols], self.densities(self.m_hat),
                          [s.states for s in self.sol.sols], newton_tol, newton_maxit)


class SwitchingFixedPoint(JointFixedPoint):
    """``JointFixedPoint`` of K types with switching: the best response is ONE joint backward sweep of the types
    and one joint forward sweep (``fd.switching``: the types' HJBs are coupled by the switching terms at every
    step, the FP by their transpose), ``sol`` a ``fd.switching.TypesSolution``.  The mass error is that of the
    total mass (the switching moves mass between the types)."""

    def _setup(self, m_init):
        super()._setup(m_init)
        self.E = self.problem.switching_step()
        self.total_mass0 = self.problem.total_mass()
        shape = self.m.shape
        self.u_buffers = [np.empty(shape), np.empty(shape)]

    def _best_response(self, inner_tol):
        problem = self.problem
        Nt = problem.Nt
        ms = self.densities(self.m)
        fs = [problem.running_cost(k, ms) for k in range(problem.K)]
        uTs = [problem.terminal_values(k, ms) for k in range(problem.K)]
        prev = self.sol_prev
        out = self.u_buffers[1] if prev is not None and np.shares_memory(prev.u, self.u_buffers[0]) else \
            self.u_buffers[0]
        sol = solve_hjb_types(problem, fs, uTs, self.E, guess=prev, tol=inner_tol, maxit=self.newton_maxit, out=out,
                              ms=ms)
        m_hat = solve_fp_types(problem, sol, self.E, out=self.m_hat_joint)
        finite, norm_m, res_sum, mass_err = coupling_stats(self.m.reshape(Nt + 1, -1), m_hat.reshape(Nt + 1, -1),
                                                           sol.u.reshape(Nt + 1, -1), self.cell_volume,
                                                           self.total_mass0)
        return sol, m_hat, finite, float(norm_m), float(res_sum), float(mass_err), fs, uTs

    def _candidate_residuals(self, sol, m_hat, f, uT):
        problem = self.problem
        ms = self.densities(m_hat)
        if problem.is_coupled:
            f = [problem.running_cost(k, ms) for k in range(problem.K)]
            uT = [problem.terminal_values(k, ms) for k in range(problem.K)]
        return type_residuals(problem, sol, f, m_hat, self.E, uT)

    def gaps(self, newton_tol, newton_maxit) -> list:
        """[the joint exploitability]: an agent deviates (keeping its switching) while the densities stay."""
        return switching_gaps(self.problem, self.sol, self.densities(self.m_hat), newton_tol, newton_maxit)


def switching_gaps(problem, sol, ms, tol, maxit) -> list:
    """[exploitability of the joint pair of the types] (``fd.switching.types_gap``)."""
    fs = [problem.running_cost(k, ms) for k in range(problem.K)]
    uTs = [problem.terminal_values(k, ms) for k in range(problem.K)]
    return [types_gap(problem, sol, fs, uTs, problem.switching_step(), ms, tol, maxit)]


def joint_gaps(problem, us, ms, states, tol, maxit) -> list:
    """[exploitability of population k]: an agent of population k deviates while all K densities stay."""
    return [float(nash_gap(pop, us[k], ms[k], states[k], tol, maxit, f=problem.running_cost(k, ms)))
            for k, pop in enumerate(problem.populations)]


def run_joint(problem, method, tol, max_iter, damping=None, anderson_depth=5, newton_tol=1e-12, newton_maxit=50,
              inner_factor=1e-2, m_init=None, callback=None, divergence_factor=1e4, exploitability="final",
              diagnostics="lean", report=None, history=None, t_start=None, stop_when_slow=False, window=8,
              stop_when_stagnant=False):
    """Run ``JointFixedPoint`` (``method`` picard, fictitious-play or anderson) to convergence, a stop or
    ``max_iter``.  Returns (loop, converged, status); one record per iteration is appended to ``history``.
    ``stop_when_slow`` (auto) ends it with a status "slow: ..." when the rate test of ``auto._Loop.slow``
    says the loop should not run alone any longer; ``stop_when_stagnant`` (auto) with a status "stalled: ..."
    when the loop has found no new best residual over 2 ``window`` iterations (``auto._Loop.stagnant``)."""
    from .auto import _Loop

    if damping is None:
        damping = 0.5 if method == "picard" else 1.0
    cls = SwitchingFixedPoint if problem.has_switching else JointFixedPoint
    loop = cls(problem, method, tol, damping, anderson_depth, newton_tol, newton_maxit, inner_factor,
               m_init=m_init, diagnostics=diagnostics)
    racer = _Loop(method, loop, window, max_iter, divergence_factor)
    phase = {"anderson": 0.0, "picard": 2.0}.get(method, 3.0)
    status, converged = "not converged", False
    for k in range(1, max_iter + 1):
        state, rec = racer.step() if k < max_iter else loop.step(final=True)
        rec["phase"] = phase
        rec = record(history, rec, t_start)
        gap = np.nan
        if (state == "converged" and exploitability != "none") or (exploitability == "every" and state != "non-finite"):
            gap = max(loop.gaps(newton_tol, newton_maxit))
        history["exploitability"].append(gap)
        n = len(history["residual"])
        if state == "non-finite":
            status = f"diverged: non-finite values in u or m at iteration {k}"
            break
        if state == "converged":
            report(n, rec, force=True)
            status, converged = "converged", True
            break
        report(n, rec)
        stop = stop_status(k, n, rec, loop.best, divergence_factor, callback)
        if stop:
            status = stop
            break
        if stop_when_slow:
            why = racer.slow(tol)
            if why:
                status = f"slow: {why}"
                break
        if stop_when_stagnant and racer.stagnant():
            status = (f"stalled: no new best residual over {2 * window} iterations at iteration {k} "
                      f"(best {loop.best_residual:.2e})")
            break
    else:
        status = max_iter_status(max_iter, history, tol)
    return loop, converged, status


def solve_multi(problem, method="auto", tol=1e-8, max_iter=300, damping=None, anderson_depth=5, newton_tol=1e-12,
                newton_maxit=50, inner_factor=1e-2, m_init=None, progress=False, callback=None,
                divergence_factor=1e4, exploitability="final", diagnostics="lean", stall_window=8,
                newton_max_iter=50, krylov_rtol=1e-3, max_backtracks=30, nonmonotone=5):
    """Solve a ``MultiPopulationProblem`` (``mp.solve`` dispatches here; arguments as there, checked there).
    ``m_init``: (K, Nt+1, *grid).  Returns a ``MultiPopulationResult``."""
    from ..newton.driver import NEWTON_KEYS
    from ..newton import multipop as jn

    from ..model.problem import check_memory

    # K populations hold K times the space-time arrays of one: refused before anything is allocated
    check_memory((problem.K,) + problem.grid.shape, problem.Nt, method,
                 what=f"{problem.K} populations on grid shape {problem.grid.shape} with Nt = {problem.Nt}",
                 fix="use fewer cells per axis or fewer time steps Nt")
    t_start = time.perf_counter()
    report = Progress(progress, tol=tol)
    history = {k: [] for k in HISTORY_KEYS + NEWTON_KEYS}
    solver = {"method": method, "tol": tol, "max_iter": max_iter, "damping": damping,
              "anderson_depth": int(anderson_depth), "newton_tol": newton_tol, "newton_maxit": newton_maxit,
              "inner_factor": inner_factor, "diagnostics": diagnostics, "exploitability": exploitability,
              "m_init": "given" if m_init is not None else "m0", "populations": problem.K}
    if problem.has_switching:   # kept with the result (a case replaces its params by the case's)
        solver["switching"] = problem.switching.tolist()
    newton_opts = dict(krylov_rtol=krylov_rtol, max_backtracks=max_backtracks, nonmonotone=nonmonotone,
                       newton_tol=newton_tol, newton_maxit=newton_maxit, history=history, t_start=t_start,
                       report=report, callback=callback)
    common = dict(damping=damping, anderson_depth=anderson_depth, newton_tol=newton_tol, newton_maxit=newton_maxit,
                  inner_factor=inner_factor, callback=callback, exploitability=exploitability,
                  diagnostics=diagnostics, report=report, history=history, t_start=t_start)
    fields = None
    if method == "newton":
        why = jn.newton_unavailable(problem)
        if why:
            raise NotImplementedError(f"method='newton' on several populations: {why}; use method='anderson' or "
                                      "'picard'")
        us, ms, states = jn.cold_pair(problem, m_init, newton_tol, newton_maxit)
        converged, status, fields, _ = jn.joint_newton(problem, us, ms, states, tol=tol, max_iter=max_iter,
                                                       **newton_opts)
        solver["winner"] = "newton"
    elif method == "auto":
        why = jn.newton_unavailable(problem)
        # without a Newton to hand over to, a slow Anderson is left to run (it stops when it stalls)
        loop, converged, status = run_joint(problem, "anderson", tol, max_iter, m_init=m_init,
                                            divergence_factor=min(divergence_factor, 1e2),
                                            stop_when_slow=why is None, stop_when_stagnant=why is not None,
                                            window=int(stall_window), **{**common, "damping": None})
        solver["winner"] = "anderson"
        if not converged and loop.sol is not None:
            note = status
            if why is None:
                if np.isfinite(history["residual"][-1]):   # Newton starts from Anderson's last candidate pair
                    us, ms = [s.u for s in loop.sol.sols], loop.densities(loop.m_hat)
                    states = [s.states for s in loop.sol.sols]
                else:
                    us, ms, states = jn.cold_pair(problem, m_init, newton_tol, newton_maxit)
                report.note(f"auto: anderson {note}; newton on the joint system takes over")
                converged, status, fields, _ = jn.joint_newton(problem, us, ms, states, tol=tol,
                                                               max_iter=newton_max_iter, **newton_opts)
                solver["winner"] = "newton"
                if not converged:
                    note = f"{note}; newton: {status}"
            if not converged:   # no Newton, or Newton failed: damped Picard from the start
                loop, converged, status, theta = _picard_fallback(problem, tol, max_iter, m_init, divergence_factor,
                                                                  int(stall_window), common, report, note)
                fields = None
                solver["winner"] = "picard"
                solver["picard_damping"] = theta
            status = f"{status} (auto: anderson stopped, {note})"
            if converged:
                status = "converged"
                solver["auto_note"] = f"anderson stopped ({note}); {solver['winner']} finished"
    else:
        loop, converged, status = run_joint(problem, method, tol, max_iter, m_init=m_init,
                                            divergence_factor=divergence_factor, **common)
    if fields is None:
        fields = [(s.u, m, s.states) for s, m in zip(loop.sol.sols, loop.densities(loop.m_hat))]
        sols = loop.sol.sols
    else:
        sols = jn.solutions(fields, problem.Nt)
        if exploitability != "none" and history["residual"]:
            history["exploitability"][-1] = max(joint_gaps(problem, [f[0] for f in fields], [f[1] for f in fields],
                                                           [f[2] for f in fields], newton_tol, newton_maxit))
    result = _result(problem, fields, sols, converged, status, history, solver)
    report.done(result)
    return result


#: damping of the Picard fallback of ``auto``, and how many times it is halved when Picard stalls (a damped
#: Picard iteration that cycles between two densities converges with a smaller step)
PICARD_DAMPING = 0.5
PICARD_HALVINGS = 3


def _picard_fallback(problem, tol, max_iter, m_init, divergence_factor, window, common, report, note):
    """Damped Picard from the start, theta = PICARD_DAMPING, halved (up to PICARD_HALVINGS times) whenever the
    loop stalls; the last try runs to max_iter.  Returns (loop, converged, status, theta)."""
    theta = PICARD_DAMPING
    for attempt in range(PICARD_HALVINGS + 1):
        last = attempt == PICARD_HALVINGS
        report.note(f"auto: {note}; damped picard (theta = {theta:g}) from the start")
        loop, converged, status = run_joint(problem, "picard", tol, max_iter, m_init=m_init,
                                            divergence_factor=divergence_factor, window=window,
                                            stop_when_stagnant=not last, **{**common, "damping": theta})
        if converged or last or not status.startswith("stalled"):
            return loop, converged, status, theta
        note = f"picard (theta = {theta:g}) {status}"
        theta *= 0.5
    return loop, converged, status, theta


def _result(problem, fields, sols, converged, status, history, solver):
    """The ``MultiPopulationResult`` of the per-population fields [(u_k, m_k, states_k)]."""
    from ..diagnostics.outflow import attach_outflow
    from ..result import MFGResult, MultiPopulationResult

    hist = {key: np.asarray(v, dtype=float) for key, v in history.items()}
    n = len(hist["residual"])
    hist["iteration"] = np.arange(1, n + 1, dtype=float)
    pops = []
    for k, (pop, (u, m, _st), sol) in enumerate(zip(problem.populations, fields, sols)):
        pops.append(MFGResult(grid=problem.grid, t=problem.t, u=np.array(u), m=np.array(m), converged=converged,
                              status=status, iterations=n, history=hist, params=pop.describe(),
                              solver={**solver, "population": k, "name": problem.names[k]}, hjb_solution=sol,
                              problem=pop, obstacle=pop.solid))
        if pop.has_exits:   # mass leaves through exits and doors: the outflow balance replaces the mass check
            attach_outflow(pops[-1], pop, sol)
    verdict = problem.monotone()
    solver["coupling_monotone"] = {True: "yes", False: "no", None: "unknown"}[verdict]
    return MultiPopulationResult(grid=problem.grid, t=problem.t, names=list(problem.names), populations=pops,
                                 converged=converged, status=status, iterations=n, history=hist,
                                 params=problem.describe(), solver=solver, problem=problem)
