"""Newton on the congestion planning problem H = |p|^2 / (2 (1 + c m)) (planning.congestion).

Prints one row per (grid, c): Newton iterations (all continuation stages), the c values solved, wall time
(including the Sinkhorn start), final relative residual, mass error, and time per Newton step; then the
c = 0 distance to the Sinkhorn solution.  Case: floored Gaussian bridge N(-1, 0.5^2) -> N(1.5, 0.4^2) on
[-4, 4], T = 1, sigma = 0.7 (``planning-congestion`` defaults), N = Nt.

Run:  python benchmarks/bench_planning_newton.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402
from mfg_pde.cases.planning_congestion import floored_gaussian  # noqa: E402
from mfg_pde.planning.congestion import solve_planning_newton  # noqa: E402


def problem(N, coupling=None):
    g = mp.Grid([(-4.0, 4.0)], N)
    return mp.PlanningProblem(g, 1.0, N, 0.7, floored_gaussian(g, -1.0, 0.5, 1e-3),
                              floored_gaussian(g, 1.5, 0.4, 1e-3), coupling=coupling)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="grids up to 200 only")
    args = ap.parse_args(argv)
    sizes = (50, 100, 200) if args.quick else (50, 100, 200, 400)
    cs = (0.0, 1.0, 5.0, 20.0)
    solve_planning_newton(problem(30), c=1.0)  # warm-up: numba kernels of the Sinkhorn start

    head = f"{'N x Nt':>10} {'coupling':>9} {'c':>5} {'newton':>6} {'stages':>22} {'wall s':>7} {'s/step':>7} " \
           f"{'residual':>9} {'mass err':>9} {'status':>9}"
    print(head)
    print("-" * len(head))
    rows = [(N, None, c) for N in sizes for c in cs] + [(200, "mean", 5.0)]
    for N, coup, c in rows:
        pb = problem(N, mp.QuadraticInteraction(2.0) if coup == "mean" else None)
        t0 = time.perf_counter()
        r = solve_planning_newton(pb, c=c)
        wall = time.perf_counter() - t0
        steps = max(r.iterations, 1)
        stages = ",".join(f"{x:g}" for x in r.planning.stages)
        print(f"{f'{N}x{N}':>10} {coup or '-':>9} {c:5g} {r.iterations:6d} {stages:>22} {wall:7.2f} "
              f"{wall / steps:7.3f} {r.final_residual:9.1e} {r.mass_error():9.1e} "
              f"{'ok' if r.converged else 'FAILED':>9}", flush=True)

    print("\nc = 0 vs the Hopf-Cole/Sinkhorn planning solver (different discretisations: first order apart)")
    head = f"{'N x Nt':>10} {'L1 m (space-time)':>18} {'order':>6} {'m-weighted L1 alpha':>20} {'order':>6} " \
           f"{'newton s':>9} {'sinkhorn s':>10}"
    print(head)
    print("-" * len(head))
    prev = None
    for N in sizes:
        pb = problem(N)
        t0 = time.perf_counter()
        r = solve_planning_newton(pb)
        tn = time.perf_counter() - t0
        t0 = time.perf_counter()
        s = mp.solve_planning(pb)
        ts = time.perf_counter() - t0
        g, dt = pb.grid, pb.dt
        dm = float(g.integrate(np.abs(r.m - s.m)).sum() * dt)
        w = 0.5 * (r.m + s.m)[:-1]
        da = float(g.integrate(w * np.abs(r.alpha - s.alpha)[:-1, :, 0]).sum() * dt)
        o1 = f"{np.log2(prev[0] / dm):6.2f}" if prev else f"{'':6}"
        o2 = f"{np.log2(prev[1] / da):6.2f}" if prev else f"{'':6}"
        print(f"{f'{N}x{N}':>10} {dm:18.3e} {o1} {da:20.3e} {o2} {tn:9.2f} {ts:10.2f}", flush=True)
        prev = (dm, da)


if __name__ == "__main__":
    main()
