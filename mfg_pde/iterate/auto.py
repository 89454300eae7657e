"""``method="auto"`` (the default of ``mp.solve``): Anderson first, and a race of loops when it is slow.

Anderson acceleration of the damped fixed point is the cheapest loop on most problems, Newton on the whole
discrete system is the fastest on the hard ones (small viscosity, strong congestion), and plain damped
Picard is the one that survives some non-monotone (aggregation) couplings on which Anderson's
extrapolation cycles and Newton's line search stalls far from a solution.  No test on the first iterations
tells which will win, so ``auto`` does not guess: it runs them side by side.

1. Anderson runs alone while it converges fast: after ``stall_window`` (W) iterations the linear rate of
   its best residual over the last W iterations predicts how many more it needs; it stays alone while that
   is at most max(3k, 4W) (a loop converging linearly at a useful rate is left alone), and the race starts otherwise,
   or at once on a non-finite value or a residual ``divergence_factor`` times its best.
2. The race: Anderson keeps its state; Newton starts from Anderson's best candidate pair by the Newton
   residual max(hjb_residual, fp_residual) (from the cold pair m0, HJB(m0) when Anderson made no
   progress); damped Picard (theta = 0.5) starts from where Anderson started.  The racer that has used the
   least wall time, counting the expected time of its next step (a Newton step is long: the last one's
   time, at first that of 40 Anderson iterations), takes the next iteration, so each gets an equal share
   of the time; the first to converge wins.  A racer drops out when it fails: a non-finite value, divergence, Newton's line
   search finding no descent, no new best residual over 2W of its iterations (Newton: no halving over
   8 steps), or its iteration cap (``max_iter`` for the loops, ``newton_max_iter`` for Newton).  Newton
   re-enters from a loop's best pair once that is ten times better than the pair it last started from.

If Anderson converges alone, the result is exactly ``method="anderson"``'s.  Otherwise the time is at most
about (number of racers) x the fastest racer's time from the start of the race, plus the time Anderson
ran alone; ``benchmarks/bench_methods.py`` measures it against every loop on a panel of problems.
Where Newton has no system (exit boundaries; non-local couplings in 2-D/3-D) the race is Anderson and Picard.

History: one record per iteration of whichever loop ran it, in the order run; ``phase`` says which
(0 Anderson, 1 Newton, 2 Picard); the Newton-only keys (line_search, step_norm, linear_iterations) are nan
in loop records.  The result carries the winner's pair; without a winner, the best pair seen by the Newton
residual, with a status that says what each racer did.
"""

from __future__ import annotations

import time

import numpy as np

from ..result import MFGResult
from ..diagnostics.exploitability import nash_gap
from ..fd.hjb import HJBSolution, empty_states
from ..newton.driver import NEWTON_KEYS, NewtonRun, _check_options, _initial_pair, make_system
from ..diagnostics.outflow import attach_outflow
from .fixed_point import FixedPoint
from .monitor import HISTORY_KEYS, Progress, record

PHASES = {"anderson": 0.0, "newton": 1.0, "picard": 2.0}
#: time share of Newton against each loop in the race (Newton wins most races it is in: the hard corner)
NEWTON_WEIGHT = 2.0
#: time shares of the loops in the race (Picard, the slow but sure fallback of the aggregation problems,
#: half of Anderson's)
LOOP_WEIGHTS = {"anderson": 1.0, "picard": 0.5}
#: the first Newton step is charged this many Anderson iterations before it runs (measured: a Newton step
#: costs 2-3 Anderson iterations in 1-D, 1.5-2 per Krylov iteration in 2-D)
FIRST_NEWTON_COST = {1: 10.0, 2: 80.0, 3: 80.0}
#: Krylov iterations of a racing Newton's first step in 2-D/3-D (healthy steps need 5-90; doubled after a
#: step that used them all, up to MAX_KRYLOV): a first step far from a solution stays short.  In 1-D a
#: capped Krylov solve falls back to the sparse LU, which costs more than the iterations saved: MAX_KRYLOV.
FIRST_KRYLOV = 40
MAX_KRYLOV = 160


def newton_available(problem) -> str | None:
    """None when Newton can run on this problem, else the reason it cannot."""
    if problem.grid.has_exits:
        return "newton does not support exit boundaries"
    if problem.geometry.active:
        return "newton does not support walls and doors (obstacles, doors)"
    if getattr(problem, "fp_source", None) is not None:
        return "newton does not support an fp_source"
    if problem.grid.ndim != 1:
        from ..newton.system_split import check_split_coupling
        try:
            check_split_coupling(problem.coupling)
        except NotImplementedError:
            return "no newton derivative for this coupling in 2-D/3-D"
    return None


class _Loop:
    """A fixed-point racer (Anderson or Picard)."""

    def __init__(self, name, loop, window, max_iter, divergence_factor):
        self.name, self.loop, self.window, self.max_iter = name, loop, window, max_iter
        self.divergence_factor = divergence_factor
        self.time = 0.0
        self.alive, self.why = True, ""
        self.bests = []  # best residual after each iteration

    @property
    def iterations(self):
        return self.loop.k

    def step(self):
        t0 = time.perf_counter()
        state, rec = self.loop.step()
        self.time += time.perf_counter() - t0
        res = rec["residual"]
        self.bests.append(self.loop.best_residual)
        k = self.loop.k
        if state == "non-finite":
            self.alive, self.why = False, f"non-finite values at iteration {k}"
        elif state == "continue" and k > 5 and res > self.divergence_factor * self.loop.best_residual:
            self.alive, self.why = False, f"diverged (residual {res:.2e}, best {self.loop.best_residual:.2e})"
        elif state == "continue" and k >= self.max_iter:
            self.alive, self.why = False, f"max_iter = {self.max_iter} reached (best {self.loop.best_residual:.2e})"
        return state, rec

    def slow(self, tol) -> str | None:
        """Why this loop should not run alone any longer (None: it is converging fast enough)."""
        if not self.alive:
            return self.why
        k, W = self.loop.k, self.window
        if k < W + 1:
            return None
        now, then = self.bests[-1], self.bests[-1 - W]
        rate = (now / then) ** (1.0 / W) if then > 0 and now > 0 else 0.0
        if rate >= 0.995:
            return f"no progress over {W} iterations at iteration {k} (best {now:.2e})"
        need = np.log(tol / now) / np.log(rate) if now > tol and rate > 0 else 0.0
        if need > max(3 * k, 4 * W):
            return f"slow at iteration {k}: rate {rate:.3f}, about {need:.0f} more iterations to tol (best {now:.2e})"
        return None

    def stagnant(self) -> bool:
        """No new best residual over the last 2W iterations (checked while racing)."""
        W2 = 2 * self.window
        return len(self.bests) > W2 and not self.bests[-1] < self.bests[-1 - W2]

    def pair(self):
        """The best candidate pair by the Newton residual: (u, m_hat, states, value, iteration) or None."""
        return self.loop.best_pair


class _Newton:
    """A Newton racer from one starting pair."""

    def __init__(self, problem, u, m, states, start_value, origin, tol, max_iter, newton_tol, newton_maxit,
                 every_gap, options):
        self.problem, self.origin, self.start_value = problem, origin, start_value
        u, m = u.copy(), m.copy()
        t0 = time.perf_counter()
        if problem.grid.ndim > 1:  # the split chain's iterate carries the intermediate states
            u, m = make_system(problem).lift(u, m, newton_tol, newton_maxit, states=states)
        self.run = NewtonRun(problem, u, m, tol=tol, max_iter=max_iter, every_gap=every_gap,
                             krylov_maxiter=FIRST_KRYLOV if problem.grid.ndim > 1 else MAX_KRYLOV, **options)
        self.time = time.perf_counter() - t0
        self.alive, self.why = True, ""
        self.residuals = []
        self.next_cost = np.nan  # expected time of the next step: the last step's (set by the driver at first)
        self.bad = 0

    @property
    def iterations(self):
        return self.run.k

    def step(self):
        t0 = time.perf_counter()
        state, rec = self.run.step()
        self.next_cost = time.perf_counter() - t0
        self.time += self.next_cost
        self.residuals.append(rec["residual"])
        k = self.run.k
        if state == "non-finite":
            self.alive, self.why = False, f"non-finite residual in newton iteration {k}"
        elif state == "line-search":
            self.alive, self.why = False, f"line search failed in newton iteration {k} (residual {rec['residual']:.2e})"
        elif state == "max-iter":
            self.alive, self.why = False, f"newton max_iter reached (residual {rec['residual']:.2e})"
        elif len(self.residuals) > 8 and not min(self.residuals[-8:]) < 0.5 * min(self.residuals[:-8]):
            self.alive, self.why = False, f"newton stagnated at residual {min(self.residuals):.2e}"
        elif state == "continue":
            # a step whose Krylov solve used its whole budget and that the line search took at more than a
            # quarter: the next may use twice as many iterations; two capped steps in a row cut to a quarter
            # or less mean an indefinite system far from a solution: Newton drops out (a loop may bring it
            # a better pair)
            capped = self.run.last_krylov >= self.run.krylov_maxiter
            short = rec["line_search"] <= 0.25
            self.bad = self.bad + 1 if capped and short else 0
            if capped and not short:
                self.run.krylov_maxiter = min(2 * self.run.krylov_maxiter, MAX_KRYLOV)
            if self.bad >= 2:
                self.alive, self.why = False, (f"newton far from a solution (Krylov at its cap, short steps) at "
                                               f"residual {rec['residual']:.2e}")
        return state, rec

    def pair(self):
        sysm = self.run.sysm
        u, m = self.run.u, self.run.m
        if self.problem.grid.ndim > 1:
            states = sysm.states(u)
            u, m = sysm.fields(u, m)
        else:
            states = empty_states(self.problem)
        return u, m, states, self.run.residual


def _newton_fits(problem) -> bool:
    """Whether Newton's arrays (``problem.solve_memory_estimate``) fit in the memory still available, the
    loops' arrays being held already."""
    from ..model.problem import available_memory, solve_memory_estimate
    avail = available_memory()
    return avail is None or solve_memory_estimate(problem.grid.shape, problem.Nt, "newton") <= avail


def _clock(racer, anderson) -> float:
    """The racer's time for the scheduler: the time it used plus the time its next step is expected to
    take (0 for a loop, whose iterations are short; for Newton the last step's time, at first that of
    FIRST_NEWTON_COST Anderson iterations), Newton's divided by NEWTON_WEIGHT.  So a long Newton step runs
    only once every loop has used its share of the time."""
    if isinstance(racer, _Newton):
        nxt = racer.next_cost if np.isfinite(racer.next_cost) else \
            FIRST_NEWTON_COST[racer.problem.grid.ndim] * anderson.time / max(anderson.iterations, 1)
        return (racer.time + nxt) / NEWTON_WEIGHT
    return racer.time / LOOP_WEIGHTS[racer.name]


def solve_auto(problem, tol: float = 1e-8, max_iter: int = 300, damping: float | None = None,
               anderson_depth: int = 5, newton_tol: float = 1e-12, newton_maxit: int = 50,
               inner_factor: float = 1e-2, m_init=None, progress: bool = False, callback=None,
               divergence_factor: float = 1e2, stall_window: int = 6, exploitability: str = "final",
               newton_max_iter: int = 50, racers=("newton", "picard"), diagnostics: str = "lean",
               **newton_options) -> MFGResult:
    """Anderson, then (when it is slow) a race of Anderson, Newton and damped Picard; see the module
    docstring.  ``racers`` names the loops that join Anderson in the race; ``newton_options``
    (linear_solver, direct_max, krylov_rtol, max_backtracks, nonmonotone) go to Newton."""
    racers = (racers,) if isinstance(racers, str) else tuple(racers)
    for r in racers:
        if r not in ("newton", "picard"):
            raise ValueError(f"racers = {racers!r}: each must be 'newton' or 'picard'")
    W = int(stall_window)
    if W < 2:
        raise ValueError(f"stall_window = {stall_window}: must be >= 2")
    no_newton = newton_available(problem)
    if no_newton is None and "newton" in racers:
        _check_options(problem, None, 0, None, newton_options.get("linear_solver", "auto"))
    elif newton_options.get("linear_solver", "auto") not in ("auto", "direct", "krylov"):
        raise ValueError(f"linear_solver = {newton_options['linear_solver']!r}: choose 'auto', 'direct' or 'krylov'")
    damping = 1.0 if damping is None else damping
    grid, Nt = problem.grid, problem.Nt
    t_start = time.perf_counter()
    history = {k: [] for k in HISTORY_KEYS + NEWTON_KEYS}
    report = Progress(progress, tol=tol)
    solver = {"method": "auto", "tol": tol, "max_iter": int(max_iter), "damping": damping,
              "anderson_depth": int(anderson_depth), "newton_tol": newton_tol, "newton_maxit": newton_maxit,
              "inner_factor": inner_factor, "stall_window": W, "newton_max_iter": int(newton_max_iter),
              "racers": list(racers), "divergence_factor": divergence_factor, "exploitability": exploitability,
              "m_init": "given" if m_init is not None else "m0", "diagnostics": diagnostics, **newton_options}

    def gap_of(u, m, states):
        return nash_gap(problem, u, m, states, newton_tol, newton_maxit)

    anderson = _Loop("anderson", FixedPoint(problem, "anderson", tol, damping, anderson_depth, newton_tol, newton_maxit,
                                            inner_factor, m_init=m_init, keep_best=True,
                                            diagnostics=diagnostics),
                     W, int(max_iter), divergence_factor)
    loops = [anderson]
    newton = None
    newton_starts = 0
    cold_tried = False
    newton_best = None  # best pair of an earlier Newton run (u, m, states, residual)
    newton_fits = "newton" in racers and no_newton is None and _newton_fits(problem)
    notes = []
    racing = False
    winner = None
    stop = None

    def start_newton(pair, origin, why=""):
        nonlocal newton, newton_starts, cold_tried, newton_best
        cold_tried = cold_tried or pair is None
        if newton is not None:  # keep the pair of the Newton run that stopped, if it is the best one so far
            held = newton.pair()
            if newton_best is None or held[3] < newton_best[3]:
                newton_best = tuple(np.copy(a) for a in held[:3]) + (held[3],)
        if pair is None:
            u0, m0_ = _initial_pair(problem, m_init, newton_tol, newton_maxit)
            states, value = None, np.inf
        else:
            u0, m0_, states, value = pair[:4]
        newton = _Newton(problem, u0, m0_, states if grid.ndim > 1 else None, value, origin, tol, newton_max_iter,
                         newton_tol, newton_maxit, exploitability == "every", newton_options)
        newton_starts += 1
        notes.append(f"newton from {origin}")
        report.note(f"auto: switching to newton (joins the race) from {origin}" + (f": {why}" if why else ""))

    def best_loop_pair():
        pairs = [(lp.pair(), lp) for lp in loops if lp.pair() is not None]
        return min(pairs, key=lambda p: p[0][3]) if pairs else (None, None)

    def begin_race(why):
        nonlocal racing
        racing = True
        notes.append(f"anderson {why}")
        report.note(f"auto: anderson {why}; racing it against {', '.join(racers) or 'nothing'}")
        pair, _ = best_loop_pair()
        # Anderson's pair starts Newton only if Anderson cut its residual tenfold; else the cold pair
        progressed = anderson.loop.best_residual < 0.1 * anderson.loop.first_residual
        if "newton" in racers and no_newton is not None:
            notes.append(f"newton left out: {no_newton}")
            report.note(f"auto: newton left out: {no_newton}")
        elif "newton" in racers and not newton_fits:
            notes.append("newton left out: its arrays would not fit in the available memory")
            report.note("auto: newton left out: its arrays would not fit in the available memory")
        elif newton_fits:
            if progressed and pair is not None:
                start_newton(pair, f"anderson's iteration {pair[4]}", f"anderson {why}")
            else:
                start_newton(None, "the cold pair (m0, HJB(m0))",
                             f"anderson {why}, and it did not cut its residual tenfold")
        if "picard" in racers:  # from the same start as Anderson: damped Picard as a user would run it
            picard = _Loop("picard", FixedPoint(problem, "picard", tol, 0.5, anderson_depth, newton_tol, newton_maxit,
                                                inner_factor, m_init=m_init, keep_best=True,
                                                diagnostics=diagnostics),
                           W, int(max_iter), divergence_factor)
            loops.append(picard)
            notes.append("picard from the start")
            report.note("auto: damped picard (theta = 0.5) joins the race from anderson's start")

    while True:
        contenders = [lp for lp in loops if lp.alive] + ([newton] if newton is not None and newton.alive else [])
        if not contenders:
            stop = "every loop stopped"
            break
        racer = min(contenders, key=lambda r: _clock(r, anderson)) if racing else anderson
        state, rec = racer.step()
        name = "newton" if racer is newton else racer.name
        rec["phase"] = PHASES[name]
        if exploitability == "every" and racer is not newton and state != "non-finite":
            rec["exploitability"] = gap_of(racer.loop.sol.u, racer.loop.m_hat, racer.loop.sol.states)
        rec.setdefault("exploitability", np.nan)
        rec = record(history, rec, t_start)
        n_rec = len(history["residual"])
        if state == "converged":
            report(n_rec, rec, force=True, label=name)
            winner = racer
            break
        report(n_rec, rec, label=name)
        if callback is not None and callback(n_rec, rec):
            stop = f"stopped by callback at iteration {n_rec}"
            break
        if not racing:
            why = anderson.slow(tol)
            if why is not None:
                begin_race(why)
            continue
        if racer is not newton and racer.alive and racer.stagnant():
            racer.alive, racer.why = False, f"no new best residual over {2 * W} iterations"
        if not racer.alive:
            notes.append(f"{name} stopped: {racer.why}")
            left = [r.name for r in loops if r.alive] + (["newton"] if newton is not None and newton.alive else [])
            report.note(f"auto: {name} drops out of the race: {racer.why}; "
                        f"{'still racing: ' + ', '.join(left) if left else 'no racer left'}")
        # Newton re-enters: from the cold pair if it has not started there yet, or from a loop's pair ten
        # times better than the one it last started from
        if newton is not None and not newton.alive and newton_starts < 4 and newton_fits:
            pair, _ = best_loop_pair()
            if pair is not None and pair[3] < 0.1 * min(newton.start_value, newton.run.residual):
                start_newton(pair, f"a loop pair at Newton residual {pair[3]:.2e}",
                             "re-entering: that pair is ten times better than its last start")
            elif not cold_tried:
                start_newton(None, "the cold pair (m0, HJB(m0))", "re-entering from the cold pair, not tried yet")

    # ---- the result: the winner's pair, or the best pair seen
    hist = {key: np.asarray(v, dtype=float) for key, v in history.items()}
    n = len(hist["residual"])
    hist["iteration"] = np.arange(1, n + 1, dtype=float)
    converged = winner is not None
    if winner is not None and winner is not newton:
        u, m, sol = winner.loop.sol.u, winner.loop.m_hat, winner.loop.sol
        how = winner.name
    elif winner is not None and winner is newton:
        u, m, states, _ = newton.pair()
        sol = HJBSolution(u, states, np.zeros(Nt, dtype=np.int64))
        how = "newton"
    else:
        options = []
        for lp in loops:
            if lp.pair() is not None:
                u_, m_, st_, v_ = lp.pair()[:4]
                options.append((v_, u_, m_, st_))
        if newton is not None:
            u_, m_, st_, v_ = newton.pair()
            options.append((v_, u_, m_, st_))
        if newton_best is not None:
            u_, m_, st_, v_ = newton_best
            options.append((v_, u_, m_, st_))
        if options:
            _, u, m, states = min(options, key=lambda o: o[0])
        else:  # nothing finite at all
            u = np.full((Nt + 1,) + grid.shape, np.nan)
            m = anderson.loop.m
            states = empty_states(problem)
        sol = HJBSolution(u, states, np.zeros(Nt, dtype=np.int64))
        how = None
    story = "; ".join(notes)
    if converged:
        status = "converged" if not racing else f"converged (auto: {how} won; {story})"
    elif stop is not None and stop.startswith("stopped by callback"):
        status = f"{stop} (auto: {story})" if story else stop
    else:
        status = f"not converged: {stop} (auto: {story or 'anderson ' + anderson.why})"
    if exploitability != "none" and n and np.all(np.isfinite(u)):
        hist["exploitability"][-1] = gap_of(u, m, sol.states)
    solver["auto"] = story or "anderson alone"
    solver["winner"] = how or "none"
    result = MFGResult(grid=grid, t=problem.t, u=u, m=m, converged=converged, status=status, iterations=n,
                       history=hist, params=problem.describe(), solver=solver, hjb_solution=sol,
                       problem=problem, obstacle=problem.solid)
    if problem.has_exits and np.all(np.isfinite(u)):
        attach_outflow(result, problem, sol)
    report.done(result)
    return result
