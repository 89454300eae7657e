"""MFGProblem: everything that defines a mean-field game on a grid.

    HJB  -du/dt - nu Lap u + |grad u|^2/2 - b . grad u = V(x,t) + F(x, m_t),   u(T) = G(x[, m_T])
    FP    dm/dt - nu Lap m + div(m (b - grad u)) = 0,                          m(0) = m0
    nu = sigma^2/2,  optimal control alpha = -grad u.

Time grid t_n = n dt, dt = T/Nt.  Step n covers [t_n, t_{n+1}]; its running data (V, F, b) are
evaluated at t_{n+1} together with m^{n+1} (implicit Euler for FP, as in Achdou &
Capuzzo-Dolcetta's scheme where the HJB step n sees F(m^{n+1})).

Callables receive the coordinates as arrays of the grid's shape followed by the time:
``V(x, t)`` in 1-D, ``V(x, y, t)`` in 2-D, ``b(x, y, t) -> (bx, by)``, ``G(x, y)``.

Exit (absorbing) sides of the grid (``Grid(bc=[("reflecting", "exit"), ...])``) add the Dirichlet
condition u = g on that wall (g = ``exit_cost``, a constant per exit side: the cost an agent pays on
leaving there) and m = 0 outside (discretely: a ghost node one cell beyond the last cell centre carries
u = g and m = 0, a first-order placement of the wall; see ``fd.kernels``).  An agent stops paying
running cost when it exits, so with running cost 1 the value is the expected remaining time to the
exit (or T) plus the exit (or terminal) cost.  Mass leaves through the exits: ``diagnostics.outflow``
gives the outflow history and the balance  outflow(0, t_n) + mass(t_n) = mass(0).

Walls and doors (``model.geometry``): ``obstacles`` marks solid cells (outside the domain; the faces
between domain and solid cells are zero-flux walls) and ``doors`` opens exits on parts of reflecting sides,
each with its own exit cost.  Solid cells carry m = 0 and u = 0: their running and terminal costs are set
to 0 (``running_cost``, ``terminal_values``) and their rows are identity rows, decoupled from the domain.
"""

from __future__ import annotations

import inspect
import os

import numpy as np

from .couplings import Coupling
from .densities import check_density
from .geometry import Geometry
from .grid import Grid
from .hamiltonians import as_hamiltonian


class InsufficientMemoryError(MemoryError, ValueError):
    """The space-time arrays a solve needs do not fit in the available memory; raised before any of
    them is allocated.  The message names the grid, the estimate and the memory available."""


#: Peak numpy memory of a solve, in units of one (Nt+1) x grid float64 array, per coupling method:
#: measured with tracemalloc on the lqg (400 cells x 400 steps) and lqg-2d (60^2 cells x 60 steps)
#: cases -- picard / fictitious play about 8-10 (iterate, two u buffers, the best response, the
#: running cost, residual temporaries), anderson about 22 (plus 2 x depth 5 difference buffers),
#: auto 24 with Anderson alone, 32 with damped Picard racing it, 40 with a short-step Newton too (2-D
#: aggregation, 31^2 x 20; Newton joins the race only where its own arrays fit as well), newton about 112
#: (its linearisation).
SPACE_TIME_ARRAYS = {"picard": 10, "fictitious-play": 10, "anderson": 22, "auto": 40, "newton": 112}
#: the lightest solve (a damped fixed point): what MFGProblem checks before any method is chosen
MIN_SPACE_TIME_ARRAYS = 8
_METHOD_ALIASES = {"fp": "fictitious-play", "fictitious": "fictitious-play", "fictitious_play": "fictitious-play",
                   "damped": "picard", "fixed-point": "picard"}


def available_memory() -> int | None:
    """Bytes of memory available to new allocations: MemAvailable of /proc/meminfo (capped by a cgroup v2
    memory.max limit, when one is set), else the free physical pages of os.sysconf; None if unknown."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            avail = None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit.isdigit():
            used = 0
            try:
                with open("/sys/fs/cgroup/memory.current") as fh:
                    used = int(fh.read().strip())
                with open("/sys/fs/cgroup/memory.stat") as fh:  # page cache the kernel can drop
                    for line in fh:
                        if line.startswith("inactive_file "):
                            used -= int(line.split()[1])
            except (OSError, ValueError, IndexError):
                pass
            room = max(int(limit) - max(used, 0), 0)
            avail = room if avail is None else min(avail, room)
    except OSError:
        pass
    return avail


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units, up to PiB)."""
    n = float(n)
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    for unit in units:
        if abs(n) < 1024 or unit == units[-1]:
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"


def space_time_arrays(method=None) -> int:
    """How many (Nt+1) x grid float64 arrays a solve with this coupling method holds at its peak
    (``SPACE_TIME_ARRAYS``; the lightest solve, MIN_SPACE_TIME_ARRAYS, when the method is not known)."""
    if method is None:
        return MIN_SPACE_TIME_ARRAYS
    key = str(method).strip().lower()
    return SPACE_TIME_ARRAYS.get(_METHOD_ALIASES.get(key, key), MIN_SPACE_TIME_ARRAYS)


def solve_memory_estimate(grid_shape, Nt, method=None) -> int:
    """Estimated peak bytes of a solve on a grid of grid_shape cells with Nt time steps."""
    cells = int(np.prod([int(n) for n in grid_shape], dtype=object))
    return space_time_arrays(method) * (int(Nt) + 1) * cells * 8


def check_memory(grid_shape, Nt, method=None, what=None, fix=None, available=None) -> int:
    """Raise InsufficientMemoryError when the solve's space-time arrays (solve_memory_estimate) exceed the
    available memory; returns the estimate.  Nothing is allocated.  ``what`` names the grid in the message
    (default: its shape), ``fix`` says what to change.  Set the environment variable
    MFG_PDE_MEMORY_CHECK=0 to skip the check (e.g. with ample swap)."""
    estimate = solve_memory_estimate(grid_shape, Nt, method)
    if os.environ.get("MFG_PDE_MEMORY_CHECK", "1").strip().lower() in ("0", "no", "off", "false"):
        return estimate
    avail = available_memory() if available is None else available
    if avail is None or estimate <= avail:
        return estimate
    shape = tuple(int(n) for n in grid_shape)
    cells = int(np.prod(shape, dtype=object))
    one = (int(Nt) + 1) * cells * 8
    arrays = space_time_arrays(method)
    how = f"method {method}" if method is not None else "the lightest method"
    what = what or f"grid shape {shape} ({cells:,} cells) with Nt = {int(Nt)}"
    fix = fix or "use fewer cells per axis (a smaller grid shape) or fewer time steps Nt"
    raise InsufficientMemoryError(
        f"{what}: the solve needs about {format_bytes(estimate)} ({arrays} arrays of (Nt+1) x grid float64, "
        f"{format_bytes(one)} each, {how}) but only {format_bytes(avail)} of memory is available; {fix}")


def _on_grid(value, grid: Grid, name: str, where: str) -> np.ndarray:
    """A callable's return value as a float array of the grid's shape (broadcast), or a ValueError
    naming the callable (``name``), the shape it returned and the shape expected."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}{where} returned {type(value).__name__} {str(value)[:60]!r}, not numbers; "
                         f"return an array of the grid shape {grid.shape} (or a number)") from None
    try:
        return np.broadcast_to(arr, grid.shape)
    except ValueError:
        raise ValueError(f"{name}{where} returned an array of shape {arr.shape}; expected the grid shape "
                         f"{grid.shape} (or a shape that broadcasts to it, e.g. a number); evaluate it on "
                         "the coordinate arrays it is given (grid.mesh())") from None


class SignatureError(TypeError, ValueError):
    """A callable of the problem (potential, drift, terminal_cost) does not take the arguments it is given;
    the message names the parameter and the expected signature (both a TypeError and a ValueError)."""


_COORDS = ("x", "y", "z")


def _expected(letter: str, ndim: int, *extra: str) -> str:
    """The expected signature on an ndim-D grid, e.g. V(x, y, t)."""
    return f"{letter}({', '.join(_COORDS[:ndim] + extra)})"


def _binds(fn, n_args: int) -> bool | None:
    """Whether fn accepts n_args positional arguments (None: its signature cannot be read)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*range(n_args))
    except TypeError:
        return False
    return True


def _signature_error(fn, param: str, expected: str, ndim: int, hint: str, exc=None) -> SignatureError:
    name = getattr(fn, "__name__", type(fn).__name__)
    try:
        got = f"{name}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        got = name
    why = f" ({exc})" if exc is not None else ""
    return SignatureError(f"{param}: expected a callable {expected} on this {ndim}-D grid{hint}; "
                          f"{got} cannot be called that way{why}")


def _check_callable(fn, n_args: int, param: str, expected: str, ndim: int, hint: str = "") -> None:
    """At construction: a SignatureError when fn's signature cannot take n_args positional arguments."""
    if _binds(fn, n_args) is False:
        try:
            inspect.signature(fn).bind(*range(n_args))
        except TypeError as exc:
            raise _signature_error(fn, param, expected, ndim, hint, exc) from exc


def _call(fn, args, param: str, expected: str, ndim: int, hint: str = ""):
    """fn(*args); a TypeError raised because fn does not take these arguments (or by a callable whose
    signature cannot be read) becomes a SignatureError naming ``param`` and the expected signature."""
    try:
        return fn(*args)
    except TypeError as exc:
        if isinstance(exc, SignatureError) or _binds(fn, len(args)) is True:
            raise
        raise _signature_error(fn, param, expected, ndim, hint, exc) from exc


_POTENTIAL_HINT = " (the coordinate arrays of grid.mesh(), then the time t; a static V takes t too and may ignore it)"
_DRIFT_HINT = (" returning one array per axis (the coordinate arrays of grid.mesh(), then the time t; a static "
               "drift takes t too: Drift(fn, time_dependent=False))")
_TERMINAL_HINT = (" (the coordinate arrays of grid.mesh(), no t: it is evaluated at t = T; a cost that depends "
                  "on the terminal density: TerminalCost(fn, depends_on_m=True) with {sig})")


def _terminal_expected(grid_ndim: int, depends_on_m: bool) -> tuple[str, str]:
    plain, with_m = _expected("G", grid_ndim), _expected("G", grid_ndim, "m_T")
    return (with_m if depends_on_m else plain), _TERMINAL_HINT.format(sig=with_m)


class LinearDrift:
    """b(x) = -kappa (x - centre) (Ornstein-Uhlenbeck pull; kappa may be per axis)."""

    time_dependent = False

    def __init__(self, kappa, centre=0.0):
        self.kappa = kappa
        self.centre = centre

    def __call__(self, *args):
        *xs, _t = args
        kap = np.broadcast_to(np.asarray(self.kappa, dtype=float), (len(xs),))
        cen = np.broadcast_to(np.asarray(self.centre, dtype=float), (len(xs),))
        return [-kap[k] * (x - cen[k]) for k, x in enumerate(xs)]

    def describe(self):
        return {"type": "linear", "kappa": np.asarray(self.kappa).tolist(),
                "centre": np.asarray(self.centre).tolist()}


class Drift:
    """Wrap a callable b(*coords, t) -> sequence of ndim arrays; time_dependent=False evaluates once."""

    def __init__(self, fn, time_dependent: bool = True):
        self.fn = fn
        self.time_dependent = bool(time_dependent)

    def __call__(self, *args):
        return self.fn(*args)

    def describe(self):
        return {"type": "callable", "name": getattr(self.fn, "__name__", "callable"),
                "time_dependent": self.time_dependent}


class SampledInTime:
    """A function of (*coords, t) known only at some times: ``values[k]`` on the grid at ``times[k]`` (what a
    result file stores of a callable potential or drift; ``mfg_pde.load_problem``).  Called with the
    coordinates and a time, it returns the stored values at that time (the coordinates are not looked at:
    they are the grid's), and raises ValueError at a time it does not hold.  ``components`` returns a list
    (a drift's components) instead of the array."""

    def __init__(self, times, values, name: str = "sampled", components: bool = False):
        self.times = np.asarray(times, dtype=float).reshape(-1)
        self.values = np.asarray(values, dtype=float)
        if self.values.shape[:1] != self.times.shape:
            raise ValueError(f"{name}: {self.times.shape[0]} times but {self.values.shape[0]} stored levels")
        self.components = bool(components)
        self.__name__ = name
        span = float(np.max(np.abs(self.times))) if self.times.size else 1.0
        self._tol = 1e-9 * max(span, 1.0)

    def __call__(self, *args):
        t = float(args[-1])
        k = int(np.argmin(np.abs(self.times - t))) if self.times.size else -1
        if k < 0 or abs(self.times[k] - t) > self._tol:
            raise ValueError(f"{self.__name__}: no stored values at t = {t:.9g} (the file holds "
                             f"{self.times.size} times in [{self.times.min():.6g}, {self.times.max():.6g}])")
        v = self.values[k]
        return list(v) if self.components else v


class QuadraticTerminalCost:
    """G(x) = q/2 |x - target|^2 (q and target may be per axis)."""

    depends_on_m = False

    def __init__(self, q, target=0.0):
        self.q = q
        self.target = target

    def __call__(self, *xs):
        q = np.broadcast_to(np.asarray(self.q, dtype=float), (len(xs),))
        tg = np.broadcast_to(np.asarray(self.target, dtype=float), (len(xs),))
        return sum(0.5 * q[k] * (x - tg[k]) ** 2 for k, x in enumerate(xs))

    def describe(self):
        return {"type": "quadratic", "q": np.asarray(self.q).tolist(),
                "target": np.asarray(self.target).tolist()}


class TerminalCost:
    """G(*coords) or, with depends_on_m=True, G(*coords, m_T).  ``first_variation``, optional, is the callable
    G_soc(*coords, m_T) = delta/delta m [int G(y, m_T) m_T(y) dy](x) that objective="social" needs for an
    m-dependent G (e.g. G = g(m) gives g(m) + m g'(m))."""

    def __init__(self, fn, depends_on_m: bool = False, first_variation=None):
        self.fn = fn
        self.depends_on_m = bool(depends_on_m)
        if first_variation is not None and not callable(first_variation):
            raise ValueError("TerminalCost(first_variation=...): give a callable G_soc(*coords, m_T) or None")
        self.first_variation = first_variation

    def __call__(self, *args):
        return self.fn(*args)

    def describe(self):
        return {"type": "callable", "name": getattr(self.fn, "__name__", "callable"),
                "depends_on_m": self.depends_on_m}


class MFGProblem:
    """A terminal-cost mean-field game on a grid (see module docstring for the equations).

    Parameters
    ----------
    grid : Grid
    T : horizon (> 0).   Nt : number of time steps (>= 1).
    sigma : noise intensity (>= 0); nu = sigma^2 / 2.
    m0 : initial density on the grid (non-negative, integral 1).
    coupling : Coupling or None.
    potential : V(*coords, t) callable, an array of the grid's shape, or None.
    drift : LinearDrift, Drift, a callable b(*coords, t), or None.
    terminal_cost : QuadraticTerminalCost, TerminalCost, a callable G(*coords), an array, or None.
    exit_cost : Dirichlet value g of u on the exit sides of the grid (see the module docstring): one
        number for every exit side (default 0.0), or one entry per axis, each a number or a (lo, hi)
        pair (entries of non-exit sides must be None, NaN or 0).  Constant in space and time per side.
        Stored as ``exit_costs``, an (ndim, 2) array with NaN on the non-exit sides, which is itself
        accepted here (``MFGProblem(..., exit_cost=other.exit_costs)`` copies the exit costs).
    obstacles : solid cells (outside the domain): a boolean mask of the grid's shape (True = solid), a Shape
        (``Rectangle``, ``Disc``, ``Polygon``, unions ``a | b``) tested at the cell centres, or a list of
        these; the faces between domain and solid cells are zero-flux walls (``model.geometry``).
    doors : a ``Door`` or a list of them: exits on parts of reflecting sides, each with its own exit cost
        and its own outflow history (``result.outflow.per_door``).
    hamiltonian : the Hamiltonian H(p[, m]) of the HJB, a ``model.hamiltonians.Hamiltonian``: ``Quadratic()``
        (the default, |p|^2/2), ``Power(q)``, ``BoundedControl(a_max)``, ``Congestion(c0, c, alpha)`` or
        ``Separable(h, dh, p_max)``; the optimal control is -dH/dp(grad u) and the FP drift b - dH/dp.
    fp_source : a source S(*coords, t) of the FP equation, dm/dt - nu Lap m + div(m (b - dH/dp)) = S, taken at
        t_{n+1} in step n (for manufactured solutions; mass is then not conserved unless S integrates to 0).

    Raises InsufficientMemoryError (a MemoryError and a ValueError) when even the lightest solve's
    space-time arrays (``MIN_SPACE_TIME_ARRAYS`` of shape (Nt+1, *grid)) exceed the available memory.
    """

    def __init__(self, grid: Grid, T: float, Nt: int, sigma: float, m0, coupling: Coupling | None = None,
                 potential=None, drift=None, terminal_cost=None, name: str | None = None, exit_cost=0.0,
                 obstacles=None, doors=None, hamiltonian=None, fp_source=None):
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a mfg_pde.Grid, got {type(grid).__name__}")
        self.grid = grid
        try:
            T = float(T)
        except (TypeError, ValueError):
            raise ValueError(f"T = {T!r}: the horizon must be a number > 0") from None
        if not (np.isfinite(T) and T > 0):
            raise ValueError(f"T = {T}: the horizon must be finite and > 0")
        if isinstance(Nt, (bool, np.bool_)) or not isinstance(Nt, (int, float, np.integer, np.floating)) \
                or not (np.isfinite(Nt) and float(Nt).is_integer() and Nt >= 1):
            raise ValueError(f"Nt = {Nt!r}: the number of time steps must be an integer >= 1, e.g. Nt=100")
        if isinstance(sigma, (bool, np.bool_)):
            raise ValueError(f"sigma = {sigma!r}: the noise intensity must be a number >= 0, e.g. sigma=0.5")
        try:
            sigma = float(sigma)
        except (TypeError, ValueError):
            raise ValueError(f"sigma = {sigma!r}: the noise intensity must be a number >= 0, e.g. sigma=0.5") from None
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma = {sigma}: the noise intensity must be finite and >= 0")
        if coupling is not None and not isinstance(coupling, Coupling):
            raise TypeError("coupling must be a mfg_pde.model.couplings.Coupling (or None)")
        # before m0 is checked (a copy) and before anything of the grid's size is built here
        check_memory(grid.shape, int(Nt))
        self.T = T
        self.Nt = int(Nt)
        self.sigma = float(sigma)
        self.m0 = check_density(grid, m0, "m0")
        self.geometry = Geometry(grid, obstacles, doors)
        self.geometry.check_density(self.m0, "m0")
        self.coupling = coupling
        self.potential = potential
        self.name = name
        if drift is not None and not isinstance(drift, (LinearDrift, Drift)):
            if not callable(drift):
                raise ValueError("drift must be LinearDrift(kappa), Drift(fn) or a callable b(*coords, t)")
            drift = Drift(drift)
        if isinstance(drift, Drift):
            _check_callable(drift.fn, grid.ndim + 1, "drift", _expected("b", grid.ndim, "t"), grid.ndim, _DRIFT_HINT)
        self.drift = drift
        if callable(potential):
            _check_callable(potential, grid.ndim + 1, "potential", _expected("V", grid.ndim, "t"), grid.ndim,
                            _POTENTIAL_HINT)
        if terminal_cost is not None and not isinstance(terminal_cost, (QuadraticTerminalCost, TerminalCost)):
            if callable(terminal_cost):
                terminal_cost = TerminalCost(terminal_cost)
            else:
                arr = grid.check_field(terminal_cost, "terminal_cost")
                terminal_cost = TerminalCost(lambda *xs, _a=arr: _a)
        if isinstance(terminal_cost, TerminalCost):
            expected, hint = _terminal_expected(grid.ndim, terminal_cost.depends_on_m)
            _check_callable(terminal_cost.fn, grid.ndim + terminal_cost.depends_on_m, "terminal_cost", expected,
                            grid.ndim, hint)
        self.terminal_cost = terminal_cost
        self.exit_costs = _exit_costs(grid, exit_cost)
        self.hamiltonian = as_hamiltonian(hamiltonian)
        if fp_source is not None:
            if not callable(fp_source):
                raise ValueError("fp_source must be a callable S(*coords, t) (the source of the FP equation) or None")
            _check_callable(fp_source, grid.ndim + 1, "fp_source", _expected("S", grid.ndim, "t"), grid.ndim,
                            _POTENTIAL_HINT)
        self.fp_source = fp_source
        self._static_cache = {}

    # ------------------------------------------------------------------ basic numbers
    @property
    def nu(self) -> float:
        return 0.5 * self.sigma ** 2

    @property
    def dt(self) -> float:
        return self.T / self.Nt

    @property
    def t(self) -> np.ndarray:
        return np.linspace(0.0, self.T, self.Nt + 1)

    @property
    def has_exits(self) -> bool:
        """Whether mass can leave: exit sides of the grid or doors."""
        return self.grid.has_exits or bool(self.geometry.doors)

    @property
    def solid(self) -> np.ndarray | None:
        """The solid-cell mask (True outside the domain), None without obstacles."""
        return self.geometry.solid

    def _zero_solid(self, arr: np.ndarray, lead: int) -> np.ndarray:
        """arr (lead axes, *grid) with its solid cells set to 0 (in place; arr must be owned)."""
        solid = self.geometry.solid
        if solid is not None:
            idx = self._static_cache.get("solid_idx")
            if idx is None:
                idx = self._static_cache["solid_idx"] = np.flatnonzero(solid)
            arr.reshape(arr.shape[:lead] + (-1,))[..., idx] = 0.0
        return arr

    @property
    def is_coupled(self) -> bool:
        """Whether the HJB data depend on m (otherwise one HJB + one FP sweep solve the game): a coupling, a
        terminal cost G(x, m_T) or a Hamiltonian that depends on m (congestion)."""
        return self.coupling is not None or bool(getattr(self.terminal_cost, "depends_on_m", False)) \
            or bool(getattr(getattr(self, "hamiltonian", None), "depends_on_m", False))

    # ------------------------------------------------------------------ data on the time grid
    def drift_steps(self) -> np.ndarray | None:
        """Drift per step, shape (Nt or 1, ndim, *grid) (None when there is no drift)."""
        if self.drift is None:
            return None
        if "drift" in self._static_cache:
            return self._static_cache["drift"]
        xs = self.grid.mesh()
        times = self.t[1:] if self.drift.time_dependent else self.t[1:2]
        out = np.empty((len(times), self.grid.ndim) + self.grid.shape)
        for j, tj in enumerate(times):
            b = _call(getattr(self.drift, "fn", self.drift), (*xs, float(tj)), "drift",
                      _expected("b", self.grid.ndim, "t"), self.grid.ndim, _DRIFT_HINT)
            if self.grid.ndim == 1 and isinstance(b, np.ndarray) and b.shape == self.grid.shape:
                b = [b]
            if len(b) != self.grid.ndim:
                raise ValueError(f"drift returned {len(b)} components; the grid has {self.grid.ndim} axes")
            for k in range(self.grid.ndim):
                out[j, k] = _on_grid(b[k], self.grid, "drift", f" component {k} at t = {float(tj):.6g}")
        if not np.all(np.isfinite(out)):
            raise ValueError("drift has non-finite values on the grid")
        self._static_cache["drift"] = out
        return out

    def potential_steps(self) -> np.ndarray | float:
        """V at t_{n+1} per step (the implicit Euler steps), shape (Nt, *grid) or (1, *grid) if static;
        0.0 if none."""
        return self._potential_values("V", self.t[1:], lambda V: V[1:])

    def potential_midpoints(self) -> np.ndarray | float:
        """V at the step midpoints t_{n+1/2} (the Strang steps of the planning solver), shape (Nt, *grid)
        or (1, *grid) if static; a per-level array (Nt+1, *grid) is averaged over each step; 0.0 if none."""
        return self._potential_values("V_mid", 0.5 * (self.t[:-1] + self.t[1:]), lambda V: 0.5 * (V[:-1] + V[1:]))

    def _potential_values(self, key, times, from_levels):
        """V on the grid at `times` (callable V), or from an array: static (grid shape) or per level
        (Nt+1, *grid) through from_levels; checked finite and cached under key."""
        if self.potential is None:
            return 0.0
        if key in self._static_cache:
            return self._static_cache[key]
        V = self.potential
        if callable(V):
            xs = self.grid.mesh()
            expected = _expected("V", self.grid.ndim, "t")
            out = np.stack([_on_grid(_call(V, (*xs, float(tj)), "potential", expected, self.grid.ndim,
                                           _POTENTIAL_HINT),
                                     self.grid, "potential", f" V(x, t = {float(tj):.6g})")
                            for tj in times])
        else:
            V = np.asarray(V, dtype=float)
            if V.shape == self.grid.shape:
                out = V[None]
            elif V.shape == (self.Nt + 1,) + self.grid.shape:
                out = from_levels(V)
            else:
                raise ValueError(f"potential has shape {V.shape}; give grid shape {self.grid.shape} "
                                 f"or (Nt+1, *grid) = {(self.Nt + 1,) + self.grid.shape}")
        if not np.all(np.isfinite(out)):
            raise ValueError("potential V has non-finite values on the grid")
        self._static_cache[key] = out
        return out

    def fp_source_steps(self) -> np.ndarray | None:
        """The FP source S at t_{n+1} per step, (Nt, *grid), or None without one."""
        S = getattr(self, "fp_source", None)
        if S is None:
            return None
        if "fp_source" not in self._static_cache:
            xs = self.grid.mesh()
            expected = _expected("S", self.grid.ndim, "t")
            out = np.stack([_on_grid(_call(S, (*xs, float(tj)), "fp_source", expected, self.grid.ndim,
                                           _POTENTIAL_HINT), self.grid, "fp_source", f" S(x, t = {float(tj):.6g})")
                            for tj in self.t[1:]])
            if not np.all(np.isfinite(out)):
                raise ValueError("fp_source S has non-finite values on the grid")
            self._static_cache["fp_source"] = self._zero_solid(out, 1)
        return self._static_cache["fp_source"]

    def running_cost(self, m: np.ndarray) -> np.ndarray:
        """f^n = V(t_{n+1}) + F(x, m^{n+1}; t_{n+1}) for n = 0..Nt-1, shape (Nt, *grid); 0 on solid cells."""
        V = self.potential_steps()
        shape = (self.Nt,) + self.grid.shape
        if self.coupling is None:
            f = np.broadcast_to(V, shape).copy() if not np.isscalar(V) else np.zeros(shape)
            return self._zero_solid(f, 1)
        f = self.coupling.field(self.grid, self.t[1:], m[1:])
        owned = isinstance(f, np.ndarray) and f.base is None and f.flags.writeable and f.shape == shape \
            and f.dtype == np.float64
        if np.isscalar(V):
            f = f if owned else np.array(np.broadcast_to(f, shape), dtype=float)
        elif owned:
            f += V  # the coupling returned a fresh array: add the potential in place (one pass less)
        else:
            f = np.ascontiguousarray(np.broadcast_to(f + V, shape))
        return self._zero_solid(f, 1)

    def terminal_values(self, mT: np.ndarray) -> np.ndarray:
        """u(T) = G(x) or G(x, m_T)."""
        G = self.terminal_cost
        if G is None:
            return np.zeros(self.grid.shape)
        xs = self.grid.mesh()
        with_m = bool(getattr(G, "depends_on_m", False))
        expected, hint = _terminal_expected(self.grid.ndim, with_m)
        out = _call(getattr(G, "fn", G), (*xs, mT) if with_m else tuple(xs), "terminal_cost", expected,
                    self.grid.ndim, hint)
        out = _on_grid(out, self.grid, "terminal_cost", " G(x)").copy()
        self._zero_solid(out, 0)
        if not np.all(np.isfinite(out)):
            raise ValueError("terminal cost G has non-finite values on the grid")
        return out

    def describe(self) -> dict:
        d = {"T": self.T, "Nt": self.Nt, "sigma": self.sigma, "nu": self.nu, "grid": self.grid.describe()}
        if self.coupling is not None:
            d["coupling"] = self.coupling.describe()
        if self.drift is not None:
            d["drift"] = self.drift.describe()
        if self.terminal_cost is not None:
            d["terminal_cost"] = self.terminal_cost.describe()
        if self.potential is not None:
            d["potential"] = getattr(self.potential, "__name__", "array") if callable(self.potential) else "array"
        if self.grid.has_exits:
            d["exit_cost"] = [[None if np.isnan(v) else float(v) for v in pair] for pair in self.exit_costs]
        d.update(self.geometry.describe())
        ham = getattr(self, "hamiltonian", None)
        if ham is not None and not ham.is_quadratic:
            d["hamiltonian"] = ham.describe()
        if getattr(self, "fp_source", None) is not None:
            d["fp_source"] = getattr(self.fp_source, "__name__", "callable")
        if self.name:
            d["name"] = self.name
        return d


def _exit_costs(grid: Grid, exit_cost) -> np.ndarray:
    """(ndim, 2) exit costs: the Dirichlet value of u on each exit side, NaN on the other sides."""
    sides = grid.bc_sides
    out = np.full((grid.ndim, 2), np.nan)
    if exit_cost is None:
        exit_cost = 0.0
    if np.isscalar(exit_cost):
        try:
            val = float(exit_cost)
        except (TypeError, ValueError):
            raise ValueError(f"exit_cost = {exit_cost!r}: must be a number") from None
        if not np.isfinite(val):
            raise ValueError(f"exit_cost = {exit_cost!r}: must be finite")
        if val != 0.0 and not grid.has_exits:
            raise ValueError(f"exit_cost = {val} but the grid has no exit side (bc = {grid.bc}); give a side "
                             "bc='exit', e.g. Grid(..., bc=[('reflecting', 'exit')]), or drop exit_cost")
        for k, j in grid.exit_sides:
            out[k, j] = val
        return out
    entries = list(exit_cost)
    if grid.ndim == 1 and len(entries) == 2 and all(e is None or np.isscalar(e) for e in entries):
        entries = [tuple(entries)]
    if len(entries) != grid.ndim:
        raise ValueError(f"exit_cost has {len(entries)} entries but the grid has {grid.ndim} axes; give one "
                         "number, or one entry per axis (a number or a (lo, hi) pair)")
    for k, e in enumerate(entries):
        pair = (e, e) if e is None or np.isscalar(e) else tuple(e)
        if len(pair) != 2:
            raise ValueError(f"exit_cost[{k}] = {e!r}: give a number or a (lo, hi) pair")
        for j, v in enumerate(pair):
            if v is not None and np.isscalar(v) and isinstance(v, (float, np.floating)) and np.isnan(v):
                v = None   # NaN marks a non-exit side (the layout of MFGProblem.exit_costs)
            if sides[k][j] != "exit":
                if v is not None and v != 0:
                    raise ValueError(f"exit_cost[{k}] gives {v!r} for the {('lo', 'hi')[j]} side of axis {k}, "
                                     f"which is {sides[k][j]!r}, not an exit; use None (or 0) there")
                continue
            try:
                val = 0.0 if v is None else float(v)
            except (TypeError, ValueError):
                raise ValueError(f"exit_cost[{k}] = {e!r}: must be numbers") from None
            if not np.isfinite(val):
                raise ValueError(f"exit_cost[{k}] = {e!r}: must be finite")
            out[k, j] = val
    return out


class PlanningProblem(MFGProblem):
    """MFG planning: both end densities prescribed, m(0) = m0 and m(T) = m1 (no terminal cost).

    The terminal condition u(T) = G is replaced by the hard constraint m(T) = m1; u(T) is an unknown
    (a Lagrange multiplier).  Solved by ``mfg_pde.solve_planning`` (quadratic Hamiltonian)."""

    def __init__(self, grid: Grid, T: float, Nt: int, sigma: float, m0, m1, coupling: Coupling | None = None,
                 potential=None, drift=None, name: str | None = None):
        if grid.has_exits:
            raise NotImplementedError(f"PlanningProblem with exit (absorbing) boundaries (grid bc = {grid.bc}): "
                                      "m(T) = m1 cannot be prescribed while mass leaves through the exits; "
                                      "use reflecting or periodic sides, or MFGProblem with a terminal cost")
        super().__init__(grid, T, Nt, sigma, m0, coupling=coupling, potential=potential, drift=drift,
                         terminal_cost=None, name=name)
        self.m1 = check_density(grid, m1, "m1")
        for nm, dens in (("m0", self.m0), ("m1", self.m1)):
            _check_resolved(grid, dens, nm)

    def describe(self) -> dict:
        d = super().describe()
        d["planning"] = True
        return d


def _check_resolved(grid: Grid, m, name: str, min_cells: float = 1.5) -> None:
    """Reject densities narrower than the grid can represent (std below min_cells cells on an axis),
    or with mass piled against a reflecting wall (the box cuts the density off)."""
    cov = grid.covariance(m)
    for k, h in enumerate(grid.spacing):
        sd = float(np.sqrt(max(cov[k, k], 0.0)))
        if sd < min_cells * h:
            raise ValueError(f"{name} is too narrow for the grid on axis {k} (std {sd:.3g} < {min_cells} h = "
                             f"{min_cells * h:.3g}); refine the grid")
    for k, code in enumerate(grid.bc_codes):
        if code != 0:
            continue
        edge = np.moveaxis(m, k, 0)
        wall_mass = (edge[0].sum() + edge[-1].sum()) * grid.cell_volume
        if wall_mass > 1e-3:
            raise ValueError(f"{name} has {wall_mass:.2e} of its mass in the wall cells of axis {k}: the density "
                             "reaches the edge of the box; enlarge the bounds")
