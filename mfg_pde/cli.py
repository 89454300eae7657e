"""The ``mfg-pde`` command line.

    mfg-pde cases                                   list the registered cases
    mfg-pde run CASE [--set name=value ...] [--out FILE.h5] [--quiet]
                     [--method NAME] [--tol X] [--max-iter N] [--plot FIG.png [style options]]
    mfg-pde solve FILE.py [--out FILE.h5] [--figure FIG.png [style options]] [--quiet] [--init FILE.h5]
                     [--method NAME] [--tol X] [--max-iter N]
                                                    solve the `problem` a Python file defines
    mfg-pde validate [--quiet] [--case NAME ...]     run the cases with closed forms, table of checks
    mfg-pde sweep CASE --vary NAME=VALUES [--vary ...] [--set name=value ...] --out STUDY.nc
                     [--fields m,u] [--scheduler tcp://HOST:PORT|local|serial] [--workers N]
                     [--retry-failed] [--quiet]
                                                    parameter study on Dask: one labelled dataset, resumable
    mfg-pde info FILE.h5                            describe a saved result
    mfg-pde plot FILE.h5 [--out FIG.png] [style options]   quick-look figure of a saved result
    mfg-pde movie FILE.h5 [--out M.gif] [--fps N] [--frames N] [--field m|u] [style options]
                                                    animated GIF of the density over time
    mfg-pde --version

Style options (figures): --figsize W,H (inches), --dpi N, --font-size PT, --cmap NAME (a matplotlib colour
map), --scale linear|log|sqrt (colour scale of the density).

Exit status: 0 success; 1 a run did not converge or a check failed; 2 a usage error (unknown
case / parameter, bad value, missing, foreign or incomplete file, an --out that cannot be written,
a grid too large for the memory), reported as one line on stderr starting with ``mfg-pde: error:``;
130 interrupted (Ctrl-C; an interrupted save leaves any existing file untouched).  Output cut short
by the reader (``mfg-pde info f.h5 | head -1``) ends quietly.  Set ``MFG_PDE_TRACEBACK=1`` to get
the full traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time

import numpy as np

PROG = "mfg-pde"


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump, no SystemExit from deep inside argparse
        raise UsageError(f"{message} (see `{PROG} --help`)")


def _version() -> str:
    from ._version import __version__

    return __version__


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{PROG} {_version()}")
        parser.exit(0)


def _cases():
    from . import cases

    return cases


def _fmt_num(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(v):
        return "nan"
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.3e}"
    return f"{v:.4g}"


def _fmt_value(v) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return str(v)
    return str(v)


def _fmt_tol(check) -> str:
    """Tolerance column: 'tol' for an upper bound, '>= tol' for an observed order (at_least)."""
    return (">= " if getattr(check, "at_least", False) else "") + _fmt_num(check.tol)


def _table(rows, header) -> list:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
              for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def _parse_sets(items) -> dict:
    out = {}
    for item in items or ():
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected name=value (for example --set sigma=0.5); "
                             f"`{PROG} cases -v` lists each case's parameters")
        name, value = item.split("=", 1)
        name = name.strip()
        if not name:
            raise UsageError(f"--set {item!r}: the parameter name before '=' is empty; "
                             "write name=value")
        out[name] = value.strip()
    return out


def _check_out(path, option: str = "--out") -> None:
    """--out (or another output option) must name a file that can be written (checked before any solve)."""
    from .io import OutputPathError, check_output_path

    try:
        check_output_path(path)
    except OutputPathError as exc:
        raise UsageError(f"{option} {path if path else repr(path)}: {exc.reason}") from None


# style options of the figure commands: (option, Style field)
_STYLE_OPTIONS = (("--figsize", "figsize"), ("--dpi", "dpi"), ("--font-size", "font_size"), ("--cmap", "cmap"),
                  ("--scale", "scale"))


def _add_style_options(s) -> None:
    g = s.add_argument_group("style options")
    g.add_argument("--figsize", metavar="W,H", help="figure size in inches, e.g. 8,4 (default: fitted to the "
                   "domain's aspect ratio)")
    g.add_argument("--dpi", metavar="N", help="resolution of the saved figure (default 120)")
    g.add_argument("--font-size", metavar="PT", dest="font_size", help="base font size in points (default 10)")
    g.add_argument("--cmap", metavar="NAME", help="colour map of the density (a matplotlib name; default "
                   "viridis)")
    g.add_argument("--scale", metavar="linear|log|sqrt", help="colour scale of the density (default: sqrt for "
                   "images over (x, y), linear for lines and (t, x) images)")


def _style_given(args) -> list:
    return [opt for opt, field in _STYLE_OPTIONS if getattr(args, field, None) is not None]


def _style_from(args):
    """The plotting Style of the style options given (None when none was); a bad value is a UsageError naming
    the option, the value and what it takes."""
    given = {field: getattr(args, field) for _opt, field in _STYLE_OPTIONS if getattr(args, field, None) is not None}
    if not given:
        return None
    from .plotting import Style, StyleError

    for field in ("dpi", "font_size"):
        if field in given:
            try:
                given[field] = float(given[field])
            except ValueError:
                option = {f: o for o, f in _STYLE_OPTIONS}[field]
                raise UsageError(f"{option} {given[field]}: expected a positive number") from None
    try:
        return Style(**given)
    except StyleError as exc:
        option = {f: o for o, f in _STYLE_OPTIONS}.get(exc.param, exc.param)
        raise UsageError(f"{option} {exc.value}: {exc.reason}") from None


def _plot(result, out, style) -> None:
    """The dashboard of a result to out, with its case's closed-form mean where there is one."""
    from .plotting import plot_result

    if not hasattr(result, "t") and (hasattr(result, "economy") or hasattr(result, "new")):  # macro results: own figure
        from .plotting.macro import draw

        if style is not None:
            _note("style options are not used by this result's figure")
        draw(result, out)
        print(f"wrote {out}")
        return
    if hasattr(result, "populations"):   # several populations: their own quick-look figure
        from .plotting.populations import plot_populations

        plot_populations(result, path=out, style=style)
        print(f"wrote {out}")
        return
    oracle = _oracle_mean_for(result)
    extra = {} if style is None else {"style": style}
    try:
        plot_result(result, path=out, oracle_mean=oracle, **extra)
    except Exception as exc:
        if oracle is None:
            raise
        _note(f"no closed-form mean drawn ({exc.__class__.__name__}: {_one_line(exc)})")
        plot_result(result, path=out, oracle_mean=None, **extra)
    print(f"wrote {out}")


def _note(message: str) -> None:
    print(f"{PROG}: note: {message}", file=sys.stderr)


def _checks_ok(run) -> bool:
    return bool(run.result.converged) and all(bool(c.passed) for c in run.checks)


# ---------------------------------------------------------------------------------- commands
def cmd_cases(args) -> int:
    cases = _cases()
    objs = [cases.get(n) for n in cases.names()]
    width = max((len(c.name) for c in objs), default=0)
    for c in objs:
        desc = (c.description or "").strip().splitlines()
        desc = desc[0] if desc else ""
        mark = "  [oracle]" if c.has_oracle else ""
        print(f"{c.name.ljust(width)}  {desc}{mark}".rstrip())
        if args.verbose:
            pw = max((len(p.name) for p in c.params), default=0)
            for p in c.params:
                extra = f" (one of: {', '.join(map(str, p.choices))})" if p.choices else ""
                print(f"    {p.name.ljust(pw)}  = {p.default!r:<10}  {p.help}{extra}")
    return 0


def _solve_kwargs(args) -> dict:
    kw = {}
    if getattr(args, "method", None) is not None:
        kw["method"] = args.method
    if getattr(args, "tol", None) is not None:
        if not (args.tol > 0 and math.isfinite(args.tol)):
            raise UsageError(f"--tol {args.tol}: must be a positive number")
        kw["tol"] = args.tol
    if getattr(args, "max_iter", None) is not None:
        if args.max_iter < 1:
            raise UsageError(f"--max-iter {args.max_iter}: must be at least 1")
        kw["max_iter"] = args.max_iter
    return kw


def _conservation_lines(result) -> list:
    """'mass error', or on a grid with exit sides the outflow balance and the evacuated fraction."""
    grid = getattr(result, "grid", None)
    out = getattr(result, "outflow", None)
    doors = out is not None and bool(getattr(out, "doors", None))   # doors: exits on part of a reflecting side
    if grid is None or not (grid.has_exits or doors):
        return [("mass error", _fmt_num(result.mass_error()))]
    if out is None:
        return [("evacuated", _fmt_num(result.evacuated_fraction()) + " (outflow not attached)")]
    half, most = out.time_to_evacuate(0.5), out.time_to_evacuate(0.9)
    return [("outflow balance", _fmt_num(out.balance_error) + "  (max |mass + outflow - mass0| / mass0)"),
            ("evacuated", f"{out.evacuated_fraction:.4f} of the mass by t = {_fmt_num(out.t[-1])} "
                          f"through {getattr(out, 'through', ', '.join(out.sides))} (half by t = {_fmt_num(half)}, 90% by t = "
                          f"{_fmt_num(most)})")]


def cmd_run(args) -> int:
    cases = _cases()
    overrides = _parse_sets(args.set)
    case = cases.get(args.case)          # CaseError -> exit 2
    params = case.resolve(overrides)     # fail fast on unknown names / bad values
    kw = _solve_kwargs(args)
    if args.out is not None:
        _check_out(args.out)             # before the solve, whose result would otherwise be lost
    style = _style_from(args)            # bad style options fail before the solve too
    if args.plot is not None:
        _check_out(args.plot, "--plot")
    elif style is not None:
        raise UsageError(f"{', '.join(_style_given(args))}: style the figure of --plot FIG.png; add --plot "
                         "(or draw a saved result with `mfg-pde plot FILE.h5` and the same options)")
    case.check_memory(params, kw.get("method"))   # a grid too large: refused before anything is built
    if not args.quiet:
        print(f"{PROG}: running {case.name} ...", file=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):  # progress goes to stderr, stdout keeps the summary
        run = case.run(overrides, progress=not args.quiet, **kw)
    result = run.result

    defaults = case.defaults()
    changed = [f"{k}={_fmt_value(v)}" for k, v in params.items() if defaults.get(k) != v]
    lines = [
        ("case", case.name),
        ("parameters", ", ".join(changed) if changed else "defaults"),
        *([("solver", ", ".join(f"{k}={v}" for k, v in kw.items()))] if kw else []),
        ("status", result.status),
        ("converged", "yes" if result.converged else "no"),
        ("iterations", str(result.iterations)),
        ("residual", _fmt_num(result.final_residual)),
        *_conservation_lines(result),
        ("wall time", f"{run.wall_time:.3f} s"),
    ]
    w = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k.ljust(w)}  {v}")
    if run.checks:
        print()
        rows = [(c.quantity, _fmt_num(c.error), _fmt_tol(c), "PASS" if c.passed else "FAIL")
                for c in run.checks]
        for line in _table(rows, ("quantity", "error", "tol", "result")):
            print(line)
    for name, path in case.written(run.params):  # every file the case wrote, with the parameter that asked
        print(f"wrote {path} (--set {name}=...)")
    if args.out is not None:
        result.save(args.out)
        print(f"\nwrote {args.out}")
    if args.plot is not None:
        _plot(result, args.plot, style)
    ok = _checks_ok(run)
    if not ok:
        why = "did not converge" if not result.converged else "oracle check failed"
        print(f"{PROG}: {case.name}: {why}", file=sys.stderr)
    return 0 if ok else 1


# ---------------------------------------------------------------------------------- solve FILE.py
_SOLVE_FILE_HELP = ("define it at module level, e.g. problem = mp.MFGProblem(grid, T=1.0, Nt=100, sigma=0.5, m0=m0) "
                    "(or an mp.PlanningProblem); optionally options = dict(tol=1e-8) and name = \"my-run\"")


def _user_frame_line(exc, path) -> str:
    """'line N: <source>' of the deepest traceback frame in the user's file (for an error raised while it
    ran), or '' when none is in it."""
    import traceback

    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == path:
        text = (exc.text or "").strip()
        return f"line {exc.lineno}" + (f": {text}" if text else "")
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and os.path.abspath(frame.filename) == path:
            found = f"line {frame.lineno}" + (f": {frame.line.strip()}" if frame.line else "")
    return found


def _run_problem_file(path) -> dict:
    """Run the user's Python file (as ``python FILE`` would, but with ``__name__`` = "__mfg_pde_solve__",
    so an ``if __name__ == "__main__":`` block is skipped) and return its globals.  Errors become
    UsageErrors naming the file, with the line of the user's file where it failed."""
    import runpy

    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file (give the Python file that defines `problem`)")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory; give the Python file that defines `problem`")
    if path.endswith((".h5", ".hdf5", ".nc")):
        raise UsageError(f"{path}: is a result file; `{PROG} solve` runs a Python file that defines `problem` "
                         f"(`{PROG} info` and `{PROG} plot` read result files; --init FILE.h5 warm-starts a solve)")
    where = os.path.abspath(path)
    added = os.path.dirname(where)
    sys.path.insert(0, added)   # its own imports resolve next to it, as with `python FILE`
    try:
        with contextlib.redirect_stdout(sys.stderr):   # its prints do not mix with the summary on stdout
            return runpy.run_path(where, run_name="__mfg_pde_solve__")
    except (KeyboardInterrupt, UsageError):
        raise
    except SystemExit as exc:
        raise UsageError(f"{path} called sys.exit({exc.code!r}) while it was run; a problem file only defines "
                         "`problem` (put other code under `if __name__ == \"__main__\":`)") from None
    except BaseException as exc:  # noqa: BLE001 -- anything the user's code raises is reported as theirs
        if os.environ.get("MFG_PDE_TRACEBACK"):
            raise
        line = _user_frame_line(exc, where)
        msg = _one_line(exc) if not isinstance(exc, SyntaxError) else exc.msg
        raise UsageError(f"{path}{', ' + line if line else ''}: {exc.__class__.__name__}: {msg}") from None
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(added)


def _problem_from_file(path):
    """(problem, options, name) that the user's file defines; clear errors for what is missing or wrong."""
    from .model.multipop import MultiPopulationProblem
    from .model.problem import MFGProblem

    ns = _run_problem_file(path)
    if "problem" not in ns:
        raise UsageError(f"{path} defines no `problem`: {_SOLVE_FILE_HELP}")
    problem = ns["problem"]
    if not isinstance(problem, (MFGProblem, MultiPopulationProblem)):
        what = type(problem).__name__
        hint = "; call it: problem = make_problem(...)" if callable(problem) else ""
        raise UsageError(f"{path}: `problem` is a {what}, not an mp.MFGProblem, mp.PlanningProblem or "
                         f"mp.MultiPopulationProblem{hint}")
    options = ns.get("options", {})
    if options is None:
        options = {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise UsageError(f"{path}: `options` is a {type(options).__name__}; give a dict of solver keyword "
                         "arguments, e.g. options = dict(method=\"anderson\", tol=1e-8)")
    name = ns.get("name")
    if name is not None and not isinstance(name, str):
        raise UsageError(f"{path}: `name` is a {type(name).__name__}; give a string (it names the output files)")
    if not name:
        name = problem.name or os.path.splitext(os.path.basename(path))[0]
    return problem, dict(options), name


def cmd_solve(args) -> int:
    import re

    from .model.problem import PlanningProblem

    problem, options, name = _problem_from_file(args.file)
    for key, value in _solve_kwargs(args).items():   # command-line flags win over the file's options
        options[key] = value
    if args.init is not None:
        if "init" in options or "m_init" in options:
            raise UsageError(f"--init {args.init}: {args.file} already gives a start in its options "
                             f"({'init' if 'init' in options else 'm_init'}); give one")
        if not os.path.isfile(args.init):
            raise UsageError(f"--init {args.init}: no such file (give a result file written by `{PROG} solve`, "
                             f"`{PROG} run --out` or result.save)")
        options["init"] = args.init
    out = args.out if args.out is not None else re.sub(r"[^\w.+-]+", "_", name) + ".h5"
    _check_out(out)                       # before the solve, whose result would otherwise be lost
    style = _style_from(args)             # bad style options fail before the solve too
    if args.figure is not None:
        _check_out(args.figure, "--figure")
    elif style is not None:
        raise UsageError(f"{', '.join(_style_given(args))}: style the figure of --figure FIG.png; add --figure")
    if problem.name is None:
        problem.name = name               # recorded in the result file (params, /problem)
    planning = isinstance(problem, PlanningProblem)
    options.setdefault("progress", not args.quiet)
    if not args.quiet:
        print(f"{PROG}: solving {name} from {args.file} ...", file=sys.stderr)
    if planning:
        from .planning.sinkhorn import solve_planning as solver
    else:
        from .iterate.solve import solve as solver
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = solver(problem, **options)
    except (TypeError, ValueError) as exc:   # options the solver refuses, a bad warm start, ...
        if os.environ.get("MFG_PDE_TRACEBACK"):
            raise
        raise UsageError(f"{args.file}: solving `problem` failed: {_one_line(exc)}") from None
    wall = time.perf_counter() - t0
    shown = {k: v for k, v in options.items() if k not in ("progress", "callback")}
    lines = [
        ("file", args.file),
        ("problem", f"{name}: {type(problem).__name__}, grid {' x '.join(map(str, problem.grid.shape))}, "
                    f"Nt {problem.Nt}, T {_fmt_num(problem.T)}, " + (
                        f"sigma {_fmt_num(problem.sigma)}" if hasattr(problem, "sigma") else
                        f"{problem.K} populations, sigma {', '.join(_fmt_num(p.sigma) for p in problem.populations)}")),
        ("solver", ", ".join(f"{k}={v}" for k, v in shown.items()) or "defaults"),
        *([("start", result.solver["init"])] if "init" in (result.solver or {}) else []),
        ("status", result.status),
        ("converged", "yes" if result.converged else "no"),
        ("iterations", str(result.iterations)),
        ("residual", _fmt_num(result.final_residual)),
        *_conservation_lines(result),
        *([("planning", f"energy E {_fmt_num(result.planning.energy_E)} (no 1/2), terminal mismatch "
                        f"{_fmt_num(result.planning.terminal_mismatch)}")]
          if getattr(result, "planning", None) is not None else []),
        ("wall time", f"{wall:.3f} s"),
    ]
    w = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k.ljust(w)}  {v}")
    result.save(out)
    print(f"wrote {out}")
    if args.figure is not None:
        _plot(result, args.figure, style)
    if not result.converged:
        print(f"{PROG}: {name}: did not converge ({result.status})", file=sys.stderr)
    return 0 if result.converged else 1


def cmd_validate(args) -> int:
    cases = _cases()
    if args.case:
        selected = [cases.get(n) for n in dict.fromkeys(args.case)]   # unknown name -> exit 2
    else:
        selected = [c for c in cases.all_cases() if c.has_oracle]
    if not selected:
        raise UsageError("no cases with a closed-form oracle are registered")
    rows, n_pass, n_fail = [], 0, 0
    # per-case lines on the mfg_pde logger (stderr); its first use says when the kernels compile first
    from .iterate.monitor import Progress
    report = Progress(not args.quiet)
    t_all = time.perf_counter()
    for i, case in enumerate(selected, 1):
        report.note(f"{PROG}: validating {case.name} (case {i} of {len(selected)}) ...")
        t0, failed0 = time.perf_counter(), n_fail
        # Case.validate (when the case has one) adds a refinement study: the observed order of
        # each error on a twice finer grid is checked too.
        runner = getattr(case, "validate", None) or case.run
        try:
            with contextlib.redirect_stdout(sys.stderr):
                run = runner({}, progress=False)
        except Exception as exc:  # a crash is a failure of this case, not of the command
            if os.environ.get("MFG_PDE_TRACEBACK"):
                raise
            msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            rows.append((case.name, "run", "-", "-", f"FAIL ({exc.__class__.__name__}: {msg})"))
            n_fail += 1
            report.note(f"{PROG}:   {case.name} failed after {time.perf_counter() - t0:.2f} s "
                        f"({exc.__class__.__name__})")
            continue
        if not run.result.converged:
            rows.append((case.name, "converged", _fmt_num(run.result.final_residual), "-",
                         f"FAIL ({run.result.status})"))
            n_fail += 1
        for c in run.checks:
            ok = bool(c.passed)
            rows.append((case.name, c.quantity, _fmt_num(c.error), _fmt_tol(c),
                         "pass" if ok else "FAIL"))
            n_pass += ok
            n_fail += not ok
        if run.result.converged and not run.checks:
            rows.append((case.name, "converged", _fmt_num(run.result.final_residual), "-", "pass"))
            n_pass += 1
        report.note(f"{PROG}:   {case.name} done in {time.perf_counter() - t0:.2f} s "
                    f"({'pass' if n_fail == failed0 else 'FAIL'})")
    report.note(f"{PROG}: {len(selected)} case{'s' if len(selected) != 1 else ''} validated in "
                f"{time.perf_counter() - t_all:.1f} s")
    for line in _table(rows, ("case", "quantity", "error", "tol", "result")):
        print(line)
    print(f"{n_pass} passed, {n_fail} failed")
    return 0 if n_fail == 0 else 1


def cmd_sweep(args) -> int:
    """A parameter study (``mfg_pde.sweeps``): the product of the --vary values, run on Dask, one dataset."""
    vary = {}
    for item in args.vary:
        if "=" not in item:
            raise UsageError(f"--vary {item!r}: expected NAME=VALUES, e.g. --vary beta=1,2,4 or "
                             "--vary beta=linspace(0.5,8,16)")
        name, values = (x.strip() for x in item.split("=", 1))
        if not name:
            raise UsageError(f"--vary {item!r}: the parameter name before '=' is empty")
        if name in vary:
            raise UsageError(f"--vary {name}: given twice; list all its values in one --vary")
        vary[name] = values
    if not vary:
        raise UsageError(f"a sweep needs at least one --vary NAME=VALUES (e.g. --vary beta=1,2,4); `{PROG} cases -v` "
                         "lists each case's parameters")
    fixed = _parse_sets(args.set)
    fields = [f for f in (args.fields or "").split(",") if f.strip()]
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: need at least 1")
    try:
        from .sweeps import sweep
    except ImportError as exc:  # pragma: no cover -- the extra is missing
        raise UsageError(f"{_one_line(exc)}") from None
    try:
        ds = sweep(args.case, vary, fixed, out=args.out, fields=fields, scheduler=args.scheduler,
                   n_workers=args.workers, retry_failed=args.retry_failed, progress=not args.quiet)
    except ImportError as exc:   # dask / xarray missing: the optional extra [sweep]
        raise UsageError(_one_line(exc)) from None
    except KeyboardInterrupt:
        print(f"{PROG}: sweep interrupted; the points done are in {args.out}: run the same command to go on",
              file=sys.stderr)
        raise
    done, failed = int(ds.attrs["points_done"]), int(ds.attrs["points_failed"])
    not_conv = int(ds.attrs["points_not_converged"])
    print(f"wrote {args.out}: {done} of {int(ds.attrs['points_total'])} points; {done - failed - not_conv} converged, "
          f"{not_conv} not converged, {failed} failed")
    status = ds["status"].values.ravel()
    bad = np.flatnonzero((ds["done"].values.ravel() == 1) & (ds["converged"].values.ravel() == 0)).tolist()
    dims = list(ds["status"].dims)
    for i in bad[:5]:
        at = np.unravel_index(i, ds["status"].shape)
        where = ", ".join(f"{d}={ds[d].values[k]}" for d, k in zip(dims, at))
        print(f"  {where}: {status[i]}")
    if len(bad) > 5:
        print(f"  ... and {len(bad) - 5} more (variable 'status' in {args.out})")
    return 0 if not bad else 1


def cmd_info(args) -> int:
    from .io import read_metadata

    meta = read_metadata(args.file)
    g = meta["grid"]
    items = [
        ("file", meta["path"]),
        ("written by", f"mfg_pde {meta['mfg_pde_version']}" +
         (f" on {meta['created']}" if meta["created"] else "")),
        ("case", meta["case"] or "-"),
        ("params", ", ".join(f"{k}={_fmt_value(v)}" for k, v in meta["params"].items()) or "-"),
        ("solver", ", ".join(f"{k}={_fmt_value(v)}" for k, v in meta["solver"].items()) or "-"),
        ("grid", f"shape {tuple(g.get('shape', ()))}, bounds "
                 f"{[tuple(b) for b in g.get('bounds', [])]}, bc {tuple(g.get('bc', ()))}"),
        ("status", meta["status"]),
        ("converged", "yes" if meta["converged"] else "no"),
        ("iterations", str(meta["iterations"])),
    ]
    w = max(len(k) for k, _ in items)
    for k, v in items:
        print(f"{k.ljust(w)}  {v}")
    print("datasets:")
    dw = max((len(n) for n in meta["datasets"]), default=0)
    for name, shape in meta["datasets"].items():
        print(f"  {name.ljust(dw)}  {shape}")
    if meta.get("outflow"):
        o = meta["outflow"]
        through = ", ".join(o["sides"]) or "-"
        if o.get("doors"):
            from .result import OutflowHistory

            through = OutflowHistory.exits_text(o["sides"], o["doors"])
        print(f"outflow: evacuated {_fmt_num(o['evacuated_fraction'])} of the mass through "
              f"{through}; balance error {_fmt_num(o['balance_error'])}")
    if meta.get("planning"):
        pl = meta["planning"]
        total = f", total cost {_fmt_num(pl['total_cost'])}" if pl.get("total_cost") is not None else ""
        print(f"planning: energy E {_fmt_num(pl['energy_E'])} (no 1/2), kinetic cost {_fmt_num(pl['kinetic_cost'])}"
              f"{total}, terminal mismatch {_fmt_num(pl['terminal_mismatch'])}")
    if meta["history"]:
        print("history (final values):")
        hw = max(len(n) for n in meta["history"])
        for key, h in meta["history"].items():
            last = h["last"]
            val = _fmt_num(last) if isinstance(last, (int, float)) else str(last)
            print(f"  {key.ljust(hw)}  {val}  ({h['length']} entries)")
    return 0


_SOLVER_KEYS = ("method", "tol", "max_iter")   # recorded next to a case's parameters by `run`


def _oracle_mean_for(result):
    """The registered case's closed-form mean path for the result, ready to draw: one finite mean per
    time level and axis.  None (with a note on stderr when there was one to draw) when the result has no
    case, the case has no closed form, the file's parameters are not the case's, or the closed form
    fails or does not fit the result."""
    if not result.case:
        return None
    try:
        case = _cases().get(result.case)
    except Exception:
        return None
    if not hasattr(case, "oracle_mean"):
        return None
    from .plotting import _oracle_array

    def skip(why):
        _note(f"no closed-form mean drawn for case {case.name}: {why}")
        return None

    params = dict(result.params or {})
    known = {p.name for p in case.params}
    foreign = sorted(k for k in params if k not in known and k not in _SOLVER_KEYS)
    if foreign:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        return skip(f"the file's parameters are not the case's ({shown})")
    try:
        p = case.resolve({k: v for k, v in params.items() if k in known})
        t = np.asarray(result.t, dtype=float)
        om = np.asarray(case.oracle_mean(p, t), dtype=float)
        checked = _oracle_array(om, t, result.grid.ndim)
    except Exception as exc:
        return skip(f"{exc.__class__.__name__}: {_one_line(exc)}")
    if not np.all(np.isfinite(checked)):
        return skip("it is not finite for these parameters")
    return om


def cmd_plot(args) -> int:
    from .result import load

    style = _style_from(args)
    result = load(args.file)
    out = args.out
    if out is None:
        root, _ = os.path.splitext(args.file)
        out = root + ".png"
    _check_out(out)
    _plot(result, out, style)
    return 0


def cmd_movie(args) -> int:
    from .plotting import movie
    from .result import load

    style = _style_from(args)
    if args.frames is not None and args.frames < 2:
        raise UsageError(f"--frames {args.frames}: must be at least 2")
    if args.fps is not None and not (0 < args.fps <= 100 and math.isfinite(args.fps)):
        raise UsageError(f"--fps {args.fps}: must be a number of frames per second in (0, 100]")
    out = args.out
    if out is None:
        out = os.path.splitext(args.file)[0] + ".gif"
    if not out.lower().endswith(".gif"):
        raise UsageError(f"--out {out}: a movie is a GIF file; name it ....gif")
    _check_out(out)
    result = load(args.file)
    n = movie(result, out, fps=10 if args.fps is None else args.fps, frames=60 if args.frames is None else args.frames,
              field=args.field, style=style)
    print(f"wrote {out} ({n} frames)")
    return 0


# ---------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Finite-difference mean-field-game solver, verified "
                "against closed forms.")
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("cases", help="list the registered cases")
    s.add_argument("--verbose", "-v", action="store_true", help="also list each case's parameters")
    s.set_defaults(func=cmd_cases)

    s = sub.add_parser("run", help="solve one case and compare with its closed form")
    s.add_argument("case", metavar="CASE", help="case name (see `mfg-pde cases`)")
    s.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a case parameter (repeatable)")
    s.add_argument("--out", metavar="FILE.h5", help="write the result to this HDF5 file")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    s.add_argument("--method", metavar="NAME", help="solver coupling method")
    s.add_argument("--tol", type=float, metavar="X", help="solver tolerance")
    s.add_argument("--max-iter", type=int, metavar="N", dest="max_iter",
                   help="maximum coupling iterations")
    s.add_argument("--plot", metavar="FIG.png", help="also draw the result's quick-look figure to this file")
    _add_style_options(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("solve", help="solve the `problem` a Python file defines, write the result")
    s.add_argument("file", metavar="FILE.py", help="a Python file that defines `problem` (an mp.MFGProblem or "
                   "mp.PlanningProblem), optionally `options` (a dict of solver keyword arguments) and `name`")
    s.add_argument("--out", metavar="FILE.h5", help="result file (default: NAME.h5 in the current directory)")
    s.add_argument("--figure", metavar="FIG.png", help="also write the quick-look figure")
    _add_style_options(s)
    s.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    s.add_argument("--init", metavar="FILE.h5", help="warm start from a saved result (interpolated when its grid "
                   "or Nt differ)")
    s.add_argument("--method", metavar="NAME", help="solver coupling method (overrides the file's options)")
    s.add_argument("--tol", type=float, metavar="X", help="solver tolerance (overrides the file's options)")
    s.add_argument("--max-iter", type=int, metavar="N", dest="max_iter",
                   help="maximum coupling iterations (overrides the file's options)")
    s.set_defaults(func=cmd_solve)

    s = sub.add_parser("validate", help="run the cases with closed forms and tabulate the checks")
    s.add_argument("--case", action="extend", nargs="+", default=[], metavar="NAME",
                   help="only these cases (default: every case with an oracle)")
    s.add_argument("--quiet", "-q", action="store_true", help="no per-case progress lines")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("sweep", help="parameter study: a case over the product of parameter values, on Dask; "
                       "one labelled dataset (netCDF/zarr), resumable")
    s.add_argument("case", metavar="CASE", help="case name (see `mfg-pde cases`)")
    s.add_argument("--vary", action="append", default=[], metavar="NAME=VALUES",
                   help="a dimension of the study (repeatable; the product is run): 1,2,4 | linspace(a,b,n) | "
                   "geomspace(a,b,n) | logspace(a,b,n) (10^a..10^b) | range(a,b,step); N,Nt=50:50,100:100 varies "
                   "parameters together")
    s.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a fixed case parameter (repeatable)")
    s.add_argument("--out", required=True, metavar="STUDY.nc", help="the study's file: netCDF (.nc, h5netcdf) or "
                   "zarr (.zarr); written as points finish; when it exists, its points are not run again")
    s.add_argument("--fields", metavar="m,u", help="also store these fields of every point (m, u, alpha)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="tcp://HOST:PORT of a running Dask scheduler; 'local' "
                   "(default: a local cluster, one process per core) or 'serial' (this process, no Dask)")
    s.add_argument("--workers", type=int, metavar="N", help="processes of the local cluster (default: the cores)")
    s.add_argument("--retry-failed", action="store_true", dest="retry_failed",
                   help="run the failed points of an existing --out again")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("info", help="describe a saved result file")
    s.add_argument("file", metavar="FILE.h5")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("plot", help="quick-look figure of a saved result file")
    s.add_argument("file", metavar="FILE.h5")
    s.add_argument("--out", metavar="FIG.png", help="figure file (default: FILE with .png suffix; .pdf, .svg "
                   "by suffix)")
    _add_style_options(s)
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("movie", help="animated GIF of a saved result's density over time")
    s.add_argument("file", metavar="FILE.h5")
    s.add_argument("--out", metavar="M.gif", help="GIF file (default: FILE with .gif suffix)")
    s.add_argument("--fps", type=float, metavar="N", help="frames per second (default 10)")
    s.add_argument("--frames", type=int, metavar="N", help="at most this many frames, evenly spaced time levels "
                   "(default 60)")
    s.add_argument("--field", choices=("m", "u"), default="m", help="density m (default) or value u")
    _add_style_options(s)
    s.set_defaults(func=cmd_movie)
    return p


def _one_line(exc) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return " ".join(text.split())


def _stdout_to_devnull() -> None:
    """The reader of stdout has gone (a closed pipe): send what is still buffered to /dev/null, so that
    neither we nor the interpreter's final flush report the broken pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a file descriptor (tests)
        pass


def main(argv=None) -> int:
    parser = build_parser()
    rc = 0
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            rc = exc.code if isinstance(exc.code, int) else 0
        else:
            if getattr(args, "func", None) is None:
                raise UsageError("a command is required: cases, run, solve, validate, sweep, info, plot or movie "
                                 f"(see `{PROG} --help`)")
            rc = int(args.func(args))
        sys.stdout.flush()  # here, not at exit: a closed pipe is then handled below
        return rc
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mfg-pde info f.h5 | head -1`: the reader stopped reading, not an error
        _stdout_to_devnull()
        return rc
    except (UsageError, ValueError, TypeError, OSError, NotImplementedError, MemoryError) as exc:
        # CaseError, ResultFileError and the memory check's InsufficientMemoryError are ValueErrors;
        # OSError covers a failed write, MemoryError an allocation numpy could not make.
        if os.environ.get("MFG_PDE_TRACEBACK"):
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
