"""Equilibrium prices of the heterogeneous-agent economies (docs/method.md, section 'Household problems and market
clearing'): the interest rate r that clears the asset market, given the households' stationary wealth distribution
g_j(a; r) (``newton.household``).

    Huggett (bonds in zero net supply):       S(r) = sum_j int a g_j(a; r) da = 0,          w = 1;
    Aiyagari (capital, Cobb-Douglas firm):    S(r) = sum_j int a g_j(a; r, w(r)) da - K(r) = 0,
        r = alpha (K/L)^(alpha-1) - delta,   w = (1 - alpha) (K/L)^alpha,   L = sum_j pi_j z_j,
        i.e.  K(r) = L (alpha / (r + delta))^(1/(1-alpha)),   w(r) = (1 - alpha) (alpha / (r + delta))^(alpha/(1-alpha)).

S is the excess supply of assets; it increases with r.  r* is found by Brent's method on a bracket where S changes
sign (a ValueError naming the bracket when it does not); every evaluation warm-starts the household solve from the
previous one.  The excess-supply curve r -> S(r) on the bracket is available as output.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from .. import io
from ..model.household import Household
from .household import HouseholdSolution, solve_household

_LOG = logging.getLogger("mfg_pde")

__all__ = ["Aiyagari", "Economy", "EquilibriumResult", "Huggett", "excess_supply_curve", "load_equilibrium",
           "solve_equilibrium"]


class Economy:
    """The price side of an economy: which market clears, and the wage at a given interest rate."""

    name = ""

    def __init__(self, household: Household):
        if not isinstance(household, Household):
            raise TypeError(f"household: expected a mfg_pde Household, got {type(household).__name__}")
        self.household = household

    def wage(self, r: float) -> float:
        return 1.0

    def demand(self, r: float) -> float:
        """The assets the market absorbs at r (Huggett: 0; Aiyagari: the firms' capital K(r))."""
        return 0.0

    def default_bracket(self) -> tuple:
        raise NotImplementedError

    def check_bracket(self, bracket) -> tuple:
        try:
            lo, hi = (float(b) for b in bracket)
        except (TypeError, ValueError):
            raise ValueError(f"bracket = {bracket!r}: give two interest rates (lo, hi), lo < hi") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"bracket = {bracket!r}: give two finite interest rates lo < hi")
        rho = self.household.rho
        if hi >= rho:
            raise ValueError(f"bracket = {bracket!r}: r must stay below rho = {rho:g} (at r >= rho households save "
                             "without bound and there is no stationary wealth distribution on a bounded grid); lower "
                             "the upper end")
        return lo, hi

    def describe(self) -> dict:
        return {"economy": self.name, **self.household.describe()}


class Huggett(Economy):
    """Bonds in zero net supply, exogenous incomes z_j (w = 1)."""

    name = "huggett"

    def default_bracket(self) -> tuple:
        """(-rho, 0.98 rho): the rate may be negative when the borrowing limit is tight."""
        return (-self.household.rho, 0.98 * self.household.rho)


class Aiyagari(Economy):
    """Capital rented to a Cobb-Douglas firm Y = K^alpha L^(1-alpha) with depreciation delta (module docstring)."""

    name = "aiyagari"

    def __init__(self, household: Household, alpha: float = 1.0 / 3.0, delta: float = 0.05):
        super().__init__(household)
        alpha, delta = float(alpha), float(delta)
        if not (np.isfinite(alpha) and 0 < alpha < 1):
            raise ValueError(f"alpha = {alpha!r}: the capital share must lie in (0, 1), e.g. alpha=1/3")
        if not (np.isfinite(delta) and delta >= 0):
            raise ValueError(f"delta = {delta!r}: the depreciation rate must be >= 0, e.g. delta=0.05")
        self.alpha, self.delta = alpha, delta

    def _ratio(self, r: float) -> float:
        """K / L at the rate r: alpha (K/L)^(alpha-1) = r + delta."""
        if not r + self.delta > 0:
            raise ValueError(f"r = {r:g} <= -delta = {-self.delta:g}: the firm's demand for capital is unbounded; "
                             "raise the lower end of the bracket above -delta")
        return (self.alpha / (r + self.delta)) ** (1.0 / (1.0 - self.alpha))

    def capital(self, r: float) -> float:
        return self.household.labour * self._ratio(r)

    def wage(self, r: float) -> float:
        return (1.0 - self.alpha) * self._ratio(r) ** self.alpha

    def demand(self, r: float) -> float:
        return self.capital(r)

    def default_bracket(self) -> tuple:
        rho, d = self.household.rho, self.delta
        return (-d + 0.2 * (rho + d), rho - 0.02 * (rho + d))

    def describe(self) -> dict:
        return {**super().describe(), "alpha": self.alpha, "delta": self.delta}


@dataclass
class EquilibriumResult:
    """The stationary equilibrium of an economy.

    economy : the Economy.  solution : the ``HouseholdSolution`` at r* (a, v, c, s, g, residuals).
    r, w : equilibrium prices; K : the capital stock (Aiyagari; None for Huggett); excess : S(r*).
    evaluations : the household solves Brent needed; curve_r, curve_S : the excess-supply curve (when asked for).
    """

    economy: Economy
    solution: HouseholdSolution
    r: float
    w: float
    K: float | None
    excess: float
    evaluations: int
    bracket: tuple
    converged: bool
    status: str
    wall_time: float
    curve_r: np.ndarray | None = None
    curve_S: np.ndarray | None = None
    case: str | None = None
    params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def iterations(self) -> int:
        return self.evaluations

    @property
    def final_residual(self) -> float:
        """|S(r*)|: the market-clearing error."""
        return abs(self.excess)

    @property
    def fraction_at_limit(self) -> float:
        return self.solution.fraction_at_limit

    def mass_error(self) -> float:
        return abs(float(self.solution.g.sum() * self.solution.h) - 1.0)

    def summary(self) -> str:
        k = f", K = {self.K:.8g}" if self.K is not None else ""
        return (f"{self.economy.name}: r* = {self.r:.10f}, w = {self.w:.8g}{k}; |S(r*)| = {abs(self.excess):.2e} "
                f"after {self.evaluations} household solves; {self.fraction_at_limit:.4f} of households at the "
                f"borrowing limit; N = {self.solution.a.size}, wall time {self.wall_time:.3f} s")

    def __repr__(self) -> str:
        return f"<EquilibriumResult {self.summary()}>"

    def save(self, path) -> None:
        save_equilibrium(self, path)


def excess_supply_curve(economy: Economy, rs, v_init=None) -> np.ndarray:
    """S(r) at the rates rs (module docstring), each household solve warm-started from the previous one."""
    out, v, g = [], v_init, None
    for r in np.asarray(rs, dtype=float):
        w = economy.wage(r)
        sol = solve_household(economy.household, r, w, v_init=v, g_guess=g)
        v, g = sol.v, sol.g
        out.append(sol.assets - economy.demand(r))
    return np.array(out)


def solve_equilibrium(economy: Economy, bracket=None, xtol: float = 1e-13, curve_points: int = 0,
                      tol: float = 1e-11) -> EquilibriumResult:
    """r* with S(r*) = 0 by Brent's method on ``bracket`` (default ``economy.default_bracket()``); module
    docstring.  A ValueError naming the bracket when S has the same sign at both ends.  ``curve_points`` > 0
    also evaluates the excess-supply curve on that many rates of the bracket."""
    hh = economy.household
    lo, hi = economy.check_bracket(economy.default_bracket() if bracket is None else bracket)
    t0 = time.perf_counter()
    state = {"v": None, "g": None, "n": 0, "sols": {}}

    def S(r):
        sol = solve_household(hh, r, economy.wage(r), v_init=state["v"], g_guess=state["g"], tol=tol)
        if not sol.converged:
            raise RuntimeError(f"household problem not converged at r = {r:.6g} ({sol.iterations} policy iterations)")
        state.update(v=sol.v, g=sol.g, n=state["n"] + 1)
        state["sols"][r] = sol
        return sol.assets - economy.demand(r)

    s_lo, s_hi = S(lo), S(hi)
    if not np.sign(s_lo) * np.sign(s_hi) < 0:
        raise ValueError(f"bracket = ({lo:g}, {hi:g}): the excess asset supply does not change sign there (S({lo:g}) "
                         f"= {s_lo:.3g}, S({hi:g}) = {s_hi:.3g}); choose a bracket with S < 0 at the lower and S > 0 "
                         "at the upper rate")
    r = brentq(S, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps)
    sol = state["sols"].get(r)
    if sol is None:
        S(r)
        sol = state["sols"][r]
    excess = sol.assets - economy.demand(r)
    curve_r = curve_S = None
    if curve_points:
        curve_r = np.linspace(lo, hi, int(curve_points))
        curve_S = excess_supply_curve(economy, curve_r)
    wall = time.perf_counter() - t0
    K = economy.capital(r) if isinstance(economy, Aiyagari) else None
    ok = bool(sol.converged and sol.residuals["hjb"] <= 1e-8 * max(1.0, float(np.abs(sol.v).max())))
    _LOG.info("%s: r* = %.10f after %d household solves, %.3f s", economy.name, r, state["n"], wall)
    return EquilibriumResult(economy=economy, solution=sol, r=float(r), w=float(economy.wage(r)), K=K,
                             excess=float(excess), evaluations=state["n"], bracket=(lo, hi), converged=ok,
                             status="converged" if ok else "household HJB residual above tolerance", wall_time=wall,
                             curve_r=curve_r, curve_S=curve_S)


def save_equilibrium(result: EquilibriumResult, path) -> None:
    """Write an equilibrium to HDF5 (atomically, ``io.write_atomic``).  Datasets /a, /v, /c, /s, /g
    (types x wealth nodes), /switching, /z, optional /excess_curve/{r,S} and /transition/...; attributes kind =
    "equilibrium", economy, r, w, K, excess, fraction_at_limit, evaluations, converged, status, residuals, economy
    parameters, case, params (JSON), and the /provenance group of every result file (``io``)."""
    sol = result.solution

    def fill(f):
        f.attrs["kind"] = "equilibrium"
        f.attrs["economy"] = result.economy.name
        for k in ("r", "w", "excess", "fraction_at_limit", "wall_time"):
            f.attrs[k] = float(getattr(result, k))
        f.attrs["K"] = np.nan if result.K is None else float(result.K)
        f.attrs["evaluations"] = int(result.evaluations)
        f.attrs["converged"] = bool(result.converged)
        f.attrs["status"] = str(result.status)
        f.attrs["residuals"] = json.dumps(io.json_safe(sol.residuals))
        f.attrs["model"] = json.dumps(io.json_safe(result.economy.describe()))
        f.attrs["case"] = result.case or ""
        f.attrs["params"] = json.dumps(io.json_safe(result.params))
        f.create_dataset("a", data=sol.a).attrs["long_name"] = "wealth nodes (a_min and a_max included)"
        for k, what in (("v", "value"), ("c", "consumption"), ("s", "savings (drift of wealth)"),
                        ("g", "stationary density (h g[:, 0]: mass at the borrowing limit)")):
            f.create_dataset(k, data=getattr(sol, k)).attrs["long_name"] = f"{what} (types x wealth nodes)"
        f.create_dataset("z", data=result.economy.household.z)
        f.create_dataset("switching", data=result.economy.household.Q)
        if result.curve_r is not None:
            g = f.create_group("excess_curve")
            g.create_dataset("r", data=result.curve_r)
            g.create_dataset("S", data=result.curve_S)
        for name, arrays in result.extra.items():   # e.g. the transition path, the refinement table
            g = f.create_group(name)
            for k, v in arrays.items():
                g.create_dataset(k, data=np.asarray(v))
        io._write_provenance(f)

    io.write_atomic(path, fill)


def load_equilibrium(path) -> EquilibriumResult:
    """Read a file written by ``EquilibriumResult.save``: the economy is rebuilt from its parameters, the household
    solution from the stored a, v, c, s, g (the groups of ``extra``, e.g. /transition, come back as arrays)."""
    import h5py

    from ..model.utility import CRRA

    with h5py.File(path, "r") as f:
        if f.attrs.get("kind") != "equilibrium":
            raise io.ResultFileError(f"{path}: not an equilibrium file (no kind = 'equilibrium' attribute); read "
                                     "time-dependent results with mfg_pde.load")
        model = json.loads(f.attrs["model"])
        hh = Household(utility=CRRA(model["gamma"]), rho=model["rho"], z=model["z"], switching=model["switching"],
                       a_min=model["a_min"], a_max=model["a_max"], N=model["N"])
        econ = Aiyagari(hh, model["alpha"], model["delta"]) if model["economy"] == "aiyagari" else Huggett(hh)
        arr = {k: np.asarray(f[k]) for k in ("a", "v", "c", "s", "g")}
        r, w = float(f.attrs["r"]), float(f.attrs["w"])
        sol = HouseholdSolution(r=r, w=w, a=arr["a"], h=hh.h, v=arr["v"], c=arr["c"], s=arr["s"], g=arr["g"],
                                iterations=0, converged=bool(f.attrs["converged"]),
                                residuals=json.loads(f.attrs["residuals"]))
        curve = f.get("excess_curve")
        extra = {name: {k: np.asarray(v) for k, v in f[name].items()} for name in f
                 if isinstance(f[name], h5py.Group) and name not in ("excess_curve", "provenance")}
        K = float(f.attrs["K"])
        return EquilibriumResult(economy=econ, solution=sol, r=r, w=w, K=None if np.isnan(K) else K,
                                 excess=float(f.attrs["excess"]), evaluations=int(f.attrs["evaluations"]),
                                 bracket=(np.nan, np.nan), converged=bool(f.attrs["converged"]),
                                 status=str(f.attrs["status"]), wall_time=float(f.attrs["wall_time"]),
                                 curve_r=None if curve is None else np.asarray(curve["r"]),
                                 curve_S=None if curve is None else np.asarray(curve["S"]),
                                 case=str(f.attrs["case"]) or None, params=json.loads(f.attrs["params"]),
                                 extra=extra)
