"""Mean-field control cases (docs/method.md, section 'Mean-field control and the price of anarchy').

`lq-social`: the 1-D LQ game F = kappa/2 (x - s mean_t)^2, G = q/2 x^2 (``MeanAttraction``) solved for the social
optimum (``objective="social"``) and for the Nash equilibrium, against the closed forms of
``oracles.analytic.lq_mean_attraction`` / ``lq_price_of_anarchy``: the social mean and variance paths, the Nash
mean path, the social total cost and the price of anarchy, each with its observed order under refinement
(``mfg-pde validate``).

`lq-social-2d`: the same game on a 2-D box with a product Gaussian m0; F and G are sums over the axes, so the
closed forms are the 1-D ones per axis and the total costs their sums.

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


def _check_box(p, means=None, stds=None):
    """The box [-L, L]^d must hold every axis's initial Gaussian to 5 standard deviations (means, stds: one per
    axis; default the 1-D parameters mean0, std0)."""
    means = (p["mean0"],) if means is None else means
    stds = (p["std0"],) if stds is None else stds
    if any(abs(mu) + 5 * sd >= p["L"] for mu, sd in zip(means, stds)):
        raise CaseError(f"box half-width L = {p['L']} is too small for mean0 = {means if len(means) > 1 else means[0]}, "
                        f"std0 = {stds if len(stds) > 1 else stds[0]}; increase L")


def build_game(p, kappa):
    """The LQ problem of parameters p with coupling strength kappa."""
    grid = Grid([(-p["L"], p["L"])], p["N"])
    return MFGProblem(grid, p["T"], p["Nt"], p["sigma"], gaussian(grid, p["mean0"], p["std0"]),
                      coupling=MeanAttraction(kappa, p["s"]),
                      terminal_cost=QuadraticTerminalCost(p["q"], 0.0) if p["q"] > 0 else None, name="lq-social")


def _oracle_args(p, kappa, mean0=None, std0=None):
    """Keyword arguments of the closed forms for parameters p (initial mean and spread: those given, else the
    1-D parameters mean0, std0; per-axis tuples for ``lq_price_of_anarchy`` in d-D)."""
    mean0 = p["mean0"] if mean0 is None else mean0
    std0 = p["std0"] if std0 is None else std0
    var0 = std0 ** 2 if np.ndim(std0) == 0 else tuple(sd ** 2 for sd in std0)
    return dict(T=p["T"], sigma=p["sigma"], kappa=kappa, s=p["s"], mean0=mean0, var0=var0, q=p["q"])


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
        mean = nash.mean()
        result.case_report = CaseReport(
            errors={}, arrays={"nash_mean": mean[:, 0] if mean.shape[1] == 1 else mean, "nash_m": nash.m},
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


@register
class LQSocial2D(LQSocial):
    """The LQ game of ``lq-social`` on a 2-D box with a product Gaussian m0 of other means and spreads per axis.
    F = kappa/2 |x - s mean_t|^2 and G = q/2 |x|^2 are sums over the axes (``MeanAttraction``, its first variation
    and ``QuadraticTerminalCost`` all act through |x - c|^2), so both optimality systems separate per axis: each
    axis's mean and variance paths are the 1-D closed forms with that axis's initial data, and the total costs
    are the sums of the axes' costs (``analytic.lq_price_of_anarchy`` with per-axis data).  The 2-D grid
    solution comes from the direction-split scheme, so this checks the social optimum in 2-D against closed
    forms, splitting included."""

    name = "lq-social-2d"
    description = ("2-D LQ game F = kappa/2 |x - s mean|^2, product Gaussian m0: social optimum and Nash equilibrium "
                   "vs the per-axis Riccati closed forms, total cost and price of anarchy")
    ndim = 2
    params = (
        Param("kappa", 3.0, "coupling strength", nonnegative=True),
        *(q for q in _GAME_PARAMS if q.name not in ("mean0", "std0")),
        *grid_params(40, 20),
        *solver_params(),
    )
    mean0 = (1.2, -0.8)
    std0 = (0.45, 0.5)
    # first-order budget at the default grid (h = 0.175, dt = 0.05; measured 0.053, 0.047, 0.052, 0.106, 5.0e-4);
    # the observed orders (0.85-0.96 from N = 40 to 80, 0.95-0.98 from 80 to 160) are checked by validate
    tolerances = {"social mean": 0.065, "social variance": 0.06, "Nash mean": 0.065, "social cost J": 0.13,
                  "price of anarchy": 0.001}
    _notes = {"social mean": "max over t and both axes", "social variance": "max over t and both axes",
              "Nash mean": "max over t and both axes", "social cost J": "J(social) vs the sum of the axes' J",
              "price of anarchy": "J(Nash) / J(social), the ratio of the sums"}

    def validate_params(self, p):
        _check_box(p, self.mean0, self.std0)

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])] * 2, p["N"])
        problem = MFGProblem(grid, p["T"], p["Nt"], p["sigma"], gaussian(grid, self.mean0, self.std0),
                             coupling=MeanAttraction(p["kappa"], p["s"]),
                             terminal_cost=QuadraticTerminalCost(p["q"], 0.0) if p["q"] > 0 else None, name=self.name)
        return problem, {"tol": p["tol"], "method": p["method"], "objective": "social"}

    def _axis_args(self, p, k):
        return _oracle_args(p, p["kappa"], self.mean0[k], self.std0[k])

    def oracle_mean(self, p, t):
        """The social mean path per axis in closed form, (len(t), 2)."""
        return np.stack([analytic.lq_mean_attraction(t, objective="social", **self._axis_args(p, k))["mean"]
                         for k in range(2)], axis=1)

    def errors(self, result, p):
        t = result.t
        mean, cov = result.mean(), result.covariance()
        nash_mean = result.case_report.arrays["nash_mean"]
        ref = analytic.lq_price_of_anarchy(**_oracle_args(p, p["kappa"], self.mean0, self.std0))
        err = {"social mean": 0.0, "social variance": 0.0, "Nash mean": 0.0}
        for k in range(2):
            soc = analytic.lq_mean_attraction(t, objective="social", **self._axis_args(p, k))
            nash = analytic.lq_mean_attraction(t, objective="nash", **self._axis_args(p, k))
            err["social mean"] = max(err["social mean"], float(np.max(np.abs(mean[:, k] - soc["mean"]))))
            err["social variance"] = max(err["social variance"], float(np.max(np.abs(cov[:, k, k] - soc["var"]))))
            err["Nash mean"] = max(err["Nash mean"], float(np.max(np.abs(nash_mean[:, k] - nash["mean"]))))
        j_n, j_s, poa = (float(v) for v in result.case_report.table[0])
        return {**err, "social cost J": abs(j_s - ref["social_cost"]),
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
