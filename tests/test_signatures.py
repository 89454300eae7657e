"""Callables of the problem with a wrong signature: a clear error naming the parameter and the signature
expected on the grid (not a raw TypeError from deep inside the solver)."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.model.problem import Drift, SignatureError, TerminalCost


def _grid(ndim):
    return mp.Grid([(-1, 1)] * ndim, 12 if ndim == 1 else 6)


def _m0(grid):
    m = np.ones(grid.shape)
    return m / grid.integrate(m)


def _build(ndim, **kw):
    g = _grid(ndim)
    return mp.MFGProblem(g, 1.0, 5, 0.5, _m0(g), **kw)


@pytest.mark.parametrize("ndim,V,expected", [
    (1, lambda x: x ** 2, "V(x, t)"),
    (2, lambda x, t: x ** 2, "V(x, y, t)"),
    (3, lambda x, y, t: x ** 2, "V(x, y, z, t)"),
])
def test_potential_with_the_wrong_signature(ndim, V, expected):
    with pytest.raises(TypeError) as info:
        _build(ndim, potential=V)
    msg = str(info.value)
    assert msg.startswith("potential:") and expected in msg and f"{ndim}-D grid" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value.__cause__, TypeError)


def test_potential_checked_at_first_evaluation_when_its_signature_is_hidden():
    class Hidden:  # a callable whose signature inspect cannot read: only the call tells
        @property
        def __signature__(self):
            raise ValueError("no signature")

        def __call__(self, x):
            return x

    pb = _build(1, potential=Hidden())
    with pytest.raises(SignatureError, match=r"potential: expected a callable V\(x, t\)") as info:
        pb.potential_steps()
    assert isinstance(info.value.__cause__, TypeError)


@pytest.mark.parametrize("G,expected", [
    (lambda x, t: x ** 2, "G(x)"),                               # takes t
    (TerminalCost(lambda x: x ** 2, depends_on_m=True), "G(x, m_T)"),
    (TerminalCost(lambda x, y: x), "G(x)"),
])
def test_terminal_cost_with_the_wrong_signature(G, expected):
    with pytest.raises(ValueError) as info:
        _build(1, terminal_cost=G)
    msg = str(info.value)
    assert msg.startswith("terminal_cost:") and f"expected a callable {expected}" in msg
    assert "no t" in msg and isinstance(info.value, TypeError)


def test_terminal_cost_in_2d_at_first_evaluation():
    class Hidden:
        @property
        def __signature__(self):
            raise ValueError("no signature")

        def __call__(self, x, y, t):
            return x + t

    pb = _build(2, terminal_cost=Hidden())
    with pytest.raises(SignatureError, match=r"terminal_cost: expected a callable G\(x, y\) on this 2-D grid"):
        pb.terminal_values(pb.m0)


@pytest.mark.parametrize("b,expected,ndim", [
    (lambda x: [-x], "b(x, t)", 1),
    (Drift(lambda x, y: [-x, -y], time_dependent=False), "b(x, y, t)", 2),
])
def test_drift_with_the_wrong_signature(b, expected, ndim):
    with pytest.raises(TypeError, match=rf"^drift: expected a callable {expected.replace('(', '[(]').replace(')', '[)]')}"):
        _build(ndim, drift=b)


def test_right_signatures_still_work():
    pb = _build(2, potential=lambda x, y, t: x * y * t, drift=lambda x, y, t: [-x, -y],
                terminal_cost=lambda x, y: x ** 2)
    assert pb.potential_steps().shape == (5, 6, 6) and pb.drift_steps().shape == (5, 2, 6, 6)
    assert pb.terminal_values(pb.m0).shape == (6, 6)
    # an error raised inside a callable that takes the right arguments is not rewritten
    pb = _build(1, potential=lambda x, t: x + "a")
    with pytest.raises(TypeError) as info:
        pb.potential_steps()
    assert not isinstance(info.value, SignatureError)
