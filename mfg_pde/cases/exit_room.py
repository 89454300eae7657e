"""`exit-room`: a crowd leaves a 2-D room through a door, around an obstacle, with congestion.

    room [0, 1]^2, exit side: the right wall x = 1 (``bc = [("reflecting", "exit"), "reflecting"]``),
    exit cost 0 there (``MFGProblem(exit_cost=...)``), reflecting walls elsewhere;
    running cost  1 + V(x, y) + kappa m          (time spent + obstacles + congestion, LocalPower(kappa, 1))
    u(T) = stay_cost                             (agents still inside at T pay it)
    m0 = Gaussian blob on the far (left) side of the room.

The solver's exits are whole sides, so the door is made by the potential: V = V_wall on a barrier
strip x > 1 - wall along the exit wall except the door gap |y - door_y| < door/2 (agents can still
cross the barrier at a high running cost -- a wall that is expensive, not impossible, to climb), and
V = V_obs on an obstacle block (a pillar in front of the door).  Agents leave mainly through the door
and split around the pillar; congestion spreads them.

No closed form: the checks are the outflow balance  mass(t_n) + outflow(0, t_n) = mass(0)  to
round-off and the convergence of the coupling loop; the evacuated fraction (and the times by which
half and 90 % of the crowd have left) are reported.  The obstacle and barrier mask is attached to
the result (``result.obstacle``, saved to HDF5) for the quick-look plot.
"""

from __future__ import annotations

import numpy as np

from ..model.couplings import LocalPower
from ..model.densities import gaussian
from ..model.grid import Grid
from ..model.problem import MFGProblem
from .base import Case, CaseError, Check, Param, register
from .params import grid_params, solver_params


def room_regions(p, grid):
    """Boolean masks (obstacle block, wall barrier) on the grid for the parameters p."""
    X, Y = grid.mesh()
    block = (np.abs(X - p["obs_x"]) <= 0.5 * p["obs_w"]) & (np.abs(Y - p["obs_y"]) <= 0.5 * p["obs_h"])
    barrier = (X >= 1.0 - p["wall"]) & (np.abs(Y - p["door_y"]) >= 0.5 * p["door"])
    return block, barrier


@register
class ExitRoom(Case):
    name = "exit-room"
    description = ("2-D crowd evacuation: exit wall with a door, obstacle, congestion kappa m (outflow balance, "
                   "evacuated fraction)")
    has_oracle = False
    ndim = 2
    params = (
        Param("sigma", 0.2, "noise intensity", positive=True),
        Param("kappa", 1.0, "congestion strength (F = kappa m)", nonnegative=True),
        Param("T", 1.5, "horizon", positive=True),
        Param("stay_cost", 1.0, "terminal cost of agents still in the room at T", nonnegative=True),
        Param("exit_cost", 0.0, "cost paid on leaving through the exit wall (Dirichlet value of u)"),
        Param("door", 0.25, "width of the door gap in the exit wall", positive=True),
        Param("door_y", 0.5, "centre of the door along the exit wall"),
        Param("wall", 0.08, "thickness of the barrier strip along the exit wall (outside the door)", positive=True),
        Param("V_wall", 100.0, "potential of the barrier strip", nonnegative=True),
        Param("V_obs", 100.0, "potential of the obstacle block", nonnegative=True),
        Param("obs_x", 0.6, "obstacle centre x"),
        Param("obs_y", 0.5, "obstacle centre y"),
        Param("obs_w", 0.12, "obstacle width (x)", nonnegative=True),
        Param("obs_h", 0.3, "obstacle height (y)", nonnegative=True),
        Param("x0", 0.25, "crowd centre x"),
        Param("y0", 0.5, "crowd centre y"),
        Param("std0", 0.07, "crowd standard deviation", positive=True),
        *grid_params(64, 60),
        *solver_params(1e-8, choices=("picard", "fictitious-play", "anderson", "auto")),  # no Newton with exits
    )
    #: the outflow balance holds to round-off (relative to the initial mass)
    balance_tol = 1e-11

    def validate_params(self, p):
        for key in ("x0", "y0"):
            if not 3 * p["std0"] <= p[key] <= 1 - 3 * p["std0"]:
                raise CaseError(f"crowd centre {key} = {p[key]} with std0 = {p['std0']}: the blob must lie inside "
                                "the room (3 std from the walls); move it or reduce std0")
        if not 0 < p["door_y"] < 1 or p["door"] >= 1:
            raise CaseError(f"door_y = {p['door_y']}, door = {p['door']}: the door must lie on the wall y in (0, 1)")
        if p["N"] < 8:
            raise CaseError(f"N = {p['N']}: need at least 8 cells per axis")

    def build(self, p):
        grid = Grid([(0.0, 1.0), (0.0, 1.0)], p["N"], bc=[("reflecting", "exit"), "reflecting"])
        block, barrier = room_regions(p, grid)
        if p["V_wall"] > 0 and not barrier.any():
            raise CaseError(f"wall = {p['wall']} is thinner than half a cell at N = {p['N']}: no barrier, the whole "
                            "wall would be the door; thicken the wall or refine the grid")
        if barrier[-1].all():
            raise CaseError(f"door = {p['door']} is narrower than a cell at N = {p['N']}: no door in the exit wall; "
                            "widen the door or refine the grid")
        V = 1.0 + p["V_obs"] * block + p["V_wall"] * (barrier & ~block)
        m0 = gaussian(grid, (p["x0"], p["y0"]), (p["std0"], p["std0"]))
        if (m0 * block).sum() * grid.cell_volume > 1e-3:
            raise CaseError("the crowd starts inside the obstacle; move x0/y0 or the obstacle")
        coupling = LocalPower(p["kappa"], 1.0) if p["kappa"] > 0 else None
        problem = MFGProblem(grid, p["T"], p["Nt"], p["sigma"], m0, coupling=coupling, potential=V,
                             terminal_cost=np.full(grid.shape, p["stay_cost"]), exit_cost=p["exit_cost"],
                             name=self.name)
        return problem, {"tol": p["tol"], "method": p["method"]}

    def decorate(self, result, problem, p):
        block, barrier = room_regions(p, problem.grid)
        result.obstacle = block | barrier

    def checks(self, result, p):
        out = result.outflow
        if out is None:
            return [Check("outflow balance", float("nan"), self.balance_tol, "no outflow attached")]
        note = (f"evacuated {out.evacuated_fraction:.4f} by T = {p['T']:g}; half by t = "
                f"{out.time_to_evacuate(0.5):.3g}, 90% by t = {out.time_to_evacuate(0.9):.3g}")
        return [Check("outflow balance (mass + outflow - mass0)", out.balance_error, self.balance_tol, note)]
