"""Heterogeneous-agent macroeconomics (docs/method.md, section 'Household problems and market clearing'):

* ``huggett``             households with two income types and a borrowing limit save in bonds in zero net
                          supply; the interest rate clears the bond market;
* ``aiyagari``            the same households rent their wealth to a Cobb-Douglas firm as capital;
                          r = alpha K^(alpha-1) - delta and w = (1 - alpha) K^alpha (labour L = 1 by default);
* ``huggett-transition``  the Huggett economy after an unexpected change of the low income z1: the price path
                          r(t) from the old stationary equilibrium to the new one.

There is no closed form for r*, so the checks are those theory gives and the refinement study: market clearing,
mass and positivity of g, FP = transpose of the HJB generator (round-off), the square-root law of savings at the
borrowing limit s_1(a) ~ -sqrt(2 nu_1 (a - a_min)) with nu_1 from the HJB (``sqrt_law_coefficient``), no mass of the
high type at the limit, and in ``validate`` the observed order of r under grid refinement with its Richardson
error estimate, and the long-time limit of the time-dependent solver started from other data.
"""

from __future__ import annotations

import time

import numpy as np

from ..model.household import Household, two_state_switching
from ..newton.equilibrium import Aiyagari, Huggett, solve_equilibrium
from ..newton.household import initial_value, sqrt_law_coefficient, sqrt_law_estimate
from ..newton.transition import evolve, huggett_transition
from ..plotting.macro import draw
from ..richardson import observed_order
from .base import Case, CaseError, CaseRun, Check, Param, register

#: the order of the error left after removing the first-order term of r* by Richardson extrapolation: the density
#: has an (a - a_min)^(-1/2) singularity at the borrowing limit, whose first cell leaves O(h^(3/2)) in the moments
#: (measured: 1.5 to 1.7 on N = 500 ... 64000, tests/test_macro.py::test_huggett_r_richardson_sequence)
NEXT_ORDER = 1.5


def _household_params(z1, z2, lam1, lam2, a_min, a_max):
    return (Param("gamma", 2.0, "CRRA coefficient (relative risk aversion; 1: log utility)", positive=True),
            Param("rho", 0.05, "discount rate", positive=True),
            Param("z1", z1, "income of the low type", positive=True),
            Param("z2", z2, "income of the high type", positive=True),
            Param("lam1", lam1, "switching rate low -> high", positive=True),
            Param("lam2", lam2, "switching rate high -> low", positive=True),
            Param("a_min", a_min, "borrowing limit (above the natural limit -w z1 / r)"),
            Param("a_max", a_max, "top of the wealth grid"),
            Param("N", 1000, "wealth nodes (a_min and a_max included)", positive=True))


_OUTPUT_PARAMS = (Param("r_lo", 0.0, "lower end of the interest-rate bracket (0 with r_hi = 0: the default bracket)"),
                  Param("r_hi", 0.0, "upper end of the interest-rate bracket (< rho)"),
                  Param("curve", 15, "points of the excess-supply curve S(r) on the bracket (0: none)",
                        nonnegative=True),
                  Param("figure", "", "write c, s, g per type and the excess-supply curve to this PNG", output=True),
                  Param("h5", "", "write the equilibrium (a, v, c, s, g, curve) to this HDF5 path", output=True))


class _MacroCase(Case):
    has_oracle = True
    #: N of the refinement study of ``validate`` (three grids, each twice the previous)
    refine_N = (2000, 4000, 8000)

    def household(self, p) -> Household:
        try:
            return Household(utility=p["gamma"], rho=p["rho"], z=(p["z1"], p["z2"]),
                             switching=two_state_switching(p["lam1"], p["lam2"]), a_min=p["a_min"],
                             a_max=p["a_max"], N=p["N"])
        except ValueError as exc:
            raise CaseError(f"case {self.name!r}: {exc}") from None

    def economy(self, p):
        raise NotImplementedError

    def bracket(self, p):
        return None if p["r_lo"] == 0.0 and p["r_hi"] == 0.0 else (p["r_lo"], p["r_hi"])

    def check_memory(self, p, method=None):
        """The household solve holds a few banded matrices of 2 N entries: nothing to refuse."""

    def equilibrium(self, p, curve=True):
        econ = self.economy(p)
        try:
            res = solve_equilibrium(econ, bracket=self.bracket(p), curve_points=p["curve"] if curve else 0)
        except ValueError as exc:
            raise CaseError(f"case {self.name!r}: {exc}") from None
        res.case, res.params = self.name, dict(p)
        return res

    def run(self, overrides=None, progress=False, **solve_overrides):
        method = solve_overrides.pop("method", None)
        if method is not None:
            raise CaseError(f"case {self.name!r}: method {method!r} is not available; the household problem is "
                            "solved by implicit policy iteration and r* by Brent's method (leave --method out)")
        return self._run(overrides, verbose=True)

    def _run(self, overrides, verbose):
        p = self.resolve(overrides)
        t0 = time.perf_counter()
        res = self.equilibrium(p)
        self.write(res, p)
        if verbose:   # the case's report (``mfg-pde run`` shows it on stderr, above its summary)
            print("\n".join(report_lines(res)), flush=True)
        return CaseRun(self.name, p, res, self.checks(res, p), time.perf_counter() - t0)

    def write(self, res, p):
        if p.get("figure"):
            draw(res, p["figure"], title=self.name)
        if p.get("h5"):
            res.save(p["h5"])

    def checks(self, res, p):
        sol, hh = res.solution, res.economy.household
        scale = max(1.0, float(np.abs(sol.v).max()))
        rows = [Check("market clearing |S(r*)|", abs(res.excess), 1e-9, "Brent, xtol 1e-13"),
                Check("HJB residual (relative)", sol.residuals["hjb"] / scale, 1e-9, "policy iteration"),
                Check("FP residual |A^T g|", sol.residuals["fp"], 1e-12, "exact transpose: round-off"),
                Check("mass |h sum g - 1|", sol.residuals["mass"], 1e-13, "round-off"),
                Check("negative density max(-min g, 0)", max(-float(sol.g.min()), 0.0), 0.0, "g >= 0")]
        top = hh.a >= hh.a_max - 0.05 * (hh.a_max - hh.a_min)
        rows.append(Check("mass in the top 5% of the wealth grid", float(sol.g[:, top].sum() * hh.h), 1e-6,
                          "a_max large enough (else raise a_max)"))
        rows.append(Check("low type at the limit: h g_1(a_min)", float(sol.mass_at_limit[np.argmin(hh.z)]), 1e-4,
                          "the borrowing limit binds: a mass point (> 0)", at_least=True))
        return rows

    def validate(self, overrides=None, progress=False):
        """The default run, then the refinement study on ``refine_N``: observed order of r, its Richardson
        error estimate (<= 1e-5), the square-root-law coefficient nu_1 and the high type's mass at the limit
        (errors and observed orders)."""
        base = self._run(dict(overrides or {}) | {"curve": 0}, verbose=False)
        checks = list(base.checks)
        t0 = time.perf_counter()
        rs, nu_err, hi_mass = [], [], []
        for N in self.refine_N:
            p = self.resolve(dict(overrides or {}) | {"N": N, "curve": 0})
            res = self.equilibrium(p, curve=False)
            hh, sol = res.economy.household, res.solution
            rs.append(res.r)
            nu_err.append(abs(sqrt_law_estimate(hh, sol) - sqrt_law_coefficient(hh, sol)))
            hi_mass.append(float(sol.mass_at_limit[int(np.argmax(hh.z))]))
        d = np.abs(np.diff(rs))
        order = float(np.log2(d[0] / d[1]))
        rich = [2 * rs[1] - rs[0], 2 * rs[2] - rs[1]]
        Ns = "/".join(map(str, self.refine_N))
        checks += [Check("r*: observed order", order, 0.8, f"r* = {', '.join(f'{r:.8f}' for r in rs)} (N = {Ns})",
                         at_least=True),
                   Check("r*: Richardson error estimate", abs(rich[1] - rich[0]) / (2 ** NEXT_ORDER - 1), 1e-5,
                         f"extrapolated r* = {rich[1]:.8f} (N = {self.refine_N[1]}, {self.refine_N[2]}); "
                         f"|R2 - R1| / (2^{NEXT_ORDER:g} - 1)"),
                   Check("sqrt law nu_1: error", nu_err[-1], 0.2 * sqrt_law_coefficient(hh, sol),
                         f"s_1^2 / (2 (a - a_min)) at a_1 vs nu_1 = {sqrt_law_coefficient(hh, sol):.5f} (N = "
                         f"{self.refine_N[-1]})"),
                   Check("sqrt law nu_1: observed order", float(observed_order(nu_err[1:])[0]), 0.35,
                         f"errors {nu_err[1]:.2e} -> {nu_err[2]:.2e}; theory 1/2", at_least=True),
                   Check("high type at the limit: observed order", float(observed_order(hi_mass[1:])[0]), 0.8,
                         f"mass {hi_mass[1]:.2e} -> {hi_mass[2]:.2e} (limit 0)", at_least=True)]
        base.result.extra["refinement"] = {"N": np.array(self.refine_N), "r": np.array(rs),
                                           "nu_error": np.array(nu_err), "high_type_mass": np.array(hi_mass)}
        checks += self.long_time_checks(base.result)
        return CaseRun(self.name, base.params, base.result, checks, base.wall_time + time.perf_counter() - t0)

    def long_time_checks(self, res):
        """The time-dependent solver (``newton.transition.evolve``, implicit Euler, dt = 1) at the equilibrium
        prices, started elsewhere: the value backward from u(income)/rho at T (its error must decay at the
        scheme's discount rate log(1 + rho dt) / dt), and the density forward from all households at a_min (with
        the stationary value at T, so that the policy is the stationary one), which must reach g*."""
        from ..newton.household import solve_household

        hh = res.economy.household.with_(N=200)
        ref = solve_household(hh, res.r, res.w)
        dt = 1.0
        ev = [float(np.abs(evolve(hh, res.r, res.w, initial_value(hh, res.r, res.w), ref.g, T, int(T / dt)).v0
                           - ref.v).max() / np.abs(ref.v).max()) for T in (100.0, 200.0)]
        g0 = np.zeros((hh.K, hh.N))
        g0[:, 0] = hh.shares
        eg = [float(np.abs(evolve(hh, res.r, res.w, ref.v, g0, T, int(T / dt)).g[-1] - ref.g).max() / ref.g.max())
              for T in (200.0, 400.0)]
        rate = float(np.log(ev[0] / ev[1]) / 100.0)
        theory = float(np.log1p(hh.rho * dt) / dt)
        return [Check("long-time limit: value decay rate / log(1 + rho dt) - 1", abs(rate / theory - 1.0), 0.01,
                      f"rate {rate:.5f} vs {theory:.5f}; |v(0) - v*| / |v*| = {ev[0]:.1e} (T = 100), {ev[1]:.1e} "
                      "(T = 200); N = 200"),
                Check("long-time limit: density |g(T) - g*| / max g*", eg[1], 1e-5,
                      f"T = 400 (T = 200: {eg[0]:.1e}); started at a_min; N = 200")]


def report_lines(res) -> list:
    sol = res.solution
    lines = [f"equilibrium r* = {res.r:.10f}, w = {res.w:.8g}" + (f", K = {res.K:.8g}" if res.K is not None else ""),
             (f"fraction at the borrowing limit {res.fraction_at_limit:.6f} (per type: "
              f"{', '.join(f'{m:.6f}' for m in sol.mass_at_limit)})"),
             f"household solves {res.evaluations}, wall time {res.wall_time:.3f} s"]
    if res.curve_r is not None:
        lines.append("excess supply S(r): " + ", ".join(f"{r:.4f}: {s:+.4f}" for r, s in zip(res.curve_r, res.curve_S)))
    return lines


@register
class HuggettCase(_MacroCase):
    name = "huggett"
    description = ("Huggett economy: CRRA households, two income types, borrowing limit; r clears the bond market "
                   "(sqrt law at the limit, r* refinement + Richardson)")
    params = _household_params(0.1, 0.2, 1.2, 1.2, -0.15, 5.0) + _OUTPUT_PARAMS

    def economy(self, p):
        return Huggett(self.household(p))


@register
class AiyagariCase(_MacroCase):
    name = "aiyagari"
    description = ("Aiyagari economy: the Huggett households rent capital to a Cobb-Douglas firm; r and w from "
                   "K (sqrt law at the limit, r* refinement + Richardson)")
    params = _household_params(0.4, 1.6, 0.2, 0.2, 0.0, 60.0) + (
        Param("alpha", 1.0 / 3.0, "capital share of the Cobb-Douglas firm", positive=True),
        Param("delta", 0.05, "depreciation rate", nonnegative=True)) + _OUTPUT_PARAMS
    refine_N = (1000, 2000, 4000)

    def economy(self, p):
        try:
            return Aiyagari(self.household(p), alpha=p["alpha"], delta=p["delta"])
        except ValueError as exc:
            raise CaseError(f"case {self.name!r}: {exc}") from None


@register
class HuggettTransition(_MacroCase):
    name = "huggett-transition"
    description = ("Huggett economy after an unexpected change of the low income z1 -> z1_new: the price path r(t) "
                   "from the old to the new stationary equilibrium")
    has_oracle = False
    params = tuple(q if q.name != "N" else Param("N", 500, "wealth nodes (a_min and a_max included)", positive=True)
                   for q in _household_params(0.1, 0.2, 1.2, 1.2, -0.15, 5.0)) + (
        Param("z1_new", 0.12, "income of the low type after the shock", positive=True),
        Param("T", 120.0, "horizon of the transition (long enough for the new stationary state)", positive=True),
        Param("Nt", 240, "time steps", positive=True),
        Param("xi", 3.0, "relaxation step of the price update", positive=True),
        Param("tol", 1e-6, "market-clearing tolerance max |S(t)|", positive=True),
        Param("max_iter", 200, "price iterations", positive=True)) + tuple(
        q for q in _OUTPUT_PARAMS if q.name in ("r_lo", "r_hi", "figure", "h5"))

    def run(self, overrides=None, progress=False, **solve_overrides):
        method = solve_overrides.pop("method", None)
        if method is not None:
            raise CaseError(f"case {self.name!r}: method {method!r} is not available (leave --method out)")
        p = self.resolve(overrides)
        t0 = time.perf_counter()
        q = dict(p, curve=0)
        old = self.equilibrium(q, curve=False)
        new = self.equilibrium(dict(q, z1=p["z1_new"]), curve=False)
        tr = huggett_transition(old, new, T=p["T"], Nt=p["Nt"], xi=p["xi"], tol=p["tol"], max_iter=p["max_iter"])
        tr.case, tr.params = self.name, dict(p)
        if p["figure"]:
            draw(tr, p["figure"])
        if p["h5"]:
            tr.save(p["h5"])
        print(tr.summary(), flush=True)
        return CaseRun(self.name, p, tr, self.transition_checks(tr, p), time.perf_counter() - t0)

    def economy(self, p):
        return Huggett(self.household(p))

    def transition_checks(self, tr, p):
        g_new = tr.new.solution.g
        return [Check("market clearing max |S(t)|", tr.excess, p["tol"], f"{tr.iterations} price iterations"),
                Check("mass max |h sum g(t) - 1|", tr.mass_error(), 1e-12, "implicit FP = transpose: round-off"),
                Check("negative density", max(-float(tr.path.g.min()), 0.0), 0.0, "g(t) >= 0"),
                Check("g(T) vs new stationary g (max, relative)", float(np.abs(tr.path.g[-1] - g_new).max() /
                                                                      g_new.max()), 1e-3, f"T = {p['T']:g}")]
