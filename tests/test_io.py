"""HDF5 round trip, file layout (dimension scales, attributes), atomic writes and error messages -- all on
hand-built MFGResult objects (no solver needed).  The figures are tested in test_plotting.py."""

from __future__ import annotations

import datetime
import json
import os

import h5py
import numpy as np
import pytest

from mfg_pde import io as mio
from mfg_pde.model.grid import Grid
from mfg_pde.result import MFGResult, load


def _synthetic(ndim: int, nt: int = 6, case="synthetic-case") -> MFGResult:
    if ndim == 1:
        grid = Grid((-2.0, 3.0), 16)
    elif ndim == 2:
        grid = Grid([(-1.0, 1.0), (0.0, 2.0)], (8, 10), bc=("reflecting", "periodic"))
    else:
        grid = Grid([(-1.0, 1.0)] * 3, (5, 6, 7))
    t = np.linspace(0.0, 1.0, nt + 1)
    xs = grid.mesh()
    r2 = sum(x**2 for x in xs)
    m = np.stack([np.exp(-r2 / (0.3 + tk)) for tk in t])
    m /= grid.integrate(m)[(slice(None),) + (None,) * ndim]
    u = np.stack([(1.0 - tk) * r2 + 0.1 * xs[0] for tk in t])
    history = {
        "residual": np.array([1.0, 1e-2, 1e-4, 1e-7]),
        "hjb_residual": np.array([0.5, 5e-3, 5e-5, 5e-8]),
        "fp_residual": np.array([0.2, 2e-3, 2e-5, 2e-8]),
        "wall_time": np.array([0.1, 0.2, 0.3, 0.4]),
        "step": np.array([1, 2, 3, 4]),
    }
    return MFGResult(
        grid=grid, t=t, u=u, m=m, converged=True, status="converged", iterations=4,
        history=history,
        params={"sigma": 0.5, "n": 16, "flag": True, "name": "abc", "list": [1, 2.5]},
        solver={"method": "fictitious", "tol": 1e-8, "max_iter": 100, "damping": None},
        case=case,
    )


def _assert_same(a: MFGResult, b: MFGResult) -> None:
    assert b.grid == a.grid
    np.testing.assert_array_equal(b.t, a.t)
    np.testing.assert_array_equal(b.m, a.m)
    np.testing.assert_array_equal(b.u, a.u)
    np.testing.assert_array_equal(b.alpha, a.alpha)
    assert b.history.keys() == a.history.keys()
    assert list(b.history) == list(a.history)  # insertion order kept
    for k in a.history:
        np.testing.assert_array_equal(b.history[k], a.history[k])
    assert b.params == a.params
    assert b.solver == a.solver
    assert b.case == a.case
    assert b.converged is a.converged
    assert b.status == a.status
    assert b.iterations == a.iterations


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_round_trip(tmp_path, ndim):
    res = _synthetic(ndim)
    path = tmp_path / f"r{ndim}.h5"
    res.save(path)                       # MFGResult.save -> io.save_result
    back = load(path)
    _assert_same(res, back)
    assert back.final_residual == res.final_residual
    assert back.mass_error() == pytest.approx(res.mass_error())
    # str paths work too
    back2 = load(str(path))
    _assert_same(res, back2)


def test_round_trip_unconverged_no_case(tmp_path):
    res = _synthetic(1, case=None)
    res.converged, res.status, res.iterations = False, "max_iter", 7
    res.history = {}
    path = tmp_path / "nc.h5"
    mio.save_result(res, path)
    with h5py.File(path, "r") as f:
        assert f.attrs["case"] == ""
        assert "history" in f and len(f["history"]) == 0
    back = load(path)
    _assert_same(res, back)
    assert back.case is None and back.converged is False


def test_layout_dimension_scales_and_attributes(tmp_path):
    res = _synthetic(2)
    path = tmp_path / "layout.h5"
    mio.save_result(res, path)
    with h5py.File(path, "r") as f:
        for name in ("t", "x", "y", "m", "u", "alpha"):
            assert name in f
            assert "units" in f[name].attrs and "long_name" in f[name].attrs
        assert "z" not in f
        assert f["t"].shape == (7,)
        assert f["m"].shape == (7, 8, 10) and f["u"].shape == (7, 8, 10)
        assert f["alpha"].shape == (7, 8, 10, 2)
        np.testing.assert_array_equal(f["x"][()], res.grid.axes[0])
        np.testing.assert_array_equal(f["y"][()], res.grid.axes[1])
        # dimension scales
        assert f["t"].is_scale and f["x"].is_scale and f["y"].is_scale
        for name in ("m", "u"):
            ds = f[name]
            assert [d.label for d in ds.dims] == ["t", "x", "y"]
            assert ds.dims[0][0] == f["t"]
            assert ds.dims[1][0] == f["x"]
            assert ds.dims[2][0] == f["y"]
        a = f["alpha"]
        assert [d.label for d in a.dims] == ["t", "x", "y", "component"]
        assert a.dims[3][0] == f["component"]
        assert [c.decode() if isinstance(c, bytes) else c for c in f["component"][()]] == ["x", "y"]
        # root attributes
        import mfg_pde

        assert f.attrs["mfg_pde_version"] == mfg_pde.__version__
        created = datetime.datetime.fromisoformat(f.attrs["created"])
        assert created.tzinfo is not None and created.utcoffset() == datetime.timedelta(0)
        age = datetime.datetime.now(datetime.timezone.utc) - created
        assert datetime.timedelta(seconds=-1) <= age < datetime.timedelta(minutes=5)
        assert f.attrs["case"] == "synthetic-case"
        assert json.loads(f.attrs["params"]) == res.params
        assert json.loads(f.attrs["solver"]) == res.solver
        assert json.loads(f.attrs["grid"]) == res.grid.describe()
        assert bool(f.attrs["converged"]) is True
        assert int(f.attrs["iterations"]) == 4
        assert f.attrs["status"] == "converged"
        assert set(f["history"]) == set(res.history)
        assert f["history"]["residual"].ndim == 1


def test_params_are_made_json_safe(tmp_path):
    from mfg_pde.model.schedules import Constant

    class Opaque:
        def __repr__(self):
            return "<opaque thing>"

    res = _synthetic(1)
    res.params = {"a": np.float64(1.5), "b": np.int32(3), "c": np.arange(3), "d": (1, 2),
                  "e": np.bool_(True), "f": Opaque(), "g": {"h": np.array([[1.0, 2.0]])},
                  "beta": Constant(2.0)}
    res.solver = {"callback": Opaque(), "tol": np.float32(0.5)}
    path = tmp_path / "js.h5"
    mio.save_result(res, path)
    back = load(path)
    assert back.params == {"a": 1.5, "b": 3, "c": [0, 1, 2], "d": [1, 2], "e": True,
                           "f": "<opaque thing>", "g": {"h": [[1.0, 2.0]]}, "beta": 2.0}
    assert back.solver == {"callback": "<opaque thing>", "tol": 0.5}


def test_crash_during_write_leaves_nothing(tmp_path, monkeypatch):
    res = _synthetic(1)
    path = tmp_path / "crash.h5"

    def boom(f, result):
        f.create_dataset("t", data=result.t)  # something already written to the temp file
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mio, "_write", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        mio.save_result(res, path)
    assert os.listdir(tmp_path) == []


def test_crash_during_write_keeps_existing_file(tmp_path, monkeypatch):
    good = _synthetic(1)
    path = tmp_path / "keep.h5"
    mio.save_result(good, path)
    before = path.read_bytes()

    real_write = mio._write

    def half(f, result):
        real_write(f, result)
        raise KeyboardInterrupt  # even a BaseException midway must not leave debris

    monkeypatch.setattr(mio, "_write", half)
    other = _synthetic(2)
    with pytest.raises(KeyboardInterrupt):
        mio.save_result(other, path)
    assert sorted(os.listdir(tmp_path)) == ["keep.h5"]
    assert path.read_bytes() == before
    _assert_same(good, load(path))


def test_overwrite_replaces_file(tmp_path):
    path = tmp_path / "over.h5"
    mio.save_result(_synthetic(1), path)
    new = _synthetic(2)
    mio.save_result(new, path)
    _assert_same(new, load(path))
    assert sorted(os.listdir(tmp_path)) == ["over.h5"]


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mio.save_result(_synthetic(1), tmp_path / "nope" / "r.h5")


def test_load_errors(tmp_path):
    missing = tmp_path / "missing.h5"
    with pytest.raises(ValueError, match="missing.h5.*no such file"):
        load(missing)
    with pytest.raises(FileNotFoundError):
        load(missing)

    text = tmp_path / "text.h5"
    text.write_text("not hdf5 at all\n")
    with pytest.raises(ValueError, match="text.h5.*not an HDF5 file"):
        load(text)

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["t"] = np.arange(3.0)
    with pytest.raises(ValueError, match="foreign.h5.*mfg_pde_version"):
        load(foreign)

    with pytest.raises(ValueError, match="directory"):
        load(tmp_path)


def test_read_metadata(tmp_path):
    res = _synthetic(2)
    path = tmp_path / "meta.h5"
    mio.save_result(res, path)
    meta = mio.read_metadata(path)
    assert meta["case"] == "synthetic-case"
    assert meta["params"] == res.params
    assert meta["grid"] == res.grid.describe()
    assert meta["datasets"]["m"] == (7, 8, 10)
    assert meta["datasets"]["alpha"] == (7, 8, 10, 2)
    assert meta["history"]["residual"] == {"length": 4, "last": 1e-7}
    assert meta["converged"] is True and meta["iterations"] == 4


def test_load_exported_from_package():
    import mfg_pde

    if not hasattr(mfg_pde, "load"):
        pytest.skip("mfg_pde/__init__.py does not export load yet")
    assert mfg_pde.load is load
