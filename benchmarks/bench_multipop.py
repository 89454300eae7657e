"""Several populations: every coupling loop on the joint density, and what coupling K populations costs.

Rows:

* two-crowds (the registered case: mirror-image crowds, congestion a = 1 within a crowd, aversion b to the other),
  1-D 120 x 60 at b = 0.5 (monotone) and b = 3 (segregation, not monotone), 2-D 40^2 x 30 at b = 3;
* lq-two-populations (two LQ populations interacting through their means), 1-D 200 x 200;
* decoupled: the two crowds with b = 0, solved jointly and as two single-population solves (the price of the
  joint loop where nothing couples the populations);
* types with switching: lq-switching-time (two LQ types, 1-D 200 x 100) in the method table (Newton does not take
  switching: "--"), and the cost of one coupled iteration of the two crowds as switching types against the
  same crowds without switching (the joint sweeps visit the types inside the time loop).

Each method runs to tol = 1e-10 with a wall-clock cap per run (--cap seconds, default 60).  A cell reads
"iterations / seconds" (best of 3 runs when under 1 s) or "-- (status)".  Times are wall-clock after a warm-up
solve (numba kernels compiled or loaded), on whatever machine runs it (the reference machine has 2 cores).

Run:  python benchmarks/bench_multipop.py [--cap SECONDS]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402
from mfg_pde.cases import get  # noqa: E402
from mfg_pde.cases.switching import lq_switching_problem  # noqa: E402
from mfg_pde.cases.two_crowds import crowd_problem, lq_problem  # noqa: E402

METHODS = ("picard", "fictitious-play", "anderson", "newton", "auto")
TOL = 1e-10


def crowds(dim, N, Nt, b):
    p = get("two-crowds").resolve({"dim": dim, "N": N, "Nt": Nt, "b": b})
    return crowd_problem(p)


def timed(problem, method, cap):
    def stop_at_cap(_k, _rec, t0=time.perf_counter()):
        return time.perf_counter() - t0 > cap

    best, r = None, None
    for _ in range(3):
        t0 = time.perf_counter()
        try:
            r = mp.solve(problem, method=method, tol=TOL, callback=stop_at_cap)
        except NotImplementedError:
            return None, float("nan")
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
        if dt > 1.0 or not r.converged:
            break
    return r, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap", type=float, default=60.0)
    args = ap.parse_args()
    rows = [("two-crowds 1-D 120x60, b = 0.5", crowds(1, 120, 60, 0.5)),
            ("two-crowds 1-D 120x60, b = 3", crowds(1, 120, 60, 3.0)),
            ("two-crowds 2-D 40^2x30, b = 3", crowds(2, 40, 30, 3.0)),
            ("lq-two-populations 200x200", lq_problem(200, 200)),
            ("lq-switching-time 200x100", lq_switching_problem(200, 100))]
    mp.solve(crowds(1, 20, 10, 1.0), method="newton")   # warm-up (kernels)
    print(f"{'problem':34s} " + " ".join(f"{m:>18s}" for m in METHODS))
    for name, pb in rows:
        cells = []
        for method in METHODS:
            r, dt = timed(pb, method, args.cap)
            cells.append("-- (no newton)" if r is None else
                         f"{r.iterations} / {dt:.2f}s" if r.converged else f"-- ({r.status[:12]})")
        print(f"{name:34s} " + " ".join(f"{c:>18s}" for c in cells))
    pb = crowds(1, 240, 120, 0.0)
    for method in ("anderson", "newton"):
        rj, tj = timed(pb, method, args.cap)
        singles = [timed(pop, method, args.cap) for pop in pb.populations]
        ts = sum(dt for _, dt in singles)
        print(f"decoupled 1-D 240x120, {method:8s}: joint {rj.iterations} it / {tj:.3f} s, two single solves "
              f"{'+'.join(str(r.iterations) for r, _ in singles)} it / {ts:.3f} s (ratio {tj / ts:.2f})")
    plain = crowds(1, 240, 120, 0.5)
    typed = mp.MultiPopulationProblem(plain.populations, coupling=plain.coupling, switching=[[-1.0, 1.0], [1.0, -1.0]])
    per = {}
    for label, pb in (("two populations", plain), ("two switching types", typed)):
        r, dt = timed(pb, "picard", args.cap)
        per[label] = dt / r.iterations
        print(f"per coupled iteration, 1-D 240x120 crowds (picard), {label:19s}: {1e3 * per[label]:.2f} ms "
              f"({r.iterations} it, {r.status[:9]})")
    print(f"switching / no switching per iteration: {per['two switching types'] / per['two populations']:.2f}")


if __name__ == "__main__":
    main()
