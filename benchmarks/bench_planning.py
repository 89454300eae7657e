"""Speed of the planning solver: the second-order default (time_scheme auto = crank-nicolson) next to the
first-order implicit-Euler sweeps, on the problems of the planning targets.  Prints measured figures:
wall and CPU seconds (best of the repeats), outer and Sinkhorn iterations, ns per space-time node per
sweep, peak memory (tracemalloc), the energy and, where a closed form exists, its relative error; the
kernels' compile time is reported apart (a warm-up solve).

Run:  python benchmarks/bench_planning.py [--quick]      (--quick: no 2-D rows)
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
from mfg_pde.oracles import analytic  # noqa: E402
from mfg_pde.studies import demand_response as dr  # noqa: E402


def timed(pb, repeats=1, **kw):
    best = None
    for _ in range(repeats):
        tracemalloc.start()
        t0, c0 = time.perf_counter(), time.process_time()
        r = mp.solve_planning(pb, **kw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if best is None or wall < best[1]:
            best = (r, wall, cpu, peak)
    return best


def fixed_centre_ends(grid):
    return mp.gaussian(grid, 3.16, 0.6), mp.gaussian(grid, 0.66, 0.3)


def fixed_centre_energy(pb, beta):
    g = pb.grid
    mu0, mu1 = g.mean(pb.m0)[0], g.mean(pb.m1)[0]
    v0, v1 = g.covariance(pb.m0)[0, 0], g.covariance(pb.m1)[0, 0]
    br = analytic.lqg_bridge(pb.t, T=pb.T, sigma=pb.sigma, mean0=mu0, var0=v0, mean1=mu1, var1=v1, beta=beta)
    return analytic.ia_mean_energy(T=pb.T, beta=beta, mean0=mu0, mean1=mu1, nu=0.0) + br["energy_fluct"]


def row(name, pb, target, repeats, extra=None, **kw):
    out = []
    for scheme in ("auto", "euler"):
        r, wall, cpu, peak = timed(pb, repeats, time_scheme=scheme, **kw)
        sweeps = int(r.planning.sinkhorn_iterations_total)
        nodes = pb.grid.size * (pb.Nt + 1)
        ran = r.solver["time_scheme"] + (f" (substeps {r.solver['substeps']})" if r.solver["substeps"] else "")
        detail = (f"{r.iterations} outer, {sweeps} Sinkhorn, {wall / (2 * sweeps * nodes) * 1e9:.1f} ns/node/sweep, "
                  f"peak {peak / 2**20:.0f} MiB, E = {r.planning.energy_E:.6f}")
        if extra is not None:
            detail += f", {extra(r)}"
        met = "yes" if (r.converged and wall < target) else "NO"
        out.append((f"{name} [{ran}]", f"{wall:.2f} s wall, {cpu:.2f} s CPU", f"< {target:g} s" if scheme == "auto" else "-",
                    met if scheme == "auto" else "-", detail))
        print(" | ".join(out[-1]), flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the 2-D rows")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the 1-D rows (best wall time)")
    args = ap.parse_args(argv)
    rows = []
    # warm-up: compile the kernels or load them from the cache, timed apart
    t0 = time.perf_counter()
    g = mp.Grid([(-6, 6)], 101)
    for scheme in ("auto", "euler"):
        mp.solve_planning(mp.PlanningProblem(g, 1.0, 20, 1.0, *bimodal_ends(g), coupling=mp.QuadraticInteraction(4.0)),
                          time_scheme=scheme)
    g2 = mp.Grid([(-3, 3)] * 2, 20)
    for scheme in ("auto", "euler"):
        mp.solve_planning(mp.PlanningProblem(g2, 1.0, 5, 1.0, mp.gaussian(g2, -0.5, 0.5), mp.gaussian(g2, 0.5, 0.5),
                                             coupling=mp.QuadraticInteraction(1.0)), time_scheme=scheme)
    print(f"warm-up (kernel compile or cache load): {time.perf_counter() - t0:.1f} s", flush=True)

    grid = mp.Grid([(-3, 10)], 800)
    m0, m1 = fixed_centre_ends(grid)
    pb = mp.PlanningProblem(grid, 1.0, 400, 1.0, m0, m1, coupling=mp.QuadraticInteraction(12.0))
    rows += row("1-D 800x400 MF, beta 12, N(3.16,.6^2)->N(.66,.3^2)", pb, 2.0, args.repeats)
    ia = mp.PlanningProblem(grid, 1.0, 400, 1.0, m0, m1, coupling=mp.FixedGuidance(12.0, centre=0.0))
    ref = fixed_centre_energy(ia, 12.0)
    rows += row("1-D 800x400 fixed centre 0 (same ends)", ia, 2.0, args.repeats,
                extra=lambda r: f"E rel. error vs closed form {(r.planning.energy_E - ref) / ref:+.2e}")
    grid = mp.Grid([(-6, 6)], 801)
    pb = mp.PlanningProblem(grid, 1.0, 800, 1.0, *bimodal_ends(grid), coupling=mp.QuadraticInteraction(4.0))
    rows += row("1-D 801x800 bimodal ends, beta 4", pb, 2.0, args.repeats, tol=1e-10, sinkhorn_tol=1e-10)

    if not args.quick:
        grid = mp.Grid([(-4, 4)] * 2, 201)
        m0 = mp.gaussian_mixture(grid, [0.6, 0.4], [(-1.5, -1.0), (0.5, 1.0)], [(0.55, 0.45), (0.45, 0.55)])
        m1 = mp.gaussian_mixture(grid, [0.3, 0.7], [(1.5, -0.5), (0.5, 1.5)], [(0.45, 0.45), (0.55, 0.45)])
        pb = mp.PlanningProblem(grid, 1.0, 200, 1.0, m0, m1, coupling=mp.QuadraticInteraction(4.0))
        rows += row("2-D 201x201x200 bimodal ends, beta 4", pb, 30.0, 1, tol=1e-10, sinkhorn_tol=1e-10)
        sc = dr.zone_scenario(2)
        dg = dr.default_grid(2)
        t0, c0 = time.perf_counter(), time.process_time()
        gr = dr.grid_crosscheck(sc, N=dg["N"], Nt=dg["Nt"], levels=2, box=dg["box"], ratio=dg["ratio"])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        lv = gr["levels"]
        per = "; ".join(f"N={L['N']}: " + ", ".join(f"{k} {L['wall'][k]:.1f} s ({L['sinkhorn_iterations'][k]} Sinkhorn)"
                                                  for k in L["wall"]) for L in lv)
        rows.append((f"d = 2 demand-response grid check ({lv[0]['N']},{lv[0]['Nt']})->({lv[-1]['N']},{lv[-1]['Nt']}) [{gr['time_scheme']}]",
                     f"{wall:.1f} s wall, {cpu:.1f} s CPU", "< 10 s", "yes" if wall < 10 else "NO",
                     f"gap order {gr['gap_order']['IA0'][0]:.2f}; {per}"))
        print(" | ".join(rows[-1]), flush=True)

    print(f"\n{'benchmark':<78} {'measured':<30} {'target':<8} {'met':<4} detail")
    for name, fig, tgt, ok, detail in rows:
        print(f"{name:<78} {fig:<30} {tgt:<8} {ok:<4} {detail}")


if __name__ == "__main__":
    main()
