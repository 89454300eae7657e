"""Several populations (docs/method.md, section 'Several populations').

`two-crowds`: segregation of two crowds.  Crowd A starts left of the centre, crowd B is its mirror image; each
pays a m_own for crowding with its own kind and b m_other for meeting the other one (F_A = a m_A + b m_B,
F_B = b m_A + a m_B), on [-L, L] (1-D) or [-L, L]^2 (2-D), reflecting walls, no terminal cost.  With b > a the
coupling is not monotone and the crowds move apart.  No closed form: the checks are the mirror symmetry (B
stays A's mirror image to round-off), each crowd's mass and m >= 0; ``validate`` adds the decoupled limit (b = 0
reproduces the single-population solves).  The report gives the overlap int min(m_A, m_B) dx at t = 0 and T.

`lq-two-populations`: two linear-quadratic populations interacting through their means (own and cross
stiffnesses beta_kj), against the closed form ``oracles.analytic.lq_multipop``: means and variances of both
populations, with their observed orders under refinement (``validate``).
"""

from __future__ import annotations

import numpy as np

from ..model.couplings import LocalPower, QuadraticInteraction
from ..model.densities import gaussian, normalise
from ..model.grid import Grid
from ..model.multipop import CrossCoupling, MultiPopulationProblem
from ..model.problem import MFGProblem, QuadraticTerminalCost
from ..oracles import analytic
from ..result import CaseReport
from .base import Case, CaseRun, Check, Param, register
from .params import grid_params, solver_params


def crowd_problem(p) -> MultiPopulationProblem:
    """The two-crowds game of the parameters p (module docstring)."""
    d = int(p["dim"])
    grid = Grid([(-p["L"], p["L"])] * d, p["N"])
    xs = grid.mesh()
    rest = sum(y ** 2 for y in xs[1:]) if d > 1 else 0.0

    def m0(sign):
        return normalise(grid, np.exp(-((xs[0] - sign * p["offset"]) ** 2 + rest) / (2 * p["width"] ** 2)) + 1e-3)

    crowds = [MFGProblem(grid, p["T"], p["Nt"], p["sigma"], m0(s), coupling=LocalPower(p["a"]), name=nm)
              for s, nm in ((-1.0, "A"), (1.0, "B"))]
    cross = CrossCoupling({(0, 1): LocalPower(p["b"]), (1, 0): LocalPower(p["b"])})
    return MultiPopulationProblem(crowds, coupling=cross, names=["A", "B"], name="two-crowds")


def mirror_error(result) -> float:
    """max |m_B(t, x) - m_A(t, -x)| / max m (x mirrored along the first axis)."""
    m = result.m
    return float(np.abs(m[1] - np.flip(m[0], axis=1)).max() / np.abs(m).max())


def overlap(result, n) -> float:
    """int min(m_A, m_B) dx at time level n: 1 for identical crowds, 0 for separated ones."""
    return float(result.grid.integrate(np.minimum(result.m[0][n], result.m[1][n])))


@register
class TwoCrowds(Case):
    name = "two-crowds"
    description = "two crowds that avoid each other (F_A = a m_A + b m_B, mirror images): segregation, 1-D or 2-D"
    has_oracle = True
    params = (
        Param("dim", 1, "space dimension (1 or 2)", choices=(1, 2)),
        Param("a", 1.0, "congestion within a crowd (a m_own)", nonnegative=True),
        Param("b", 3.0, "aversion to the other crowd (b m_other)", nonnegative=True),
        Param("sigma", 0.3, "noise intensity", positive=True),
        Param("offset", 0.2, "crowd A starts at x = -offset, crowd B at +offset"),
        Param("width", 0.25, "standard deviation of the starting crowds", positive=True),
        Param("T", 1.0, "horizon", positive=True),
        Param("L", 1.0, "half-width of the box", positive=True),
        *grid_params(120, 60),
        *solver_params(),
    )
    tolerances = {"mirror symmetry": 1e-11, "mass error": 1e-12, "negative density": 0.0}

    def grid_shape(self, p):
        return (int(p["N"]),) * int(p["dim"])

    def build(self, p):
        return crowd_problem(p), {"tol": p["tol"], "method": p["method"]}

    def decorate(self, result, problem, p):
        Nt = len(result.t) - 1
        result.case_report = CaseReport(errors={}, table=np.array([[overlap(result, 0), overlap(result, Nt)]]),
                                        columns=("overlap at t = 0", "overlap at T"))

    def checks(self, result, p):
        return [Check("mirror symmetry", mirror_error(result), self.tolerances["mirror symmetry"],
                      "max |m_B(x) - m_A(-x)| / max m"),
                Check("mass error", result.mass_error(), self.tolerances["mass error"], "max over crowds and t"),
                Check("negative density", max(0.0, -float(result.m.min())), 0.0, "-min m")]

    def validate(self, overrides=None, progress=False) -> CaseRun:
        """The run's checks and the decoupled limit: with b = 0, the joint solve (Newton) against each crowd
        solved alone."""
        from ..iterate.solve import solve

        run = self.run(overrides, progress=progress)
        p = self.resolve({**dict(overrides or {}), "b": 0.0})
        pb = crowd_problem(p)
        joint = solve(pb, method="newton", tol=1e-12)
        err, statuses = 0.0, [] if joint.converged else [f"joint: {joint.status}"]
        for k, pop in enumerate(pb.populations):
            alone = solve(pop, method="newton", tol=1e-12)
            err = max(err, float(np.abs(joint.m[k] - alone.m).max() / np.abs(alone.m).max()))
            statuses += [] if alone.converged else [f"{pb.names[k]} alone: {alone.status}"]
        run.checks.append(Check("decoupled limit (b = 0)", err, 1e-11,
                                "joint vs single solves, newton, max |dm| / max m"))
        if statuses:
            run.checks.append(Check("decoupled solves converged", 1.0, 0.0, "; ".join(statuses)))
        return run


#: own (diagonal) and cross stiffnesses beta_kj of lq-two-populations, and the two populations
LQ_BETA = np.array([[1.0, 1.5], [0.5, 2.0]])
LQ_POPULATIONS = ({"sigma": 0.8, "mean0": -1.0, "std0": 0.5, "q": 1.0, "target": 1.0},
                  {"sigma": 0.6, "mean0": 1.0, "std0": 0.4, "q": 2.0, "target": -0.5})


def lq_problem(N, Nt, T=1.0, L=5.0) -> MultiPopulationProblem:
    """Two LQ populations: own stiffness through each population's coupling, cross stiffness through
    CrossCoupling (module docstring)."""
    grid = Grid([(-L, L)], N)
    pops = [MFGProblem(grid, T, Nt, s["sigma"], gaussian(grid, s["mean0"], s["std0"]),
                       coupling=QuadraticInteraction(LQ_BETA[k, k]),
                       terminal_cost=QuadraticTerminalCost(s["q"], s["target"])) for k, s in enumerate(LQ_POPULATIONS)]
    cross = CrossCoupling({(0, 1): QuadraticInteraction(LQ_BETA[0, 1]), (1, 0): QuadraticInteraction(LQ_BETA[1, 0])})
    return MultiPopulationProblem(pops, coupling=cross, names=["P", "Q"], name="lq-two-populations")


def lq_oracle(t, T=1.0) -> dict:
    pops = LQ_POPULATIONS
    return analytic.lq_multipop(t, T=T, sigma=[s["sigma"] for s in pops], q=[s["q"] for s in pops],
                                x_target=[s["target"] for s in pops], mean0=[s["mean0"] for s in pops],
                                var0=[s["std0"] ** 2 for s in pops], beta=LQ_BETA)


def lq_errors(result, T=1.0) -> dict:
    """Largest errors over t and both populations of the means and variances against ``lq_oracle``."""
    ref = lq_oracle(result.t, T)
    mean = result.mean()[..., 0]
    var = np.stack([r.covariance()[:, 0, 0] for r in result.populations])
    return {"mean": float(np.abs(mean - ref["mean"]).max()), "variance": float(np.abs(var - ref["var"]).max())}


@register
class LQTwoPopulations(Case):
    name = "lq-two-populations"
    description = "two LQ populations interacting through their means (own and cross stiffness) vs coupled Riccati ODEs"
    has_oracle = True
    params = (*grid_params(100, 100), *solver_params())
    # first-order accuracy budget at the default grid (h = 0.1, dt = 0.01); orders checked by validate
    tolerances = {"mean": 0.035, "variance": 0.05}

    def build(self, p):
        return lq_problem(p["N"], p["Nt"]), {"tol": p["tol"], "method": p["method"]}

    def errors(self, result, p):
        return lq_errors(result)
