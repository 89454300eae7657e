"""Speed of the heterogeneous-agent equilibria (the issue's target: a Huggett or Aiyagari stationary equilibrium on
1000 wealth points x 2 types in under 1 s after compilation).

The household solver is numpy + scipy (banded LAPACK solves), no numba kernels: the "first call" column is the
first solve in the process (imports of scipy.optimize / scipy.linalg and their caches), the later columns the
median and best of --repeat solves of the same equilibrium, each from a cold start (no warm value).  Also
printed: household solves (Brent evaluations of S(r)) and the policy iterations of the last solve.

Run:  python benchmarks/bench_macro.py [--N 1000] [--repeat 5] [--transition]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from mfg_pde import cases
from mfg_pde.newton.equilibrium import solve_equilibrium
from mfg_pde.newton.transition import huggett_transition


def economy(name, N):
    case = cases.get(name)
    return case.economy(case.resolve({"N": N}))


def bench(name, N, repeat):
    t0 = time.perf_counter()
    res = solve_equilibrium(economy(name, N))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = solve_equilibrium(economy(name, N))
        times.append(time.perf_counter() - t0)
    return res, first, times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--transition", action="store_true", help="also time the huggett-transition case's solve")
    args = ap.parse_args(argv)
    print(f"{'economy':9s} {'N x K':>9s} {'first call':>11s} {'median':>9s} {'best':>9s} {'solves':>7s} "
          f"{'policy it':>9s}  {'r*':<12s} target (median < 1 s)")
    for name in ("huggett", "aiyagari"):
        res, first, times = bench(name, args.N, args.repeat)
        print(f"{name:9s} {args.N:>5d} x 2 {first:10.3f}s {statistics.median(times):8.3f}s {min(times):8.3f}s "
              f"{res.evaluations:7d} {res.solution.iterations:9d}  {res.r:.10f} "
              f"{'met' if statistics.median(times) < 1.0 else 'MISSED'}")
    if args.transition:
        case = cases.get("huggett-transition")
        p = case.resolve({})
        old = case.equilibrium(dict(p, curve=0), curve=False)
        new = case.equilibrium(dict(p, curve=0, z1=p["z1_new"]), curve=False)
        t0 = time.perf_counter()
        tr = huggett_transition(old, new, T=p["T"], Nt=p["Nt"], xi=p["xi"], tol=p["tol"])
        print(f"huggett transition N = {p['N']}, Nt = {p['Nt']}: {time.perf_counter() - t0:.2f} s, "
              f"{tr.iterations} price iterations, max |S(t)| = {tr.excess:.2e}")


if __name__ == "__main__":
    main()
