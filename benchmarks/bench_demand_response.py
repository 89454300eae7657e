"""Demand-response benchmark: the closed-form d-sweep (target: d = 1, 2, 4, 8, 16, 32 in under 10 s on 2 cores),
the sub-population sweep, the agent route and the 1-D grid cross-check.

    PYTHONPATH=. python benchmarks/bench_demand_response.py [--samples 100000] [--quick]

Prints wall times and the reproduced table (closed form +- MC s.e., agents +- s.e., paper).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TARGET_S = 10.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100000, help="closed-form Monte-Carlo samples per scenario")
    ap.add_argument("--agents", type=int, default=4000, help="agents per batch")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--n-steps", type=int, default=1000, dest="n_steps")
    ap.add_argument("--quick", action="store_true", help="closed form only (no agents, no grid)")
    args = ap.parse_args(argv)

    import numba

    from mfg_pde.studies import demand_response as dr

    print(f"numba {numba.__version__}, {numba.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)
    t0 = time.perf_counter()
    dr.closed_form_energies(dr.zone_scenario(2), samples=200, seed=0)      # compile / load the cache
    print(f"first call (kernel compile or cache load): {time.perf_counter() - t0:.2f} s", flush=True)

    ds = (1, 2, 4, 8, 16, 32)
    t0 = time.perf_counter()
    cfs = {d: dr.closed_form_energies(dr.zone_scenario(d), samples=args.samples, seed=d) for d in ds}
    sweep = time.perf_counter() - t0
    ok = sweep < TARGET_S
    print(f"closed-form d-sweep {ds}, {args.samples} samples each, {cfs[1].n_nodes} nodes: {sweep:.2f} s "
          f"(target < {TARGET_S:g} s: {'PASS' if ok else 'FAIL'})", flush=True)
    for d in ds:
        print(f"  d = {d:2d}: {cfs[d].wall_time:.2f} s", flush=True)
    t0 = time.perf_counter()
    cks = {K: dr.closed_form_energies(dr.subpop_scenario(K), samples=args.samples, seed=100 + K) for K in (2, 3, 4, 8)}
    print(f"closed-form K-sweep (2, 3, 4, 8; d = 4): {time.perf_counter() - t0:.2f} s", flush=True)

    ags = {}
    if not args.quick:
        for d in ds:
            ags[d] = dr.agent_energies(dr.zone_scenario(d), N=args.agents, batches=args.batches, n_steps=args.n_steps,
                                       seed=d)
            print(f"agents d = {d:2d}: {args.batches} x {args.agents} agents x 3 guidances, Richardson "
                  f"{args.n_steps // 2}/{args.n_steps} steps: {ags[d].wall_time:.2f} s", flush=True)
        for K in (2, 3, 4, 8):
            ags[("K", K)] = dr.agent_energies(dr.subpop_scenario(K), N=args.agents, batches=args.batches,
                                              n_steps=args.n_steps, seed=100 + K)
            print(f"agents K = {K}: {ags[('K', K)].wall_time:.2f} s", flush=True)
        t0 = time.perf_counter()
        gr = dr.grid_crosscheck(dr.zone_scenario(1), N=200, Nt=800, levels=2)
        print(f"grid cross-check d = 1, (200, 800) -> (400, 1600), 3 guidances: {time.perf_counter() - t0:.2f} s; "
              f"gap orders " + ", ".join(f"{g} {o[-1]:.2f}" for g, o in gr["gap_order"].items()), flush=True)

    def pm(v, e, p=3):
        return f"{v:.{p}f} +- {e:.{p}f}"

    print()
    print("per-zone E/d (E = int E|alpha|^2 dt, no 1/2) and saving vs IA0")
    head = f"{'':10s} {'route':22s} {'MF':>18s} {'IA0':>18s} {'IAm':>18s} {'saving vs IA0 %':>16s}"
    print(head)
    print("-" * len(head))
    for key in list(ds) + [("K", K) for K in (2, 3, 4, 8)]:
        if isinstance(key, tuple):
            cf, name, pr = cks[key[1]], f"K={key[1]}", {"saving_IA0": dr.PAPER_SUBPOP_SAVING[key[1]]}
        else:
            cf, name, pr = cfs[key], f"d={key}", dict(zip(("MF", "IA0", "IAm", "saving_IA0"), dr.PAPER_TABLE[key]))
        print(f"{name:10s} {'closed form':22s} " + " ".join(f"{pm(cf.E_best[g], cf.fluct_se):>18s}" for g in dr.GUIDANCES)
              + f" {pm(100 * cf.saving['IA0'], 100 * cf.saving_se['IA0'], 2):>16s}")
        if key in ags:
            ag = ags[key]
            print(f"{'':10s} {f'agents {ag.batches}x{ag.N}':22s} " +
                  " ".join(f"{pm(ag.E[g], ag.E_se[g]):>18s}" for g in dr.GUIDANCES) +
                  f" {pm(100 * ag.saving['IA0'], 100 * ag.saving_se['IA0'], 2):>16s}")
        print(f"{'':10s} {'paper':22s} " + " ".join(f"{pr[g]:>18.3f}" if g in pr else f"{'-':>18s}" for g in dr.GUIDANCES)
              + f" {pr['saving_IA0']:>16.1f}")
        if "MF" in pr:
            r = [pr[g] / cf.E_best[g] for g in dr.GUIDANCES]
            print(f"{'':10s} {'paper / closed form':22s} " + " ".join(f"{x:>18.4f}" for x in r))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
