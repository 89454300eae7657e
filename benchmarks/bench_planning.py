"""Speed of the planning solver (issue: planning problem).  Prints measured figures and targets.
Run:  python benchmarks/bench_planning.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc


sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402
from mfg_pde.cases.planning import bimodal_ends  # noqa: E402


def timed(pb, **kw):
    tracemalloc.start()
    t0 = time.perf_counter()
    r = mp.solve_planning(pb, **kw)
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return r, wall, peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the 2-D 201^2 x 200 run")
    args = ap.parse_args(argv)
    rows = []
    # warm-up: load/compile kernels
    g = mp.Grid([(-6, 6)], 101)
    mp.solve_planning(mp.PlanningProblem(g, 1.0, 20, 1.0, *bimodal_ends(g), coupling=mp.QuadraticInteraction(4.0)))
    g2 = mp.Grid([(-3, 3)] * 2, 20)
    mp.solve_planning(mp.PlanningProblem(g2, 1.0, 5, 1.0, mp.gaussian(g2, -0.5, 0.5), mp.gaussian(g2, 0.5, 0.5),
                                         coupling=mp.QuadraticInteraction(1.0)))

    grid = mp.Grid([(-6, 6)], 801)
    m0, m1 = bimodal_ends(grid)
    pb = mp.PlanningProblem(grid, 1.0, 800, 1.0, m0, m1, coupling=mp.QuadraticInteraction(4.0))
    best = None
    for _ in range(3):
        r, wall, peak = timed(pb, tol=1e-10, sinkhorn_tol=1e-10)
        best = wall if best is None else min(best, wall)
    sweeps = int(r.history["sinkhorn_iterations"].sum())
    nodes = grid.size * (pb.Nt + 1)
    rows.append(("1-D planning 801x800, bimodal ends, beta = 4, sigma = 1",
                 f"{best:.2f} s, {r.iterations} outer, {sweeps} Sinkhorn, mismatch {r.planning.terminal_mismatch:.0e}",
                 "< 2 s", r.converged and best < 2.0,
                 f"mean change {r.history['mean_change'][-1]:.1e}, {best / (2 * sweeps * nodes) * 1e9:.1f} ns/node/sweep, "
                 f"peak {peak / 2**20:.0f} MiB"))
    print(rows[-1], flush=True)

    if not args.quick:
        grid = mp.Grid([(-4, 4)] * 2, 201)
        m0 = mp.gaussian_mixture(grid, [0.6, 0.4], [(-1.5, -1.0), (0.5, 1.0)], [(0.55, 0.45), (0.45, 0.55)])
        m1 = mp.gaussian_mixture(grid, [0.3, 0.7], [(1.5, -0.5), (0.5, 1.5)], [(0.45, 0.45), (0.55, 0.45)])
        pb = mp.PlanningProblem(grid, 1.0, 200, 1.0, m0, m1, coupling=mp.QuadraticInteraction(4.0))
        r, wall, peak = timed(pb, tol=1e-10, sinkhorn_tol=1e-10)
        sweeps = int(r.history["sinkhorn_iterations"].sum())
        rows.append(("2-D planning 201x201x200, bimodal ends, beta = 4", f"{wall:.1f} s, {r.iterations} outer, "
                     f"{sweeps} Sinkhorn, mismatch {r.planning.terminal_mismatch:.0e}", "< 60 s",
                     r.converged and wall < 60, f"peak {peak / 2**20:.0f} MiB"))
        print(rows[-1], flush=True)

    print(f"\n{'benchmark':<58} {'measured':<58} {'target':<8} {'met':<4} detail")
    for name, fig, tgt, ok, detail in rows:
        print(f"{name:<58} {fig:<58} {tgt:<8} {'yes' if ok else 'NO':<4} {detail}")


if __name__ == "__main__":
    main()
