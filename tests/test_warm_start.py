"""Warm starts: ``mp.solve(problem, init=result_or_path)`` and ``mp.solve_planning(..., init=...)`` -- the same
grid (the fields as they are), another grid / Nt / T (interpolated by ``prolong``: grid continuation), and
clear errors for what cannot start a solve."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.io import ResultFileError
from mfg_pde.model.grid import prolong
from mfg_pde.result import initial_fields


def problem(N, Nt, T=1.0):
    grid = mp.Grid([(-3, 3)], N)
    return mp.MFGProblem(grid, T=T, Nt=Nt, sigma=0.6, m0=mp.gaussian(grid, -0.5, 0.5),
                         coupling=mp.QuadraticInteraction(2.0) + mp.LocalPower(0.5),
                         terminal_cost=mp.QuadraticTerminalCost(q=1.0, target=1.0))


def plan(N, Nt):
    grid = mp.Grid([(-3, 3)], N)
    return mp.PlanningProblem(grid, 1.0, Nt, 0.8, mp.gaussian(grid, -0.5, 0.6), mp.gaussian(grid, 0.5, 0.5),
                              coupling=mp.QuadraticInteraction(1.0))


@pytest.fixture(scope="module")
def coarse():
    return mp.solve(problem(40, 20), tol=1e-9)


@pytest.fixture(scope="module")
def fine():
    return mp.solve(problem(80, 40), tol=1e-9)


@pytest.mark.parametrize("method", ["auto", "picard", "newton"])
def test_warm_start_from_the_same_problem_converges_at_once(fine, method):
    again = mp.solve(problem(80, 40), tol=1e-9, method=method, init=fine)
    assert again.converged and again.iterations <= 2
    np.testing.assert_allclose(again.m, fine.m, atol=1e-8)
    assert again.solver["init"] == "a result on the same grid (80,) and Nt 40"
    if method == "newton":   # Newton starts from the pair, u included
        assert again.iterations == 1


@pytest.mark.parametrize("method,saved", [("picard", 5), ("auto", 1)])
def test_grid_continuation_takes_fewer_iterations_and_reaches_the_same_solution(coarse, method, saved):
    cold = mp.solve(problem(80, 40), tol=1e-9, method=method)
    start = coarse if method == "auto" else mp.solve(problem(40, 20), tol=1e-9, method=method)
    warm = mp.solve(problem(80, 40), tol=1e-9, method=method, init=start)
    assert cold.converged and warm.converged
    assert warm.iterations <= cold.iterations - saved
    assert warm.history["residual"][0] < 0.1 * cold.history["residual"][0]
    np.testing.assert_allclose(warm.m, cold.m, atol=1e-7 * cold.m.max())
    np.testing.assert_allclose(warm.u, cold.u, atol=1e-6 * np.abs(cold.u).max())
    assert warm.solver["init"] == "a result interpolated (grid (40,) -> (80,), Nt 20 -> 40)"


def test_initial_fields_interpolate_with_prolong_and_keep_the_mass(coarse):
    pb = problem(80, 40)
    w = initial_fields(coarse, pb)
    assert w.interpolated and w.m.shape == w.u.shape == (41, 80)
    s_old, s_new = coarse.t / coarse.t[-1], pb.t / pb.T
    np.testing.assert_allclose(w.u, prolong(coarse.grid, pb.grid, coarse.u, s_old, s_new))
    raw = prolong(coarse.grid, pb.grid, coarse.m, s_old, s_new)
    np.testing.assert_allclose(w.m, raw * pb.grid.integrate(pb.m0) / pb.grid.integrate(raw[0]))
    assert pb.grid.integrate(w.m[0]) == pytest.approx(1.0, abs=1e-12)
    # another horizon: interpolated in relative time
    w2 = initial_fields(coarse, problem(40, 10, T=2.0))
    np.testing.assert_allclose(w2.u[[0, -1]], coarse.u[[0, -1]])
    assert "T 1 -> 2 (relative time)" in w2.note


def test_warm_start_from_a_saved_file(coarse, tmp_path):
    path = tmp_path / "coarse.h5"
    coarse.save(path)
    from_file = mp.solve(problem(80, 40), tol=1e-9, init=str(path))
    from_result = mp.solve(problem(80, 40), tol=1e-9, init=coarse)
    assert from_file.iterations == from_result.iterations
    np.testing.assert_allclose(from_file.m, from_result.m, atol=1e-12)
    assert from_file.solver["init"].startswith(f"{path}: a result interpolated")
    assert mp.solve(problem(40, 20), tol=1e-9, init=path).iterations <= 2   # a PathLike too


def test_m_init_with_a_result_is_a_warm_start(coarse):
    via_m_init = mp.solve(problem(80, 40), tol=1e-9, method="picard", m_init=coarse)
    via_init = mp.solve(problem(80, 40), tol=1e-9, method="picard", init=coarse)
    assert via_m_init.iterations == via_init.iterations
    np.testing.assert_array_equal(via_m_init.m, via_init.m)


def test_warm_start_errors_are_clear(coarse, tmp_path):
    grid2 = mp.Grid([(-3, 3), (-3, 3)], 12)
    pb2 = mp.MFGProblem(grid2, T=1.0, Nt=5, sigma=0.6, m0=mp.gaussian(grid2, [0, 0], 1.0))
    with pytest.raises(ValueError, match=r"init: the result is on a 1-D grid, the problem's grid is 2-D"):
        mp.solve(pb2, init=coarse)
    grid = mp.Grid([(-4, 4)], 40)
    other = mp.MFGProblem(grid, T=1.0, Nt=20, sigma=0.6, m0=mp.gaussian(grid, 0, 0.5))
    with pytest.raises(ValueError, match=r"init: the result's grid has bounds .* same domain"):
        mp.solve(other, init=coarse)
    with pytest.raises(TypeError, match=r"init: expected an MFGResult or the path of a saved result file.*m_init="):
        mp.solve(problem(40, 20), init=coarse.m)
    missing = tmp_path / "nope.h5"
    with pytest.raises(ResultFileError, match=r"init=.*nope.h5.*no such file"):
        mp.solve(problem(40, 20), init=str(missing))
    with pytest.raises(TypeError, match=r"m_init='r.h5': a file name; to start from a saved result pass init='r.h5'"):
        mp.solve(problem(40, 20), m_init="r.h5")
    with pytest.raises(TypeError, match=r"m_init: expected an array .* pass init=result"):
        mp.solve(problem(40, 20), m_init=object())
    with pytest.raises(ValueError, match="m_init and init are both given"):
        mp.solve(problem(40, 20), m_init=coarse.m, init=coarse)
    with pytest.raises(ValueError, match="m_init and init are both given"):
        mp.solve_planning(plan(20, 10), m_init=coarse.m, init=coarse)


def test_planning_warm_start():
    coarse_plan = mp.solve_planning(plan(40, 20))
    cold = mp.solve_planning(plan(80, 40))
    again = mp.solve_planning(plan(80, 40), init=cold)
    assert again.converged and again.iterations <= 2
    np.testing.assert_allclose(again.m, cold.m, atol=1e-8)
    warm = mp.solve_planning(plan(80, 40), init=coarse_plan)
    assert warm.converged and warm.iterations < cold.iterations
    assert warm.planning.sinkhorn_iterations_total < cold.planning.sinkhorn_iterations_total
    np.testing.assert_allclose(warm.m, cold.m, atol=1e-8)
    assert warm.solver["init"].startswith("a result interpolated")
    via_m_init = mp.solve_planning(plan(80, 40), m_init=coarse_plan)   # a result as m_init: the same warm start
    assert via_m_init.iterations == warm.iterations
    with pytest.raises(TypeError, match="pass init="):
        mp.solve_planning(plan(20, 10), m_init="coarse.h5")
