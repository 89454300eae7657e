"""Parameter studies (``mfg-pde sweep``, ``mp.sweep``, ``mfg_pde.sweeps``): the --vary grammar and its errors,
the same numbers on a 2-worker Dask cluster as in one process, a failing point recorded and the study going
on, resume after an interruption, atomic checkpoints, a worker killed mid-task, the CLI, and the core
package importing without dask or xarray.

One LocalCluster (2 processes, one thread each, loopback, no dashboard) serves the whole module; grids are
tiny (lqg at N <= 80 solves in milliseconds), except the killed-worker test, whose points must last long
enough to be killed mid-task (about a second each)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
distributed = pytest.importorskip("distributed")

import mfg_pde as mp  # noqa: E402
from mfg_pde import cli  # noqa: E402
from mfg_pde.cases import CaseError  # noqa: E402
from mfg_pde.sweeps import Study, SweepError, parse_values  # noqa: E402
from mfg_pde.sweeps import store  # noqa: E402
from mfg_pde.sweeps.point import run_point  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(mp.__file__)))
# lqg over beta x N at a tiny Nt; N = 10 cannot resolve the initial Gaussian: the case raises there
VARY = {"beta": "1,4", "N": "10,40,80"}
FIXED = {"Nt": 20}
# per-point variables that differ between runs of the same point (when, where, how long)
VOLATILE = {"finished", "worker", "run_time", "wall_time"}


@pytest.fixture(scope="module")
def client():
    """A 2-worker LocalCluster whose processes import this checkout (PYTHONPATH)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, old) if p)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def assert_same_study(a, b):
    """Every variable but the volatile ones is identical (bitwise for floats, NaN where NaN)."""
    assert set(a.data_vars) == set(b.data_vars)
    assert a.sizes == b.sizes
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    for name in a.data_vars:
        if name in VOLATILE:
            continue
        x, y = a[name].values, b[name].values
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=name)   # NaNs compare equal here
        else:
            assert x.tolist() == y.tolist(), name


# ----------------------------------------------------------------------------- the --vary grammar
def test_vary_values_grammar():
    lqg = mp.cases.get("lqg")
    assert parse_values(lqg, "beta", "1,2,4") == [1.0, 2.0, 4.0]
    assert parse_values(lqg, "beta", "linspace(0.5, 8, 16)") == pytest.approx(list(np.linspace(0.5, 8, 16)))
    assert parse_values(lqg, "beta", "geomspace(1,8,4)") == pytest.approx([1, 2, 4, 8])
    assert parse_values(lqg, "beta", "logspace(-1,1,3)") == pytest.approx([0.1, 1, 10])
    assert parse_values(lqg, "N", "range(100, 401, 100)") == [100, 200, 300, 400]
    assert parse_values(lqg, "N", "linspace(100, 400, 4)") == [100, 200, 300, 400]
    assert all(type(v) is int for v in parse_values(lqg, "N", "linspace(100, 400, 4)"))
    assert parse_values(lqg, "method", "anderson,newton") == ["anderson", "newton"]
    study = Study("lqg", {"beta": "1,2,4", "N,Nt": "50:50,100:100"}, {"sigma": "0.5"})
    assert study.shape == (3, 2) and study.dim_names == ["beta", "N"] and study.varied == ["beta", "N", "Nt"]
    points = list(study.points())
    assert len(points) == 6 and points[1] == ((0, 1), {"sigma": 0.5, "beta": 1.0, "N": 100, "Nt": 100})
    assert study.params["sigma"] == 0.5 and "beta" not in study.params


@pytest.mark.parametrize("vary, fixed, message", [
    ({"bta": "1,2"}, {}, "has no parameter 'bta'; known: "),
    ({"beta": "1,2"}, {"sigmaa": "1"}, "has no parameter 'sigmaa'"),
    ({"beta": "linspace(1,2)"}, {}, "linspace takes 3 numbers"),
    ({"beta": "linspace(1,2,x)"}, {}, "must be numbers"),
    ({"beta": "spline(1,2,3)"}, {}, "not a list of values nor linspace"),
    ({"beta": "1,,2"}, {}, "an empty value is not allowed"),
    ({"beta": "1,a"}, {}, "beta='a': expected float"),
    ({"beta": "1,2,1"}, {}, "the value 1.0 is repeated"),
    ({"N": "linspace(10, 20, 4)"}, {}, "is not an integer, and N is an integer parameter"),
    ({"N": "range(1.5, 3)"}, {}, "range takes integers"),
    ({"beta": "1,2"}, {"beta": "3"}, "both varied (--vary) and fixed (--set)"),
    ({"N,Nt": "50:50,100"}, {}, "'100' has 1 values, expected 2"),
    ({}, {}, "needs at least one --vary"),
])
def test_vary_errors_name_the_parameter_and_the_fix(vary, fixed, message):
    with pytest.raises((SweepError, CaseError)) as err:
        Study("lqg", vary, fixed)
    assert message in str(err.value)


def test_output_parameters_and_unwritable_outputs_are_refused(tmp_path):
    with pytest.raises(SweepError, match="output parameter"):
        Study("demand-response", {"d": "1,2"}, {"figure": "f.png"})
    with pytest.raises(CaseError, match="unknown case 'lqgg'"):
        Study("lqgg", {"beta": "1"})
    with pytest.raises(SweepError, match="does not exist; create it first"):
        store.check_output(tmp_path / "missing" / "s.nc")
    with pytest.raises(SweepError, match=r"name a netCDF file \(.nc\) or a zarr store"):
        store.check_output(tmp_path / "s.csv")
    (tmp_path / "d.nc").mkdir()
    with pytest.raises(SweepError, match="is a directory"):
        store.check_output(tmp_path / "d.nc")


def test_zarr_needs_zarr(tmp_path):
    try:
        import zarr  # noqa: F401
    except ImportError:
        with pytest.raises(SweepError, match=r"needs the package zarr \(pip install zarr\)"):
            store.check_output(tmp_path / "s.zarr")
    else:
        store.check_output(tmp_path / "s.zarr")


# ----------------------------------------------------------------------------- one process vs the cluster
@pytest.fixture(scope="module")
def serial_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "serial.nc"
    return mp.sweep("lqg", VARY, FIXED, scheduler="serial", out=out, progress=False), out


def test_serial_study_matches_the_case_and_records_the_failing_point(serial_study):
    ds, out = serial_study
    assert dict(ds.sizes) == {"beta": 2, "N": 3}
    assert ds.beta.values.tolist() == [1.0, 4.0] and ds.N.values.tolist() == [10, 40, 80]
    # the point the case rejects (N = 10 under-resolves the initial Gaussian) is recorded, the rest ran
    bad = ds.sel(N=10)
    assert bad.failed.values.tolist() == [1, 1] and bad.done.values.tolist() == [1, 1]
    assert all(s.startswith("failed: ValueError: std[0] = 0.5 is under-resolved") for s in bad.status.values)
    assert np.isnan(bad.error_mean.values).all()
    good = ds.sel(N=[40, 80])
    assert (good.status == "converged").all() and (good.converged == 1).all() and (good.failed == 0).all()
    assert ds.attrs["points_done"] == 6 and ds.attrs["points_failed"] == 2
    # every scalar the case reports: its checks, the loop's record, residual, iterations, time
    run = mp.cases.get("lqg").run({"beta": 4.0, "N": 80, "Nt": 20})
    point = ds.sel(beta=4.0, N=80)
    for check in run.checks:
        name = "error_" + check.quantity.replace(" (value curvature)", "_value_curvature")
        assert float(point[name]) == check.error, name
    assert float(point.residual) == run.result.final_residual
    assert int(point.iterations) == run.result.iterations
    for name in ("hjb_residual", "mass_error", "exploitability", "wall_time", "run_time"):
        assert np.isfinite(float(point[name])), name
    for name, var in list(ds.data_vars.items()) + list(ds.coords.items()):
        assert var.attrs.get("long_name"), name
    assert ds.run_time.attrs["units"] == "s" and ds.wall_time.attrs["units"] == "s"
    assert "interaction stiffness" in ds.beta.attrs["description"]
    # refinement along N: the observed order of each error
    assert ds.order_mean.sel(N=80).values == pytest.approx(np.log2(ds.error_mean.sel(N=40) / ds.error_mean.sel(N=80)))
    # the file is the dataset
    with xr.open_dataset(out, engine="h5netcdf") as on_disk:
        assert_same_study(ds, on_disk.load())
        assert on_disk.worker.values.ravel()[0].endswith(f":{os.getpid()}")


def test_workers_import_this_checkout(client):
    files = client.run(lambda: __import__("mfg_pde").__file__)
    assert set(files.values()) == {mp.__file__}


def test_cluster_reproduces_the_serial_study(client, serial_study, tmp_path):
    ds = mp.sweep("lqg", VARY, FIXED, client=client, out=tmp_path / "cluster.nc", progress=False)
    assert_same_study(serial_study[0], ds)
    pids = {str(p) for p in client.run(os.getpid).values()}
    ran_on = {w.rsplit(":", 1)[1] for w in ds.worker.values.ravel()}
    assert ran_on <= pids and str(os.getpid()) not in ran_on       # on the workers, not here
    assert client.status == "running"                               # a given client is not closed
    with xr.open_dataset(tmp_path / "cluster.nc", engine="h5netcdf") as on_disk:
        assert_same_study(ds, on_disk.load())


def test_scheduler_address_uses_the_running_cluster(client, tmp_path):
    ds = mp.sweep("lqg", {"beta": "1,2"}, {"N": 40, "Nt": 10}, scheduler=client.scheduler.address, progress=False)
    assert (ds.converged == 1).all()
    pids = {str(p) for p in client.run(os.getpid).values()}
    assert {w.rsplit(":", 1)[1] for w in ds.worker.values} <= pids
    assert client.status == "running" and len(client.scheduler_info()["workers"]) == 2   # left as it was


def test_default_local_cluster_is_made_and_closed(serial_study):
    """No client, no scheduler: sweep starts a LocalCluster of its own (here 2 processes) and closes it."""
    before = set(distributed.client._global_clients)
    ds = mp.sweep("lqg", VARY, FIXED, n_workers=2, progress=False)
    assert_same_study(serial_study[0], ds)
    workers = {w.rsplit(":", 1)[1] for w in ds.where(ds.done == 1).worker.values.ravel()}
    assert str(os.getpid()) not in workers
    for pid in workers:   # the cluster's processes are gone
        deadline = time.time() + 20
        while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}"), pid
    assert set(distributed.client._global_clients) <= before | set()


def test_workers_warm_up_once_when_they_join(client, tmp_path):
    mp.sweep("lqg", {"beta": "1"}, {"N": 40, "Nt": 10}, client=client, progress=False)
    seconds = client.run(lambda dask_worker: getattr(dask_worker, "mfg_pde_warm_up_seconds", None))
    assert all(s is not None and s >= 0 for s in seconds.values())
    assert "mfg-pde-warm-up" in client.run(lambda dask_worker: list(dask_worker.plugins)).popitem()[1]


# ----------------------------------------------------------------------------- resume, checkpoints
def test_resume_after_interruption_runs_only_the_missing_points(client, serial_study, tmp_path):
    out = tmp_path / "study.nc"

    def stop_after_two(done, total, idx, rec):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mp.sweep("lqg", VARY, FIXED, client=client, out=out, progress=False, checkpoint=0.0, callback=stop_after_two)
    with xr.open_dataset(out, engine="h5netcdf") as part:
        part = part.load()
    assert int(part.done.sum()) == 2 and part.attrs["points_done"] == 2
    assert sorted(os.listdir(tmp_path)) == ["study.nc"]               # no temporary file left behind
    first = {tuple(i): float(part.finished.values[tuple(i)]) for i in np.argwhere(part.done.values == 1)}

    ran = []
    ds = mp.sweep("lqg", VARY, FIXED, client=client, out=out, progress=False, callback=lambda *a: ran.append(a[2]))
    assert len(ran) == 4 and not set(map(tuple, ran)) & set(first)     # only the missing points ran
    for idx, t in first.items():
        assert float(ds.finished.values[idx]) == t                      # the stored ones were kept as they were
    assert_same_study(serial_study[0], ds)
    ran.clear()
    again = mp.sweep("lqg", VARY, FIXED, client=client, out=out, progress=False, callback=lambda *a: ran.append(1))
    assert ran == [] and int(again.done.sum()) == 6                     # nothing left to run
    # --retry-failed runs the failed points again (the two N = 10 points), nothing else
    mp.sweep("lqg", VARY, FIXED, scheduler="serial", out=out, progress=False, retry_failed=True,
             callback=lambda *a: ran.append(a[2]))
    assert sorted(ran) == [(0, 0), (1, 0)]
    # a wider study in the same file: the stored points are reused, the new ones run
    ran.clear()
    wider = mp.sweep("lqg", {"beta": "1,4,8", "N": "10,40,80"}, FIXED, scheduler="serial", out=out, progress=False,
                     callback=lambda *a: ran.append(a[2]))
    assert sorted(ran) == [(2, 0), (2, 1), (2, 2)] and int(wider.done.sum()) == 9


def test_resume_refuses_another_study(serial_study):
    _, out = serial_study
    with pytest.raises(SweepError, match=r"holds another study \(other fixed parameters: Nt=20 there, 30 here\)"):
        mp.sweep("lqg", VARY, {"Nt": 30}, scheduler="serial", out=out, progress=False)
    with pytest.raises(SweepError, match=r"holds points outside the requested values \(beta=4.0\)"):
        mp.sweep("lqg", {"beta": "1", "N": "10,40,80"}, FIXED, scheduler="serial", out=out, progress=False)
    with pytest.raises(SweepError, match="varies beta, N, not N, beta"):
        mp.sweep("lqg", {"N": "10,40,80", "beta": "1,4"}, FIXED, scheduler="serial", out=out, progress=False)


def test_a_checkpoint_is_atomic(tmp_path, monkeypatch, serial_study):
    out = tmp_path / "s.nc"
    ds = serial_study[0]
    store.write_dataset(ds, out)
    before = out.read_bytes()

    def broken(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        store.write_dataset(ds, out)
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["s.nc"]


# ----------------------------------------------------------------------------- a worker killed mid-task
def test_a_killed_worker_loses_and_duplicates_nothing(client, tmp_path):
    vary, fixed = {"beta": "1,2,3,4"}, {"N": 700, "Nt": 700}      # about a second per point
    killed = {}

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            busy = {w: [k for k in keys if str(k).startswith("mfg-pde-sweep-")]
                    for w, keys in client.processing().items()}
            busy = {w: k for w, k in busy.items() if k}
            if busy:
                time.sleep(0.3)                         # well inside the task
                worker, keys = next(iter(busy.items()))
                pid = client.run(os.getpid, workers=[worker])[worker]
                killed.update(pid=pid, worker=worker, keys=keys)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    ds = mp.sweep("lqg", vary, fixed, client=client, out=tmp_path / "k.nc", progress=False)
    thread.join()
    assert killed, "no task was seen running: nothing was killed"
    assert int(ds.done.sum()) == 4 and ds.attrs["points_done"] == 4 and ds.attrs["points_failed"] == 0
    assert (ds.converged == 1).all() and (ds.status == "converged").all()
    assert f":{killed['pid']}" not in " ".join(ds.worker.values)  # the killed task's point ran again elsewhere
    # the same numbers as each point run alone on a worker (workers run BLAS on one thread: at this grid
    # size a multi-threaded BLAS in this process would sum in another order, at round-off)
    refs = client.gather(client.map(run_point, ["lqg"] * 4, [{**fixed, "beta": b} for b in (1.0, 2.0, 3.0, 4.0)],
                                    pure=False))
    assert ds.error_mean.values.tolist() == [r["scalars"]["error_mean"] for r in refs]
    assert ds.residual.values.tolist() == [r["residual"] for r in refs]
    with xr.open_dataset(tmp_path / "k.nc", engine="h5netcdf") as on_disk:
        assert on_disk.sizes["beta"] == 4 and int(on_disk.done.sum()) == 4
    # the nanny restarts the killed worker: the cluster is whole again for the next tests
    client.wait_for_workers(2, timeout=60)


# ----------------------------------------------------------------------------- fields, progress, CLI, imports
def test_fields_with_their_coordinates(tmp_path):
    ds = mp.sweep("lqg", {"beta": "1,4"}, {"N": 40, "Nt": 10}, scheduler="serial", fields="m,u", progress=False,
                  out=tmp_path / "f.nc")
    assert ds.m.dims == ("beta", "t", "x") and ds.m.shape == (2, 11, 40)
    r = mp.cases.get("lqg").run({"beta": 4.0, "N": 40, "Nt": 10}).result
    np.testing.assert_array_equal(ds.m.sel(beta=4.0).values, r.m)
    np.testing.assert_array_equal(ds.x.values, r.grid.axes[0])
    np.testing.assert_array_equal(ds.t.values, r.t)
    with xr.open_dataset(tmp_path / "f.nc", engine="h5netcdf") as on_disk:
        np.testing.assert_array_equal(on_disk.u.values, ds.u.values)
    # resumed: the stored fields are read back, not recomputed
    ran = []
    again = mp.sweep("lqg", {"beta": "1,4,8"}, {"N": 40, "Nt": 10}, scheduler="serial", fields="m,u",
                     progress=False, out=tmp_path / "f.nc", callback=lambda *a: ran.append(a[2]))
    assert ran == [(2,)]
    np.testing.assert_array_equal(again.m.sel(beta=[1.0, 4.0]).values, ds.m.values)
    with pytest.raises(SweepError, match=r"--fields m: the grid differs between points \(N varied\)"):
        mp.sweep("lqg", {"N": "40,80"}, scheduler="serial", fields="m", progress=False)
    with pytest.raises(SweepError, match="unknown field; choose from m, u, alpha"):
        mp.sweep("lqg", {"beta": "1"}, scheduler="serial", fields="rho", progress=False)


def test_progress_lines_and_quiet():
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("mfg_pde.sweep")
    log.addHandler(handler)
    try:
        mp.sweep("lqg", {"N": "10,40"}, {"Nt": 10}, scheduler="serial", progress=True)
        shown = list(lines)
        lines.clear()
        mp.sweep("lqg", {"N": "10,40"}, {"Nt": 10}, scheduler="serial", progress=False)
    finally:
        log.removeHandler(handler)
    text = "\n".join(shown)
    assert "sweep lqg over N[2]: 2 points" in text
    assert "point N=10 failed: ValueError" in text
    assert "sweep: 2/2 points (1 failed, 0 not converged), elapsed" in text and "eta" in text
    assert lines == []


def test_cli_sweep(tmp_path, capsys):
    out = str(tmp_path / "cli.nc")
    rc = cli.main(["sweep", "lqg", "--vary", "N,Nt=40:10,80:20", "--vary", "beta=geomspace(1,4,3)",
                   "--set", "sigma=0.7", "--out", out, "--scheduler", "serial", "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    assert f"wrote {out}: 6 of 6 points; 6 converged, 0 not converged, 0 failed" in captured.out
    assert captured.err == ""
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert dict(ds.sizes) == {"N": 2, "beta": 3} and ds.Nt.dims == ("N",) and ds.Nt.values.tolist() == [10, 20]
        assert json.loads(ds.attrs["sweep_params"])["sigma"] == 0.7
    # a point the case rejects (beta must be >= 0): recorded, the others run, exit status 1
    rc = cli.main(["sweep", "lqg", "--vary", "beta=-1,1", "--set", "N=40", "--set", "Nt=10", "--out",
                   str(tmp_path / "bad.nc"), "--scheduler", "serial", "-q"])
    assert rc == 1
    assert "beta=-1.0: failed: CaseError: parameter beta=-1.0: must be >= 0" in capsys.readouterr().out
    for argv, message in [
        (["sweep", "lqg", "--vary", "beta", "--out", out], "--vary 'beta': expected NAME=VALUES"),
        (["sweep", "lqg", "--out", out], "needs at least one --vary"),
        (["sweep", "lqg", "--vary", "beta=1", "--vary", "beta=2", "--out", out], "--vary beta: given twice"),
        (["sweep", "lqg", "--vary", "beta=1"], "the following arguments are required: --out"),
        (["sweep", "lqg", "--vary", "beta=1", "--out", str(tmp_path / "no" / "s.nc")], "does not exist"),
        (["sweep", "nope", "--vary", "beta=1", "--out", out], "unknown case 'nope'"),
        (["sweep", "lqg", "--vary", "beta=1", "--out", out, "--workers", "0"], "--workers 0: need at least 1"),
    ]:
        assert cli.main(argv) == 2
        assert message in capsys.readouterr().err


def test_import_mfg_pde_loads_neither_dask_nor_xarray():
    code = ("import sys, mfg_pde, mfg_pde.cli, mfg_pde.sweeps; mfg_pde.sweep; "
            "print(sorted(m for m in ('dask', 'distributed', 'xarray', 'h5netcdf') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
