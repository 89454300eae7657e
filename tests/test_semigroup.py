"""Exact per-axis semigroups (planning.semigroup): the generator is the core stencil, exp(tau Q) is
positive and accurate entrywise, and the Strang planning sweeps built on it are second order in dt."""

import numpy as np
import pytest
import scipy.linalg

import mfg_pde as mp
from mfg_pde.model.problem import Drift
from mfg_pde.planning import semigroup
from mfg_pde.fd.kernels import _workspace, solve_axis
from mfg_pde.fd.operator import kernel_data


def _kd(grid, drift=None, Nt=10):
    pb = mp.MFGProblem(grid, 1.0, Nt, 0.8, np.full(grid.shape, 1.0 / np.prod(np.ptp(grid.bounds, axis=1))),
                       drift=drift)
    return kernel_data(pb), pb


@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
def test_generator_is_the_core_operator(bc):
    """(I - dt Q)^{-1} is exactly the core implicit-Euler factor M^{-1} at zero policy."""
    grid = mp.Grid([(-2.0, 3.0)], 40, bc=bc)
    kd, pb = _kd(grid, drift=mp.LinearDrift(0.7))
    (Q,) = semigroup.axis_generators(kd)
    off = Q - np.diag(np.diag(Q))
    assert off.min() >= 0
    assert np.allclose(Q.sum(axis=1), 0.0, atol=1e-9)  # zero row sums: a Markov generator
    rhs = np.random.default_rng(0).random(40)
    out = np.empty((40, 1, 1))
    solve_axis(np.zeros((40, 1, 1)), kd.drift[0, 0], 0, kd.axis(0), False, rhs.reshape(40, 1, 1).copy(), out,
               _workspace((40, 1, 1)))
    assert np.allclose(np.linalg.solve(np.eye(40) - kd.dt * Q, rhs), out[:, 0, 0], rtol=1e-12, atol=1e-14)


def test_semigroup_matches_expm_and_is_positive_entrywise():
    grid = mp.Grid([(-3.0, 3.0)], 60)
    kd, _ = _kd(grid, drift=mp.LinearDrift(1.5))
    (Q,) = semigroup.axis_generators(kd)
    for tau in (1e-3, 0.05, 0.7):
        G = semigroup.semigroup(Q, tau)
        ref = scipy.linalg.expm(tau * Q)
        assert np.allclose(G, ref, rtol=0, atol=1e-13)
        assert G.min() >= 0.0
        assert np.allclose(G.sum(axis=1), 1.0, atol=1e-13)
    # semigroup property, and relative accuracy of tiny entries (where expm's absolute error would not do)
    G1, G2 = semigroup.semigroup(Q, 0.01), semigroup.semigroup(Q, 0.02)
    assert np.allclose(G1 @ G1, G2, rtol=1e-10, atol=0)
    assert np.any((G2 > 0) & (G2 < 1e-60))  # the relative check above covered entries below 1e-60


def test_semigroup_rejects_bad_input():
    with pytest.raises(ValueError, match="Metzler"):
        semigroup.semigroup(np.array([[-1.0, -0.5], [1.0, -1.0]]), 0.1)
    with pytest.raises(ValueError, match="tau"):
        semigroup.semigroup(np.zeros((2, 2)), -1.0)


def test_axes_commute_and_apply_axes_is_the_kronecker_product():
    grid = mp.Grid([(-1.0, 1.0), (0.0, 2.0)], [7, 5], bc=["reflecting", "periodic"])
    kd, _ = _kd(grid)
    Gs = [semigroup.semigroup(Q, 0.05) for Q in semigroup.axis_generators(kd)]
    x = np.random.default_rng(1).random((7, 5))
    K = np.kron(Gs[0], Gs[1])
    assert np.allclose(semigroup.apply_axes(Gs, x), (K @ x.ravel()).reshape(7, 5), rtol=1e-13)
    assert np.allclose(semigroup.apply_axes(Gs, x, transpose=True), (K.T @ x.ravel()).reshape(7, 5), rtol=1e-13)
    grid3 = mp.Grid([(-1.0, 1.0)] * 3, [4, 3, 5])
    kd3, _ = _kd(grid3)
    G3 = [semigroup.semigroup(Q, 0.05) for Q in semigroup.axis_generators(kd3)]
    y = np.random.default_rng(2).random((4, 3, 5))
    K3 = np.kron(np.kron(G3[0], G3[1]), G3[2])
    assert np.allclose(semigroup.apply_axes(G3, y), (K3 @ y.ravel()).reshape(4, 3, 5), rtol=1e-13)


def test_non_separable_or_time_dependent_drift_is_refused():
    grid = mp.Grid([(-1.0, 1.0), (-1.0, 1.0)], 8)
    kd, _ = _kd(grid, drift=Drift(lambda x, y, t: (-y, x), time_dependent=False))
    with pytest.raises(ValueError, match="depends on x_0 only"):
        semigroup.axis_generators(kd)
    kd, _ = _kd(mp.Grid([(-1.0, 1.0)], 8), drift=Drift(lambda x, t: -x * (1 + t)))
    with pytest.raises(ValueError, match="time-independent"):
        semigroup.axis_generators(kd)


def test_cached_semigroup_reuses_equal_generators_read_only():
    """Axes of one grid and solves on one level share exp(tau Q): computed once, returned read-only, and a
    different tau or generator gets its own matrix."""
    kd, _ = _kd(mp.Grid([(-1.0, 1.0)], 30))
    (Q,) = semigroup.axis_generators(kd)
    G1 = semigroup.cached_semigroup(Q, 0.01)
    G2 = semigroup.cached_semigroup(Q.copy(), 0.01)
    assert G1 is G2 and not G1.flags.writeable
    np.testing.assert_array_equal(G1, semigroup.semigroup(Q, 0.01))
    assert semigroup.cached_semigroup(Q, 0.02) is not G1
    assert semigroup.cached_semigroup(2.0 * Q, 0.01) is not G1
