"""Time schedules for coefficients such as the interaction stiffness beta_t.

A schedule is a vectorised callable ``s(t) -> array`` built from a constant, a piecewise-constant
table, or any callable.  ``as_schedule`` turns user input into one.
"""

from __future__ import annotations

import numpy as np


class Schedule:
    """Base class: a vectorised function of time."""

    def __call__(self, t):
        raise NotImplementedError

    def describe(self):
        raise NotImplementedError


class Constant(Schedule):
    def __init__(self, value: float):
        self.value = float(value)

    def __call__(self, t):
        return np.full(np.shape(t), self.value)

    def describe(self):
        return self.value

    def __repr__(self):
        return f"Constant({self.value})"


class PiecewiseConstant(Schedule):
    """value[i] on [breaks[i], breaks[i+1]); ``breaks`` has len(values) + 1 entries.

    Points at or beyond the last break take the last value; points before the first, the first.
    """

    def __init__(self, breaks, values):
        self.breaks = np.asarray(breaks, dtype=float)
        self.values = np.asarray(values, dtype=float)
        if self.breaks.ndim != 1 or self.values.ndim != 1 or len(self.breaks) != len(self.values) + 1:
            raise ValueError("PiecewiseConstant needs breaks of length len(values) + 1 "
                             f"(got {self.breaks.shape} breaks, {self.values.shape} values)")
        if np.any(np.diff(self.breaks) <= 0):
            raise ValueError("PiecewiseConstant breaks must be strictly increasing")

    @classmethod
    def uniform(cls, T: float, values):
        values = np.asarray(values, dtype=float)
        return cls(np.linspace(0.0, T, len(values) + 1), values)

    def __call__(self, t):
        idx = np.searchsorted(self.breaks, t, side="right") - 1
        idx = np.clip(idx, 0, len(self.values) - 1)
        return self.values[idx]

    def describe(self):
        return {"breaks": self.breaks.tolist(), "values": self.values.tolist()}

    def __repr__(self):
        return f"PiecewiseConstant({self.breaks.tolist()}, {self.values.tolist()})"


class FromCallable(Schedule):
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, t):
        t = np.asarray(t, dtype=float)
        out = np.asarray(self.fn(t), dtype=float)
        if out.shape != t.shape:
            out = np.broadcast_to(out, t.shape).copy()
        return out

    def describe(self):
        return getattr(self.fn, "__name__", repr(self.fn))

    def __repr__(self):
        return f"FromCallable({self.describe()})"


def as_schedule(obj, name: str = "schedule") -> Schedule:
    """Constant, callable, Schedule, or a dict {'breaks': [...], 'values': [...]}."""
    if isinstance(obj, Schedule):
        return obj
    if isinstance(obj, dict):
        return PiecewiseConstant(obj["breaks"], obj["values"])
    if callable(obj):
        return FromCallable(obj)
    try:
        return Constant(float(obj))
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {obj!r}: give a number, a callable of t, or a "
                         "PiecewiseConstant schedule") from None
