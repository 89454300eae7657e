"""``mp.solve``: checks the arguments and hands the problem to a coupling loop.

Methods: "picard", "fictitious-play", "anderson" (``iterate.fixed_point``), "newton" (``newton.driver``,
Newton on the whole discrete system) and "auto", the default (``iterate.auto``: Anderson, and a race of
Anderson, Newton and damped Picard when Anderson is slow).  The result records every option used and whether
the coupling is known to be monotone.  ``objective="social"`` solves the planner's optimum instead of the Nash
equilibrium: the same loops on ``model.social.social_problem`` (the first variations of F and G).  A
``MultiPopulationProblem`` goes to ``iterate.multipop.solve_multi`` (the Nash equilibrium only)."""

from __future__ import annotations

from ..fd import warm
from ..model.couplings import coupling_monotone
from ..model.social import objective_name, social_problem
import os

import numpy as np

from ..result import MFGResult, initial_fields
from ..newton.driver import solve_newton
from .auto import solve_auto
from .fixed_point import run_fixed_point
from .options import check_common, check_options

METHODS = ("picard", "fictitious-play", "anderson", "newton", "auto")
_ALIASES = {"fp": "fictitious-play", "fictitious": "fictitious-play", "fictitious_play": "fictitious-play",
            "damped": "picard", "fixed-point": "picard"}

def _method_name(method: str) -> str:
    key = str(method).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return key


def solve(problem, method: str = "auto", tol: float = 1e-8, max_iter: int = 300, damping: float | None = None,
          anderson_depth: int = 5, newton_tol: float = 1e-12, newton_maxit: int = 50, inner_factor: float = 1e-2,
          m_init=None, init=None,
          progress: bool = False, callback=None, divergence_factor: float = 1e4, exploitability: str = "final",
          diagnostics: str = "lean", objective: str = "nash", **options) -> MFGResult:
    """Solve the MFG ``problem`` by a coupling iteration; see the module docstring.

    Parameters
    ----------
    problem : an ``MFGProblem``, or a ``MultiPopulationProblem`` (several populations: the loops act on the joint
        density, ``iterate.multipop``; m_init is then (K, Nt+1, *grid), and the result a ``MultiPopulationResult``).
    method : "auto" (default: Anderson, racing Newton and damped Picard when it is slow), "picard",
        "fictitious-play", "anderson" or "newton".
    tol : relative tolerance on ||Phi(m) - m||_1 / ||m||_1.
    max_iter : iteration cap.
    damping : theta in (0, 1]; default 0.5 for picard, 1.0 for anderson (ignored by fictitious play).
    anderson_depth : memory of Anderson mixing.
    newton_tol, newton_maxit : relative tolerance and cap of the per-step Newton iterations.
    inner_factor : inexact-Newton factor (inner tolerance = max(newton_tol, inner_factor * residual)).
    m_init : initial guess for m on all levels, (Nt+1, *grid); default m0 frozen in time.  A previous result
        here is taken as ``init``.
    init : warm start from a previous result: an ``MFGResult`` or the path of a saved result file.  Its m
        starts the loop (with method="newton" also its u); on another grid, Nt or T it is interpolated
        first (``result.initial_fields``: ``model.grid.prolong`` in space and in relative time), so a coarse
        solution starts a finer solve (grid continuation).  ``result.solver["init"]`` says what was used.
    progress : one line per iteration (throttled) on the ``mfg_pde`` logger, shown on stderr unless
        logging is configured otherwise (``iterate.monitor.Progress``).
    callback : called as callback(k, record) after each iteration; return True to stop.
    exploitability : "final" (record the Nash gap at the last iteration), "every" or "none".
    diagnostics : "lean" (default) or "every".  Every iteration records the fixed-point residual, the step,
        the mass error and the inner Newton count; the exact HJB/FP residuals of the candidate pair (a third
        of an iteration's work in 2-D) are computed where they decide something -- iterations whose residual
        is <= tol, the last one, the pair auto hands to Newton -- and recorded as nan elsewhere with "lean",
        at every iteration with "every".  Iterates, decisions and results are the same in both modes (the
        residuals enter only the convergence test).  Newton always computes them (its steps use them).
    options : method-specific options of "newton" / "auto" (see ``newton.solve_newton`` and
        ``auto.solve_auto``); an option the method does not take is an error.
    """
    method = _method_name(method)
    objective = objective_name(objective)
    if _is_multi(problem):  # several populations: the joint loops (``iterate.multipop``)
        if objective != "nash":
            raise NotImplementedError(f"objective = {objective!r} is not available for several populations (a "
                                      "MultiPopulationProblem): its solve finds the Nash equilibrium; use "
                                      "objective='nash'")
        return _solve_multi(problem, method, tol, max_iter, damping, anderson_depth, newton_tol, newton_maxit,
                            inner_factor, m_init, init, progress, callback, divergence_factor, exploitability,
                            diagnostics, options)
    target = social_problem(problem) if objective == "social" else problem
    tol, max_iter = check_common(problem, tol, max_iter, exploitability, diagnostics, damping, anderson_depth,
                                 newton_tol, newton_maxit, inner_factor, divergence_factor)
    check_options(method, options)
    m_init, u_init, init_note = _split_init(problem, m_init, init, options, method)
    warm.start(problem)  # first run after an installation: the forward kernels compile in a second process
    if method == "auto" and not problem.is_coupled and not options:
        method = "anderson"  # nothing to iterate: the core loop's single sweep
    result = _tag(target, _dispatch(target, method, tol, max_iter, damping, anderson_depth, newton_tol, newton_maxit,
                                    inner_factor, m_init, u_init, progress, callback, divergence_factor,
                                    exploitability, diagnostics, options), init_note)
    result.solver["objective"] = objective
    if target is not problem:
        result.problem = problem
    return result


def _is_multi(problem) -> bool:
    from ..model.multipop import MultiPopulationProblem
    return isinstance(problem, MultiPopulationProblem)


#: the options of each method on several populations (``iterate.multipop.solve_multi``)
MULTI_OPTIONS = {"picard": (), "fictitious-play": (), "anderson": (),
                 "newton": ("krylov_rtol", "max_backtracks", "nonmonotone"),
                 "auto": ("stall_window", "newton_max_iter", "krylov_rtol", "max_backtracks", "nonmonotone")}


def _solve_multi(problem, method, tol, max_iter, damping, anderson_depth, newton_tol, newton_maxit, inner_factor,
                 m_init, init, progress, callback, divergence_factor, exploitability, diagnostics, options):
    """Check the arguments (as for one population) and run ``iterate.multipop.solve_multi``."""
    from .multipop import solve_multi

    tol, max_iter = check_common(problem.populations[0], tol, max_iter, exploitability, diagnostics, damping,
                                 anderson_depth, newton_tol, newton_maxit, inner_factor, divergence_factor)
    for name in sorted(options):
        if name not in MULTI_OPTIONS[method]:
            allowed = ", ".join(MULTI_OPTIONS[method]) or "none beyond the common ones"
            raise TypeError(f"solve(method={method!r}) on several populations got an unexpected option {name!r}; "
                            f"options of this method: {allowed}")
    if init is not None:
        raise NotImplementedError("init= (a warm start from a previous result) is not supported for several "
                                  "populations; pass m_init with shape (K, Nt+1, *grid)")
    warm.start()
    return solve_multi(problem, method, tol, max_iter, damping, anderson_depth, newton_tol, newton_maxit,
                       inner_factor, m_init, progress, callback, divergence_factor, exploitability, diagnostics,
                       **options)


def _dispatch(problem, method, tol, max_iter, damping, anderson_depth, newton_tol, newton_maxit, inner_factor, m_init,
              u_init, progress, callback, divergence_factor, exploitability, diagnostics, options):
    """Run the coupling loop of ``method``."""
    if method == "newton":
        if u_init is not None:
            options["u_init"] = u_init
        return solve_newton(problem, tol=tol, max_iter=max_iter, m_init=m_init, newton_tol=newton_tol,
                            newton_maxit=newton_maxit, anderson_depth=anderson_depth, progress=progress,
                            callback=callback, exploitability=exploitability, **options)
    if method == "auto":
        return solve_auto(problem, tol=tol, max_iter=max_iter, damping=damping, anderson_depth=anderson_depth,
                          newton_tol=newton_tol, newton_maxit=newton_maxit, inner_factor=inner_factor, m_init=m_init,
                          progress=progress, callback=callback, exploitability=exploitability,
                          divergence_factor=min(divergence_factor, 1e2), diagnostics=diagnostics, **options)
    return run_fixed_point(problem, method, tol, max_iter, damping, anderson_depth, newton_tol, newton_maxit,
                           inner_factor, m_init, progress, callback, divergence_factor, exploitability, diagnostics)


def _tag(problem, result, init_note=None):
    """Record in the result whether the coupling is known to be monotone (one equilibrium) or not, and the
    warm start it came from."""
    if init_note is not None:
        result.solver["init"] = init_note
    try:
        verdict = coupling_monotone(problem)
    except Exception:  # noqa: BLE001 -- a verdict never fails a finished solve
        verdict = None
    result.solver["coupling_monotone"] = {True: "yes", False: "no", None: "unknown"}[verdict]
    return result


def _split_init(problem, m_init, init, options, method):
    """(m_init, u_init, note): the starting density (and, with method="newton", value function) from
    ``m_init`` (an array) or ``init`` (a previous result or its file, interpolated where its grid or time
    levels differ); ``m_init`` holding a result is taken as ``init``."""
    u_init = options.pop("u_init", None)  # a Newton option (check_options refused it elsewhere)
    if isinstance(m_init, MFGResult):
        if init is not None:
            raise ValueError("m_init and init are both given: pass the previous result as init= only")
        m_init, init = None, m_init
    elif m_init is not None:
        if isinstance(m_init, (str, bytes, os.PathLike)):
            raise TypeError(f"m_init={m_init!r}: a file name; to start from a saved result pass init={m_init!r}")
        try:
            np.asarray(m_init, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"m_init: expected an array of shape (Nt+1, *grid) = {(problem.Nt + 1,) + problem.grid.shape}"
                            f", got {type(m_init).__name__}; to start from a previous result pass init=result "
                            "(or its file name)") from None
        if init is not None:
            raise ValueError("m_init and init are both given: pass either a density (m_init=) or a previous "
                             "result (init=)")
    if init is None:
        return m_init, u_init, None
    warm = initial_fields(init, problem, "init")
    if u_init is None and method == "newton":
        u_init = warm.u
    return warm.m, u_init, warm.note
