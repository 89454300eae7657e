"""The result of a mean-field-game solve: fields on the space-time grid plus convergence record.

``MFGResult`` holds the fields (u, m, and alpha = -grad u, computed on demand), the convergence record,
and typed optional fields for what some solves also produce:

* ``outflow`` (``OutflowHistory``): grids with exit sides -- the outflow and the outflow balance;
* ``planning`` (``PlanningRecord``): planning solves -- the energy E, the kinetic cost, the terminal
  mismatch, the Sinkhorn sweeps, the congestion continuation;
* ``obstacle``: a case's obstacle mask on the grid, for plots;
* ``hjb_solution``: the HJB solution that transported m (its operator-split states in 2-D/3-D), a solver
  internal used for warm starts, the exploitability and the outflow;
* ``case_report`` (``CaseReport``): what a registered case computed besides the solve (its closed-form
  errors, a study's table, ...).

``extras`` is the dict of the older layout, kept as a deprecated read-only view of these fields.
"""

from __future__ import annotations

import types
import warnings
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from . import io, io_multi
from .model.grid import BC_EXIT, BC_PERIODIC, Grid, prolong


@dataclass
class OutflowHistory:
    """Outflow record of one solution (mass units: integrals over the grid, cell volume included).

    t : (Nt+1,) time levels.
    mass : (Nt+1,) mass(t_n) of the density.
    per_side : (Nt, ndim, 2) outflow of step n (t_n -> t_{n+1}) through side (axis, lo/hi); 0 on sides
        that are not exits.
    cumulative : (Nt+1,) outflow(0, t_n) = sum_{j < n} per_side[j].sum() (0 at t_0).
    sides : labels of the exit sides, e.g. ["x hi"] (a side with doors is listed too).
    per_door : (Nt, number of doors) outflow of step n through each door (``MFGProblem(doors=...)``), or None
        without doors; its columns add up to the outflow of the doors' sides in per_side.
    doors : the doors' names, one per column of per_door.
    """

    t: np.ndarray
    mass: np.ndarray
    per_side: np.ndarray
    cumulative: np.ndarray
    sides: list = field(default_factory=list)
    per_door: np.ndarray | None = None
    doors: list = field(default_factory=list)

    def door_cumulative(self, door) -> np.ndarray:
        """(Nt+1,) outflow(0, t_n) through one door (its name or its index in ``doors``)."""
        if self.per_door is None or not self.doors:
            raise ValueError("this outflow record has no doors")
        j = door if isinstance(door, (int, np.integer)) else (self.doors.index(door) if door in self.doors else -1)
        if not 0 <= j < len(self.doors):
            raise ValueError(f"no door {door!r}; the doors are {self.doors}")
        return np.concatenate([[0.0], np.cumsum(np.asarray(self.per_door)[:, j])])

    @property
    def mass0(self) -> float:
        return float(self.mass[0])

    @property
    def balance(self) -> np.ndarray:
        """(Nt+1,) mass(t_n) + outflow(0, t_n) - mass(0): zero up to round-off."""
        return self.mass + self.cumulative - self.mass[0]

    @property
    def balance_error(self) -> float:
        """max_n |mass(t_n) + outflow(0, t_n) - mass(0)| / mass(0)."""
        return float(np.max(np.abs(self.balance)) / self.mass[0])

    @property
    def evacuated(self) -> np.ndarray:
        """(Nt+1,) fraction of the initial mass that has left by t_n: outflow(0, t_n) / mass(0)."""
        return self.cumulative / self.mass[0]

    @property
    def evacuated_fraction(self) -> float:
        """Fraction of the initial mass that has left by T."""
        return float(self.evacuated[-1])

    def time_to_evacuate(self, fraction: float) -> float:
        """First time level t_n with evacuated(t_n) >= fraction (nan if never reached)."""
        hit = np.nonzero(self.evacuated >= fraction)[0]
        return float(self.t[hit[0]]) if hit.size else float("nan")

    @property
    def through(self) -> str:
        """The exits as text: 'x hi', or with doors "doors 'main', 'door 1' (sides x hi, y lo)"."""
        return self.exits_text(self.sides, self.doors)

    @staticmethod
    def exits_text(sides, doors=()) -> str:
        """``through`` for given side labels and door names (e.g. a file's /outflow attributes)."""
        sides, doors = list(sides or []), list(doors or [])
        text = ", ".join(sides) or "no exit"
        if doors:
            names = ", ".join(repr(str(d)) for d in doors)
            return f"door{'s' if len(doors) > 1 else ''} {names} (side{'s' if len(sides) > 1 else ''} {text})"
        return text

    def summary(self) -> str:
        return (f"evacuated {self.evacuated_fraction:.4f} of the mass by t = {self.t[-1]:.3g} through "
                f"{self.through}; outflow balance error {self.balance_error:.2e}")


@dataclass
class PlanningRecord:
    """What a planning solve reports besides u and m (``MFGResult.planning``; ``mfg_pde.planning``).

    energy_E : control energy E = int_0^T E|alpha_t|^2 dt = int int m |alpha|^2 dx dt of the returned
        pair, *without* the factor 1/2 (docs/method.md, 'Energy convention').  Sinkhorn solver: centred
        alpha = -grad u, left Riemann sum with time_scheme "euler", trapezoid with the second-order schemes; Newton (congestion)
        solver: the scheme's upwind sums with the congested control -u_x / (1 + c m).
    kinetic_cost : the kinetic part of the agents' cost, int int m L(alpha) dx dt with the Lagrangian of
        the Hamiltonian: E / 2 for the quadratic Hamiltonian (Sinkhorn solver, exactly ``energy_E / 2``),
        int int m (1 + c m) |alpha|^2 / 2 with congestion c (Newton solver; E / 2 at c = 0).  Not the total
        cost: the interaction, potential and terminal terms are not in it.
    terminal_mismatch : h sum |m(T) - m1|, the L1 distance of the returned terminal density to the target
        (Sinkhorn: that of the last Sinkhorn sweep; Newton: 0 by construction).
    sinkhorn_iterations_total : Sinkhorn sweeps over all outer iterations (Sinkhorn solver; None otherwise;
        the per-outer-iteration counts are ``history["sinkhorn_iterations"]``).
    congestion_c : the congestion parameter c of H = |p|^2 / (2 (1 + c m)) (Newton solver; None otherwise).
    stages : the c values the continuation solved, in order (Newton solver; empty otherwise).
    min_density : min m over the space-time grid (Newton solver; None otherwise).
    positive : whether min m >= -negative_tol max |m| (Newton solver; None otherwise).
    initial : how the Newton solver's start pair was made (None otherwise).
    running_cost : the running part of the agents' cost, int int m (V + F(x, m)) dx dt, with the same time
        rule as energy_E (None in files written before it existed).
    total_cost : kinetic_cost + running_cost, the expected cost of a representative agent along the
        returned pair (a planning problem has no terminal cost: m(T) = m1 is a constraint).
    """

    energy_E: float
    kinetic_cost: float
    terminal_mismatch: float
    sinkhorn_iterations_total: int | None = None
    congestion_c: float | None = None
    stages: list = field(default_factory=list)
    min_density: float | None = None
    positive: bool | None = None
    initial: str | None = None
    running_cost: float | None = None
    total_cost: float | None = None

    def legacy_items(self) -> dict:
        """The record under the key names of the old ``MFGResult.extras`` dict (``cost_E_half`` = E/2;
        the Newton solver's ``c``, ``cost_kinetic``, ``stages``, ``min_density``, ``positive``, ``initial``)."""
        out = {"terminal_mismatch": self.terminal_mismatch, "energy_E": self.energy_E,
               "cost_E_half": self.energy_E / 2}
        if self.sinkhorn_iterations_total is not None:
            out["sinkhorn_iterations_total"] = self.sinkhorn_iterations_total
        if self.congestion_c is not None:
            out.update({"min_density": self.min_density, "positive": self.positive, "c": self.congestion_c,
                        "stages": self.stages, "initial": self.initial, "cost_kinetic": self.kinetic_cost})
        return out


@dataclass
class CaseReport:
    """What a registered case computed besides its solve (``MFGResult.case_report``; ``mfg_pde.cases``).

    Cases that need more subclass it (``chaos.ChaosReport``, ``diffusion.SGMReport``,
    ``planning.IAvsMFReport``, ``demand_response.DemandResponseReport``).  ``errors``, ``table``,
    ``columns`` and ``arrays`` are written to HDF5 (``/case_report``) and read back into a plain ``CaseReport``; the
    subclasses' other fields (study objects: scenarios, closed-form routes, ...) are not.

    errors : quantity -> error against the case's closed form, for cases whose run computes them along
        with the fields (sgm-ou, path-integral-h, chaos); the other cases compute them from the result
        (``Case.errors``).
    table : a study's numeric table, one row per configuration (path-integral-h, demand-response-sweep).
    columns : the names of the table's columns.
    arrays : name -> numeric array of a study's further outputs (path-integral-h: ``x`` and ``densities``,
        the final grid density of every table row); written to HDF5 (``/case_report/arrays``).
    """

    errors: dict = field(default_factory=dict)
    table: np.ndarray | None = field(default=None, repr=False)
    columns: tuple = ()
    arrays: dict = field(default_factory=dict, repr=False)

    #: field name -> its key in the old ``MFGResult.extras`` dict, where they differ
    legacy_keys: ClassVar[dict] = {}

    def legacy_items(self) -> dict:
        """The report under the key names of the old ``MFGResult.extras`` dict (fields that are set)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (isinstance(value, (dict, list, tuple)) and not value):
                continue
            out[self.legacy_keys.get(f.name, f.name)] = value
        return out


def legacy_view(items: dict, owner: str):
    """A read-only mapping of the old ``extras`` keys (the deprecated ``extras`` properties): warns once
    per access that the typed fields replace it."""
    warnings.warn(f"{owner}.extras is deprecated: use the typed fields (see the {owner} docstring)",
                  DeprecationWarning, stacklevel=3)
    return types.MappingProxyType(dict(items))


def gradient(grid: Grid, u: np.ndarray) -> np.ndarray:
    """Centred-difference gradient of u shaped (..., *grid); returns (..., *grid, ndim).

    Interior: (u_{i+1} - u_{i-1}) / 2h.  Periodic axes wrap; reflecting walls use the mirror ghost
    u_{-1} = u_0 (so the wall value is the one-sided half difference, consistent with zero flux); exit
    sides use the one-sided difference (u_1 - u_0)/h (linear extrapolation: the result does not carry
    the exit cost).
    """
    u = np.asarray(u, dtype=float)
    lead = u.ndim - grid.ndim
    out = np.empty(u.shape + (grid.ndim,))
    for k, (h, code) in enumerate(zip(grid.spacing, grid.bc_codes)):
        ax = lead + k
        if code == BC_PERIODIC:
            up = np.roll(u, -1, axis=ax)
            dn = np.roll(u, 1, axis=ax)
        else:
            n = u.shape[ax]
            idx_up = np.minimum(np.arange(n) + 1, n - 1)
            idx_dn = np.maximum(np.arange(n) - 1, 0)
            up = np.take(u, idx_up, axis=ax)
            dn = np.take(u, idx_dn, axis=ax)
        out[..., k] = (up - dn) / (2.0 * h)
        if code == BC_EXIT:
            lo_side, hi_side = grid.bc_side_codes[k]
            edge = [(0, 0, 1, lo_side), (-1, -2, -1, hi_side)]
            for i, a, b, side_code in edge:
                if side_code == BC_EXIT:
                    sl = [slice(None)] * out.ndim
                    sl[ax] = i
                    sl[-1] = k
                    out[tuple(sl)] = (np.take(u, b, axis=ax) - np.take(u, a, axis=ax)) / h
    return out


@dataclass(repr=False)
class MFGResult:
    """Solution of an MFG on a grid.

    Attributes
    ----------
    grid : the spatial grid.
    t : time levels, shape (Nt+1,).
    u : value function, shape (Nt+1, *grid.shape).
    m : density, shape (Nt+1, *grid.shape); each level integrates to the initial mass (minus the
        mass that has left through exit sides: ``outflow``, see ``diagnostics.outflow``).
    converged : whether the coupling loop met its tolerance.
    status : one line saying how the loop ended ("converged", "max_iter", "diverged: ...").
    iterations : number of coupled iterations performed.
    history : per-iteration records, one 1-D array per quantity (see ``iterate.fixed_point``).
    params : problem / case parameters (JSON-able).
    solver : solver options (JSON-able).
    case : name of the registered case that produced it, if any.
    outflow : ``OutflowHistory`` of a result on a grid with exit sides (outflow per step and side, the
        balance mass(t_n) + outflow(0, t_n) = mass(0)); None without exits or when not computed
        (``diagnostics.outflow.attach_outflow``).  Saved to HDF5.
    planning : ``PlanningRecord`` of a planning solve (energy E, kinetic cost, terminal mismatch, Sinkhorn
        sweeps, congestion continuation); None for other solves.  Saved to HDF5.
    obstacle : boolean mask on the grid of a case's obstacle region (exit-room), drawn by the plots; None
        when there is none.  Saved to HDF5.
    hjb_solution : the ``fd.hjb.HJBSolution`` that transported m -- u, the operator-split intermediate
        states of each step (2-D/3-D; what the FP, the outflow and the exploitability of m need) and the
        per-step Newton counts.  A solver internal (warm starts, ``diagnostics.exploitability``,
        ``diagnostics.outflow``); set by ``mfg_pde.solve``; not saved to HDF5.  ``split_states`` is its
        ``states``.
    case_report : ``CaseReport`` of a registered case whose run computed more than the solve (closed-form
        errors of direct cases, a study's table, the mean-field reference of ia-vs-mf, ...); None
        otherwise.  Its errors and table are saved to HDF5.
    problem : the ``MFGProblem`` / ``PlanningProblem`` that was solved (set by the solvers; for a result
        read from a file, the problem ``load_problem`` rebuilds from its /problem group, or None).  ``save`` writes its data on the grid (``/problem``).
    alpha : (property) the feedback, -grad u by default (computed once and cached); solvers whose control
        is not -grad u (congestion: -u_x / (1 + c m)) set it.

    ``extras`` (deprecated) is a read-only dict view of these fields under the key names of the former
    free-form dict (``outflow``, ``energy_E``, ``cost_E_half``, ``terminal_mismatch``, ``hjb_solution``,
    ``errors``, ...); use the fields.
    """

    grid: Grid
    t: np.ndarray
    u: np.ndarray
    m: np.ndarray
    converged: bool = False
    status: str = "unknown"
    iterations: int = 0
    history: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    solver: dict = field(default_factory=dict)
    case: str | None = None
    outflow: OutflowHistory | None = None
    planning: PlanningRecord | None = None
    obstacle: np.ndarray | None = field(default=None, repr=False)
    hjb_solution: object | None = field(default=None, repr=False, compare=False)   # fd.hjb.HJBSolution (a layer up)
    case_report: CaseReport | None = field(default=None, repr=False, compare=False)
    problem: object | None = field(default=None, repr=False, compare=False)   # the MFGProblem solved
    _alpha: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        name = self.case if self.case is not None else (self.params or {}).get("name")
        method = (self.solver or {}).get("method") if isinstance(self.solver, dict) else None
        status = str(self.status)
        if len(status) > 120:
            status = status[:117] + "..."
        Nt = int(np.shape(self.t)[0]) - 1 if np.ndim(self.t) else "?"
        return (f"MFGResult(case={_short(name)!r}, grid={tuple(self.grid.shape)}, Nt={Nt}, "
                f"method={_short(method)!r}, status={status!r}, iterations={self.iterations}, "
                f"residual={self.final_residual:.3e})")

    # ------------------------------------------------------------------ derived fields
    @property
    def alpha(self) -> np.ndarray:
        """Optimal feedback, shape (Nt+1, *grid, ndim): -grad u (centred differences, ``gradient``), or
        -dH/dp(grad u[, m]) per axis for the problem's non-quadratic Hamiltonian (``problem.hamiltonian``),
        unless a solver set another control (congestion planning: -u_x / (1 + c m))."""
        if self._alpha is None:
            p = gradient(self.grid, self.u)
            ham = getattr(self.problem, "hamiltonian", None)
            if ham is not None and not ham.is_quadratic:
                p = ham.dH(p, self.m[..., None]) if ham.depends_on_m else ham.dH(p)
            self._alpha = -p
        return self._alpha

    @alpha.setter
    def alpha(self, value) -> None:
        value = np.asarray(value, dtype=float)
        want = np.shape(self.u) + (self.grid.ndim,)
        if value.shape != want:
            raise ValueError(f"alpha has shape {value.shape}, expected {want} (len(t), *grid.shape, ndim)")
        self._alpha = value

    @property
    def split_states(self) -> np.ndarray | None:
        """(Nt, ndim-1, ...) operator-split states of ``hjb_solution`` (None when it is not attached)."""
        return None if self.hjb_solution is None else self.hjb_solution.states

    @property
    def extras(self):
        """Deprecated: a read-only dict view of the typed fields under the old key names (``outflow``,
        ``obstacle``, ``hjb_solution``; planning: ``terminal_mismatch``, ``energy_E``, ``cost_E_half`` (E/2),
        ``sinkhorn_iterations_total``, Newton: ``c``, ``stages``, ``cost_kinetic``, ...; the case report's
        ``errors``, ``table``, ...).  Built on each access; use the fields instead."""
        items = {}
        if self.outflow is not None:
            items["outflow"] = self.outflow
        if self.obstacle is not None:
            items["obstacle"] = self.obstacle
        if self.hjb_solution is not None:
            items["hjb_solution"] = self.hjb_solution
        if self.planning is not None:
            items.update(self.planning.legacy_items())
        if self.case_report is not None:
            items.update(self.case_report.legacy_items())
        return legacy_view(items, "MFGResult")

    @property
    def dt(self) -> float:
        return float(self.t[1] - self.t[0])

    def mass(self) -> np.ndarray:
        """Total mass per time level."""
        return self.grid.integrate(self.m)

    def mean(self) -> np.ndarray:
        """Mean position per time level, shape (Nt+1, ndim)."""
        return self.grid.mean(self.m)

    def covariance(self) -> np.ndarray:
        """Covariance per time level, shape (Nt+1, ndim, ndim)."""
        return self.grid.covariance(self.m)

    def mass_error(self) -> float:
        """max_n |mass(t_n) - mass(0)| / mass(0)  (with exit sides: the mass that left, see ``balance_error``)."""
        mass = self.mass()
        return float(np.max(np.abs(mass - mass[0])) / mass[0])

    def balance_error(self) -> float:
        """Conservation error: max_n |mass(t_n) + outflow(0, t_n) - mass(0)| / mass(0) when the outflow
        is attached (exit sides), else the mass error; nan for exits without an attached outflow."""
        if self.outflow is not None:
            return float(self.outflow.balance_error)
        if self.grid.has_exits:
            return float("nan")
        return self.mass_error()

    def evacuated_fraction(self) -> float:
        """Fraction of the initial mass that has left through the exits by T (0 without exits)."""
        if self.outflow is not None:
            return float(self.outflow.evacuated_fraction)
        mass = self.mass()
        return float(1.0 - mass[-1] / mass[0]) if self.grid.has_exits else 0.0

    @property
    def final_residual(self) -> float:
        res = self.history.get("residual")
        return float(res[-1]) if res is not None and len(res) else float("nan")

    def _equilibrium_terms(self) -> str:
        """'HJB residual X, Nash gap Y, ' from the last record (each where finite)."""
        terms = []
        social = isinstance(self.solver, dict) and self.solver.get("objective") == "social"
        gap = "gap in the planner's system" if social else "Nash gap"   # model.social: a certificate there
        for key, label in (("hjb_residual", "HJB residual"), ("exploitability", gap)):
            values = self.history.get(key)
            if values is not None and len(values) and np.isfinite(values[-1]):
                terms.append(f"{label} {float(values[-1]):.3e}, ")
        return "".join(terms)

    def _setup_terms(self) -> str:
        """'grid 200 x 100, Nt 50, method auto (newton won)'."""
        shape = " x ".join(str(n) for n in self.grid.shape)
        solver = self.solver if isinstance(self.solver, dict) else {}
        method = solver.get("method", "?")
        winner = solver.get("winner")
        if winner not in (None, "none", method):
            method = f"{method} ({winner} won)"
        objective = ", social optimum (objective='social')" if solver.get("objective") == "social" else ""
        return f"grid {shape}, Nt {len(self.t) - 1}, method {method}{objective}"

    def summary(self) -> str:
        """One line: status, iterations, final residual, HJB residual and Nash gap (last record, where
        finite), mass error (or outflow balance), wall time; the grid, Nt and the method; a note on
        uniqueness where the coupling is not known to be monotone."""
        h = self.history
        wall = float(h["wall_time"][-1]) if "wall_time" in h and len(h["wall_time"]) else float("nan")
        exits = self.grid.has_exits or (self.outflow is not None and len(self.outflow.sides) > 0)
        if exits and self.outflow is not None:
            cons = (f"outflow balance error {self.balance_error():.2e}, evacuated "
                    f"{self.evacuated_fraction():.4f}")
        elif self.grid.has_exits:
            cons = f"evacuated {self.evacuated_fraction():.4f} (exits; outflow balance not computed)"
        else:
            cons = f"mass error {self.mass_error():.2e}"
        line = (f"{self.status}: {self.iterations} iterations, residual {self.final_residual:.3e}, "
                f"{self._equilibrium_terms()}{cons}, wall time {wall:.3f} s; {self._setup_terms()}")
        monotone = self.solver.get("coupling_monotone") if isinstance(self.solver, dict) else None
        if monotone == "no":
            line += ("; coupling not monotone: uniqueness is not guaranteed (where there are several "
                     "equilibria, the start m_init selects one)")
        elif monotone == "unknown":
            line += "; coupling monotonicity unknown: the equilibrium may not be unique"
        return line

    def to_xarray(self):
        """The result as an ``xarray.Dataset`` (xarray is optional: ``pip install mfg_pde[xarray]``).

        Dimensions and coordinates: ``t`` (time levels), the grid's axes ``x`` (``y``, ``z``: cell centres),
        ``component`` (the axes again: alpha's components), ``iteration`` (1-based index of the history's
        records; the history's own "iteration" record when it has one) and ``<key>_entry`` for a history
        record of another length; with an outflow ``step``, ``axis``, ``side``; with a case table ``row`` and
        ``column``.  Variables: ``m``, ``u`` (t, *axes), ``alpha`` (t, *axes, component: -grad u, or the
        solver's control), one variable per history record (named by its key; ``history_<key>`` where the key
        is already taken), the outflow (``outflow_mass``, ``outflow_cumulative``, ``outflow_evacuated``,
        ``outflow_balance`` on t; ``outflow_per_side`` on (step, axis, side); with doors ``outflow_per_door`` on (step, door), the door names the
        ``door`` coordinate), ``obstacle`` (uint8 mask),
        ``case_table`` and the case report's arrays as ``case_<name>`` (on ``case_<name>_dim_<k>``).  Every variable and coordinate has ``long_name`` and ``units`` attributes.

        Attributes are netCDF-safe (``to_netcdf`` writes them as they are): ``mfg_pde_version``, ``case``
        ("" when none), ``params``, ``solver``, ``grid`` (JSON strings), ``converged`` (int8 0/1),
        ``iterations``, ``status``, ``final_residual``; the planning record as ``planning_<field>`` (numbers,
        ``planning_positive`` int8, ``planning_stages`` JSON), the case's errors as ``case_errors`` (JSON),
        the outflow's ``outflow_sides`` (JSON), ``outflow_balance_error`` and ``outflow_evacuated_fraction``.

        ``ds.to_netcdf(path, engine="h5netcdf")`` writes it; ``mp.load`` reads the files of ``save``, which
        xarray opens too: ``xr.open_dataset(path, engine="h5netcdf")`` (the fields), ``group="history"``,
        ``group="outflow"``, ``group="problem"``, ...
        """
        return _to_xarray(self)

    def save(self, path, problem=None) -> None:
        """Write a self-describing HDF5 file (see ``mfg_pde.io``); with the problem (``problem``, default
        ``self.problem``) its data on the grid, from which ``mfg_pde.load_problem`` rebuilds it."""
        io.save_result(self, path, problem=problem)


def _require_xarray():
    try:
        import xarray
    except ImportError as exc:
        raise ImportError("MFGResult.to_xarray needs the optional package xarray: pip install mfg_pde[xarray] "
                          "(from a source checkout: pip install \".[xarray]\"; or pip install xarray h5netcdf) "
                          f"[{exc}]") from None
    return xarray


_HISTORY_LONG = {"residual": "relative fixed-point residual ||Phi(m) - m||_1 / ||m||_1",
                 "hjb_residual": "relative HJB residual of the candidate pair",
                 "fp_residual": "relative FP residual of the candidate pair",
                 "mass_error": "relative mass error of the candidate density",
                 "exploitability": "Nash gap (exploitability) of the candidate pair",
                 "wall_time": "wall time since the start of the solve"}


def _attr_value(value):
    """A netCDF-safe attribute value: bool -> int8, None -> "", numbers and strings as they are, anything
    else (dicts, lists) -> a JSON string."""
    if isinstance(value, (bool, np.bool_)):
        return np.int8(bool(value))
    if value is None:
        return ""
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    return io._dumps(value)


def _to_xarray(result):
    """``MFGResult.to_xarray`` (see there)."""
    xr = _require_xarray()
    grid = result.grid
    names = list(grid.axis_names)
    t = np.asarray(result.t, dtype=float)
    coords = {"t": ("t", t, {"long_name": "time", "units": "1"}),
              "component": ("component", np.array(names, dtype=object),
                            {"long_name": "component of the feedback vector alpha"})}
    for name, ax in zip(names, grid.axes):
        coords[name] = (name, np.asarray(ax, dtype=float), {"long_name": io._AXIS_LONG[name], "units": "1"})
    dims = ["t"] + names
    data = {
        "m": (dims, np.asarray(result.m, dtype=float), {"long_name": "population density m(t, x)", "units": "1"}),
        "u": (dims, np.asarray(result.u, dtype=float), {"long_name": "value function u(t, x)", "units": "1"}),
        "alpha": (dims + ["component"], np.asarray(result.alpha, dtype=float),
                  {"long_name": "optimal feedback control alpha (-grad u unless the solver set another)",
                   "units": "1"}),
    }
    attrs = {"mfg_pde_version": io._version(), "case": "" if result.case is None else str(result.case),
             "params": io._dumps(result.params or {}), "solver": io._dumps(result.solver or {}),
             "grid": io._dumps(grid.describe()), "converged": np.int8(bool(result.converged)),
             "iterations": int(result.iterations), "status": str(result.status),
             "final_residual": float(result.final_residual)}

    history = {str(k): io._history_array(v) for k, v in (result.history or {}).items()}
    lengths = [a.shape[0] for a in history.values() if a.ndim == 1]
    main = history["residual"].shape[0] if "residual" in history and history["residual"].ndim == 1 else \
        (max(set(lengths), key=lengths.count) if lengths else None)
    own = history.get("iteration")
    if own is not None and own.ndim == 1 and own.shape[0] == main and own.dtype.kind in "biuf":
        if own.dtype.kind == "f" and np.all(np.isfinite(own)) and np.all(own == np.round(own)):
            own = own.astype(np.int64)   # the loops record it as a float
        coords["iteration"] = ("iteration", own, {"long_name": "iteration of the coupling loop", "units": "1"})
        history.pop("iteration")
    elif main is not None:
        coords["iteration"] = ("iteration", np.arange(1, main + 1, dtype=np.int64),
                               {"long_name": "index (1-based) of the iterations of the coupling loop", "units": "1"})
    for key, arr in history.items():
        if arr.ndim != 1:
            dim_names = [f"{key}_dim_{k}" for k in range(arr.ndim)]
        elif arr.shape[0] == main:
            dim_names = ["iteration"]
        else:
            dim_names = [f"{key}_entry"]
            coords[dim_names[0]] = (dim_names[0], np.arange(1, arr.shape[0] + 1, dtype=np.int64),
                                    {"long_name": f"index (1-based) of the entries of history {key}", "units": "1"})
        name = key if key not in data and key not in coords else f"history_{key}"
        var_attrs = {"long_name": f"history: {_HISTORY_LONG.get(key, key)}"}
        if arr.dtype.kind in "biuf":
            var_attrs["units"] = "s" if key.endswith("time") else "1"
        data[name] = (dim_names, arr, var_attrs)

    out = result.outflow
    if out is not None:
        for key in ("mass", "cumulative", "evacuated", "balance"):
            data[f"outflow_{key}"] = ("t", np.asarray(getattr(out, key), dtype=float),
                                      {"long_name": io._OUTFLOW_LONG[key], "units": "1"})
        per_side = np.asarray(out.per_side, dtype=float)
        if per_side.ndim == 3 and per_side.shape[1:] == (grid.ndim, 2):
            coords["step"] = ("step", np.arange(per_side.shape[0], dtype=np.int64),
                              {"long_name": "step n: t_n -> t_{n+1}", "units": "1"})
            coords["axis"] = ("axis", np.array(names, dtype=object), {"long_name": "axis of the side"})
            coords["side"] = ("side", np.array(["lo", "hi"], dtype=object), {"long_name": "side of the axis"})
            data["outflow_per_side"] = (("step", "axis", "side"), per_side,
                                        {"long_name": "outflow of step n (t_n -> t_{n+1}) through side (axis, "
                                                      "lo/hi); 0 on non-exit sides", "units": "1"})
        per_door = None if out.per_door is None else np.asarray(out.per_door, dtype=float)
        if per_door is not None and per_door.ndim == 2 and per_door.shape[1] == len(out.doors):
            if "step" not in coords:
                coords["step"] = ("step", np.arange(per_door.shape[0], dtype=np.int64),
                                  {"long_name": "step n: t_n -> t_{n+1}", "units": "1"})
            if coords["step"][1].shape[0] == per_door.shape[0]:
                coords["door"] = ("door", np.array([str(d) for d in out.doors], dtype=object),
                                  {"long_name": "name of the door"})
                data["outflow_per_door"] = (("step", "door"), per_door,
                                            {"long_name": "outflow of step n (t_n -> t_{n+1}) through each door",
                                             "units": "1"})
        attrs["outflow_sides"] = io._dumps(list(out.sides))
        attrs["outflow_balance_error"] = float(out.balance_error)
        attrs["outflow_evacuated_fraction"] = float(out.evacuated_fraction)
    if result.obstacle is not None:
        data["obstacle"] = (names, np.asarray(result.obstacle).astype(np.uint8),
                            {"long_name": "obstacle region of the case (1 inside)", "units": "1"})
    if result.planning is not None:
        for f in fields(result.planning):
            value = getattr(result.planning, f.name)
            if value is None:
                continue
            attrs[f"planning_{f.name}"] = _attr_value(value)
    report = result.case_report
    if report is not None:
        if report.errors:
            attrs["case_errors"] = io._dumps(report.errors)
        if report.table is not None:
            table = np.asarray(report.table, dtype=float)
            columns = [str(c) for c in (report.columns or ())]
            if table.ndim == 2:
                coords["row"] = ("row", np.arange(table.shape[0], dtype=np.int64),
                                 {"long_name": "row of the case's table", "units": "1"})
                coords["column"] = (("column", np.array(columns, dtype=object), {"long_name": "column of the case's table"})
                                    if len(columns) == table.shape[1] else
                                    ("column", np.arange(table.shape[1], dtype=np.int64),
                                     {"long_name": "column of the case's table", "units": "1"}))
                data["case_table"] = (("row", "column"), table,
                                      {"long_name": "the case's table, one row per configuration", "units": "1"})
            else:
                data["case_table"] = ([f"case_table_dim_{k}" for k in range(table.ndim)], table,
                                      {"long_name": "the case's table", "units": "1"})
        for key, value in (getattr(report, "arrays", None) or {}).items():
            arr = np.asarray(value, dtype=float)
            data[f"case_{key}"] = ([f"case_{key}_dim_{k}" for k in range(arr.ndim)], arr,
                                   {"long_name": f"the case's output {key}", "units": "1"})
    ds = xr.Dataset(data_vars={k: xr.Variable(*v) for k, v in data.items()},
                    coords={k: xr.Variable(*v) for k, v in coords.items()})
    ds.attrs.update(attrs)
    return ds


def _short(value, width: int = 60):
    """value (a name) for the repr: None as is, anything else as a string of at most width characters."""
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def load(path) -> MFGResult:
    """Read a file written by :meth:`MFGResult.save` back into an :class:`MFGResult` (``mp.load``); files
    of the older layout (before the typed fields) load too (``io.read_record``).  With a ``/problem`` group
    ``result.problem`` is the problem rebuilt from it (``load_problem``; ``mp.solve(mp.load(path).problem)``
    solves it again), or None when it cannot be rebuilt (a user-defined coupling, an array not stored, ...)
    or the file has no /problem.  A multi-population file (``io_multi``) gives a ``MultiPopulationResult``
    (``load_multi``)."""
    if io_multi.is_multi(path):
        return load_multi(path)
    rec = io.read_record(path)
    try:
        grid = Grid(rec["grid"]["bounds"], rec["grid"]["shape"], rec["grid"]["bc"])
    except (KeyError, TypeError, ValueError, NotImplementedError) as exc:
        raise io.incomplete(path, f"root attribute 'grid' does not describe a grid ({exc})") from None
    t, m, u = rec["t"], rec["m"], rec["u"]
    want = (t.shape[0],) + grid.shape
    if m.shape != want or u.shape != want:
        raise io.incomplete(path, f"m {m.shape} / u {u.shape} do not match (len(t), *grid) = {want}")
    outflow = rec["outflow"]
    if outflow is not None:
        outflow = OutflowHistory(t=np.asarray(t, dtype=float), **outflow)
    planning = None if rec["planning"] is None else PlanningRecord(**rec["planning"])
    report = None if rec["case_report"] is None else CaseReport(**rec["case_report"])
    result = MFGResult(grid=grid, t=t, u=u, m=m, converged=rec["converged"], status=rec["status"],
                       iterations=rec["iterations"], history=rec["history"], params=rec["params"],
                       solver=rec["solver"], case=rec["case"], outflow=outflow, planning=planning,
                       obstacle=rec["obstacle"], case_report=report)
    if rec["alpha"] is not None:
        try:
            result.alpha = rec["alpha"]
        except ValueError as exc:
            raise io.incomplete(path, f"dataset 'alpha': {exc}") from None
    if rec.get("has_problem"):
        try:
            result.problem = load_problem(path)
        except Exception:  # noqa: BLE001 -- ProblemRebuildError, a damaged /problem group, ...: the result loads
            result.problem = None
    return result


@dataclass
class WarmStart:
    """The fields of a previous result on a problem's grid and time levels (``initial_fields``).

    m, u : (Nt+1, *grid) density (its level 0 scaled to the problem's initial mass) and value function.
    interpolated : whether they were interpolated (another grid, Nt or T) or taken as they are.
    note : one line saying where they came from (recorded as ``result.solver["init"]``).
    """

    m: np.ndarray
    u: np.ndarray
    interpolated: bool
    note: str


def _is_path(obj) -> bool:
    import os

    return isinstance(obj, (str, bytes, os.PathLike))


def initial_fields(init, problem, name: str = "init") -> WarmStart:
    """A warm start for ``problem`` from ``init``: an ``MFGResult`` or the path of a result file (``save``).

    On the same grid (bounds and cells) with the same Nt and T the result's m and u are used as they are;
    otherwise they are interpolated linearly (``model.grid.prolong``) onto the problem's cell centres and
    time levels -- in time on the normalised times t / T, so a result for another horizon gives the same
    profile in relative time -- and the density is scaled so that its first level carries the problem's
    initial mass (interpolation does not conserve it).  Initial guesses only: the solve decides the answer.

    Raises TypeError for an ``init`` that is neither, ValueError (naming ``name``) when the grids have
    different numbers of axes or bounds, and ``io.ResultFileError`` for a path that is not a result file.
    """
    source = ""
    if _is_path(init):
        import os

        path = os.fsdecode(init) if isinstance(init, bytes) else os.fspath(init)
        try:
            init = load(path)
        except io.ResultFileError as exc:
            raise exc.__class__(f"{name}={path!r}: {exc}") from None
        source = f"{path}: "
    if not isinstance(init, MFGResult):
        raise TypeError(f"{name}: expected an MFGResult or the path of a saved result file (result.save / "
                        f"mfg-pde run --out), got {type(init).__name__}" +
                        ("; an initial density array goes to m_init=" if name == "init" else ""))
    res, grid = init, problem.grid
    Nt, T = problem.Nt, float(problem.T)
    if res.grid.ndim != grid.ndim:
        raise ValueError(f"{name}: the result is on a {res.grid.ndim}-D grid, the problem's grid is {grid.ndim}-D; "
                         "a warm start needs a result of the same dimension")
    if not np.allclose(res.grid.bounds, grid.bounds, rtol=1e-12, atol=0.0):
        raise ValueError(f"{name}: the result's grid has bounds {res.grid.bounds}, the problem's {grid.bounds}; "
                         "a warm start interpolates between grids on the same domain")
    t_old = np.asarray(res.t, dtype=float)
    m_old, u_old = np.asarray(res.m, dtype=float), np.asarray(res.u, dtype=float)
    shape = (t_old.shape[0],) + res.grid.shape
    if m_old.shape != shape or u_old.shape != shape:
        raise ValueError(f"{name}: the result's m {m_old.shape} / u {u_old.shape} do not match its grid and "
                         f"time levels {shape}")
    T_old = float(t_old[-1] - t_old[0])
    same = res.grid.shape == grid.shape and t_old.shape[0] == Nt + 1 and abs(T_old - T) <= 1e-12 * T
    if same:
        return WarmStart(m_old, u_old, False, f"{source}a result on the same grid {grid.shape} and Nt {Nt}")
    s_old = (t_old - t_old[0]) / T_old
    s_new = np.asarray(problem.t, dtype=float) / T
    m = np.maximum(prolong(res.grid, grid, m_old, t_old=s_old, t_new=s_new), 0.0)
    u = prolong(res.grid, grid, u_old, t_old=s_old, t_new=s_new)
    mass = float(grid.integrate(m[0]))
    if mass > 0:
        m *= float(grid.integrate(problem.m0)) / mass
    what = f"grid {res.grid.shape} -> {grid.shape}, Nt {t_old.shape[0] - 1} -> {Nt}"
    if abs(T_old - T) > 1e-12 * T:
        what += f", T {T_old:g} -> {T:g} (relative time)"
    return WarmStart(m, u, True, f"{source}a result interpolated ({what})")


class ProblemRebuildError(ValueError):
    """A result file's problem cannot be rebuilt (the message names what: a user-defined coupling, a terminal
    cost that depends on m, an array that was too large to store, a file without /problem)."""


def _rebuild_coupling(spec, kernels, path):
    from .model import couplings as C
    from .model.schedules import PiecewiseConstant

    def schedule(beta):
        if isinstance(beta, dict) and "breaks" in beta and "values" in beta:
            return PiecewiseConstant(beta["breaks"], beta["values"])
        if isinstance(beta, (int, float)):
            return float(beta)
        raise ProblemRebuildError(f"{path}: the coupling's schedule {beta!r} cannot be rebuilt")

    kind = spec.get("type") if isinstance(spec, dict) else None
    if isinstance(spec, dict) and spec.get("rebuildable") is False:
        raise ProblemRebuildError(f"{path}: the coupling {spec.get('class', kind)} cannot be rebuilt from the file: "
                                  f"{spec.get('why', 'not a built-in coupling')}; build the problem in code "
                                  "(the file holds its arrays under /problem)")
    if kind == "sum":
        parts = [_rebuild_coupling(p, kernels, path) for p in spec["parts"]]
        return parts[0] if len(parts) == 1 else C.SumCoupling(parts)
    if kind == "scaled":
        return C.ScaledCoupling(_rebuild_coupling(spec["coupling"], kernels, path), spec["scale"])
    if kind == "local-power":
        return C.LocalPower(spec["kappa"], spec["p"])
    if kind == "local-log":
        return C.LocalLog(spec["kappa"], spec.get("shift", 0.0))
    if kind == "mean-attraction":
        return C.MeanAttraction(schedule(spec["kappa"]), spec["s"])
    if kind == "quadratic-interaction":
        return C.QuadraticInteraction(schedule(spec["beta"]))
    if kind == "fixed-guidance":
        centre = spec["centre"]
        return C.FixedGuidance(schedule(spec["beta"]), centre=np.asarray(centre, dtype=float)
                               if isinstance(centre, list) else centre)
    if kind == "kernel-interaction":
        name = spec.get("kernel_values")
        if name not in kernels:
            raise ProblemRebuildError(f"{path}: the kernel of the KernelInteraction ({spec.get('kernel')}) was not "
                                      "stored (too large, or a file written before /problem existed)")
        values, spacing = kernels[name]
        return C.KernelInteraction(C.SampledKernel(values, spacing, name=f"sampled {spec.get('kernel')}"),
                                   strength=spec["strength"])
    raise ProblemRebuildError(f"{path}: the coupling {kind!r} is not one of the built-in couplings; it cannot be "
                              "rebuilt from the file")


def load_problem(path):
    """Rebuild the problem a result file was solved for (``mp.load_problem``): an ``MFGProblem`` or
    ``PlanningProblem`` with the stored T, Nt, sigma, grid, exit costs, obstacle mask and doors, m0 (and m1),
    array-valued terminal
    cost, the potential and drift as stored (arrays, or ``SampledInTime`` at the times the solvers use them),
    and the coupling when it is a built-in one (LocalPower, LocalLog, QuadraticInteraction and FixedGuidance
    with a constant or piecewise-constant beta and a fixed centre, KernelInteraction through its stored kernel
    values, sums and ScaledCoupling), and the Hamiltonian (Power, BoundedControl, Congestion; Separable when
    h and dh are module-level functions).  Solving it again gives the stored result to round-off.  Raises
    ProblemRebuildError (a ValueError) naming what cannot be rebuilt: a user-defined coupling, a terminal cost
    that depends on m, an array that was not stored (over ``io.PROBLEM_ARRAY_LIMIT``), a file without
    /problem (written before it existed, or saved without its problem)."""
    from .model.problem import Drift, MFGProblem, PlanningProblem, SampledInTime

    rec = io.read_problem_record(path)
    if rec is None:
        raise ProblemRebuildError(f"{path}: the file has no /problem group (written by an earlier version, or "
                                  "saved without the problem); the description in its 'params' attribute is "
                                  "all there is")
    skipped = set(rec["skipped"])
    for name in ("m0", "m1", "potential", "drift", "terminal_cost", "obstacles"):
        if name in skipped:
            raise ProblemRebuildError(f"{path}: /problem/{name} was not stored (larger than the limit "
                                      f"{io.PROBLEM_ARRAY_LIMIT} bytes); the problem cannot be rebuilt")
    if rec["terminal_depends_on_m"]:
        raise ProblemRebuildError(f"{path}: the terminal cost depends on m (a user callable G(x, m)); the file "
                                  "holds only its values at the final density (/problem/terminal_cost)")
    try:
        g = rec["grid"]
        grid = Grid(g["bounds"], g["shape"], g["bc"])
    except (KeyError, TypeError, ValueError, NotImplementedError) as exc:
        raise io.incomplete(path, f"attribute 'grid' of /problem does not describe a grid ({exc})") from None
    coupling = None if rec["coupling"] is None else _rebuild_coupling(rec["coupling"], rec["kernels"], path)
    potential = None
    if rec["potential"] is not None:
        pv = rec["potential"]
        if pv["form"] == "sampled":
            potential = SampledInTime(pv["times"], pv["values"], name=f"sampled {pv['callable'] or 'V'}")
        else:
            potential = pv["values"]
    drift = None
    if rec["drift"] is not None:
        dv = rec["drift"]
        drift = Drift(SampledInTime(dv["times"], dv["values"], name="sampled drift", components=True),
                      time_dependent=dv["time_dependent"])
    common = {"coupling": coupling, "potential": potential, "drift": drift, "name": rec["name"]}
    ham = None
    if rec.get("hamiltonian") is not None:
        from .model.hamiltonians import from_description
        try:
            ham = from_description(rec["hamiltonian"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProblemRebuildError(f"{path}: the Hamiltonian cannot be rebuilt: {exc}") from None
    if rec["kind"] == "PlanningProblem":
        return PlanningProblem(grid, rec["T"], rec["Nt"], rec["sigma"], rec["m0"], rec["m1"], **common)
    terminal = None if rec["terminal_cost"] is None else rec["terminal_cost"]["values"]
    exit_cost = rec["exit_costs"] if rec["exit_costs"] is not None else 0.0
    doors = []
    for d in rec.get("doors") or []:   # each door's faces as a mask of its side (C order of the side's cells)
        try:
            from .model.geometry import Door

            side_shape = tuple(n for a, n in enumerate(grid.shape) if a != d["axis"])
            faces = np.zeros(int(np.prod(side_shape)), dtype=bool)
            faces[np.asarray(d["faces"], dtype=np.int64)] = True
            doors.append(Door((int(d["axis"]), int(d["side"])), faces.reshape(side_shape) if grid.ndim > 1 else None,
                              cost=d["cost"], name=d["name"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise io.incomplete(path, f"attribute 'doors' of /problem does not describe doors ({exc})") from None
    return MFGProblem(grid, rec["T"], rec["Nt"], rec["sigma"], rec["m0"], terminal_cost=terminal,
                      exit_cost=exit_cost, obstacles=rec.get("obstacles"), doors=doors or None, hamiltonian=ham,
                      **common)


# ---------------------------------------------------------------------------------- several populations
@dataclass
class MultiPopulationResult:
    """The solution of a multi-population game (``model.multipop``).

    ``result.populations[k]`` (also ``result[k]`` or ``result["name"]``) is an ``MFGResult`` of population k (its
    u, m, alpha, mean, mass, its HJB solution and its population problem); the stacked fields ``u``, ``m``
    (K, Nt+1, *grid) and ``alpha`` (K, Nt+1, *grid, ndim) have the population axis first.  The convergence
    record (``converged``, ``status``, ``iterations``, ``history``, ``solver``) is the joint loop's.  ``save``
    writes one HDF5 file with a population dimension (``io_multi``); ``mfg_pde.load`` reads it back
    (``load_multi``)."""

    grid: Grid
    t: np.ndarray
    names: list
    populations: list
    converged: bool = False
    status: str = "unknown"
    iterations: int = 0
    history: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    solver: dict = field(default_factory=dict)
    case: str | None = None
    case_report: CaseReport | None = field(default=None, repr=False, compare=False)
    problem: object | None = field(default=None, repr=False, compare=False)   # the MultiPopulationProblem

    def __repr__(self) -> str:
        return (f"MultiPopulationResult(populations={self.names}, grid={tuple(self.grid.shape)}, "
                f"Nt={len(self.t) - 1}, method={(self.solver or {}).get('method')!r}, status={self.status!r}, "
                f"iterations={self.iterations})")

    def __getitem__(self, key) -> MFGResult:
        if isinstance(key, str):
            if key not in self.names:
                raise KeyError(f"no population {key!r}; populations: {', '.join(self.names)}")
            key = self.names.index(key)
        return self.populations[key]

    def __len__(self) -> int:
        return len(self.populations)

    @property
    def K(self) -> int:
        return len(self.populations)

    @property
    def u(self) -> np.ndarray:
        return np.stack([r.u for r in self.populations])

    @property
    def m(self) -> np.ndarray:
        return np.stack([r.m for r in self.populations])

    @property
    def alpha(self) -> np.ndarray:
        return np.stack([r.alpha for r in self.populations])

    @property
    def obstacle(self):
        return self.populations[0].obstacle if self.populations else None

    @property
    def outflow(self):
        return None

    def mean(self) -> np.ndarray:
        """(K, Nt+1, ndim): the mean position of each population per time level."""
        return np.stack([r.mean() for r in self.populations])

    @property
    def has_switching(self) -> bool:
        """Whether the populations are types with switching (their masses change, the total does not)."""
        return (self.solver or {}).get("switching") is not None or (self.params or {}).get("switching") is not None

    def mass(self) -> np.ndarray:
        """(Nt+1,) the total mass of all populations per time level."""
        return np.sum([r.mass() for r in self.populations], axis=0)

    def shares(self) -> np.ndarray:
        """(K, Nt+1) each population's fraction of the total mass per time level (the types' shares)."""
        masses = np.stack([r.mass() for r in self.populations])
        return masses / masses.sum(axis=0)

    def mass_error(self) -> float:
        """The largest conservation error over the populations (``MFGResult.balance_error``: the mass error,
        or with exits the outflow balance error); with switching types the error of the total mass,
        max_n |M(t_n) - M(0)| / M(0) (the switching moves mass between the types)."""
        if self.has_switching:
            total = self.mass()
            return float(np.max(np.abs(total - total[0])) / total[0])
        return max(r.balance_error() for r in self.populations)

    @property
    def final_residual(self) -> float:
        res = self.history.get("residual")
        return float(res[-1]) if res is not None and len(res) else float("nan")

    def summary(self) -> str:
        h = self.history
        wall = float(h["wall_time"][-1]) if "wall_time" in h and len(h["wall_time"]) else float("nan")
        extra = ""
        for key, label in (("hjb_residual", "HJB residual"), ("exploitability", "Nash gap")):
            v = h.get(key)
            if v is not None and len(v) and np.isfinite(v[-1]):
                extra += f"{label} {float(v[-1]):.3e}, "
        shape = " x ".join(str(n) for n in self.grid.shape)
        winner = (self.solver or {}).get("winner")
        method = (self.solver or {}).get("method", "?")
        if winner not in (None, method):
            method = f"{method} ({winner} finished)"
        return (f"{self.status}: {self.iterations} iterations, residual {self.final_residual:.3e}, {extra}"
                f"mass error {self.mass_error():.2e}, wall time {wall:.3f} s; {self.K} populations "
                f"({', '.join(self.names)}), grid {shape}, Nt {len(self.t) - 1}, method {method}")

    def save(self, path) -> None:
        """One HDF5 file: u, m, alpha with a population dimension, the joint history, each population's
        problem record (``io_multi``)."""
        io_multi.save_multi(self, path)


def load_multi(path) -> MultiPopulationResult:
    """The ``MultiPopulationResult`` of a multi-population file (``io_multi``; ``load`` dispatches here)."""
    rec = io_multi.read_multi(path)
    g = rec["grid"]
    grid = Grid(g["bounds"], g["shape"], g["bc"])
    names, t = rec["names"], rec["t"]
    head = {key: rec[key] for key in ("converged", "status", "iterations", "case")}
    pparams = (rec["params"] or {}).get("population_params") or [{}] * len(names)
    pops = []
    for k in range(len(names)):
        r = MFGResult(grid=grid, t=t, u=rec["u"][k], m=rec["m"][k], history=rec["history"], params=pparams[k],
                      solver={**(rec["solver"] or {}), "population": k, "name": names[k]}, **head)
        r.alpha = rec["alpha"][k]
        pops.append(r)
    report = None if rec["case_report"] is None else CaseReport(**rec["case_report"])
    return MultiPopulationResult(grid=grid, t=t, names=names, populations=pops, history=rec["history"],
                                 params=rec["params"], solver=rec["solver"], case_report=report, **head)
