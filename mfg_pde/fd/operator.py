"""A problem's operator as the numba kernels take it: ``kernel_data`` packs the grid, nu, dt, drift, exit
sides, doors and obstacle walls into the padded 3-D layout and the kernels' ``Operator`` / ``Axis`` records.

Exit faces (whole exit sides and doors) travel as per-face ghost values ``ghost`` (3, 2, S): entry
[k, j, a*B + b] is the exit cost of the face of side (k, j) at the side cell (a, b) of the (A, n, B) view of
axis k, NaN where that face is a wall; ``labels`` (same layout, int64) numbers the exit each face belongs
to (doors first, then whole exit sides; -1 on walls) for the per-door outflow.  Obstacle walls travel as
``walls`` (3, n0, n1, n2) int8 face codes (``model.geometry.Geometry.face_codes``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.grid import BC_PERIODIC
from .kernels import HAM_QUADRATIC, HAM_WEIGHTED, Axis, Operator


@dataclass
class KernelData:
    """Arrays shared by every sweep of one problem; ``op`` is the same as the kernels' Operator record."""

    shape3: tuple          # grid shape padded to 3 axes
    ndim: int
    nu: float
    dt: float
    h: np.ndarray          # (3,) spacings (1.0 on padded axes)
    periodic: np.ndarray   # (3,) bool
    drift: np.ndarray      # (Nt or 1, ndim, n0, n1, n2) or a (1, ndim, 1, 1, 1) dummy
    has_drift: bool
    exits: np.ndarray | None = None   # (3, 2): 0 on sides with an exit face, NaN elsewhere; None: no exits
    ghost: np.ndarray | None = None   # (3, 2, S) per-face exit costs, NaN on walls (module docstring)
    labels: np.ndarray | None = None  # (3, 2, S) int64 exit number of each face, -1 on walls
    walls: np.ndarray | None = None   # (3, n0, n1, n2) int8 obstacle face codes; None: no obstacles
    exit_names: tuple = ()            # one label per exit number (doors, then whole exit sides)
    n_doors: int = 0
    hamiltonian: object = None        # a model.hamiltonians.Hamiltonian (None: quadratic)

    def __post_init__(self):
        ham = self.hamiltonian
        kind, hpar, hw, hlip = 0, None, None, 1.0
        if ham is not None and not ham.is_quadratic:
            kind, hpar, hlip = ham.kind, ham.params(), ham.lipschitz
            if ham.kind == HAM_WEIGHTED:   # static weights 1/c0^alpha until op_for(m) gives those of m
                w0 = float(ham.weights(0.0))
                hw = np.full((1,) + tuple(self.shape3), w0)
                hlip = w0
        self.op = make_operator(self.ndim, self.nu, self.dt, self.h, self.periodic, self.drift, self.has_drift,
                                self.exits, self.ghost, self.walls, kind, hpar, hw, hlip)

    @property
    def has_walls(self) -> bool:
        return self.walls is not None

    @property
    def depends_on_m(self) -> bool:
        """Whether the Hamiltonian depends on m (then sweeps take ``op_for(m)``, not ``op``)."""
        return self.hamiltonian is not None and bool(self.hamiltonian.depends_on_m)

    def op_for(self, m) -> Operator:
        """The Operator of the sweeps against the density levels m (Nt+1, *grid): ``op`` itself unless the
        Hamiltonian depends on m; then ``op`` with the weights of step n taken at m^{n+1} (the level the
        coupling F sees in step n), hw (Nt, *shape3)."""
        if not self.depends_on_m:
            return self.op
        if m is None:
            raise ValueError("this problem's Hamiltonian depends on m (congestion): the HJB/FP sweeps need the "
                             "density levels m (Nt+1, *grid) it is evaluated at")
        return self._weighted(m, self.hamiltonian.weights)

    @property
    def separate_fp(self) -> bool:
        """Whether the FP sweeps take other weights than the HJB sweeps (``fp_op_for``)."""
        return self.depends_on_m and hasattr(self.hamiltonian, "fp_weights")

    def fp_op_for(self, m) -> Operator:
        """The Operator of the FP sweeps against m: ``op_for(m)``, unless the Hamiltonian moves the density with
        other weights than the HJB's (``fp_weights``: the planner's congestion Hamiltonian, ``model.social``)."""
        if not self.separate_fp:
            return self.op_for(m)
        return self._weighted(m, self.hamiltonian.fp_weights)

    def _weighted(self, m, weights) -> Operator:
        """``op`` with the weights of step n taken at m^{n+1}, hw (Nt, *shape3)."""
        m = np.asarray(m, dtype=float)
        Nt = m.shape[0] - 1
        w = np.ascontiguousarray(weights(m[1:]), dtype=float).reshape((Nt,) + tuple(self.shape3))
        return self.op._replace(hw=w, hlip=float(w.max()) if w.size else 1.0)

    def axis(self, k: int, dt: float | None = None, op: Operator | None = None, n: int = 0) -> Axis:
        """The kernels' Axis record of axis k for the factor I + dt L_k (dt: the problem's time step by default)
        at step n of the Operator op (default ``self.op``; its Hamiltonian weights of step n)."""
        op = self.op if op is None else op
        lo, hi = op.exits[k]
        elo, ehi = bool(not np.isnan(lo)), bool(not np.isnan(hi))
        hn = int(n) if op.hw.shape[0] > 1 else 0
        return Axis(float(self.nu), float(self.dt if dt is None else dt), float(self.h[k]), bool(self.periodic[k]),
                    bool(self.has_drift), elo, ehi, int(k), op.ghost, bool(op.has_walls), op.walls, int(op.hkind),
                    op.hpar, op.hw, hn, float(op.hlip))

    def step_drift(self, n: int) -> np.ndarray:
        """The drift of time step n, (ndim, n0, n1, n2)."""
        return self.drift[0] if self.drift.shape[0] == 1 else self.drift[n]


def make_operator(ndim, nu, dt, h, periodic, drift, has_drift=True, exits=None, ghost=None, walls=None,
                  hkind=0, hpar=None, hw=None, hlip=1.0) -> Operator:
    """The kernels' Operator record with the types the compiled kernels expect (one signature for all callers with
    the quadratic Hamiltonian, one for all others):
    h (3,) spacings, periodic (3,) flags, drift (Nt or 1, ndim, n0, n1, n2), exits (3, 2) or None (no exits)
    with ghost (3, 2, S) its per-face exit costs (module docstring), walls (3, n0, n1, n2) int8 or None; the
    Hamiltonian: hkind (``kernels.HAM_*``, 0 quadratic), its parameters hpar (None for the quadratic one, whose
    kernels compile apart), the per-node weights hw
    (Nt or 1, n0, n1, n2) of HAM_WEIGHTED (None otherwise) and hlip (a Lipschitz constant of h')."""
    hkind = int(hkind)
    if hkind == HAM_QUADRATIC:
        hpar = None   # the quadratic Hamiltonian's records are their own numba type (``kernels``: compiled apart)
    else:
        hpar = np.zeros(1) if hpar is None else np.ascontiguousarray(hpar, dtype=float).reshape(-1)
    if hkind == HAM_WEIGHTED:
        if hw is None:
            raise ValueError("make_operator: the congestion Hamiltonian (HAM_WEIGHTED) needs its weights hw")
        hw = np.ascontiguousarray(hw, dtype=float)
    else:
        hw = np.ones((1, 1, 1, 1))  # the dummy the kernels expect (``kernels._hw3``)
    if exits is None:
        exits = np.full((3, 2), np.nan)
        ghost = np.zeros((3, 2, 1))
    else:
        exits = np.ascontiguousarray(exits, dtype=float)
        if ghost is None:
            raise ValueError("make_operator: exits need their per-face ghost values (operator.exit_faces)")
        ghost = np.ascontiguousarray(ghost, dtype=float)
    has_walls = walls is not None
    walls = np.zeros((3, 1, 1, 1), dtype=np.int8) if walls is None else np.ascontiguousarray(walls, dtype=np.int8)
    return Operator(int(ndim), float(nu), float(dt), np.ascontiguousarray(h, dtype=float),
                    np.ascontiguousarray(periodic, dtype=np.bool_), bool(has_drift),
                    np.ascontiguousarray(drift, dtype=float), exits, ghost, bool(has_walls), walls, hkind, hpar, hw,
                    float(hlip))


def pad3(shape) -> tuple:
    return tuple(shape) + (1,) * (3 - len(shape))


def exit_array(grid, exit_costs=None) -> np.ndarray | None:
    """(3, 2) exit costs in the kernel layout (NaN on sides that are not exits), None for a grid without exits.
    ``exit_costs``: the (ndim, 2) per-side costs (``MFGProblem.exit_costs``); default 0 on every exit side."""
    if not grid.has_exits:
        return None
    out = np.full((3, 2), np.nan)
    for k, j in grid.exit_sides:
        g = 0.0 if exit_costs is None else float(exit_costs[k][j])
        if not np.isfinite(g):
            raise ValueError(f"exit cost of axis {k} side {('lo', 'hi')[j]} is {g}: must be finite")
        out[k, j] = g
    return out


def _side_view(arr3: np.ndarray, k: int, j: int) -> np.ndarray:
    """The side cells of side (k, j) of a padded 3-D array, flattened in the kernels' a*B + b order."""
    return np.take(arr3, 0 if j == 0 else arr3.shape[k] - 1, axis=k).reshape(-1)


def exit_faces(grid, exit_costs=None, geometry=None):
    """Exit faces in the kernel layout: (exits (3, 2), ghost (3, 2, S), labels (3, 2, S), names, n_doors), or
    None when nothing can leave.  exits[k, j] is 0 on a side with at least one exit face, NaN elsewhere;
    ghost the exit cost of each face (NaN on walls), labels its exit number: the doors of ``geometry`` first
    (in order), then the whole exit sides of the grid (``exit_costs``, default 0).  A face of a whole exit
    side on a solid cell is a wall."""
    doors = [] if geometry is None else geometry.door_faces
    costs = exit_array(grid, exit_costs)
    if costs is None and not doors:
        return None
    shape3 = pad3(grid.shape)
    S = max(int(np.prod(shape3)) // shape3[k] for k in range(3))
    exits = np.full((3, 2), np.nan)
    ghost = np.full((3, 2, S), np.nan)
    labels = np.full((3, 2, S), -1, dtype=np.int64)
    names = []
    for i, (k, j, faces) in enumerate(doors):
        flat = np.flatnonzero(faces.reshape(-1))   # faces: grid shape without axis k, same C order as the view
        ghost[k, j, flat] = geometry.doors[i].cost
        labels[k, j, flat] = i
        exits[k, j] = 0.0
        names.append(geometry.door_names[i])
    if costs is not None:
        solid = None if geometry is None or geometry.solid is None else geometry.solid.reshape(shape3)
        for k, j in grid.exit_sides:
            n_side = int(np.prod(shape3)) // shape3[k]
            open_ = np.ones(n_side, dtype=bool) if solid is None else ~_side_view(solid, k, j)
            ghost[k, j, :n_side][open_] = costs[k, j]
            labels[k, j, :n_side][open_] = len(names)
            exits[k, j] = 0.0
            names.append(f"{grid.axis_names[k]} {('lo', 'hi')[j]}")
    return exits, ghost, labels, tuple(names), len(doors)


def exit_sides_text(grid) -> str:
    return ", ".join(f"axis {k} ({grid.axis_names[k]}) {('lo', 'hi')[j]}" for k, j in grid.exit_sides)


def check_no_exits(problem_or_grid, what: str) -> None:
    """Raise NotImplementedError naming the boundary condition if the grid has exit (absorbing) sides, or
    naming the geometry if the problem has obstacles or doors: for solvers that do not implement them
    (call at their entry point)."""
    grid = getattr(problem_or_grid, "grid", problem_or_grid)
    geometry = getattr(problem_or_grid, "geometry", None)
    if geometry is not None and geometry.active:
        parts = (["obstacles (solid cells)"] if geometry.solid is not None else []) + \
            ([f"doors {geometry.door_names}"] if geometry.doors else [])
        raise NotImplementedError(
            f"{what} does not support walls and doors (its systems are assembled for the plain box: the "
            f"wall faces and door rows are not implemented there); this problem has {' and '.join(parts)}. "
            "Solve it with "
            "mfg_pde.solve(problem, method='auto' | 'anderson' | 'picard' | 'fictitious-play') (their sweeps "
            "implement the walls and doors)")
    if grid.has_exits:
        raise NotImplementedError(
            f"{what} does not support exit (absorbing) boundaries; this grid has exit sides "
            f"[{exit_sides_text(grid)}] (bc = {grid.bc}). Solve exit problems with mfg_pde.solve(problem, "
            "method='anderson' | 'picard' | 'fictitious-play'), or use reflecting/periodic sides")


def kernel_data(problem, exits_supported: bool = False) -> KernelData:
    """The kernel layout of ``problem`` (cached on it).

    A problem whose grid has exit sides, or that has obstacles or doors (``MFGProblem.geometry``), is only
    handed to callers that pass ``exits_supported=True`` (the kernels then see the exits and walls in
    ``KernelData.op`` / ``axis(k)``): any other caller gets a NotImplementedError naming the boundary
    condition or the geometry instead of silently ignoring them."""
    geometry = getattr(problem, "geometry", None)
    if (problem.grid.has_exits or (geometry is not None and geometry.active)) and not exits_supported:
        check_no_exits(problem, "this solver (e.g. method='newton', planning, or another solver built on "
                                "kernel_data without exit support)")
    cache = problem._static_cache
    if "kernel" in cache:
        return cache["kernel"]
    grid = problem.grid
    shape3 = pad3(grid.shape)
    h = np.ones(3)
    h[: grid.ndim] = grid.spacing
    periodic = np.zeros(3, dtype=np.bool_)
    periodic[: grid.ndim] = grid.bc_codes == BC_PERIODIC
    b = problem.drift_steps()
    if b is None:
        drift = np.zeros((1, grid.ndim, 1, 1, 1))
        has = False
    else:
        drift = np.ascontiguousarray(b.reshape(b.shape[:2] + shape3))
        has = True
    faces = exit_faces(grid, getattr(problem, "exit_costs", None), geometry)
    walls = None
    if geometry is not None and geometry.solid is not None:
        walls = np.zeros((3,) + shape3, dtype=np.int8)
        for k in range(grid.ndim):
            walls[k] = geometry.face_codes(k).reshape(shape3)
    ham = getattr(problem, "hamiltonian", None)
    if faces is None:
        kd = KernelData(shape3, grid.ndim, problem.nu, problem.dt, h, periodic, drift, has, walls=walls,
                        hamiltonian=ham)
    else:
        exits, ghost, labels, names, n_doors = faces
        kd = KernelData(shape3, grid.ndim, problem.nu, problem.dt, h, periodic, drift, has, exits, ghost, labels,
                        walls, names, n_doors, ham)
    cache["kernel"] = kd
    return kd


def as3(arr: np.ndarray, lead: int, shape3: tuple) -> np.ndarray:
    """View a C-contiguous array (lead dims, *grid) as (lead dims, *shape3)."""
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    return arr.reshape(arr.shape[:lead] + shape3)


def check_out(out: np.ndarray, shape: tuple, name: str = "out") -> np.ndarray:
    """A caller-supplied output buffer: C-contiguous float64 of exactly ``shape`` (else ValueError)."""
    if out.shape != tuple(shape) or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"{name} has shape {out.shape}; expected a C-contiguous float64 array {tuple(shape)}")
    return out
