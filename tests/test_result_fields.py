"""MFGResult's typed fields (outflow, planning, obstacle, hjb_solution, case_report, the alpha cache), their
HDF5 round trip, files of the layout before them, the short repr, and the deprecated ``extras`` view."""

import dataclasses
import os
import warnings

import h5py
import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde import io as mio
from mfg_pde.cases import get
from mfg_pde.planning.congestion import solve_planning_newton
from mfg_pde.result import CaseReport, OutflowHistory, PlanningRecord

DATA = os.path.join(os.path.dirname(__file__), "data")


def small_plan(N=40, Nt=20):
    grid = mp.Grid([(-3, 3)], N)
    return mp.PlanningProblem(grid, 1.0, Nt, 0.8, mp.gaussian(grid, -0.5, 0.6), mp.gaussian(grid, 0.5, 0.5),
                              coupling=mp.QuadraticInteraction(1.0))


def exit_result():
    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], 12, [("reflecting", "exit"), "reflecting"])
    pb = mp.MFGProblem(grid, 0.5, 6, 0.4, mp.gaussian(grid, (0.5, 0.5), (0.15, 0.15)), potential=np.ones(grid.shape))
    return pb, mp.solve(pb, tol=1e-8)


# ---------------------------------------------------------------------------------- the fields
def test_sinkhorn_planning_record():
    r = mp.solve_planning(small_plan())
    rec = r.planning
    assert isinstance(rec, PlanningRecord) and r.converged
    assert rec.energy_E > 0 and rec.kinetic_cost == rec.energy_E / 2          # exactly: E/2, no other term
    assert "energy_E" not in r.history and "cost_E_half" not in r.history  # final only: the record
    assert rec.terminal_mismatch == r.history["terminal_mismatch"][-1] < 1e-10
    assert rec.sinkhorn_iterations_total == int(r.history["sinkhorn_iterations"].sum()) > 0
    assert rec.congestion_c is None and rec.stages == [] and rec.positive is None
    assert r.outflow is None and r.obstacle is None and r.hjb_solution is None and r.case_report is None


def test_congestion_planning_record_and_congested_alpha():
    pb = small_plan(30, 30)
    r = solve_planning_newton(pb, c=0.5)
    rec = r.planning
    assert r.converged and rec.congestion_c == 0.5 and rec.stages == [0.0, 0.5]
    assert rec.terminal_mismatch == 0.0 and rec.positive and rec.min_density == float(r.m.min())
    assert rec.initial.startswith("sinkhorn") and rec.sinkhorn_iterations_total is None
    # the kinetic cost int int m (1 + c m) |alpha|^2 / 2 exceeds E/2 with congestion
    assert rec.energy_E > 0 and rec.kinetic_cost > rec.energy_E / 2
    # alpha is the congested control, set by the solver (not -grad u)
    np.testing.assert_allclose(r.alpha, -mp.result.gradient(pb.grid, r.u) / (1 + 0.5 * r.m)[..., None])
    r0 = solve_planning_newton(pb, c=0.0)
    assert r0.planning.kinetic_cost == pytest.approx(r0.planning.energy_E / 2, rel=1e-13)


def test_exit_room_result_has_outflow_and_obstacle():
    run = get("exit-room").run({"N": 24, "Nt": 12})
    r = run.result
    assert isinstance(r.outflow, OutflowHistory) and r.outflow.sides == ["x hi"]
    assert r.outflow.balance_error < 1e-12 and r.balance_error() == r.outflow.balance_error
    assert r.obstacle.dtype == bool and r.obstacle.shape == r.grid.shape and r.obstacle.any()
    assert r.hjb_solution is not None and r.split_states.shape[:2] == (12, 1)
    assert run.checks[0].passed


def test_solve_attaches_the_hjb_solution_and_exploitability_uses_it():
    pb, r = exit_result()
    assert r.hjb_solution is not None and r.split_states is r.hjb_solution.states
    assert r.outflow is not None and r.outflow.balance_error < 1e-13           # attached by the loop (exits)
    gap = mp.exploitability(pb, r)
    assert gap == pytest.approx(r.history["exploitability"][-1], rel=1e-8, abs=1e-12)


def test_alpha_cache_is_private_and_not_a_field_of_the_record():
    _, r = exit_result()
    f = {x.name: x for x in dataclasses.fields(r)}["_alpha"]
    assert not f.init and not f.repr and not f.compare
    a = r.alpha
    assert a is r.alpha and a.shape == r.u.shape + (2,)                        # computed once, cached
    np.testing.assert_array_equal(a, -mp.result.gradient(r.grid, r.u))
    with pytest.raises(ValueError, match="alpha has shape"):
        r.alpha = np.zeros(3)
    with pytest.raises(TypeError):
        mp.MFGResult(grid=r.grid, t=r.t, u=r.u, m=r.m, _alpha=a)


def test_repr_is_short():
    _, r = exit_result()
    r.case = "exit-room"
    text = repr(r)
    assert len(text) < 500, text
    assert text.startswith("MFGResult(case='exit-room', grid=(12, 12), Nt=6, method=") and "iterations=" in text
    assert "residual=" in text and "status='converged'" in text and "array" not in text
    r.status = "not converged: " + "x" * 2000
    assert len(repr(r)) < 500
    assert len(repr(mp.solve_planning(small_plan()))) < 500


# ---------------------------------------------------------------------------------- HDF5
def test_hdf5_round_trip_of_every_typed_field(tmp_path):
    _, r = exit_result()
    r.obstacle = r.grid.mesh()[0] > 0.7
    r.case_report = CaseReport(errors={"mean": 1.5e-3, "variance": 2e-4}, table=np.arange(6.0).reshape(2, 3),
                               columns=("a", "b", "c"))
    path = tmp_path / "exit.h5"
    r.save(path)
    back = mp.load(path)
    for key in ("t", "mass", "per_side", "cumulative"):
        np.testing.assert_array_equal(getattr(back.outflow, key), getattr(r.outflow, key))
    assert back.outflow.sides == r.outflow.sides and back.outflow.balance_error == r.outflow.balance_error
    np.testing.assert_array_equal(back.obstacle, r.obstacle)
    assert back.obstacle.dtype == bool
    assert back.case_report.errors == {"mean": 1.5e-3, "variance": 2e-4}
    assert back.case_report.columns == ("a", "b", "c")
    np.testing.assert_array_equal(back.case_report.table, r.case_report.table)
    np.testing.assert_array_equal(back.alpha, r.alpha)
    assert back.planning is None and back.hjb_solution is None                # a solver internal: not saved
    # planning records, Sinkhorn and Newton (the congested alpha travels too)
    for res in (mp.solve_planning(small_plan()), solve_planning_newton(small_plan(30, 30), c=0.5)):
        p = tmp_path / "plan.h5"
        res.save(p)
        back = mp.load(p)
        assert back.planning == res.planning
        assert back.planning.kinetic_cost == res.planning.kinetic_cost
        np.testing.assert_array_equal(back.alpha, res.alpha)
        assert mio.read_metadata(p)["planning"]["energy_E"] == res.planning.energy_E
    with h5py.File(p) as f:
        assert f["planning"].attrs["congestion_c"] == 0.5 and "cost_kinetic" not in f["planning"].attrs


def test_case_report_of_a_case_round_trips(tmp_path):
    run = get("path-integral-h").run({"N": 100, "Nt": 100, "eta_values": "0,1", "lambdas": "1"})
    rep = run.result.case_report
    assert set(rep.errors) == {"moments vs ODE (max |dM|, |dV| over eta, lambda)", "negative control: W2 spread over eta"}
    assert rep.table.shape == (2, len(rep.columns)) and rep.columns[:2] == ("lambda", "eta")
    assert set(rep.arrays) == {"x", "densities", "data_density"} and rep.arrays["densities"].shape == (2, 100)
    run.result.save(tmp_path / "pi.h5")
    back = mp.load(tmp_path / "pi.h5").case_report
    assert back.errors == rep.errors and back.columns == rep.columns
    np.testing.assert_array_equal(back.table, rep.table)
    assert set(back.arrays) == set(rep.arrays)
    for name, value in rep.arrays.items():
        np.testing.assert_array_equal(back.arrays[name], value)


def test_files_of_the_layout_before_the_typed_fields_load():
    """tests/data/*.h5 were written by the code before the typed fields (tests/data/README.md)."""
    r = mp.load(os.path.join(DATA, "legacy_exit_2d.h5"))
    assert r.grid.shape == (8, 8) and r.outflow.sides == ["x hi"] and r.outflow.balance_error < 1e-13
    assert r.obstacle.dtype == bool and r.obstacle.sum() == 16
    np.testing.assert_array_equal(r.obstacle, r.grid.mesh()[0] > 0.7)
    assert r.alpha.shape == (5, 8, 8, 2) and r.planning is None and r.case_report is None
    p = mp.load(os.path.join(DATA, "legacy_planning_1d.h5"))
    assert p.planning == PlanningRecord(energy_E=1.3911588858741926, kinetic_cost=0.6955794429370963,
                                        terminal_mismatch=1.4961194075015656e-12, sinkhorn_iterations_total=61)
    assert p.planning.kinetic_cost == p.planning.energy_E / 2
    rec = mio.read_record(os.path.join(DATA, "legacy_exit_2d.h5"))
    assert rec["planning"] is None and rec["outflow"]["sides"] == ["x hi"]


# ---------------------------------------------------------------------------------- compatibility
def test_deprecated_extras_view_matches_the_fields():
    """The one place that reads ``extras``: the read-only view under the old key names."""
    plan = mp.solve_planning(small_plan())
    with pytest.warns(DeprecationWarning, match="extras is deprecated"):
        ex = plan.extras
    assert ex["energy_E"] == plan.planning.energy_E and ex["cost_E_half"] == plan.planning.kinetic_cost
    assert ex["cost_E_half"] == ex["energy_E"] / 2
    assert ex["terminal_mismatch"] == plan.planning.terminal_mismatch
    assert ex["sinkhorn_iterations_total"] == plan.planning.sinkhorn_iterations_total
    assert "outflow" not in ex and "_alpha" not in ex
    with pytest.raises(TypeError):
        ex["energy_E"] = 0.0                                                    # read-only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cong = solve_planning_newton(small_plan(30, 30), c=0.5)
        ex = cong.extras
        assert ex["cost_kinetic"] == cong.planning.kinetic_cost and ex["c"] == 0.5
        assert ex["stages"] == [0.0, 0.5] and ex["positive"] is True and ex["cost_E_half"] == ex["energy_E"] / 2
        assert ex["min_density"] == cong.planning.min_density and ex["initial"] == cong.planning.initial
        _, r = exit_result()
        r.obstacle = r.grid.mesh()[0] > 0.7
        ex = r.extras
        assert ex["outflow"] is r.outflow and ex["obstacle"] is r.obstacle and ex["hjb_solution"] is r.hjb_solution
        run = get("ia-vs-mf").run({"N": 100, "Nt": 100})
        ex = run.result.extras
        assert ex["mf_energy_E"] == run.result.case_report.mf_energy_E and ex["mf_converged"] is True
        assert ex["energy_E"] == run.result.planning.energy_E
        from mfg_pde.particles import agents

        feed = agents.simulate_feedback(plan, x0=np.zeros((20, 1)), n_steps=4, seed=0)
        assert dict(feed.extras) == {"drift": feed.drift} and feed.drift == "none"


def test_summary_shows_nash_gap_hjb_residual_grid_and_method():
    grid = mp.Grid([(-4, 4)], 60)
    pb = mp.MFGProblem(grid, 1.0, 40, 0.8, mp.gaussian(grid, -0.5, 0.5), coupling=mp.QuadraticInteraction(2.0),
                       terminal_cost=mp.QuadraticTerminalCost(1.0, 1.0))
    r = mp.solve(pb, method="anderson")
    s = r.summary()
    assert "\n" not in s
    gap, hjb = r.history["exploitability"][-1], r.history["hjb_residual"][-1]
    assert f"Nash gap {gap:.3e}" in s and f"HJB residual {hjb:.3e}" in s
    assert "grid 60, Nt 40, method anderson" in s
    r = mp.solve(pb, method="picard", exploitability="none", max_iter=2)
    s = r.summary()
    assert "Nash gap" not in s and "grid 60, Nt 40, method picard" in s
