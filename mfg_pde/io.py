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
        attributes: balance_error, evacuated_fraction, sides (JSON list of exit-side labels)
    /obstacle               (*grid)            optional uint8 mask of a case's obstacle region (plots)

Every dataset carries ``long_name`` and ``units`` attributes (the problems are non-dimensional,
so ``units`` is ``"1"``), and the coordinates are HDF5 dimension scales, so generic HDF5 / netCDF
readers (h5netcdf, xarray, HDFView) see labelled axes.

Root attributes: ``mfg_pde_version``, ``created`` (ISO 8601 UTC), ``case`` (``""`` when none),
``params``, ``solver`` and ``grid`` (JSON strings; the grid's ``bc`` holds one entry per axis, a
name or a ``[lo, hi]`` pair), ``converged`` (bool), ``iterations`` (int), ``status`` (str).

Writes are atomic: the file is written to ``<path>.tmp-<pid>`` next to the target and moved onto
it with :func:`os.replace` only after it has been closed, so an interrupted save never leaves a
half-written file and never clobbers an existing good one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os

import numpy as np

__all__ = ["save_result", "load", "read_metadata", "ResultFileError", "json_safe"]

FORMAT_ATTR = "mfg_pde_version"
_AXIS_LONG = {"x": "first spatial coordinate (cell centres)",
              "y": "second spatial coordinate (cell centres)",
              "z": "third spatial coordinate (cell centres)"}


class ResultFileError(ValueError):
    """A path that is not a readable mfg_pde result file (message names the file and the problem)."""


class MissingResultFile(ResultFileError, FileNotFoundError):
    """The result file does not exist (both a ValueError and a FileNotFoundError)."""


# ---------------------------------------------------------------------------------- helpers
def _version() -> str:
    try:  # the package __init__ may still be importing us (circular import): fall back quietly
        import mfg_pde

        v = getattr(mfg_pde, "__version__", None)
        if v:
            return str(v)
    except Exception:  # pragma: no cover - defensive
        pass
    try:
        from importlib.metadata import version

        return version("mfg-pde")
    except Exception:
        return "0.1.0"


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
        except Exception:
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
    f.attrs["converged"] = bool(result.converged)
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

    comp = dict(compression="gzip", compression_opts=4, shuffle=True) if m.size >= 4096 else {}
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
    for key, value in (result.history or {}).items():
        arr = _history_array(value)
        ds = hist.create_dataset(str(key), data=arr)
        ds.attrs["long_name"] = str(key)
        ds.attrs["units"] = "s" if str(key).endswith("time") else "1"

    extras = getattr(result, "extras", None) or {}
    out = extras.get("outflow")
    if out is not None:
        _write_outflow(f, out, ds_t, t)
    obstacle = extras.get("obstacle")
    if obstacle is not None:
        obs = np.asarray(obstacle)
        if obs.shape != tuple(grid.shape):
            raise ValueError(f"result.extras['obstacle'] has shape {obs.shape}, expected the grid's {grid.shape}")
        ds_o = f.create_dataset("obstacle", data=obs.astype(np.uint8))
        _set_desc(ds_o, "obstacle region of the case (1 inside), for plots")
        for k, (name, sc) in enumerate(zip(names, coords)):
            ds_o.dims[k].label = name
            ds_o.dims[k].attach_scale(sc)


_OUTFLOW_LONG = {
    "mass": "mass(t_n) of the density (integral over the grid)",
    "cumulative": "cumulative outflow through the exit sides, outflow(0, t_n)",
    "evacuated": "fraction of the initial mass that has left, outflow(0, t_n) / mass(0)",
    "balance": "outflow balance mass(t_n) + outflow(0, t_n) - mass(0) (round-off)",
}


def _write_outflow(f, out, ds_t, t) -> None:
    """/outflow group of an OutflowHistory (solvers.outflow)."""
    if np.shape(out.mass) != t.shape:
        raise ValueError(f"result.extras['outflow'] has {np.shape(out.mass)[0]} levels, the result {t.shape[0]}")
    g = f.create_group("outflow", track_order=True)
    g.attrs["long_name"] = "outflow through the exit (absorbing) sides and the outflow balance"
    g.attrs["balance_error"] = float(out.balance_error)
    g.attrs["evacuated_fraction"] = float(out.evacuated_fraction)
    g.attrs["sides"] = json.dumps(list(out.sides))
    for key in ("mass", "cumulative", "evacuated", "balance"):
        ds = g.create_dataset(key, data=np.asarray(getattr(out, key), dtype=float))
        _set_desc(ds, _OUTFLOW_LONG[key])
        ds.dims[0].label = "t"
        ds.dims[0].attach_scale(ds_t)
    ds = g.create_dataset("per_side", data=np.asarray(out.per_side, dtype=float))
    _set_desc(ds, "outflow of step n (t_n -> t_{n+1}) through side (axis, lo/hi); 0 on non-exit sides")
    ds.dims[0].label = "step"
    ds.dims[1].label = "axis"
    ds.dims[2].label = "side"


def _read_outflow(g, t):
    from .solvers.outflow import OutflowHistory

    try:
        sides = json.loads(_attr_str(g, "sides", "[]"))
    except json.JSONDecodeError:
        sides = []
    return OutflowHistory(t=np.asarray(t, dtype=float), mass=g["mass"][()], per_side=g["per_side"][()],
                          cumulative=g["cumulative"][()], sides=list(sides))


def save_result(result, path) -> None:
    """Write result to path (HDF5, layout in the module docstring), atomically."""
    import h5py

    path = os.fspath(path)
    target_dir = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(target_dir):
        raise FileNotFoundError(f"cannot write {path}: directory {target_dir} does not exist")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            _write(f, result)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - best effort
            pass
        raise


# ---------------------------------------------------------------------------------- reading
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
        raise ResultFileError(f"{path}: not an HDF5 file ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if FORMAT_ATTR not in f.attrs:
        f.close()
        raise ResultFileError(f"{path}: not an mfg_pde result file "
                              f"(root attribute {FORMAT_ATTR!r} is missing)")
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
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{path}: root attribute {name!r} is not valid JSON ({exc})") from None


def read_metadata(path) -> dict:
    """Attributes, dataset shapes and final history values of a result file, without reading
    the fields.  Raises ResultFileError (a ValueError) for a missing or foreign file."""
    path = os.fspath(path)
    with _open(path) as f:
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
    return meta


def load(path):
    """Read a file written by :func:`save_result` back into an :class:`MFGResult`."""
    from .grid import Grid
    from .result import MFGResult

    path = os.fspath(path)
    with _open(path) as f:
        for name in ("t", "m", "u"):
            if name not in f:
                raise ResultFileError(f"{path}: dataset {name!r} is missing")
        g = _attr_json(f, path, "grid")
        try:
            grid = Grid(g["bounds"], g["shape"], g["bc"])
        except (KeyError, TypeError, ValueError, NotImplementedError) as exc:
            raise ResultFileError(f"{path}: root attribute 'grid' does not describe a grid "
                                  f"({exc})") from None
        t = f["t"][()]
        m = f["m"][()]
        u = f["u"][()]
        history = {}
        if "history" in f:
            for key, ds in f["history"].items():
                arr = ds[()]
                if arr.dtype.kind in "OS":
                    arr = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v)
                                    for v in arr], dtype=object)
                history[key] = arr
        extras = {}
        if "alpha" in f:
            extras["_alpha"] = f["alpha"][()]
        if "outflow" in f:
            extras["outflow"] = _read_outflow(f["outflow"], t)
        if "obstacle" in f:
            extras["obstacle"] = f["obstacle"][()].astype(bool)
        result = MFGResult(
            grid=grid, t=t, u=u, m=m,
            converged=bool(f.attrs.get("converged", False)),
            status=_attr_str(f, "status", "unknown"),
            iterations=int(f.attrs.get("iterations", 0)),
            history=history,
            params=_attr_json(f, path, "params"),
            solver=_attr_json(f, path, "solver"),
            case=_attr_str(f, "case") or None,
            extras=extras,
        )
    want = (t.shape[0],) + grid.shape
    if m.shape != want or u.shape != want:
        raise ResultFileError(f"{path}: m {m.shape} / u {u.shape} do not match (len(t), *grid) = {want}")
    return result
