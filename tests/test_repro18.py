"""Regression tests of issue 18: ``mfg-pde info`` names the doors."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde import cli


@pytest.fixture(scope="module")
def door_file(tmp_path_factory):
    grid = mp.Grid([(0, 1), (0, 1)], (16, 16))
    doors = [mp.Door(("x", "hi"), mp.Interval(0.1, 0.3), name="low"),
             mp.Door(("x", "hi"), mp.Interval(0.6, 0.9), name="high")]
    pb = mp.MFGProblem(grid, T=0.3, Nt=8, sigma=0.5, m0=mp.gaussian(grid, [0.6, 0.5], 0.2),
                       potential=np.ones(grid.shape), terminal_cost=np.ones(grid.shape), doors=doors)
    r = mp.solve(pb, method="picard")
    path = tmp_path_factory.mktemp("doors") / "d.h5"
    r.save(path)
    return path, r


def test_info_names_the_doors(door_file, capsys):
    path, r = door_file
    assert cli.main(["info", str(path)]) == 0
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("outflow:")]
    assert len(out) == 1
    assert "through doors 'low', 'high' (side x hi)" in out[0], out[0]
    assert r.outflow.through == "doors 'low', 'high' (side x hi)"


def test_loaded_door_problem_solves_to_the_same_result(door_file):
    path, r = door_file
    loaded = mp.load(path)
    assert loaded.problem is not None
    again = mp.solve(loaded.problem, method="picard")
    np.testing.assert_allclose(again.u, r.u, rtol=0, atol=1e-12)
    np.testing.assert_allclose(again.m, r.m, rtol=0, atol=1e-12)
