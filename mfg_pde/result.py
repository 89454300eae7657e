"""The result of a mean-field-game solve: fields on the space-time grid plus convergence record."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import io
from .model.grid import BC_EXIT, BC_PERIODIC, Grid


@dataclass
class OutflowHistory:
    """Outflow record of one solution (mass units: integrals over the grid, cell volume included).

    t : (Nt+1,) time levels.
    mass : (Nt+1,) mass(t_n) of the density.
    per_side : (Nt, ndim, 2) outflow of step n (t_n -> t_{n+1}) through side (axis, lo/hi); 0 on sides
        that are not exits.
    cumulative : (Nt+1,) outflow(0, t_n) = sum_{j < n} per_side[j].sum() (0 at t_0).
    sides : labels of the exit sides, e.g. ["x hi"].
    """

    t: np.ndarray
    mass: np.ndarray
    per_side: np.ndarray
    cumulative: np.ndarray
    sides: list = field(default_factory=list)

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

    def summary(self) -> str:
        return (f"evacuated {self.evacuated_fraction:.4f} of the mass by t = {self.t[-1]:.3g} through "
                f"{', '.join(self.sides) or 'no exit'}; outflow balance error {self.balance_error:.2e}")


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


@dataclass
class MFGResult:
    """Solution of an MFG on a grid.

    Attributes
    ----------
    grid : the spatial grid.
    t : time levels, shape (Nt+1,).
    u : value function, shape (Nt+1, *grid.shape).
    m : density, shape (Nt+1, *grid.shape); each level integrates to the initial mass (minus the
        mass that has left through exit sides: ``extras["outflow"]``, see ``diagnostics.outflow``).
    converged : whether the coupling loop met its tolerance.
    status : one line saying how the loop ended ("converged", "max_iter", "diverged: ...").
    iterations : number of coupled iterations performed.
    history : per-iteration records, one 1-D array per quantity (see ``iterate.fixed_point``).
    params : problem / case parameters (JSON-able).
    solver : solver options (JSON-able).
    case : name of the registered case that produced it, if any.
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
    extras: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ derived fields
    @property
    def alpha(self) -> np.ndarray:
        """Optimal feedback alpha = -grad u, shape (Nt+1, *grid, ndim)."""
        cached = self.extras.get("_alpha")
        if cached is None:
            cached = -gradient(self.grid, self.u)
            self.extras["_alpha"] = cached
        return cached

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

    @property
    def outflow(self):
        """The ``OutflowHistory`` of a result on a grid with exits (None if not attached)."""
        return self.extras.get("outflow")

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

    def summary(self) -> str:
        h = self.history
        wall = float(h["wall_time"][-1]) if "wall_time" in h and len(h["wall_time"]) else float("nan")
        if self.grid.has_exits and self.outflow is not None:
            cons = (f"outflow balance error {self.balance_error():.2e}, evacuated "
                    f"{self.evacuated_fraction():.4f}")
        elif self.grid.has_exits:
            cons = f"evacuated {self.evacuated_fraction():.4f} (exits; outflow balance not computed)"
        else:
            cons = f"mass error {self.mass_error():.2e}"
        line = (f"{self.status}: {self.iterations} iterations, residual {self.final_residual:.3e}, "
                f"{cons}, wall time {wall:.3f} s")
        monotone = self.solver.get("coupling_monotone") if isinstance(self.solver, dict) else None
        if monotone == "no":
            line += ("; coupling not monotone: uniqueness is not guaranteed (where there are several "
                     "equilibria, the start m_init selects one)")
        elif monotone == "unknown":
            line += "; coupling monotonicity unknown: the equilibrium may not be unique"
        return line

    def save(self, path) -> None:
        """Write a self-describing HDF5 file (see ``mfg_pde.io``)."""
        io.save_result(self, path)


def load(path) -> MFGResult:
    """Read a file written by :meth:`MFGResult.save` back into an :class:`MFGResult` (``mp.load``)."""
    rec = io.read_record(path)
    try:
        grid = Grid(rec["grid"]["bounds"], rec["grid"]["shape"], rec["grid"]["bc"])
    except (KeyError, TypeError, ValueError, NotImplementedError) as exc:
        raise io.incomplete(path, f"root attribute 'grid' does not describe a grid ({exc})") from None
    t, m, u = rec["t"], rec["m"], rec["u"]
    want = (t.shape[0],) + grid.shape
    if m.shape != want or u.shape != want:
        raise io.incomplete(path, f"m {m.shape} / u {u.shape} do not match (len(t), *grid) = {want}")
    extras = dict(rec["extras"])
    if "outflow" in extras:
        extras["outflow"] = OutflowHistory(t=np.asarray(t, dtype=float), **extras["outflow"])
    return MFGResult(grid=grid, t=t, u=u, m=m, converged=rec["converged"], status=rec["status"],
                     iterations=rec["iterations"], history=rec["history"], params=rec["params"],
                     solver=rec["solver"], case=rec["case"], extras=extras)
