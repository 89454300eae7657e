"""Every coupling loop on a panel of problems: does the default (`auto`) converge wherever some loop does,
and how far is it from the fastest?

Rows (each a small-to-medium problem a user meets first):

* hard corner (the four hard-corner regimes of docs/method.md): periodic [0, 1]^d, m0 uniform,
  F = k m - cos(2 pi x) [- 1/2 cos(2 pi y)],
  nu = sigma^2/2 in {0.1, 0.01}, k in {1, 10}; 1-D at 100 x 50 and 200 x 100, 2-D at N = 16, 20, 24 (the sizes the
  tests use) and 32;
* aggregation (non-monotone): F = -c m on [0, 1] (the peer package's README problem: 51 cells x 20 steps,
  sigma = 0.1, m0 ~ exp(-5 (x - 1/2)^2), c = 0.1; also sigma 0.3, 0.5 and c = 1), an attractive Gaussian kernel
  F = -c (W * m), W(d) = exp(-d^2 / (2 s^2)), in 1-D and 2-D; the 2-D peer problem (31^2 x 20, sigma 0.1);
* LQ (the `lqg` case), congestion F = m + cos(2 pi x) at sigma 0.6 (1-D 400 x 400, 2-D 41^2 x 40), and an
  exit room (the `exit-room` case at N = 32).

Each method runs to tol = 1e-8 (default max_iter) with a wall-clock cap per run (--cap seconds, default 30:
a run stopped by the cap counts as not converged).  A cell reads "iterations / seconds" (best of 3 runs when under 1 s) or "-- (residual)".
The last columns: auto's time over the fastest converged method, and PASS when auto converged on a row where
some method did, within 3x of the fastest.  Times are wall-clock after a warm-up solve (numba kernels
compiled or loaded from the cache), on whatever machine runs it (the reference machine has 2 cores).

Run:  python benchmarks/bench_methods.py [--quick] [--cap SECONDS] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402

METHODS = ("picard", "fictitious-play", "anderson", "newton", "auto")
TOL = 1e-8


def hard_corner(nu, k, N, Nt, d=1):
    bounds = [(0.0, 1.0)] * d
    grid = mp.Grid(bounds, N, bc="periodic")
    if d == 1:
        V = lambda x, t: -np.cos(2 * np.pi * x)  # noqa: E731
    else:
        V = lambda x, y, t: -np.cos(2 * np.pi * x) - 0.5 * np.cos(2 * np.pi * y)  # noqa: E731
    return mp.MFGProblem(grid, 1.0, Nt, float(np.sqrt(2 * nu)), np.ones(grid.shape), coupling=mp.LocalPower(k),
                         potential=V)


def bump(grid):
    xs = grid.mesh()
    r2 = sum((x - 0.5) ** 2 for x in xs)
    m0 = np.exp(-5.0 * r2)
    return m0 / grid.integrate(m0)


def aggregation_local(c, sigma, N, Nt, d=1):
    grid = mp.Grid([(0.0, 1.0)] * d, N)
    return mp.MFGProblem(grid, 1.0, Nt, sigma, bump(grid), coupling=mp.LocalPower(-c))


def aggregation_kernel(c, sigma, N, Nt, d=1, s=0.1):
    grid = mp.Grid([(0.0, 1.0)] * d, N)
    if d == 1:
        W = lambda dx: np.exp(-dx ** 2 / (2 * s * s))  # noqa: E731
    else:
        W = lambda dx, dy: np.exp(-(dx ** 2 + dy ** 2) / (2 * s * s))  # noqa: E731
    return mp.MFGProblem(grid, 1.0, Nt, sigma, bump(grid), coupling=mp.KernelInteraction(W, -c))


def congestion(N, Nt, d=1):
    grid = mp.Grid([(0.0, 1.0)] * d, N, bc="periodic")
    if d == 1:
        V = lambda x, t: np.cos(2 * np.pi * x)  # noqa: E731
    else:
        V = lambda x, y, t: np.cos(2 * np.pi * x) + np.cos(2 * np.pi * y)  # noqa: E731
    return mp.MFGProblem(grid, 1.0, Nt, 0.6, np.ones(grid.shape), coupling=mp.LocalPower(1.0), potential=V)


def case_problem(name, **params):
    from mfg_pde import cases
    case = cases.get(name)
    p = case.resolve(params)
    return case.build(p)[0]


def rows(quick=False):
    out = []
    sizes1 = [(100, 50)] if quick else [(100, 50), (200, 100)]
    sizes2 = [(16, 12), (24, 16)] if quick else [(16, 12), (20, 16), (24, 16), (32, 20)]
    for nu, k in [(0.1, 1.0), (0.1, 10.0), (0.01, 1.0), (0.01, 10.0)]:
        for N, Nt in sizes1:
            out.append((f"hard 1-D nu={nu} k={k:g} {N}x{Nt}", lambda nu=nu, k=k, N=N, Nt=Nt: hard_corner(nu, k, N, Nt)))
        for N, Nt in sizes2:
            out.append((f"hard 2-D nu={nu} k={k:g} {N}^2x{Nt}",
                        lambda nu=nu, k=k, N=N, Nt=Nt: hard_corner(nu, k, N, Nt, d=2)))
    for c, sigma in [(0.1, 0.1), (0.1, 0.3), (0.1, 0.5), (1.0, 0.3)]:
        out.append((f"aggregation 1-D F=-{c:g}m sigma={sigma} 51x20",
                    lambda c=c, sigma=sigma: aggregation_local(c, sigma, 51, 20)))
    for c, sigma in [(1.0, 0.2), (1.0, 0.5)]:
        out.append((f"attractive kernel 1-D c={c:g} sigma={sigma} 100x50",
                    lambda c=c, sigma=sigma: aggregation_kernel(c, sigma, 100, 50)))
    out.append(("aggregation 2-D F=-0.1m sigma=0.1 31^2x20", lambda: aggregation_local(0.1, 0.1, 31, 20, d=2)))
    if not quick:
        out.append(("aggregation 2-D F=-1m sigma=0.3 31^2x20", lambda: aggregation_local(1.0, 0.3, 31, 20, d=2)))
        out.append(("attractive kernel 2-D c=1 sigma=0.3 31^2x20", lambda: aggregation_kernel(1.0, 0.3, 31, 20, d=2)))
    out.append(("LQ (lqg case, 200x200)", lambda: case_problem("lqg")))
    out.append(("congestion 1-D 400x400", lambda: congestion(400, 400)))
    if not quick:
        out.append(("congestion 2-D 41^2x40", lambda: congestion(41, 40, d=2)))
    out.append(("exit room (exit-room case, N=32)", lambda: case_problem("exit-room", N=32, Nt=40)))
    return out


def run_one(make, method, cap, repeats=3):
    """Solve a fresh problem; a converged run under 1 s is repeated (best of ``repeats`` wall times: short
    runs are noisy on a shared machine)."""
    walls = []
    for _ in range(repeats):
        problem = make()
        t0 = time.perf_counter()

        def stop(k, rec):
            return time.perf_counter() - t0 > cap

        try:
            r = mp.solve(problem, method=method, tol=TOL, callback=stop, exploitability="none")
        except (NotImplementedError, ValueError) as exc:
            return None, f"n/a ({str(exc)[:30]})"
        walls.append(time.perf_counter() - t0)
        if not r.converged or walls[-1] > 1.0:
            break
    return r, min(walls)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer sizes")
    ap.add_argument("--cap", type=float, default=30.0, help="wall-clock cap per run, seconds")
    ap.add_argument("--only", default="", help="run only rows whose name contains this")
    args = ap.parse_args(argv)
    table = [r for r in rows(args.quick) if args.only in r[0]]
    # warm-up: compile or load the kernels once
    t0 = time.perf_counter()
    for meth in METHODS:
        mp.solve(hard_corner(0.1, 1.0, 12, 6), method=meth, tol=1e-6, exploitability="none")
        mp.solve(hard_corner(0.1, 1.0, 6, 4, d=2), method=meth, tol=1e-6, exploitability="none")
    print(f"warm-up (compile or cache load): {time.perf_counter() - t0:.1f} s", flush=True)
    width = max(len(name) for name, _ in table)
    head = f"{'problem':<{width}} " + " ".join(f"{m:>16}" for m in METHODS) + f" {'auto/best':>9}  verdict"
    print(head)
    print("-" * len(head))
    failures = 0
    for name, make in table:
        cells, times = {}, {}
        for meth in METHODS:
            r, wall = run_one(make, meth, args.cap)
            if r is None:
                cells[meth], times[meth] = wall, np.nan
                continue
            if r.converged:
                cells[meth] = f"{r.iterations} / {wall:.2f}s"
                times[meth] = wall
            else:
                res = r.history["residual"][-1] if r.history["residual"].size else np.nan
                capped = "cap" if wall > args.cap else "--"
                cells[meth] = f"{capped} ({res:.0e})"
                times[meth] = np.nan
        ok = [t for m, t in times.items() if np.isfinite(t)]
        best = min(ok) if ok else np.nan
        ratio = times["auto"] / best if ok else np.nan
        if not ok:
            verdict = "none converged"
        elif np.isfinite(times["auto"]) and ratio <= 3.0:
            verdict = "PASS"
        else:
            verdict = "FAIL"
            failures += 1
        print(f"{name:<{width}} " + " ".join(f"{cells[m]:>16}" for m in METHODS) + f" {ratio:9.2f}  {verdict}",
              flush=True)
    print(f"\nauto: {len(table) - failures} of {len(table)} rows pass (converged where any method did, "
          f"within 3x of the fastest)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
