"""Planning case with a congestion Hamiltonian H = |p|^2 / (2 (1 + c m)), solved by Newton
(``planning.congestion``):

* ``planning-congestion``  Gaussian ends with a small floor (so m1 > 0 everywhere: see the thin-tails note of
                           ``planning_newton``), no interaction; c = 0 is the quadratic planning problem.

No closed form exists for c > 0; the checks are the hard constraints the solver must keep exactly
(terminal mismatch, mass, positivity).  The c = 0 comparison with the Sinkhorn solver and the
self-convergence at c > 0 are in tests/test_planning_newton.py.
"""

from __future__ import annotations

from ..model.densities import gaussian, normalise
from ..model.grid import Grid
from ..model.problem import PlanningProblem
from .base import Case, CaseError, Check, Param, register


def floored_gaussian(grid, mean, std, floor):
    """N(mean, std^2) sampled on the grid plus floor * its peak, normalised."""
    g = gaussian(grid, mean, std)
    return normalise(grid, g + floor * g.max())


def _solve(problem, method=None, **options):
    from ..planning.congestion import solve_planning_newton

    if method not in (None, "newton"):
        raise CaseError(f"method {method!r}: the congestion planning case is solved by Newton only")
    return solve_planning_newton(problem, **options)


@register
class PlanningCongestion(Case):
    name = "planning-congestion"
    description = "planning with congestion H = |p|^2/(2(1 + c m)), Newton on the whole system (c = 0: quadratic)"
    has_oracle = False
    params = (
        Param("c", 2.0, "congestion parameter (>= 0)", nonnegative=True),
        Param("sigma", 0.7, "noise intensity", positive=True),
        Param("mean0", -1.0, "initial mean"), Param("std0", 0.5, "initial std", positive=True),
        Param("mean1", 1.5, "terminal mean"), Param("std1", 0.4, "terminal std", positive=True),
        Param("floor", 1e-3, "floor added to both end densities, relative to their peak", positive=True),
        Param("T", 1.0, "horizon", positive=True),
        Param("L", 4.0, "half-width of the box", positive=True),
        Param("N", 200, "cells", positive=True),
        Param("Nt", 200, "time steps", positive=True),
    )
    tolerances = {"terminal mismatch": 1e-14, "mass error": 1e-12, "negative density": 1e-12}

    def solver(self):
        return _solve

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        m0 = floored_gaussian(grid, p["mean0"], p["std0"], p["floor"])
        m1 = floored_gaussian(grid, p["mean1"], p["std1"], p["floor"])
        pb = PlanningProblem(grid, p["T"], p["Nt"], p["sigma"], m0, m1, name=self.name)
        return pb, {"c": p["c"]}

    def checks(self, result, p):
        peak = float(abs(result.m).max())
        tol = self.tolerances
        return [Check("terminal mismatch", float(result.planning.terminal_mismatch), tol["terminal mismatch"],
                      "h sum |m(T) - m1|"),
                Check("mass error", result.mass_error(), tol["mass error"], "max over t"),
                Check("negative density", max(0.0, -float(result.m.min()) / peak), tol["negative density"],
                      "-min m / max m")]
