"""`crowd-congestion`: a crowd leaves a 2-D room through a door, slowed down by congestion in the Hamiltonian.

    room [0, 1]^2 with reflecting walls; one door in the right wall x = 1 (the faces with
    |y - door_y| <= door/2, ``Door(("x", "hi"), Interval(...))``), exit cost ``exit_cost`` there;
    Hamiltonian  H(p, m) = |p|^2 / (2 (c0 + c m)^alpha)    (``Congestion``: moving through a crowd is dearer,
                                                            the control cost is (c0 + c m)^alpha |a|^2 / 2)
    running cost 1 + kappa m                               (time spent, optional local congestion cost)
    u(T) = stay_cost                                       (agents still inside at T pay it)
    m0 = Gaussian blob on the far (left) side of the room.

No closed form.  The checks: the outflow balance  mass(t_n) + outflow(0, t_n) = mass(0)  to round-off; that
the door carries all the outflow; and that congestion slows the evacuation: the same problem with c = 0
(the crowd moves at the free cost c0^alpha |a|^2 / 2) is solved too, and the congested crowd must spend
longer in the room: its mean time in the room, int_0^T mass(t) dt (= int (1 - evacuated fraction) dt), must
exceed the free crowd's by at least 0.01, and the time by which half has left by at least two steps.  (The
congested cumulative outflow is not below the free one at every instant: congestion spreads the crowd, and
its front reaches the door a little earlier.)  Both outflow
histories are in ``result.case_report.arrays`` (``evacuated_congested``, ``evacuated_free``, over
``result.t``) and go to HDF5 with the result.
"""

from __future__ import annotations

import numpy as np

from ..model.couplings import LocalPower
from ..model.densities import gaussian
from ..model.hamiltonians import Congestion
from ..model.problem import MFGProblem
from ..result import CaseReport
from .base import Case, CaseError, Check, Param, register
from .exit_room import ROOM_PARAMS, check_room, crowd_params, outflow_checks, room_grid
from .params import grid_params, solver_params


@register
class CrowdCongestion(Case):
    name = "crowd-congestion"
    description = ("2-D crowd evacuation through a door with congestion in the Hamiltonian |p|^2/(2 (c0 + c m)^alpha) "
                   "(outflow balance, door outflow, slower than the uncongested crowd)")
    has_oracle = False
    ndim = 2
    params = (
        Param("sigma", 0.2, "noise intensity", positive=True),
        Param("c0", 1.0, "cost factor in an empty region (Congestion c0)", positive=True),
        Param("c", 0.5, "congestion strength (Congestion c)", nonnegative=True),
        Param("alpha", 1.0, "exponent of c0 + c m, in [0, 1]", nonnegative=True),
        Param("kappa", 0.0, "local running cost kappa m besides the time spent", nonnegative=True),
        *ROOM_PARAMS,
        *crowd_params(0.35, 0.08),
        *grid_params(48, 60),
        *solver_params(1e-8, choices=("picard", "fictitious-play", "anderson", "auto")),  # no Newton with doors
    )
    #: the outflow balance holds to round-off (relative to the initial mass)
    balance_tol = 1e-11

    def validate_params(self, p):
        if p["alpha"] > 1:
            raise CaseError(f"alpha = {p['alpha']} must lie in [0, 1]")
        check_room(p)

    def problem(self, p, c):
        """The room with congestion strength c (c = 0: the free crowd)."""
        grid, door = room_grid(p)
        m0 = gaussian(grid, (p["x0"], p["y0"]), (p["std0"], p["std0"]))
        coupling = LocalPower(p["kappa"], 1.0) if p["kappa"] > 0 else None
        return MFGProblem(grid, p["T"], p["Nt"], p["sigma"], m0, coupling=coupling, potential=np.ones(grid.shape),
                          terminal_cost=np.full(grid.shape, p["stay_cost"]), name=self.name, doors=[door],
                          hamiltonian=Congestion(p["c0"], c, p["alpha"]))

    def build(self, p):
        return self.problem(p, p["c"]), {"tol": p["tol"], "method": p["method"]}

    def decorate(self, result, problem, p):
        """Solve the free crowd (c = 0, same data and solver) and keep both outflow histories."""
        from ..diagnostics.outflow import attach_outflow
        from ..iterate.solve import solve

        free_pb = self.problem(p, 0.0)
        free = solve(free_pb, tol=p["tol"], method=p["method"])
        attach_outflow(free, free_pb)
        self._free = free
        mass0 = result.outflow.mass0 if result.outflow is not None else np.nan
        result.case_report = CaseReport(arrays={
            "evacuated_congested": result.outflow.cumulative / mass0 if result.outflow is not None else np.array([]),
            "evacuated_free": free.outflow.cumulative / free.outflow.mass0})

    def checks(self, result, p):
        out = result.outflow
        if out is None:
            return [Check("outflow balance", float("nan"), self.balance_tol, "no outflow attached")]
        free = self._free
        note = (f"evacuated {out.evacuated_fraction:.4f} by T = {p['T']:g} (free crowd {free.outflow.evacuated_fraction:.4f}); "
                f"half by t = {out.time_to_evacuate(0.5):.3g} (free {free.outflow.time_to_evacuate(0.5):.3g})")
        checks = outflow_checks(out, self.balance_tol, note)
        checks.append(Check("free crowd (c = 0) converged", 0.0 if free.converged else 1.0, 0.0, free.status))
        checks.append(Check("free crowd: outflow balance", free.outflow.balance_error, self.balance_tol,
                            f"c = 0, {free.iterations} iterations"))
        rep = result.case_report.arrays
        if p["c"] > 0:
            t = result.t
            stay_c = float(np.trapezoid(1.0 - rep["evacuated_congested"], t))
            stay_f = float(np.trapezoid(1.0 - rep["evacuated_free"], t))
            checks.append(Check("slower: mean time in the room, congested - free", stay_c - stay_f, 0.01,
                                f"int_0^T (1 - evacuated) dt: {stay_c:.4f} congested, {stay_f:.4f} free; must be "
                                ">= 0.01", at_least=True))
            half_c, half_f = out.time_to_evacuate(0.5), free.outflow.time_to_evacuate(0.5)
            checks.append(Check("slower: half-evacuation time, congested - free", float(half_c - half_f),
                                2 * (t[1] - t[0]), f"{half_c:.3g} congested, {half_f:.3g} free; must be >= 2 dt",
                                at_least=True))
        return checks
