"""Richardson extrapolation: second-order fields on the LQ case (error AND observed order)."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.cases import get
from mfg_pde.richardson import extrapolate, restrict, solve_extrapolated


def test_lq_extrapolated_fields_are_second_order():
    c = get("lqg")
    runs = {N: c.run({"N": N, "Nt": N}) for N in (50, 100, 200)}
    E = np.array([list(c.errors(extrapolate(runs[N].result, runs[2 * N].result), runs[N].params).values())
                  for N in (50, 100)])
    orders = np.log2(E[0] / E[1])
    assert np.all(orders > 1.6) and np.all(orders < 2.3), orders
    first = np.array(list(c.errors(runs[100].result, runs[100].params).values()))
    assert np.all(E[1] < first / 20)  # far below the first-order error at the same coarse grid


def test_restriction_and_mass():
    coarse, fine = mp.Grid([(0, 1), (0, 2)], (4, 5)), mp.Grid([(0, 1), (0, 2)], (8, 10))
    f = np.arange(80.0).reshape(8, 10)
    r = restrict(coarse, fine, f)
    assert r.shape == (4, 5) and r[0, 0] == pytest.approx((0 + 1 + 10 + 11) / 4)
    with pytest.raises(ValueError, match="twice the cells"):
        restrict(coarse, mp.Grid([(0, 1), (0, 2)], (8, 9)), np.zeros((8, 9)))
    build = lambda N, Nt: get("lqg").build(get("lqg").resolve({"N": N, "Nt": Nt}))[0]  # noqa: E731
    r = solve_extrapolated(build, 60, 60)
    np.testing.assert_allclose(r.mass(), 1.0, atol=1e-12)
    assert r.solver["richardson"]
