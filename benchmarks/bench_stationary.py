"""Stationary 2-D MFGs by Newton (``mfg_pde.solve_stationary``): wall time, Newton iterations and GMRES
iterations of the ergodic LQ MFG on a 201 x 201 grid (target: under 10 s after compilation), with the time
of the numba compilation (or cache load) apart.

Rows:
* lq-ergodic-2d data (V = (x - 0.33)^2/2 + (y + 0.2)^2, F = |x - mean|^2/2, sigma = 0.8) on [-3.5, 3.5]^2,
  N x N cells, the default linear solver ("schur": LUs of the bordered N-sized HJB/FP matrices, GMRES on the
  coupling) and, with --lu, the LU of the whole (2 N^2 + 2)-sized Jacobian for comparison;
* the same grid with a local coupling F = m and BoundedControl(0.6) (GMRES on a full-rank coupling);
* the same with the congestion Hamiltonian Congestion(1, 5, 1) instead (the density of each trial point solved
  by Newton for fixed u, ``StationarySystem.congested_density``: its steps are listed too).

Run:  python benchmarks/bench_stationary.py [--N 201] [--lu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mfg_pde as mp  # noqa: E402
from mfg_pde.oracles.analytic import lq_stationary_product  # noqa: E402


def lq_problem(N, L=3.5):
    grid = mp.Grid([(-L, L), (-L, L)], (N, N))
    return mp.StationaryProblem(grid, 0.8, coupling=mp.QuadraticInteraction(1.0),
                                potential=lambda x, y: 0.5 * (x - 0.33) ** 2 + (y + 0.2) ** 2)


def local_problem(N, L=3.5):
    grid = mp.Grid([(-L, L), (-L, L)], (N, N))
    return mp.StationaryProblem(grid, 0.8, coupling=mp.LocalPower(1.0), hamiltonian=mp.BoundedControl(0.6),
                                potential=lambda x, y: 0.5 * (x - 0.33) ** 2 + (y + 0.2) ** 2)


def congested_problem(N, L=3.5):
    grid = mp.Grid([(-L, L), (-L, L)], (N, N))
    return mp.StationaryProblem(grid, 0.8, coupling=mp.LocalPower(1.0), hamiltonian=mp.Congestion(1.0, 5.0, 1.0),
                                potential=lambda x, y: 0.5 * (x - 0.33) ** 2 + (y + 0.2) ** 2)


def row(label, problem, **opts):
    t0 = time.perf_counter()
    r = mp.solve_stationary(problem, **opts)
    wall = time.perf_counter() - t0
    gm = r.history.get("gmres", [])
    ds = r.history.get("density_steps", [])
    print(f"{label:<44s} {wall:8.2f} s  {r.iterations:3d} Newton  GMRES {list(map(int, gm))}  "
          + (f"density steps {list(map(int, ds))}  " if len(ds) else "")
          + f"{'converged' if r.converged else 'NOT converged: ' + r.status}, HJB residual {r.residuals['hjb']:.1e}")
    return r, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--N", type=int, default=201, help="cells per axis (default 201)")
    ap.add_argument("--lu", action="store_true", help="also time the whole-Jacobian sparse LU")
    args = ap.parse_args()
    t0 = time.perf_counter()
    mp.solve_stationary(lq_problem(12))
    mp.solve_stationary(local_problem(12))
    mp.solve_stationary(congested_problem(12))
    print(f"compilation / cache load (two 12 x 12 solves): {time.perf_counter() - t0:.2f} s")
    N = args.N
    print(f"\nergodic 2-D MFG, {N} x {N} cells ({N * N} nodes), tol 1e-10, {os.cpu_count()} cores")
    r, wall = row("LQ, linear_solver='schur' (default)", lq_problem(N))
    ref = lq_stationary_product((1.0, 2.0), (0.33, -0.2), 0.8, 0.0, 1.0)
    print(f"  lambda {r.lam:.6f} (exact {ref['lam']:.6f}, error {abs(r.lam - ref['lam']):.2e}); "
          f"target under 10 s: {'met' if wall < 10 else 'MISSED'} ({wall:.2f} s)")
    if args.lu:
        row("LQ, linear_solver='lu' (whole Jacobian)", lq_problem(N), linear_solver="lu")
    row("F = m, BoundedControl(0.6), 'schur'", local_problem(N))
    row("F = m, Congestion(1, 5, 1), 'schur'", congested_problem(N))


if __name__ == "__main__":
    main()
