"""Cost of the general convex Hamiltonians against the quadratic one (issue: "a non-quadratic Hamiltonian
costs at most 2x the quadratic one per coupled iteration").  Run:  python benchmarks/bench_hamiltonians.py

The same problem (1-D 1000 x 1000 and 2-D 201^2 x 100; sigma, m0, the local coupling F = m and a cos
potential) is solved with each Hamiltonian by the default loop; each solve runs twice after a warm-up
solve (the kernels are compiled then: the compile time is printed apart), and the faster run is kept.
Per coupled iteration: wall time / iterations, the ratio to the quadratic Hamiltonian, the mean inner
Newton iterations per time step (a Hamiltonian whose h' is not Lipschitz needs more), and ns per
space-time node per iteration.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402

HAMS = {
    "quadratic": None,
    "power q=1.5": lambda: mp.Power(1.5),
    "power q=1.8": lambda: mp.Power(1.8),
    "bounded a_max=0.5": lambda: mp.BoundedControl(0.5),
    "congestion c=1": lambda: mp.Congestion(c=1.0),
}


def problem(d, ham):
    if d == 1:
        grid, Nt = mp.Grid([(0.0, 1.0)], 1000), 1000
        V = lambda x, t: np.cos(2 * np.pi * x)  # noqa: E731
        m0 = mp.gaussian(grid, 0.5, 0.1)
    else:
        grid, Nt = mp.Grid([(0.0, 1.0)] * 2, 201), 100
        V = lambda x, y, t: np.cos(2 * np.pi * x) * np.cos(2 * np.pi * y)  # noqa: E731
        m0 = mp.gaussian(grid, (0.5, 0.5), 0.12)
    kw = {} if ham is None else {"hamiltonian": ham()}
    return mp.MFGProblem(grid, 1.0, Nt, 0.6, m0, coupling=mp.LocalPower(1.0), potential=V, **kw)


def measure(pb):
    t0 = time.perf_counter()
    r = mp.solve(pb, tol=1e-8)
    first = time.perf_counter() - t0
    best = None
    for _ in range(2):
        t0 = time.perf_counter()
        r = mp.solve(pb, tol=1e-8)
        w = time.perf_counter() - t0
        best = w if best is None else min(best, w)
    its = r.iterations
    newton = float(np.mean(r.history["newton_max"]))
    return r, best, first - best, its, newton


def main():
    print(f"{'problem':<10} {'Hamiltonian':<20} {'status':<10} {'its':>4} {'s/it':>8} {'ratio':>6} {'newton max':>11} "
          f"{'ns/node/it':>10} {'compile s':>9}  target (ratio <= 2)")
    for d in (1, 2):
        base = None
        for name, ham in HAMS.items():
            pb = problem(d, ham)
            r, wall, compile_s, its, newton = measure(pb)
            per = wall / max(its, 1)
            base = per if base is None else base
            nodes = pb.grid.size * (pb.Nt + 1)
            print(f"{d}-D{'':<7} {name:<20} {'conv' if r.converged else 'NOT':<10} {its:>4} {per:>8.4f} "
                  f"{per / base:>6.2f} {newton:>11.2f} {1e9 * per / nodes:>10.1f} {compile_s:>9.1f}  "
                  f"{'-' if ham is None else ('met' if per / base <= 2.0 else 'MISSED')}", flush=True)


if __name__ == "__main__":
    main()
