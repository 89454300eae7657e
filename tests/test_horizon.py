"""The finite-horizon game of a stationary one (``mp.time_dependent``, ``model.horizon``): the two solvers agree."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.cases import get


def test_one_type_started_at_the_stationary_state_stays_there():
    """Without switching the implicit step's fixed point solves the stationary equations exactly: started from the
    stationary density and ending with the stationary values, the game stays stationary (u = u_s + lambda (T - t))
    to the solver tolerances."""
    grid = mp.Grid([(-3.0, 3.0)], 120)
    sp = mp.StationaryProblem(grid, sigma=0.7, coupling=mp.LocalPower(1.0), potential=lambda x: 0.5 * x ** 2,
                              discount=0.0, hamiltonian=mp.BoundedControl(1.5))
    st = mp.solve_stationary(sp, tol=1e-13)
    pb = mp.time_dependent(sp, 2.0, 20, st.m, terminal_cost=st.u)
    r = mp.solve(pb, tol=1e-12, newton_tol=1e-14)
    assert r.converged
    assert np.abs(r.m - st.m).max() < 1e-11 * st.m.max()
    drift = r.u - st.u - st.lam * (pb.T - r.t)[:, None]
    assert np.abs(drift).max() < 1e-10 * np.abs(st.u).max()


def test_switching_types_approach_the_stationary_state_at_order_one_in_dt():
    run = get("switching-long-time").validate()
    assert run.passed, [(c.quantity, c.error) for c in run.checks if not c.passed]
    orders = [c.error for c in run.checks if c.quantity.endswith("observed order")]
    assert len(orders) == 2 and min(orders) > 0.9     # measured 0.94 (m(T)) and 1.00 (lambda)


def test_bad_input_is_refused():
    grid = mp.Grid([(-3.0, 3.0)], 40)
    Q = [[-1.0, 1.0], [1.0, -1.0]]
    sp = mp.StationaryProblem(grid, sigma=0.7, potential=lambda x: x ** 2, discount=0.0, switching=Q)
    with pytest.raises(ValueError, match=r"m0 has the grid's shape .* 2 types"):
        mp.time_dependent(sp, 1.0, 10, mp.gaussian(grid, 0.0, 0.5))
    with pytest.raises(ValueError, match="sum to 1"):
        mp.time_dependent(sp, 1.0, 10, np.stack([mp.gaussian(grid, 0.0, 0.5)] * 2))
    with pytest.raises(ValueError, match=r"terminal_cost has shape \(3, 40\)"):
        mp.time_dependent(sp, 1.0, 10, np.stack([mp.gaussian(grid, 0.0, 0.5)] * 2) / 2, terminal_cost=np.zeros((3, 40)))
    disc = mp.StationaryProblem(grid, sigma=0.7, potential=lambda x: x ** 2, discount=0.5)
    with pytest.raises(NotImplementedError, match="discount"):
        mp.time_dependent(disc, 1.0, 10, mp.gaussian(grid, 0.0, 0.5))
