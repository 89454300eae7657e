"""`lqg`: 1-D linear-quadratic terminal-cost MFG with a closed form (docs/method.md, section 'LQG Riccati
closed forms').

    dX = (-kappa X + alpha) dt + sigma dW,  F = beta/2 (x - mean_t)^2,  G = q/2 (x - x_target)^2,
    X_0 ~ N(mean0, std0^2) on a reflecting box wide enough that the walls are never felt.

Oracle (``mfg_pde.oracles.analytic.lq_terminal``): mean_t, Sigma_t and the value's curvature S_t.
"""

from __future__ import annotations

import numpy as np

from ..oracles import analytic
from ..model.couplings import QuadraticInteraction
from ..model.densities import gaussian
from ..model.grid import Grid
from ..model.problem import LinearDrift, MFGProblem, QuadraticTerminalCost
from .base import Case, CaseError, Param, register
from .params import grid_params, solver_params


def quadratic_coefficient(grid, u_n, m_n, axis=0, mass_fraction=0.999):
    """Curvature S of u along one axis in the bulk: least-squares fit of u ~ S x^2/2 + s x + c on
    the cells carrying the central ``mass_fraction`` of the (marginal) density, weighted by m."""
    other = tuple(k for k in range(grid.ndim) if k != axis)
    if other:
        # restrict to the line through the density's peak along the other axes
        idx = list(np.unravel_index(np.argmax(m_n), m_n.shape))
        sl = tuple(slice(None) if k == axis else idx[k] for k in range(grid.ndim))
        u_line, m_line = u_n[sl], m_n[sl]
    else:
        u_line, m_line = u_n, m_n
    x = grid.axes[axis]
    cdf = np.cumsum(m_line) / m_line.sum()
    lo_tail = (1 - mass_fraction) / 2
    keep = (cdf >= lo_tail) & (cdf <= 1 - lo_tail)
    w = np.sqrt(m_line[keep])
    A = np.stack([0.5 * x[keep] ** 2, x[keep], np.ones(keep.sum())], axis=1)
    coef, *_ = np.linalg.lstsq(A * w[:, None], u_line[keep] * w, rcond=None)
    return coef[0]


def lq_oracle(p, t):
    """Closed-form/ODE paths for the lqg parameters p at times t."""
    return analytic.lq_terminal(t, T=p["T"], sigma=p["sigma"], q=p["q"], x_target=p["x_target"],
                                mean0=p["mean0"], var0=p["std0"] ** 2, beta=p["beta"], kappa=p["kappa"])


@register
class LQG(Case):
    name = "lqg"
    description = "1-D LQ terminal-cost MFG (Gaussian m0, quadratic interaction, optional OU drift) vs Riccati closed form"
    has_oracle = True
    params = (
        Param("sigma", 0.8, "noise intensity", positive=True),
        Param("beta", 2.0, "interaction stiffness beta (F = beta/2 (x - mean)^2)", nonnegative=True),
        Param("kappa", 0.0, "base drift -kappa x", nonnegative=True),
        Param("q", 1.0, "terminal stiffness (G = q/2 (x - x_target)^2)", nonnegative=True),
        Param("x_target", 1.0, "terminal target"),
        Param("mean0", -0.5, "initial mean"),
        Param("std0", 0.5, "initial standard deviation", positive=True),
        Param("T", 1.0, "horizon", positive=True),
        Param("L", 5.0, "half-width of the box [-L, L]", positive=True),
        *grid_params(200, 200),
        *solver_params(),
    )
    # first-order accuracy budget at the default grid (h = 0.05, dt = 0.005); the observed
    # order under refinement is checked separately (tests/, `mfg-pde validate`)
    tolerances = {"mean": 0.02, "variance": 0.03, "S (value curvature)": 0.05}

    def validate_params(self, p):
        if abs(p["mean0"]) + 5 * p["std0"] >= p["L"] or abs(p["x_target"]) + 3 * p["std0"] >= p["L"]:
            raise CaseError(f"box half-width L = {p['L']} is too small for mean0/x_target/std0; increase L")

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        drift = LinearDrift(p["kappa"]) if p["kappa"] > 0 else None
        problem = MFGProblem(grid, p["T"], p["Nt"], p["sigma"], gaussian(grid, p["mean0"], p["std0"]),
                             coupling=QuadraticInteraction(p["beta"]) if p["beta"] > 0 else None,
                             drift=drift, terminal_cost=QuadraticTerminalCost(p["q"], p["x_target"]),
                             name=self.name)
        return problem, {"tol": p["tol"], "method": p["method"]}

    def oracle_mean(self, p, t):
        return lq_oracle(p, t)["mean"]

    def errors(self, result, p):
        t = result.t
        ref = lq_oracle(p, t)
        mean = result.mean()[:, 0]
        var = result.covariance()[:, 0, 0]
        # curvature in the bulk, away from t = T where it is imposed exactly
        S = np.array([quadratic_coefficient(result.grid, result.u[n], result.m[n]) for n in range(len(t))])
        return {"mean": float(np.max(np.abs(mean - ref["mean"]))),
                "variance": float(np.max(np.abs(var - ref["var"]))),
                "S (value curvature)": float(np.max(np.abs(S - ref["S"])))}


@register
class LQG2D(Case):
    name = "lqg-2d"
    description = "2-D LQ terminal-cost MFG, product Gaussian m0, per-axis targets: per-axis Riccati closed forms"
    has_oracle = True
    ndim = 2
    params = (
        Param("sigma", 0.8, "noise intensity", positive=True),
        Param("beta", 2.0, "interaction stiffness (F = beta/2 |x - mean|^2)", nonnegative=True),
        Param("q", 1.0, "terminal stiffness", nonnegative=True),
        Param("L", 4.0, "half-width of the box [-L, L]^2", positive=True),
        *grid_params(60, 60),
        *solver_params(),
    )
    mean0 = (-0.5, 0.3)
    std0 = (0.5, 0.4)
    target = (1.0, -0.5)
    tolerances = {"mean x": 0.06, "mean y": 0.06, "variance x": 0.06, "variance y": 0.06}

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])] * 2, p["N"])
        problem = MFGProblem(grid, 1.0, p["Nt"], p["sigma"], gaussian(grid, self.mean0, self.std0),
                             coupling=QuadraticInteraction(p["beta"]) if p["beta"] > 0 else None,
                             terminal_cost=QuadraticTerminalCost(p["q"], self.target), name=self.name)
        return problem, {"tol": p["tol"], "method": p["method"]}

    def axis_oracle(self, p, t, k):
        return analytic.lq_terminal(t, T=1.0, sigma=p["sigma"], q=p["q"], x_target=self.target[k],
                                    mean0=self.mean0[k], var0=self.std0[k] ** 2, beta=p["beta"])

    def oracle_mean(self, p, t):
        return np.stack([self.axis_oracle(p, t, k)["mean"] for k in range(2)], axis=1)

    def errors(self, result, p):
        mean, cov = result.mean(), result.covariance()
        out = {}
        for k, ax in enumerate("xy"):
            ref = self.axis_oracle(p, result.t, k)
            out[f"mean {ax}"] = float(np.max(np.abs(mean[:, k] - ref["mean"])))
            out[f"variance {ax}"] = float(np.max(np.abs(cov[:, k, k] - ref["var"])))
        return out
