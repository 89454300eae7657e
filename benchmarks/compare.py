"""Before/after speed table: the same workloads timed on two versions of the package, side by side in one run.

    python benchmarks/compare.py [--before REV] [--after PATH] [--repeats 5] [--quick]

REV (default 97d161b, the last commit before the engine-room redesign) is checked out into a temporary git
worktree; PATH (default: this checkout) is the version under test.  Every workload runs in a fresh
subprocess per version with that version first on sys.path, through the public API both versions share
(``mp.solve``, ``mp.solve_planning``, the tridiagonal line solver), so nothing here depends on internal
names.  Compile time is excluded: each subprocess runs the workload once to compile (or load the numba
cache) and then times it ``--repeats`` times; the table shows the best time of each version, the ratio
after / before and a flag where the new version is more than 5 % slower.  The two versions run
alternately, workload by workload, so slow drifts of the machine hit both columns alike.

The rows follow the four benchmarks the redesign must not slow down: bench_core (coupled iterations in
1-D and 2-D, both diagnostics modes), bench_tridiag (the two-ended line solver), bench_newton (Newton in
1-D and 2-D) and bench_planning (Sinkhorn planning in 1-D and 2-D).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def _picard(d: int, n: int, Nt: int, iters: int, diagnostics: str) -> str:
    """A fixed number of Picard iterations of the bench_core congestion problem (F = m) on [0, 1]^d."""
    centre, std = ("0.5", "0.1") if d == 1 else ("(0.5, 0.5)", "(0.12, 0.12)")
    return f"""
g = mp.Grid([(0.0, 1.0)] * {d}, {n})
p = mp.MFGProblem(g, 1.0, {Nt}, 0.3, mp.gaussian(g, {centre}, {std}), coupling=mp.LocalPower(1.0))
kw = dict(method="picard", tol=1e-300, max_iter={iters}, diagnostics="{diagnostics}")
def run(): mp.solve(p, **kw)
nodes = {n} ** {d} * {Nt + 1} * {iters}
"""


# Each workload: (name, unit divisor description, code).  The code defines `run()` (one timed call) and
# `nodes` (space-time nodes x iterations, or unknowns, for the per-node figure; None: wall time only).
WORKLOADS = {
    **{f"core {d}-D {size} picard x{iters}, {diag}": _picard(d, n, Nt, iters, diag)
       for d, n, Nt, iters, size in ((1, 200, 200, 20, "200x200"), (2, 101, 100, 5, "101^2x100"))
       for diag in ("lean", "every")},
    "core 2-D periodic 64^2x64 anderson": """
g = mp.Grid([(0.0, 1.0), (0.0, 1.0)], 64, bc="periodic")
p = mp.MFGProblem(g, 1.0, 64, 0.4, mp.gaussian(g, (0.5, 0.5), (0.12, 0.12)), coupling=mp.LocalPower(1.0))
def run(): mp.solve(p, method="anderson", tol=1e-9)
nodes = None
""",
    "core 1-D exit room-like 400x400 anderson": """
g = mp.Grid([(0.0, 1.0)], 400, bc=("exit", "reflecting"))
p = mp.MFGProblem(g, 1.0, 400, 0.3, mp.gaussian(g, 0.6, 0.1), coupling=mp.LocalPower(1.0))
def run(): mp.solve(p, method="anderson", tol=1e-9)
nodes = None
""",
    "tridiag two-ended line solve n=1000 (x2000)": """
try:
    from mfg_pde.fd.tridiag import two_ended_minors as solve
except ImportError:
    from mfg_pde.solvers.tridiag import two_ended_minors as solve
import numpy as np
rng = np.random.default_rng(0)
n = 1000
L = -rng.random(n); U = -rng.random(n); D = 1.0 - L - U + 0.1
L[0] = 0.0; U[-1] = 0.0
r = rng.random(n); x = np.empty(n); c = np.empty(n)
solve(L, D, U, r, x, c)
def run():
    for _ in range(2000):
        solve(L, D, U, r, x, c)
nodes = n * 2000
""",
    "newton 1-D periodic 200x100 (nu 0.01, k 2)": """
import numpy as np
g = mp.Grid([(0.0, 1.0)], 200, bc="periodic")
x = g.axes[0]
p = mp.MFGProblem(g, 1.0, 100, float(np.sqrt(2 * 0.01)), np.ones(200), coupling=mp.LocalPower(2.0),
                  potential=lambda x, t: np.sin(2 * np.pi * x))
def run(): mp.solve(p, method="newton", tol=1e-10)
nodes = None
""",
    "newton 2-D periodic 41^2x40 (nu 0.05, k 1)": """
import numpy as np
g = mp.Grid([(0.0, 1.0), (0.0, 1.0)], 41, bc="periodic")
p = mp.MFGProblem(g, 1.0, 40, float(np.sqrt(2 * 0.05)), np.ones((41, 41)), coupling=mp.LocalPower(1.0),
                  potential=lambda x, y, t: np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y))
def run(): mp.solve(p, method="newton", tol=1e-10)
nodes = None
""",
    "planning 1-D 801x800 bimodal, beta 4": """
from mfg_pde.cases.planning import bimodal_ends
g = mp.Grid([(-6, 6)], 801)
p = mp.PlanningProblem(g, 1.0, 800, 1.0, *bimodal_ends(g), coupling=mp.QuadraticInteraction(4.0))
def run(): mp.solve_planning(p)
nodes = None
""",
    "planning 2-D 101^2x100 gaussians, beta 4": """
g = mp.Grid([(-4, 4)] * 2, 101)
p = mp.PlanningProblem(g, 1.0, 100, 1.0, mp.gaussian(g, (-1.0, -0.5), (0.6, 0.6)),
                       mp.gaussian(g, (1.0, 0.5), (0.5, 0.5)), coupling=mp.QuadraticInteraction(4.0))
def run(): mp.solve_planning(p)
nodes = None
""",
}
QUICK = ["core 1-D 200x200 picard x20, lean", "core 2-D 101^2x100 picard x5, lean",
         "tridiag two-ended line solve n=1000 (x2000)", "planning 1-D 801x800 bimodal, beta 4"]

HARNESS = """
import json, sys, time, warnings
# an editable install's import hook would resolve modules missing from an old tree to the installed one
sys.meta_path = [f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", ""))]
sys.path.insert(0, {tree!r})
warnings.simplefilter("ignore")
import mfg_pde as mp
{code}
run()
strays = [m.__file__ for m in list(sys.modules.values())
          if m.__name__.startswith("mfg_pde") and getattr(m, "__file__", None)
          and not m.__file__.startswith({tree!r})]
assert not strays, strays
best = float("inf")
for _ in range({repeats}):
    t0 = time.perf_counter(); run(); best = min(best, time.perf_counter() - t0)
print(json.dumps({{"best": best, "nodes": nodes}}))
"""


def measure(tree: str, code: str, repeats: int) -> dict:
    src = HARNESS.format(tree=tree, code=code, repeats=repeats)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, cwd=tree, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def figure(m: dict) -> str:
    if "error" in m:
        return "error"
    if m["nodes"]:
        return f"{m['best'] * 1e9 / m['nodes']:.2f} ns"
    return f"{m['best']:.3f} s"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="97d161b", help="git revision of the 'before' column")
    ap.add_argument("--after", default=ROOT, help="path of the 'after' tree (default: this checkout)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help=f"only {len(QUICK)} rows, 3 repeats")
    ap.add_argument("--only", default=None, help="run the rows whose name contains this text")
    args = ap.parse_args(argv)
    names = QUICK if args.quick else list(WORKLOADS)
    if args.only:
        names = [n for n in names if args.only in n]
    repeats = 3 if args.quick else args.repeats
    tmp = tempfile.mkdtemp(prefix="mfg_pde_before_")
    before = os.path.join(tmp, "tree")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", before, args.before], check=True,
                   capture_output=True)
    try:
        print(f"before: {args.before} (worktree {before});  after: {args.after};  best of {repeats}, compile "
              "excluded; per-node figures are ns per space-time node per iteration (tridiag: per unknown)",
              flush=True)
        print(f"{'workload':46s} {'before':>11s} {'after':>11s} {'after/before':>13s}", flush=True)
        worst = 0.0
        for name in names:
            b = measure(before, WORKLOADS[name], repeats)
            a = measure(args.after, WORKLOADS[name], repeats)
            if "error" in a or "error" in b:
                ratio, flag = float("nan"), f"  ({a.get('error') or b.get('error')})"
            else:
                ratio = a["best"] / b["best"]
                worst = max(worst, ratio)
                flag = "  SLOWER by more than 5 %" if ratio > 1.05 else ""
            print(f"{name:46s} {figure(b):>11s} {figure(a):>11s} {ratio:13.3f}{flag}", flush=True)
        print(f"largest after/before: {worst:.3f}", flush=True)
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", before], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
