"""Robust convergence: every coupling method on the four hard-corner regimes of docs/method.md, and the
Newton speed row.

Regimes (docs/method.md, section 'Hard-corner regimes'): periodic [0, 1], 200 cells x 100 steps, T = 1,
u_T = 0, m0 uniform,
F = k m - cos(2 pi x) (potential -cos(2 pi x) plus the congestion coupling k m), nu = sigma^2/2 in
{0.1, 0.01}, k in {1, 10}.  Every method runs to the relative tolerance 1e-10 (cheap loops: capped at
--max-iter iterations).  A cell reads "iterations, time" (the Newton phase in brackets: its steps), or
"FAIL (residual)" when the method did not converge.  Times are wall-clock after a warm-up solve
(numba kernels compiled or loaded from the cache); compile time is reported apart.

Speed rows (the issue): Newton on the 1-D 1000 x 1000 congestion problem at nu = 0.01, k = 10 (same
data), target under 5 s; Newton (Krylov on the direction-split chain) on the 2-D hard regime
101 x 101 x 100, periodic, nu = 0.01, k = 10, V = -cos(2 pi x) - cos(2 pi y), target under 60 s, with the
Anderson loop beside it.

Run:  python benchmarks/bench_newton.py [--quick] [--max-iter N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402

REGIMES = [(0.1, 1.0), (0.1, 10.0), (0.01, 1.0), (0.01, 10.0)]
METHODS = [
    ("picard (damping 0.5)", dict(method="picard", damping=0.5)),
    ("fictitious play", dict(method="fictitious-play")),
    ("anderson(5)", dict(method="anderson")),
    ("newton (default: cold start, krylov)", dict(method="newton")),
    ("newton, sparse LU (splu)", dict(method="newton", linear_solver="direct")),
    ("30 fictitious play, then newton", dict(method="newton", warm_start="fictitious-play", warm_iter=30)),
    ("auto (anderson -> newton)", dict(method="auto")),
]


def regime(nu, k, N=200, Nt=100):
    grid = mp.Grid([(0.0, 1.0)], N, bc="periodic")
    return mp.MFGProblem(grid, 1.0, Nt, float(np.sqrt(2 * nu)), np.ones(N), coupling=mp.LocalPower(k),
                         potential=lambda x, t: -np.cos(2 * np.pi * x))


def regime_2d(nu, k, N=101, Nt=100):
    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], N, bc="periodic")
    return mp.MFGProblem(grid, 1.0, Nt, float(np.sqrt(2 * nu)), np.ones((N, N)), coupling=mp.LocalPower(k),
                         potential=lambda x, y, t: -np.cos(2 * np.pi * x) - np.cos(2 * np.pi * y))


def cell(r, wall):
    h = r.history
    phase = h.get("phase")
    newton = "" if phase is None or not np.any(phase == 1) else f" [{int(np.sum(phase == 1)) - 1} N]"
    if r.converged:
        return f"{r.iterations} it{newton}, {wall:.2f} s"
    return f"FAIL ({h['residual'][-1]:.1e}), {wall:.1f} s"


def compile_time():
    """First Newton solve in a fresh process with an empty numba cache vs. with the warm cache."""
    code = ("import time, numpy as np, mfg_pde as mp; g = mp.Grid([(0, 1)], 40, bc='periodic'); "
            "p = mp.MFGProblem(g, 1.0, 20, 0.3, np.ones(40), coupling=mp.LocalPower(1.0)); "
            "t = time.perf_counter(); mp.solve(p, method='newton'); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        env["PYTHONPATH"] = os.path.join(os.path.dirname(__file__), "..") + os.pathsep + env.get("PYTHONPATH", "")
        out = []
        for _ in range(2):
            out.append(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                            check=True).stdout))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the 1000 x 1000 row and the compile-time row")
    ap.add_argument("--max-iter", type=int, default=400, help="iteration cap of the cheap loops")
    args = ap.parse_args(argv)

    print("warming up (compiling or loading cached kernels) ...", flush=True)
    for _, kw in METHODS:
        mp.solve(regime(0.1, 1.0, 40, 20), tol=1e-10, **kw)

    print(f"four regimes, 200 x 100, tol 1e-10 (cheap loops capped at {args.max_iter} iterations)")
    header = f"{'method':<38}" + "".join(f"{f'nu={nu:g}, k={k:g}':<26}" for nu, k in REGIMES)
    lines = [header]
    for name, kw in METHODS:
        cells = []
        for nu, k in REGIMES:
            pb = regime(nu, k)
            opts = dict(kw)
            if opts["method"] in ("picard", "fictitious-play", "anderson"):
                opts["max_iter"] = args.max_iter
            t0 = time.perf_counter()
            r = mp.solve(pb, tol=1e-10, **opts)
            wall = time.perf_counter() - t0
            cells.append(cell(r, wall))
        line = f"{name:<38}" + "".join(f"{c:<26}" for c in cells)
        print(line, flush=True)
        lines.append(line)

    rows = []
    if not args.quick:
        print("speed row: newton, 1-D 1000 x 1000 congestion, nu = 0.01, k = 10 ...", flush=True)
        pb = regime(0.01, 10.0, 1000, 1000)
        best = None
        for _ in range(2):
            t0 = time.perf_counter()
            r = mp.solve(pb, method="newton", tol=1e-10)
            wall = time.perf_counter() - t0
            if best is None or wall < best[1]:
                best = (r, wall)
        r, wall = best
        h = r.history
        lin = h["linear_iterations"][h["phase"] == 1]
        rows.append(("newton 1-D 1000x1000, nu=0.01, k=10", f"{wall:.2f} s, {r.iterations - 1} newton steps, "
                     f"{int(lin.sum())} CG iterations, residual {h['residual'][-1]:.1e}", "< 5 s",
                     "yes" if r.converged and wall < 5 else "NO",
                     f"exploitability {h['exploitability'][-1]:.1e}, mass error {r.mass_error():.0e}"))
        print("speed row: newton, 2-D 101 x 101 x 100 hard regime, nu = 0.01, k = 10 ...", flush=True)
        mp.solve(regime_2d(0.01, 10.0, 12, 6), method="newton", tol=1e-10)  # compile / load kernels
        pb = regime_2d(0.01, 10.0)
        for name, kw in (("newton", dict(method="newton")), ("anderson", dict(method="anderson", max_iter=60))):
            tracemalloc.start()
            t0 = time.perf_counter()
            r = mp.solve(pb, tol=1e-10, **kw)
            wall = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            h = r.history
            if name == "newton":
                lin = h["linear_iterations"][h["phase"] == 1]
                rows.append(("newton 2-D 101x101x100, nu=0.01, k=10",
                             f"{wall:.1f} s, {r.iterations - 1} newton steps, {int(np.nansum(lin))} CG iterations, "
                             f"residual {h['residual'][-1]:.1e}", "< 60 s", "yes" if r.converged and wall < 60 else "NO",
                             f"peak {peak / 2**20:.0f} MiB, mass error {r.mass_error():.0e}"))
            else:
                rows.append(("anderson, same 2-D problem", f"{wall:.1f} s, {r.iterations} it, "
                             f"{'converged' if r.converged else 'not converged'}, residual {h['residual'][-1]:.1e}",
                             "-", "-", ""))
        cold, warm = compile_time()
        rows.append(("first newton solve, empty numba cache", f"{cold:.1f} s", "reported apart", "-",
                     f"same solve with cached kernels: {warm:.2f} s"))

    print()
    for line in lines:
        print(line)
    if rows:
        print()
        print(f"{'benchmark':<40} {'measured':<64} {'target':<8} {'met':<4} detail")
        for name, fig, tgt, ok, detail in rows:
            print(f"{name:<40} {fig:<64} {tgt:<8} {ok:<4} {detail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
