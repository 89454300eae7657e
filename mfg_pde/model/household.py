"""Household: the agents of the heterogeneous-agent models of macroeconomics (Huggett, Aiyagari) as a discounted
stationary MFG with K income types (docs/method.md, section 'Household problems and market clearing').

A household with wealth a in [a_min, a_max] and income type j (income w z_j; switching j -> k at rate q_jk,
the rows of Q summing to 0) chooses consumption c >= 0; wealth moves with the drift s = w z_j + r a - c and the
value v_j solves

    rho v_j(a) = max_c u(c) + v_j'(a) (w z_j + r a - c) + sum_k q_jk (v_k(a) - v_j(a)),

with the state constraint a >= a_min (the borrowing limit: no drift out of [a_min, a_max]).  The wealth grid has a
node exactly at a_min and one at a_max (N nodes, step h = (a_max - a_min) / (N - 1)): the mass point of the
borrowing-constrained households sits on the first node.
"""

from __future__ import annotations

import numpy as np

from .numbers import finite_number
from .switching import check_switching, stationary_distribution
from .utility import CRRA

__all__ = ["Household", "two_state_switching"]


def two_state_switching(lam1: float, lam2: float) -> np.ndarray:
    """Q = [[-lam1, lam1], [lam2, -lam2]]: type 1 -> 2 at rate lam1, type 2 -> 1 at rate lam2."""
    return np.array([[-float(lam1), float(lam1)], [float(lam2), -float(lam2)]])


def _number(value, name: str, fix: str) -> float:
    return finite_number(value, name, fix=fix)


class Household:
    """Parameters of the household problem (module docstring for the equations).

    utility : a ``CRRA`` (or its gamma > 0).
    rho : the discount rate, > 0.
    z : the K incomes (efficiency units of labour), > 0.
    switching : the K x K switching-rate matrix Q (off-diagonal rates >= 0, rows summing to 0).
    a_min, a_max : the borrowing limit and the top of the wealth grid, a_min < a_max.
    N : wealth nodes (a_min and a_max included), >= 10.
    """

    def __init__(self, utility=2.0, rho: float = 0.05, z=(0.1, 0.2), switching=((-1.2, 1.2), (1.2, -1.2)),
                 a_min: float = -0.15, a_max: float = 5.0, N: int = 1000):
        self.utility = utility if isinstance(utility, CRRA) else CRRA(utility)
        self.rho = _number(rho, "rho", "the discount rate must be > 0, e.g. rho=0.05")
        if not self.rho > 0:
            raise ValueError(f"rho = {rho!r}: the discount rate must be > 0 (a household problem without discounting "
                             "has no stationary value), e.g. rho=0.05")
        try:
            zz = np.array(z, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"z = {z!r}: give the incomes as a list of K numbers > 0, e.g. z=(0.1, 0.2)") from None
        if zz.size < 1 or not np.all(np.isfinite(zz)) or np.any(zz <= 0):
            raise ValueError(f"z = {z!r}: the incomes must be finite and > 0, e.g. z=(0.1, 0.2)")
        self.z = zz
        self.Q = check_switching(switching, name="switching")
        if self.Q.shape[0] != zz.size:
            raise ValueError(f"switching is {self.Q.shape[0]} x {self.Q.shape[0]} for {zz.size} incomes z: give one "
                             "row and one column of switching rates per income type")
        self.shares = stationary_distribution(self.Q)
        self.a_min = _number(a_min, "a_min", "the borrowing limit, e.g. a_min=-0.15")
        self.a_max = _number(a_max, "a_max", "the top of the wealth grid, e.g. a_max=5")
        if not self.a_max > self.a_min:
            raise ValueError(f"a_max = {a_max!r} must exceed the borrowing limit a_min = {a_min!r}; raise a_max")
        if isinstance(N, (bool, np.bool_)) or int(N) != N or int(N) < 10:
            raise ValueError(f"N = {N!r}: need an integer number of wealth nodes >= 10, e.g. N=1000")
        self.N = int(N)
        self.a = np.linspace(self.a_min, self.a_max, self.N)
        self.h = (self.a_max - self.a_min) / (self.N - 1)

    @property
    def K(self) -> int:
        return self.z.size

    @property
    def labour(self) -> float:
        """Aggregate efficiency units of labour L = sum_j pi_j z_j (pi: the long-run type shares)."""
        return float(self.shares @ self.z)

    def check_borrowing_limit(self, r: float, w: float = 1.0) -> None:
        """The borrowing limit must lie above the natural limit -w z_min / r (r > 0): a household at a_min must be
        able to pay the interest on its debt from its lowest income, w z_min + r a_min > 0 (else consumption
        would have to be <= 0 forever).  A ValueError naming a_min otherwise."""
        floor = w * self.z.min() + r * self.a_min
        if not floor > 0:
            natural = -w * self.z.min() / r if r > 0 else -np.inf
            raise ValueError(f"a_min = {self.a_min:g} is at or below the natural borrowing limit -w z_min / r = "
                             f"{natural:.6g} (r = {r:.6g}, w = {w:.6g}): the lowest income cannot pay the interest on "
                             "the debt; raise a_min above the natural limit (or lower r)")

    def with_(self, **changes) -> Household:
        """A copy with some parameters changed (utility, rho, z, switching, a_min, a_max, N)."""
        kw = dict(utility=self.utility, rho=self.rho, z=self.z, switching=self.Q, a_min=self.a_min,
                  a_max=self.a_max, N=self.N)
        kw.update(changes)
        return Household(**kw)

    def describe(self) -> dict:
        return {**self.utility.describe(), "rho": self.rho, "z": self.z.tolist(), "switching": self.Q.tolist(),
                "a_min": self.a_min, "a_max": self.a_max, "N": self.N}
