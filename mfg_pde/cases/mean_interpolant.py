"""`mean-interpolant-soft`: the mean-interpolant theorem, terminal-cost form (docs/method.md, section
'Mean-interpolant theorem').

b = 0, V = 0, F = beta_t/2 (x - mean_t)^2 with a time-varying (piecewise-constant or smooth)
beta_t, G = q/2 (x - x_target)^2 and a strongly non-Gaussian (bimodal, skewed) m0.
Theorem: mean_t = mean(m0) + v t,  v = q (x_target - mean(m0)) / (1 + q T), for ANY m0 and beta_t.
"""

from __future__ import annotations

import numpy as np

from ..oracles import analytic
from ..model.couplings import QuadraticInteraction
from ..model.densities import gaussian_mixture
from ..model.grid import Grid
from ..model.problem import MFGProblem, QuadraticTerminalCost
from ..model.schedules import FromCallable, PiecewiseConstant
from .base import Case, Param, register
from .params import grid_params, solver_params


def beta_schedule(p):
    if p["schedule"] == "pwc":
        # the paper's demand-response protocol shape: beta_i = beta * 0.65^i on 8 equal intervals
        return PiecewiseConstant.uniform(p["T"], p["beta"] * 0.65 ** np.arange(8))
    T, b = p["T"], p["beta"]

    def beta_smooth(t):
        return b * (1.0 + 0.8 * np.sin(2 * np.pi * np.asarray(t) / T))
    return FromCallable(beta_smooth)


@register
class MeanInterpolantSoft(Case):
    name = "mean-interpolant-soft"
    description = "bimodal skewed m0, time-varying beta_t, terminal cost: mean_t = mean0 + v t exactly"
    has_oracle = True
    params = (
        Param("sigma", 0.7, "noise intensity", positive=True),
        Param("beta", 6.0, "interaction stiffness scale", nonnegative=True),
        Param("schedule", "pwc", "beta_t shape: pwc (beta 0.65^i, 8 pieces) or smooth (beta (1 + 0.8 sin 2 pi t/T))",
              choices=("pwc", "smooth")),
        Param("q", 2.0, "terminal stiffness", nonnegative=True),
        Param("x_target", 1.0, "terminal target"),
        Param("T", 1.0, "horizon", positive=True),
        Param("L", 6.0, "half-width of the box [-L, L]", positive=True),
        *grid_params(240, 200),
        *solver_params(),
    )
    tolerances = {"mean path": 0.02}

    def m0(self, grid):
        return gaussian_mixture(grid, [0.7, 0.3], [-1.2, 1.5], [0.35, 0.6])

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        problem = MFGProblem(grid, p["T"], p["Nt"], p["sigma"], self.m0(grid),
                             coupling=QuadraticInteraction(beta_schedule(p)),
                             terminal_cost=QuadraticTerminalCost(p["q"], p["x_target"]), name=self.name)
        return problem, {"tol": p["tol"], "method": p["method"]}

    def oracle_mean(self, p, t):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        mean0 = float(grid.mean(self.m0(grid))[0])
        return mean0 + analytic.mean_terminal_velocity(p["q"], p["x_target"], mean0, p["T"]) * np.asarray(t)

    def errors(self, result, p):
        return {"mean path": float(np.max(np.abs(result.mean()[:, 0] - self.oracle_mean(p, result.t))))}
