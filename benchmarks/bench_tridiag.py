"""Single-line tridiagonal solvers: ns per unknown at n = 200, 1000, 4000.

  textbook Thomas          one-ended sweep: one elimination chain, one division per step
  two-ended Thomas         kernels._two_ended_thomas (current single-line solver)
  two-ended minors         tridiag.two_ended_minors (division-free pivot chains; drop-in replacement)

plus the Newton-line step that calls the solver in kernels._newton_line (rows + rhs, then solve).
The matrix is an M-matrix with unit row sums (rows of I + dt L_k; off-diagonals ~ -U(0, 1e3)); the
timings do not depend on the data.  Each figure is the best of --trials runs of a repetition loop
inside one @njit function (about --ms milliseconds each), so that machine noise (other jobs on the
same cores) is filtered out.  Compile times (fresh compilations, cache off) are reported apart.

Run:  PYTHONPATH=. python benchmarks/bench_tridiag.py [--trials 15] [--ms 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from mfg_pde.fd import kernels as K  # noqa: E402
from mfg_pde.fd import tridiag as T  # noqa: E402


@njit(cache=True, error_model="numpy")
def textbook_thomas(L, D, U, r, x, c):
    """One-ended Thomas sweep (forward elimination top-down, back substitution bottom-up)."""
    n = D.shape[0]
    inv = 1.0 / D[0]
    c[0] = U[0] * inv
    x[0] = r[0] * inv
    for i in range(1, n):
        inv = 1.0 / (D[i] - L[i] * c[i - 1])
        c[i] = U[i] * inv
        x[i] = (r[i] - L[i] * x[i - 1]) * inv
    for i in range(n - 2, -1, -1):
        x[i] -= c[i] * x[i + 1]


SOLVERS = [("textbook Thomas", textbook_thomas),
           ("two-ended Thomas (kernels)", K._two_ended_thomas),
           ("two-ended minors (tridiag)", T.two_ended_minors)]


def _repeater(solve):
    @njit
    def rep(L, D, U, r, x, c, R):
        for _ in range(R):
            solve(L, D, U, r, x, c)
    return rep


def _newton_repeater(solve):
    @njit
    def rep(g, d, src, L, U, D, r, x, c, R):
        for _ in range(R):
            K._line_rows_cost(g, d, K.Axis(0.1, 1e-3, 1e-3, False, True, False, False, 0.0, 0.0), L, U, D, src, r)
            solve(L, D, U, r, x, c)
    return rep


def best_ns_per_unknown(rep, args, n, trials, ms):
    rep(*args, 1)
    t0 = time.perf_counter()
    rep(*args, 10)
    per_call = max((time.perf_counter() - t0) / 10, 1e-8)
    R = max(1, int(ms * 1e-3 / per_call))
    best = np.inf
    for _ in range(trials):
        t0 = time.perf_counter()
        rep(*args, R)
        best = min(best, (time.perf_counter() - t0) / R)
    return best / n * 1e9


def compile_seconds(dispatcher, args):
    """Time of a fresh compilation (cache off) of the solver for these argument types."""
    fresh = njit(error_model="numpy", fastmath=dispatcher.targetoptions.get("fastmath", False))(dispatcher.py_func)
    t0 = time.perf_counter()
    fresh.compile(tuple(fresh.typeof_pyval(a) for a in args))
    return time.perf_counter() - t0


_COLD = """
import sys, time
sys.path.insert(0, {root!r})
import numpy as np
t0 = time.perf_counter()
from mfg_pde.fd import {mod} as M
a = [np.ones(8) for _ in range(6)]
t1 = time.perf_counter()
M.{fn}(*a)
print(time.perf_counter() - t1)
"""


def cold_seconds(mod, fn):
    """First call in a fresh process with an empty numba cache (full compile, helpers included), then
    in a second fresh process (load from that cache)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    code = _COLD.format(root=root, mod=mod, fn=fn)
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        out = [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout.split()[-1]) for _ in range(2)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--ms", type=float, default=5.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sizes = (200, 1000, 4000)

    probe = [np.ones(8) for _ in range(6)]
    njit(lambda a: a[0] + 1.0)(probe[0])          # numba's one-time start-up, not charged to a solver
    print("compile time: recompiling the solver function (its callees already compiled / cached)")
    for name, f in SOLVERS:
        print(f"  {name:30s} {compile_seconds(f, probe):6.2f} s")
    for name, (mod, fn) in (("two-ended Thomas (kernels)", ("kernels", "_two_ended_thomas")),
                            ("two-ended minors (tridiag)", ("tridiag", "two_ended_minors"))):
        cold, load = cold_seconds(mod, fn)
        print(f"  {name:30s} first call, empty numba cache: {cold:5.2f} s;  from the cache: {load:5.2f} s")
    print()

    print(f"ns per unknown, best of {args.trials} (solve only)")
    print(f"  {'n':>26s}" + "".join(f"{n:>10d}" for n in sizes))
    table = {}
    for name, f in SOLVERS:
        rep = _repeater(f)
        row = []
        for n in sizes:
            L = -rng.random(n) * 1e3
            U = -rng.random(n) * 1e3
            L[0] = 0.0
            U[-1] = 0.0
            D = 1.0 - L - U
            r = rng.random(n)
            row.append(best_ns_per_unknown(rep, (L, D, U, r, np.empty(n), np.empty(n)), n, args.trials, args.ms))
        table[name] = row
        print(f"  {name:>26s}" + "".join(f"{v:10.2f}" for v in row))
    base = table["two-ended Thomas (kernels)"]
    new = table["two-ended minors (tridiag)"]
    print(f"  {'speed-up vs two-ended':>26s}" + "".join(f"{b / v:9.2f}x" for b, v in zip(base, new)))
    print()

    print(f"ns per unknown, best of {args.trials}: one Newton-line iteration (_line_rows_cost + solve)")
    print(f"  {'n':>26s}" + "".join(f"{n:>10d}" for n in sizes))
    for name, f in SOLVERS[1:]:
        rep = _newton_repeater(f)
        row = []
        for n in sizes:
            g = np.cumsum(rng.standard_normal(n)) * 1e-2
            d = rng.standard_normal(n)
            a = (g, d, rng.random(n)) + tuple(np.empty(n) for _ in range(6))
            row.append(best_ns_per_unknown(rep, a, n, args.trials, args.ms))
        print(f"  {name:>26s}" + "".join(f"{v:10.2f}" for v in row))


if __name__ == "__main__":
    main()
