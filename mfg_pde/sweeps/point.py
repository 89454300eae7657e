"""One point of a sweep, as a worker runs it: solve the case, reduce the run to its scalars (and the fields
asked for), never raise.

``run_point`` is what the Dask tasks call (and the serial mode, in this process); the record it returns is
plain data (numbers, strings, numpy arrays), cheap to send back to the client.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import time
import traceback

import numpy as np

__all__ = ["FIELDS", "RESERVED", "run_point", "scalars_of", "variable_name", "warm_up"]

#: fields a sweep can store per point (``--fields``)
FIELDS = ("m", "u", "alpha")
#: names of the per-point variables every record has (a case's scalar of one of these names is renamed)
RESERVED = ("status", "converged", "failed", "done", "iterations", "residual", "run_time", "checks_passed",
            "checks_failed", "finished", "worker")
#: per-iteration history records whose final value is reported (``final`` value of the coupling loop)
_HISTORY_FINAL = {"hjb_residual": "relative HJB residual of the returned pair",
                  "fp_residual": "relative FP residual of the returned pair",
                  "mass_error": "relative mass error of the returned density",
                  "exploitability": "Nash gap (exploitability) of the returned pair",
                  "wall_time": "wall time of the solve"}


def variable_name(text: str, prefix: str = "") -> str:
    """A netCDF-friendly variable name from a quantity's label: runs of other characters than letters,
    digits and '_' become '_' (at most 80 characters)."""
    name = re.sub(r"[^0-9A-Za-z_]+", "_", str(text)).strip("_") or "value"
    return (prefix + name)[:80]


def _finite_number(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v


def scalars_of(run) -> tuple[dict, dict]:
    """(name -> float, name -> (long_name, units)) of a finished ``CaseRun``: the checks (``error_<quantity>``
    for an error, the quantity itself for an observed order), the case report's errors, the planning and
    outflow records, the history's one-entry records (a case's reported numbers) and the final value of the
    coupling loop's diagnostics."""
    r = run.result
    out, meta = {}, {}

    def put(name, value, long_name, units="1"):
        v = _finite_number(value)
        if v is None:
            return
        if name in RESERVED:
            name = f"{name}_value"
        out[name] = v
        meta[name] = (long_name, units)

    for c in run.checks or ():
        if getattr(c, "at_least", False):
            put(variable_name(c.quantity), c.error, f"{c.quantity} (check: >= {c.tol:g})")
        else:
            put(variable_name(c.quantity, "error_"), c.error, f"error: {c.quantity} (check: <= {c.tol:g})")
    report = getattr(r, "case_report", None)
    for k, v in (getattr(report, "errors", None) or {}).items():
        name = variable_name(k, "error_")
        if name not in out:
            put(name, v, f"error: {k}")
    if getattr(r, "planning", None) is not None:
        pl = r.planning
        for key, long_name in (("energy_E", "control energy E = int int m |alpha|^2 (no 1/2)"),
                               ("kinetic_cost", "kinetic cost int int m L(alpha)"),
                               ("running_cost", "running cost int int m (V + F)"),
                               ("total_cost", "total cost (kinetic + running)"),
                               ("terminal_mismatch", "L1 distance of m(T) to the target m1"),
                               ("sinkhorn_iterations_total", "Sinkhorn sweeps over all outer iterations")):
            put(key, getattr(pl, key, None), long_name)
    if getattr(r, "outflow", None) is not None:
        put("evacuated_fraction", r.outflow.evacuated_fraction, "fraction of the mass evacuated by T")
        put("outflow_balance_error", r.outflow.balance_error, "outflow balance error (relative)")
    hist = r.history or {}
    residual = hist.get("residual")
    n_main = len(residual) if residual is not None and np.ndim(residual) == 1 else None
    # a coupling loop's history (one record per iteration) or a case's reported numbers (one-entry records)
    loop = "iteration" in hist or (n_main is not None and n_main > 1)
    for key, values in hist.items():
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.dtype.kind not in "biuf" or arr.size == 0 or key == "residual":
            continue
        if key in _HISTORY_FINAL and arr.size == n_main:
            put(key, arr[-1], _HISTORY_FINAL[key], "s" if key.endswith("time") else "1")
        elif arr.size == 1 and (not loop or n_main != 1):
            put(variable_name(key), arr[0], key,
                "s" if key.endswith("time") or key.endswith("_s") else "1")
    return out, meta


def _fields_of(result, names) -> dict:
    grid = result.grid
    axes = list(grid.axis_names)
    coords = {"t": np.asarray(result.t, dtype=float)}
    coords.update({a: np.asarray(ax, dtype=float) for a, ax in zip(axes, grid.axes)})
    out = {}
    for name in names:
        arr = np.asarray(getattr(result, name), dtype=float)
        dims = ["t"] + axes + (["component"] if name == "alpha" else [])
        out[name] = (dims, arr)
    if "alpha" in names:
        coords["component"] = np.array(axes, dtype=object)
    return {"arrays": out, "coords": coords}


def run_point(case_name: str, overrides: dict, fields=()) -> dict:
    """Solve ``case_name`` with ``overrides`` and return its record: ``status`` (the result's status, or
    ``failed: <exception>: <message>``), ``converged``, ``failed``, ``iterations``, ``residual``,
    ``run_time``, ``checks_passed``/``checks_failed``, ``scalars``/``meta`` (``scalars_of``), ``fields`` (the
    requested fields with their coordinates) and ``worker`` (host:pid).  A case that raises is a failed
    point, not an exception: the study goes on."""
    from ..cases import get as get_case

    t0 = time.perf_counter()
    rec = {"worker": f"{socket.gethostname()}:{os.getpid()}", "scalars": {}, "meta": {}, "fields": None}
    sink = io.StringIO()   # cases print their tables (demand-response): keep the workers' stdout clean
    try:
        case = get_case(case_name)
        with contextlib.redirect_stdout(sink):
            run = case.run(dict(overrides), progress=False)
    except Exception as exc:  # noqa: BLE001 -- recorded as the point's status
        msg = " ".join(str(exc).split()) or exc.__class__.__name__
        rec.update(status=f"failed: {exc.__class__.__name__}: {msg}"[:500], converged=False, failed=True,
                   iterations=np.nan, residual=np.nan, checks_passed=False, checks_failed=np.nan,
                   traceback=traceback.format_exc(limit=8))
    else:
        r = run.result
        n_fail = sum(not c.passed for c in run.checks or ())
        rec.update(status=str(r.status), converged=bool(r.converged), failed=False,
                   iterations=float(r.iterations), residual=float(r.final_residual),
                   checks_passed=bool(n_fail == 0), checks_failed=float(n_fail))
        rec["scalars"], rec["meta"] = scalars_of(run)
        if fields:
            rec["fields"] = _fields_of(r, fields)
    rec["run_time"] = time.perf_counter() - t0
    rec["finished"] = time.time()
    return rec


def warm_up() -> float:
    """Load the solvers' numba kernels in this process (from the on-disk cache; compiled on the very first
    run after an installation): one tiny 1-D terminal-cost solve, which uses every kernel any grid problem
    needs (``fd.warm``).  Returns the seconds it took; never raises (a failure only means the first task
    loads the kernels itself)."""
    t0 = time.perf_counter()
    try:
        from .. import cases  # noqa: F401  (the registry and its imports)
        from ..iterate.solve import solve
        from ..model.couplings import QuadraticInteraction
        from ..model.densities import gaussian
        from ..model.grid import Grid
        from ..model.problem import MFGProblem, QuadraticTerminalCost

        grid = Grid([(-2.0, 2.0)], 24)
        problem = MFGProblem(grid, 0.5, 6, 0.8, gaussian(grid, 0.0, 0.5), coupling=QuadraticInteraction(1.0),
                             terminal_cost=QuadraticTerminalCost(1.0, 0.5))
        solve(problem, progress=False, tol=1e-8)
    except Exception:  # noqa: BLE001 -- informative only
        pass
    return time.perf_counter() - t0
