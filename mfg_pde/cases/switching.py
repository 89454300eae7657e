"""Types of agents with switching (docs/method.md, section 'Several populations').

`lq-switching-time`: two types of linear-quadratic agents on the line that switch between the types at the rates of a
2 x 2 matrix Q and interact through the mean of all agents (``total_coupling=QuadraticInteraction(beta)``), each
type with its own noise and terminal target.  The closed form ``oracles.analytic.lq_switching`` (coupled Riccati
equations for the value coefficients and the moment equations of the types) gives the types' masses, means and
variances and their value functions; the checks are the errors of the means, variances and of u_k(0, x) on
|x| <= 2 (away from the walls of [-L, L], where the quadratic value bends to meet the reflecting condition),
each with its observed order under refinement (``validate``), and the masses of the types, which the scheme
takes exactly (the switching part of a step is exp(dt Q)): to round-off, at every level.

`switching-long-time`: the time-dependent solver with switching against the stationary one.  Two types with
potentials (x + 0.5)^2/2 and (x - 1)^2/2, switching rates 0.5 and 0.3, attracted to the mean of all agents, form
an ergodic stationary game (``StationaryProblem``, solved by Newton); its finite-horizon version
(``model.horizon.time_dependent``) starts from Gaussians at +-2 with equal shares and ends with the stationary
values.  The checks: the density at T against the stationary density and the ergodic constant against the slope
of the value over the second half, each with its observed order.  The two discrete stationary states differ by
the O(dt) splitting of the switching step (without switching they coincide: the time-dependent step's fixed
point solves the stationary equations exactly), so both errors are first order in dt.
"""

from __future__ import annotations

import functools

import numpy as np

from ..model.couplings import QuadraticInteraction
from ..model.densities import gaussian
from ..model.grid import Grid
from ..model.multipop import MultiPopulationProblem
from ..model.problem import MFGProblem, QuadraticTerminalCost
from ..oracles import analytic
from .base import Case, Check, Param, register
from .params import grid_params, solver_params

#: the switching rates (type 0 -> 1 at rate 1, 1 -> 0 at rate 2), the mean-field stiffness and the two types
LQ_Q = np.array([[-1.0, 1.0], [2.0, -2.0]])
LQ_BETA = 1.0
LQ_SHARES = (0.5, 0.5)
LQ_TYPES = ({"sigma": 0.8, "mean0": -1.0, "std0": 0.5, "q": 1.0, "target": 1.0},
            {"sigma": 0.5, "mean0": 0.5, "std0": 0.4, "q": 2.0, "target": -1.0})
#: half-width of the window where u_k(0, x) is compared with the closed form
U_WINDOW = 2.0


def lq_switching_problem(N, Nt, T=1.0, L=5.0) -> MultiPopulationProblem:
    """The two switching LQ types of the module docstring on [-L, L] with N cells and Nt steps."""
    grid = Grid([(-L, L)], N)
    types = [MFGProblem(grid, T, Nt, s["sigma"], gaussian(grid, s["mean0"], s["std0"]),
                        terminal_cost=QuadraticTerminalCost(s["q"], s["target"])) for s in LQ_TYPES]
    return MultiPopulationProblem(types, names=["A", "B"], name="lq-switching-time", switching=LQ_Q,
                                  total_coupling=QuadraticInteraction(LQ_BETA), shares=LQ_SHARES)


def lq_switching_oracle(t, T=1.0) -> dict:
    return analytic.lq_switching(t, T=T, Q=LQ_Q, sigma=[s["sigma"] for s in LQ_TYPES], q=[s["q"] for s in LQ_TYPES],
                                 x_target=[s["target"] for s in LQ_TYPES], shares0=LQ_SHARES,
                                 mean0=[s["mean0"] for s in LQ_TYPES], var0=[s["std0"] ** 2 for s in LQ_TYPES],
                                 beta=LQ_BETA)


def lq_switching_errors(result, T=1.0) -> dict:
    """Largest errors over t and both types of the means and variances, and of u_k(0, x) on |x| <= U_WINDOW,
    against ``lq_switching_oracle``; "mass": the largest error of the types' masses (round-off)."""
    ref = lq_switching_oracle(result.t, T)
    x = result.grid.axes[0]
    win = np.abs(x) <= U_WINDOW
    u0 = np.stack([ref["a"][k, 0] * x ** 2 / 2 + ref["b"][k, 0] * x + ref["c"][k, 0] for k in range(len(LQ_TYPES))])
    masses = np.stack([r.mass() for r in result.populations])
    var = np.stack([r.covariance()[:, 0, 0] for r in result.populations])
    return {"mean": float(np.abs(result.mean()[..., 0] - ref["mean"]).max()),
            "variance": float(np.abs(var - ref["var"]).max()),
            "u(0, x)": float(np.abs(result.u[:, 0][:, win] - u0[:, win]).max()),
            "mass": float(np.abs(masses - ref["mass"]).max())}


@register
class LQSwitching(Case):
    name = "lq-switching-time"
    description = ("two LQ types switching at rates Q, interacting through the mean of all agents, vs coupled Riccati "
                   "and moment ODEs")
    has_oracle = True
    # no newton: the joint Newton does not carry the switching terms
    params = (*grid_params(100, 50), *solver_params(choices=("picard", "fictitious-play", "anderson", "auto")))
    # first-order accuracy budget at the default grid (h = 0.1, dt = 0.02); orders checked by validate
    tolerances = {"mean": 0.03, "variance": 0.06, "u(0, x)": 0.13}
    #: the types' masses are exact up to round-off (the switching step is exp(dt Q))
    mass_tolerance = 1e-13

    def build(self, p):
        return lq_switching_problem(p["N"], p["Nt"]), {"tol": p["tol"], "method": p["method"]}

    def errors(self, result, p):
        e = lq_switching_errors(result)
        e.pop("mass")
        return e

    def checks(self, result, p):
        rows = super().checks(result, p)
        rows.append(Check("type masses (exact switching step)", lq_switching_errors(result)["mass"],
                          self.mass_tolerance, "max over t of |w_k(t_n) - (p0 exp(t_n Q))_k|"))
        rows.append(Check("total mass", result.mass_error(), 1e-13, "max_n |M(t_n) - M(0)| / M(0)"))
        return rows


#: the two-type ergodic game of switching-long-time: switching rates, potentials' centres, noise, stiffness of the
#: attraction to the mean of all agents; the time-dependent run starts from Gaussians at +-2 with equal shares
LONG_Q = np.array([[-0.5, 0.5], [0.3, -0.3]])
LONG_CENTRES = (-0.5, 1.0)


@functools.lru_cache(maxsize=4)
def long_time_stationary(N, L=5.0):
    """(stationary problem, its solution) of the two-type ergodic game on [-L, L] with N cells."""
    from ..model.stationary import StationaryProblem
    from ..newton.stationary import solve_stationary

    grid = Grid([(-L, L)], N)
    pots = [(lambda c: (lambda x: 0.5 * (x - c) ** 2))(c) for c in LONG_CENTRES]
    sp = StationaryProblem(grid, sigma=0.8, coupling=QuadraticInteraction(1.0), potential=pots, discount=0.0,
                           switching=LONG_Q, name="switching-long-time")
    return sp, solve_stationary(sp, tol=1e-12)


def long_time_problem(N, Nt, T, L=5.0):
    """The time-dependent game of the stationary one (``model.horizon.time_dependent``), from Gaussians at +-2
    with equal shares, ending with the stationary values."""
    from ..model.horizon import time_dependent

    sp, st = long_time_stationary(N, L)
    m0 = np.stack([0.5 * gaussian(sp.grid, 2.0, 0.5), 0.5 * gaussian(sp.grid, -2.0, 0.5)])
    return time_dependent(sp, T, Nt, m0, terminal_cost=st.u, name="switching-long-time")


@register
class SwitchingLongTime(Case):
    """The time-dependent solver with switching against the stationary solver with switching (module docstring of
    ``model.horizon``): two types, ergodic, started far from the stationary state."""

    name = "switching-long-time"
    description = ("long-time limit of the time-dependent game of two switching types vs the ergodic stationary "
                   "solution (density at T, ergodic constant)")
    has_oracle = True
    params = (*grid_params(200, 60), Param("T", 12.0, "horizon", positive=True),
              *solver_params(tol=1e-11, choices=("picard", "fictitious-play", "anderson", "auto")))
    # the discrete stationary states of the two solvers differ by the O(dt) splitting of the switching step;
    # the transient from the start decays like exp(-0.37 t) (measured), 1e-2 of the error at T = 12
    tolerances = {"m(T)": 0.025, "lambda": 0.005}

    def build(self, p):
        return long_time_problem(p["N"], p["Nt"], p["T"]), {"tol": p["tol"], "method": p["method"]}

    def errors(self, result, p):
        """Max |m_k(T) - m_k| / max m over the types, and |lambda_T - lambda| with lambda_T the slope of the
        m-weighted value over the second half, (u(T/2) - u(T)) / (T/2) (u_k(t) ~ u_k + lambda (T - t))."""
        _sp, st = long_time_stationary(p["N"])
        h = len(result.t) // 2
        dx = float(np.prod(result.grid.spacing))
        u = result.u
        lam = float(((u[:, h] - u[:, -1]) * st.m).sum() * dx / (result.t[-1] - result.t[h]))
        return {"m(T)": float(np.abs(result.m[:, -1] - st.m).max() / st.m.max()), "lambda": abs(lam - st.lam)}
