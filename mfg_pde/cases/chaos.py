"""`propagation-of-chaos`: N-particle McKean-Vlasov systems against the grid mean-field FP
(docs/method.md, section 'Diffusion models and interacting particles'): the linear OU system
and an attractive Gaussian-kernel interaction.
W1(empirical terminal law, PDE terminal law) is averaged over seeds for each N and its slope in N
is fitted (propagation of chaos plus sampling: about N^-1/2)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..particles import mckean_vlasov as MV
from ..particles.agents import sample_density, w1_to_density
from ..model.densities import gaussian_mixture
from ..model.grid import Grid
from ..result import CaseReport, MFGResult
from .base import Check, Param, register
from .diffusion import _DirectCase, _parse_floats


@dataclass
class ChaosReport(CaseReport):
    """``errors`` (the OU law's mean and variance against the closed form) and, when agents ran:

    slopes : system -> fitted slope of log W1 against log N (propagation of chaos: about -1/2).
    w1 : system -> (len(agents), 2) array: mean W1 distance to the mean-field law over the seeds, its
        standard error.
    agents : system -> the agent counts N that ran.
    """

    slopes: dict = field(default_factory=dict)
    w1: dict = field(default_factory=dict, repr=False)
    agents: dict = field(default_factory=dict)

SYSTEMS = {"ou": dict(a=0.5, c=1.0, A=0.0, ell=1.0), "kernel": dict(a=0.5, c=0.0, A=2.0, ell=1.0)}


@register
class PropagationOfChaos(_DirectCase):
    name = "propagation-of-chaos"
    description = "McKean-Vlasov OU and attractive-kernel systems: N-agent W1 to the grid FP law vs N, fitted slope"
    has_oracle = True
    params = (
        Param("sigma", 0.8, "noise intensity", positive=True),
        Param("T", 1.0, "horizon", positive=True),
        Param("N", 1600, "grid cells of the mean-field FP", positive=True),
        Param("Nt", 400, "time steps of the mean-field FP", positive=True),
        Param("agents", "125,250,500,1000,2000,4000", "comma-separated particle numbers"),
        Param("kernel_max", 1000, "largest N for the O(N^2) kernel system", positive=True),
        Param("seeds", 16, "independent runs per particle number", positive=True),
        Param("steps", 200, "Euler-Maruyama steps of the particle systems", positive=True),
        Param("figure", "", "write the W1-vs-N figure to this PNG path", output=True),
    )
    tolerances = {"OU: PDE mean vs closed form": 5e-4, "OU: PDE variance vs closed form": 5e-3}
    slope_range = (-0.75, -0.35)

    def refined(self, p):
        # the refined run checks the grid's order only; the particle study does not depend on the grid
        return {**p, "N": 2 * p["N"], "Nt": 2 * p["Nt"], "figure": "", "agents": "none"}

    def run(self, overrides=None, progress=False, **kw):
        # `validate` passes the refined N, Nt; keep its "agents": "none" too
        if overrides and overrides.get("N") and self.resolve(overrides)["N"] > self.defaults()["N"] \
                and "agents" not in overrides:
            overrides = {**overrides, "agents": "none"}
        return super().run(overrides, progress, **kw)

    def m0(self, grid):
        return gaussian_mixture(grid, [0.5, 0.5], [-1.5, 1.0], [0.4, 0.5])

    def compute(self, p, progress=False):
        grid = Grid([(-5.0, 5.0)], p["N"])
        m0 = self.m0(grid)
        Ns = [] if p["agents"] == "none" else [int(v) for v in _parse_floats(p["agents"], "agents")]
        t = np.linspace(0.0, p["T"], p["Nt"] + 1)
        t0 = time.perf_counter()
        laws, w1, slopes, agents_used = {}, {}, {}, {}
        for name, sys_ in SYSTEMS.items():
            m = MV.solve_mean_field(grid, m0, p["T"], p["Nt"], sigma=p["sigma"], **sys_)
            laws[name] = m
            if not Ns:
                continue
            steps = p["steps"] if sys_["A"] == 0 else max(p["steps"] // 2, 1)
            Ns_sys = Ns if sys_["A"] == 0 else [n for n in Ns if n <= p["kernel_max"]]
            means = []
            for Np in Ns_sys:
                ws = []
                for seed in range(p["seeds"]):
                    x0 = sample_density(grid, m0, Np, seed=1000 * Np + seed)
                    xT = MV.simulate_particles(x0, p["T"], steps, sigma=p["sigma"], seed=7 + 1000 * Np + seed, **sys_)
                    ws.append(w1_to_density(xT, grid, m[-1]))
                means.append((np.mean(ws), np.std(ws) / np.sqrt(len(ws))))
            w1[name] = np.array(means)
            agents_used[name] = Ns_sys
            slopes[name] = float(np.polyfit(np.log(Ns_sys), np.log(w1[name][:, 0]), 1)[0])
        mu0, v0 = grid.mean(m0)[0], grid.covariance(m0)[0, 0]
        ref_mean, ref_var = MV.ou_moments(t, sigma=p["sigma"], mean0=mu0, var0=v0,
                                          a=SYSTEMS["ou"]["a"], c=SYSTEMS["ou"]["c"])
        e_mean = float(np.max(np.abs(grid.mean(laws["ou"])[:, 0] - ref_mean)))
        e_var = float(np.max(np.abs(grid.covariance(laws["ou"])[:, 0, 0] - ref_var)))
        wall = time.perf_counter() - t0
        history = {"residual": np.array([e_mean]), "wall_time": np.array([wall])}
        for name in w1:
            history[f"agents_{name}"] = np.array(agents_used[name], float)
            history[f"W1_{name}"] = w1[name][:, 0]
            history[f"W1_{name}_stderr"] = w1[name][:, 1]
            history[f"slope_{name}"] = np.array([slopes[name]])
        report = ChaosReport(errors={"OU: PDE mean vs closed form": e_mean, "OU: PDE variance vs closed form": e_var},
                             slopes=slopes, w1=w1, agents=agents_used)
        r = MFGResult(grid=grid, t=t, u=np.zeros_like(laws["kernel"]), m=laws["kernel"], converged=True,
                      status="converged", iterations=1, history=history,
                      solver={"method": "mean-field FP + N-particle Euler-Maruyama"}, case_report=report)
        if p["figure"] and Ns:
            self.figure(agents_used, w1, slopes, p["figure"])
        return r

    def errors(self, result, p):
        return dict(result.case_report.errors)

    def checks(self, result, p):
        rows = [Check(k, v, self.tolerances[k], "max over t") for k, v in self.errors(result, p).items()]
        lo, hi = self.slope_range
        for name, s in result.case_report.slopes.items():
            rows.append(Check(f"{name}: fitted slope of W1 vs N (in [{lo}, {hi}])", abs(s - 0.5 * (lo + hi)),
                              0.5 * (hi - lo), f"slope {s:.3f}"))
        return rows

    @staticmethod
    def figure(Ns, w1, slopes, path):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.5, 4))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for name, w in w1.items():
            n = np.asarray(Ns[name], float)
            eb = ax.errorbar(n, w[:, 0], yerr=w[:, 1], fmt="o", capsize=3, label=f"{name}: slope {slopes[name]:.2f}")
            c = np.exp(np.polyfit(np.log(n), np.log(w[:, 0]), 1)[1])
            ax.plot(n, c * n ** slopes[name], "-", color=eb[0].get_color())
        n = np.asarray(Ns["ou"], float)
        ax.plot(n, w1["ou"][0, 0] * (n / n[0]) ** -0.5, "k:", label="N^-1/2")
        ax.set(xscale="log", yscale="log", xlabel="agents N", ylabel="W1 to the mean-field law",
               title="propagation of chaos")
        from matplotlib.ticker import NullFormatter
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
