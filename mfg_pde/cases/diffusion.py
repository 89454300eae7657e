"""Diffusion models as mean-field systems (docs/method.md, section 'Diffusion models and
interacting particles').

* ``sgm-ou``          forward OU noising FP of a non-Gaussian (mixture) data density in 1-D or 2-D vs
                      its closed form; the log-density HJB solved by the core HJB solver; the HJB
                      residual of log p_FP (the "HJB regulariser"); the reverse generative FP driven
                      by the grid score returning the data (L1 and W2).
* ``path-integral-h`` reverse dynamics of the path-integral ("h-") family with noise level eta (eta = 0
                      probability-flow ODE ... eta = 1 reverse SDE ... eta > 1) as FP equations with an exact
                      and a mis-scaled score lambda * score, W2 and NLL vs eta from the grid densities and
                      from their moments against the Gaussian moment ODEs, plus the negative control.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..studies import diffusion_models as D
from ..model.densities import gaussian, gaussian_mixture
from ..model.grid import Grid
from ..model.problem import LinearDrift, MFGProblem
from ..result import CaseReport, MFGResult
from ..fd.hjb import solve_hjb
from ..diagnostics.unsplit_residuals import pde_residuals
from ..fd.transport import fp_transport
from .base import Case, CaseRun, Param, register

DATA_1D = ([0.6, 0.4], [[-1.5], [2.0]], [[0.4], [0.6]])
DATA_2D = ([0.6, 0.4], [[-1.5, -1.0], [1.5, 1.2]], [[0.5, 0.4], [0.45, 0.55]])
#: path-integral-h table: per (lambda, eta) the grid density's mean and variance, the ODE's, and W2 / NLL to the
#: data from the grid moments (Gaussian formulas), from the grid density itself and from the ODE moments
PATH_INTEGRAL_COLUMNS = ("lambda", "eta", "M_grid", "V_grid", "M_ode", "V_ode", "W2_moments", "W2_density", "W2_ode",
                         "NLL_moments", "NLL_density", "NLL_ode")


@dataclass
class SGMReport(CaseReport):
    """``errors`` of sgm-ou (forward FP, log-density HJB, reverse FP against the closed form and the data) and
    the two densities the reverse-FP errors compare:

    reverse_density : the reverse generative FP's density at the end, on the grid.
    data_density : the data density p0 it should return, on the grid.
    """

    reverse_density: np.ndarray | None = field(default=None, repr=False)
    data_density: np.ndarray | None = field(default=None, repr=False)


def _parse_floats(text, name):
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        from .base import CaseError
        raise CaseError(f"parameter {name}={text!r}: give comma-separated numbers, e.g. 0,0.5,1") from None
    if not vals:
        from .base import CaseError
        raise CaseError(f"parameter {name} is empty")
    return vals


class _DirectCase(Case):
    """A case whose run is a fixed sequence of grid solves (no coupling loop)."""

    def run(self, overrides=None, progress=False, **solve_overrides):
        p = self.resolve(overrides)
        t0 = time.perf_counter()
        result = self.compute(p, progress)
        result.case = self.name
        result.params = dict(p)
        return CaseRun(self.name, p, result, self.checks(result, p), time.perf_counter() - t0)


@register
class SGMOU(_DirectCase):
    name = "sgm-ou"
    description = "score-based diffusion (OU noising) of mixture data: forward FP, log-density HJB, reverse FP returns the data"
    has_oracle = True
    params = (
        Param("d", 1, "dimension (1 or 2)", choices=(1, 2)),
        Param("T", 1.0, "noising horizon", positive=True),
        Param("L", 6.0, "half-width of the box", positive=True),
        Param("N", 200, "cells per axis", positive=True),
        Param("Nt", 200, "time steps", positive=True),
    )
    # First-order error budgets, per unit of sum_k h_k (one first-order term per axis), fixed at the
    # 1-D default grid (h = 0.06): tolerance = budget * sum_k h_k.  Orders are checked separately.
    budgets = {"forward FP vs closed form (L1, max over t)": 0.03 / 0.06,
               "log-density HJB density vs closed form (L1)": 0.2 / 0.06,
               "HJB residual of log p_FP (weighted L1)": 0.4 / 0.06,
               "reverse FP vs data (L1)": 0.08 / 0.06,
               "reverse FP vs data (W2)": 0.08 / 0.06}

    def checks(self, result, p):
        from .base import Check
        hsum = float(sum(result.grid.spacing))
        return [Check(k, v, self.budgets[k] * hsum, f"budget {self.budgets[k]:.3g} x sum h = {hsum:.3g}")
                for k, v in self.errors(result, p).items()]

    def refined(self, p):
        return {**p, "N": 2 * p["N"], "Nt": 2 * p["Nt"]}

    def grid_shape(self, p):
        return (p["N"],) * p["d"]

    def compute(self, p, progress=False):
        d, T, Nt = p["d"], p["T"], p["Nt"]
        grid = Grid([(-p["L"], p["L"])] * d, p["N"])
        w, mu, s = DATA_1D if d == 1 else DATA_2D
        p0 = gaussian_mixture(grid, w, [np.array(m) for m in mu], [np.array(v) for v in s])
        t = np.linspace(0.0, T, Nt + 1)
        t0 = time.perf_counter()
        fwd = fp_transport(grid, p0, T, Nt, 1.0, lambda *a: [-x for x in a[:-1]])
        exact = np.stack([D.ou_mixture(grid, tn, w, mu, s) for tn in t])
        e_fwd = max(float(grid.integrate(np.abs(fwd[n] - exact[n]))) for n in range(Nt + 1))
        # log-density HJB: u(s) = -sigma^2 log p(T - s), b = x, F = -2 nu d, solved by the core HJB
        pb = MFGProblem(grid, T, Nt, np.sqrt(2.0), p0, drift=LinearDrift(-1.0),
                        potential=lambda *a: np.full(np.broadcast(*a[:-1]).shape, -2.0 * d),
                        terminal_cost=-2.0 * np.log(p0), name="log-density HJB")
        sol = solve_hjb(pb, pb.running_cost(None), pb.terminal_values(None))
        u_fwd_time = sol.u[::-1]
        m_hjb = np.exp(-u_fwd_time / 2.0)
        e_hjb = max(float(grid.integrate(np.abs(m_hjb[n] - exact[n]))) for n in range(Nt + 1))
        res = pde_residuals(pb, -2.0 * np.log(np.maximum(fwd[::-1], 1e-300)), fwd[::-1])
        # reverse generative FP with the grid score of the forward solution
        sc = D.score(grid, fwd)  # (Nt+1, *grid, d)
        xs = grid.mesh()
        vel = np.empty((Nt, d) + grid.shape)
        for n in range(Nt):
            lev = Nt - (n + 1)
            for k in range(d):
                vel[n, k] = xs[k] + 2.0 * sc[lev, ..., k]
        rev = fp_transport(grid, fwd[-1], T, Nt, 1.0, vel)
        l1 = float(grid.integrate(np.abs(rev[-1] - p0)))
        w2 = max(D.w2_1d(*D.marginal(grid, rev[-1], k)[:1], D.marginal(grid, rev[-1], k)[1],
                         D.marginal(grid, p0, k)[1]) for k in range(d))
        wall = time.perf_counter() - t0
        history = {"residual": np.array([res["hjb"]]), "fp_residual": np.array([res["fp"]]),
                   "wall_time": np.array([wall]), "reverse_l1": np.array([l1]), "reverse_w2": np.array([w2])}
        report = SGMReport(errors={"forward FP vs closed form (L1, max over t)": e_fwd,
                                   "log-density HJB density vs closed form (L1)": e_hjb,
                                   "HJB residual of log p_FP (weighted L1)": res["hjb"],
                                   "reverse FP vs data (L1)": l1,
                                   "reverse FP vs data (W2)": w2},
                           reverse_density=rev[-1], data_density=p0)
        return MFGResult(grid=grid, t=t, u=u_fwd_time, m=fwd, converged=True, status="converged", iterations=1,
                         history=history, solver={"method": "fp-transport + core HJB"}, case_report=report)

    def errors(self, result, p):
        return dict(result.case_report.errors)


@register
class PathIntegralH(_DirectCase):
    """Reverse dynamics of the path-integral family (often called the "h-family") with noise level eta: for
    every score scaling lambda and noise level eta the grid FP from the prior N(0, 1) gives a final density,
    compared with the data N(mu, s^2) by W2 and NLL computed three ways: from the grid density's moments
    (Gaussian formulas), from the grid density itself (quantile functions; cross-entropy on the grid) and
    from the exact moment ODEs.  The noise level was called h in earlier versions
    (``h_values``); h is the grid spacing in this package, so the parameter is ``eta_values``."""

    name = "path-integral-h"
    description = ("path-integral family (noise level eta) of reverse dynamics: W2/NLL vs eta for lambda-scaled "
                   "scores, from the grid densities and their moments, vs Gaussian moment ODEs")
    has_oracle = True
    params = (
        Param("eta_values", "0,0.5,1,1.5,2", "comma-separated noise levels eta (0: probability-flow ODE, "
              "1: reverse SDE)"),
        Param("lambdas", "0.9,1,1.1", "comma-separated score scalings lambda"),
        Param("mu", 1.5, "data mean"), Param("s", 0.5, "data standard deviation", positive=True),
        Param("s_wrong", 0.7, "std of the consistent wrong-variance score (negative control)", positive=True),
        Param("T", 2.0, "horizon", positive=True),
        Param("L", 6.0, "half-width of the box", positive=True),
        Param("N", 300, "cells", positive=True), Param("Nt", 300, "time steps", positive=True),
        Param("figure", "", "write the W2/NLL-vs-eta figure to this PNG path", output=True),
        Param("table", "", "write the table to this CSV path", output=True),
        Param("densities", "", "write the final grid densities to this CSV path (column x, then one column per "
              "table row)", output=True),
    )
    renamed = {"h_values": ("eta_values", "the noise level eta of the path-integral family; h is the grid spacing")}
    # first-order discretisation budgets at the default grid; the control's spread is held to the same
    # budget as the moment errors (eta-independent to discretisation accuracy) and must shrink with h, dt
    tolerances = {"moments vs ODE (max |dM|, |dV| over eta, lambda)": 0.03,
                  "negative control: W2 spread over eta": 0.03}

    def refined(self, p):
        return {**p, "N": 2 * p["N"], "Nt": 2 * p["Nt"], "figure": "", "table": "", "densities": ""}

    def compute(self, p, progress=False):
        etas = _parse_floats(p["eta_values"], "eta_values")
        lams = _parse_floats(p["lambdas"], "lambdas")
        mu, s, T, Nt = p["mu"], p["s"], p["T"], p["Nt"]
        grid = Grid([(-p["L"], p["L"])], p["N"])
        x = grid.axes[0]
        prior = gaussian(grid, 0.0, 1.0)
        data = gaussian(grid, mu, s)
        tau = np.linspace(0.0, T, Nt + 1)

        def v(t, sd):
            return sd ** 2 * np.exp(-2 * t) + 1 - np.exp(-2 * t)

        def run(eta, lam, sd, start=prior):
            vel = np.empty((Nt, 1, grid.shape[0]))
            for n in range(Nt):
                t = T - tau[n + 1]
                vel[n, 0] = x + (1 + eta ** 2) * lam * (-(x - mu * np.exp(-t)) / v(t, sd))
            return fp_transport(grid, start, T, Nt, eta ** 2, vel)

        t0 = time.perf_counter()
        rows, finals = [], []
        dmax = 0.0
        keep = None
        for lam in lams:
            for eta in etas:
                m = run(eta, lam, s)
                M = grid.mean(m[-1])[0]
                V = grid.covariance(m[-1])[0, 0]
                Mo, Vo = D.gaussian_reverse_moments([T], eta=eta, lam=lam, mu=mu, s=s, T=T)
                w2m, nllm = D.gaussian_w2_nll(M, V, mu, s)
                w2o, nllo = D.gaussian_w2_nll(Mo[0], Vo[0], mu, s)
                w2d, nlld = D.w2_1d(grid, m[-1], data), D.nll_grid(grid, m[-1], data)
                dmax = max(dmax, abs(M - Mo[0]), abs(V - Vo[0]))
                rows.append((lam, eta, M, V, Mo[0], Vo[0], w2m, w2d, w2o, nllm, nlld, nllo))
                finals.append(m[-1])
                if keep is None or (lam == lams[-1] and eta == etas[len(etas) // 2]):
                    keep = m
        # negative control: the exact score of a WRONG data variance s_wrong, started from that model's own
        # marginal p_T = N(mu e^{-T}, v_T(s_wrong)): every eta then generates N(mu, s_wrong^2), so W2 to the
        # true data is the same for all eta (up to discretisation error)
        start_wrong = gaussian(grid, mu * np.exp(-T), np.sqrt(v(T, p["s_wrong"])))
        control = [D.gaussian_w2_nll(grid.mean(mm[-1])[0], grid.covariance(mm[-1])[0, 0], mu, s)[0]
                   for mm in (run(eta, 1.0, p["s_wrong"], start_wrong) for eta in etas)]
        spread = float(np.max(control) - np.min(control))
        wall = time.perf_counter() - t0
        table = np.array(rows)
        history = {"residual": np.array([dmax]), "wall_time": np.array([wall]),
                   **{c: table[:, k] for k, c in enumerate(PATH_INTEGRAL_COLUMNS)}, "control_W2": np.array(control)}
        report = CaseReport(errors={"moments vs ODE (max |dM|, |dV| over eta, lambda)": dmax,
                                    "negative control: W2 spread over eta": spread},
                            table=table, columns=PATH_INTEGRAL_COLUMNS,
                            arrays={"x": x.copy(), "densities": np.array(finals), "data_density": data})
        r = MFGResult(grid=grid, t=tau, u=np.zeros_like(keep), m=keep, converged=True, status="converged",
                      iterations=1, history=history, solver={"method": "fp-transport"}, case_report=report)
        if p["table"]:
            header = ",".join(PATH_INTEGRAL_COLUMNS)
            np.savetxt(p["table"], table, delimiter=",", header=header, comments="", fmt="%.6g")
        if p["densities"]:
            header = ",".join(["x"] + [f"lambda={row[0]:g} eta={row[1]:g}" for row in rows] + ["data"])
            np.savetxt(p["densities"], np.column_stack([x, *finals, data]), delimiter=",", header=header,
                       comments="", fmt="%.9g")
        if p["figure"]:
            self.figure(table, etas, lams, control, p["figure"])
        return r

    def errors(self, result, p):
        return dict(result.case_report.errors)

    def checks(self, result, p):
        from .base import Check
        rows = [Check(k, v, self.tolerances[k], "grid FP vs ODE") for k, v in self.errors(result, p).items()]
        rep = result.case_report
        col = {c: k for k, c in enumerate(rep.columns)}
        table = rep.table
        for lam in sorted(set(table[:, col["lambda"]])):
            if lam == 1.0:
                continue
            sel = table[table[:, col["lambda"]] == lam]
            eta, w2 = sel[:, col["eta"]], sel[:, col["W2_moments"]]
            w2_0 = w2[eta == eta.min()][0]
            w2_1 = w2[np.argmin(np.abs(eta - 1.0))]
            rows.append(Check(f"lambda={lam:g}: W2(eta=1) - W2(eta=0) < 0 (noise helps)", float(w2_1 - w2_0), 0.0))
            spread = float(w2.max() - w2.min())
            rows.append(Check(f"lambda={lam:g}: W2 spread over eta / control spread", spread / max(
                rep.errors["negative control: W2 spread over eta"], 1e-300), 3.0, at_least=True))
        return rows

    @staticmethod
    def figure(table, etas, lams, control, path):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        col = {c: k for k, c in enumerate(PATH_INTEGRAL_COLUMNS)}
        fig = Figure(figsize=(10, 4))
        FigureCanvasAgg(fig)
        ax1, ax2 = fig.subplots(1, 2)
        for lam in lams:
            sel = table[table[:, 0] == lam]
            eta = sel[:, col["eta"]]
            for ax, q in ((ax1, "W2"), (ax2, "NLL")):
                ax.plot(eta, sel[:, col[f"{q}_ode"]], "-", label=f"ODE, lambda={lam:g}")
                colour = ax.lines[-1].get_color()
                ax.plot(eta, sel[:, col[f"{q}_moments"]], "o", color=colour, label=f"grid moments, lambda={lam:g}")
                ax.plot(eta, sel[:, col[f"{q}_density"]], "x", color=colour, ms=8,
                        label=f"grid density, lambda={lam:g}")
        ax1.plot(etas, control, "k--", label="consistent wrong-variance score")
        ax1.set(xlabel="noise level eta", ylabel="W2 to data", title="W2 vs eta")
        ax2.set(xlabel="noise level eta", ylabel="NLL of data", title="NLL vs eta")
        ax1.legend(fontsize=6)
        ax2.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
