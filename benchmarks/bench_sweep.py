"""Sweeps on Dask: 8 independent solves of about 2 s each, serial (this process) vs a LocalCluster of 2
worker processes (one thread each), and the per-task overhead once the workers are warm.

  serial      ``mp.sweep(..., scheduler="serial")``: the points one after another in this process
  cluster     ``mp.sweep(..., client=client)`` on a 2-process LocalCluster started (and warmed up) beforehand;
              its start-up time is printed apart
  overhead    16 trivial points (lqg at N = 40, Nt = 10: ~10 ms of compute each) through the sweep on the warm
              cluster: (wall - serial compute / workers) / points; and the bare Dask round trip of one no-op
              task (submit -> result, one at a time)

The study is lqg over beta (8 values) at N = Nt = --n (default 1500: about 2 s per solve on the 2-core
development machine; the script prints the measured serial time per point).  Both runs write their netCDF
checkpoints as ``mfg-pde sweep`` does.  The identical numbers (every scalar but the timings) are checked.

Run:  PYTHONPATH=. python benchmarks/bench_sweep.py [--n 1500] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

# this process computes like a worker (one thread for BLAS and numba): a fair serial baseline, and bitwise the
# same numbers (a multi-threaded BLAS sums in another order, at round-off)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402


def same_numbers(a, b) -> bool:
    for name in a.data_vars:
        if name in ("finished", "worker", "run_time", "wall_time"):
            continue
        x, y = a[name].values, b[name].values
        if x.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif x.tolist() != y.tolist():
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500, help="N = Nt of the lqg solves (default 1500: ~2 s each)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = ap.parse_args()
    import distributed

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(os.path.abspath(
        mp.__file__))), os.environ.get("PYTHONPATH")) if p)
    vary = {"beta": "linspace(1, 4, 8)"}
    fixed = {"N": args.n, "Nt": args.n, "method": "anderson"}
    tiny_vary, tiny_fixed = {"beta": "linspace(1, 4, 16)"}, {"N": 40, "Nt": 10, "method": "anderson"}
    tmp = tempfile.mkdtemp(prefix="bench_sweep-")

    load0 = os.getloadavg()[0]
    mp.cases.get("lqg").run({"N": 40, "Nt": 10})            # this process: kernels loaded (as the workers')
    t0 = time.perf_counter()
    serial = mp.sweep("lqg", vary, fixed, scheduler="serial", out=os.path.join(tmp, "serial.nc"), progress=False)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    tiny_serial = mp.sweep("lqg", tiny_vary, tiny_fixed, scheduler="serial", progress=False)
    t_tiny_serial = time.perf_counter() - t0

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                                       env={"NUMBA_NUM_THREADS": "1"})
    client = distributed.Client(cluster)
    from mfg_pde.sweeps.run import _register_warm_up

    _register_warm_up(client)
    t_start = time.perf_counter() - t0
    warm = client.run(lambda dask_worker: dask_worker.mfg_pde_warm_up_seconds)
    try:
        t0 = time.perf_counter()
        dist = mp.sweep("lqg", vary, fixed, client=client, out=os.path.join(tmp, "cluster.nc"), progress=False)
        t_dist = time.perf_counter() - t0
        t0 = time.perf_counter()
        tiny_dist = mp.sweep("lqg", tiny_vary, tiny_fixed, client=client, progress=False)
        t_tiny = time.perf_counter() - t0
        trips = []
        for _ in range(16):
            t0 = time.perf_counter()
            client.submit(int, 1, pure=False).result()
            trips.append(time.perf_counter() - t0)
    finally:
        client.close()
        cluster.close()

    per_point = float(serial.run_time.mean())
    print(f"lqg, N = Nt = {args.n}, 8 points (beta = 1 ... 4); {args.workers} worker processes, one thread each")
    print(f"  serial (this process)       {t_serial:7.2f} s   ({per_point:.2f} s per solve)")
    print(f"  cluster (warm workers)      {t_dist:7.2f} s   ratio cluster / serial = {t_dist / t_serial:.2f} "
          f"(ideal {1 / args.workers:.2f})")
    counts = {}
    for w in dist.worker.values.ravel():
        counts[w] = counts.get(w, 0) + 1
    busy = float(dist.run_time.sum())
    print(f"  cluster: {float(dist.run_time.mean()):.2f} s per solve (serial {per_point:.2f} s: slower solves mean the "
          f"cores are shared with other jobs); points per worker {sorted(counts.values())}; busy {busy:.1f} s of "
          f"{args.workers} x {t_dist:.1f} s wall = {busy / (args.workers * t_dist):.0%}; load average before / after "
          f"{load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  cluster start-up + warm-up  {t_start:7.2f} s   (workers' warm-up: "
          f"{', '.join(f'{s:.2f}' for s in warm.values())} s; once per worker, not per task)")
    print(f"  identical numbers           {same_numbers(serial, dist) and same_numbers(tiny_serial, tiny_dist)}")
    overhead = (t_tiny - t_tiny_serial / args.workers) / 16
    print(f"overhead, 16 trivial points: cluster {t_tiny:.3f} s, serial {t_tiny_serial:.3f} s -> "
          f"{overhead:.3f} s per task (target < 0.2 s)")
    print(f"  bare Dask round trip of a no-op task: median {1e3 * float(np.median(trips)):.1f} ms")


if __name__ == "__main__":
    main()
