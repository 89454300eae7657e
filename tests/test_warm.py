"""First-run compilation on two cores (``fd.warm``): the helper process compiles exactly the forward kernels a
solve needs, so the solving process loads them from the cache instead of compiling them again."""

import json
import os
import subprocess
import sys

import pytest

from mfg_pde.fd import warm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a 1-D solve (the default method) in a fresh process that records which package kernels it compiled
PROBE = """
import json, sys
from numba.core import event
compiled = []
class L(event.Listener):
    def on_start(self, ev): pass
    def on_end(self, ev):
        d = ev.data["dispatcher"]
        if d.py_func.__module__.startswith("mfg_pde"):
            compiled.append(d.py_func.__name__)
event.register("numba:compile", L())
import mfg_pde as mp
g = mp.Grid([(0.0, 1.0)], 30)
p = mp.MFGProblem(g, 1.0, 10, 0.4, mp.gaussian(g, 0.5, 0.1), coupling=mp.LocalPower(1.0))
r = mp.solve(p)
assert r.converged, r.status
print(json.dumps(compiled))
"""


def _env(cache, parallel):
    return dict(os.environ, NUMBA_CACHE_DIR=str(cache), MFG_PDE_PARALLEL_COMPILE=parallel,
                PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("MFG_PDE_PARALLEL_COMPILE", "0")
    monkeypatch.setattr(warm, "_STARTED", False)
    monkeypatch.setattr(warm, "_HELPER", None)
    warm.start()
    assert warm._HELPER is None and warm._STARTED
    warm.wait()  # nothing to join


def test_helper_does_not_put_the_current_folder_on_sys_path(monkeypatch):
    """The helper runs with PYTHONSAFEPATH=1 (``python -c`` would import ./mfg_pde of a source checkout instead
    of the installed package); PYTHONPATH is passed on unchanged."""
    calls = []

    class FakePopen:
        pid = 12345

        def __init__(self, args, **kwargs):
            calls.append((args, kwargs))

    monkeypatch.delenv("MFG_PDE_PARALLEL_COMPILE", raising=False)
    monkeypatch.setenv("PYTHONPATH", "/some/where")
    monkeypatch.setattr(warm, "_STARTED", False)
    monkeypatch.setattr(warm, "_HELPER", None)
    monkeypatch.setattr(warm, "cold", lambda *args, **kwargs: True)
    monkeypatch.setattr(warm.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(warm.subprocess, "Popen", FakePopen)
    warm.start()
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert args[0] == sys.executable and args[1] == "-c"
    env = kwargs["env"]
    assert env["PYTHONSAFEPATH"] == "1"
    assert env["PYTHONPATH"] == "/some/where"
    assert env["MFG_PDE_PARALLEL_COMPILE"] == "0"
    monkeypatch.setattr(warm, "_HELPER", None)


def test_warm_cache_is_not_cold():
    """In this test session the kernels have been compiled (or loaded) already: no helper is needed."""
    import mfg_pde as mp

    g = mp.Grid([(0.0, 1.0)], 20)
    mp.solve(mp.MFGProblem(g, 1.0, 5, 0.4, mp.gaussian(g, 0.5, 0.1), coupling=mp.LocalPower(1.0)))
    assert warm.cold() is False


@pytest.mark.slow
@pytest.mark.parametrize("line", [True, False])
def test_helper_compiles_exactly_what_the_solve_loads(tmp_path, line):
    """On an empty cache: the helper's kernels (``compile_forward``) are the ones a solve needs -- a solve
    started after it compiles the HJB side only, none of the forward kernels; and without the helper the same
    solve compiles the forward kernels itself (so the check above can fail).  For a 1-D problem (one line: the
    line sweeps, none of the general ones) and a periodic one (the general sweeps)."""
    probe_code = PROBE if line else PROBE.replace("mp.Grid([(0.0, 1.0)], 30)", "mp.Grid([(0.0, 1.0)], 30, 'periodic')")
    forward = warm.forward_kernels(line, line)
    out = subprocess.run([sys.executable, "-c", "from mfg_pde.fd.warm import cold, compile_forward; "
                          f"assert cold(line={line}, line_residual={line}); compile_forward(line={line})"],
                         env=_env(tmp_path / "a", "0"),
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    probe = subprocess.run([sys.executable, "-c", probe_code], env=_env(tmp_path / "a", "0"), cwd=ROOT,
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    compiled = set(json.loads(probe.stdout.strip().splitlines()[-1]))
    assert ("hjb_sweep_line" if line else "hjb_sweep") in compiled
    assert compiled.isdisjoint(forward), compiled & set(forward)
    if line:  # one line compiles none of the general sweeps
        assert compiled.isdisjoint({"hjb_sweep", "fp_sweep", "newton_axis", "solve_axis"}), compiled
    alone = subprocess.run([sys.executable, "-c", probe_code], env=_env(tmp_path / "b", "0"), cwd=ROOT,
                           capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    needed = {forward[0], "coupling_stats"} | ({"pair_residual_line"} if line else set())
    assert needed <= set(json.loads(alone.stdout.splitlines()[-1]))
