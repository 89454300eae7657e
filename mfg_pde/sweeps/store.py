"""A sweep's results as one xarray Dataset, and its file: built from the point records, written atomically
(netCDF through h5netcdf, or zarr), read back to resume.

Layout (``build_dataset``): one dimension per varied parameter (coordinates: its values; parameters varied
together are further coordinates along it); per point ``status`` (string: the result's status, ``failed:
...`` or ``pending``), ``done``, ``converged``, ``failed``, ``checks_passed`` (int8 0/1), ``iterations``,
``residual``, ``run_time`` (s), ``checks_failed``, ``finished`` (Unix time), ``worker`` (host:pid); one float
variable per scalar a point reported (NaN where it did not: pending and failed points); the fields asked for
on (*study dims, t, x, ...) with their coordinates.  Every variable has ``long_name`` (and ``units`` where it
has one: seconds; the other numbers are dimensionless); ``sweep_role`` says which kind it is (``point``,
``scalar``, ``field``, ``derived``: the observed orders along N).  Attributes: the case, its fixed parameters
(JSON), the varied ones, counts, the package version.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time

import numpy as np

from .. import io
from .point import RESERVED
from .spec import SweepError

__all__ = ["build_dataset", "check_output", "read_records", "write_dataset"]

#: per-point variables every study has: name -> (long_name, units, kind, missing value)
POINT_VARS = {
    "done": ("1 when the point has run (resumed runs skip it)", "1", "i1", 0),
    "converged": ("1 when the solve converged", "1", "i1", 0),
    "failed": ("1 when the run raised (see status)", "1", "i1", 0),
    "checks_passed": ("1 when every check of the case passed", "1", "i1", 0),
    "iterations": ("iterations of the coupling loop", "1", "f8", np.nan),
    "residual": ("final relative fixed-point residual", "1", "f8", np.nan),
    "run_time": ("wall time of the point (solve, checks, reporting)", "s", "f8", np.nan),
    "checks_failed": ("number of the case's checks that failed", "1", "f8", np.nan),
    "finished": ("when the point finished (seconds since 1970-01-01 UTC)", "s", "f8", np.nan),
}
_STRING_VARS = {"status": ("how the point ended: the solve's status, 'failed: <error>' or 'pending'", "pending"),
                "worker": ("host:pid of the process that ran the point", "")}
assert set(POINT_VARS) | set(_STRING_VARS) <= set(RESERVED)


def _netcdf(path: str) -> bool:
    return not str(path).rstrip("/").lower().endswith(".zarr")


def _require_xarray():
    try:
        import xarray
    except ImportError as exc:
        raise ImportError("sweeps need the optional packages dask, xarray and h5netcdf: pip install mfg_pde[sweep] "
                          f"(from a source checkout: pip install \".[sweep]\") [{exc}]") from None
    return xarray


def check_output(path) -> None:
    """Refuse an output that cannot be written before any work: the suffix (``.nc``/``.h5``/``.nc4``:
    netCDF; ``.zarr``), the directory, zarr missing, a file in the way of a zarr store."""
    path = os.fspath(path)
    low = path.rstrip("/").lower()
    if not low.endswith((".nc", ".nc4", ".h5", ".hdf5", ".zarr")):
        raise SweepError(f"--out {path}: name a netCDF file (.nc) or a zarr store (.zarr)")
    parent = os.path.dirname(os.path.abspath(path.rstrip("/"))) or "."
    if not os.path.isdir(parent):
        raise SweepError(f"--out {path}: the directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SweepError(f"--out {path}: the directory {parent} is not writable; choose another --out")
    if _netcdf(path):
        if os.path.isdir(path):
            raise SweepError(f"--out {path}: is a directory; name a netCDF file")
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise SweepError(f"--out {path}: the file is not writable; choose another --out")
    else:
        try:
            import zarr  # noqa: F401
        except ImportError:
            raise SweepError(f"--out {path}: writing zarr needs the package zarr (pip install zarr); or write "
                             "netCDF: --out study.nc") from None
        if os.path.exists(path) and not os.path.isdir(path):
            raise SweepError(f"--out {path}: a file of that name exists; a zarr store is a directory")


def _tmp_name(path: str) -> str:
    head, tail = os.path.split(os.path.abspath(path.rstrip("/")))
    return os.path.join(head, f".{tail}.tmp-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path) -> None:
    """Remove temporary copies left by an earlier run that was killed while writing (its process is gone)."""
    head, tail = os.path.split(os.path.abspath(os.fspath(path).rstrip("/")))
    for tmp in glob.glob(os.path.join(glob.escape(head), f".{glob.escape(tail)}.tmp-*")):
        pid = tmp.rsplit("-", 1)[-1].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True) if os.path.isdir(tmp) else os.remove(tmp)


def write_dataset(ds, path) -> None:
    """Write ``ds`` to ``path`` atomically: to a temporary name in the same directory, then renamed over
    the old file (netCDF: one ``os.replace``; zarr: the old store is moved aside, the new one moved in, the
    old one removed).  An interruption leaves the previous file as it was, never a half-written one."""
    path = os.fspath(path).rstrip("/")
    tmp = _tmp_name(path)
    try:
        if _netcdf(path):
            ds.to_netcdf(tmp, engine="h5netcdf")
            os.replace(tmp, path)
        else:
            ds.to_zarr(tmp, mode="w")
            if os.path.exists(path):
                aside = tmp + ".old"
                os.rename(path, aside)
                os.rename(tmp, path)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise


def _attrs(long_name, units=None, **extra) -> dict:
    """Variable attributes: ``long_name``, ``units`` only where the quantity has one (seconds: "s"; the
    dimensionless numbers have none, so plots label them by name alone), and the rest."""
    out = {"long_name": long_name}
    if units not in (None, "", "1"):
        out["units"] = units
    return {**out, **extra}


def _coord_array(values):
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return np.array(values, dtype=float)
    return np.array([str(v) for v in values], dtype=object)


def build_dataset(study, records: dict, fields=(), attrs: dict | None = None):
    """The study as an ``xarray.Dataset`` (layout: the module docstring); ``records`` maps a point's index
    tuple to its record (``point.run_point``)."""
    xr = _require_xarray()
    dims, shape = study.dim_names, study.shape
    coords, reserved_names = {}, set(dims)
    for d in study.dims:
        for k, n in enumerate(d.names):
            param = next((p for p in study.case.params if p.name == n), None)
            coord_attrs = {"long_name": n, "description": f"parameter {n} of case {study.case.name}"
                           + (f": {param.help}" if param is not None and param.help else "")}
            arr = _coord_array([v[k] for v in d.values])
            coords[n] = ((d.name,), arr, coord_attrs)
            reserved_names.add(n)
    data = {}
    for name, (long_name, units, kind, missing) in POINT_VARS.items():
        data[name] = [np.full(shape, missing, dtype=kind), _attrs(long_name, units, sweep_role="point")]
    for name, (long_name, missing) in _STRING_VARS.items():
        data[name] = [np.full(shape, missing, dtype=object), {"long_name": long_name, "sweep_role": "point"}]
    scalar_meta = {}
    for rec in records.values():
        for name, meta in rec.get("meta", {}).items():
            scalar_meta.setdefault(name, meta)
    for name in sorted(scalar_meta):
        vname = name if name not in reserved_names and name not in data else f"{name}_value"
        long_name, units = scalar_meta[name]
        data[vname] = [np.full(shape, np.nan), _attrs(long_name, units, sweep_role="scalar", sweep_source=name)]
    for idx, rec in records.items():
        data["done"][0][idx] = 1
        for name in ("converged", "failed", "checks_passed"):
            data[name][0][idx] = int(bool(rec.get(name, False)))
        for name in ("iterations", "residual", "run_time", "checks_failed", "finished"):
            v = rec.get(name)
            data[name][0][idx] = np.nan if v is None else float(v)
        data["status"][0][idx] = str(rec.get("status", ""))
        data["worker"][0][idx] = str(rec.get("worker", ""))
        for name, value in rec.get("scalars", {}).items():
            vname = name if name not in reserved_names and name not in POINT_VARS and name not in _STRING_VARS \
                else f"{name}_value"
            data[vname][0][idx] = value
    _add_orders(study, data)
    variables = {k: xr.Variable(dims, v[0], v[1]) for k, v in data.items()}
    all_coords = {k: xr.Variable(*v) for k, v in coords.items()}
    if fields:
        _add_fields(xr, study, records, fields, variables, all_coords)
    ds = xr.Dataset(data_vars=variables, coords=all_coords)
    done = data["done"][0]
    ds.attrs.update({
        "title": f"mfg_pde sweep of case {study.case.name} over {', '.join(study.varied)}",
        "mfg_pde_version": io._version(),
        "sweep_case": study.case.name,
        "sweep_params": io._dumps({k: v for k, v in study.params.items()}),
        "sweep_vary": io._dumps({",".join(d.names): [list(v) for v in d.values] for d in study.dims}),
        "sweep_fields": ",".join(fields),
        "sweep_fingerprint": study.fingerprint(),
        "points_total": int(study.size),
        "points_done": int(done.sum()),
        "points_failed": int(data["failed"][0].sum()),
        "points_not_converged": int(((done == 1) & (data["converged"][0] == 0) & (data["failed"][0] == 0)).sum()),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(attrs or {}),
    })
    return ds


def _add_orders(study, data):
    """A grid-refinement study (a dimension named N, numeric, with at least two values): the observed order
    of every error along it, ``order_<error>`` = log(e_{i-1} / e_i) / log(N_i / N_{i-1}) (NaN at the first N)."""
    if "N" not in study.dim_names:
        return
    axis = study.dim_names.index("N")
    n = np.array([v[0] for v in study.dims[axis].values], dtype=float)
    if n.size < 2 or not np.all(n > 0):
        return
    ratio = np.log(n[1:] / n[:-1])
    shape = [1] * len(study.shape)
    shape[axis] = n.size - 1
    ratio = ratio.reshape(shape)
    for name in [k for k in data if k.startswith("error_") and data[k][1].get("sweep_role") == "scalar"]:
        e = data[name][0]
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = np.take(e, range(0, n.size - 1), axis=axis)
            hi = np.take(e, range(1, n.size), axis=axis)
            order = np.log(lo / hi) / ratio
        full = np.full(e.shape, np.nan)
        idx = [slice(None)] * e.ndim
        idx[axis] = slice(1, None)
        full[tuple(idx)] = np.where(np.isfinite(order), order, np.nan)
        oname = "order_" + name[len("error_"):]
        if oname not in data:
            data[oname] = [full, _attrs(f"observed order of {name} along N: log(e(N_prev) / e(N)) / log(N / N_prev)",
                                        sweep_role="derived")]


def _add_fields(xr, study, records, fields, variables, coords):
    """The fields on (*dims, t, axes...): one reference shape per field (the first point's); a point whose
    field has another shape is left NaN there (a warning names it).  Coordinates equal at every point are
    plain coordinates; otherwise they are index coordinates and ``<name>_at`` holds each point's values."""
    import logging

    log = logging.getLogger("mfg_pde.sweep")
    dims, shape = study.dim_names, study.shape
    with_fields = [(idx, rec["fields"]) for idx, rec in sorted(records.items()) if rec.get("fields")]
    if not with_fields:
        return
    for name in fields:
        ref = next((f["arrays"][name] for _, f in with_fields if name in f["arrays"]), None)
        if ref is None:
            continue
        fdims, farr = ref
        arr = np.full(shape + farr.shape, np.nan)
        for idx, f in with_fields:
            got = f["arrays"].get(name)
            if got is None:
                continue
            if got[1].shape != farr.shape:
                log.warning("sweep: field %s at %s has shape %s, not %s like the others: not stored", name,
                            dict(zip(dims, study.key_of(idx))), got[1].shape, farr.shape)
                continue
            arr[idx] = got[1]
        variables[name] = xr.Variable(dims + list(fdims), arr,
                                      _attrs({"m": "population density m(t, x)", "u": "value function u(t, x)",
                                              "alpha": "feedback control alpha = -grad u"}[name], sweep_role="field"))
        for c, n in zip(fdims, farr.shape):
            if c in coords or f"{c}_at" in variables:
                continue
            stacks = [(idx, np.asarray(f["coords"][c])) for idx, f in with_fields
                      if c in f["coords"] and np.shape(f["coords"][c]) == (n,)]
            first = stacks[0][1]
            same = all(s.shape == first.shape and (s.dtype == object and np.array_equal(s, first) or
                                                   s.dtype != object and np.array_equal(s, first, equal_nan=True))
                       for _, s in stacks)
            label = {"t": "time", "component": "component of alpha"}.get(c, f"cell centres along {c}")
            if same:
                coords[c] = xr.Variable((c,), first, _attrs(label))
            else:
                coords[c] = xr.Variable((c,), np.arange(n), _attrs(f"index along {c} (values: {c}_at)"))
                at = np.full(shape + (n,), np.nan)
                for idx, s in stacks:
                    at[idx] = s
                variables[f"{c}_at"] = xr.Variable(dims + [c], at, _attrs(f"{label} at each point",
                                                                          sweep_role="field_coord"))


def open_existing(path):
    """The dataset stored at ``path`` (loaded into memory, file closed), or None when there is none."""
    path = os.fspath(path).rstrip("/")
    if not os.path.exists(path):
        return None
    xr = _require_xarray()
    try:
        if _netcdf(path):
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                return ds.load()
        with xr.open_zarr(path) as ds:
            return ds.load()
    except Exception as exc:  # noqa: BLE001 -- any unreadable file: say which and what to do
        raise SweepError(f"--out {path}: exists but cannot be read as a sweep's output ({exc.__class__.__name__}: "
                         f"{' '.join(str(exc).split())[:200]}); remove it or choose another --out") from None


def read_records(ds, study, path, fields=()) -> dict:
    """The points done in a stored study, as records keyed by their index in ``study``.  The stored study
    must be the same (case, fixed parameters, varied names: ``Study.fingerprint``) and its done points must
    lie in the requested ranges (nothing stored is dropped); otherwise ``SweepError`` says what differs."""
    stored = ds.attrs.get("sweep_fingerprint")
    if stored is None:
        raise SweepError(f"--out {path}: exists and is not a sweep's output; remove it or choose another --out")
    if stored != study.fingerprint():
        old, new = json.loads(stored), json.loads(study.fingerprint())
        what = []
        if old.get("case") != new["case"]:
            what.append(f"case {old.get('case')!r}, not {new['case']!r}")
        if old.get("dims") != new["dims"]:
            what.append(f"varies {', '.join(','.join(d) for d in old.get('dims', []))}, not "
                        f"{', '.join(','.join(d) for d in new['dims'])}")
        diff = sorted(k for k in set(old.get("params", {})) | set(new["params"])
                      if old.get("params", {}).get(k) != new["params"].get(k))
        if diff:
            what.append("other fixed parameters: " + ", ".join(
                f"{k}={old.get('params', {}).get(k)!r} there, {new['params'].get(k)!r} here" for k in diff[:4]))
        raise SweepError(f"--out {path}: holds another study ({'; '.join(what) or 'different set-up'}); to resume "
                         "it repeat its command, else remove it or choose another --out")
    stored_fields = [f for f in str(ds.attrs.get("sweep_fields", "")).split(",") if f]
    if list(fields) != stored_fields:
        raise SweepError(f"--out {path}: was written with --fields {','.join(stored_fields) or '(none)'}, not "
                         f"{','.join(fields) or '(none)'}; give the same --fields, or choose another --out")
    # position of every stored point in the new study
    lookup = []
    for d in study.dims:
        lookup.append({tuple(_plain(x) for x in v): i for i, v in enumerate(d.values)})
    stored_keys = []
    for d in study.dims:
        cols = [ds[n].values for n in d.names]
        stored_keys.append([tuple(_plain(c[i]) for c in cols) for i in range(len(cols[0]))])
    done = np.asarray(ds["done"].values)
    records, outside = {}, []
    scalar_vars = [(k, v.attrs.get("sweep_source", k)) for k, v in ds.data_vars.items()
                   if v.attrs.get("sweep_role") == "scalar"]
    for old_idx in zip(*np.nonzero(done == 1)):
        new_idx = []
        for k, i in enumerate(old_idx):
            key = stored_keys[k][i]
            if key not in lookup[k]:
                outside.append(f"{'/'.join(study.dims[k].names)}={':'.join(map(str, key))}")
                break
            new_idx.append(lookup[k][key])
        else:
            records[tuple(new_idx)] = _record_at(ds, old_idx, scalar_vars, fields)
    if outside:
        shown = ", ".join(sorted(set(outside))[:5])
        raise SweepError(f"--out {path}: holds points outside the requested values ({shown}); include them in "
                         "--vary, or choose another --out (nothing stored is dropped)")
    return records


def _plain(x):
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, bytes):
        x = x.decode()
    return x


def _record_at(ds, idx, scalar_vars, fields) -> dict:
    rec = {"status": str(_plain(ds["status"].values[idx])), "worker": str(_plain(ds["worker"].values[idx]))}
    for name in ("converged", "failed", "checks_passed"):
        rec[name] = bool(ds[name].values[idx])
    for name in ("iterations", "residual", "run_time", "checks_failed", "finished"):
        rec[name] = float(ds[name].values[idx])
    rec["scalars"], rec["meta"] = {}, {}
    for vname, source in scalar_vars:
        v = float(ds[vname].values[idx])
        if np.isfinite(v) or not np.isnan(v):
            rec["scalars"][source] = v
            rec["meta"][source] = (ds[vname].attrs.get("long_name", source), ds[vname].attrs.get("units", ""))
    if fields:
        arrays, coords = {}, {}
        for name in fields:
            if name not in ds:
                continue
            var = ds[name]
            fdims = list(var.dims[len(idx):])
            value = np.asarray(var.values[idx])
            if np.all(np.isnan(value)):
                continue
            arrays[name] = (fdims, value)
            for c in fdims:
                if f"{c}_at" in ds:
                    coords[c] = np.asarray(ds[f"{c}_at"].values[idx])
                elif c in ds.coords:
                    coords[c] = np.asarray(ds[c].values)
        rec["fields"] = {"arrays": arrays, "coords": coords} if arrays else None
    return rec
