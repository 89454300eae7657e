"""HDF5 files of multi-population results (``result.MultiPopulationResult``): the single-population layout
of ``io`` with a population dimension in front of the fields.

    /population   (K,)                    population names               [dimension scale "population"]
    /t, /x, /y, /z, /component            as in ``io``                   [dimension scales]
    /m            (K, Nt+1, *grid)        densities m_k(t, x)            dims population, t, x, ...
    /u            (K, Nt+1, *grid)        value functions u_k(t, x)
    /alpha        (K, Nt+1, *grid, d)     feedbacks of the populations   last dim "component"
    /history/<key>                        the joint loop's records (as in ``io``)
    /case_report                          a case's report (as in ``io``), when there is one
    /provenance                           as in ``io``

Root attributes: those of ``io`` (``mfg_pde_version``, ``created``, ``case``, ``params`` -- the problem's
``describe()``, with every population's -- ``solver``, ``grid``, ``converged``, ``iterations``, ``status``,
``complete``) and ``kind`` = "multi-population".  Types with switching: ``params`` holds the switching-rate matrix
(``switching``) and the initial shares (``shares``), ``solver`` the matrix again (a case's file keeps the case's
parameters in ``params``); ``MultiPopulationResult.mass_error`` is then that of the total mass.  The write is atomic (``io.write_atomic``).  ``mfg_pde.load``
recognises the file by ``kind`` and returns a ``MultiPopulationResult`` (``result.load``; the
population problems are not rebuilt: ``problem`` is None after loading, their descriptions are in ``params``).
"""

from __future__ import annotations

import datetime as _dt
import json

import numpy as np

from . import io

KIND = "multi-population"


def save_multi(result, path) -> None:
    """Write ``result`` (a MultiPopulationResult) to ``path`` (layout in the module docstring)."""
    def fill(f):
        _write_multi(f, result)
        io._write_provenance(f, result)

    io.write_atomic(path, fill)


def _write_multi(f, result) -> None:
    grid = result.grid
    names = list(grid.axis_names)
    t = np.asarray(result.t, dtype=float)
    f.attrs[io.FORMAT_ATTR] = io._version()
    f.attrs["kind"] = KIND
    f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["case"] = "" if result.case is None else str(result.case)
    f.attrs["params"] = io._dumps(result.params or {})
    f.attrs["solver"] = io._dumps(result.solver or {})
    f.attrs["grid"] = json.dumps(grid.describe())
    f.attrs["converged"] = np.int8(bool(result.converged))
    f.attrs["iterations"] = int(result.iterations)
    f.attrs["status"] = str(result.status)
    pop = io._scale(f, "population", np.array(result.names, dtype=object), "population name")
    ds_t = io._scale(f, "t", t, "time")
    coords = [io._scale(f, n, np.asarray(ax, dtype=float), io._AXIS_LONG[n]) for n, ax in zip(names, grid.axes)]
    comp = io._scale(f, "component", np.array(names, dtype=object), "component of the feedback vector alpha")
    for key, data, long_name in (("m", result.m, "population densities m_k(t, x)"),
                                 ("u", result.u, "value functions u_k(t, x)"),
                                 ("alpha", result.alpha, "feedback controls alpha_k of the populations")):
        data = np.asarray(data, dtype=float)
        opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if data.size >= 4096 else {}
        ds = f.create_dataset(key, data=data, **opts)
        io._set_desc(ds, long_name)
        for k, sc in enumerate([pop, ds_t, *coords] + ([comp] if key == "alpha" else [])):
            io._attach(ds, k, sc)
    hist = f.create_group("history", track_order=True)
    hist.attrs["long_name"] = "per-iteration convergence record of the joint coupling loop"
    io._write_history(hist, result.history or {})
    if result.case_report is not None:
        io._write_case_report(f, result.case_report)


def is_multi(path) -> bool:
    """Whether ``path`` is a multi-population result file (its root attribute ``kind``)."""
    with io._open(path) as f, io._reading(path):
        return io._attr_str(f, "kind") == KIND


def read_multi(path) -> dict:
    """Everything a multi-population file holds, as plain data: grid (description), names, t, m, u, alpha,
    history, params, solver, case, converged, status, iterations, case_report (the keyword arguments of
    ``CaseReport``, or None).  ``result.load_multi`` builds the result."""
    with io._open(path) as f, io._reading(path):
        rec = {"grid": io._attr_json(f, path, "grid"),
               "names": [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in f["population"][()]],
               "t": f["t"][()], "m": f["m"][()], "u": f["u"][()], "alpha": f["alpha"][()],
               "history": {key: ds[()] for key, ds in f["history"].items() if not io._is_added_scale(ds)},
               "converged": bool(f.attrs.get("converged", False)), "status": io._attr_str(f, "status", "unknown"),
               "iterations": int(f.attrs.get("iterations", 0)), "params": io._attr_json(f, path, "params"),
               "solver": io._attr_json(f, path, "solver"), "case": io._attr_str(f, "case") or None,
               "case_report": io._read_case_report(f["case_report"]) if "case_report" in f else None}
    want = (len(rec["names"]), rec["t"].shape[0]) + tuple(rec["grid"]["shape"])
    if rec["m"].shape != want or rec["u"].shape != want:
        raise io.incomplete(path, f"m {rec['m'].shape} / u {rec['u'].shape} do not match (K, len(t), *grid) = {want}")
    return rec
