"""xarray interoperability: ``MFGResult.to_xarray`` (named dimensions, coordinates, netCDF-safe attributes,
``to_netcdf`` round trip) and the saved HDF5 files opened by ``xr.open_dataset(..., engine="h5netcdf")``,
root and groups, with every dimension named (no ``phony_dim_N``)."""

import json
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

import mfg_pde as mp
from mfg_pde.result import CaseReport


def kernel(*d):
    return np.exp(-sum(di ** 2 for di in d))


@pytest.fixture(scope="module")
def exit_result():
    """2-D, an exit side (outflow), a kernel coupling, a potential, an obstacle mask and a case table."""
    grid = mp.Grid([(0, 1), (0, 1.5)], (10, 12), bc=[("reflecting", "exit"), "reflecting"])
    pb = mp.MFGProblem(grid, T=0.3, Nt=8, sigma=0.5, m0=mp.gaussian(grid, [0.4, 0.7], 0.2),
                       coupling=mp.LocalPower(1.0) + 0.5 * mp.KernelInteraction(kernel),
                       potential=lambda x, y, t: 0.1 * x * t, exit_cost=0.5)
    r = mp.solve(pb, method="anderson", tol=1e-9)
    assert r.converged and r.outflow is not None
    r.obstacle = np.zeros(grid.shape, bool)
    r.obstacle[4:6, 5:7] = True
    r.case_report = CaseReport(errors={"mean": 1e-3}, table=np.arange(6.0).reshape(3, 2), columns=("N", "error"),
                               arrays={"x": np.linspace(0, 1, 5), "densities": np.ones((3, 5))})
    r.history["odd"] = np.array([1.0, 2.0, 3.0])   # a record of another length than the loop's
    return r


@pytest.fixture(scope="module")
def plan_result():
    grid = mp.Grid([(-2, 2)], 24)
    pb = mp.PlanningProblem(grid, 1.0, 10, 1.0, mp.gaussian(grid, -0.5, 0.4), mp.gaussian(grid, 0.5, 0.4),
                            coupling=mp.QuadraticInteraction(1.0))
    return mp.solve_planning(pb)


def _assert_described(ds):
    for name, var in list(ds.data_vars.items()) + list(ds.coords.items()):
        assert var.attrs.get("long_name"), name
        if var.dtype.kind in "biuf":
            assert var.attrs.get("units") in ("1", "s"), name


def _assert_netcdf_safe(attrs):
    for key, value in attrs.items():
        assert not isinstance(value, (bool, np.bool_, dict, list, tuple)), (key, value)
        assert value is not None, key


def test_to_xarray_dimensions_coordinates_and_variables(exit_result):
    r = exit_result
    ds = r.to_xarray()
    assert ds["m"].dims == ("t", "x", "y") and ds["u"].dims == ("t", "x", "y")
    assert ds["alpha"].dims == ("t", "x", "y", "component")
    np.testing.assert_array_equal(ds["m"].values, r.m)
    np.testing.assert_array_equal(ds["u"].values, r.u)
    np.testing.assert_array_equal(ds["alpha"].values, r.alpha)
    np.testing.assert_array_equal(ds["t"].values, r.t)
    np.testing.assert_array_equal(ds["x"].values, r.grid.axes[0])
    np.testing.assert_array_equal(ds["y"].values, r.grid.axes[1])
    assert list(ds["component"].values) == ["x", "y"]
    # history on the iteration dimension (1-based, integer), another length on its own dimension
    assert ds["residual"].dims == ("iteration",)
    np.testing.assert_array_equal(ds["residual"].values, r.history["residual"])
    np.testing.assert_array_equal(ds["iteration"].values, np.arange(1, r.iterations + 1))
    assert ds["iteration"].dtype.kind == "i"
    assert ds["odd"].dims == ("odd_entry",)
    # outflow on t and (step, axis, side)
    for key in ("mass", "cumulative", "evacuated", "balance"):
        assert ds[f"outflow_{key}"].dims == ("t",)
        np.testing.assert_array_equal(ds[f"outflow_{key}"].values, getattr(r.outflow, key))
    assert ds["outflow_per_side"].dims == ("step", "axis", "side")
    assert float(ds["outflow_per_side"].sel(axis="x", side="hi").sum()) == pytest.approx(r.outflow.cumulative[-1])
    assert ds["obstacle"].dims == ("x", "y") and int(ds["obstacle"].sum()) == 4
    assert list(ds["column"].values) == ["N", "error"] and ds["case_table"].dims == ("row", "column")
    assert ds["case_densities"].dims == ("case_densities_dim_0", "case_densities_dim_1")
    np.testing.assert_array_equal(ds["case_x"].values, np.linspace(0, 1, 5))
    # selection by coordinate works as xarray users expect
    np.testing.assert_allclose(ds["m"].sel(t=r.t[-1]).values, r.m[-1])
    _assert_described(ds)


def test_to_xarray_attributes_are_netcdf_safe(exit_result, plan_result):
    r = exit_result
    ds = r.to_xarray()
    _assert_netcdf_safe(ds.attrs)
    assert ds.attrs["converged"] == 1 and ds.attrs["converged"].dtype == np.int8
    assert ds.attrs["iterations"] == r.iterations and ds.attrs["status"] == r.status
    assert json.loads(ds.attrs["solver"])["method"] == "anderson"
    assert json.loads(ds.attrs["grid"]) == r.grid.describe()
    assert json.loads(ds.attrs["case_errors"]) == {"mean": 1e-3}
    assert json.loads(ds.attrs["outflow_sides"]) == ["x hi"]
    assert ds.attrs["case"] == ""
    pds = plan_result.to_xarray()
    _assert_netcdf_safe(pds.attrs)
    assert pds.attrs["planning_energy_E"] == plan_result.planning.energy_E
    assert json.loads(pds.attrs["planning_stages"]) == []
    # a bool-valued planning field becomes int8
    plan_result.planning.positive = True
    try:
        assert plan_result.to_xarray().attrs["planning_positive"].dtype == np.int8
    finally:
        plan_result.planning.positive = None


@pytest.mark.parametrize("which", ["exit", "plan"])
def test_to_xarray_to_netcdf_round_trip(exit_result, plan_result, which, tmp_path):
    r = exit_result if which == "exit" else plan_result
    ds = r.to_xarray()
    path = tmp_path / "r.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        xr.testing.assert_identical(ds, back.load())


def _open_all_groups(path):
    """Every group of a saved file, opened by xarray with warnings as errors (a phony dimension warns)."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for group in (None, "history", "outflow", "problem", "planning", "case_report", "case_report/arrays",
                  "provenance"):
            try:
                with xr.open_dataset(path, engine="h5netcdf", group=group) as ds:
                    out[group] = ds.load()
            except OSError:   # the file has no such group
                continue
    return out


@pytest.mark.parametrize("which", ["exit", "plan"])
def test_saved_files_open_in_xarray_with_named_dimensions(exit_result, plan_result, which, tmp_path):
    r = exit_result if which == "exit" else plan_result
    path = tmp_path / "r.h5"
    r.save(path)
    groups = _open_all_groups(path)
    want = {None, "history", "problem", "provenance"} | ({"outflow", "case_report", "case_report/arrays"}
                                                         if which == "exit"
                                                         else {"planning"})
    assert set(groups) == want
    for group, ds in groups.items():
        assert not [d for d in ds.dims if str(d).startswith("phony_dim")], (group, dict(ds.sizes))
        _assert_netcdf_safe(ds.attrs)
        # what xarray read writes back as netCDF and reads back the same
        out = tmp_path / f"{str(group).replace('/', '_')}.nc"
        ds.to_netcdf(out, engine="h5netcdf")
        with xr.open_dataset(out, engine="h5netcdf") as back:
            xr.testing.assert_identical(ds, back.load())
    root = groups[None]
    np.testing.assert_array_equal(root["m"].values, r.m)
    assert root["m"].dims == ("t",) + r.grid.axis_names
    assert root.attrs["converged"] == 1
    assert groups["history"]["residual"].dims == ("iteration",)
    if which == "exit":
        assert groups["outflow"]["per_side"].dims == ("step", "axis", "side")
        assert groups["outflow"]["mass"].dims == ("t",)
        prob = groups["problem"]
        assert prob["exit_costs"].dims == ("axis", "side")
        assert prob["exit_costs"].sel(axis="x", side="hi") == 0.5
        assert prob["kernel_0"].dims == ("dx_kernel_0", "dy_kernel_0")
        assert float(prob["kernel_0"].sel(dx_kernel_0=0.0, dy_kernel_0=0.0)) == pytest.approx(kernel(0.0))
        assert groups["case_report"]["table"].dims == ("row", "column")
        assert list(groups["case_report"]["column"].values) == ["N", "error"]
        assert groups["case_report/arrays"]["densities"].dims == ("arrays_densities_dim_0", "arrays_densities_dim_1")
        back = mp.load(path).case_report
        assert set(back.arrays) == {"x", "densities"}                 # the scales are not read as arrays
        np.testing.assert_array_equal(back.arrays["densities"], np.ones((3, 5)))
        # the added scales do not disturb mfg_pde's own reader
        pb = mp.load_problem(path)
        again = mp.solve(pb, method="anderson", tol=1e-9)
        np.testing.assert_allclose(again.m, r.m, atol=1e-12)


def test_to_xarray_without_xarray_says_how_to_install(exit_result, monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)   # import xarray -> ImportError
    with pytest.raises(ImportError, match=r"pip install mfg_pde\[xarray\]"):
        exit_result.to_xarray()


@pytest.fixture(scope="module")
def door_result():
    """Two doors on the side x hi (outflow per door)."""
    grid = mp.Grid([(0, 1), (0, 1)], (16, 16))
    doors = [mp.Door(("x", "hi"), mp.Interval(0.1, 0.3), name="low"),
             mp.Door(("x", "hi"), mp.Interval(0.6, 0.9), name="high")]
    pb = mp.MFGProblem(grid, T=0.3, Nt=8, sigma=0.5, m0=mp.gaussian(grid, [0.6, 0.5], 0.2),
                       potential=np.ones(grid.shape), terminal_cost=np.ones(grid.shape), doors=doors)
    r = mp.solve(pb, method="picard")
    assert r.outflow is not None and r.outflow.per_door is not None
    return r


def test_saved_doors_open_in_xarray_with_named_dimensions(door_result, tmp_path):
    r = door_result
    path = tmp_path / "doors.h5"
    r.save(path)
    groups = _open_all_groups(path)
    assert "outflow" in groups
    for group, ds in groups.items():
        assert not [d for d in ds.dims if str(d).startswith("phony_dim")], (group, dict(ds.sizes))
    out = groups["outflow"]
    assert out["per_door"].dims == ("step", "door")
    assert list(out["door"].values) == ["low", "high"]
    assert out["per_side"].dims == ("step", "axis", "side")
    back = mp.load(path).outflow
    np.testing.assert_array_equal(back.per_door, r.outflow.per_door)
    assert back.doors == ["low", "high"]


def test_to_xarray_outflow_per_door(door_result):
    ds = door_result.to_xarray()
    v = ds["outflow_per_door"]
    assert v.dims == ("step", "door")
    assert list(ds["door"].values) == ["low", "high"]
    assert v.attrs["units"] == "1" and v.attrs["long_name"]
    np.testing.assert_array_equal(v.values, door_result.outflow.per_door)
    np.testing.assert_array_equal(v.sel(door="high").values, door_result.outflow.per_door[:, 1])
    assert ds["outflow_per_side"].dims[0] == "step"
