"""Planning cases (prescribed m0 and m1; docs/method.md, sections 'LQG Riccati closed forms' to
'Independent agents and the energy identity'):

* ``lqg-bridge``       Gaussian ends, quadratic interaction: mean linear, Sigma_t and energy closed form.
* ``mean-interpolant`` bimodal/skewed ends of different shapes, time-varying beta_t: mean_t is the
                       linear interpolant of the end means (the MF-PID theorem), from a curved guess.
* ``ia-vs-mf``         non-Gaussian ends, constant beta: independent agents with a fixed centre nu vs
                       mean field; E_IA - E_MF = int |mean_IA'|^2 - |mean1 - mean0|^2 / T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..oracles import analytic
from ..model.couplings import FixedGuidance, QuadraticInteraction
from ..model.densities import gaussian, gaussian_mixture
from ..model.grid import Grid
from ..model.problem import LinearDrift, PlanningProblem
from ..result import CaseReport
from .base import Case, Param, register
from .mean_interpolant import beta_schedule  # the same beta_t protocols as the terminal-cost case

def planning_grid(N=200, Nt=200):
    return (Param("N", N, "cells per axis", positive=True), Param("Nt", Nt, "time steps", positive=True))


class PlanningCase(Case):
    def solver(self):
        from ..planning.sinkhorn import solve_planning

        return solve_planning

    def moments(self, grid, m):
        return float(grid.mean(m)[0]), float(grid.covariance(m)[0, 0])


@register
class LQGBridge(PlanningCase):
    name = "lqg-bridge"
    description = "planning N(mean0, s0^2) -> N(mean1, s1^2), quadratic interaction: Sigma_t, mean, energy closed form"
    has_oracle = True
    params = (
        Param("sigma", 0.7, "noise intensity", positive=True),
        Param("beta", 2.0, "interaction stiffness", nonnegative=True),
        Param("kappa", 0.0, "base drift -kappa x", nonnegative=True),
        Param("mean0", -1.0, "initial mean"), Param("std0", 0.5, "initial std", positive=True),
        Param("mean1", 1.5, "terminal mean"), Param("std1", 0.4, "terminal std", positive=True),
        Param("T", 1.5, "horizon", positive=True),
        Param("L", 5.0, "half-width of the box", positive=True),
        *planning_grid(200, 200),
    )
    tolerances = {"mean": 0.01, "variance": 0.02, "energy E": 0.3}

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        pb = PlanningProblem(grid, p["T"], p["Nt"], p["sigma"], gaussian(grid, p["mean0"], p["std0"]),
                             gaussian(grid, p["mean1"], p["std1"]),
                             coupling=QuadraticInteraction(p["beta"]) if p["beta"] > 0 else None,
                             drift=LinearDrift(p["kappa"]) if p["kappa"] > 0 else None, name=self.name)
        return pb, {}

    def oracle(self, p, t, grid):
        # the discrete end densities' own moments (sampling a Gaussian on a grid shifts them by O(h^2))
        mu0, v0 = self.moments(grid, gaussian(grid, p["mean0"], p["std0"]))
        mu1, v1 = self.moments(grid, gaussian(grid, p["mean1"], p["std1"]))
        return analytic.lqg_bridge(t, T=p["T"], sigma=p["sigma"], mean0=mu0, var0=v0, mean1=mu1, var1=v1,
                                   beta=p["beta"], kappa=p["kappa"])

    def oracle_mean(self, p, t):
        return self.oracle(p, t, Grid([(-p["L"], p["L"])], p["N"]))["mean"]

    def errors(self, result, p):
        ref = self.oracle(p, result.t, result.grid)
        return {"mean": float(np.max(np.abs(result.mean()[:, 0] - ref["mean"]))),
                "variance": float(np.max(np.abs(result.covariance()[:, 0, 0] - ref["var"]))),
                "energy E": abs(result.planning.energy_E - float(ref["energy"]))}


def bimodal_ends(grid):
    """Skewed bimodal m0 and a differently shaped (three-bump) m1."""
    m0 = gaussian_mixture(grid, [0.7, 0.3], [-2.0, 0.2], [0.4, 0.6])
    m1 = gaussian_mixture(grid, [0.2, 0.5, 0.3], [0.8, 2.0, 3.2], [0.3, 0.35, 0.3])
    return m0, m1


def curved_guess(grid, m0, m1, t, T, bend=1.5):
    """(1 - s) m0 + s m1 shifted by bend * sin(pi s): its mean path is far from linear."""
    x = grid.axes[0]
    out = np.empty((len(t),) + grid.shape)
    for n, tn in enumerate(t):
        s = tn / T
        shift = bend * np.sin(np.pi * s)
        a = np.interp(x - shift, x, m0, left=0, right=0)
        b = np.interp(x - shift, x, m1, left=0, right=0)
        mix = (1 - s) * a + s * b
        out[n] = mix / grid.integrate(mix)
    out[0], out[-1] = m0, m1
    return out


@register
class MeanInterpolant(PlanningCase):
    name = "mean-interpolant"
    description = "planning, bimodal -> three-bump ends, time-varying beta_t, curved start: mean_t linear (theorem)"
    has_oracle = True
    params = (
        Param("sigma", 1.0, "noise intensity", positive=True),
        Param("beta", 12.0, "interaction stiffness scale", nonnegative=True),
        Param("schedule", "pwc", "beta_t: pwc (beta 0.65^i, 8 pieces) or smooth (beta (1 + 0.8 sin 2 pi t/T))",
              choices=("pwc", "smooth")),
        Param("T", 1.0, "horizon", positive=True),
        Param("L", 6.0, "half-width of the box", positive=True),
        *planning_grid(400, 400),
    )
    tolerances = {"mean path": 0.01}

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        m0, m1 = bimodal_ends(grid)
        pb = PlanningProblem(grid, p["T"], p["Nt"], p["sigma"], m0, m1,
                             coupling=QuadraticInteraction(beta_schedule(p)), name=self.name)
        return pb, {"m_init": curved_guess(grid, m0, m1, pb.t, p["T"])}

    def oracle_mean(self, p, t):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        m0, m1 = bimodal_ends(grid)
        mu0, mu1 = grid.mean(m0)[0], grid.mean(m1)[0]
        return mu0 + (mu1 - mu0) * np.asarray(t) / p["T"]

    def errors(self, result, p):
        return {"mean path": float(np.max(np.abs(result.mean()[:, 0] - self.oracle_mean(p, result.t))))}


@dataclass
class IAvsMFReport(CaseReport):
    """The mean-field solve ia-vs-mf compares the independent agents with (same ends, sigma and beta):

    mf_energy_E : its energy E (``planning.energy_E``; no factor 1/2).
    mf_converged : whether it converged.
    """

    mf_energy_E: float = float("nan")
    mf_converged: bool = False


@register
class IAvsMF(PlanningCase):
    name = "ia-vs-mf"
    description = "planning, non-Gaussian ends: IA mean (sinh form) and energy identity E_IA - E_MF vs closed form"
    has_oracle = True
    params = (
        Param("sigma", 1.0, "noise intensity", positive=True),
        Param("beta", 4.0, "interaction stiffness (constant)", positive=True),
        Param("nu", 0.0, "fixed IA centre"),
        Param("T", 1.0, "horizon", positive=True),
        Param("L", 6.0, "half-width of the box", positive=True),
        *planning_grid(400, 400),
    )
    tolerances = {"IA mean path": 0.01, "energy gap E_IA - E_MF": 0.1}

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        m0, m1 = bimodal_ends(grid)
        pb = PlanningProblem(grid, p["T"], p["Nt"], p["sigma"], m0, m1,
                             coupling=FixedGuidance(p["beta"], p["nu"]), name=self.name)
        return pb, {}

    def run(self, overrides=None, progress=False, **solve_overrides):
        run = super().run(overrides, progress, **solve_overrides)
        # the mean-field solve with the same beta, for the energy identity
        p = run.params
        pb, _ = self.build(p)
        pb.coupling = QuadraticInteraction(p["beta"])
        mf = self.solver()(pb, progress=progress)
        run.result.case_report = IAvsMFReport(mf_energy_E=mf.planning.energy_E, mf_converged=bool(mf.converged))
        run.checks = self.checks(run.result, p)
        return run

    def ends(self, grid):
        m0, m1 = bimodal_ends(grid)
        return float(grid.mean(m0)[0]), float(grid.mean(m1)[0])

    def oracle_mean(self, p, t):
        mu0, mu1 = self.ends(Grid([(-p["L"], p["L"])], p["N"]))
        return analytic.ia_mean_path(np.asarray(t), T=p["T"], beta=p["beta"], mean0=mu0, mean1=mu1, nu=p["nu"])

    def errors(self, result, p):
        mu0, mu1 = self.ends(result.grid)
        report = result.case_report
        gap = result.planning.energy_E - (report.mf_energy_E if isinstance(report, IAvsMFReport) else np.nan)
        ref_gap = analytic.energy_identity_gap(T=p["T"], beta=p["beta"], mean0=mu0, mean1=mu1, nu=p["nu"])
        return {"IA mean path": float(np.max(np.abs(result.mean()[:, 0] - self.oracle_mean(p, result.t)))),
                "energy gap E_IA - E_MF": abs(gap - ref_gap)}
