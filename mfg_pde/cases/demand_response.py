"""Demand-response cases: the paper's experiments (docs/method.md, sections 'Mean-interpolant theorem' to
'Demand-response energies'; ``mfg_pde.studies.demand_response``).

* ``demand-response``         one scenario (d zones, or K sub-populations): per-zone MF / IA0 / IAm
                              energies and savings from the closed-form route (exact marginals at
                              Gauss-Legendre nodes, Monte-Carlo error only) and from agents (Euler-Maruyama,
                              batches of 4000, Richardson in dt), the paper's row beside them; for d <= 2 the
                              grid cross-check (SB coupling, mean paths and E_IA - E_MF = exact mean-channel
                              gap with observed order).
* ``demand-response-sweep``   d = 1, 2, 4, 8, 16, 32 and K = 2, 3, 4, 8: the table (CSV / HDF5) and a figure
                              (saving vs d and K with error bars and the paper's numbers, cumulative E(t),
                              per-sub-population effort).
* ``demand-response-thermal`` the thermal variant b = -kappa x (deviation coordinates): sinh-shaped MF mean,
                              exact minimal mean-channel energy, saving vs IA0 with the drift; grid check in 1-D.

Monte-Carlo checks use a 4-standard-error band (chosen before looking at the numbers; with the batch-means
error of 8 batches the statistic is t-distributed with 7 degrees of freedom, P(|t| > 4) = 0.5 %).
``validate`` (``mfg-pde validate``) runs each case with reduced Monte-Carlo sizes (documented per case) so that it
stays under ~20 s; ``demand-response`` adds the d = 1 grid cross-check there.
"""

from __future__ import annotations

import math
import time
import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from typing import ClassVar

import numpy as np

from ..oracles import analytic
from ..studies import demand_response as dr
from ..model.grid import Grid
from ..result import CaseReport, MFGResult
from .base import Case, CaseError, CaseRun, Check, Param, register

NSIG = 4.0          # Monte-Carlo band, in standard errors
# Richardson-extrapolated grid gap / mean path vs the exact mean channel, relative, per planning time scheme
# (crank-nicolson, strang: O(h^2 + dt^2), measured 0.15 % at (200, 48) -> (400, 96); euler: O(h^2 + dt), ~2 %)
GRID_BUDGET = {"crank-nicolson": 0.01, "strang": 0.01, "euler": 0.05}


@dataclass
class DemandResponseReport(CaseReport):
    """What a demand-response case computed (``MFGResult.case_report``; None where a route did not run):

    scenario : the ``studies.demand_response.Scenario`` (demand-response, demand-response-thermal).
    closed_form : its ``ClosedFormEnergies`` (closed-form route).
    agents : its ``AgentEnergies`` (agent route; demand-response only).
    grid_check : the grid cross-check (``studies.demand_response.grid_crosscheck``: levels, energies, gaps,
        observed orders, the planning results), for d <= 2.
    runs : demand-response-sweep: one (K, scenario, closed form, agents) tuple per row group; the sweep's
        numbers are in ``table`` (columns ``columns``).
    """

    scenario: object = None
    closed_form: object = field(default=None, repr=False)
    agents: object = field(default=None, repr=False)
    grid_check: dict | None = field(default=None, repr=False)
    runs: list = field(default_factory=list, repr=False)

    legacy_keys: ClassVar[dict] = {"grid_check": "grid"}


def _ints(text, name):
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise CaseError(f"parameter {name}={text!r}: give comma-separated integers, e.g. 1,2,4") from None
    if not vals or min(vals) < 1:
        raise CaseError(f"parameter {name}={text!r}: need positive integers")
    return vals


def _scenario(p):
    if p.get("K", 0) > 0:
        return dr.subpop_scenario(p["K"], d=p["d"], kappa=p.get("kappa", 0.0))
    return dr.zone_scenario(p["d"], kappa=p.get("kappa", 0.0))


def _marginal_result(sc, t, cf=None, box=(-3.0, 10.0), N=520):
    """MFGResult holding the exact MF marginal of zone 1 (product coupling) on a 1-D grid at times t.
    u is not defined for the product coupling (one value function per start point): zeros."""
    grid = Grid([box], N)
    x = grid.axes[0]
    tt = np.asarray(t, dtype=float)
    pr = sc.protocol(tt, "MF")
    (w0, m0, S0), (w1, m1, S1) = sc.start, sc.target
    zone1 = dataclasses.replace(pr, c=pr.c[:, :1])  # the marginal of zone 1: its coordinate of the shift
    start, target = (w0, m0[:, :1], S0[:, :1]), (w1, m1[:, :1], S1[:, :1])
    m = np.stack([analytic.gm_product_marginal(n, x[:, None], start, target, zone1) for n in range(len(tt))])
    return MFGResult(grid=grid, t=tt, u=np.zeros_like(m), m=m, converged=True, status="converged", iterations=1,
                     solver={"method": "closed-form GM route (product coupling) + agents",
                             "fields": "m = exact MF marginal of zone 1 (product coupling); u undefined "
                                       "for the product coupling (zeros)"})


class _DRCase(Case):
    has_oracle = True
    #: parameter overrides for ``validate`` (reduced Monte Carlo)
    validate_overrides: dict = {}

    def run(self, overrides=None, progress=False, **solve_overrides):
        return self._run(overrides, verbose=True)

    def validate(self, overrides=None, progress=False):
        return self._run({**self.validate_overrides, **dict(overrides or {})}, verbose=False, validating=True)

    def _run(self, overrides, verbose, validating=False):
        p = self.resolve(overrides)
        t0 = time.perf_counter()
        result, checks, lines = self.compute(p, validating)
        result.case = self.name
        result.params = dict(p)
        if verbose:
            print("\n".join(lines), flush=True)
            print(flush=True)
        return CaseRun(self.name, p, result, checks, time.perf_counter() - t0)


def _mc_checks(cf, ag, label=""):
    rows = []
    if cf is not None:
        rows.append(Check(f"{label}closed form: MF mean = the theorem's mean (line; sinh if kappa > 0), max |diff|",
                          cf.mean_error, 1e-10, "exact c_t for nu = line"))
        for g in cf.gap_mc:
            rows.append(Check(f"{label}closed form: E_{g} - E_MF vs exact mean-channel gap",
                              abs(cf.gap_mc[g] - cf.gap_exact[g]), NSIG * cf.gap_se[g],
                              f"{cf.gap_mc[g]:.4f} vs {cf.gap_exact[g]:.4f}; tol = {NSIG:g} MC s.e."))
        tot = sum(w * v for w, v in zip(cf.label_weights, cf.by_label["MF"]))
        rows.append(Check(f"{label}closed form: sub-population energies sum to the total (rel.)",
                          abs(tot - cf.E["MF"]) / cf.E["MF"], 1e-12))
    if ag is not None:
        rows.append(Check(f"{label}agents: sub-population energies sum to the total (rel.)", ag.label_sum_error, 1e-12))
    if cf is not None and ag is not None:
        for g in ag.E:
            se = math.hypot(ag.E_se[g], cf.fluct_se)
            rows.append(Check(f"{label}agents vs closed form: E_{g}", abs(ag.E[g] - cf.E_best[g]), NSIG * se,
                              f"{ag.E[g]:.4f} vs {cf.E_best[g]:.4f}; tol = {NSIG:g} combined s.e."))
        for g in ag.saving:
            se = math.hypot(ag.saving_se[g], cf.saving_se[g])
            rows.append(Check(f"{label}agents vs closed form: saving vs {g}", abs(ag.saving[g] - cf.saving[g]), NSIG * se,
                              f"{100 * ag.saving[g]:.2f} % vs {100 * cf.saving[g]:.2f} %"))
    return rows


def _grid_checks(gr, label="grid"):
    """Rows of the grid check: Richardson-extrapolated mean paths and gaps vs the closed forms (budget
    GRID_BUDGET[scheme], relative) and the observed orders (>= 0.8 x the scheme's order)."""
    rows = []
    first, last = gr["levels"][0], gr["levels"][-1]
    p = gr["order"]
    budget = GRID_BUDGET[gr["time_scheme"]]
    tag = f"{gr['time_scheme']}, ({first['N']}, {first['Nt']}) -> ({last['N']}, {last['Nt']})"
    for g, err in gr.get("mean_richardson_error", {}).items():
        rows.append(Check(f"{label}: {g} mean path (Richardson) vs closed form (rel. to |m1 - m0|)", err, budget,
                          f"{tag}; max over t; raw errors {first['mean_error'][g]:.3f} -> {last['mean_error'][g]:.3f}"))
    for g, o in gr["mean_order"].items():
        if len(o):
            rows.append(Check(f"{label}: {g} mean path: observed order", float(o[-1]), 0.8 * p,
                              f"errors {first['mean_error'][g]:.2e} -> {last['mean_error'][g]:.2e}", at_least=True))
    for g, o in gr["gap_order"].items():
        if len(o):
            rows.append(Check(f"{label}: E_{g} - E_MF vs exact gap: observed order", float(o[-1]), 0.8 * p,
                              f"errors {gr['levels'][-2]['gap_error'][g]:.3f} -> {last['gap_error'][g]:.3f}",
                              at_least=True))
            rich = gr["gap_richardson"][g]
            ex = last["gap_exact"][g]
            rows.append(Check(f"{label}: E_{g} - E_MF (Richardson) vs exact gap (rel.)", abs(rich - ex) / ex, budget,
                              f"{rich:.4f} vs {ex:.4f}"))
    return rows


def _grid_history(gr):
    h = {}
    for key in ("N", "Nt"):
        h[f"grid_{key}"] = np.array([L[key] for L in gr["levels"]], dtype=float)
    for g in gr["levels"][0]["E"]:
        h[f"grid_E_{g}"] = np.array([L["E"][g] for L in gr["levels"]])
        h[f"grid_mean_error_{g}"] = np.array([L["mean_error"][g] for L in gr["levels"]])
    for g in gr["levels"][0]["gap"]:
        h[f"grid_gap_{g}"] = np.array([L["gap"][g] for L in gr["levels"]])
        h[f"grid_gap_exact_{g}"] = np.array([L["gap_exact"][g] for L in gr["levels"]])
    h["grid_fluct_sb"] = np.array([L["fluct_sb"] for L in gr["levels"]])
    return h


def _route_history(cf, ag):
    h = {}
    if cf is not None:
        for g in cf.E:
            h[f"cf_E_{g}"] = np.array([cf.E_best[g]])
            h[f"cf_E_direct_{g}"] = np.array([cf.E[g]])
            h[f"cf_E_direct_se_{g}"] = np.array([cf.E_se[g]])
            h[f"cf_mean_channel_{g}"] = np.array([cf.mean_channel[g]])
            h[f"cf_E_by_label_{g}"] = cf.by_label[g]
            h[f"cf_E_curve_{g}"] = cf.E_curve[g]
        h["cf_fluct"] = np.array([cf.fluct])
        h["cf_fluct_se"] = np.array([cf.fluct_se])
        h["cf_t_edges"] = cf.t_edges
        for g in cf.saving:
            h[f"cf_saving_{g}"] = np.array([cf.saving[g]])
            h[f"cf_saving_se_{g}"] = np.array([cf.saving_se[g]])
    if ag is not None:
        for g in ag.E:
            h[f"agents_E_{g}"] = np.array([ag.E[g]])
            h[f"agents_E_se_{g}"] = np.array([ag.E_se[g]])
            h[f"agents_E_raw_{g}"] = np.array([ag.E_raw[g]])
            h[f"agents_E_by_label_{g}"] = ag.by_label[g]
            h[f"agents_E_curve_{g}"] = ag.E_curve[g]
        h["agents_t"] = ag.t
        for g in ag.saving:
            h[f"agents_saving_{g}"] = np.array([ag.saving[g]])
            h[f"agents_saving_se_{g}"] = np.array([ag.saving_se[g]])
    return h


def _figure_single(sc, cf, ag, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    cols = {"MF": "C0", "IA0": "C3", "IAm": "C2"}
    for g in dr.GUIDANCES:
        if ag is not None:
            ax1.plot(ag.t, ag.E_curve[g], color=cols[g], label=f"{g} agents ({ag.n_steps} steps)")
        if cf is not None:
            ax1.plot(cf.t_edges, cf.E_curve[g], "o", color=cols[g], ms=4, label=f"{g} closed form")
    ax1.set(xlabel="t", ylabel="cumulative E(t) / d", title=f"{sc.name}: cumulative control energy")
    ax1.legend(fontsize=7)
    labs = list(sc.labels)
    x = np.arange(len(labs))
    wdt = 0.8 / 3
    src = cf if cf is not None else ag
    for i, g in enumerate(dr.GUIDANCES):
        ax2.bar(x + (i - 1) * wdt, src.by_label[g], wdt, yerr=src.by_label_se[g], color=cols[g], label=g)
    ax2.set_xticks(x, labs, fontsize=7)
    ax2.set(ylabel="energy per agent / d", title="per-sub-population effort")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


@register
class DemandResponse(_DRCase):
    name = "demand-response"
    description = ("paper's demand-response scenario: per-zone MF/IA0/IAm energies and savings, closed form + agents "
                   "(+ grid, d <= 2)")
    params = (
        Param("d", 8, "zones per building", positive=True),
        Param("K", 0, "0: the d-zone scenario; K >= 1: the sub-population scenario with K components (paper: d=4)",
              nonnegative=True),
        Param("route", "both", "closed-form, agents or both", choices=("closed-form", "agents", "both")),
        Param("samples", 100000, "closed-form route: Monte-Carlo samples (stratified)", positive=True),
        Param("nodes", 6, "closed-form route: Gauss-Legendre nodes per sub-interval", positive=True),
        Param("sub", 2, "closed-form route: sub-intervals per beta piece", positive=True),
        Param("agents", 4000, "agent route: agents per batch", positive=True),
        Param("batches", 8, "agent route: independent seeded batches (error bars)", positive=True),
        Param("n_steps", 1000, "agent route: Euler-Maruyama steps (even)", positive=True),
        Param("richardson", True, "agent route: also run n_steps/2 and extrapolate 2 E(n) - E(n/2)"),
        Param("seed", 0, "seed of both routes", nonnegative=True),
        Param("grid", "auto", "grid cross-check (SB coupling, planning solver): auto = on for d <= 2 (d = 2: two 2-D "
              "levels, ~7 s on 2 cores); validate runs it for d = 1 and d = 2 whatever d is", choices=("auto", "on", "off")),
        Param("grid_N", 0, "grid cells per axis at the coarse level (0: 200)", nonnegative=True),
        Param("grid_Nt", 0, "grid time steps at the coarse level (0: 48 in 1-D and 16 in 2-D for the second-order "
              "schemes, 4 grid_N for euler)", nonnegative=True),
        Param("grid_levels", 2, "grid levels (N, Nt multiplied by grid_ratio each time)", positive=True),
        Param("grid_ratio", "auto", "refinement ratio of the grid levels: auto = 3/2 in 2-D with a second-order "
              "scheme, 2 otherwise", choices=("auto", "2", "3/2")),
        Param("grid_scheme", "strang", "planning time scheme of the grid check: strang (exact per-axis semigroup, "
              "dense) or crank-nicolson (positive substeps), both with the potential split at midpoints: "
              "O(h^2 + dt^2); or euler (core implicit Euler: O(h^2 + dt))",
              choices=("crank-nicolson", "strang", "euler")),
        Param("figure", "", "write E(t) curves and per-sub-population effort to this PNG", output=True),
    )
    # validate (`mfg-pde validate`): d = 8 with 20000 closed-form samples, 8 x 1000 agents at 400/200 steps,
    # plus the d = 1 and d = 2 grid cross-checks at (200, 48) -> (400, 96), Strang
    validate_overrides = {"samples": 20000, "agents": 1000, "batches": 8, "n_steps": 400}

    def validate_params(self, p):
        if p["batches"] < 2:
            raise CaseError("batches must be >= 2 (the agent error bars are batch means)")
        if p["richardson"] and p["n_steps"] % 2:
            raise CaseError("n_steps must be even with richardson=true")
        if p["d"] > 64:
            raise CaseError("d > 64: not supported")

    def compute(self, p, validating=False):
        sc = _scenario(p)
        cf = ag = gr = None
        if p["route"] in ("closed-form", "both"):
            cf = dr.closed_form_energies(sc, samples=p["samples"], seed=p["seed"], n_gl=p["nodes"], n_sub=p["sub"])
        if p["route"] in ("agents", "both"):
            ag = dr.agent_energies(sc, N=p["agents"], batches=p["batches"], n_steps=p["n_steps"], seed=p["seed"],
                                   richardson=p["richardson"])
        checks = _mc_checks(cf, ag)
        if p["grid"] == "on" and sc.d > 2:
            raise CaseError(f"grid=on needs d = 1 or 2 (got d = {sc.d}): the grid check solves the d-dimensional "
                            "planning problem on a tensor grid")
        want = p["grid"] == "on" or (p["grid"] == "auto" and sc.d <= 2)
        if want and sc.d <= 2:
            grid_scs = [sc]
        elif validating and p["grid"] != "off":
            grid_scs = [dr.zone_scenario(1), dr.zone_scenario(2)]
        else:
            grid_scs = []
        gr = grid_sc = None
        for gsc in grid_scs:
            dflt = dr.default_grid(gsc.d, p["grid_scheme"])
            N = p["grid_N"] or dflt["N"]
            Nt = p["grid_Nt"] or (dflt["Nt"] if not p["grid_N"] or p["grid_scheme"] != "euler" else 4 * N)
            try:
                ratio = dflt["ratio"] if p["grid_ratio"] == "auto" else Fraction(str(p["grid_ratio"]))
                g_ = dr.grid_crosscheck(gsc, N=N, Nt=Nt, levels=max(p["grid_levels"], 2), box=dflt["box"],
                                        keep_results=True, time_scheme=p["grid_scheme"], ratio=ratio)
            except ValueError as e:
                raise CaseError(str(e)) from None
            checks += _grid_checks(g_, label="grid" if gsc is sc else f"grid (d = {gsc.d})")
            if gr is None or gsc is sc:
                gr, grid_sc = g_, gsc
            elif not g_["converged"]:
                gr = g_
        if gr is not None and grid_sc is sc:
            result = gr["levels"][-1]["result"]["MF"]
            result.solver = {**result.solver, "fields": "grid MF solution (SB coupling) at the finest level"}
            result.converged = gr["converged"]
            result.status = "converged" if gr["converged"] else "a grid planning solve did not converge"
        else:
            t = cf.t_edges if cf is not None else np.linspace(0, sc.T, 17)
            result = _marginal_result(sc, t)
            if gr is not None and not gr["converged"]:
                result.converged = False
                result.status = "a grid planning solve did not converge"
        hist = {**_route_history(cf, ag), **(_grid_history(gr) if gr is not None else {})}
        worst = max((c.error / c.tol for c in checks if not c.at_least and c.tol > 0), default=0.0)
        result.history = {**(result.history or {}), **hist, "residual": np.array([worst]),
                          "wall_time": np.array([(cf.wall_time if cf else 0.0) + (ag.wall_time if ag else 0.0)])}
        result.case_report = DemandResponseReport(scenario=sc, closed_form=cf, agents=ag, grid_check=gr)
        lines = dr.report_lines(sc, cf, ag, gr if (gr is not None and grid_sc is sc) else None)
        if p["figure"] and (cf is not None or ag is not None):
            _figure_single(sc, cf, ag, p["figure"])
        return result, checks, lines


# ------------------------------------------------------------------------------------------ sweep

_COLUMNS = ("K", "d", "route", "E_MF", "E_MF_se", "E_IA0", "E_IA0_se", "E_IAm", "E_IAm_se",
            "saving_IA0_pct", "saving_IA0_se_pct", "saving_IAm_pct", "saving_IAm_se_pct",
            "gap_IA0_exact", "gap_IA0_mc", "gap_IA0_mc_se", "fluct", "fluct_se", "em_bias_IA0",
            "paper_MF", "paper_IA0", "paper_IAm", "paper_saving_IA0_pct", "wall_s")


def _sweep_rows(sc, cf, ag, K):
    pr = dr.paper_row(sc) or {}
    nan = float("nan")
    base = dict(K=K, d=sc.d, paper_MF=pr.get("MF", nan), paper_IA0=pr.get("IA0", nan), paper_IAm=pr.get("IAm", nan),
                paper_saving_IA0_pct=pr.get("saving_IA0", nan), gap_IA0_exact=cf.gap_exact.get("IA0", nan))
    rows = [dict(base, route=0, E_MF=cf.E_best["MF"], E_MF_se=cf.fluct_se, E_IA0=cf.E_best["IA0"], E_IA0_se=cf.fluct_se,
                 E_IAm=cf.E_best["IAm"], E_IAm_se=cf.fluct_se, saving_IA0_pct=100 * cf.saving["IA0"],
                 saving_IA0_se_pct=100 * cf.saving_se["IA0"], saving_IAm_pct=100 * cf.saving["IAm"],
                 saving_IAm_se_pct=100 * cf.saving_se["IAm"], gap_IA0_mc=cf.gap_mc["IA0"], gap_IA0_mc_se=cf.gap_se["IA0"],
                 fluct=cf.fluct, fluct_se=cf.fluct_se, em_bias_IA0=nan, wall_s=cf.wall_time)]
    if ag is not None:
        rows.append(dict(base, route=1, E_MF=ag.E["MF"], E_MF_se=ag.E_se["MF"], E_IA0=ag.E["IA0"], E_IA0_se=ag.E_se["IA0"],
                         E_IAm=ag.E["IAm"], E_IAm_se=ag.E_se["IAm"], saving_IA0_pct=100 * ag.saving["IA0"],
                         saving_IA0_se_pct=100 * ag.saving_se["IA0"], saving_IAm_pct=100 * ag.saving["IAm"],
                         saving_IAm_se_pct=100 * ag.saving_se["IAm"], gap_IA0_mc=ag.E["IA0"] - ag.E["MF"],
                         gap_IA0_mc_se=nan, fluct=nan, fluct_se=nan, em_bias_IA0=ag.em_bias["IA0"], wall_s=ag.wall_time))
    return rows


@register
class DemandResponseSweep(_DRCase):
    name = "demand-response-sweep"
    description = "paper's d-sweep (1..32 zones) and sub-population sweep (K = 2, 3, 4, 8): table, CSV/HDF5, figure"
    params = (
        Param("ds", "1,2,4,8,16,32", "zone counts"),
        Param("Ks", "2,3,4,8", "sub-population counts (d = 4); empty: none"),
        Param("samples", 100000, "closed-form route: Monte-Carlo samples per scenario", positive=True),
        Param("agents", 4000, "agent route: agents per batch (0: closed form only)", nonnegative=True),
        Param("batches", 8, "agent route: batches", positive=True),
        Param("n_steps", 1000, "agent route: Euler-Maruyama steps (Richardson with n_steps/2)", positive=True),
        Param("seed", 0, "seed", nonnegative=True),
        Param("csv", "", "write the table to this CSV path", output=True),
        Param("h5", "", "write the result (table in /history) to this HDF5 path", output=True),
        Param("figure", "", "write the figure to this PNG path", output=True),
    )
    # validate: 20000 closed-form samples per scenario, 8 x 500 agents at 200/100 steps
    validate_overrides = {"samples": 20000, "agents": 500, "batches": 8, "n_steps": 200}

    def validate_params(self, p):
        _ints(p["ds"], "ds")
        if p["Ks"].strip():
            _ints(p["Ks"], "Ks")
        if p["agents"] and (p["batches"] < 2 or p["n_steps"] % 2):
            raise CaseError("the agent route needs batches >= 2 and an even n_steps")

    def compute(self, p, validating=False):
        ds = _ints(p["ds"], "ds")
        Ks = _ints(p["Ks"], "Ks") if p["Ks"].strip() else []
        runs = []
        for K, d in [(0, d) for d in ds] + [(K, 4) for K in Ks]:
            sc = dr.zone_scenario(d) if K == 0 else dr.subpop_scenario(K, d=4)
            cf = dr.closed_form_energies(sc, samples=p["samples"], seed=p["seed"])
            ag = None
            if p["agents"]:
                ag = dr.agent_energies(sc, N=p["agents"], batches=p["batches"], n_steps=p["n_steps"], seed=p["seed"])
            runs.append((K, sc, cf, ag))
        rows = [r for K, sc, cf, ag in runs for r in _sweep_rows(sc, cf, ag, K)]
        table = np.array([[float(r[c]) for c in _COLUMNS] for r in rows])
        # checks
        checks = []
        zg = [abs(cf.gap_mc[g] - cf.gap_exact[g]) / cf.gap_se[g] for _, _, cf, _ in runs for g in cf.gap_mc]
        checks.append(Check("closed form: E_IA - E_MF vs exact mean-channel gap, max |z| over the sweep", max(zg), NSIG,
                            f"{len(zg)} comparisons"))
        checks.append(Check("closed form: MF mean = the theorem's line, max |diff| over the sweep",
                            max(cf.mean_error for _, _, cf, _ in runs), 1e-10))
        if p["agents"]:
            z = []
            for _, _, cf, ag in runs:
                z += [(ag.E[g] - cf.E_best[g]) / math.hypot(ag.E_se[g], cf.fluct_se) for g in ag.E]
                z += [(ag.saving[g] - cf.saving[g]) / math.hypot(ag.saving_se[g], cf.saving_se[g]) for g in ag.saving]
            rms = float(np.sqrt(np.mean(np.square(z))))
            checks.append(Check("agents vs closed form: RMS z-score over the sweep", rms, 2.0,
                                f"{len(z)} comparisons (energies and savings); max |z| = {max(np.abs(z)):.2f}"))
            checks.append(Check("agents: sub-population energies sum to the total (rel., max)",
                                max(ag.label_sum_error for *_, ag in runs), 1e-12))
        # result: the d = 1 (or first) scenario's exact MF marginal, the table in the history
        first = runs[0]
        result = _marginal_result(first[1], first[2].t_edges)
        hist = {c: table[:, i] for i, c in enumerate(_COLUMNS)}
        for K, sc, cf, ag in runs:
            tag = f"d{sc.d}" if K == 0 else f"K{K}"
            for g in dr.GUIDANCES:
                hist[f"cf_E_curve_{g}_{tag}"] = cf.E_curve[g]
                hist[f"cf_E_by_label_{g}_{tag}"] = cf.by_label[g]
                if ag is not None:
                    hist[f"agents_E_by_label_{g}_{tag}"] = ag.by_label[g]
        hist["cf_t_edges"] = first[2].t_edges
        worst = max((c.error / c.tol for c in checks if c.tol > 0), default=0.0)
        result.history = {"residual": np.array([worst]), "wall_time": np.array([float(table[:, -1].sum())]), **hist}
        result.case_report = DemandResponseReport(runs=runs, table=table, columns=_COLUMNS)
        if p["csv"]:
            with open(p["csv"], "w") as f:
                f.write(",".join(_COLUMNS) + "\n")
                for r in table:
                    f.write(",".join(f"{v:.8g}" for v in r) + "\n")
        if p["h5"]:
            result.case, result.params = self.name, dict(p)
            result.save(p["h5"])
        if p["figure"]:
            self.figure(runs, p["figure"])
        return result, checks, self.lines(runs)

    @staticmethod
    def lines(runs):
        out = ["demand-response sweep: per-zone E/d (E = int E|alpha|^2 dt, no 1/2); closed form +- MC s.e. | "
               "agents (Richardson) +- s.e. | paper"]
        head = ("scenario", "route", "MF", "IA0", "IAm", "saving vs IA0 %")
        rows = [head]
        for K, sc, cf, ag in runs:
            name = f"d={sc.d}" if K == 0 else f"K={K} (d=4)"
            rows.append((name, "closed form", *(dr._pm(cf.E_best[g], cf.fluct_se) for g in dr.GUIDANCES),
                         dr._pm(100 * cf.saving["IA0"], 100 * cf.saving_se["IA0"], 2)))
            if ag is not None:
                rows.append(("", f"agents {ag.batches}x{ag.N}", dr._pm(ag.E["MF"], ag.E_se["MF"]),
                             dr._pm(ag.E["IA0"], ag.E_se["IA0"]), dr._pm(ag.E["IAm"], ag.E_se["IAm"]),
                             dr._pm(100 * ag.saving["IA0"], 100 * ag.saving_se["IA0"], 2)))
            pr = dr.paper_row(sc)
            if pr is not None:
                rows.append(("", "paper", *(f"{pr[g]:.3f}" if g in pr else "-" for g in dr.GUIDANCES),
                             f"{pr['saving_IA0']:.1f}"))
        w = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
        for i, r in enumerate(rows):
            out.append("  ".join(str(c).ljust(w[k]) for k, c in enumerate(r)).rstrip())
            if i == 0:
                out.append("  ".join("-" * x for x in w))
        return out

    @staticmethod
    def figure(runs, path):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(15, 8.5))
        FigureCanvasAgg(fig)
        axs = fig.subplots(2, 3)
        zones = [r for r in runs if r[0] == 0]
        subs = [r for r in runs if r[0] > 0]
        cols = {"MF": "C0", "IA0": "C3", "IAm": "C2"}

        def saving_panel(ax, rs, xkey, xlabel, paper):
            x = np.array([xkey(r) for r in rs], dtype=float)
            ax.errorbar(x, [100 * r[2].saving["IA0"] for r in rs], yerr=[100 * r[2].saving_se["IA0"] for r in rs],
                        fmt="o-", label="closed form (exact marginals)")
            if rs and rs[0][3] is not None:
                ax.errorbar(x * 1.04, [100 * r[3].saving["IA0"] for r in rs], yerr=[100 * r[3].saving_se["IA0"] for r in rs],
                            fmt="s", capsize=3, label="agents (Richardson)")
            px = [xv for xv, r in zip(x, rs) if paper(r) is not None]
            ax.plot(px, [paper(r) for r in rs if paper(r) is not None], "k*", ms=10, label="paper")
            ax.set(xlabel=xlabel, ylabel="saving vs IA0 (%)")
            ax.legend(fontsize=7)

        if zones:
            saving_panel(axs[0, 0], zones, lambda r: r[1].d, "zones d", lambda r: dr.PAPER_TABLE.get(r[1].d, (None,) * 4)[3])
            axs[0, 0].set_xscale("log", base=2)
            axs[0, 0].set_title("saving vs d")
            ax = axs[0, 1]
            x = np.array([r[1].d for r in zones], dtype=float)
            for i, g in enumerate(dr.GUIDANCES):
                ax.errorbar(x, [r[2].E_best[g] for r in zones], yerr=[r[2].fluct_se for r in zones], fmt="o-",
                            color=cols[g], label=f"{g} closed form")
                if zones[0][3] is not None:
                    ax.errorbar(x * 1.04, [r[3].E[g] for r in zones], yerr=[r[3].E_se[g] for r in zones], fmt="s",
                                color=cols[g], mfc="none", capsize=3, label=f"{g} agents")
                ax.plot([d for d in x if int(d) in dr.PAPER_TABLE], [dr.PAPER_TABLE[int(d)][i] for d in x
                                                                       if int(d) in dr.PAPER_TABLE], "*", color=cols[g],
                        ms=9, label=f"{g} paper")
            ax.set_xscale("log", base=2)
            ax.set(xlabel="zones d", ylabel="E / d", title="per-zone energy vs d")
            ax.legend(fontsize=6, ncol=3)
            pick = next((r for r in zones if r[1].d == 8), zones[-1])
            ax = axs[1, 0]
            for g in dr.GUIDANCES:
                if pick[3] is not None:
                    ax.plot(pick[3].t, pick[3].E_curve[g], color=cols[g], label=f"{g} agents")
                ax.plot(pick[2].t_edges, pick[2].E_curve[g], "o", color=cols[g], ms=4, label=f"{g} closed form")
            ax.set(xlabel="t", ylabel="cumulative E(t) / d", title=f"cumulative energy, d = {pick[1].d}")
            ax.legend(fontsize=7)
            ax = axs[1, 1]
            labs = list(pick[1].labels)
            xx = np.arange(len(labs))
            for i, g in enumerate(dr.GUIDANCES):
                ax.bar(xx + (i - 1) * 0.27, pick[2].by_label[g], 0.27, yerr=pick[2].by_label_se[g], color=cols[g], label=g)
            ax.set_xticks(xx, labs)
            ax.set(ylabel="energy per agent / d", title=f"per-sub-population effort, d = {pick[1].d}")
            ax.legend(fontsize=7)
        if subs:
            saving_panel(axs[0, 2], subs, lambda r: r[0], "sub-populations K", lambda r: dr.PAPER_SUBPOP_SAVING.get(r[0]))
            axs[0, 2].set_title("saving vs K (d = 4)")
            ax = axs[1, 2]
            for K, sc, cf, ag in subs:
                mu = np.linspace(-1, 2, K) if K > 1 else np.array([0.5])
                ax.plot(mu, cf.by_label["IA0"] - cf.by_label["MF"], "o-", label=f"K = {K}")
            ax.axhline(0, color="k", lw=0.5)
            ax.set(xlabel="sub-population target mean", ylabel="E_IA0 - E_MF per agent / d",
                   title="who saves: per-sub-population effort change")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)


# ------------------------------------------------------------------------------------------ thermal

@register
class DemandResponseThermal(_DRCase):
    name = "demand-response-thermal"
    description = "thermal variant b = -kappa x: sinh MF mean, exact minimal mean energy, saving vs IA0; grid check in 1-D"
    params = (
        Param("kappa", 1.0, "thermal relaxation rate a (b = -kappa x in deviation coordinates)", nonnegative=True),
        Param("d", 1, "zones (the grid check runs for d = 1)", positive=True),
        Param("samples", 40000, "closed-form route: Monte-Carlo samples", positive=True),
        Param("seed", 0, "seed", nonnegative=True),
        Param("grid", True, "grid cross-check (d = 1)"),
        Param("grid_N", 200, "grid cells at the coarse level", positive=True),
        Param("grid_Nt", 800, "grid time steps at the coarse level", positive=True),
        Param("grid_levels", 2, "grid levels", positive=True),
    )
    validate_overrides = {"samples": 20000}

    def compute(self, p, validating=False):
        sc = dr.zone_scenario(p["d"], kappa=p["kappa"])
        cf = dr.closed_form_energies(sc, samples=p["samples"], seed=p["seed"])
        checks = _mc_checks(cf, None)
        m0, m1 = float(sc.mean0[0]), float(sc.mean1[0])
        emin = dr.analytic.mf_mean_energy(T=sc.T, mean0=m0, mean1=m1, kappa=sc.kappa)
        if sc.kappa > 0:
            K = sc.kappa
            formula = 2 * K * (m1 * math.exp(K * sc.T) - m0) ** 2 / (math.exp(2 * K * sc.T) - 1)
        else:
            formula = (m1 - m0) ** 2 / sc.T
        checks.append(Check("exact minimal mean energy = 2 kappa (m1 e^kT - m0)^2 / (e^2kT - 1) (zone 1, rel.)",
                            abs(emin - formula) / formula, 1e-12))
        gr = None
        if p["grid"] and sc.d == 1:
            # the core implicit-Euler sweeps: the upwinded drift -kappa x is first order in h anyway
            gr = dr.grid_crosscheck(sc, N=p["grid_N"], Nt=p["grid_Nt"], levels=max(p["grid_levels"], 2), keep_results=True,
                                    time_scheme="euler")
            checks += _grid_checks(gr)
            result = gr["levels"][-1]["result"]["MF"]
            result.converged = gr["converged"]
            result.status = "converged" if gr["converged"] else "a grid planning solve did not converge"
        else:
            result = _marginal_result(sc, cf.t_edges)
        hist = {**_route_history(cf, None), **(_grid_history(gr) if gr is not None else {})}
        worst = max((c.error / c.tol for c in checks if not c.at_least and c.tol > 0), default=0.0)
        result.history = {**(result.history or {}), **hist, "residual": np.array([worst]),
                          "wall_time": np.array([cf.wall_time])}
        result.case_report = DemandResponseReport(scenario=sc, closed_form=cf, grid_check=gr)
        lines = dr.report_lines(sc, cf, None, gr)
        lines.insert(1, f"kappa = {sc.kappa:g}: exact minimal (MF) mean-channel energy per zone {cf.mean_channel['MF']:.4f} "
                        f"(kappa = 0: {np.mean((sc.mean1 - sc.mean0) ** 2):.4f})")
        if gr is not None and "E_richardson" in gr:
            Er = gr["E_richardson"]
            lines.append("  SB coupling (grid, Richardson-extrapolated energies): " +
                         ", ".join(f"E_{g} {Er[g]:.4f}" for g in Er) + "; saving " +
                         ", ".join(f"vs {g} {100 * (Er[g] - Er['MF']) / Er[g]:.1f} %" for g in Er if g != "MF"))
        return result, checks, lines
