"""Bad input and faults: grids too large for the memory, unwritable --out, half-written or foreign
result files, signals during a save, stale temporary files, a closed stdout pipe, parameter errors
that name the parameter, the solver choices recorded in a result, plots whose closed form does not
apply.  No real solve: the CLI cases here are fakes (or are refused before they build anything)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde import cli
from mfg_pde import io as mio
from mfg_pde.model import problem as mproblem
from mfg_pde.cases import base
from mfg_pde.model.grid import Grid
from mfg_pde.result import MFGResult

INCOMPLETE = "not a complete mfg_pde result file"


# ---------------------------------------------------------------------------------- helpers
def _result(n: int = 16, nt: int = 6, case=None, params=None) -> MFGResult:
    grid = Grid((-2.0, 2.0), n)
    t = np.linspace(0.0, 1.0, nt + 1)
    x = grid.axes[0]
    m = np.stack([np.exp(-0.5 * (x - 0.2 * tk) ** 2 / 0.3) for tk in t])
    m /= grid.integrate(m)[:, None]
    u = np.stack([(1.0 - tk) * x ** 2 for tk in t])
    return MFGResult(grid=grid, t=t, u=u, m=m, converged=True, status="converged", iterations=2,
                     history={"residual": np.array([1e-1, 1e-9])}, params=dict(params or {}),
                     solver={"method": "anderson"}, case=case)


def _err_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("mfg-pde: error:"), err
    assert "Traceback" not in err
    return lines[0]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _run_script(code: str, *args, cwd=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(__file__),
                                                                       os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


SOLVES: list = []


def _fake_solve(problem, progress=False, **options):
    SOLVES.append(dict(options))
    res = _result(problem["N"], problem["Nt"])
    res.solver = dict(options)
    return res


class FaultCase(base.Case):
    """Solved by _fake_solve through the real Case.run; ``mode`` decides what its closed form does."""

    name = "fault-case"
    description = "test double"
    has_oracle = True
    params = (
        base.Param("N", 16, "cells", positive=True),
        base.Param("Nt", 6, "time steps", positive=True),
        base.Param("tol", 1e-10, "tolerance", positive=True),
        base.Param("method", "auto", "coupling loop"),
        base.Param("mode", "ok", "what oracle_mean does", choices=("ok", "raise", "shape", "nan")),
    )
    tolerances = {}

    def solver(self):
        return _fake_solve

    def build(self, p):
        return {"N": p["N"], "Nt": p["Nt"]}, {"method": p["method"], "tol": p["tol"]}

    def oracle_mean(self, p, t):
        t = np.asarray(t)
        if p["mode"] == "raise":
            raise FloatingPointError("closed form blows up")
        if p["mode"] == "shape":
            return np.zeros((t.size, 2))      # two axes for a 1-D result
        if p["mode"] == "nan":
            return np.full(t.size, np.nan)
        return 0.2 * t


@pytest.fixture
def fault_case(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, FaultCase.name, FaultCase())
    SOLVES.clear()
    yield FaultCase


# ---------------------------------------------------------------------------------- 1. memory
@pytest.mark.parametrize("case_name, N", [("lqg", 100_000_000), ("lqg-2d", 100_000)])
def test_cli_refuses_grid_too_large_before_building(case_name, N, capsys, monkeypatch):
    case = mp.cases.get(case_name)

    def boom(self, p):
        raise AssertionError("the case was built: the memory check came too late")

    monkeypatch.setattr(type(case), "build", boom)
    assert cli.main(["run", case_name, "-q", "--set", f"N={N}"]) == 2
    line = _err_line(capsys.readouterr().err)
    assert f"N = {N}" in line
    assert re.search(r"needs about [0-9.]+ [KMGTP]iB", line), line
    assert re.search(r"only [0-9.]+ [KMGTP]?i?B of memory is available", line), line
    assert "lower N" in line


def test_case_run_refuses_grid_too_large(monkeypatch):
    monkeypatch.setattr(mproblem, "available_memory", lambda: 50 * 2 ** 20)
    case = mp.cases.get("lqg")
    with pytest.raises(mproblem.InsufficientMemoryError, match=r"N = 4000 cells with Nt = 2000"):
        case.run({"N": 4000, "Nt": 2000})
    # the estimate depends on the method that will run: newton holds far more than picard
    assert mproblem.solve_memory_estimate((200,), 200, "newton") > 5 * mproblem.solve_memory_estimate(
        (200,), 200, "picard")


def test_problem_refuses_grid_too_large(monkeypatch):
    grid = Grid([(-4.0, 4.0)], 1000)
    m0 = mp.gaussian(grid, 0.0, 0.5)
    monkeypatch.setattr(mproblem, "available_memory", lambda: 10 ** 6)
    with pytest.raises(mproblem.InsufficientMemoryError) as info:
        mp.MFGProblem(grid, 1.0, 1000, 0.5, m0)
    msg = str(info.value)
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)
    assert "(1000,)" in msg and "Nt = 1000" in msg
    assert "976.6 KiB of memory is available" in msg
    assert re.search(r"needs about [0-9.]+ MiB", msg)
    monkeypatch.setenv("MFG_PDE_MEMORY_CHECK", "0")   # the documented way around the check
    mp.MFGProblem(grid, 1.0, 1000, 0.5, m0)
    monkeypatch.delenv("MFG_PDE_MEMORY_CHECK")
    monkeypatch.setattr(mproblem, "available_memory", lambda: 10 ** 9)
    mp.MFGProblem(grid, 1.0, 1000, 0.5, m0)


def test_available_memory_is_read():
    avail = mproblem.available_memory()
    if sys.platform.startswith("linux"):
        assert isinstance(avail, int) and avail > 0


# ---------------------------------------------------------------------------------- 2. --out
def _unwritable_dir_file():
    for d in ("/sys", "/proc"):
        if os.path.isdir(d):
            try:
                fd = os.open(os.path.join(d, ".mfg-pde-probe"), os.O_CREAT | os.O_WRONLY)
            except OSError:
                return os.path.join(d, "x.h5")
            os.close(fd)
            os.remove(os.path.join(d, ".mfg-pde-probe"))
    pytest.skip("no directory that refuses new files here")


@pytest.mark.parametrize("which, needle", [
    ("unwritable", "cannot create a file in"),
    ("directory", "is a directory"),
    ("empty", "the file name is empty"),
    ("missing-dir", "does not exist"),
    ("fifo", "not a regular file"),
])
def test_cli_refuses_bad_out_before_solving(which, needle, tmp_path, capsys, fault_case):
    def fifo():  # a special file (like /dev/null, which a save must never replace), made where it is harmless
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(tmp_path / "pipe.h5")
        return str(tmp_path / "pipe.h5")

    out = {"unwritable": _unwritable_dir_file, "directory": lambda: str(tmp_path),
           "empty": lambda: "", "missing-dir": lambda: str(tmp_path / "nope" / "r.h5"),
           "fifo": fifo}[which]()
    before = sorted(os.listdir(tmp_path))
    assert cli.main(["run", "fault-case", "-q", "--out", out]) == 2
    line = _err_line(capsys.readouterr().err)
    assert "--out" in line and needle in line
    assert not SOLVES, "the solve ran although --out could not be written"
    assert sorted(os.listdir(tmp_path)) == before
    if which == "fifo":
        assert not os.path.isfile(out)


def test_plot_refuses_bad_out(tmp_path, capsys):
    path = tmp_path / "r.h5"
    mio.save_result(_result(), path)
    assert cli.main(["plot", str(path), "--out", str(tmp_path)]) == 2
    assert "is a directory" in _err_line(capsys.readouterr().err)


def test_check_output_path_library(tmp_path):
    with pytest.raises(mio.OutputPathError, match="is a directory"):
        mio.save_result(_result(), tmp_path)
    with pytest.raises(mio.OutputPathError, match="empty"):
        mio.check_output_path("")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mio.check_output_path(tmp_path / "nope" / "r.h5")
    assert mio.check_output_path(tmp_path / "ok.h5") == str(tmp_path / "ok.h5")
    assert os.listdir(tmp_path) == []   # the probe file is gone


# ---------------------------------------------------------------------------------- 3. partial files
_KILL_DURING_SAVE = """
import os, signal, sys
import h5py
from test_faults import _result
from mfg_pde import io as mio
stage = int(sys.argv[2])
real = h5py.Group.create_dataset
count = [0]
def create(self, *a, **k):
    count[0] += 1
    if count[0] == stage:
        self.file.flush()                    # some of it reached the disk
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no handler can clean up
    return real(self, *a, **k)
h5py.Group.create_dataset = create
mio.save_result(_result(), sys.argv[1])
"""


@pytest.fixture
def killed_temp(tmp_path):
    """The temporary file a kill -9 in the middle of a save leaves behind."""
    target = tmp_path / "x.h5"
    proc = _run_script(_KILL_DURING_SAVE, target, 5, cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [p for p in tmp_path.iterdir() if p.name.startswith("x.h5.tmp-")]
    assert len(left) == 1 and not target.exists()
    return left[0]


def _bad_files(tmp_path, killed_temp):
    good = tmp_path / "good.h5"
    mio.save_result(_result(), good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    attrs_only = tmp_path / "attrs_only.h5"    # the attributes of a result, none of its data
    with h5py.File(attrs_only, "w") as f:
        f.attrs["mfg_pde_version"] = "0.1.0"
        f.attrs["grid"] = "[1, 2]"
    bad_grid = tmp_path / "bad_grid.h5"
    mio.save_result(_result(), bad_grid)
    with h5py.File(bad_grid, "a") as f:
        f.attrs["grid"] = "[1, 2]"
    return {"killed": killed_temp, "truncated": truncated, "garbage": garbage, "attrs_only": attrs_only,
            "bad_grid": bad_grid}


def test_partial_and_garbage_files_give_one_line_errors(tmp_path, killed_temp, capsys):
    for kind, path in _bad_files(tmp_path, killed_temp).items():
        for reader in (mp.load, mio.read_metadata):
            with pytest.raises(mio.ResultFileError, match=INCOMPLETE) as info:
                reader(path)
            assert "\n" not in str(info.value), (kind, str(info.value))
        for argv in (["info", str(path)], ["plot", str(path), "--out", str(tmp_path / "f.png")]):
            assert cli.main(argv) == 2, (kind, argv)
            line = _err_line(capsys.readouterr().err)
            assert INCOMPLETE in line and str(path) in line, (kind, line)
    assert not (tmp_path / "f.png").exists()


def test_killed_temp_file_is_named(killed_temp):
    with pytest.raises(mio.ResultFileError) as info:
        mp.load(killed_temp)
    msg = str(info.value)
    assert "did not finish" in msg and "temporary file of an unfinished save" in msg
    assert "no longer running" in msg and msg.rstrip().endswith("delete the temporary file")
    assert f"the finished result, if any, is {str(killed_temp)[:-len(killed_temp.suffix)]}" in msg


def test_complete_marker_written(tmp_path):
    path = tmp_path / "r.h5"
    mio.save_result(_result(), path)
    with h5py.File(path, "r") as f:
        assert bool(f.attrs["complete"]) is True
    with h5py.File(path, "a") as f:   # a file of an earlier version, without the marker, still loads
        del f.attrs["complete"]
    assert mp.load(path).m.shape == (7, 16)


# ---------------------------------------------------------------------------------- 4. temporary files
def test_save_removes_stale_temp_files_of_dead_processes(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f"x.h5.tmp-{dead}"
    stale.write_bytes(b"half a file")
    live = tmp_path / f"x.h5.tmp-{os.getppid()}"       # a running process: maybe still writing
    live.write_bytes(b"in progress")
    other = tmp_path / f"y.h5.tmp-{dead}"               # a different target: not ours to touch
    other.write_bytes(b"other")
    mio.save_result(_result(), tmp_path / "x.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x.h5", live.name, other.name])
    assert mio.remove_stale_temps(tmp_path / "y.h5") == [str(other)]


def test_save_fsyncs_before_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "x.h5"
    mio.save_result(_result(), target)
    kinds = [k for k, _ in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    tmp = events[1][1]
    assert tmp.startswith(str(target) + ".tmp-")
    if os.path.exists("/proc/self/fd"):
        assert events[0][1] == tmp and events[2][1] == str(tmp_path)


_SIGNAL_DURING_SAVE = """
import os, signal, sys, time
from test_faults import _result
import mfg_pde as mp
from mfg_pde import io as mio
target, signame, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sig = getattr(signal, signame)
if signal.getsignal(sig) == signal.SIG_IGN:  # inherited as ignored (nohup, a background job): Python's default
    signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
mio.save_result(_result(case="old"), target)            # the existing good file
before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
if mode == "own-handler":
    seen = []
    signal.signal(sig, lambda s, f: seen.append(s))
    before[sig] = signal.getsignal(sig)
real = mio._write
def slow(f, result):
    real(f, result)
    if mode == "swallowed":             # the signal's exception is lost inside h5py
        try:
            os.kill(os.getpid(), sig)
            time.sleep(1)
        except BaseException:
            pass
    else:
        os.kill(os.getpid(), sig)       # the signal arrives in the middle of the write
        time.sleep(1)
mio._write = slow
try:
    mio.save_result(_result(n=24, case="new"), target)
except KeyboardInterrupt:
    print("KeyboardInterrupt")
except InterruptedError as exc:
    print("InterruptedError", exc, "seen", seen)
after = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
print("restored", after == before)
print("files", sorted(os.listdir(os.path.dirname(os.path.abspath(target)))))
print("case", mp.load(target).case)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_terminating_signal_during_save_leaves_no_temp_file(signame, tmp_path):
    target = tmp_path / "x.h5"
    proc = _run_script(_SIGNAL_DURING_SAVE, target, signame, "plain", cwd=tmp_path)
    assert proc.returncode == -getattr(signal, signame), (proc.stdout, proc.stderr)
    assert sorted(os.listdir(tmp_path)) == ["x.h5"]
    assert mp.load(target).case == "old"


@pytest.mark.parametrize("mode", ["plain", "swallowed"])
def test_sigint_during_save_raises_keyboard_interrupt(mode, tmp_path):
    target = tmp_path / "x.h5"
    proc = _run_script(_SIGNAL_DURING_SAVE, target, "SIGINT", mode, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out == ["KeyboardInterrupt", "restored True", "files ['x.h5']", "case old"], proc.stdout


def test_signal_with_own_handler_during_save(tmp_path):
    target = tmp_path / "x.h5"
    proc = _run_script(_SIGNAL_DURING_SAVE, target, "SIGTERM", "own-handler", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("InterruptedError") and "interrupted by SIGTERM" in out[0]
    assert out[0].endswith(f"seen [{int(signal.SIGTERM)}]")     # the program's handler got the signal
    assert out[1:] == ["restored True", "files ['x.h5']", "case old"], proc.stdout


def test_save_restores_signal_handlers(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    mio.save_result(_result(), tmp_path / "x.h5")
    assert {s: signal.getsignal(s) for s in before} == before


# ---------------------------------------------------------------------------------- 5. Ctrl-C in the CLI
_CLI_SIGINT = """
import os, signal, sys, time
# Ctrl-C as in a terminal: a job started in the background inherits SIGINT ignored, and the save respects that
signal.signal(signal.SIGINT, signal.default_int_handler)
from test_faults import FaultCase
from mfg_pde import cli, io as mio
from mfg_pde.cases import base
base.register(FaultCase)
target, mode = sys.argv[1], sys.argv[2]
assert cli.main(["run", "fault-case", "-q", "--out", target]) == 0
real = mio._write
def slow(f, result):
    real(f, result)
    try:
        os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C in the middle of the write
        time.sleep(1)
    except BaseException:
        if mode != "swallowed":               # "swallowed": its exception is lost inside h5py
            raise
mio._write = slow
sys.exit(cli.main(["run", "fault-case", "-q", "--set", "N=24", "--out", target]))
"""


@pytest.mark.parametrize("mode", ["plain", "swallowed"])
def test_cli_ctrl_c_during_save_exits_130_and_keeps_old_file(mode, tmp_path):
    target = tmp_path / "r.h5"
    proc = _run_script(_CLI_SIGINT, target, mode, cwd=tmp_path)
    assert proc.returncode == 130, (proc.stdout, proc.stderr)
    assert "mfg-pde: interrupted" in proc.stderr and "Traceback" not in proc.stderr
    assert "wrote" not in proc.stdout.split("status")[-1]
    assert sorted(os.listdir(tmp_path)) == ["r.h5"]
    assert mp.load(target).m.shape == (7, 16)      # the first run's file (N=16), untouched


# ---------------------------------------------------------------------------------- 7. parameter errors
@pytest.mark.parametrize("kw, needle", [
    ({"sigma": "abc"}, "sigma = 'abc'"),
    ({"sigma": None}, "sigma = None"),
    ({"Nt": "abc"}, "Nt = 'abc'"),
    ({"Nt": 2.5}, "Nt = 2.5"),
    ({"Nt": 0}, "Nt = 0"),
    ({"T": "abc"}, "T = 'abc'"),
])
def test_problem_errors_name_the_parameter(kw, needle):
    grid = Grid([(-4.0, 4.0)], 40)
    args = {"T": 1.0, "Nt": 10, "sigma": 0.5, **kw}
    with pytest.raises(ValueError) as info:
        mp.MFGProblem(grid, m0=mp.gaussian(grid, 0.0, 0.5), **args)
    assert needle in str(info.value)
    assert re.search(r"must be (an integer|a number|finite)", str(info.value))


@pytest.mark.parametrize("shape, needle", [
    ("abc", "grid shape = 'abc'"),
    (10.7, "grid shape = 10.7"),
    (None, "grid shape = None"),
    ([10, 2.5], "grid shape[1] = 2.5"),
    (True, "grid shape = True"),
])
def test_grid_cell_count_must_be_a_positive_integer(shape, needle):
    bounds = [(0.0, 1.0)] * (len(shape) if isinstance(shape, list) else 1)
    with pytest.raises(ValueError) as info:
        Grid(bounds, shape)
    assert needle in str(info.value)
    assert "positive integer" in str(info.value) or "number of cells" in str(info.value)


def test_grid_integral_float_count_still_accepted():
    assert Grid([(0.0, 1.0)], 10.0).shape == (10,)
    assert Grid([(0.0, 1.0)] * 2, (np.int64(5), 6)).shape == (5, 6)


def test_callables_returning_the_wrong_shape_are_named():
    grid = Grid([(-4.0, 4.0)], 40)
    m0 = mp.gaussian(grid, 0.0, 0.5)
    pb = mp.MFGProblem(grid, 1.0, 10, 0.5, m0, potential=lambda x, t: np.zeros(3))
    with pytest.raises(ValueError) as info:
        pb.potential_steps()
    msg = str(info.value)
    assert "potential" in msg and "(3,)" in msg and "(40,)" in msg
    pb = mp.MFGProblem(grid, 1.0, 10, 0.5, m0, terminal_cost=lambda x: np.zeros((40, 2)))
    with pytest.raises(ValueError) as info:
        pb.terminal_values(m0)
    msg = str(info.value)
    assert "terminal_cost" in msg and "(40, 2)" in msg and "(40,)" in msg
    pb = mp.MFGProblem(grid, 1.0, 10, 0.5, m0, terminal_cost=lambda x: "abc")
    with pytest.raises(ValueError, match="terminal_cost"):
        pb.terminal_values(m0)
    # a number or a broadcastable shape is still fine
    pb = mp.MFGProblem(grid, 1.0, 10, 0.5, m0, potential=lambda x, t: 1.0, terminal_cost=lambda x: 0.0)
    assert pb.potential_steps().shape == (10, 40) and pb.terminal_values(m0).shape == (40,)


# ---------------------------------------------------------------------------------- 8. params record the method
def test_run_records_solver_choices_in_params(tmp_path, capsys, fault_case):
    path = tmp_path / "r.h5"
    assert cli.main(["run", "fault-case", "-q", "--method", "picard", "--tol", "1e-6", "--max-iter", "7",
                     "--out", str(path)]) == 0
    capsys.readouterr()
    assert SOLVES[-1]["method"] == "picard"
    res = mp.load(path)
    assert res.params["method"] == "picard" and res.params["tol"] == 1e-6 and res.params["max_iter"] == 7
    assert res.solver["method"] == "picard"
    assert cli.main(["info", str(path)]) == 0
    params_line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("params"))
    assert "method=picard" in params_line and "max_iter=7" in params_line
    # without solver options the case's own parameters are recorded unchanged
    run = FaultCase().run({})
    assert run.result.params["method"] == "auto" and "max_iter" not in run.result.params


# ---------------------------------------------------------------------------------- 9. plot without a closed form
def _spy_plot(monkeypatch):
    from mfg_pde import plotting

    seen = {}
    real = plotting.plot_result

    def spy(result, path=None, oracle_mean=None):
        seen["oracle"] = oracle_mean
        return real(result, path=path, oracle_mean=oracle_mean)

    monkeypatch.setattr(plotting, "plot_result", spy)
    return seen


@pytest.mark.parametrize("case, params, drawn", [
    ("fault-case", {"N": 16, "Nt": 6, "mode": "ok", "method": "picard", "max_iter": 3}, True),
    ("fault-case", {"N": 16, "Nt": 6, "mode": "raise"}, False),
    ("fault-case", {"N": 16, "Nt": 6, "mode": "shape"}, False),
    ("fault-case", {"N": 16, "Nt": 6, "mode": "nan"}, False),
    ("fault-case", {"T": 1.0, "Nt": 6, "sigma": 0.5, "grid": {"shape": [16]}}, False),  # a plain solve's
    ("fault-case", {"N": "many"}, False),                                            # not the case's values
    (None, {"T": 1.0, "Nt": 6}, False),
])
def test_plot_skips_a_closed_form_that_does_not_apply(case, params, drawn, tmp_path, capsys, monkeypatch,
                                                      fault_case):
    path = tmp_path / "r.h5"
    mio.save_result(_result(case=case, params=params), path)
    seen = _spy_plot(monkeypatch)
    fig = tmp_path / "r.png"
    assert cli.main(["plot", str(path), "--out", str(fig)]) == 0
    cap = capsys.readouterr()
    assert fig.exists() and fig.read_bytes()[:4] == b"\x89PNG"
    assert (seen["oracle"] is not None) == drawn
    if not drawn and case is not None:
        assert "no closed-form mean drawn" in cap.err and "Traceback" not in cap.err
        assert len(cap.err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------- 11. closed pipe
def test_info_into_a_closed_pipe_ends_quietly(tmp_path):
    path = tmp_path / "r.h5"
    mio.save_result(_result(), path)
    r, w = os.pipe()
    os.close(r)                           # the reader is gone before anything is written
    try:
        proc = subprocess.run([sys.executable, "-m", "mfg_pde.cli", "info", str(path)], stdout=w,
                              stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(w)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""


def test_broken_pipe_in_process(tmp_path, monkeypatch, capsys):
    path = tmp_path / "r.h5"
    mio.save_result(_result(), path)

    class Closed:
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert cli.main(["info", str(path)]) == 0
    assert capsys.readouterr().err == ""
