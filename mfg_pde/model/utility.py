"""Utility of consumption and its Hamiltonian, for households that choose consumption c >= 0 (docs/method.md,
section 'Household problems and market clearing').

CRRA utility with relative risk aversion gamma > 0 (gamma = 1: log utility):

    u(c) = c^(1 - gamma) / (1 - gamma)   (gamma != 1),      u(c) = log c   (gamma = 1),
    u'(c) = c^(-gamma),      (u')^(-1)(p) = p^(-1/gamma).

With the drift s = y - c of wealth (y: income z + r a, or w z + r a) the household Hamiltonian is

    H(y, p) = max_{c >= 0} u(c) + p (y - c) = u(c*(p)) + p (y - c*(p)),      c*(p) = (u')^(-1)(p),   p > 0,

and the optimal drift is s*(y, p) = y - c*(p).  The formulas live here only; the household solver
(``newton.household``) calls these functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CRRA"]


class CRRA:
    """CRRA utility u(c) = c^(1-gamma)/(1-gamma) (log c for gamma = 1); module docstring for the formulas.

    gamma must be finite and > 0: u is then increasing and strictly concave, and the Hamiltonian is well defined
    (gamma <= 0 is a utility that is not concave, for which the maximiser c*(p) does not exist)."""

    def __init__(self, gamma: float = 2.0):
        try:
            g = float(gamma)
        except (TypeError, ValueError):
            raise ValueError(f"gamma = {gamma!r}: the CRRA coefficient must be a number > 0, e.g. gamma=2") from None
        if isinstance(gamma, (bool, np.bool_)) or not (np.isfinite(g) and g > 0):
            raise ValueError(f"gamma = {gamma!r}: the CRRA coefficient must be finite and > 0 (the utility must be "
                             "increasing and concave; gamma = 1 is log utility), e.g. gamma=2")
        self.gamma = g

    @property
    def is_log(self) -> bool:
        return self.gamma == 1.0

    def u(self, c):
        """u(c) (c > 0)."""
        c = np.asarray(c, dtype=float)
        return np.log(c) if self.is_log else c ** (1.0 - self.gamma) / (1.0 - self.gamma)

    def marginal(self, c):
        """u'(c) = c^(-gamma)."""
        return np.asarray(c, dtype=float) ** (-self.gamma)

    def curvature(self, c):
        """-u''(c) = gamma c^(-gamma - 1)."""
        return self.gamma * np.asarray(c, dtype=float) ** (-self.gamma - 1.0)

    def consumption(self, p):
        """c*(p) = (u')^(-1)(p) = p^(-1/gamma), the maximiser of u(c) - p c (p > 0)."""
        return np.asarray(p, dtype=float) ** (-1.0 / self.gamma)

    def hamiltonian(self, y, p):
        """H(y, p) = max_c u(c) + p (y - c) = u(c*(p)) + p (y - c*(p))."""
        c = self.consumption(p)
        return self.u(c) + p * (np.asarray(y, dtype=float) - c)

    def describe(self) -> dict:
        return {"utility": "log" if self.is_log else "CRRA", "gamma": self.gamma}

    def __repr__(self) -> str:
        return f"CRRA(gamma={self.gamma:g})"
