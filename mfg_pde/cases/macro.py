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

import logging
import time

import numpy as np

from ..model.household import Household, two_state_switching
from ..newton.equilibrium import Aiyagari, Huggett, solve_equilibrium
from ..newton.household import initial_value
from ..newton.transition import evolve, huggett_transition
from ..richardson import observed_order
from .base import Case, CaseError, CaseRun, Check, Param, register

_LOG = logging.getLogger("mfg_pde")


def sqrt_law_coefficient(hh: Household, sol) -> float:
    """nu_1 of the square-root law s_1(a) ~ -sqrt(2 nu_1 (a - a_min)) of the lowest-income type at the borrowing
    limit: differentiating its HJB in a and letting s_1 -> 0 gives

        nu_1 = [(rho - r) u'(c_1) + sum_k q_1k (u'(c_1) - u'(c_k))] / (-u''(c_1)),   c_k = c_k(a_min),

    with c_1(a_min) = w z_1 + r a_min (the constrained household consumes its income)."""
    U, j = hh.utility, int(np.argmin(hh.z))
    c = sol.c[:, 0]
    jump = sum(hh.Q[j, k] * (U.marginal(c[j]) - U.marginal(c[k])) for k in range(hh.K) if k != j)
    return float(((hh.rho - sol.r) * U.marginal(c[j]) + jump) / U.curvature(c[j]))


def sqrt_law_estimate(hh: Household, sol) -> float:
    """The discrete solution's s_1(a_1)^2 / (2 (a_1 - a_min)) at the first node above the limit (it tends to nu_1
    as h -> 0, at order 1/2: the savings have a square-root singularity there)."""
    j = int(np.argmin(hh.z))
    return float(sol.s[j, 1] ** 2 / (2.0 * hh.h))


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
        p = self.resolve(overrides)
        t0 = time.perf_counter()
        res = self.equilibrium(p)
        self.write(res, p)
        print("\n".join(report_lines(res)), flush=True)
        return CaseRun(self.name, p, res, self.checks(res, p), time.perf_counter() - t0)

    def write(self, res, p):
        if p.get("figure"):
            equilibrium_figure(res, p["figure"], title=self.name)
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
        rows.append(Check("low type at the limit: h g_1(a_min)", float(sol.mass_at_limit[np.argmin(hh.z)]), 1e-4,
                          "the borrowing limit binds: a mass point (> 0)", at_least=True))
        return rows

    def validate(self, overrides=None, progress=False):
        """The default run, then the refinement study on ``refine_N``: observed order of r, its Richardson
        error estimate (<= 1e-5), the square-root-law coefficient nu_1 and the high type's mass at the limit
        (errors and observed orders)."""
        base = self.run(dict(overrides or {}) | {"curve": 0}, progress=progress)
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
                   Check("r*: Richardson error estimate", abs(rich[1] - rich[0]), 1e-5,
                         f"extrapolated r* = {rich[1]:.8f} (N = {self.refine_N[1]}, {self.refine_N[2]})"),
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
             f"fraction at the borrowing limit {res.fraction_at_limit:.6f} (per type: "
             f"{', '.join(f'{m:.6f}' for m in sol.mass_at_limit)})",
             f"household solves {res.evaluations}, wall time {res.wall_time:.3f} s"]
    if res.curve_r is not None:
        lines.append("excess supply S(r): " + ", ".join(f"{r:.4f}: {s:+.4f}" for r, s in zip(res.curve_r, res.curve_S)))
    return lines


def equilibrium_figure(res, path, title=""):
    """Consumption, savings (with the square-root law near a_min) and densities per type, and the excess-supply
    curve with r*."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sol, hh = res.solution, res.economy.household
    a = sol.a
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    for j in range(hh.K):
        lab = f"type {j + 1} (z = {hh.z[j]:g})"
        ax[0, 0].plot(a, sol.c[j], label=lab)
        ax[0, 1].plot(a, sol.s[j], label=lab)
        ax[1, 0].plot(a[1:], sol.g[j, 1:], label=lab)
    nu = sqrt_law_coefficient(hh, sol)
    near = a <= hh.a_min + 0.2 * (hh.a_max - hh.a_min)
    ax[0, 1].plot(a[near], -np.sqrt(2 * nu * (a[near] - hh.a_min)), "k:", label=r"$-\sqrt{2\nu_1(a-a_{min})}$")
    ax[0, 1].axhline(0.0, color="grey", lw=0.5)
    ax[1, 0].set_title(f"densities g_j(a); mass at a_min: {res.fraction_at_limit:.4f}")
    ax[0, 0].set_title("consumption c_j(a)")
    ax[0, 1].set_title("savings s_j(a)")
    for axis in (ax[0, 0], ax[0, 1], ax[1, 0]):
        axis.set_xlabel("wealth a")
        axis.legend(fontsize=8)
    g_tot = sol.g.sum(axis=0)
    top = a[np.flatnonzero(np.cumsum(g_tot) * sol.h < 1 - 1e-4)[-1]] if g_tot.sum() else hh.a_max
    for axis in (ax[0, 0], ax[0, 1], ax[1, 0]):
        axis.set_xlim(hh.a_min, min(hh.a_max, hh.a_min + 1.3 * (top - hh.a_min)))
    if res.curve_r is not None:
        ax[1, 1].plot(res.curve_S, res.curve_r, "o-", ms=3)
        ax[1, 1].axvline(0.0, color="grey", lw=0.5)
    ax[1, 1].plot([0.0], [res.r], "r*", ms=10, label=f"r* = {res.r:.5f}")
    ax[1, 1].set_xlabel("excess asset supply S(r)")
    ax[1, 1].set_ylabel("interest rate r")
    ax[1, 1].legend(fontsize=8)
    ax[1, 1].set_title("asset market")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
