"""Speed of the core solver (issue: core HJB/FP + coupling loop).  Prints a table of measured
figures with the target beside each.  Run:  python benchmarks/bench_core.py [--quick]

Figures are wall-clock on this machine (the reference machine has 2 cores); compile time is
measured separately from solve time (numba kernels are cached on disk after the first run).
ns/node/it = solve time / (space-time nodes x coupled iterations).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402

ROWS = []


def row(name, figure, target, ok, detail=""):
    ROWS.append((name, figure, target, "yes" if ok else "NO", detail))
    print(f"  {name}: {figure}  (target {target})  {detail}", flush=True)


def timed_solve(problem, **kw):
    """Wall time of one solve (untraced), then the peak of traced allocations in a second, traced solve
    (tracemalloc slows every numpy allocation, so it does not run during the timed one)."""
    t0 = time.perf_counter()
    r = mp.solve(problem, **kw)
    wall = time.perf_counter() - t0
    tracemalloc.start()
    mp.solve(problem, **kw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return r, wall, peak


def congestion_1d(N=1000, Nt=1000, sigma=0.6, kappa=1.0):
    """F = kappa m + V(x), V = cos(2 pi x) on [0, 1] reflecting, G = 0, m0 ~ N(0.5, 0.1^2)."""
    grid = mp.Grid([(0.0, 1.0)], N)
    return mp.MFGProblem(grid, 1.0, Nt, sigma, mp.gaussian(grid, 0.5, 0.1), coupling=mp.LocalPower(kappa),
                         potential=lambda x, t: np.cos(2 * np.pi * x))


def reference_1d():
    """The peer package's README 1-D problem (the aggregation reference problem of docs/method.md, section
    'Aggregation couplings'), with the peer's sign: [0, 1],
    reflecting walls, 51 x 20, sigma = 0.1, T = 1, u_T = 0, m0 ~ exp(-5 (x - 0.5)^2) normalised, and the
    peer's coupling "+ 0.1 m" added to the Hamiltonian.  The peer's HJB residual is
    (U^n - U^{n+1})/dt - sigma^2/2 U_xx + H(x, m, U_x) with H = |p|^2/2 + V + f(m), so its "+ 0.1 m" is a
    running cost F = -0.1 m in our  -u_t - nu Lap u + |grad u|^2/2 = V + F  (aggregation: a non-monotone
    coupling; at this resolution the density collapses into about one cell).
    Grids: ours has 51 cells (h = 1/51, nodes at the cell centres), the peer's 51 nodes with the walls
    among them (h = 0.02): the same number of unknowns, not the same discretisation."""
    grid = mp.Grid([(0.0, 1.0)], 51)
    x = grid.axes[0]
    m0 = mp.normalise(grid, np.exp(-5 * (x - 0.5) ** 2))
    return mp.MFGProblem(grid, 1.0, 20, 0.1, m0, coupling=mp.LocalPower(-0.1))


REFERENCE_METHODS = ("picard", "fictitious-play", "anderson", "newton", "auto")

# The peer's figures cannot be measured here (it is not a dependency); they were measured side by side
# with ours, on the same problem and sign, and are quoted as such.
PEER_NOTE = """\
  peer, measured side by side on 2026-12-06 on the 2-core reference machine (shared): mfgarchon 0.19.6
  (github derrring/MFG_PDE, renamed MFGArchon; commit b38ee119), its README 1-D problem as written,
  problem.solve() defaults (damped Picard, relaxation 0.5, tol 1e-6, at most 100 iterations):
  converged=False after 100 iterations, 189 s (1.9 s/iteration; last relative changes 5.0e-7 in U and
  7.6e-7 in M, but its test also needs absolute changes < 1e-6).  With max_iterations=300: converged=True
  at 114 iterations, 206 s (U, M within 5e-4 of the 100-iteration ones).  Its U reaches -24.3 where
  0 >= u >= -T max 0.1 m = -4.4 must hold: its upwind gradient takes the downwind difference at the
  minimum of U, adding |p|^2/2 = 35 there.  Its mass (sum of m h) drifts from 1.000 to 0.990."""


def congestion_2d(N=201, Nt=200, sigma=0.6, kappa=1.0):
    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], N)
    return mp.MFGProblem(grid, 1.0, Nt, sigma, mp.gaussian(grid, (0.5, 0.5), (0.12, 0.12)),
                         coupling=mp.LocalPower(kappa),
                         potential=lambda x, y, t: np.cos(2 * np.pi * x) * np.cos(2 * np.pi * y))


def per_iteration(problem, iters=7, repeats=3, diagnostics="every"):
    """ns per space-time node per coupled iteration: damped Picard for a fixed count, the mean over the
    iterations 2..iters-1 (the first sweep is cold; with diagnostics="lean" the last one computes the
    residuals), median over repeats."""
    nodes = problem.grid.size * (problem.Nt + 1)
    figs = []
    for _ in range(repeats):
        r = mp.solve(problem, method="picard", tol=1e-300, max_iter=iters, diagnostics=diagnostics)
        wall = r.history["wall_time"]
        figs.append((wall[-2] - wall[0]) / (len(wall) - 2) / nodes * 1e9)
    return float(np.median(figs))


def import_time():
    code = "import time; t = time.perf_counter(); import mfg_pde; print(time.perf_counter() - t)"
    best = min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(3))
    return best


def compile_time():
    """First solve in a fresh process with an empty numba cache vs. with the warm cache."""
    code = ("import time, numpy as np, mfg_pde as mp; g = mp.Grid([(0, 1)], 50); "
            "p = mp.MFGProblem(g, 1.0, 20, 0.5, mp.gaussian(g, 0.5, 0.1), coupling=mp.LocalPower(1.0)); "
            "t = time.perf_counter(); mp.solve(p); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                    check=True).stdout)
        warm = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                    check=True).stdout)
    return cold, warm


def cold_cli_run(parallel=True):
    """`mfg-pde run lqg` (default grid, default method) in a fresh process with an empty numba cache: what a
    newcomer's first run after installing costs, compilation included; then the same with the warm cache.
    parallel=False: without the second compiling process (``fd.warm``; MFG_PDE_PARALLEL_COMPILE=0)."""
    code = ("import sys, time; t = time.perf_counter(); from mfg_pde.cli import main; "
            "rc = main(['run', 'lqg', '--quiet']); print(time.perf_counter() - t); sys.exit(0)")
    out = []
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d, MFG_PDE_PARALLEL_COMPILE="1" if parallel else "0")
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the 2-D 201^2 x 200 run")
    args = ap.parse_args(argv)

    print("warming up (compiling or loading cached kernels) ...", flush=True)
    mp.solve(congestion_1d(40, 20))
    mp.solve(congestion_2d(20, 10))

    print("1-D congestion 1000 x 1000, F = m + cos(2 pi x), sigma = 0.6, tol 1e-8")
    pb = congestion_1d()
    r, wall, peak = timed_solve(pb, tol=1e-8)
    nodes = pb.grid.size * (pb.Nt + 1)
    row("1-D 1000x1000 congestion solve", f"{wall:.3f} s, {r.iterations} it, {'converged' if r.converged else r.status}",
        "< 1 s", r.converged and wall < 1.0,
        f"{wall / nodes / r.iterations * 1e9:.1f} ns/node/it, peak {peak / 2**20:.0f} MiB, residual {r.final_residual:.1e}")

    for name, pb in (("1-D", congestion_1d()), ("2-D 201^2", congestion_2d(201, 50))):
        lean = per_iteration(pb, diagnostics="lean")
        every = per_iteration(pb, diagnostics="every")
        row(f"per coupled iteration, {name} (Picard, default diagnostics)", f"{lean:.1f} ns/node", "< 20 ns/node",
            lean < 20, "HJB + FP sweeps, update, statistics; exact HJB/FP residuals where they decide convergence")
        row("  same, diagnostics='every'", f"{every:.1f} ns/node", "(no target)", True,
            "plus the exact HJB/FP residuals of every candidate in the history (same iterates and result)")

    print("reference 1-D 51x20 (docs/method.md, 'Aggregation couplings'; the peer's README problem), "
          "F = -0.1 m running cost "
          "(the peer's '+ 0.1 m' in H), tol 1e-6, each method")
    pb = reference_1d()
    for method in REFERENCE_METHODS:
        mp.solve(pb, method=method, tol=1e-6)  # loads or compiles what this method uses
        walls = []
        while len(walls) < 5 and sum(walls) < 5.0:
            t0 = time.perf_counter()
            r = mp.solve(pb, method=method, tol=1e-6)
            walls.append(time.perf_counter() - t0)
        best = min(walls)
        row(f"reference 51x20 F=-0.1m, {method}",
            f"{best * 1e3:.1f} ms, {r.iterations} it, {'converged' if r.converged else 'NOT converged'}",
            "converged, < 0.2 s", r.converged and best < 0.2,
            f"residual {r.final_residual:.1e}, hjb {r.history['hjb_residual'][-1]:.1e}, "
            f"mass err {r.mass_error():.0e}, u in [{r.u.min():.2f}, {r.u.max():.2f}]")
    print(PEER_NOTE, flush=True)

    if not args.quick:
        print("2-D congestion 201 x 201 x 200 ...", flush=True)
        pb = congestion_2d()
        r, wall, peak = timed_solve(pb, tol=1e-8, progress=False)
        nodes = pb.grid.size * (pb.Nt + 1)
        row("2-D 201x201x200 congestion solve", f"{wall:.1f} s, {r.iterations} it, "
            f"{'converged' if r.converged else r.status}", "< 60 s", r.converged and wall < 60,
            f"{wall / nodes / r.iterations * 1e9:.1f} ns/node/it, peak {peak / 2**20:.0f} MiB")

    t_imp = import_time()
    row("import mfg_pde", f"{t_imp * 1e3:.0f} ms", "< 500 ms", t_imp < 0.5)
    cold, warm = compile_time()
    row("first solve, empty numba cache (compile)", f"{cold:.1f} s", "reported apart", True,
        f"same solve with cached kernels: {warm:.2f} s (cache works: {warm < cold / 3})")
    cli_cold, cli_warm = cold_cli_run()
    serial_cold, _ = cold_cli_run(parallel=False)
    row("first `mfg-pde run lqg`, empty numba cache", f"{cli_cold:.1f} s", "< 20 s", cli_cold < 20,
        f"compilation included (forward kernels in a 2nd process); one process: {serial_cold:.1f} s; "
        f"the same run with cached kernels: {cli_warm:.1f} s")
    row("process peak RSS", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", "-", True)

    print()
    print(f"{'benchmark':<44} {'measured':<48} {'target':<40} {'met':<4} detail")
    for name, fig, tgt, ok, detail in ROWS:
        print(f"{name:<44} {fig:<48} {tgt:<40} {ok:<4} {detail}")
    print()
    print("reference 1-D problem, the peer package on it (quoted, not measured by this script):")
    print(PEER_NOTE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
