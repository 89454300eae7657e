"""A result file reproduces its result: the /problem group (the problem's data on the grid), mp.load_problem,
the /provenance group, the history/outflow dimension scales, and boolean attributes stored as int8."""

import json
import os
import sys

import h5py
import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde import io as mio
from mfg_pde.model.couplings import Coupling
from mfg_pde.result import ProblemRebuildError

DATA = os.path.join(os.path.dirname(__file__), "data")


def kernel(d):
    return np.exp(-d ** 2)


def small_mfg():
    grid = mp.Grid([(-3, 3)], 40)
    coupling = mp.QuadraticInteraction(mp.PiecewiseConstant([0.0, 0.5, 1.0], [1.0, 2.0])) + mp.LocalPower(0.5) \
        + 0.3 * mp.KernelInteraction(kernel)
    return mp.MFGProblem(grid, T=1.0, Nt=16, sigma=0.5, m0=mp.gaussian(grid, 0.0, 0.5), coupling=coupling,
                         potential=lambda x, t: 0.1 * x * t, drift=mp.Drift(lambda x, t: [0.2 * np.sin(x) * t]),
                         terminal_cost=mp.QuadraticTerminalCost(q=1.0, target=1.0), name="small")


def small_plan():
    grid = mp.Grid([(-3, 3)], 40)
    return mp.PlanningProblem(grid, 1.0, 20, 0.8, mp.gaussian(grid, -0.5, 0.6), mp.gaussian(grid, 0.5, 0.5),
                              coupling=mp.QuadraticInteraction(1.0), potential=lambda x, t: 0.2 * np.cos(x + t))


def test_mfg_problem_rebuilt_from_the_file_solves_to_the_same_result(tmp_path):
    pb = small_mfg()
    r = mp.solve(pb, tol=1e-10)
    assert r.problem is pb
    path = tmp_path / "r.h5"
    r.save(path)
    with h5py.File(path, "r") as f:
        g = f["problem"]
        assert g.attrs["kind"] == "MFGProblem" and int(g.attrs["Nt"]) == 16 and float(g.attrs["sigma"]) == 0.5
        assert json.loads(g.attrs["description"]) == json.loads(json.dumps(mio.json_safe(pb.describe())))
        assert json.loads(g.attrs["skipped"]) == []
        np.testing.assert_array_equal(g["m0"][()], pb.m0)
        np.testing.assert_array_equal(g["potential"][()], pb.potential_steps())
        np.testing.assert_array_equal(g["potential_t"][()], pb.t[1:])
        np.testing.assert_array_equal(g["drift"][()], pb.drift_steps())
        np.testing.assert_array_equal(g["terminal_cost"][()], pb.terminal_values(None))
        assert g["kernel_0"].shape == (80,)
        for name in ("m0", "potential", "drift", "terminal_cost", "kernel_0"):
            assert g[name].attrs["units"] == "1" and g[name].attrs["long_name"]
        assert g["m0"].dims[0][0].name == "/x"
        assert g["potential"].dims[0][0].name == "/problem/potential_t"
    pb2 = mp.load_problem(path)
    assert type(pb2) is mp.MFGProblem and pb2.name == "small"
    assert (pb2.T, pb2.Nt, pb2.sigma, pb2.grid.describe()) == (pb.T, pb.Nt, pb.sigma, pb.grid.describe())
    assert pb2.coupling.describe()["type"] == "sum"
    r2 = mp.solve(pb2, tol=1e-10)
    np.testing.assert_allclose(r2.m, r.m, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r2.u, r.u, rtol=0, atol=1e-12)
    assert r2.iterations == r.iterations
    # a result read from a file carries the problem rebuilt from it
    loaded = mp.load(path)
    assert type(loaded.problem) is mp.MFGProblem and loaded.problem.name == "small"
    r3 = mp.solve(loaded.problem, tol=1e-10)
    np.testing.assert_allclose(r3.m, r.m, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r3.u, r.u, rtol=0, atol=1e-12)


def test_load_without_a_rebuildable_problem_loads_with_problem_none(tmp_path):
    grid = mp.Grid([(-3, 3)], 40)
    pb = mp.MFGProblem(grid, T=1.0, Nt=8, sigma=0.5, m0=mp.gaussian(grid, 0.0, 0.5),
                       coupling=mp.LocalPower(0.5))
    r = mp.solve(pb, tol=1e-8)
    path = tmp_path / "n.h5"
    r.save(path)
    with h5py.File(path, "r+") as f:
        f["problem"].attrs["coupling"] = json.dumps({"type": "user-defined"})
    with pytest.raises(ProblemRebuildError):
        mp.load_problem(path)
    loaded = mp.load(path)
    assert loaded.problem is None
    np.testing.assert_array_equal(loaded.m, r.m)


def test_planning_problem_rebuilt_from_the_file(tmp_path):
    pb = small_plan()
    r = mp.solve_planning(pb)
    path = tmp_path / "p.h5"
    r.save(path)
    with h5py.File(path, "r") as f:
        g = f["problem"]
        assert g.attrs["kind"] == "PlanningProblem"
        np.testing.assert_array_equal(g["m1"][()], pb.m1)
        assert g["potential"].shape == (2 * pb.Nt,) + pb.grid.shape   # steps and midpoints (Strang)
    pb2 = mp.load_problem(path)
    assert isinstance(pb2, mp.PlanningProblem)
    np.testing.assert_array_equal(pb2.potential_midpoints(), pb.potential_midpoints())
    np.testing.assert_array_equal(pb2.potential_steps(), pb.potential_steps())
    r2 = mp.solve_planning(pb2)
    np.testing.assert_allclose(r2.m, r.m, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r2.u, r.u, rtol=0, atol=1e-12)


def test_exit_costs_and_array_potential_round_trip(tmp_path):
    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], 12, [("reflecting", "exit"), "reflecting"])
    V = np.ones(grid.shape)
    pb = mp.MFGProblem(grid, 0.5, 5, 0.4, mp.gaussian(grid, (0.5, 0.5), (0.15, 0.15)), potential=V, exit_cost=2.0)
    r = mp.solve(pb, tol=1e-8)
    path = tmp_path / "e.h5"
    r.save(path)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["problem/exit_costs"][()], pb.exit_costs)
        assert f["problem/potential"].attrs["form"] == "static"
    pb2 = mp.load_problem(path)
    np.testing.assert_array_equal(pb2.exit_costs, pb.exit_costs)
    r2 = mp.solve(pb2, tol=1e-8)
    np.testing.assert_allclose(r2.m, r.m, rtol=0, atol=1e-12)


class MyCoupling(Coupling):
    def field(self, grid, t, m):
        return 0.1 * m

    def describe(self):
        return {"type": "mine"}


def test_what_cannot_be_rebuilt_is_named(tmp_path):
    grid = mp.Grid([(-3, 3)], 30)
    m0 = mp.gaussian(grid, 0.0, 0.5)
    pb = mp.MFGProblem(grid, 1.0, 8, 0.5, m0, coupling=mp.LocalLog(0.1) + MyCoupling())
    r = mp.solve(pb, tol=1e-8)
    path = tmp_path / "u.h5"
    r.save(path)
    with pytest.raises(ProblemRebuildError, match="MyCoupling"):
        mp.load_problem(path)
    # a terminal cost that depends on m: its values at m_T are stored, the problem cannot be rebuilt
    pb = mp.MFGProblem(grid, 1.0, 8, 0.5, m0, terminal_cost=mp.TerminalCost(lambda x, m: 0.5 * m, depends_on_m=True))
    r = mp.solve(pb, tol=1e-8)
    r.save(path)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["problem/terminal_cost"][()], 0.5 * r.m[-1])
        assert int(f["problem/terminal_cost"].attrs["depends_on_m"]) == 1
    with pytest.raises(ProblemRebuildError, match="depends on m"):
        mp.load_problem(path)
    # files written before /problem existed (or saved without a problem)
    for name in ("legacy_planning_1d.h5", "legacy_exit_2d.h5"):
        assert mp.load(os.path.join(DATA, name)) is not None
        with pytest.raises(ProblemRebuildError, match="no /problem group"):
            mp.load_problem(os.path.join(DATA, name))


def test_large_arrays_are_skipped(tmp_path, monkeypatch):
    pb = small_plan()
    r = mp.solve_planning(pb)
    monkeypatch.setattr(mio, "PROBLEM_ARRAY_LIMIT", 400 * 8)   # m0, m1 fit; the potential does not
    path = tmp_path / "s.h5"
    r.save(path)
    with h5py.File(path, "r") as f:
        g = f["problem"]
        assert json.loads(g.attrs["skipped"]) == ["potential"]
        assert "potential" not in g and "not written" in g.attrs["potential_skipped"]
        assert "m0" in g and "m1" in g
    with pytest.raises(ProblemRebuildError, match="potential was not stored"):
        mp.load_problem(path)


def test_provenance(tmp_path):
    r = mp.solve_planning(small_plan())
    path = tmp_path / "v.h5"
    r.save(path)
    prov = mio.read_provenance(path)
    import h5py as _h5, numba, numpy, scipy

    assert prov["mfg_pde_version"] == mp.__version__
    assert prov["numpy_version"] == numpy.__version__ and prov["scipy_version"] == scipy.__version__
    assert prov["numba_version"] == numba.__version__ and prov["h5py_version"] == _h5.__version__
    assert prov["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert prov["platform"] and prov["command_line"] == [str(a) for a in sys.argv]
    assert prov["created_utc"].endswith("+00:00")
    import datetime as _dt
    import shutil
    import subprocess

    start = _dt.datetime.fromisoformat(prov["solve_start_utc"])
    end = _dt.datetime.fromisoformat(prov["solve_end_utc"])
    assert start.utcoffset() == end.utcoffset() == _dt.timedelta(0)
    assert start <= end
    assert (end - start).total_seconds() == pytest.approx(r.history["wall_time"][-1], abs=2e-3)
    assert prov["git_dirty"] in (-1, 0, 1)
    here = os.path.dirname(os.path.abspath(mp.__file__))
    if shutil.which("git") and subprocess.run(["git", "-C", here, "rev-parse", "HEAD"],
                                              capture_output=True).returncode == 0:
        assert len(prov["git_revision"]) == 40 and int(prov["git_revision"], 16) >= 0
        assert prov["git_dirty"] in (0, 1)
    assert mio.read_provenance(os.path.join(DATA, "legacy_planning_1d.h5")) == {}


def test_history_and_outflow_have_named_dimension_scales(tmp_path):
    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], 12, [("reflecting", "exit"), "reflecting"])
    pb = mp.MFGProblem(grid, 0.5, 5, 0.4, mp.gaussian(grid, (0.5, 0.5), (0.15, 0.15)), potential=np.ones(grid.shape))
    r = mp.solve(pb, tol=1e-8)
    assert r.outflow is not None
    path = tmp_path / "d.h5"
    r.save(path)
    with h5py.File(path, "r") as f:
        h = f["history"]
        assert set(h) == set(r.history)
        for key, ds in h.items():
            if ds.ndim != 1:
                continue
            if key == "iteration":
                assert ds.is_scale
                continue
            assert len(ds.dims[0]) == 1, key
            assert ds.dims[0][0].name.rsplit("/", 1)[-1] == "iteration", key
        o = f["outflow"]
        assert [o["per_side"].dims[k][0].name for k in range(3)] == ["/outflow/step", "/outflow/axis",
                                                                     "/outflow/side"]
        assert o["mass"].dims[0][0].name == "/t"
        assert [s.decode() if isinstance(s, bytes) else s for s in o["side"][()]] == ["lo", "hi"]
    assert set(mp.load(path).history) == set(r.history)


def test_added_history_scale_is_not_a_record(tmp_path):
    grid = mp.Grid([(-1, 1)], 8)
    r = mp.MFGResult(grid=grid, t=np.linspace(0, 1, 3), u=np.zeros((3, 8)), m=np.ones((3, 8)) / 2,
                     history={"residual": np.array([1.0, 0.1]), "energy_E": np.array([3.0])})
    path = tmp_path / "h.h5"
    r.save(path)
    with h5py.File(path, "r") as f:
        assert set(f["history"]) == {"residual", "energy_E"}
        assert f["history/residual"].dims[0][0].name == "/iteration"
        assert f["history/energy_E"].dims[0][0].name == "/energy_E_entry"
    assert set(mp.load(path).history) == {"residual", "energy_E"}
    assert set(mio.read_metadata(path)["history"]) == {"residual", "energy_E"}


def test_booleans_are_int8_attributes_and_both_forms_read(tmp_path):
    grid = mp.Grid([(-1, 1)], 8)
    r = mp.MFGResult(grid=grid, t=np.linspace(0, 1, 3), u=np.zeros((3, 8)), m=np.ones((3, 8)) / 2, converged=True,
                     planning=mp.result.PlanningRecord(1.0, 0.5, 0.0, positive=True, congestion_c=0.1))
    path = tmp_path / "b.h5"
    r.save(path)
    with h5py.File(path, "r") as f:
        for obj, key in ((f, "converged"), (f, "complete"), (f["planning"], "positive")):
            v = obj.attrs[key]
            assert isinstance(v, np.int8) and v == 1, key
    assert mp.load(path).converged is True and mp.load(path).planning.positive is True
    assert mio.read_metadata(path)["converged"] is True
    # files of the older form: numpy bools
    with h5py.File(path, "r+") as f:
        f.attrs["converged"] = np.bool_(False)
        f["planning"].attrs["positive"] = np.bool_(False)
    loaded = mp.load(path)
    assert loaded.converged is False and loaded.planning.positive is False
    with h5py.File(path, "r+") as f:
        f.attrs["converged"] = np.int8(0)
    assert mp.load(path).converged is False
