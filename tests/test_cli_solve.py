"""``mfg-pde solve FILE.py``: runs a user's file that defines ``problem`` (and optionally ``options`` and
``name``), solves it, prints the summary, writes and announces the result file (and the figure); clear
errors for a missing file, a file without ``problem``, a wrong type, and exceptions inside the file."""

import os
import subprocess
import sys
import textwrap

import h5py
import pytest

import mfg_pde as mp
from mfg_pde import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(mp.__file__)))

PROBLEM = """\
import mfg_pde as mp

grid = mp.Grid([(-3, 3)], 30)
problem = mp.MFGProblem(grid, T=0.5, Nt=10, sigma=0.6, m0=mp.gaussian(grid, mean=-0.5, std=0.5),
                        coupling=mp.QuadraticInteraction(beta=2.0),
                        terminal_cost=mp.QuadraticTerminalCost(q=1.0, target=1.0))
"""


def write(tmp_path, text, name="my_problem.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_solve_writes_and_announces_the_result(in_tmp, capsys):
    write(in_tmp, PROBLEM + 'options = dict(method="picard", tol=1e-7)\nname = "lqg small"\nprint("side note")\n'
          'if __name__ == "__main__":   # not run by mfg-pde solve\n    raise SystemExit("ran the main block")\n')
    assert cli.main(["solve", "my_problem.py"]) == 0
    out, err = capsys.readouterr()
    assert "status      converged" in out and "solver      method=picard, tol=1e-07" in out
    assert "problem     lqg small: MFGProblem, grid 30, Nt 10" in out
    assert out.rstrip().endswith("wrote lqg_small.h5")
    assert "side note" in err and "side note" not in out        # the file's prints go to stderr
    assert "iter" in err                                         # progress (not --quiet)
    r = mp.load(in_tmp / "lqg_small.h5")
    assert r.converged and r.solver["method"] == "picard" and r.solver["tol"] == 1e-7
    pb = mp.load_problem(in_tmp / "lqg_small.h5")                # the file reproduces the run
    assert pb.name == "lqg small" and pb.Nt == 10


def test_solve_out_figure_quiet_and_flags(in_tmp, capsys):
    write(in_tmp, PROBLEM)
    rc = cli.main(["solve", "my_problem.py", "--out", "res.h5", "--figure", "fig.png", "--quiet",
                   "--method", "anderson", "--tol", "1e-9"])
    assert rc == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-2:] == ["wrote res.h5", "wrote fig.png"]
    assert err == ""                                             # --quiet: no progress
    assert (in_tmp / "fig.png").stat().st_size > 1000
    with h5py.File(in_tmp / "res.h5", "r") as f:
        assert f.attrs["converged"] == 1
    assert mp.load(in_tmp / "res.h5").solver["method"] == "anderson"
    # default name: the file's stem; --init warm-starts from the saved result
    assert cli.main(["solve", "my_problem.py", "-q", "--init", "res.h5", "--method", "anderson"]) == 0
    out, _ = capsys.readouterr()
    assert "start       res.h5: a result on the same grid (30,) and Nt 10" in out
    assert "iterations  1\n" in out and out.rstrip().endswith("wrote my_problem.h5")


def test_solve_planning_problem(in_tmp, capsys):
    write(in_tmp, """\
        import mfg_pde as mp
        grid = mp.Grid([(-2, 2)], 24)
        problem = mp.PlanningProblem(grid, 1.0, 10, 1.0, mp.gaussian(grid, -0.5, 0.4), mp.gaussian(grid, 0.5, 0.4),
                                     coupling=mp.QuadraticInteraction(1.0))
        """, "plan.py")
    assert cli.main(["solve", "plan.py", "-q"]) == 0
    out, _ = capsys.readouterr()
    assert "PlanningProblem" in out and "planning    energy E" in out
    r = mp.load(in_tmp / "plan.h5")
    assert r.planning is not None and r.solver["method"].startswith("planning-sinkhorn")


def test_solve_not_converged_exits_1(in_tmp, capsys):
    write(in_tmp, PROBLEM + 'options = {"method": "picard", "max_iter": 1, "tol": 1e-12}\n')
    assert cli.main(["solve", "my_problem.py", "-q"]) == 1
    out, err = capsys.readouterr()
    assert "converged   no" in out and "wrote my_problem.h5" in out   # the result is still written
    assert "did not converge" in err


@pytest.mark.parametrize("text,argv,needle", [
    (None, ["solve", "missing.py"], "missing.py: no such file"),
    ("x = 1\n", ["solve", "my_problem.py"], "my_problem.py defines no `problem`: define it at module level"),
    ("problem = 3\n", ["solve", "my_problem.py"], "`problem` is a int, not an mp.MFGProblem, mp.PlanningProblem or mp.MultiPopulationProblem"),
    ("def problem():\n    pass\n", ["solve", "my_problem.py"], "call it: problem = make_problem(...)"),
    (PROBLEM + "options = [1]\n", ["solve", "my_problem.py"], "`options` is a list; give a dict"),
    (PROBLEM + "name = 7\n", ["solve", "my_problem.py"], "`name` is a int; give a string"),
    ("import mfg_pde as mp\n\ngrid = mp.Grid([(-3, 3)], 2)\nproblem = None\n", ["solve", "my_problem.py"],
     "my_problem.py, line 3: grid = mp.Grid([(-3, 3)], 2): ValueError: grid shape[0] = 2: need at least 3 cells"),
    ("x = (1,\n", ["solve", "my_problem.py"], "my_problem.py, line 1: x = (1,: SyntaxError:"),
    ("import sys\nsys.exit(3)\n", ["solve", "my_problem.py"], "called sys.exit(3)"),
    (PROBLEM + 'options = {"max_iters": 3}\n', ["solve", "my_problem.py"],
     "solving `problem` failed: solve(method='auto') got an unexpected option 'max_iters'; did you mean 'max_iter'?"),
    (PROBLEM, ["solve", "my_problem.py", "--init", "nope.h5"], "--init nope.h5: no such file"),
    (PROBLEM, ["solve", "my_problem.py", "--out", "no/such/dir/r.h5"], "--out no/such/dir/r.h5: directory"),
    (PROBLEM, ["solve", "r.h5"], "r.h5: is a result file"),
    (PROBLEM + 'options = {"init": "r.h5"}\n', ["solve", "my_problem.py", "--init", "r.h5"], "already gives a start"),
])
def test_solve_user_errors(in_tmp, capsys, text, argv, needle):
    if text is not None:
        write(in_tmp, text)
    (in_tmp / "r.h5").write_bytes(b"")
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[-1].startswith("mfg-pde: error: ") and needle in lines[-1], err
    assert all(line.startswith("mfg-pde: solving my_problem from") for line in lines[:-1]), err
    assert not (in_tmp / "my_problem.h5").exists()


def test_solve_through_the_entry_point_shows_the_users_line(tmp_path):
    """The installed command's module, in a subprocess: the error names the user's file and line."""
    write(tmp_path, "import mfg_pde as mp\n\n\ndef make():\n    return mp.Grid([(-1, 1)], 10).nope\n\nproblem = make()\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MFG_PDE_TRACEBACK", None)
    proc = subprocess.run([sys.executable, "-m", "mfg_pde.cli", "solve", "my_problem.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("mfg-pde: error: my_problem.py, line 5: return mp.Grid([(-1, 1)], 10).nope: "
                                   "AttributeError: 'Grid' object has no attribute 'nope'")
