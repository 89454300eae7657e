"""Planning time schemes: accuracy per wall second, implicit Euler vs the second-order default
(crank-nicolson: positive substeps) vs the exact per-axis semigroup (strang).

Prints, for the LQG bridge (closed-form mean, variance and energy) and for the demand-response d = 1
grid check (exact mean-channel gap E_IA0 - E_MF), the error, the observed order and the wall time of
each scheme over a refinement (h and dt halved together), then the d = 2 grid check as validate runs it.
Run:  python benchmarks/bench_planning_schemes.py [--quick]   (--quick: no d = 2 row)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402
from mfg_pde.studies import demand_response as dr  # noqa: E402
from mfg_pde.cases import get  # noqa: E402


def order(e):
    e = np.asarray(e, dtype=float)
    return np.log2(e[:-1] / e[1:])


def bridge_rows():
    case = get("lqg-bridge")
    print("\nLQG bridge (lqg-bridge defaults: beta 2, sigma 0.7, T 1.5): errors vs the closed form")
    print(f"{'scheme':14s} {'N':>5s} {'Nt':>5s} {'mean err':>10s} {'var err':>10s} {'energy err':>10s} {'wall s':>8s}")
    for scheme, steps in (("euler", lambda N: N), ("crank-nicolson", lambda N: N // 5), ("strang", lambda N: N // 5)):
        errs = []
        for N in (100, 200, 400):
            t0 = time.perf_counter()
            run = case.run({"N": N, "Nt": steps(N)}, time_scheme=scheme, sinkhorn_anderson=5)
            wall = time.perf_counter() - t0
            e = case.errors(run.result, run.params)
            errs.append([e["mean"], e["variance"], e["energy E"]])
            print(f"{scheme:14s} {N:5d} {steps(N):5d} {e['mean']:10.2e} {e['variance']:10.2e} {e['energy E']:10.2e} "
                  f"{wall:8.2f}", flush=True)
        o = order(np.array(errs))
        print(f"{'':8s} observed orders (mean, var, energy): " + "; ".join(", ".join(f"{x:.2f}" for x in r) for r in o))


def dr_rows(d, schemes):
    sc = dr.zone_scenario(d)
    print(f"\ndemand response d = {d} on the grid: E_IA0 - E_MF vs the exact mean-channel gap")
    print(f"{'scheme':14s} {'levels':>26s} {'raw gap errors':>22s} {'order':>6s} {'Richardson rel. err':>20s} {'wall s':>8s}")
    for scheme, N, Nt in schemes:
        dg = dr.default_grid(d, scheme)
        t0 = time.perf_counter()
        gr = dr.grid_crosscheck(sc, N=N, Nt=Nt, levels=2, box=dg["box"], time_scheme=scheme)
        wall = time.perf_counter() - t0
        lo, hi = gr["levels"]
        ex = hi["gap_exact"]["IA0"]
        levels = f"({N}, {Nt}) -> ({2 * N}, {2 * Nt})"
        raw = f"{lo['gap_error']['IA0']:.3f} -> {hi['gap_error']['IA0']:.3f}"
        rel = abs(gr["gap_richardson"]["IA0"] - ex) / ex
        print(f"{scheme:14s} {levels:>26s} {raw:>22s} {gr['gap_order']['IA0'][0]:6.2f} {rel:20.2e} {wall:8.1f}", flush=True)
        for L in gr["levels"]:
            print(f"{'':8s}   N = {L['N']}: " + ", ".join(
                f"{g} {L['wall'][g]:.1f} s ({L['outer_iterations'][g]} outer, {L['sinkhorn_iterations'][g]} Sinkhorn)"
                for g in L["wall"]), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the d = 2 grid check (~1.5 min)")
    args = ap.parse_args(argv)
    g = mp.Grid([(-3, 3)], 50)  # warm-up: kernels compiled or loaded from the cache
    mp.solve_planning(mp.PlanningProblem(g, 1.0, 8, 1.0, mp.gaussian(g, -0.5, 0.5), mp.gaussian(g, 0.5, 0.5)),
                      time_scheme="strang")
    bridge_rows()
    dr_rows(1, [("euler", 200, 800), ("crank-nicolson", 200, 48), ("strang", 200, 48)])
    if not args.quick:
        dr_rows(2, [("strang", 200, 48)])


if __name__ == "__main__":
    main()
