"""First-run compilation (empty numba cache): ``mfg-pde run lqg`` with and without the parallel compile of the
forward kernels (``fd.warm``), and a small 1-D solve with a general Hamiltonian (Power(1.5)).  Run:

    python benchmarks/bench_compile.py [rounds] [tree ...]

(trees: source checkouts to time in turn, interleaved -- e.g. this one and a checkout of main; default this one)

Each run is a fresh process with a fresh NUMBA_CACHE_DIR; wall time and CPU time (user + sys, the helper
process included) are printed per run with the 1-minute load average before it, then the medians.  The
machine's other load changes wall times a lot on a 2-core machine: compare versions interleaved.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GENERAL = """
import numpy as np
import mfg_pde as mp
g = mp.Grid([(0.0, 1.0)], 40)
p = mp.MFGProblem(g, 1.0, 20, 0.6, mp.gaussian(g, 0.5, 0.1), coupling=mp.LocalPower(1.0), hamiltonian=mp.Power(1.5))
mp.solve(p, max_iter=30)
"""

CASES = {
    "run lqg (parallel compile)": (["-m", "mfg_pde.cli", "run", "lqg", "-q"], "1"),
    "run lqg (one process)": (["-m", "mfg_pde.cli", "run", "lqg", "-q"], "0"),
    "1-D Power(1.5), 30 iterations": (["-c", GENERAL], "1"),
}


def one(root, args, parallel):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, MFG_PDE_PARALLEL_COMPILE=parallel,
                   PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        load = os.getloadavg()[0]
        c0 = os.times()
        t0 = time.perf_counter()
        subprocess.run([sys.executable] + args, env=env, cwd=root, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        c1 = os.times()
        cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    return wall, cpu, load


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    trees = [os.path.abspath(t) for t in sys.argv[2:]] or [ROOT]
    res = {(t, name): [] for t in trees for name in CASES}
    for r in range(rounds):
        for name, (args, parallel) in CASES.items():
            for t in trees:
                wall, cpu, load = one(t, args, parallel)
                res[t, name].append((wall, cpu))
                print(f"round {r + 1}  {t:<18} {name:<28} wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                      f"(load before {load:.2f})", flush=True)
    print("medians:")
    for (t, name), v in res.items():
        w = statistics.median(x[0] for x in v)
        c = statistics.median(x[1] for x in v)
        target = "  target < 20 s" if name.startswith("run lqg (parallel") else ""
        print(f"  {t:<18} {name:<28} wall {w:6.1f} s  cpu {c:6.1f} s{target}")


if __name__ == "__main__":
    main()
