"""`exit-room`: a crowd leaves a 2-D room through a door, around a pillar, with congestion.

    room [0, 1]^2 with reflecting walls; one door in the right wall x = 1: the faces with
    |y - door_y| <= door/2 (``Door(("x", "hi"), Interval(...))``), exit cost ``exit_cost`` there;
    a pillar (a block of solid cells, ``obstacles=``) in front of the door: its faces are walls;
    running cost  1 + kappa m                    (time spent + congestion, LocalPower(kappa, 1))
    u(T) = stay_cost                             (agents still inside at T pay it)
    m0 = Gaussian blob on the far (left) side of the room (zero on the pillar).

The walls are real (zero flux; ``model.geometry``): no mass enters the pillar and all the outflow leaves
through the door.  ``obstacle=penalty`` instead makes the pillar a region of high running cost V_obs that
agents could still cross (the former model of obstacles, kept for comparison).

No closed form: the checks are the outflow balance  mass(t_n) + outflow(0, t_n) = mass(0)  to
round-off, that the door carries all of it (the mass lost equals the door's outflow), that no mass is
ever on the solid cells, and the convergence of the coupling loop; the evacuated fraction (and the times
by which half and 90 % of the crowd have left) are reported.  The pillar is attached to the result
(``result.obstacle``, saved to HDF5) for the quick-look plot.
"""

from __future__ import annotations

import numpy as np

from ..model.couplings import LocalPower
from ..model.densities import gaussian, normalise
from ..model.geometry import Door, Interval, Rectangle
from ..model.grid import Grid
from ..model.problem import MFGProblem
from .base import Case, CaseError, Check, Param, register
from .params import grid_params, solver_params


def pillar(p) -> Rectangle:
    """The pillar (obstacle block) of the parameters p."""
    return Rectangle((p["obs_x"] - 0.5 * p["obs_w"], p["obs_y"] - 0.5 * p["obs_h"]),
                     (p["obs_x"] + 0.5 * p["obs_w"], p["obs_y"] + 0.5 * p["obs_h"]))


def room_door(p) -> Door:
    """The door in the right wall for the parameters p."""
    return Door(("x", "hi"), Interval(p["door_y"] - 0.5 * p["door"], p["door_y"] + 0.5 * p["door"]),
                cost=p["exit_cost"], name="door")


#: the parameters of the room every room case shares: horizon, costs, the door in the right wall
ROOM_PARAMS = (
    Param("T", 1.5, "horizon", positive=True),
    Param("stay_cost", 1.0, "terminal cost of agents still in the room at T", nonnegative=True),
    Param("exit_cost", 0.0, "cost paid on leaving through the door (Dirichlet value of u)"),
    Param("door", 0.25, "width of the door in the right wall x = 1", positive=True),
    Param("door_y", 0.5, "centre of the door along the right wall"),
)


def crowd_params(x0: float, std0: float) -> tuple:
    """The crowd's start: a Gaussian blob at (x0, 0.5) with standard deviation std0 (the defaults)."""
    return (Param("x0", x0, "crowd centre x"), Param("y0", 0.5, "crowd centre y"),
            Param("std0", std0, "crowd standard deviation", positive=True))


def check_room(p) -> None:
    """The parameters every room case shares: the crowd (x0, y0, std0) inside the unit room, the door (door_y,
    door) on the right wall, N >= 8 cells per axis; CaseError naming the parameter otherwise."""
    for key in ("x0", "y0"):
        if not 3 * p["std0"] <= p[key] <= 1 - 3 * p["std0"]:
            raise CaseError(f"crowd centre {key} = {p[key]} with std0 = {p['std0']}: the blob must lie inside "
                            "the room (3 std from the walls); move it or reduce std0")
    if not 0 < p["door_y"] < 1 or p["door"] >= 1:
        raise CaseError(f"door_y = {p['door_y']}, door = {p['door']}: the door must lie on the wall y in (0, 1)")
    if p["N"] < 8:
        raise CaseError(f"N = {p['N']}: need at least 8 cells per axis")


def outflow_checks(out, tol, note) -> list:
    """The room's outflow checks: mass + outflow = mass0, and all of the mass lost left through the door,
    mass(0) - mass(t_n) = door outflow(0, t_n), both to tol relative to the initial mass."""
    checks = [Check("outflow balance (mass + outflow - mass0)", out.balance_error, tol, note)]
    door = out.door_cumulative("door") if out.per_door is not None else np.full_like(out.mass, np.nan)
    lost = out.mass[0] - out.mass
    checks.append(Check("door carries the outflow (mass lost - door outflow)",
                        float(np.max(np.abs(lost - door)) / out.mass[0]), tol, f"door outflow {door[-1]:.4f} of mass 1"))
    return checks


def room_grid(p):
    """(grid, door): the unit room, N cells per axis with reflecting walls, and its door (the only exit);
    CaseError when the door is narrower than a cell."""
    grid = Grid([(0.0, 1.0), (0.0, 1.0)], p["N"])
    door = room_door(p)
    if not door.resolve(grid)[2].any():
        raise CaseError(f"door = {p['door']} is narrower than a cell at N = {p['N']}: no door in the wall; "
                        "widen the door or refine the grid")
    return grid, door


@register
class ExitRoom(Case):
    name = "exit-room"
    description = ("2-D crowd evacuation: a door in the wall, a pillar (solid walls), congestion kappa m (outflow "
                   "balance, all outflow through the door, no mass in the walls, evacuated fraction)")
    has_oracle = False
    ndim = 2
    params = (
        Param("sigma", 0.2, "noise intensity", positive=True),
        Param("kappa", 1.0, "congestion strength (F = kappa m)", nonnegative=True),
        *ROOM_PARAMS,
        Param("obstacle", "wall", "the pillar: solid cells (wall) or a running-cost penalty V_obs (penalty)",
              choices=("wall", "penalty")),
        Param("V_obs", 100.0, "potential of the pillar with obstacle=penalty", nonnegative=True),
        Param("obs_x", 0.6, "obstacle centre x"),
        Param("obs_y", 0.5, "obstacle centre y"),
        Param("obs_w", 0.12, "obstacle width (x)", nonnegative=True),
        Param("obs_h", 0.3, "obstacle height (y)", nonnegative=True),
        *crowd_params(0.25, 0.07),
        *grid_params(64, 60),
        *solver_params(1e-8, choices=("picard", "fictitious-play", "anderson", "auto")),  # no Newton with doors
    )
    #: the outflow balance holds to round-off (relative to the initial mass)
    balance_tol = 1e-11

    def validate_params(self, p):
        check_room(p)
        if p["obstacle"] == "wall" and not (p["obs_w"] > 0 and p["obs_h"] > 0):
            raise CaseError(f"obs_w = {p['obs_w']}, obs_h = {p['obs_h']}: a solid pillar needs a positive size; "
                            "use obstacle=penalty with V_obs=0 for a room without pillar")

    def build(self, p):
        grid, door = room_grid(p)
        block = pillar(p).mask(grid) if p["obs_w"] > 0 and p["obs_h"] > 0 else np.zeros(grid.shape, dtype=bool)
        if p["obstacle"] == "wall" and not block.any():
            raise CaseError(f"the pillar ({p['obs_w']} x {p['obs_h']}) covers no cell centre at N = {p['N']}; "
                            "enlarge it or refine the grid")
        m0 = gaussian(grid, (p["x0"], p["y0"]), (p["std0"], p["std0"]))
        if (m0 * block).sum() * grid.cell_volume > 1e-3:
            raise CaseError("the crowd starts inside the obstacle; move x0/y0 or the obstacle")
        coupling = LocalPower(p["kappa"], 1.0) if p["kappa"] > 0 else None
        if p["obstacle"] == "wall":
            m0 = normalise(grid, m0 * ~block)   # the density's far tail on the pillar cells is removed
            V, obstacles = np.ones(grid.shape), block
        else:
            V, obstacles = 1.0 + p["V_obs"] * block, None
        problem = MFGProblem(grid, p["T"], p["Nt"], p["sigma"], m0, coupling=coupling, potential=V,
                             terminal_cost=np.full(grid.shape, p["stay_cost"]), name=self.name,
                             obstacles=obstacles, doors=[door])
        return problem, {"tol": p["tol"], "method": p["method"]}

    def decorate(self, result, problem, p):
        result.obstacle = pillar(p).mask(problem.grid) if p["obs_w"] > 0 and p["obs_h"] > 0 \
            else np.zeros(problem.grid.shape, dtype=bool)

    def checks(self, result, p):
        out = result.outflow
        if out is None:
            return [Check("outflow balance", float("nan"), self.balance_tol, "no outflow attached")]
        note = (f"evacuated {out.evacuated_fraction:.4f} by T = {p['T']:g}; half by t = "
                f"{out.time_to_evacuate(0.5):.3g}, 90% by t = {out.time_to_evacuate(0.9):.3g}")
        checks = outflow_checks(out, self.balance_tol, note)
        if p["obstacle"] == "wall":
            solid = result.obstacle
            inside = float(np.abs(result.m[:, solid]).max()) if solid is not None and solid.any() else float("nan")
            checks.append(Check("no mass in the walls (max m on solid cells)", inside, 0.0,
                                "the pillar's faces are zero-flux walls"))
        return checks
