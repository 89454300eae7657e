"""Stationary cases with closed forms (docs/method.md, section 'Stationary problems'):

* ``lq-ergodic``    ergodic LQ MFG, V = a/2 (x - c)^2, F = beta/2 (x - mean)^2: Gaussian m = N(c, nu/P),
                    u = P/2 (x - c)^2 + const, lambda = nu P with P = sqrt(a + beta);
* ``lq-discounted`` the same with discount rho > 0: P^2 + rho P = a + beta, u = P/2 (x - c)^2 + nu P / rho;
* ``lq-switching``  two types with Poisson switching (potentials centred at c_1, c_2): quadratic u_k, the
                    type shares, per-type means and variances in closed form (``oracles.analytic.lq_stationary``).

Each run checks the errors at the default grid, the exact identities (mass 1, m >= 0, FP matrix = transpose of
the linearised HJB matrix), and ``validate`` the observed order on a twice finer grid.
"""

from __future__ import annotations

import time

import numpy as np

from ..model.couplings import QuadraticInteraction
from ..model.grid import Grid
from ..model.stationary import StationaryProblem
from ..newton.stationary import solve_stationary
from ..oracles.analytic import lq_stationary
from ..richardson import observed_order
from .base import Case, CaseError, CaseRun, Check, Param, register


class StationaryCase(Case):
    """A stationary case: ``build`` returns a StationaryProblem; solved by ``solve_stationary`` (Newton)."""

    min_order = 0.8

    def solver(self):
        return solve_stationary

    def refined(self, p):
        return {**p, "N": 2 * p["N"]}

    def check_memory(self, p, method=None):
        """A stationary solve holds a few sparse matrices of the grid's size: nothing to refuse."""

    def run(self, overrides=None, progress=False, **solve_overrides):
        method = solve_overrides.pop("method", None)
        if method not in (None, "newton"):
            raise CaseError(f"case {self.name!r}: method {method!r} is not available; stationary problems are "
                            "solved by Newton's method (leave --method out or give --method newton)")
        p = self.resolve(overrides)
        problem = self.build(p)
        opts = {"tol": p.get("tol", 1e-10), **solve_overrides}
        t0 = time.perf_counter()
        result = solve_stationary(problem, progress=progress, **opts)
        result.case = self.name
        result.params = dict(p)
        self.decorate(result, problem, p)
        return CaseRun(self.name, p, result, self.checks(result, p), time.perf_counter() - t0)

    def tolerance(self, quantity, p):
        """The allowed error of a quantity at the default grid.  A discounted value carries the constant
        (lambda-like part) / rho, so its first-order error grows like 1/rho: u (bulk) gets 0.1 + 0.06 / rho."""
        rho = p.get("rho", 0.0)
        if quantity == "u (bulk)" and rho > 0:
            return 0.1 + 0.06 / rho
        return self.tolerances[quantity]

    def checks(self, result, p):
        rows = [Check(k, v, self.tolerance(k, p), f"N = {p['N']}") for k, v in self.errors(result, p).items()]
        res = result.residuals
        rows += [Check("mass |h sum m - 1|", res["mass"], 1e-13, "round-off"),
                 Check("negative density max(-min m, 0)", max(-res["min_m"], 0.0), 0.0, "m >= 0"),
                 Check("duality ||A_FP - A_HJB^T||", res["duality"], 0.0, "exact transpose")]
        return rows

    def validate(self, overrides=None, progress=False):
        coarse = self.run(overrides, progress=progress)
        fine = self.run({**dict(overrides or {}), "N": 2 * coarse.params["N"]}, progress=progress)
        e_c = self.errors(coarse.result, coarse.params)
        e_f = self.errors(fine.result, fine.params)
        checks = list(coarse.checks)
        for q in e_c:
            order = float(observed_order([e_c[q], e_f[q]])[0])
            checks.append(Check(f"{q}: observed order", order, self.min_order,
                                f"errors {e_c[q]:.2e} -> {e_f[q]:.2e} (N doubled)", at_least=True))
        if not fine.result.converged:
            checks.append(Check("refined solve converged", 1.0, 0.0, fine.result.status))
        return CaseRun(self.name, coarse.params, coarse.result, checks, coarse.wall_time + fine.wall_time)


def lq_errors(result, ref, per_type: bool) -> dict:
    """Errors of a stationary LQ result against ``lq_stationary``: u in the bulk (the cells between the
    0.05% and 99.95% quantiles of the total density; ergodic: up to the common constant, removed by its
    m-weighted mean), lambda, and either the Gaussian density (one type) or the per-type means and variances."""
    grid = result.grid
    x, h = grid.axes[0], grid.spacing[0]
    u = np.atleast_2d(result.u)
    m = np.atleast_2d(result.m)
    e = u - ref["u"](x)
    if result.lam is not None:
        e = e - (e * m).sum() * h
    cdf = np.cumsum(m.sum(axis=0)) * h
    bulk = (cdf > 5e-4) & (cdf < 1 - 5e-4)
    out = {"u (bulk)": float(np.abs(e[:, bulk]).max())}
    if result.lam is not None:
        out["lambda"] = abs(result.lam - ref["lam"])
    if per_type:
        pis = m.sum(axis=1) * h
        means = (m * x).sum(axis=1) * h / pis
        var = (m * x ** 2).sum(axis=1) * h / pis - means ** 2
        out["type means"] = float(np.abs(means - ref["mean"]).max())
        out["type variances (relative)"] = float(np.abs(var / ref["var"] - 1.0).max())
    else:
        g = np.exp(-ref["P"] * (x - ref["mean"][0]) ** 2 / (2 * ref["nu"]))
        out["m (max)"] = float(np.abs(m[0] - g / (g.sum() * h)).max())
    return out


def _lq_params(rho_default):
    return (Param("sigma", 0.8, "noise intensity", positive=True),
            Param("a", 1.0, "potential stiffness (V = a/2 (x - c)^2)", positive=True),
            Param("c", 0.33, "potential centre"),
            Param("beta", 1.0, "interaction stiffness (F = beta/2 (x - mean)^2)", nonnegative=True),
            *((Param("rho", rho_default, "discount rate", positive=True),) if rho_default else ()),
            Param("L", 5.0, "half-width of the box [-L, L]", positive=True),
            Param("N", 100, "cells", positive=True),
            Param("tol", 1e-10, "Newton tolerance (relative HJB residual)", positive=True))


class _LQOneType(StationaryCase):
    has_oracle = True
    tolerances = {"u (bulk)": 0.15, "lambda": 0.04, "m (max)": 0.03}

    def validate_params(self, p):
        nu = 0.5 * p["sigma"] ** 2
        std = np.sqrt(nu / np.sqrt(p["a"] + p["beta"]))
        if abs(p["c"]) + 6 * std >= p["L"]:
            raise CaseError(f"box half-width L = {p['L']} is too small for the stationary density (mean c = {p['c']}, "
                            f"std {std:.3g}); increase L")

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        c, a = p["c"], p["a"]
        return StationaryProblem(grid, p["sigma"], coupling=QuadraticInteraction(p["beta"]) if p["beta"] else None,
                                 potential=lambda x: 0.5 * a * (x - c) ** 2, discount=p.get("rho", 0.0),
                                 name=self.name)

    def errors(self, result, p):
        ref = lq_stationary(p["a"], [p["c"]], p["sigma"], p.get("rho", 0.0), p["beta"])
        return lq_errors(result, ref, per_type=False)


@register
class LQErgodic(_LQOneType):
    name = "lq-ergodic"
    description = "ergodic 1-D LQ MFG (stationary, unknown lambda) vs its closed form: Gaussian m, quadratic u, lambda"
    params = _lq_params(0.0)


@register
class LQDiscounted(_LQOneType):
    name = "lq-discounted"
    description = "discounted stationary 1-D LQ MFG (rho > 0) vs its closed form: Gaussian m, quadratic u"
    params = _lq_params(0.4)


@register
class LQSwitching(StationaryCase):
    name = "lq-switching"
    description = "two types with Poisson switching, stationary LQ MFG vs closed form (u_k, type shares, moments)"
    has_oracle = True
    params = (Param("sigma", 0.8, "noise intensity", positive=True),
              Param("a", 1.0, "potential stiffness (V_k = a/2 (x - c_k)^2)", positive=True),
              Param("c1", -0.5, "potential centre of type 1"),
              Param("c2", 1.0, "potential centre of type 2"),
              Param("q12", 0.5, "switching rate type 1 -> 2", positive=True),
              Param("q21", 0.3, "switching rate type 2 -> 1", positive=True),
              Param("beta", 1.0, "interaction stiffness (F = beta/2 (x - mean)^2, mean of all agents)",
                    nonnegative=True),
              Param("rho", 0.0, "discount rate (0: ergodic)", nonnegative=True),
              Param("L", 5.0, "half-width of the box [-L, L]", positive=True),
              Param("N", 100, "cells", positive=True),
              Param("tol", 1e-10, "Newton tolerance (relative HJB residual)", positive=True))
    tolerances = {"u (bulk)": 0.15, "lambda": 0.05, "type means": 0.01, "type variances (relative)": 0.15}

    def Q(self, p):
        return np.array([[-p["q12"], p["q12"]], [p["q21"], -p["q21"]]])

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        a = p["a"]
        pots = [lambda x, c=c: 0.5 * a * (x - c) ** 2 for c in (p["c1"], p["c2"])]
        return StationaryProblem(grid, p["sigma"], coupling=QuadraticInteraction(p["beta"]) if p["beta"] else None,
                                 potential=pots, discount=p["rho"], switching=self.Q(p), name=self.name)

    def errors(self, result, p):
        ref = lq_stationary(p["a"], [p["c1"], p["c2"]], p["sigma"], p["rho"], p["beta"], self.Q(p))
        return lq_errors(result, ref, per_type=True)

    def checks(self, result, p):
        ref = lq_stationary(p["a"], [p["c1"], p["c2"]], p["sigma"], p["rho"], p["beta"], self.Q(p))
        shares = result.m.sum(axis=1) * result.grid.spacing[0]
        return super().checks(result, p) + [Check("type shares (pi Q = 0)", float(np.abs(shares - ref["pi"]).max()),
                                                  1e-13, "exact: round-off")]
