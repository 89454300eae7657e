"""Self-describing HDF5 files for :class:`~mfg_pde.result.MFGResult`.

Layout (one file per result)::

    /t                      (Nt+1,)            time levels            [dimension scale "t"]
    /x, /y, /z              (n_k,)             cell-centre coordinates [dimension scales]
    /component              (d,)               names of alpha's components ("x", "y", ...)
    /m                      (Nt+1, *grid)      density                 dims labelled t, x, y, z
    /u                      (Nt+1, *grid)      value function          dims labelled t, x, y, z
    /alpha                  (Nt+1, *grid, d)   feedback -grad u        last dim "component"
    /history/<key>          (iterations,)      per-iteration records (residual, ...)
    /outflow/...                               only for grids with exit (absorbing) sides:
        mass                (Nt+1,)            mass(t_n) of the density
        cumulative          (Nt+1,)            outflow(0, t_n): mass that has left by t_n
        evacuated           (Nt+1,)            cumulative / mass(0)
        balance             (Nt+1,)            mass + cumulative - mass(0)  (round-off)
        per_side            (Nt, d, 2)         outflow of step n through side (axis, lo/hi)
        per_door            (Nt, doors)        outflow of step n through each door (problems with doors)
        attributes: balance_error, evacuated_fraction, sides (JSON list of exit-side labels), doors (JSON
        list of the door names, with per_door)
    /obstacle               (*grid)            optional uint8 mask of a case's obstacle region (plots)
    /planning                                  only for planning solves (``result.PlanningRecord``): attributes
        energy_E, kinetic_cost, terminal_mismatch (floats) and, where set, sinkhorn_iterations_total
        (int), congestion_c, min_density (floats), positive (bool), initial (str), stages (JSON list)
    /case_report                               only for results of cases that keep a report
                                               (``result.CaseReport``): attribute errors (JSON object
                                               quantity -> error), optional dataset table (rows, columns)
                                               with attribute columns (JSON list), optional group arrays
                                               (one dataset per named study output); dimension scales row
                                               (index) and column (the column names) of the table, and
                                               arrays_<name>_dim_<k> (index) of each array

    /iteration              (iterations,)      dimension scale of the history records (1-based index), unless
                                               the history has its own "iteration" record (then that is the
                                               scale); /<key>_entry for a record of another length.  These
                                               carry the attribute mfg_pde_scale = 1 and are not records.
    /outflow/step, /outflow/axis, /outflow/side  dimension scales of /outflow/per_side
    /outflow/door                                dimension scale of /outflow/per_door (the door names; with
                                                  /outflow/step)
    /problem                                   only when the problem is known (``result.problem``, set by the
                                               solvers, or ``save(path, problem=...)``): its data on the grid
                                               as the solvers used them, from which ``mfg_pde.load_problem``
                                               rebuilds it.  Attributes kind ("MFGProblem" / "PlanningProblem"),
                                               T, Nt, sigma, name, grid (JSON), description (JSON, the problem's
                                               describe()), coupling (JSON rebuild spec: the built-in couplings'
                                               describe(), kernels as dataset names, {"rebuildable": false, "why"}
                                               otherwise), terminal_depends_on_m (int8), skipped (JSON list of
                                               arrays over PROBLEM_ARRAY_LIMIT (64 MiB), each with an attribute
                                               <name>_skipped saying its size).  Datasets:
        m0, m1              (*grid)            initial / target density (m1: planning only)
        potential           (K, *grid)         V: an array as given (attribute form "static" (*grid) or
                                               "levels" (Nt+1, *grid)), or a callable sampled (form "sampled")
                                               at t_{n+1} of each step (and the midpoints for planning)
        potential_t         (K,)               its times (dimension scale)
        drift, drift_t      (K, d, *grid), (K,)  b at t_{n+1} (one level when not time dependent)
        terminal_cost       (*grid)            G(x) (attribute depends_on_m 0), or G(x, m_T) at the result's
                                               final density (depends_on_m 1: not rebuildable)
        exit_costs          (d, 2)             Dirichlet value on the exit sides, NaN elsewhere (exit grids);
                                               dimension scales axis, side
        obstacles           (*grid)            solid-cell mask, 1 outside the domain (problems with obstacles)
        doors               attribute          JSON list of the doors: axis, side, cost, name and the indices
                                               (C order on the side) of their faces (problems with doors)
        kernel_<i>          (L_1, ...)         a KernelInteraction's W on its displacement lattice (attribute
                                               spacing); dimension scales d<axis>_kernel_<i> (displacements)
    /provenance                                attributes mfg_pde_version, numpy_version, scipy_version,
                                               numba_version, h5py_version, python_version,
                                               python_implementation, platform, machine, command_line (JSON
                                               list: sys.argv), created_utc (ISO 8601); git_revision (the
                                               commit of the package's source folder when it is a git
                                               checkout, else ""), git_dirty (1 when that checkout has
                                               uncommitted changes, 0 when clean, -1 unknown);
                                               solve_end_utc (when the file was written) and
                                               solve_start_utc (solve_end_utc less the last
                                               history["wall_time"], the seconds since the solve
                                               started; "" without it), UTC ISO 8601

These are the typed fields of ``MFGResult`` (``outflow``, ``obstacle``, ``planning``, ``case_report``;
``alpha``); ``hjb_solution`` (a solver internal) is not written.  Files written before the typed fields
existed have the same ``/alpha``, ``/outflow`` and ``/obstacle`` and no ``/planning``: for a Sinkhorn
planning solve the record is rebuilt from its history (energy_E, cost_E_half, terminal_mismatch,
sinkhorn_iterations), which held the same numbers.

Every dataset carries ``long_name`` and ``units`` attributes (the problems are non-dimensional,
so ``units`` is ``"1"``), and the coordinates are HDF5 dimension scales, so generic HDF5 / netCDF
readers (h5netcdf, xarray, HDFView) see labelled axes.

Root attributes: ``mfg_pde_version``, ``created`` (ISO 8601 UTC), ``case`` (``""`` when none),
``params``, ``solver`` and ``grid`` (JSON strings; the grid's ``bc`` holds one entry per axis, a
name or a ``[lo, hi]`` pair), ``converged`` (int8 0/1: netCDF has no boolean type, so a bool attribute
would break ``to_netcdf``; files of earlier versions hold a bool, and both read as bool), ``iterations``
(int), ``status`` (str).  ``complete`` and ``/planning``'s ``positive`` are int8 0/1 as well.

Writes are atomic: the file is written to ``<path>.tmp-<pid>`` next to the target, flushed and
fsynced, and moved onto it with :func:`os.replace` only after it has been closed (the directory is
fsynced after the rename where the platform allows), so an interrupted save never leaves a
half-written file and never clobbers an existing good one.  SIGINT, SIGTERM and SIGHUP arriving
during the write remove the temporary file before they take effect (handlers are installed for the
duration of the write only, in the main thread, and the previous ones are restored and then given
the signal: Ctrl-C still raises KeyboardInterrupt, SIGTERM still terminates).  A temporary file left
by a process that no longer exists (``kill -9``, power loss) is removed by the next save to the same
name.  The root attribute ``complete`` is written false first and set true after the last dataset,
so a partial file (such as a leftover ``<path>.tmp-<pid>``) is recognised as incomplete on reading.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import signal
import tempfile
import threading

import numpy as np

__all__ = ["OutputPathError", "ResultFileError", "check_output_path", "json_safe", "read_metadata",
           "read_problem_record", "read_provenance", "read_record", "remove_stale_temps", "save_result"]

FORMAT_ATTR = "mfg_pde_version"
COMPLETE_ATTR = "complete"
_TMP_RE = re.compile(r"\.tmp-([0-9]+)$")
_AXIS_LONG = {"x": "first spatial coordinate (cell centres)",
              "y": "second spatial coordinate (cell centres)",
              "z": "third spatial coordinate (cell centres)"}


class ResultFileError(ValueError):
    """A path that is not a readable mfg_pde result file (message names the file and the problem)."""


class MissingResultFile(ResultFileError, FileNotFoundError):
    """The result file does not exist (both a ValueError and a FileNotFoundError)."""


class OutputPathError(ValueError):
    """A path a result cannot be written to; ``reason`` says why and what to do instead."""

    def __init__(self, path, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"cannot write {path!r}: {reason}")


class MissingDirectory(OutputPathError, FileNotFoundError):
    """The directory of the output path does not exist (both a ValueError and a FileNotFoundError)."""


class _SaveInterrupted(BaseException):
    """Raised inside a save by the temporary signal handlers (a BaseException: nothing swallows it)."""


# ---------------------------------------------------------------------------------- helpers
def _version() -> str:
    from ._version import __version__

    return __version__


def json_safe(obj, _depth: int = 0):
    """A JSON-serialisable copy of obj: numpy scalars/arrays -> Python, tuples -> lists,
    objects with a ``describe()`` method -> its output, anything else -> ``repr`` string."""
    if _depth > 50:
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return json_safe(obj.item(), _depth + 1)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biufU":
            return obj.tolist()
        return json_safe(obj.tolist(), _depth + 1)
    if isinstance(obj, dict):
        return {str(k): json_safe(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v, _depth + 1) for v in obj]
    describe = getattr(obj, "describe", None)
    if callable(describe) and not isinstance(obj, type):
        try:
            return json_safe(describe(), _depth + 1)
        except Exception:  # noqa: BLE001, S110 -- a user object's describe() may raise anything: use its repr
            pass
    return repr(obj)


def _dumps(obj) -> str:
    return json.dumps(json_safe(obj), sort_keys=False)


def _set_desc(ds, long_name: str, units: str = "1") -> None:
    ds.attrs["long_name"] = long_name
    ds.attrs["units"] = units


def _history_array(value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind in "biuf":
        return np.atleast_1d(arr)
    if arr.dtype.kind == "c":
        return np.atleast_1d(arr)
    # strings or mixed objects: store as variable-length UTF-8 strings
    return np.atleast_1d(np.asarray([str(v) for v in np.ravel(arr)], dtype=object))


# ---------------------------------------------------------------------------------- writing
def _write(f, result) -> None:
    import h5py

    grid = result.grid
    names = list(grid.axis_names)
    t = np.asarray(result.t, dtype=float)
    m = np.asarray(result.m, dtype=float)
    u = np.asarray(result.u, dtype=float)
    alpha = np.asarray(result.alpha, dtype=float)
    want = (t.shape[0],) + tuple(grid.shape)
    for name, arr in (("m", m), ("u", u)):
        if arr.shape != want:
            raise ValueError(f"result.{name} has shape {arr.shape}, expected {want} "
                             "(len(t), *grid.shape)")
    if alpha.shape != want + (grid.ndim,):
        raise ValueError(f"result.alpha has shape {alpha.shape}, expected {want + (grid.ndim,)}")

    # root attributes
    f.attrs[FORMAT_ATTR] = _version()
    f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["case"] = "" if result.case is None else str(result.case)
    f.attrs["params"] = _dumps(result.params or {})
    f.attrs["solver"] = _dumps(result.solver or {})
    f.attrs["grid"] = json.dumps(grid.describe())
    f.attrs["converged"] = np.int8(bool(result.converged))   # int8, not bool: netCDF has no bool type
    f.attrs["iterations"] = int(result.iterations)
    f.attrs["status"] = str(result.status)

    # coordinates (dimension scales)
    ds_t = f.create_dataset("t", data=t)
    _set_desc(ds_t, "time")
    ds_t.make_scale("t")
    coords = []
    for name, ax in zip(names, grid.axes):
        ds = f.create_dataset(name, data=np.asarray(ax, dtype=float))
        _set_desc(ds, _AXIS_LONG[name])
        ds.make_scale(name)
        coords.append(ds)
    ds_c = f.create_dataset("component", data=np.array(names, dtype=object),
                            dtype=h5py.string_dtype("utf-8"))
    ds_c.attrs["long_name"] = "component of the feedback vector alpha"
    ds_c.make_scale("component")

    def attach(ds, with_component=False):
        ds.dims[0].label = "t"
        ds.dims[0].attach_scale(ds_t)
        for k, (name, sc) in enumerate(zip(names, coords)):
            ds.dims[1 + k].label = name
            ds.dims[1 + k].attach_scale(sc)
        if with_component:
            ds.dims[grid.ndim + 1].label = "component"
            ds.dims[grid.ndim + 1].attach_scale(ds_c)

    comp = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if m.size >= 4096 else {}
    ds_m = f.create_dataset("m", data=m, **comp)
    _set_desc(ds_m, "population density m(t, x)")
    attach(ds_m)
    ds_u = f.create_dataset("u", data=u, **comp)
    _set_desc(ds_u, "value function u(t, x)")
    attach(ds_u)
    ds_a = f.create_dataset("alpha", data=alpha, **comp)
    _set_desc(ds_a, "optimal feedback control alpha = -grad u")
    attach(ds_a, with_component=True)

    hist = f.create_group("history", track_order=True)
    hist.attrs["long_name"] = "per-iteration convergence record of the coupling loop"
    _write_history(hist, result.history or {})

    out = getattr(result, "outflow", None)
    if out is not None:
        _write_outflow(f, out, ds_t, t)
    obstacle = getattr(result, "obstacle", None)
    if obstacle is not None:
        obs = np.asarray(obstacle)
        if obs.shape != tuple(grid.shape):
            raise ValueError(f"result.obstacle has shape {obs.shape}, expected the grid's {grid.shape}")
        ds_o = f.create_dataset("obstacle", data=obs.astype(np.uint8))
        _set_desc(ds_o, "obstacle region of the case (1 inside), for plots")
        for k, (name, sc) in enumerate(zip(names, coords)):
            ds_o.dims[k].label = name
            ds_o.dims[k].attach_scale(sc)
    planning = getattr(result, "planning", None)
    if planning is not None:
        _write_planning(f, planning)
    report = getattr(result, "case_report", None)
    if report is not None:
        _write_case_report(f, report)

def _write_history(hist, history: dict) -> None:
    """The history datasets, with dimension scales so that netCDF readers name their axis: "iteration"
    for the records of the loop's length (the length of "residual", else the commonest), "<key>_entry"
    for a record of another length.  A history key "iteration" of that length is itself the scale (a
    netCDF coordinate variable); scales the writer adds go to the root group (the history group holds the
    records only; netCDF readers see a parent's dimensions) and carry the attribute ``mfg_pde_scale``."""
    root = hist.parent
    arrays = {str(k): _history_array(v) for k, v in history.items()}
    lengths = [a.shape[0] for a in arrays.values() if a.ndim == 1]
    main = None
    if "residual" in arrays and arrays["residual"].ndim == 1:
        main = arrays["residual"].shape[0]
    elif lengths:
        main = max(set(lengths), key=lengths.count)
    datasets = {}
    for key, arr in arrays.items():
        ds = hist.create_dataset(key, data=arr)
        ds.attrs["long_name"] = key
        ds.attrs["units"] = "s" if key.endswith("time") else "1"
        datasets[key] = ds
    scales = {}

    def scale(base, n):
        if base in scales:
            return scales[base]
        name, k = base, 0
        while name in root:
            k += 1
            name = f"{base}_{k}"
        sc = root.create_dataset(name, data=np.arange(1, n + 1, dtype=np.int64))
        what = "iterations of the coupling loop" if base == "iteration" else f"history/{base[:-len('_entry')]}"
        sc.attrs["long_name"] = f"index (1-based) of the entries of {what}"
        sc.attrs["units"] = "1"
        sc.attrs["mfg_pde_scale"] = np.int8(1)
        sc.make_scale(name)
        scales[base] = sc
        return sc

    own = datasets.get("iteration")
    if own is not None and own.ndim == 1 and main is not None and own.shape[0] == main \
            and own.dtype.kind in "biuf":
        own.make_scale("iteration")
        scales["iteration"] = own
    for key, ds in datasets.items():
        if ds.ndim != 1 or ds is scales.get("iteration"):
            continue
        n = ds.shape[0]
        sc = scale("iteration", n) if n == main else scale(f"{key}_entry", n)
        ds.dims[0].attach_scale(sc)
        ds.dims[0].label = sc.name.rsplit("/", 1)[-1]


def _scale(g, name, data, long_name):
    """A dimension scale (a netCDF coordinate variable) ``name`` in group g holding data (strings as UTF-8);
    the existing one when g already has it."""
    if name in g:
        return g[name]
    import h5py

    data = np.asarray(data)
    sc = g.create_dataset(name, data=data, **({"dtype": h5py.string_dtype("utf-8")} if data.dtype == object
                                              else {}))
    sc.attrs["long_name"] = long_name
    if data.dtype != object:
        sc.attrs["units"] = "1"
    sc.make_scale(name)
    return sc


def _attach(ds, k, sc) -> None:
    """Dimension k of ds is the scale sc (named after it)."""
    ds.dims[k].attach_scale(sc)
    ds.dims[k].label = sc.name.rsplit("/", 1)[-1]


def _kernel_scales(g, ds, name, grid) -> None:
    """Dimension scales of a kernel's values (/problem/kernel_<i>): the displacement per axis in the FFT
    layout (``d<axis>_<name>``, wrapped: 0, h, 2h, ..., then the negative ones), so netCDF readers name its
    dimensions."""
    for k, (axis, n, h) in enumerate(zip(grid.axis_names, grid.shape, grid.spacing)):
        L = ds.shape[k]
        j = np.arange(L)
        j = np.where(j <= n // 2, j, j - n) if L == n else np.where(j < L // 2, j, j - L)  # periodic / padded
        sc = _scale(g, f"d{axis}_{name}", j * float(h), f"displacement along {axis} of {name} (FFT layout)")
        _attach(ds, k, sc)


def _is_added_scale(ds) -> bool:
    return bool(ds.attrs.get("mfg_pde_scale", 0))


_OUTFLOW_LONG = {
    "mass": "mass(t_n) of the density (integral over the grid)",
    "cumulative": "cumulative outflow through the exit sides, outflow(0, t_n)",
    "evacuated": "fraction of the initial mass that has left, outflow(0, t_n) / mass(0)",
    "balance": "outflow balance mass(t_n) + outflow(0, t_n) - mass(0) (round-off)",
}


def _write_outflow(f, out, ds_t, t) -> None:
    """/outflow group of an OutflowHistory (diagnostics.outflow)."""
    if np.shape(out.mass) != t.shape:
        raise ValueError(f"result.outflow has {np.shape(out.mass)[0]} levels, the result {t.shape[0]}")
    g = f.create_group("outflow", track_order=True)
    g.attrs["long_name"] = "outflow through the exit (absorbing) sides and the outflow balance"
    g.attrs["balance_error"] = float(out.balance_error)
    g.attrs["evacuated_fraction"] = float(out.evacuated_fraction)
    g.attrs["sides"] = json.dumps(list(out.sides))
    per_side = np.asarray(out.per_side, dtype=float)
    if getattr(out, "per_door", None) is not None:
        g.attrs["doors"] = json.dumps(list(out.doors))
        per_door = np.asarray(out.per_door, dtype=float)
        ds = g.create_dataset("per_door", data=per_door)
        _set_desc(ds, "outflow of step n (t_n -> t_{n+1}) through each door (attribute doors of the group)")
        door_names = np.array([str(d) for d in out.doors], dtype=object)
        for k, (name, data, long_name) in enumerate((
                ("step", np.arange(per_door.shape[0], dtype=np.int64), "step n: t_n -> t_{n+1}"),
                ("door", door_names, "name of the door"))):
            if per_door.ndim == 2 and data.shape[0] == per_door.shape[k] and (name != "step"
                                                                              or per_side.shape[:1] == data.shape):
                _attach(ds, k, _scale(g, name, data, long_name))
            else:
                ds.dims[k].label = name
    for key in ("mass", "cumulative", "evacuated", "balance"):
        ds = g.create_dataset(key, data=np.asarray(getattr(out, key), dtype=float))
        _set_desc(ds, _OUTFLOW_LONG[key])
        ds.dims[0].label = "t"
        ds.dims[0].attach_scale(ds_t)
    ds = g.create_dataset("per_side", data=per_side)
    _set_desc(ds, "outflow of step n (t_n -> t_{n+1}) through side (axis, lo/hi); 0 on non-exit sides")
    import h5py

    names = ["x", "y", "z"][:per_side.shape[1]] if per_side.ndim == 3 else []
    scale_data = {"step": (np.arange(per_side.shape[0], dtype=np.int64), "step n: t_n -> t_{n+1}"),
                  "axis": (np.array(names, dtype=object), "axis of the side"),
                  "side": (np.array(["lo", "hi"], dtype=object), "side of the axis")}
    for k, name in enumerate(("step", "axis", "side")):
        data, long_name = scale_data[name]
        if per_side.ndim != 3 or data.shape[0] != per_side.shape[k]:
            ds.dims[k].label = name
            continue
        if name in g:   # "step", made for per_door
            sc = g[name]
        else:
            sc = g.create_dataset(name, data=data, **({"dtype": h5py.string_dtype("utf-8")} if data.dtype == object
                                                       else {}))
            sc.attrs["long_name"] = long_name
            sc.make_scale(name)
        ds.dims[k].attach_scale(sc)
        ds.dims[k].label = name


def _read_outflow(g):
    """The /outflow group as the keyword arguments of ``result.OutflowHistory`` (t aside)."""
    try:
        sides = json.loads(_attr_str(g, "sides", "[]"))
    except json.JSONDecodeError:
        sides = []
    out = {"mass": g["mass"][()], "per_side": g["per_side"][()], "cumulative": g["cumulative"][()],
           "sides": list(sides)}
    if "per_door" in g:
        out["per_door"] = g["per_door"][()]
        out["doors"] = list(json.loads(_attr_str(g, "doors", "[]")))
    return out


_PLANNING_LONG = {
    "energy_E": "control energy E = int_0^T E|alpha|^2 dt (no factor 1/2)",
    "kinetic_cost": "kinetic part of the agents' cost, int int m L(alpha) dx dt (E/2 without congestion)",
    "terminal_mismatch": "h sum |m(T) - m1|",
}
_PLANNING_OPTIONAL = ("sinkhorn_iterations_total", "congestion_c", "min_density", "positive", "initial", "running_cost",
                      "total_cost")


def _write_planning(f, rec) -> None:
    """/planning group of a PlanningRecord (attributes only: a handful of numbers)."""
    g = f.create_group("planning", track_order=True)
    g.attrs["long_name"] = "; ".join(f"{k}: {v}" for k, v in _PLANNING_LONG.items())
    for key in _PLANNING_LONG:
        g.attrs[key] = float(getattr(rec, key))
    for key in _PLANNING_OPTIONAL:
        value = getattr(rec, key)
        if value is None:
            continue
        if key == "initial":
            g.attrs[key] = str(value)
        elif key == "positive":
            g.attrs[key] = np.int8(bool(value))
        elif key == "sinkhorn_iterations_total":
            g.attrs[key] = int(value)
        else:
            g.attrs[key] = float(value)
    g.attrs["stages"] = json.dumps([float(c) for c in rec.stages])


def _read_planning(g) -> dict:
    """The /planning group as the keyword arguments of ``result.PlanningRecord``."""
    rec = {key: float(g.attrs[key]) for key in _PLANNING_LONG}
    for key in _PLANNING_OPTIONAL:
        if key not in g.attrs:
            continue
        if key == "initial":
            rec[key] = _attr_str(g, key)
        elif key == "positive":
            rec[key] = bool(g.attrs[key])
        elif key == "sinkhorn_iterations_total":
            rec[key] = int(g.attrs[key])
        else:
            rec[key] = float(g.attrs[key])
    try:
        rec["stages"] = [float(c) for c in json.loads(_attr_str(g, "stages", "[]"))]
    except (json.JSONDecodeError, TypeError, ValueError):
        rec["stages"] = []
    return rec


def _legacy_planning(history: dict, solver: dict):
    """The PlanningRecord keywords of a Sinkhorn planning file written before /planning existed (its
    history holds the same numbers: energy_E and cost_E_half (one entry each), terminal_mismatch and
    sinkhorn_iterations per outer iteration); None for other files."""
    method = str(solver.get("method", "")) if isinstance(solver, dict) else ""
    keys = ("energy_E", "cost_E_half", "terminal_mismatch", "sinkhorn_iterations")
    if not method.startswith("planning-sinkhorn") or not all(k in history and len(history[k]) for k in keys):
        return None
    return {"energy_E": float(history["energy_E"][-1]), "kinetic_cost": float(history["cost_E_half"][-1]),
            "terminal_mismatch": float(history["terminal_mismatch"][-1]),
            "sinkhorn_iterations_total": int(np.sum(history["sinkhorn_iterations"]))}


def _write_case_report(f, report) -> None:
    """/case_report group: the closed-form errors (JSON attribute) and a study's table."""
    errors = dict(getattr(report, "errors", None) or {})
    table = getattr(report, "table", None)
    arrays = dict(getattr(report, "arrays", None) or {})
    if not errors and table is None and not arrays:
        return
    g = f.create_group("case_report", track_order=True)
    g.attrs["long_name"] = "what the case computed besides the solve: errors against its closed form, a table"
    g.attrs["errors"] = _dumps(errors)
    if table is not None:
        ds = g.create_dataset("table", data=np.asarray(table, dtype=float))
        _set_desc(ds, "the case's table, one row per configuration")
        columns = [str(c) for c in (getattr(report, "columns", None) or ())]
        ds.attrs["columns"] = json.dumps(columns)
        for k, n in enumerate(ds.shape):   # named dimensions (netCDF readers: no phony_dim_N)
            if ds.ndim == 2 and k == 1 and len(columns) == n:
                sc = _scale(g, "column", np.array(columns, dtype=object), "name of the table's column")
            else:
                dim = ("row", "column")[k] if ds.ndim == 2 else f"table_dim_{k}"
                sc = _scale(g, dim, np.arange(n, dtype=np.int64), f"index (0-based) of the table's {dim}")
            _attach(ds, k, sc)
    if arrays:
        ga = g.create_group("arrays", track_order=True)
        ga.attrs["long_name"] = "the case's further numeric outputs, one dataset per name"
        for name, value in arrays.items():
            ds = ga.create_dataset(str(name), data=np.asarray(value, dtype=float))
            _set_desc(ds, f"the case's output {name}")
            for k, n in enumerate(ds.shape):   # index scales in /case_report: /case_report/arrays holds outputs only
                _attach(ds, k, _scale(g, f"arrays_{name}_dim_{k}", np.arange(n, dtype=np.int64),
                                      f"index (0-based) of axis {k} of arrays/{name}"))


def _read_case_report(g) -> dict:
    """The /case_report group as the keyword arguments of ``result.CaseReport``."""
    try:
        errors = json.loads(_attr_str(g, "errors", "{}"))
    except json.JSONDecodeError:
        errors = {}
    rec = {"errors": errors if isinstance(errors, dict) else {}}
    if "table" in g:
        rec["table"] = g["table"][()]
        try:
            rec["columns"] = tuple(json.loads(_attr_str(g["table"], "columns", "[]")))
        except json.JSONDecodeError:
            rec["columns"] = ()
    if "arrays" in g:
        rec["arrays"] = {name: ds[()] for name, ds in g["arrays"].items()}
    return rec


#: arrays of /problem larger than this are not written (the attribute ``skipped`` names them)
PROBLEM_ARRAY_LIMIT = 64 * 2 ** 20


def _coupling_spec(c, kernels: list, grid) -> dict:
    """A JSON description of coupling c that ``result.load_problem`` can rebuild: the built-in couplings'
    ``describe()`` (kernels as the names of datasets in ``kernels``), or {"type", "class", "rebuildable":
    false, "why"} for what cannot be rebuilt (a user-defined coupling, a callable schedule or centre)."""
    from .model import couplings as C
    from .model.schedules import FromCallable

    def not_rebuildable(why):
        return {"type": "user-defined", "class": f"{type(c).__module__}.{type(c).__qualname__}",
                "rebuildable": False, "why": why}

    kind = type(c)
    if kind is C.SumCoupling:
        return {"type": "sum", "parts": [_coupling_spec(p, kernels, grid) for p in c.parts]}
    if kind is C.ScaledCoupling:
        return {"type": "scaled", "scale": float(c.scale), "coupling": _coupling_spec(c.base, kernels, grid)}
    if kind in (C.LocalPower, C.LocalLog):
        return json_safe(c.describe())
    if kind is C.MeanAttraction:
        if isinstance(c.kappa, FromCallable):
            return not_rebuildable(f"its kappa is a callable ({c.kappa.describe()}); give a number or a "
                                   "PiecewiseConstant schedule")
        return json_safe(c.describe())
    if kind in (C.QuadraticInteraction, C.FixedGuidance):
        if isinstance(c.beta, FromCallable):
            return not_rebuildable(f"its beta is a callable ({c.beta.describe()}); give a number or a "
                                   "PiecewiseConstant schedule")
        if kind is C.FixedGuidance and callable(c.centre):
            return not_rebuildable("its guidance centre is a callable; give a number or a vector")
        return json_safe(c.describe())
    if kind is C.KernelInteraction:
        try:
            values = c.kernel_values(grid)
        except Exception as exc:  # noqa: BLE001 -- a user kernel may raise anything
            return not_rebuildable(f"its kernel could not be evaluated ({exc.__class__.__name__}: {exc})")
        name = f"kernel_{len(kernels)}"
        kernels.append((name, values))
        d = json_safe(c.describe())
        d["kernel_values"] = name
        d["spacing"] = [float(h) for h in grid.spacing]
        return d
    return not_rebuildable(f"{kind.__name__} is not one of the built-in couplings")


def _put(g, name, arr, long_name, skipped, dims=()):
    """Dataset name of group g (gzip when large), or an entry of ``skipped`` when over the limit."""
    arr = np.asarray(arr, dtype=float)
    if arr.nbytes > PROBLEM_ARRAY_LIMIT:
        skipped.append(name)
        g.attrs[f"{name}_skipped"] = (f"not written: {arr.nbytes} bytes, shape {list(arr.shape)} "
                                      f"(limit {PROBLEM_ARRAY_LIMIT} bytes)")
        return None
    comp = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if arr.size >= 4096 else {}
    ds = g.create_dataset(name, data=arr, **comp)
    _set_desc(ds, long_name)
    for k, sc in dims:
        if sc is None:
            continue
        if isinstance(sc, str):
            ds.dims[k].label = sc
        else:
            ds.dims[k].attach_scale(sc)
            ds.dims[k].label = sc.name.rsplit("/", 1)[-1]
    return ds


def _write_problem(f, problem, result=None) -> None:
    """/problem group: the problem's data evaluated on the grid (what the solve used), enough to rebuild
    it (``result.load_problem``)."""
    grid = problem.grid
    names = list(grid.axis_names)
    coords = [f[n] if n in f else None for n in names]
    gdims = [(k, sc) for k, sc in enumerate(coords)]
    g = f.create_group("problem", track_order=True)
    g.attrs["long_name"] = "the problem's data on the grid, as the solver used them (mfg_pde.load_problem)"
    planning = hasattr(problem, "m1")
    g.attrs["kind"] = "PlanningProblem" if planning else "MFGProblem"
    g.attrs["T"] = float(problem.T)
    g.attrs["Nt"] = int(problem.Nt)
    g.attrs["sigma"] = float(problem.sigma)
    g.attrs["name"] = "" if problem.name is None else str(problem.name)
    g.attrs["grid"] = json.dumps(grid.describe())
    g.attrs["description"] = _dumps(problem.describe())
    skipped = []
    _put(g, "m0", problem.m0, "initial density m0", skipped, gdims)
    if planning:
        _put(g, "m1", problem.m1, "target terminal density m1 (planning)", skipped, gdims)
    # coupling
    if problem.coupling is not None:
        kernels = []
        g.attrs["coupling"] = _dumps(_coupling_spec(problem.coupling, kernels, grid))
        for name, values in kernels:
            ds = _put(g, name, values, "interaction kernel W on the displacement lattice (FFT layout: index j "
                                       "of an axis is the displacement j h, wrapped)", skipped)
            if ds is not None:
                ds.attrs["spacing"] = np.asarray(grid.spacing, dtype=float)
                _kernel_scales(g, ds, name, grid)
    # potential: an array as given; a callable at the times the solvers evaluate it
    V = problem.potential
    if V is not None:
        if callable(V):
            times = [np.asarray(problem.t[1:], dtype=float)]
            values = [np.asarray(problem.potential_steps(), dtype=float)]
            if planning:
                times.append(0.5 * (problem.t[:-1] + problem.t[1:]))
                values.append(np.asarray(problem.potential_midpoints(), dtype=float))
            tv = np.concatenate(times)
            order = np.argsort(tv, kind="stable")
            values = np.concatenate(values)[order]
            tv = tv[order]
            form = "sampled"
        else:
            values = np.asarray(V, dtype=float)
            form = "static" if values.shape == tuple(grid.shape) else "levels"
            tv = np.asarray(problem.t, dtype=float) if form == "levels" else None
        sc = None
        if tv is not None and values.nbytes <= PROBLEM_ARRAY_LIMIT:
            sc = g.create_dataset("potential_t", data=tv)
            _set_desc(sc, "times at which the potential V is given")
            sc.make_scale("potential_t")
        lead = [(0, sc)] if tv is not None else []
        off = len(lead)
        ds = _put(g, "potential", values, "potential V(x, t) on the grid", skipped,
                  lead + [(off + k, c) for k, c in enumerate(coords)])
        if ds is not None:
            ds.attrs["form"] = form
            ds.attrs["callable"] = getattr(V, "__name__", "callable") if callable(V) else ""
    # drift per step (at t_{n+1}; once when static)
    if problem.drift is not None:
        b = np.asarray(problem.drift_steps(), dtype=float)
        tb = problem.t[1:] if problem.drift.time_dependent else problem.t[1:2]
        sc = None
        if b.nbytes <= PROBLEM_ARRAY_LIMIT:
            sc = g.create_dataset("drift_t", data=np.asarray(tb, dtype=float))
            _set_desc(sc, "times at which the drift b is given (t_{n+1} of step n; one level when static)")
            sc.make_scale("drift_t")
        comp = f["component"] if "component" in f else "component"
        ds = _put(g, "drift", b, "drift b(x, t) on the grid, one component per axis", skipped,
                  [(0, sc), (1, comp)] + [(2 + k, c) for k, c in enumerate(coords)])
        if ds is not None:
            ds.attrs["time_dependent"] = np.int8(bool(problem.drift.time_dependent))
    # terminal cost
    G = problem.terminal_cost
    if G is not None:
        depends = bool(getattr(G, "depends_on_m", False))
        mT = None
        if depends and result is not None and np.shape(result.m) == (problem.Nt + 1,) + tuple(grid.shape):
            mT = np.asarray(result.m[-1], dtype=float)
        if not depends or mT is not None:
            ds = _put(g, "terminal_cost", problem.terminal_values(mT), "terminal cost G(x) = u(T)" if not depends
                      else "terminal cost G(x, m_T) at the final density of the result", skipped, gdims)
            if ds is not None:
                ds.attrs["depends_on_m"] = np.int8(depends)
        g.attrs["terminal_depends_on_m"] = np.int8(depends)
    if grid.has_exits:
        ds = g.create_dataset("exit_costs", data=np.asarray(problem.exit_costs, dtype=float))
        _set_desc(ds, "Dirichlet value of u on the exit sides (axis, lo/hi); NaN on the other sides")
        _attach(ds, 0, _scale(g, "axis", np.array(names, dtype=object), "axis of the side"))
        _attach(ds, 1, _scale(g, "side", np.array(["lo", "hi"], dtype=object), "side of the axis"))
    geometry = getattr(problem, "geometry", None)
    if geometry is not None and geometry.solid is not None:
        _put(g, "obstacles", geometry.solid.astype(np.uint8), "solid (obstacle) cells, 1 outside the domain",
             skipped, gdims)
    if geometry is not None and geometry.doors:
        g.attrs["doors"] = json.dumps([{"axis": int(k), "side": int(j), "cost": float(door.cost), "name": name,
                                        "faces": np.flatnonzero(faces.reshape(-1)).tolist()}
                                       for (k, j, faces), door, name in zip(geometry.door_faces, geometry.doors,
                                                                            geometry.door_names)])
    ham = getattr(problem, "hamiltonian", None)
    if ham is not None and not ham.is_quadratic:   # rebuilt by ``model.hamiltonians.from_description``
        g.attrs["hamiltonian"] = _dumps(ham.describe())
    g.attrs["skipped"] = json.dumps(skipped)


_GIT_CACHE: dict = {}


def _git_revision() -> tuple[str, int]:
    """(commit, dirty) of the git checkout holding the package's source folder: ("", -1) when it is not
    one or git is unavailable (any failure is ignored); dirty 1 when ``git status --porcelain`` lists
    changes, 0 when clean, -1 unknown.  Asked once per process (short timeouts)."""
    if "rev" in _GIT_CACHE:
        return _GIT_CACHE["rev"]
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    rev, dirty = "", -1
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2,
                             stdin=subprocess.DEVNULL)
        if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", out.stdout.strip()):
            rev = out.stdout.strip()
            st = subprocess.run(["git", "-C", here, "status", "--porcelain"], capture_output=True, text=True,
                                timeout=5, stdin=subprocess.DEVNULL)
            if st.returncode == 0:
                dirty = int(bool(st.stdout.strip()))
    except Exception:  # noqa: BLE001 -- no git, a timeout, not a checkout: no revision
        pass
    _GIT_CACHE["rev"] = (rev, dirty)
    return rev, dirty


def _write_provenance(f, result=None) -> None:
    """/provenance group: versions, platform, command line, creation time, git revision of the package's
    source, the solve's start and end time (attributes)."""
    import platform
    import sys

    g = f.create_group("provenance", track_order=True)
    g.attrs["long_name"] = "what wrote this file: package versions, platform, command line, time"
    g.attrs["mfg_pde_version"] = _version()
    for mod in ("numpy", "scipy", "numba", "h5py"):
        try:
            g.attrs[f"{mod}_version"] = str(__import__(mod).__version__)
        except Exception:  # noqa: BLE001 -- an optional module missing or broken
            g.attrs[f"{mod}_version"] = ""
    g.attrs["python_version"] = platform.python_version()
    g.attrs["python_implementation"] = platform.python_implementation()
    g.attrs["platform"] = platform.platform()
    g.attrs["machine"] = platform.machine()
    g.attrs["command_line"] = json.dumps([str(a) for a in sys.argv])
    now = _dt.datetime.now(_dt.timezone.utc)
    g.attrs["created_utc"] = now.isoformat(timespec="seconds")
    rev, dirty = _git_revision()
    g.attrs["git_revision"] = rev
    g.attrs["git_dirty"] = np.int8(dirty)
    g.attrs["solve_end_utc"] = now.isoformat(timespec="milliseconds")
    start = ""
    try:
        wall = np.asarray((getattr(result, "history", None) or {}).get("wall_time", []), dtype=float).reshape(-1)
        if wall.size and np.isfinite(wall[-1]) and wall[-1] >= 0:
            start = (now - _dt.timedelta(seconds=float(wall[-1]))).isoformat(timespec="milliseconds")
    except (TypeError, ValueError, OverflowError):
        pass
    g.attrs["solve_start_utc"] = start
    g.attrs["solve_time_note"] = ("solve_end_utc: when the file was written; solve_start_utc: solve_end_utc less "
                                  "the last history wall_time (seconds since the solve started), so it is late "
                                  "by the time between the last iteration and the save")


def read_provenance(path) -> dict:
    """The /provenance attributes of a result file ({} for files written before it existed)."""
    path = os.fspath(path)
    with _open(path) as f, _reading(path):
        if "provenance" not in f:
            return {}
        g = f["provenance"]
        out = {key: _attr_str(g, key) for key in g.attrs if key != "long_name"}
        if "git_dirty" in g.attrs:
            try:
                out["git_dirty"] = int(g.attrs["git_dirty"])
            except (TypeError, ValueError):
                out["git_dirty"] = -1
        try:
            out["command_line"] = json.loads(out.get("command_line", "[]"))
        except json.JSONDecodeError:
            pass
        return out


def read_problem_record(path) -> dict | None:
    """The /problem group as plain data (None for files without it): kind, T, Nt, sigma, name, grid,
    description, coupling (the rebuild spec or None), kernels (dataset name -> (values, spacing)), m0, m1,
    potential (values, form, times), drift (values, times, time_dependent), terminal_cost (values,
    depends_on_m), exit_costs, skipped (names of arrays not written)."""
    path = os.fspath(path)
    with _open(path) as f, _reading(path):
        if "problem" not in f:
            return None
        g = f["problem"]

        def js(name, default):
            try:
                return json.loads(_attr_str(g, name, default))
            except json.JSONDecodeError:
                raise _incomplete(path, f"attribute {name!r} of /problem is not valid JSON") from None

        rec = {"kind": _attr_str(g, "kind", "MFGProblem"), "T": float(g.attrs["T"]), "Nt": int(g.attrs["Nt"]),
               "sigma": float(g.attrs["sigma"]), "name": _attr_str(g, "name") or None,
               "grid": js("grid", "{}"), "description": js("description", "{}"),
               "coupling": js("coupling", "null"), "skipped": js("skipped", "[]"),
               "terminal_depends_on_m": bool(g.attrs.get("terminal_depends_on_m", 0))}
        rec["m0"] = g["m0"][()] if "m0" in g else None
        rec["m1"] = g["m1"][()] if "m1" in g else None
        rec["kernels"] = {k: (g[k][()], tuple(float(h) for h in g[k].attrs["spacing"]))
                          for k in g if k.startswith("kernel_")}
        rec["potential"] = None
        if "potential" in g:
            ds = g["potential"]
            rec["potential"] = {"values": ds[()], "form": _attr_str(ds, "form", "static"),
                                "times": g["potential_t"][()] if "potential_t" in g else None,
                                "callable": _attr_str(ds, "callable")}
        rec["drift"] = None
        if "drift" in g:
            rec["drift"] = {"values": g["drift"][()], "times": g["drift_t"][()] if "drift_t" in g else None,
                            "time_dependent": bool(g["drift"].attrs.get("time_dependent", 1))}
        rec["terminal_cost"] = None
        if "terminal_cost" in g:
            rec["terminal_cost"] = {"values": g["terminal_cost"][()],
                                    "depends_on_m": bool(g["terminal_cost"].attrs.get("depends_on_m", 0))}
        rec["exit_costs"] = g["exit_costs"][()] if "exit_costs" in g else None
        rec["obstacles"] = g["obstacles"][()].astype(bool) if "obstacles" in g else None
        rec["doors"] = js("doors", "[]")
        rec["hamiltonian"] = js("hamiltonian", "null")
        return rec


def check_output_path(path, probe: bool = True) -> str:
    """Refuse, before any work, a path that :func:`save_result` could not write: an empty name, a
    directory, a missing directory, an existing non-regular file (a device, a FIFO), a directory that
    is not writable.  With ``probe`` a temporary file is created and removed next to the target (the
    honest test: permissions alone do not tell, e.g. for root on /sys).  Returns the path; raises
    OutputPathError (a ValueError; MissingDirectory, also a FileNotFoundError, for a missing directory)."""
    if path is None:
        raise OutputPathError(path, "no file name given; give one such as result.h5")
    try:
        path = os.fspath(path)
    except TypeError:
        raise OutputPathError(path, f"a {type(path).__name__} is not a file name; give a str such as "
                                    "result.h5") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path.strip():
        raise OutputPathError(path, "the file name is empty; give one such as result.h5")
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise OutputPathError(path, f"is a directory; give a file name in it, such as "
                                    f"{os.path.join(path, 'result.h5')}")
    target_dir = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(target_dir):
        raise MissingDirectory(path, f"directory {target_dir} does not exist; create it first or choose "
                                     "another directory")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise OutputPathError(path, "exists and is not a regular file (saving would replace it); choose "
                                    "another name")
    if not os.access(target_dir, os.W_OK | os.X_OK):
        raise OutputPathError(path, f"directory {target_dir} is not writable; choose a writable directory")
    if probe:
        try:
            fd, probe_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.probe-", dir=target_dir)
        except OSError as exc:
            why = exc.strerror or exc.__class__.__name__
            raise OutputPathError(path, f"cannot create a file in {target_dir} ({why}); choose a writable "
                                        "directory") from None
        os.close(fd)
        with contextlib.suppress(OSError):
            os.remove(probe_path)
    return path


def _pid_alive(pid: int) -> bool:
    """Whether process pid exists (True when unsure: the caller then keeps that process's files)."""
    if os.name != "posix" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, OSError):
        return True
    return True


def remove_stale_temps(path) -> list:
    """Remove ``<path>.tmp-<pid>`` files whose process no longer exists (left by a save that was killed
    before it could clean up); returns the removed paths.  Files of live processes are kept."""
    path = os.fspath(path)
    target_dir = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + ".tmp-"
    removed = []
    try:
        names = os.listdir(target_dir)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        digits = name[len(prefix):]
        if not re.fullmatch(r"[0-9]{1,10}", digits):
            continue
        pid = int(digits)
        if pid == os.getpid() or _pid_alive(pid):
            continue
        stale = os.path.join(target_dir, name)
        if not os.path.isfile(stale) or os.path.islink(stale):
            continue
        try:
            os.remove(stale)
            removed.append(stale)
        except OSError:  # pragma: no cover - best effort (another save removed it first)
            pass
    return removed


_GUARDED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class _SignalGuard:
    """For the duration of a write: SIGINT / SIGTERM / SIGHUP raise _SaveInterrupted (once; the caller
    removes its temporary file), then on exit the previous handlers are restored and the signal is passed
    on to them.  Signals that are ignored (SIG_IGN, e.g. SIGHUP under nohup) or whose handler was not set
    from Python are left alone; outside the main thread nothing is installed."""

    def __init__(self, path):
        self.path = path
        self.signum = None
        self.old = {}
        self.active = False

    def _handler(self, signum, frame):
        # the first signal aborts the write; later ones (during the cleanup, or while the handlers are
        # being restored) must not interrupt the cleanup: the first is passed on when it is done
        if self.signum is None:
            self.signum = signum
            if self.active:
                raise _SaveInterrupted(signum)

    def check(self) -> None:
        """Raise if a signal came in whose exception something (h5py internals) swallowed."""
        if self.signum is not None:
            raise _SaveInterrupted(self.signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in _GUARDED_SIGNALS:
                try:
                    current = signal.getsignal(sig)
                    if current is None or current == signal.SIG_IGN:
                        continue
                    self.old[sig] = signal.signal(sig, self._handler)
                except (OSError, ValueError, RuntimeError):  # pragma: no cover - platform without it
                    continue
        self.active = True
        return self

    def __exit__(self, exc_type, exc, tb):
        self.active = False
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        if self.signum is None:
            return False
        signum, old = self.signum, self.old.get(self.signum, signal.SIG_DFL)
        name = signal.Signals(signum).name
        if old is signal.default_int_handler:
            raise KeyboardInterrupt from None   # what Ctrl-C would have raised, the temporary file gone
        if old == signal.SIG_DFL:
            signal.raise_signal(signum)         # the default action (terminate), the temporary file gone
        elif callable(old):
            old(signum, None)                   # the program's own handler (it may raise or exit)
        raise InterruptedError(f"saving {self.path} was interrupted by {name}; nothing was written") from None


def _fsync_file(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory) -> None:
    """Make a rename in directory durable (where the platform and file system allow it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_result(result, path, problem=None) -> None:
    """Write result to path (HDF5, layout in the module docstring), atomically: through a temporary
    file that is fsynced, renamed onto path, and removed if the write fails or is interrupted.  ``problem``
    (default: ``result.problem``, which the solvers set) adds the ``/problem`` group."""
    def fill(f):
        _write(f, result)
        owner = problem if problem is not None else getattr(result, "problem", None)
        if owner is not None:
            _write_problem(f, owner, result)
        _write_provenance(f, result)

    write_atomic(path, fill)


def write_atomic(path, fill) -> None:
    """Create the HDF5 file ``path`` by ``fill(h5py.File)``, atomically (module docstring): a temporary file,
    the ``complete`` attribute set last, fsync, rename; removed if the write fails or is interrupted."""
    import h5py

    path = check_output_path(path, probe=False)
    target_dir = os.path.dirname(os.path.abspath(path))
    remove_stale_temps(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with _SignalGuard(path) as guard:
        try:
            with h5py.File(tmp, "w", track_order=True) as f:
                f.attrs[COMPLETE_ATTR] = np.int8(0)
                fill(f)
                f.attrs[COMPLETE_ATTR] = np.int8(1)
                f.flush()
            guard.check()
            _fsync_file(tmp)
            guard.check()
            os.replace(tmp, path)
        except BaseException:
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass
            except OSError:  # pragma: no cover - best effort
                pass
            raise
    _fsync_dir(target_dir)


# ---------------------------------------------------------------------------------- reading
def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _incomplete(path, why: str) -> ResultFileError:
    """The error for a file that is not a (complete) result file; names a leftover temporary file."""
    hint = ""
    m = _TMP_RE.search(os.path.basename(path))
    if m:
        pid = int(m.group(1))
        target = path[:len(path) - len(m.group(0))]
        if pid != os.getpid() and _pid_alive(pid):
            state, fix = "still running: it may be writing it now", f"wait for {target}"
        else:
            state, fix = "no longer running", "delete the temporary file"
        hint = (f"; {os.path.basename(path)} is the temporary file of an unfinished save by process {pid} "
                f"({state}); the finished result, if any, is {target}; {fix}")
    return ResultFileError(f"{path}: not a complete mfg_pde result file: {why}{hint}")


@contextlib.contextmanager
def _reading(path):
    """Turn the errors of h5py on a damaged or partial file into a one-line ResultFileError."""
    try:
        yield
    except ResultFileError:
        raise
    except (KeyError, OSError, RuntimeError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise _incomplete(path, f"cannot read it ({exc.__class__.__name__}: {_first_line(exc)})") from None


def _open(path):
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingResultFile(f"{path}: no such file")
    if os.path.isdir(path):
        raise ResultFileError(f"{path}: is a directory, not an mfg_pde result file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        line = _first_line(exc)
        what = "a truncated HDF5 file (its write was cut short)" if "truncated file" in line else "not an HDF5 file"
        raise _incomplete(path, f"{what} ({exc.__class__.__name__}: {line})") from None
    try:
        with _reading(path):
            if FORMAT_ATTR not in f.attrs:
                raise _incomplete(path, f"root attribute {FORMAT_ATTR!r} is missing (an HDF5 file not "
                                        "written by mfg_pde)")
            # files written before the marker existed have no 'complete' attribute: their layout decides
            if COMPLETE_ATTR in f.attrs and not bool(f.attrs[COMPLETE_ATTR]):
                raise _incomplete(path, f"the save that wrote it did not finish (root attribute "
                                        f"{COMPLETE_ATTR!r} is false)")
            for name in ("t", "m", "u"):
                if name not in f or not hasattr(f[name], "shape"):
                    raise _incomplete(path, f"dataset {name!r} is missing")
    except BaseException:
        f.close()
        raise
    return f


def _attr_str(f, name, default="") -> str:
    v = f.attrs.get(name, default)
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    return str(v)


def _attr_json(f, path, name):
    raw = _attr_str(f, name, "{}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _incomplete(path, f"root attribute {name!r} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _incomplete(path, f"root attribute {name!r} is not a JSON object")
    return value


def read_metadata(path) -> dict:
    """Attributes, dataset shapes and final history values of a result file, without reading
    the fields.  Raises ResultFileError (a ValueError) for a missing or foreign file."""
    path = os.fspath(path)
    with _open(path) as f, _reading(path):
        meta = {
            "path": path,
            "mfg_pde_version": _attr_str(f, FORMAT_ATTR),
            "created": _attr_str(f, "created"),
            "case": _attr_str(f, "case") or None,
            "params": _attr_json(f, path, "params"),
            "solver": _attr_json(f, path, "solver"),
            "grid": _attr_json(f, path, "grid"),
            "converged": bool(f.attrs.get("converged", False)),
            "iterations": int(f.attrs.get("iterations", 0)),
            "status": _attr_str(f, "status", "unknown"),
            "datasets": {},
            "history": {},
        }
        for name, obj in f.items():
            if hasattr(obj, "shape"):
                meta["datasets"][name] = tuple(obj.shape)
        if "history" in f:
            for key, ds in f["history"].items():
                if _is_added_scale(ds):
                    continue
                n = ds.shape[0] if ds.shape else 0
                last = ds[n - 1] if n else None
                if isinstance(last, bytes):
                    last = last.decode("utf-8")
                elif isinstance(last, np.generic):
                    last = last.item()
                meta["history"][key] = {"length": n, "last": last}
        if "outflow" in f:
            g = f["outflow"]
            try:
                sides = json.loads(_attr_str(g, "sides", "[]"))
            except json.JSONDecodeError:
                sides = []
            meta["outflow"] = {"balance_error": float(g.attrs.get("balance_error", np.nan)),
                               "evacuated_fraction": float(g.attrs.get("evacuated_fraction", np.nan)),
                               "sides": sides}
            try:
                doors = json.loads(_attr_str(g, "doors", "[]"))
            except json.JSONDecodeError:
                doors = []
            if doors:
                meta["outflow"]["doors"] = [str(d) for d in doors]
        if "planning" in f:
            meta["planning"] = _read_planning(f["planning"])
    return meta


def read_record(path) -> dict:
    """Everything a file written by :func:`save_result` holds, as plain data: t, m, u, the grid
    description, history, params, solver, case, converged, status, iterations, and the typed fields'
    data: alpha (array or None), outflow (the keyword arguments of ``OutflowHistory`` less t, or None),
    obstacle (bool mask or None), planning (those of ``PlanningRecord``, or None; rebuilt from the
    history for Sinkhorn files of the older layout), case_report (those of ``CaseReport``, or None).
    "extras" (deprecated) repeats alpha, outflow and obstacle under the old keys "_alpha", "outflow",
    "obstacle".  ``result.load`` builds the MFGResult."""
    path = os.fspath(path)
    with _open(path) as f, _reading(path):
        grid = _attr_json(f, path, "grid")
        if not isinstance(grid, dict):
            raise _incomplete(path, "root attribute 'grid' does not describe a grid")
        t = f["t"][()]
        history = {}
        if "history" in f:
            for key, ds in f["history"].items():
                if _is_added_scale(ds):
                    continue
                arr = ds[()]
                if arr.dtype.kind in "OS":
                    arr = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v)
                                    for v in arr], dtype=object)
                history[key] = arr
        solver = _attr_json(f, path, "solver")
        rec = {"grid": grid, "t": t, "m": f["m"][()], "u": f["u"][()], "history": history,
               "converged": bool(f.attrs.get("converged", False)), "status": _attr_str(f, "status", "unknown"),
               "iterations": int(f.attrs.get("iterations", 0)), "params": _attr_json(f, path, "params"),
               "solver": solver, "case": _attr_str(f, "case") or None,
               "alpha": f["alpha"][()] if "alpha" in f else None,
               "outflow": _read_outflow(f["outflow"]) if "outflow" in f else None,
               "obstacle": f["obstacle"][()].astype(bool) if "obstacle" in f else None,
               "planning": _read_planning(f["planning"]) if "planning" in f else _legacy_planning(history, solver),
               "case_report": _read_case_report(f["case_report"]) if "case_report" in f else None,
               "has_problem": "problem" in f}
        rec["extras"] = {key: value for key, value in (("_alpha", rec["alpha"]), ("outflow", rec["outflow"]),
                                                       ("obstacle", rec["obstacle"])) if value is not None}
        return rec

def incomplete(path, why: str) -> ResultFileError:
    """The error for a file that is not a complete result file (``why`` says what is missing)."""
    return _incomplete(path, why)
