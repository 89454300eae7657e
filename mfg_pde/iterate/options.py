"""Checks of ``mp.solve``'s arguments: the common ones by type and range, and the method-specific options
by name (an option the method does not take, or a misspelling, is an error with a "did you mean")."""

from __future__ import annotations

import difflib
import numbers

import numpy as np

#: the keyword options each method takes beyond the common arguments of ``coupling.solve``
NEWTON_OPTIONS = ("warm_start", "warm_iter", "continuation", "continuation_steps", "continuation_tol",
                  "linear_solver", "direct_max", "krylov_rtol", "max_backtracks", "nonmonotone", "u_init")
AUTO_OPTIONS = ("linear_solver", "direct_max", "krylov_rtol", "max_backtracks", "nonmonotone", "stall_window",
                "newton_max_iter", "racers")
METHOD_OPTIONS = {"picard": (), "fictitious-play": (), "anderson": (), "newton": NEWTON_OPTIONS,
                  "auto": AUTO_OPTIONS}
COMMON = ("method", "tol", "max_iter", "damping", "anderson_depth", "newton_tol", "newton_maxit", "inner_factor",
          "m_init", "init", "progress", "callback", "divergence_factor", "exploitability", "diagnostics")


def check_options(method: str, options: dict) -> None:
    """Refuse options ``method`` does not take, naming the closest known name."""
    allowed = METHOD_OPTIONS[method]
    for name in sorted(options):
        if name in allowed:
            continue
        everything = set(COMMON).union(*METHOD_OPTIONS.values())
        close = difflib.get_close_matches(name, sorted(everything), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close and close[0] != name else "."
        others = [m for m, opts in METHOD_OPTIONS.items() if name in opts or (close and close[0] in opts)]
        where = f" (an option of method={others[0]!r})" if others and others[0] != method else ""
        raise TypeError(f"solve(method={method!r}) got an unexpected option {name!r}{where}{hint} "
                        f"Options of this method: {', '.join(allowed) or 'none beyond the common ones'}; "
                        f"common: {', '.join(COMMON)}")


def _number(name, value, *, integer=False, infinite=False):
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name} = {value!r}: must be {kind}")
    if integer and float(value) != int(value):
        raise ValueError(f"{name} = {value!r}: must be a whole number (e.g. {int(value)})")
    if np.isnan(float(value)) or (not infinite and not np.isfinite(float(value))):
        raise ValueError(f"{name} = {value!r}: must be finite")
    return int(value) if integer else float(value)


def check_common(problem, tol, max_iter, exploitability, diagnostics, damping, anderson_depth, newton_tol,
                 newton_maxit, inner_factor, divergence_factor):
    """Types and ranges of the arguments every method shares; returns (tol, max_iter) as float and int."""
    from ..model.problem import MFGProblem

    if not isinstance(problem, MFGProblem):
        what = "None" if problem is None else type(problem).__name__
        raise TypeError(f"solve(problem): expected an mp.MFGProblem, got {what} (planning problems: "
                        f"mp.solve_planning)")
    tol = _number("tol", tol)
    if not tol > 0:
        raise ValueError(f"tol = {tol}: must be > 0 (a relative tolerance such as 1e-8)")
    max_iter = _number("max_iter", max_iter, integer=True)
    if max_iter < 1:
        raise ValueError(f"max_iter = {max_iter}: must be >= 1")
    if exploitability not in ("final", "every", "none"):
        raise ValueError(f"exploitability = {exploitability!r}: choose 'final', 'every' or 'none'")
    if diagnostics not in ("every", "lean"):
        raise ValueError(f"diagnostics = {diagnostics!r}: choose 'every' or 'lean'")
    if damping is not None:
        damping = _number("damping", damping)
        if not 0 < damping <= 1:
            raise ValueError(f"damping = {damping}: must be in (0, 1]")
    if _number("anderson_depth", anderson_depth, integer=True) < 1:
        raise ValueError(f"anderson_depth = {anderson_depth}: must be >= 1")
    if not _number("newton_tol", newton_tol) > 0:
        raise ValueError(f"newton_tol = {newton_tol}: must be > 0")
    if _number("newton_maxit", newton_maxit, integer=True) < 1:
        raise ValueError(f"newton_maxit = {newton_maxit}: must be >= 1")
    if not _number("inner_factor", inner_factor) > 0:
        raise ValueError(f"inner_factor = {inner_factor}: must be > 0")
    if not _number("divergence_factor", divergence_factor, infinite=True) > 1:  # inf: never stop on growth
        raise ValueError(f"divergence_factor = {divergence_factor}: must be > 1")
    return tol, max_iter
