"""Mean-field control cases (docs/method.md, section 'Mean-field control and the price of anarchy').

`lq-social`: the 1-D LQ game F = kappa/2 (x - s mean_t)^2, G = q/2 x^2 (``MeanAttraction``) solved for the social
optimum (``objective="social"``) and for the Nash equilibrium, against the closed forms of
``oracles.analytic.lq_mean_attraction`` / ``lq_price_of_anarchy``: the social mean and variance paths, the Nash
mean path, the social total cost and the price of anarchy, each with its observed order under refinement
(``mfg-pde validate``).

`price-of-anarchy`: the same game over a range of coupling strengths kappa: Nash and social costs on the grid
and in closed form, a printed table, an optional figure (PoA against kappa, grid against closed form), the
table in the result's ``case_report`` (HDF5 with ``--out``).
"""

from __future__ import annotations

import logging

import numpy as np

from ..studies.anarchy import price_of_anarchy
from ..model.couplings import MeanAttraction
from ..model.densities import gaussian
from ..model.grid import Grid
from ..model.problem import MFGProblem, QuadraticTerminalCost
from ..oracles import analytic
from ..result import CaseReport
from .base import Case, CaseError, CaseRun, Check, Param, register
from .params import grid_params, solver_params

log = logging.getLogger("mfg_pde")

_GAME_PARAMS = (
    Param("s", 0.3, "agents are attracted to s * mean (F = kappa/2 (x - s mean)^2); s = 1: Nash = social"),
    Param("sigma", 0.4, "noise intensity", positive=True),
    Param("q", 0.0, "terminal stiffness (G = q/2 x^2)", nonnegative=True),
    Param("mean0", 1.2, "initial mean"),
    Param("std0", 0.3, "initial standard deviation", positive=True),
    Param("T", 1.0, "horizon", positive=True),
    Param("L", 3.5, "half-width of the box [-L, L]", positive=True),
)


def _check_box(p):
    if abs(p["mean0"]) + 5 * p["std0"] >= p["L"]:
        raise CaseError(f"box half-width L = {p['L']} is too small for mean0 = {p['mean0']}, std0 = {p['std0']}; "
                        "increase L")


def build_game(p, kappa):
    """The LQ problem of parameters p with coupling strength kappa."""
    grid = Grid([(-p["L"], p["L"])], p["N"])
    return MFGProblem(grid, p["T"], p["Nt"], p["sigma"], gaussian(grid, p["mean0"], p["std0"]),
                      coupling=MeanAttraction(kappa, p["s"]),
                      terminal_cost=QuadraticTerminalCost(p["q"], 0.0) if p["q"] > 0 else None, name="lq-social")


def _oracle_args(p, kappa):
    return dict(T=p["T"], sigma=p["sigma"], kappa=kappa, s=p["s"], mean0=p["mean0"], var0=p["std0"] ** 2, q=p["q"])


@register
class LQSocial(Case):
    name = "lq-social"
    description = ("1-D LQ game F = kappa/2 (x - s mean)^2: social optimum (mean-field control) and Nash equilibrium "
                   "vs Riccati closed forms, price of anarchy")
    has_oracle = True
    params = (
        Param("kappa", 3.0, "coupling strength", nonnegative=True),
        *_GAME_PARAMS,
        *grid_params(140, 50),
        *solver_params(),
    )
    # first-order budget at the default grid (h = 0.05, dt = 0.02; measured: 0.018, 0.014, 0.017, 0.017, 4.0e-4);
    # the observed orders under refinement are checked by validate
    tolerances = {"social mean": 0.02, "social variance": 0.02, "Nash mean": 0.02, "social cost J": 0.02,
                  "price of anarchy": 0.001}
    _notes = {"social mean": "max over t", "social variance": "max over t", "Nash mean": "max over t",
              "social cost J": "J(social) = J(grid pair) vs Riccati", "price of anarchy": "J(Nash) / J(social)"}

    def checks(self, result, p):
        return [Check(k, v, self.tolerances[k], self._notes[k]) for k, v in self.errors(result, p).items()]

    def validate_params(self, p):
        _check_box(p)

    def build(self, p):
        return build_game(p, p["kappa"]), {"tol": p["tol"], "method": p["method"], "objective": "social"}

    def oracle_mean(self, p, t):
        """The social mean path in closed form (what ``mfg-pde plot`` draws against the grid mean)."""
        return analytic.lq_mean_attraction(t, objective="social", **_oracle_args(p, p["kappa"]))["mean"]

    def decorate(self, result, problem, p):
        """Solve the Nash equilibrium of the same problem and compare the total costs (``price_of_anarchy``)."""
        from ..iterate.solve import solve

        nash = solve(problem, tol=p["tol"], method=p["method"])
        poa = price_of_anarchy(problem, nash=nash, social=result)
        result.case_report = CaseReport(
            errors={}, arrays={"nash_mean": nash.mean()[:, 0], "nash_m": nash.m},
            table=np.array([[poa["nash_cost"], poa["social_cost"], poa["price_of_anarchy"]]]),
            columns=("nash_cost", "social_cost", "price_of_anarchy"))
        if not nash.converged:
            log.warning("lq-social: the Nash solve did not converge (%s)", nash.status)

    def errors(self, result, p):
        t = result.t
        soc = analytic.lq_mean_attraction(t, objective="social", **_oracle_args(p, p["kappa"]))
        nash = analytic.lq_mean_attraction(t, objective="nash", **_oracle_args(p, p["kappa"]))
        ref = analytic.lq_price_of_anarchy(**_oracle_args(p, p["kappa"]))
        j_n, j_s, poa = (float(v) for v in result.case_report.table[0])
        return {"social mean": float(np.max(np.abs(result.mean()[:, 0] - soc["mean"]))),
                "social variance": float(np.max(np.abs(result.covariance()[:, 0, 0] - soc["var"]))),
                "Nash mean": float(np.max(np.abs(result.case_report.arrays["nash_mean"] - nash["mean"]))),
                "social cost J": abs(j_s - ref["social_cost"]),
                "price of anarchy": abs(poa - ref["price_of_anarchy"])}


def _floats(text, name):
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise CaseError(f"parameter {name}={text!r}: give comma-separated numbers, e.g. 0.5,1,2,4") from None
    if not vals or any(not np.isfinite(v) or v < 0 for v in vals):
        raise CaseError(f"parameter {name}={text!r}: give at least one finite number >= 0")
    return vals


_COLUMNS = ("kappa", "nash_cost", "social_cost", "poa_grid", "poa_closed_form", "poa_error", "nash_cost_closed_form",
            "social_cost_closed_form")


@register
class PriceOfAnarchy(Case):
    name = "price-of-anarchy"
    description = ("Nash vs social optimum of the LQ game F = kappa/2 (x - s mean)^2 over a range of kappa: costs, "
                   "price of anarchy on the grid and in closed form (table, figure)")
    has_oracle = False   # its closed-form checks with observed orders are lq-social's (validate)
    params = (
        Param("kappas", "0.5,1,2,4,8", "coupling strengths kappa (comma-separated)"),
        *_GAME_PARAMS,
        *grid_params(140, 50),
        *solver_params(),
        Param("figure", "", "write the figure (PoA vs kappa, grid and closed form) to this PNG path", output=True),
    )
    #: largest |PoA grid - PoA closed form| over the sweep at the default grid (first order in h, dt)
    tolerance = 0.002   # measured 7.6e-4 (kappa = 8) at the defaults

    def validate_params(self, p):
        _check_box(p)
        _floats(p["kappas"], "kappas")

    def run(self, overrides=None, progress=False, **solve_overrides):
        import time

        p = self.resolve(overrides)
        self.check_memory(p, solve_overrides.get("method"))
        opts = {"tol": p["tol"], "method": p["method"], **solve_overrides}
        t0 = time.perf_counter()
        rows, last, converged = [], None, True
        for kappa in _floats(p["kappas"], "kappas"):
            problem = build_game(p, kappa)
            poa = price_of_anarchy(problem, progress=progress, **opts)
            ref = analytic.lq_price_of_anarchy(**_oracle_args(p, kappa))
            converged &= bool(poa["nash"].converged and poa["social"].converged)
            rows.append([kappa, poa["nash_cost"], poa["social_cost"], poa["price_of_anarchy"], ref["price_of_anarchy"],
                         abs(poa["price_of_anarchy"] - ref["price_of_anarchy"]), ref["nash_cost"], ref["social_cost"]])
            last = poa
        table = np.array(rows)
        result = last["social"]
        result.case, result.params = self.name, dict(p)
        result.case_report = CaseReport(table=table, columns=_COLUMNS,
                                        arrays={"nash_mean": last["nash"].mean()[:, 0]})
        for line in self.lines(table):
            print(line, flush=True)
        if p["figure"]:
            self.figure(table, p["figure"], p)
        checks = [Check("price of anarchy: max |grid - closed form| over kappa", float(table[:, 5].max()),
                        self.tolerance, f"{len(rows)} strengths, N = {p['N']}, Nt = {p['Nt']}")]
        if not converged:
            checks.append(Check("every Nash and social solve converged", 1.0, 0.0))
        return CaseRun(self.name, p, result, checks, time.perf_counter() - t0)

    @staticmethod
    def lines(table):
        head = ("kappa", "J Nash", "J social", "PoA grid", "PoA closed form", "|error|")
        rows = [head] + [(f"{r[0]:g}", f"{r[1]:.6f}", f"{r[2]:.6f}", f"{r[3]:.6f}", f"{r[4]:.6f}", f"{r[5]:.2e}")
                         for r in table]
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        out = ["price of anarchy J(Nash) / J(social), F = kappa/2 (x - s mean)^2:"]
        for r in rows:
            out.append("  ".join(c.rjust(w[i]) for i, c in enumerate(r)))
        return out

    @staticmethod
    def figure(table, path, p):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 4.4))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        lo, hi = float(table[:, 0].min()), float(table[:, 0].max())
        fine = np.linspace(lo, hi, 200) if hi > lo else table[:, 0]
        closed = [analytic.lq_price_of_anarchy(**_oracle_args(p, k))["price_of_anarchy"] for k in fine]
        ax.plot(fine, closed, "-", color="C0", label="closed form (Riccati)")
        ax.plot(table[:, 0], table[:, 3], "o", color="C3", label=f"grid (N = {p['N']}, Nt = {p['Nt']})")
        ax.axhline(1.0, color="0.6", lw=0.8)
        ax.set(xlabel="coupling strength kappa", ylabel="price of anarchy J(Nash) / J(social)",
               title=f"F = kappa/2 (x - s mean)^2, s = {p['s']:g}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
