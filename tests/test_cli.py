"""The ``mfg-pde`` command line, run in-process on fake cases registered for the test.

Each registered fake case has its ``solver`` (the hook ``Case.run`` calls to get its solve function)
overridden with pytest's monkeypatch to return a fake solve that builds a synthetic MFGResult, so these
tests exercise the real ``Case.run`` plumbing (parameter resolution, solver keyword pass-through,
checks) and the real import graph without solving anything.
"""

from __future__ import annotations

import re
import sys

import h5py
import numpy as np
import pytest

from mfg_pde import cli
from mfg_pde.cases import base
from mfg_pde.model.grid import Grid
from mfg_pde.result import MFGResult, load

SOLVE_CALLS: list = []


def _fake_solve(problem, progress=False, **options):
    """Stand-in for mfg_pde.iterate.solve.solve: a Gaussian drifting with speed problem['drift'],
    plus a first-order "discretisation error" 1/N in its mean (so refinement sees order 1)."""
    SOLVE_CALLS.append({"problem": dict(problem), "progress": progress, **options})
    if progress:
        print("iter 1  residual 1.0e-01")   # to stdout on purpose: the CLI must divert it
        print("iter 2  residual 1.0e-09")
    grid = Grid((-3.0, 3.0), problem["N"])
    t = np.linspace(0.0, 1.0, problem["Nt"] + 1)
    x = grid.axes[0]
    s = problem["sigma"]
    m = np.stack([np.exp(-0.5 * (x - problem["drift"] * tk - 1.0 / problem["N"]) ** 2 / s**2)
                  for tk in t])
    m /= grid.integrate(m)[:, None]
    u = np.stack([(1.0 - tk) * x**2 for tk in t])
    converged = not problem["diverge"]
    return MFGResult(grid=grid, t=t, u=u, m=m, converged=converged,
                     status="converged" if converged else "max_iter",
                     iterations=2 if converged else options.get("max_iter", 50),
                     history={"residual": np.array([1e-1, 1e-9]),
                              "hjb_residual": np.array([1e-2, 1e-10]),
                              "wall_time": np.array([0.01, 0.02])},
                     solver=dict(options))


class FakeOracleCase(base.Case):
    name = "fake-oracle"
    description = "A drifting Gaussian with a closed-form mean.\nSecond line is not shown."
    has_oracle = True
    params = (
        base.Param("sigma", 0.5, "width", positive=True),
        base.Param("N", 24, "cells"),
        base.Param("Nt", 10, "time steps"),
        base.Param("drift", 0.2, "mean speed"),
        base.Param("bias", 0.0, "error added to the computed mean (to fail the check)"),
        base.Param("diverge", False, "pretend the solver did not converge"),
    )
    tolerances = {"mean path": 0.05}

    def build(self, p):
        problem = {k: p[k] for k in ("sigma", "N", "Nt", "drift", "diverge")}
        return problem, {"method": "fake-picard", "tol": 1e-8, "max_iter": 50}

    def oracle_mean(self, p, t):
        return p["drift"] * np.asarray(t)

    def errors(self, result, p):
        err = np.max(np.abs(result.mean()[:, 0] + p["bias"] - self.oracle_mean(p, result.t)))
        return {"mean path": float(err)}

    def checks(self, result, p):
        return super().checks(result, p) + [base.Check("mass", result.mass_error(), 1e-10)]


class FakePlainCase(base.Case):
    name = "fake-plain"
    description = "No closed form."
    has_oracle = False
    params = (base.Param("N", 12, "cells"),)

    def build(self, p):
        return {"sigma": 0.4, "N": p["N"], "Nt": 5, "drift": 0.0, "diverge": False}, {}


class CrashCase(base.Case):
    name = "fake-crash"
    description = "Its solver raises."
    has_oracle = True

    def run(self, overrides=None, progress=False, **kw):
        raise RuntimeError("kaboom\nsecond line")


@pytest.fixture(autouse=True)
def fake_registry(monkeypatch):
    """Only the fake cases are registered, and each registered case's solver is the fake, for each test."""
    monkeypatch.setattr(base, "_REGISTRY", {})
    for cls in (FakeOracleCase, FakePlainCase):
        base.register(cls)
        monkeypatch.setattr(base.get(cls.name), "solver", lambda: _fake_solve)
    SOLVE_CALLS.clear()
    yield


def test_fake_solver_is_the_registered_cases_override_only():
    """The override sits on the registered case objects; the solver module itself is the real one."""
    from mfg_pde.iterate import solve as dispatcher

    assert sys.modules["mfg_pde.iterate.solve"] is dispatcher
    assert base.get("fake-oracle").solver() is _fake_solve
    assert base.get("fake-plain").solver() is _fake_solve
    assert FakeOracleCase().solver() is dispatcher.solve   # an unpatched case gets the real solve
    assert not SOLVE_CALLS


def _err_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("mfg-pde: error:"), err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------------- cases
def test_cases_lists_names_descriptions_and_oracle_marker(capsys):
    assert cli.main(["cases"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith("fake-oracle") and "drifting Gaussian" in out[0]
    assert out[0].endswith("[oracle]") and "Second line" not in out[0]
    assert out[1].startswith("fake-plain") and "[oracle]" not in out[1]


def test_cases_verbose_lists_parameters(capsys):
    assert cli.main(["cases", "-v"]) == 0
    out = capsys.readouterr().out
    assert "sigma" in out and "0.5" in out and "width" in out and "diverge" in out


def test_version_and_help(capsys):
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mfg-pde ") and out.strip() != "mfg-pde"
    assert cli.main(["--help"]) == 0
    assert "validate" in capsys.readouterr().out


def test_no_command_and_unknown_command(capsys):
    assert cli.main([]) == 2
    _err_line(capsys.readouterr().err)
    assert cli.main(["frobnicate"]) == 2
    _err_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------- run
def test_run_summary_checks_and_out(tmp_path, capsys):
    out_file = tmp_path / "r.h5"
    rc = cli.main(["run", "fake-oracle", "--set", "sigma=0.4", "--set", "N=32",
                   "--out", str(out_file), "--method", "newton", "--tol", "1e-6",
                   "--max-iter", "7"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    out = cap.out
    assert "fake-oracle" in out
    assert "sigma=0.4" in out and "N=32" in out and "drift" not in out.split("status")[0]
    assert "method=newton" in out
    assert "converged" in out and "iterations" in out
    assert "residual" in out and "mass error" in out and "wall time" in out
    assert "mean path" in out and "PASS" in out and "FAIL" not in out
    # progress went to stderr, not stdout
    assert "iter 1" in cap.err and "iter 1" not in out
    # solver options passed through Case.run
    call = SOLVE_CALLS[-1]
    assert call["method"] == "newton" and call["tol"] == 1e-6 and call["max_iter"] == 7
    assert call["progress"] is True
    assert call["problem"]["sigma"] == 0.4 and call["problem"]["N"] == 32
    # the file round-trips
    res = load(out_file)
    assert res.case == "fake-oracle"
    assert res.params["sigma"] == 0.4 and res.params["N"] == 32
    assert res.m.shape == (11, 32)


def test_run_quiet_defaults_no_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "fake-oracle", "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "defaults" in cap.out
    assert cap.err == ""
    assert SOLVE_CALLS[-1]["progress"] is False
    assert SOLVE_CALLS[-1]["method"] == "fake-picard"  # case default kept when not overridden
    assert list(tmp_path.iterdir()) == []             # no file unless --out


def test_run_failed_check_exits_1(capsys):
    assert cli.main(["run", "fake-oracle", "-q", "--set", "bias=0.1"]) == 1
    cap = capsys.readouterr()
    assert "FAIL" in cap.out
    assert "Traceback" not in cap.err


def test_run_not_converged_exits_1(capsys):
    assert cli.main(["run", "fake-oracle", "-q", "--set", "diverge=yes"]) == 1
    assert "max_iter" in capsys.readouterr().out


def test_run_case_without_checks(capsys):
    assert cli.main(["run", "fake-plain", "-q"]) == 0
    out = capsys.readouterr().out
    assert "fake-plain" in out and "PASS" not in out


class FakeFigureCase(FakePlainCase):
    name = "fake-figure"
    params = (base.Param("N", 12, "cells"), base.Param("figure", "", "write a figure here", output=True))

    def decorate(self, result, problem, p):
        if p["figure"]:
            with open(p["figure"], "w") as f:
                f.write("png")


def test_run_announces_every_file_the_case_wrote(tmp_path, capsys, monkeypatch):
    """A case's output parameter (figure, table, csv, h5) names a file it writes: the run says so, with the
    parameter; nothing is announced when the parameter is empty."""
    base.register(FakeFigureCase)
    monkeypatch.setattr(base.get("fake-figure"), "solver", lambda: _fake_solve)
    fig = tmp_path / "f.png"
    assert cli.main(["run", "fake-figure", "-q", "--set", f"figure={fig}"]) == 0
    out = capsys.readouterr().out
    assert fig.is_file() and f"wrote {fig} (--set figure=...)" in out
    assert base.get("fake-figure").written({"N": 12, "figure": str(fig)}) == [("figure", str(fig))]
    assert base.get("fake-figure").written({"N": 12, "figure": str(tmp_path / "missing.png")}) == []
    assert cli.main(["run", "fake-figure", "-q"]) == 0
    assert "wrote" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["run", "nope"], "unknown case 'nope'"),
    (["run", "fake-oracle", "--set", "bogus=1"], "no parameter 'bogus'"),
    (["run", "fake-oracle", "--set", "sigma=abc"], "sigma"),
    (["run", "fake-oracle", "--set", "sigma=-1"], "must be > 0"),
    (["run", "fake-oracle", "--set", "sigma"], "name=value"),
    (["run", "fake-oracle", "--set", "=3"], "name"),
    (["run", "fake-oracle", "--tol", "abc"], "--tol"),
    (["run", "fake-oracle", "--tol", "-1"], "--tol"),
    (["run", "fake-oracle", "--max-iter", "0"], "--max-iter"),
    (["run"], "CASE"),
    (["run", "fake-oracle", "--out", "/nonexistent-dir-xyz/r.h5"], "does not exist"),
])
def test_run_user_errors(capsys, argv, needle):
    assert cli.main(argv) == 2
    line = _err_line(capsys.readouterr().err)
    assert needle in line
    assert not SOLVE_CALLS  # nothing was solved


# ---------------------------------------------------------------------------------- validate
def test_validate_default_runs_oracle_cases_only(capsys):
    assert cli.main(["validate", "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "fake-oracle" in cap.out and "fake-plain" not in cap.out
    # Case.validate: default-grid checks plus the observed order on a twice finer grid
    assert "mean path" in cap.out and "observed order" in cap.out and ">= 0.8" in cap.out
    assert "FAIL" not in cap.out
    assert cap.out.strip().splitlines()[-1] == "3 passed, 0 failed"
    assert cap.err == ""
    assert all(c["progress"] is False for c in SOLVE_CALLS)
    assert sorted(c["problem"]["N"] for c in SOLVE_CALLS) == [24, 48]


def test_validate_failed_check(capsys, monkeypatch):
    monkeypatch.setattr(FakeOracleCase, "tolerances", {"mean path": 1e-3})
    assert cli.main(["validate", "-q", "--case", "fake-oracle"]) == 1
    cap = capsys.readouterr()
    assert "FAIL" in cap.out
    assert cap.out.strip().splitlines()[-1] == "2 passed, 1 failed"


def test_validate_named_cases_and_failures(capsys):
    base.register(CrashCase)
    rc = cli.main(["validate", "-q", "--case", "fake-plain", "--case", "fake-crash"])
    cap = capsys.readouterr()
    assert rc == 1
    assert "fake-plain" in cap.out and "fake-crash" in cap.out and "kaboom" in cap.out
    assert cap.out.strip().splitlines()[-1] == "1 passed, 1 failed"
    assert "Traceback" not in cap.err


def test_validate_progress_names_each_case_and_its_time(capsys, monkeypatch):
    from mfg_pde.fd import warm

    monkeypatch.setattr(warm, "cold", lambda: False)
    base.register(CrashCase)
    assert cli.main(["validate", "--case", "fake-plain", "--case", "fake-crash"]) == 1
    err = capsys.readouterr().err
    assert "validating fake-plain (case 1 of 2) ..." in err and "validating fake-crash (case 2 of 2) ..." in err
    assert re.search(r"fake-plain done in \d+\.\d\d s \(pass\)", err)
    assert re.search(r"fake-crash failed after \d+\.\d\d s", err)
    assert re.search(r"2 cases validated in \d+\.\d s", err)
    assert "compiling the numba kernels" not in err


def test_validate_unknown_case(capsys):
    assert cli.main(["validate", "--case", "nope"]) == 2
    assert "unknown case" in _err_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------- info / plot
@pytest.fixture
def saved(tmp_path, capsys):
    path = tmp_path / "res.h5"
    assert cli.main(["run", "fake-oracle", "-q", "--set", "drift=0.3", "--out", str(path)]) == 0
    capsys.readouterr()
    SOLVE_CALLS.clear()
    return path


def test_info(saved, capsys):
    assert cli.main(["info", str(saved)]) == 0
    out = capsys.readouterr().out
    for needle in ("fake-oracle", "drift=0.3", "method=fake-picard", "shape (24,)",
                   "converged", "iterations", "(11, 24)", "(11, 24, 1)", "residual",
                   "1.000e-09", "reflecting"):
        assert needle in out, needle


def test_info_errors(tmp_path, capsys):
    assert cli.main(["info", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in _err_line(capsys.readouterr().err)
    bad = tmp_path / "bad.h5"
    bad.write_text("hello")
    assert cli.main(["info", str(bad)]) == 2
    assert "not an HDF5 file" in _err_line(capsys.readouterr().err)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    assert cli.main(["info", str(foreign)]) == 2
    assert "mfg_pde_version" in _err_line(capsys.readouterr().err)


def test_plot_default_out_with_oracle(saved, capsys, monkeypatch):
    seen = {}
    from mfg_pde import plotting

    real = plotting.plot_result

    def spy(result, path=None, oracle_mean=None):
        seen["oracle"] = oracle_mean
        return real(result, path=path, oracle_mean=oracle_mean)

    monkeypatch.setattr(plotting, "plot_result", spy)
    assert cli.main(["plot", str(saved)]) == 0
    png = saved.with_suffix(".png")
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert str(png) in capsys.readouterr().out
    np.testing.assert_allclose(seen["oracle"], 0.3 * np.linspace(0, 1, 11))
    assert plotting.plot_result is spy


def test_plot_explicit_out_and_unregistered_case(saved, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", {})  # case no longer known: plot without oracle
    fig = tmp_path / "sub.png"
    assert cli.main(["plot", str(saved), "--out", str(fig)]) == 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(fig) in capsys.readouterr().out
    assert not saved.with_suffix(".png").exists()   # only the named output is written


def test_plot_missing_file(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path / "nope.h5")]) == 2
    _err_line(capsys.readouterr().err)

