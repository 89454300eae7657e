"""Progress lines: the ETA (synthetic records), the first-run compile note and the summary's compile time,
auto's race notes."""

import logging

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.fd import warm
from mfg_pde.iterate import monitor
from mfg_pde.iterate.monitor import Progress, eta_seconds, format_eta


def test_eta_from_a_linear_rate():
    # residual 10^-k at iteration k, 0.5 s per iteration: from 1e-5 to tol 1e-10 is 5 iterations, 2.5 s
    k = np.arange(1, 8)
    eta = eta_seconds(10.0 ** -k[:5], 0.5 * k[:5], 1e-10)
    assert eta == pytest.approx(2.5)
    # only the last window + 1 iterations count: an early plateau does not bend the rate
    res = np.r_[np.ones(10), 10.0 ** -np.arange(1, 8)]
    t = 2.0 * np.arange(res.size)
    assert eta_seconds(res, t, 1e-10) == pytest.approx(3 * 2.0)


def test_eta_unknown_when_not_decreasing_or_too_short():
    assert np.isnan(eta_seconds([1.0, 1.1, 1.2, 1.3], [1, 2, 3, 4], 1e-8))
    assert np.isnan(eta_seconds([1.0, 0.5], [1, 2], 1e-8))
    assert np.isnan(eta_seconds([1.0, 0.5, np.nan], [1, 2, 3], 1e-8))
    assert eta_seconds([1.0, 0.5, 1e-9], [1, 2, 3], 1e-8) == 0.0


def test_format_eta():
    assert format_eta(12.4) == "eta ~12s"
    assert format_eta(185) == "eta ~3m05s"
    assert format_eta(7800) == "eta ~2h10m"
    assert format_eta(0.3) == "eta <1s" and format_eta(0.0) == "eta <1s"
    assert format_eta(np.nan) == "eta ?" and format_eta(np.inf) == "eta ?"


class _Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def clear(self):
        self.records = []


@pytest.fixture
def caplog():
    """The messages on the ``mfg_pde`` logger (which does not propagate once progress attached its handler)."""
    keep = _Keep()
    logger = logging.getLogger("mfg_pde")
    logger.addHandler(keep)
    keep.at_level = lambda *a, **k: _Null()
    try:
        yield keep
    finally:
        logger.removeHandler(keep)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "mfg_pde"]


def test_progress_lines_carry_the_eta(caplog, monkeypatch):
    monkeypatch.setattr(warm, "cold", lambda: False)
    p = Progress(True, every=0.0, tol=1e-10)
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        for k in range(1, 6):
            p(k, {"residual": 10.0 ** -k, "wall_time": 0.4 * k})
        q = Progress(True, every=0.0, tol=1e-10)
        for k in range(1, 5):
            q(k, {"residual": 1.0 + k, "wall_time": 0.5 * k}, label="picard")
    lines = _lines(caplog)
    assert lines[-6].endswith("eta ~2s")  # 5 iterations of 0.4 s to go at iteration 5
    assert lines[-1].endswith("eta ?  picard")
    assert "eta" not in "".join(_lines(caplog)[:1])  # the header
    # without tol no ETA
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        Progress(True, every=0.0)(1, {"residual": 1.0, "wall_time": 0.1})
    assert "eta" not in _lines(caplog)[-1]


class _Result:
    def summary(self):
        return "converged: 3 iterations, wall time 18.000 s; grid (20,), Nt 10"


class _NoWall:
    def summary(self):
        return "converged: 3 iterations"


def test_cold_cache_note_once_and_compile_time_in_the_summary(caplog, monkeypatch):
    monkeypatch.setattr(warm, "cold", lambda: True)
    monkeypatch.setattr(monitor, "_COLD_SAID", [False])
    spent = [0.0]
    monkeypatch.setattr(monitor, "compile_seconds", lambda: spent[0])
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        p = Progress(True, tol=1e-8)
        Progress(True, tol=1e-8)  # a second loop in the same process: no second note
        spent[0] = 17.25
        p.done(_Result())
        Progress(False).done(_Result())
    lines = _lines(caplog)
    assert sum("compiling the numba kernels (first run after installing; cached afterwards)" in x
               for x in lines) == 1
    # the wall time shown is the solve's without the compile time, which follows it
    assert lines[-1] == ("converged: 3 iterations, wall time 0.750 s + 17.2 s compiling the numba kernels "
                         "(first run only, cached for the next runs); grid (20,), Nt 10")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        p = Progress(True, tol=1e-8)
        spent[0] += 2.0
        p.done(_NoWall())
    assert _lines(caplog)[-1] == ("converged: 3 iterations (+ 2.0 s compiling the numba kernels (first run only, "
                                  "cached for the next runs))")
    # warm cache: no note, and the summary line is the result's summary
    caplog.clear()
    monkeypatch.setattr(warm, "cold", lambda: False)
    monkeypatch.setattr(monitor, "_COLD_SAID", [False])
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        Progress(True).done(_Result())
    assert _lines(caplog) == ["converged: 3 iterations, wall time 18.000 s; grid (20,), Nt 10"]


def test_compile_seconds_counts_numba_compilations():
    import numba

    monitor._COMPILE.install()
    before = monitor.compile_seconds()

    @numba.njit(cache=False)
    def f(x):
        return x + 1

    f(1.0)
    assert monitor.compile_seconds() > before


def test_auto_says_when_newton_joins_and_who_drops_out(caplog, monkeypatch):
    """The hard corner (nu = 0.01, k = 10): the progress notes say that auto switches to Newton and why."""
    monkeypatch.setattr(warm, "cold", lambda: False)
    grid = mp.Grid([(0.0, 1.0)], 200, bc="periodic")
    pb = mp.MFGProblem(grid, 1.0, 100, np.sqrt(2 * 0.01), np.ones(200), coupling=mp.LocalPower(10),
                       potential=lambda x, t: -np.cos(2 * np.pi * x))
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        r = mp.solve(pb, method="auto", tol=1e-10, progress=True)
    text = "\n".join(_lines(caplog))
    assert r.solver["winner"] == "newton"
    assert "auto: switching to newton (joins the race) from the cold pair" in text
    assert "anderson no progress over 6 iterations" in text.split("switching to newton")[1].splitlines()[0]
    assert "auto: damped picard (theta = 0.5) joins the race" in text
    # who drops out depends on the race's timing: each drop-out in the status has its progress note
    for racer in ("picard", "anderson"):
        assert (f"{racer} stopped:" in r.solver["auto"]) == (f"auto: {racer} drops out of the race:" in text)


def test_core_and_planning_solvers_report_in_one_format(caplog, monkeypatch):
    """The same header and columns for the core loop and the Sinkhorn planning loop (whose inner column
    counts Sinkhorn sweeps and whose label names the loop phase), ETA included."""
    import mfg_pde as mp

    monkeypatch.setattr(warm, "cold", lambda: False)
    g = mp.Grid([(-4, 4)], 60)
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        mp.solve(mp.MFGProblem(g, T=1.0, Nt=20, sigma=0.6, m0=mp.gaussian(g, 0.0, 0.6),
                               coupling=mp.LocalPower(1.0, 1)), method="picard", progress=True)
    core = _lines(caplog)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mfg_pde"):
        mp.solve_planning(mp.PlanningProblem(g, 1.0, 20, 1.0, mp.gaussian(g, -1.0, 0.6), mp.gaussian(g, 1.0, 0.6),
                                             coupling=mp.QuadraticInteraction(2.0)), progress=True)
    plan = _lines(caplog)
    header = [x for x in core if x.lstrip().startswith("iter")]
    assert header and header[0] in plan
    rows = [x for x in plan if x.split()[0].isdigit()]
    assert rows and all(" eta " in f" {x} " for x in rows)
    assert all(x.split()[-3] == "anderson," for x in rows)  # the loop phase, then the Sinkhorn mismatch
    assert plan[-1].startswith("converged:")
