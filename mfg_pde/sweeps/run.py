"""``sweep``: run every point of a study on a ``dask.distributed`` cluster (or in this process), gather the
records into one Dataset, checkpoint it to the output as points finish, resume from it.

Where the points run (``sweep(client=..., scheduler=...)``):

* ``client``: an existing ``distributed.Client``, used as it is (its cluster is not closed);
* ``scheduler="tcp://host:port"``: connect to a running scheduler (``dask scheduler`` / ``dask worker``,
  dask-jobqueue on SLURM/PBS, a cloud cluster), used as it is;
* ``scheduler=None`` / ``"local"`` (default): a ``LocalCluster`` of ``n_workers`` processes (default: the
  cores this process may use), one thread each (``NUMBA_NUM_THREADS=1``: the numba kernels do not compete
  for cores), loopback only, no dashboard; closed at the end;
* ``scheduler="serial"``: one point after another in this process (no Dask; the reference the tests compare
  with).

Every worker loads the numba kernels once, when it joins (``WarmUp``, a worker plugin: workers started later,
or restarted after a crash, warm up too), not per task.  Each point is one task with a key derived from the
study and the point, so a point is never run twice at once; a task whose worker dies is rescheduled by the
scheduler on another worker; when workers keep dying on it (``distributed.scheduler.allowed-failures``), the
point is recorded as failed and the study goes on.  A point that raises or does not converge is recorded with
its status; nothing a point does stops the study.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time

from .point import FIELDS, run_point, warm_up
from .spec import Study, SweepError
from .store import build_dataset, check_output, open_existing, read_records, remove_stale, write_dataset

__all__ = ["WarmUp", "sweep"]

LOG = logging.getLogger("mfg_pde.sweep")

#: environment of the processes of a LocalCluster made here
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MFG_PDE_PARALLEL_COMPILE": "0"}


def _plugin_base():
    try:
        from distributed import WorkerPlugin
    except ImportError:
        from distributed.diagnostics.plugin import WorkerPlugin
    return WorkerPlugin


class WarmUp:
    """Worker plugin: load the package and its numba kernels when a worker starts (``point.warm_up``), so
    that no task pays for it.  Built by ``warm_up_plugin`` (the Dask base class is imported lazily)."""

    name = "mfg-pde-warm-up"

    def setup(self, worker):
        seconds = warm_up()
        worker.mfg_pde_warm_up_seconds = seconds   # for the benchmark / diagnostics


def warm_up_plugin():
    """A ``WarmUp`` instance that is a ``distributed.WorkerPlugin``."""
    cls = type("WarmUpPlugin", (WarmUp, _plugin_base()), {})
    return cls()


def _require_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError("sweeps on a cluster need the optional package dask[distributed]: pip install "
                          "mfg_pde[sweep] (from a source checkout: pip install \".[sweep]\"); or run in this "
                          f"process with scheduler='serial' (--scheduler serial) [{exc}]") from None
    return distributed


def default_workers() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


class _Progress:
    """Points done / total, failures, elapsed, ETA on the ``mfg_pde.sweep`` logger (INFO), at most one
    line per ``every`` seconds (failures and the last point always)."""

    def __init__(self, enabled, total, resumed, every=2.0):
        self.enabled, self.total, self.resumed, self.every = enabled, total, resumed, every
        self.t0 = time.perf_counter()
        self.last = -math.inf
        self.done = self.failed = self.not_converged = 0
        if enabled:
            from ..iterate.monitor import _ensure_handler

            _ensure_handler()

    def say(self, text, level=logging.INFO):
        if self.enabled:
            LOG.log(level if LOG.isEnabledFor(level) else max(level, LOG.getEffectiveLevel()), text)

    def point(self, where: str, rec: dict):
        self.done += 1
        self.failed += bool(rec.get("failed"))
        self.not_converged += (not rec.get("failed")) and not rec.get("converged")
        now = time.perf_counter()
        if rec.get("failed"):
            self.say(f"sweep: point {where} {rec.get('status')}", logging.WARNING)
        elif not rec.get("converged"):
            self.say(f"sweep: point {where} did not converge: {rec.get('status')}", logging.WARNING)
        if now - self.last < self.every and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else math.nan
        self.say(f"sweep: {self.resumed + self.done}/{self.resumed + self.total} points "
                 f"({self.failed} failed, {self.not_converged} not converged), elapsed {_fmt_seconds(elapsed)}, "
                 f"eta {_fmt_seconds(eta) if self.done < self.total else '0 s'}")


def _task_key(study, idx) -> str:
    token = hashlib.sha1((study.fingerprint() + repr(study.key_of(idx))).encode()).hexdigest()[:16]
    return f"mfg-pde-sweep-{study.case.name}-{token}"


def _connect(client, scheduler, n_workers):
    """(client, things to close) for the requested place to run."""
    if client is not None:
        return client, []
    distributed = _require_distributed()
    if scheduler not in (None, "", "local"):
        try:
            c = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"--scheduler {scheduler}: cannot connect ({exc.__class__.__name__}: "
                             f"{' '.join(str(exc).split())[:200]}); is a scheduler running there?") from None
        return c, [c]
    n = int(n_workers or default_workers())
    if n < 1:
        raise SweepError(f"--workers {n}: need at least 1")
    # the workers import this package from where this process does (a source checkout included)
    env = dict(WORKER_ENV)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.basename(here) not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in [here, os.environ.get("PYTHONPATH", "")] if p)
    # loopback only; no dashboard (its HTTP routes on a free port, not 8787, which another cluster may hold)
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                                       silence_logs=logging.ERROR, env=env)
    c = distributed.Client(cluster)
    return c, [c, cluster]


def _register_warm_up(client):
    """Register ``WarmUp`` on the cluster (once: a cluster that has it already, from an earlier sweep, keeps
    its warm workers as they are); workers that join later run it when they start."""
    try:
        present = client.run_on_scheduler(lambda dask_scheduler, name=WarmUp.name:
                                          name in dask_scheduler.worker_plugins)
    except Exception:  # noqa: BLE001 -- a scheduler that does not tell: register (setup runs again, harmless)
        present = False
    if present:
        return
    plugin = warm_up_plugin()
    register = getattr(client, "register_plugin", None) or client.register_worker_plugin
    register(plugin, name=plugin.name)


def sweep(case, vary: dict, fixed: dict | None = None, client=None, *, out=None, fields=(), scheduler=None,
          n_workers=None, retry_failed: bool = False, progress: bool = True, checkpoint: float = 2.0,
          callback=None):
    """Run ``case`` at every point of the product of ``vary`` (``fixed`` parameters at every point) and
    return the study as one ``xarray.Dataset`` (``store.build_dataset``: the varied parameters are its
    dimensions, every scalar a point reports a variable).

    case : a registered case's name (``mfg-pde cases``) or the case.
    vary : name -> values, in dimension order: a list, or a text ``"1,2,4"``, ``"linspace(0.5, 8, 16)"``,
        ``"geomspace(a, b, n)"``, ``"logspace(a, b, n)"``, ``"range(a, b, step)"``; ``("N", "Nt") -> [(50, 50),
        (100, 100)]`` varies parameters together (``spec``).
    fixed : name -> value of the other parameters (defaults otherwise).
    client, scheduler, n_workers : where the points run (module docstring): an existing ``Client``, a scheduler
        address, ``"local"`` (default: a LocalCluster of ``n_workers`` processes) or ``"serial"``.
    out : a netCDF file (``.nc``) or zarr store (``.zarr``).  Written atomically as points finish (at most
        every ``checkpoint`` seconds, and at the end, also when interrupted); when it exists and holds the same
        study, the points it has are not run again (``retry_failed``: except the failed ones).
    fields : any of "m", "u", "alpha" (a sequence or a text "m,u"): stored per point on (t, x, ...) with their
        coordinates.
    progress : points done / total, failures, elapsed, ETA on the ``mfg_pde.sweep`` logger.
    callback : called as ``callback(done, total, index, record)`` after each point (in this process).
    """
    fields = tuple(dict.fromkeys(f.strip() for f in (fields.split(",") if isinstance(fields, str) else fields)
                                 if f.strip()))
    bad = [f for f in fields if f not in FIELDS]
    if bad:
        raise SweepError(f"--fields {','.join(bad)}: unknown field; choose from {', '.join(FIELDS)}")
    study = Study(case, vary, fixed)
    if fields:
        _check_fields_grid(study, fields)
    records = {}
    if out is not None:
        out = os.fspath(out)
        check_output(out)
        remove_stale(out)
        old = open_existing(out)
        if old is not None:
            records = read_records(old, study, out, fields)
            if retry_failed:
                records = {k: r for k, r in records.items() if not r.get("failed")}
    pending = [(idx, over) for idx, over in study.points() if idx not in records]
    report = _Progress(progress, len(pending), len(records))
    report.say(f"sweep {study.case.name} over {study.describe()}: {study.size} points"
               + (f", {len(records)} already in {out}" if records else "")
               + (f", {len(pending)} to run" if records else ""))
    state = {"written": time.perf_counter(), "dirty": False, "writes": 0}

    def save(final=False):
        if out is None or not (state["dirty"] or final):
            return
        write_dataset(build_dataset(study, records, fields), out)
        state["written"], state["dirty"], state["writes"] = time.perf_counter(), False, state["writes"] + 1

    def finish(idx, rec):
        records[idx] = rec
        state["dirty"] = True
        where = ", ".join(f"{n}={v}" for n, v in zip(study.dim_names, study.key_of(idx)))
        report.point(where, rec)
        if callback is not None:
            callback(report.done, report.total, idx, rec)
        if time.perf_counter() - state["written"] >= checkpoint:
            save()

    try:
        if pending and scheduler == "serial" and client is None:
            for idx, over in pending:
                finish(idx, run_point(study.case.name, over, fields))
        elif pending:
            _run_distributed(study, pending, fields, client, scheduler, n_workers, finish, report)
    finally:
        save(final=out is not None and (state["dirty"] or not os.path.exists(out)))
    ds = build_dataset(study, records, fields)
    report.say(f"sweep {study.case.name}: {ds.attrs['points_done']}/{study.size} points done "
               f"({ds.attrs['points_failed']} failed, {ds.attrs['points_not_converged']} not converged) in "
               f"{_fmt_seconds(time.perf_counter() - report.t0)}"
               + (f"; wrote {out}" if state["writes"] else f"; {out} was up to date" if out else ""))
    return ds


def _run_distributed(study, pending, fields, client, scheduler, n_workers, finish, report):
    distributed = _require_distributed()
    client, to_close = _connect(client, scheduler, n_workers)
    futures = []
    try:
        _register_warm_up(client)
        workers = client.scheduler_info().get("workers", {})
        report.say(f"sweep: {len(workers)} worker{'s' if len(workers) != 1 else ''} at {client.scheduler.address} "
                   f"(warm), {len(pending)} tasks")
        report.t0 = time.perf_counter()   # elapsed and ETA from here: the cluster's start-up is not a point's
        by_key = {}
        for idx, over in pending:
            key = _task_key(study, idx)
            fut = client.submit(run_point, study.case.name, over, fields, key=key, pure=False)
            by_key[fut.key] = idx
            futures.append(fut)
        for fut in distributed.as_completed(futures):
            idx = by_key[fut.key]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 -- KilledWorker (workers kept dying on it), lost data, ...
                msg = " ".join(str(exc).split())[:300] or exc.__class__.__name__
                rec = {"status": f"failed: {exc.__class__.__name__}: {msg}", "converged": False, "failed": True,
                       "scalars": {}, "meta": {}, "fields": None, "finished": time.time()}
            fut.release()
            finish(idx, rec)
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
        for thing in to_close:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 -- closing is best effort
                pass


def _check_fields_grid(study, fields):
    """Fields share one grid: refuse --fields when the varied parameters change it (N, Nt), before any work."""
    shapes = {}
    for idx, over in study.points():
        p = {**study.case.defaults(), **over}
        try:
            shape = study.case.grid_shape(p)
        except Exception:  # noqa: BLE001 -- the point's own run reports its problems
            shape = None
        shapes.setdefault((shape, p.get("Nt")), idx)
        if len(shapes) > 1:
            varying = [n for n in study.varied if n in ("N", "Nt")] or study.varied
            raise SweepError(f"--fields {','.join(fields)}: the grid differs between points ({', '.join(varying)} "
                             "varied); fields are stored on one grid: drop --fields, or sweep each grid separately")
