"""Numba kernels: upwind (Engquist-Osher) implicit operators, line solves, HJB and FP sweeps.

Arrays use a padded 3-D layout ``(n0, n1, n2)`` (trailing axes of size 1 in 1-D/2-D); a
space-time field is ``(Nt+1, n0, n1, n2)``.  Along axis k a 3-D array is viewed as ``(A, n, B)``
(A = product of the sizes before k, B = product after k): lines along a non-contiguous axis are
solved batched over the contiguous index B; lines along the contiguous axis (B = 1) one at a time by
``tridiag.two_ended_minors`` (periodic ones are copied LINE_BLOCK at a time into a transposed (n, w)
scratch and solved by the batched cyclic code).  ``two_ended_minors``: elimination from both ends at once with
the pivots carried as ratios of leading minors (division-free fma chains, divisions in a vectorised
pass behind them): 1.6 ns per unknown against 5.9 for the division-based two-ended Thomas sweep
(``tridiag.two_ended_thomas_div``, its fallback; benchmarks/bench_tridiag.py).  Kernels use numba's
error_model="numpy" (IEEE division, no zero checks) so that division loops vectorise.

Discretisation (Achdou & Capuzzo-Dolcetta 2010, drift upwinded per axis).  Along axis k, with
D+u_i = (u_{i+1} - u_i)/h, D-u_i = (u_i - u_{i-1})/h and the drift b = b+ - b-:

    Ap_i = min(D+u_i, 0) - b+_i   (<= 0),        Bm_i = max(D-u_i, 0) + b-_i   (>= 0),
    (L_k u)_i = -nu (u_{i+1} - 2u_i + u_{i-1})/h^2 + Ap_i D+u_i + Bm_i D-u_i,
    c_k(u)_i  = [min(D+u_i, 0)^2 + max(D-u_i, 0)^2] / 2     (Engquist-Osher |u_x|^2/2)

so that L_k(u) u - c_k(u) = -nu D2 u + H_EO(D u) - b . D u.  M_k = I + dt L_k has rows

    lower = dt(-nu/h^2 - Bm_i/h),   upper = dt(-nu/h^2 + Ap_i/h),   diag = 1 - lower - upper,

an M-matrix with unit row sums.  Reflecting walls: mirror ghosts, lower_0 = upper_{n-1} = 0
(zero total flux).  Periodic axes wrap (cyclic tridiagonal solve, Sherman-Morrison).

Exit (absorbing, Dirichlet) sides: a ghost node one cell beyond the wall-side cell (x_{-1} = x_0 - h,
resp. x_n = x_{n-1} + h) carries u = g (the side's exit cost) and m = 0.  The wall row is the interior
row with the ghost value: D-u_0 = (u_0 - g)/h (resp. D+u_{n-1} = (g - u_{n-1})/h) in Ap/Bm and in c_k,
and its ghost coefficient lower_0 = -dt r_0 (resp. upper_{n-1} = -dt r_{n-1}), with the exit rate

    r_0 = nu/h^2 + Bm_0/h,      r_{n-1} = nu/h^2 - Ap_{n-1}/h        (>= 0),

is kept in the diagonal, diag = 1 + dt r - (other off-diagonal), and its product with the known ghost
value, dt r g, moves to the right-hand side.  M_k (the matrix WITHOUT a ghost column: lo[0] = up[n-1] = 0
in every array below) is still an M-matrix, its row sums are 1 + dt r >= 1 on exit rows, and the
exit-row equation is  M_k(u) u = src + dt c_k(u)  with the cost extended by the exit payment rate

    c_k(u)_0 = [min(D+u_0, 0)^2 + max((u_0 - g)/h, 0)^2] / 2 + r_0 g       (and likewise at n-1).

The Engquist-Osher identity d/du [M_k(u) u - dt c_k(u)] = M_k(u) still holds (the ghost is a fixed
value), so Newton is still policy iteration.  The FP factor is still M_k^T: column sums of M_k^T are
1 + dt r on exit cells, so a transposed solve loses exactly dt r_i m_i per exit cell and step -- the
outflow (``exit_outflow``, ``diagnostics.outflow``); nothing else leaves.  Exits enter the kernels through
the records: ``Operator.exits`` (a (3, 2) array: 0 where side (axis, lo/hi) has an exit face, NaN where it
has none), ``Operator.ghost`` (3, 2, S: the ghost value of every face of every side, in the a*B + b order
of the (A, n, B) view of the axis, NaN on faces that are walls -- a door is an exit on some faces of a
side, the rest of the side a mirror wall) and the ``Axis`` record's elo, ehi (the side has exit faces) and
k, ghost (the Operator's ghost array; its sides are ghost[k, 0] and ghost[k, 1]).

Obstacle walls (``model.geometry``): the face between a domain cell and a solid cell is a mirror wall,
exactly as at a reflecting side of the box: the row of the cell next to it drops that neighbour
(has_lo / has_hi False in ``eo_row``: no diffusive, advective or Hamiltonian term through the face), so
M_k keeps unit row sums and non-positive off-diagonals, and M_k^T is still the FP factor (mass exact,
m >= 0).  A solid cell has both faces closed along every axis: an identity row, decoupled.  The walls
travel as ``Operator.walls`` (3, n0, n1, n2) int8 face codes per axis -- bit 0: the cell's lower face is a
wall, bit 1: its upper face -- and ``Operator.has_walls``; the ``Axis`` record carries has_walls and the
codes of its axis.  The row builders compute the rows of the plain box first and then, only when
has_walls, rebuild the rows of the cells with a wall code (``_wall_rows``, ``_wall_line``): the maskless
loops are unchanged.

General convex Hamiltonians (``model.hamiltonians``; ``ham_row``: the Engquist-Osher splitting of a one-axis h,
h' in place of the one-sided differences of the rows, L(h') in the cost) travel in the records as hkind and
hpar.  The quadratic Hamiltonian's records have hpar None and are therefore their own numba type: every kernel
compiles a quadratic version and, only once a problem with another Hamiltonian calls it, a general one, and
each version holds only its own row builders (the choice is made while numba types a call, from the record's
type: ``_by_hamiltonian``, ``any_row``).  A quadratic problem never compiles ``ham_row``, and its rows are
``eo_row``'s, bit for bit.

HJB step n (implicit Euler backward, direction splitting over axes k = 0..d-1):

    s_{-1} = u^{n+1} + dt f^n,    s_k  solves  M_k(s_k) s_k = s_{k-1} + dt c_k(s_k),    u^n = s_{d-1}

each substep by Newton's method (the Engquist-Osher Hamiltonian is C^1 and piecewise quadratic:
Newton = policy iteration, quadratic convergence).  In 1-D this is exactly the implicit scheme
(u^n - u^{n+1})/dt - nu D2 u^n + H_EO(D u^n) - b . D u^n = f^n.

FP step n (forward), the exact transpose of the linearised HJB step:

    m^{n+1} = M_0(s_0)^{-T} M_1(s_1)^{-T} ... M_{d-1}(s_{d-1})^{-T} m^n,

so mass is conserved to round-off, m >= 0 for any dt, and the discrete duality
sum m^{n+1} . delta u^n = sum m^n . delta u^{n+1}... holds exactly.  The intermediate states
s_0..s_{d-2} of every step are stored by the HJB sweep (``states``) for the FP sweep.

A 1-D grid whose axis is not periodic is one contiguous line: its sweeps are ``hjb_sweep_line`` and
``fp_sweep_line`` (``hjb_sweep_for``, ``fp_sweep_for``), the same steps through the line solver alone, so
such a problem does not compile the strided, batched and cyclic solvers of the other grids.
"""

from __future__ import annotations

import inspect
import types as pytypes
from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.extending import overload
from .fastpow import POW_MAX, POW_MIN, pow_fast
from .tridiag import two_ended_minors, two_ended_thomas_div as _two_ended_thomas  # noqa: F401  (reference sweep)


# ----------------------------------------------------------------------------- the scalars, as two records
#: The operator of one problem, what every sweep needs besides the fields: ndim, nu = sigma^2/2, the time step
#: dt, the spacings h (3,), the periodic flags (3,), whether there is a base drift and the drift itself
#: (Nt or 1, ndim, n0, n1, n2), and the (3, 2) exit costs of the sides (NaN where a side is not an exit).
#: ghost (3, 2, S) the per-face exit costs (NaN on wall faces), has_walls and the obstacle face codes walls
#: (3, n0, n1, n2) int8 (a (3, 1, 1, 1) dummy without obstacles).
#: The Hamiltonian travels as hkind (HAM_QUADRATIC, ...: which one-axis H), hpar (its parameters, a float
#: array; None for the quadratic Hamiltonian: that makes it another numba type, see "the Hamiltonian, chosen
#: when numba compiles" below), hw (Nt or 1, n0, n1, n2) the per-node weights of HAM_WEIGHTED (congestion: 1 / (c0 + c m^{n+1})^alpha
#: at step n; a (1, 1, 1, 1) dummy otherwise) and hlip (a Lipschitz constant of H', for Newton's a-posteriori
#: stop; inf when H' is not Lipschitz).
Operator = namedtuple("Operator", ("ndim", "nu", "dt", "h", "periodic", "has_drift", "drift", "exits", "ghost",
                                   "has_walls", "walls", "hkind", "hpar", "hw", "hlip"))

#: The scalars of one axis's factor M_k = I + dt L_k: nu, dt, the spacing h, periodic wrap, base drift
#: present, the exit flags (elo, ehi) of its lo/hi sides, the axis k, the Operator's per-face ghost values
#: (ghost; those of this axis's sides are ghost[k, 0] and ghost[k, 1], NaN on wall faces), and the obstacle
#: walls (has_walls; walls: the Operator's face codes, those of this axis walls[k]).  The arrays are the
#: Operator's own, not views: a record is built per step and axis, and views would cost reference counting.
#: The Hamiltonian fields are the Operator's (hkind, hpar, hw, hlip) and hn, the level of hw of this step
#: (0 when hw is static); they default to the quadratic Hamiltonian (hpar None).
Axis = namedtuple("Axis", ("nu", "dt", "h", "periodic", "has_drift", "elo", "ehi", "k", "ghost", "has_walls",
                           "walls", "hkind", "hpar", "hw", "hn", "hlip"),
                  defaults=(0, None, np.ones((1, 1, 1, 1)), 0, 1.0))

#: Kinds of the one-axis Hamiltonian h(p) (the d-D Hamiltonian is sum_k h(p_k); ``model.hamiltonians``):
HAM_QUADRATIC = 0   # p^2 / 2 (the fast path: ``eo_row``)
HAM_POWER = 1       # |p|^q / q, hpar = (q in (1, 2], delta, delta^q (1/2 - 1/q), delta^(q-2), 1 - 1/q)
HAM_BOUNDED = 2     # p^2 / 2 for |p| <= a_max, a_max |p| - a_max^2 / 2 outside, hpar[0] = a_max
HAM_WEIGHTED = 3    # w p^2 / 2 with a per-node weight w (congestion), hw
HAM_TABLE = 4       # H' piecewise linear from a table (a user-supplied H), hpar = (p_max, inv_dp, N, H'_j, H_j)

# Records travel as numba named tuples (they survive the on-disk cache, closures would not).  Flags that
# are constants at a call site are passed as bool(...) / int(...): numba would type a bare True / 0 as
# a literal and compile a second copy of the callee for it.


# ----------------------------------------------------------------------------- the Hamiltonian, chosen when numba compiles
# The records of the quadratic Hamiltonian have hpar None, those of every other one a parameter array: they are
# two numba types, so a kernel compiles one version per type, on its first call with such records.  Where the
# code differs, the choice is made while numba types the call, from that type (the functions made by
# ``_by_hamiltonian`` and the overloads ``any_row``, ``any_cost2``, ``_upwind_side``): a quadratic problem
# compiles only the quadratic code (``eo_row``), a general one only ``ham_row``'s.  (A test of the run-time hkind
# would compile both into every sweep: the cold start of ``mfg-pde run lqg`` doubled.)


def _is_quadratic(t):
    """Whether the numba type t -- of an Operator or Axis record, or of its hpar -- is the quadratic
    Hamiltonian's (hpar None)."""
    if isinstance(t, types.BaseNamedTuple):
        t = t.types[t.fields.index("hpar")]
    return isinstance(t, types.NoneType)


_BY_HAMILTONIAN = """
def {name}({params}):
    return (quadratic if getattr({tag}, "hpar", {tag}) is None else general)({params})


@overload({name}, jit_options={{"error_model": "numpy", "cache": True}})
def _choose({params}):
    return quadratic_body if _is_quadratic({tag}) else general_body
"""


def _body(f):
    """The Python function of the njit function f under another name (``<name>_typed``): what an overload compiles,
    cached on disk apart from f's own entries (those are called from Python; an overload's have no Python
    wrapper, and loading one for a call from Python crashes)."""
    py = f.py_func
    body = pytypes.FunctionType(py.__code__, py.__globals__, py.__name__ + "_typed", py.__defaults__, py.__closure__)
    body.__qualname__ = py.__qualname__ + "_typed"
    body.__doc__ = py.__doc__
    return body


def _by_hamiltonian(name, params, quadratic, general, tag):
    """The kernel function ``name``: the njit function ``quadratic`` for the records of the quadratic Hamiltonian
    and ``general`` (the same arguments, ``params``) for the others, chosen from the type of the argument named
    ``tag`` (a record, or an hpar) when numba types a call; the call compiles the chosen function's own body
    (no wrapper: each layer of calls makes numba optimise the code below it once more, and an inlined overload
    types its body apart), cached on disk (``_body``).  Called from Python, it calls the version of its arguments.  (Written out from a
    template: an overload's typing function must name the arguments its implementation takes.)"""
    for f in (quadratic, general):
        if ", ".join(inspect.signature(f.py_func).parameters) != params:
            raise TypeError(f"_by_hamiltonian({name!r}): {f.__name__} does not take ({params})")
    scope = {"quadratic": quadratic, "general": general, "quadratic_body": _body(quadratic), "general_body": _body(general),
             "overload": overload, "_is_quadratic": _is_quadratic}
    exec(_BY_HAMILTONIAN.format(name=name, params=params, tag=tag), scope)  # noqa: S102 -- a fixed template
    fn = scope[name]
    fn.__module__ = __name__
    fn.__doc__ = f"``{quadratic.__name__}`` (quadratic Hamiltonian) or ``{general.__name__}``: {quadratic.__doc__}"
    return fn


def ham_params(rec):
    """The Hamiltonian parameters of an Operator / Axis record: hpar, or for the quadratic Hamiltonian (hpar
    None) a placeholder array (for code outside the kernels that takes them for every kind)."""
    return np.zeros(1) if rec.hpar is None else rec.hpar


@overload(ham_params)
def _ham_params(rec):
    if _is_quadratic(rec):
        return lambda rec: np.zeros(1)
    return lambda rec: rec.hpar


# ----------------------------------------------------------------------------- geometry
@njit(cache=True, error_model="numpy", inline="always")
def _split(shape3, axis):
    if axis == 0:
        return 1, shape3[0], shape3[1] * shape3[2]
    if axis == 1:
        return shape3[0], shape3[1], shape3[2]
    return shape3[0] * shape3[1], shape3[2], 1


@njit(cache=True, error_model="numpy")
def _workspace(shape3):
    """Scratch for the line solvers: 9 rows of the largest n*B over axes (= the grid size)."""
    return np.empty((9, shape3[0] * shape3[1] * shape3[2]))


@njit(cache=True, error_model="numpy", inline="always")
def axis_at(op, k, dt, n):
    """The Axis record of axis k of the Operator op at time step n, for a factor I + dt L_k (dt: op.dt in a
    time step; n selects the step's Hamiltonian weights when they move)."""
    elo = not np.isnan(op.exits[k, 0])
    ehi = not np.isnan(op.exits[k, 1])
    hn = n if op.hw.shape[0] > 1 else 0
    return Axis(float(op.nu), float(dt), float(op.h[k]), bool(op.periodic[k]), bool(op.has_drift), elo, ehi,
                int(k), op.ghost, bool(op.has_walls), op.walls, int(op.hkind), op.hpar, op.hw, int(hn),
                float(op.hlip))


@njit(cache=True, error_model="numpy", inline="always")
def axis_of(op, k, dt):
    """The Axis record of axis k of the Operator op (its first step's Hamiltonian weights: ``axis_at``)."""
    return axis_at(op, k, dt, int(0))


@njit(cache=True, error_model="numpy", inline="always")
def drift_at(op, n):
    """The drift of time step n, (ndim, n0, n1, n2) (the one static level when the drift does not move)."""
    return op.drift[0] if op.drift.shape[0] == 1 else op.drift[n]


# ----------------------------------------------------------------------------- exit sides


@njit(cache=True, error_model="numpy", inline="always")
def _exit_ghost(gi, gex, bk, has_drift, hi_side, inv_h, dif, hk, hp, wi):
    """Exit ghost of a wall-side node with value gi (ghost value gex, drift bk): returns (r, c), the exit
    rate r >= 0 (the ghost coefficient of the row of M_k is -dt r) and the one-sided Engquist-Osher term
    c = max((gi - gex)/h, 0)^2 / 2 (lower side) or min((gex - gi)/h, 0)^2 / 2 (upper side); for a general
    Hamiltonian (hk, hp, node weight wi; ``ham_row``) h'(.) in the rate and L(h'(.)) in c."""
    if hi_side:
        dp = (gex - gi) * inv_h
        ap = dp if dp < 0.0 else 0.0
        ap, cst = _upwind_side(ap, hk, hp, wi)
        if has_drift:
            if bk > 0.0:
                ap -= bk
        rate = dif - ap * inv_h
    else:
        dm = (gi - gex) * inv_h
        bm = dm if dm > 0.0 else 0.0
        bm, cst = _upwind_side(bm, hk, hp, wi)
        if has_drift:
            if bk < 0.0:
                bm -= bk
        rate = dif + bm * inv_h
    return rate, 0.5 * cst


@njit(cache=True, error_model="numpy", inline="always")
def _exit_rows(g3, drift_k, a, face0, ax, di, rhs, with_rhs, W3, aw):
    """Exit-side rows of M_k(g) for outer index a ((n, B) outputs, filled before as for a mirror wall):
    di += dt r on the exit rows, and with with_rhs also rhs += dt (c_ghost + r g).  The face of column b
    is face0 + b in the per-face ghost arrays (face0 = a B for the (A, n, B) view); NaN faces are walls.
    W3, aw: the Hamiltonian weights (``_hw3``) and their outer index (read only for HAM_WEIGHTED)."""
    n = g3.shape[1]
    B = g3.shape[2]
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for side in range(2):
        if side == 0 and not ax.elo:
            continue
        if side == 1 and not ax.ehi:
            continue
        i = 0 if side == 0 else n - 1
        G = ax.ghost[ax.k, side]
        for b in range(B):
            gex = G[face0 + b]
            if np.isnan(gex):  # a wall face of a side with doors
                continue
            bk = drift_k[a, i, b] if ax.has_drift else 0.0
            rate, cst = _exit_ghost(g3[a, i, b], gex, bk, ax.has_drift, side == 1, inv_h, dif, ax.hkind, ax.hpar,
                                    _wat(W3, aw, i, b, ax.hkind))
            di[i, b] += ax.dt * rate
            if with_rhs:
                rhs[i, b] += ax.dt * (cst + rate * gex)


@njit(cache=True, error_model="numpy", inline="always")
def _exit_line(g, d, line, ax, D, rhs, with_rhs):
    """_exit_rows for contiguous line number ``line`` (1-D arrays g, d, D, rhs), through (1, n, 1) views."""
    n = g.shape[0]
    _exit_rows(g.reshape((1, n, 1)), d.reshape((1, n, 1)), int(0), line, ax, D.reshape((n, 1)),
               rhs.reshape((n, 1)), with_rhs, _hw_lines(ax, n), line)


# ----------------------------------------------------------------------------- the stencil (one place)
@njit(cache=True, error_model="numpy", inline="always")
def stencil_scales(nu, h):
    """(1 / h, nu / h^2): the advective and diffusive scales of the stencil on an axis of spacing h."""
    inv_h = 1.0 / h
    return inv_h, nu * inv_h * inv_h


@njit(cache=True, error_model="numpy", inline="always")
def eo_cost2(dplus, dminus):
    """Twice the Engquist-Osher Hamiltonian of one node: min(D+g, 0)^2 + max(D-g, 0)^2."""
    p = dplus if dplus < 0.0 else 0.0
    m = dminus if dminus > 0.0 else 0.0
    return p * p + m * m


@njit(cache=True, error_model="numpy", inline="always")
def neighbours(i, n, periodic):
    """(i - 1, i + 1, has_lo, has_hi) of node i on a line of n nodes: wrapped on a periodic axis; at a
    wall the missing neighbour is i itself (a valid index) and its flag False."""
    im = i - 1
    ip = i + 1
    has_lo = True
    has_hi = True
    if ip == n:
        if periodic:
            ip = 0
        else:
            has_hi = False
            ip = i
    if im < 0:
        if periodic:
            im = n - 1
        else:
            has_lo = False
            im = i
    return im, ip, has_lo, has_hi


@njit(cache=True, error_model="numpy", inline="always")
def eo_row(g_im, g_i, g_ip, bk, has_drift, has_lo, has_hi, dif, inv_h, dt):
    """One node's row of M_k(g) = I + dt L_k(g), the Engquist-Osher upwinding of |D_k g|^2 / 2 and of the
    drift b_k (dif = nu / h^2, D+g = (g_ip - g_i) / h, D-g = (g_i - g_im) / h):

        lower = dt (-dif - (max(D-g, 0) + max(-b_k, 0)) / h)
        upper = dt (-dif + (min(D+g, 0) - max(b_k, 0)) / h)          diag = 1 - lower - upper

    and twice the node's Hamiltonian cost, min(D+g, 0)^2 + max(D-g, 0)^2 (``eo_cost2``).  has_lo / has_hi
    False at a mirror wall: no flux through it, that neighbour's terms are 0 (g_im / g_ip are not read
    then).  Returns (lower, upper, cost2).  Every builder of rows, costs and residuals calls this."""
    upper = 0.0
    dp = 0.0
    if has_hi:
        dp = (g_ip - g_i) * inv_h
        ap = dp if dp < 0.0 else 0.0
        if has_drift and bk > 0.0:
            ap -= bk
        upper = dt * (-dif + ap * inv_h)
    lower = 0.0
    dm = 0.0
    if has_lo:
        dm = (g_i - g_im) * inv_h
        bm = dm if dm > 0.0 else 0.0
        if has_drift and bk < 0.0:
            bm -= bk
        lower = dt * (-dif - bm * inv_h)
    return lower, upper, eo_cost2(dp, dm)


# ----------------------------------------------------------------------------- general convex Hamiltonians
# Each kind's (h'(p), L(h'(p))) is written once, as an inlined scalar function; ``ham_side`` chooses among them
# per call (the paths that are not hot loops) and ``ham_edges`` once per line, around a loop of its own.
@njit(cache=True, error_model="numpy", inline="always")
def _power_from(p, a, t, delta, s, c1, shift):
    """(h'(p), L(h'(p))) of h(p) = |p|^q / q (``model.hamiltonians.Power``) from a = |p| and t = a^(q-1):
    h'(p) = sign(p) t and L(h'(p)) = c1 a t - shift, continued linearly (h'(p) = s p) below |p| = delta and at
    p = 0.  The constants of ``Power.params`` (hp = (q, delta, shift, s, c1)): s = delta^(q-2), c1 = 1 - 1/q,
    shift = delta^q (1/2 - 1/q) (one power per edge, not two).  No branch: a loop of it vectorises."""
    lin = a < delta or a == 0.0  # the linear continuation below delta (``model.hamiltonians.Power``)
    d = s * p if lin else (t if p > 0.0 else -t)
    c = 0.5 * s * (p * p) if lin else c1 * (a * t) - shift
    return d, c


@njit(cache=True, error_model="numpy", inline="always")
def _power_library(a, delta):
    """Whether h'(p) at |p| = a needs the library pow: a power (not the linear part) outside fastpow's range."""
    return not (a < delta or a == 0.0) and not (a >= POW_MIN and a <= POW_MAX)


@njit(cache=True, error_model="numpy", inline="always")
def _power_side(p, hp):
    """h(p) = |p|^q / q: (h'(p), L(h'(p))) (``_power_from``) at one p; the power as in ``ham_edges``."""
    a = abs(p)
    q = hp[0]
    if _power_library(a, hp[1]):
        t = a ** (q - 1.0)
    elif q == 2.0:
        t = a
    elif q == 1.5:
        t = np.sqrt(a)
    else:
        t = pow_fast(min(max(a, POW_MIN), POW_MAX), q - 1.0)
    return _power_from(p, a, t, hp[1], hp[3], hp[4], hp[2])


@njit(cache=True, error_model="numpy")
def _power_edges(P, C, hp, with_cost):
    """``ham_edges`` for h(p) = |p|^q / q: the power by ``fastpow`` in SIMD lanes (q = 1.5: the square root; q = 2:
    |p|),
    |p| clamped into its range (the linear part ignores t); a line with a |p| that needs the library pow
    takes ``_power_side`` instead.  The constants are read into locals first (P, C and hp could alias:
    loads from hp inside the loop would keep it scalar)."""
    m = P.shape[0]
    q = hp[0]
    delta = hp[1]
    shift = hp[2]
    s = hp[3]
    c1 = hp[4]
    r = q - 1.0
    library = False
    for k in range(m):
        library |= _power_library(abs(P[k]), delta)
    if library:
        for k in range(m):
            d, c = _power_side(P[k], hp)
            P[k] = d
            if with_cost:
                C[k] = c
    elif q == 2.0:  # |p| itself (exact: the quadratic Hamiltonian's numbers)
        for k in range(m):
            p = P[k]
            a = abs(p)
            d, c = _power_from(p, a, a, delta, s, c1, shift)
            P[k] = d
            if with_cost:
                C[k] = c
    elif q == 1.5:
        for k in range(m):
            p = P[k]
            a = abs(p)
            d, c = _power_from(p, a, np.sqrt(a), delta, s, c1, shift)
            P[k] = d
            if with_cost:
                C[k] = c
    else:
        for k in range(m):
            p = P[k]
            a = abs(p)
            d, c = _power_from(p, a, pow_fast(min(max(a, POW_MIN), POW_MAX), r), delta, s, c1, shift)
            P[k] = d
            if with_cost:
                C[k] = c


@njit(cache=True, error_model="numpy", inline="always")
def _bounded_side(p, hp):
    """h(p) = sup_{|a| <= a_max} (a p - a^2 / 2) (hp[0] = a_max): h'(p) = clip(p, -a_max, a_max), and
    L(h'(p)) = h'(p)^2 / 2."""
    amax = hp[0]
    if p > amax:
        return amax, 0.5 * (amax * amax)
    if p < -amax:
        return -amax, 0.5 * (amax * amax)
    return p, 0.5 * (p * p)


@njit(cache=True, error_model="numpy", inline="always")
def _weighted_side(p, wi):
    """h(p) = w p^2 / 2 with the node weight w = wi (congestion): h'(p) = w p, L(h'(p)) = w p^2 / 2."""
    d = wi * p
    return d, 0.5 * (d * p)


@njit(cache=True, error_model="numpy", inline="always")
def _table_side(p, hp):
    """A tabulated h (a user-supplied separable H, ``model.hamiltonians.Separable``): h' linear between the
    nodes p_j = (j - mid) dp, h its exact integral (h(0) = 0); hp = (p_max, 1/dp, N, h'_j, h_j)."""
    N = int(hp[2])
    mid = (N - 1) // 2
    s = p * hp[1] + mid
    j = int(np.floor(s))
    if j < 0:
        j = 0
    elif j > N - 2:
        j = N - 2
    t = s - j
    d0 = hp[3 + j]
    d1 = hp[4 + j]
    d = d0 + t * (d1 - d0)
    H = hp[3 + N + j] + (t * d0 + 0.5 * (t * t) * (d1 - d0)) / hp[1]
    return d, p * d - H


@njit(cache=True, error_model="numpy")
def ham_side(p, hk, hp, wi):
    """(h'(p), p h'(p) - h(p)) of the one-axis Hamiltonian h of kind hk (parameters hp, node weight wi) at
    a one-sided difference p: the upwind coefficient and the Legendre dual L(h'(p)), the control cost of the
    optimal control a = -h'(p).  h is convex with h(0) = h'(0) = 0 for every kind, so h'(p) has the sign
    of p (or is 0)."""
    if hk == HAM_POWER:
        return _power_side(p, hp)
    if hk == HAM_BOUNDED:
        return _bounded_side(p, hp)
    if hk == HAM_WEIGHTED:
        return _weighted_side(p, wi)
    if hk == HAM_TABLE:
        return _table_side(p, hp)
    return p, 0.5 * (p * p)


@njit(cache=True, error_model="numpy")
def ham_edges(P, C, hk, hp, with_cost):
    """``ham_side`` over a line of edges, in place: P[k] (a one-sided difference p on entry) becomes h'(p)
    and, with with_cost, C[k] becomes L(h'(p)).  For HAM_WEIGHTED, C[k] holds on entry the weight of the node
    the edge is upwind for (``_rows_h`` puts it there).  The kind is chosen once, outside the loop over the edges:
    each kind's loop is tight (bounded and weighted ones vectorise), where a choice per node cost the rows
    two to three times the quadratic ones."""
    m = P.shape[0]
    if hk == HAM_BOUNDED:
        for k in range(m):
            d, c = _bounded_side(P[k], hp)
            P[k] = d
            if with_cost:
                C[k] = c
    elif hk == HAM_WEIGHTED:
        for k in range(m):
            d, c = _weighted_side(P[k], C[k])
            P[k] = d
            C[k] = c
    elif hk == HAM_POWER:
        _power_edges(P, C, hp, with_cost)
    elif hk == HAM_TABLE:
        for k in range(m):
            d, c = _table_side(P[k], hp)
            P[k] = d
            if with_cost:
                C[k] = c
    else:  # HAM_QUADRATIC in a general record (populations that mix Hamiltonians)
        for k in range(m):
            d, c = ham_side(P[k], hk, hp, 1.0)
            P[k] = d
            if with_cost:
                C[k] = c


@njit(cache=True, error_model="numpy", inline="always")
def _upwind_side_h(p, hk, hp, wi):
    """(h'(p), 2 L(h'(p))) (``ham_side``) at an upwind one-sided difference p (0 where the side is not upwind)."""
    if p != 0.0:
        d, c = ham_side(p, hk, hp, wi)
        return d, 2.0 * c
    return 0.0, 0.0


@njit(cache=True, error_model="numpy")
def _upwind_side_q(p, hk, hp, wi):
    """(h'(p), twice its cost L(h'(p))) at an upwind one-sided difference p (min(D+g, 0) or max(D-g, 0)) for
    the quadratic Hamiltonian: (p, p^2)."""
    return p, p * p


_upwind_side = _by_hamiltonian("_upwind_side", "p, hk, hp, wi", _upwind_side_q, _upwind_side_h, "hp")


@njit(cache=True, error_model="numpy")
def ham_cost2(dplus, dminus, hk, hp, wi):
    """Twice the cost of the Engquist-Osher splitting of a convex h (``ham_row``) at one node:
    2 [L(h'(min(D+g, 0))) + L(h'(max(D-g, 0)))] (``eo_cost2`` for h = p^2/2)."""
    c = 0.0
    if dplus < 0.0:
        c += ham_side(dplus, hk, hp, wi)[1]
    if dminus > 0.0:
        c += ham_side(dminus, hk, hp, wi)[1]
    return 2.0 * c


@njit(cache=True, error_model="numpy", inline="always")
def _edge_row(e_lo, c_lo, e_hi, c_hi, bk, has_drift, has_lo, has_hi, dif, inv_h, dt):
    """``ham_row_inline`` from the edge values of ``ham_edges``: e_lo = h'(D-g), c_lo = L(e_lo) of the edge
    below the node, e_hi, c_hi of the edge above (h' has the sign of its difference, so the upwind tests
    D+g < 0 and D-g > 0 read e_hi < 0 and e_lo > 0).  Returns (lower, upper, 2 cost), the same numbers."""
    upper = 0.0
    cost = 0.0
    if has_hi:
        ap = 0.0
        if e_hi < 0.0:
            ap = e_hi
            cost += c_hi
        if has_drift and bk > 0.0:
            ap -= bk
        upper = dt * (-dif + ap * inv_h)
    lower = 0.0
    if has_lo:
        bm = 0.0
        if e_lo > 0.0:
            bm = e_lo
            cost += c_lo
        if has_drift and bk < 0.0:
            bm -= bk
        lower = dt * (-dif - bm * inv_h)
    return lower, upper, 2.0 * cost


@njit(cache=True, error_model="numpy", inline="always")
def ham_row_inline(g_im, g_i, g_ip, bk, has_drift, has_lo, has_hi, dif, inv_h, dt, hk, hp, wi):
    """``eo_row`` for a general convex one-axis Hamiltonian h (kind hk, parameters hp, node weight wi): the
    Engquist-Osher splitting h_EO(D-g, D+g) = h(max(D-g, 0)) + h(min(D+g, 0)) (h(0) = 0), written as

        lower = dt (-dif - (h'(max(D-g, 0)) + max(-b_k, 0)) / h)
        upper = dt (-dif + (h'(min(D+g, 0)) - max(b_k, 0)) / h)          diag = 1 - lower - upper
        cost  = L(h'(min(D+g, 0))) + L(h'(max(D-g, 0))),   L(h'(p)) = p h'(p) - h(p)

    so that M_k(g) g - dt cost = g + dt (-nu D2 g + h_EO - b_k D g), the off-diagonals are <= 0 (h' <= 0 on
    p <= 0, >= 0 on p >= 0: monotone) and d/dg [M_k(g) g - dt cost(g)] = M_k(g) (the Engquist-Osher identity:
    Newton is policy iteration).  Returns (lower, upper, 2 cost) (``_edge_row``; the hot loops evaluate h'
    per edge instead, ``_rows_h``)."""
    e_hi = 0.0
    c_hi = 0.0
    if has_hi:
        dp = (g_ip - g_i) * inv_h
        if dp < 0.0:
            e_hi, c_hi = ham_side(dp, hk, hp, wi)
    e_lo = 0.0
    c_lo = 0.0
    if has_lo:
        dm = (g_i - g_im) * inv_h
        if dm > 0.0:
            e_lo, c_lo = ham_side(dm, hk, hp, wi)
    return _edge_row(e_lo, c_lo, e_hi, c_hi, bk, has_drift, has_lo, has_hi, dif, inv_h, dt)


@njit(cache=True, error_model="numpy")
def ham_row(g_im, g_i, g_ip, bk, has_drift, has_lo, has_hi, dif, inv_h, dt, hk, hp, wi):
    """``ham_row_inline`` as a called function: the paths that are not hot loops (one copy of the code)."""
    return ham_row_inline(g_im, g_i, g_ip, bk, has_drift, has_lo, has_hi, dif, inv_h, dt, hk, hp, wi)


@njit(cache=True, error_model="numpy")
def _eo_row_any(g_im, g_i, g_ip, bk, has_drift, has_lo, has_hi, dif, inv_h, dt, hk, hp, wi):
    """``eo_row`` with the arguments of ``ham_row``."""
    return eo_row(g_im, g_i, g_ip, bk, has_drift, has_lo, has_hi, dif, inv_h, dt)


#: ``eo_row`` (hp None: the quadratic Hamiltonian, bit for bit) or ``ham_row``: for the paths that are not hot loops
any_row = _by_hamiltonian("any_row", "g_im, g_i, g_ip, bk, has_drift, has_lo, has_hi, dif, inv_h, dt, hk, hp, wi",
                          _eo_row_any, ham_row, "hp")


@njit(cache=True, error_model="numpy")
def _eo_cost2_any(dplus, dminus, hk, hp, wi):
    """``eo_cost2`` with the arguments of ``ham_cost2``."""
    return eo_cost2(dplus, dminus)


#: ``eo_cost2`` (hp None: quadratic) or ``ham_cost2``
any_cost2 = _by_hamiltonian("any_cost2", "dplus, dminus, hk, hp, wi", _eo_cost2_any, ham_cost2, "hp")


@njit(cache=True, error_model="numpy", inline="always")
def _hw3(ax, A, n, B):
    """The step's Hamiltonian weights of the axis as an (A, n, B) view (a (1, 1, 1) dummy unless HAM_WEIGHTED);
    read them as W[a, i, b] only when ax.hkind == HAM_WEIGHTED."""
    if ax.hkind == HAM_WEIGHTED:
        return ax.hw[ax.hn].reshape((A, n, B))
    return ax.hw[0].reshape((1, 1, 1))  # hw is the (1, 1, 1, 1) dummy then (``make_operator``)


@njit(cache=True, error_model="numpy", inline="always")
def _hw_lines(ax, n):
    """The weights for contiguous lines of n nodes as an (A, n, 1) view, line a = [a] (``_hw3``)."""
    return _hw3(ax, ax.hw[0].size // n, n, 1)


@njit(cache=True, error_model="numpy", inline="always")
def _wat(W3, a, i, b, hk):
    """Node weight from an (A, n, B) weight view (``_hw3``): W3[a, i, b] for HAM_WEIGHTED, else 1."""
    if hk == HAM_WEIGHTED:
        return W3[a, i, b]
    return 1.0


# ----------------------------------------------------------------------------- obstacle walls
@njit(cache=True, error_model="numpy", inline="always")
def _walls2(ax, A, n):
    """The wall codes of the axis as an (A, n) view for contiguous lines (a (1, 1) dummy without walls)."""
    if ax.has_walls:
        return ax.walls[ax.k].reshape((A, n))
    return ax.walls[0].reshape((1, 1))


@njit(cache=True, error_model="numpy", inline="always")
def _walls3(ax, A, n, B):
    """The wall codes of the axis as an (A, n, B) view (a (1, 1, 1) dummy without walls)."""
    if ax.has_walls:
        return ax.walls[ax.k].reshape((A, n, B))
    return ax.walls[0].reshape((1, 1, 1))


@njit(cache=True, error_model="numpy")
def _wall_rows(g3, drift_k, a, ax, lo, di, up, src3, rhs, with_rhs):
    """Rebuild, for outer index a, the rows ((n, B) outputs) of the cells with a wall code: the neighbour
    across a wall face is dropped (``eo_row`` with has_lo / has_hi False, as at a mirror wall); with
    with_rhs also rhs = src + dt c_k(g) there (the Engquist-Osher cost without that face's term)."""
    n = g3.shape[1]
    B = g3.shape[2]
    W = ax.walls[ax.k].reshape((g3.shape[0], n, B))
    Wh = _hw3(ax, g3.shape[0], n, B)
    hk = ax.hkind
    has_drift = ax.has_drift
    dt = ax.dt
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for i in range(n):
        im, ip, has_lo, has_hi = neighbours(i, n, ax.periodic)
        for b in range(B):
            code = W[a, i, b]
            if code == 0:
                continue
            bk = drift_k[a, i, b] if has_drift else 0.0
            lower, upper, cst = any_row(g3[a, im, b], g3[a, i, b], g3[a, ip, b], bk, has_drift,
                                        has_lo and (code & 1) == 0, has_hi and (code & 2) == 0, dif, inv_h, dt,
                                        hk, ax.hpar, _wat(Wh, a, i, b, hk))
            lo[i, b] = lower
            up[i, b] = upper
            di[i, b] = 1.0 - lower - upper
            if with_rhs:
                rhs[i, b] = src3[a, i, b] + dt * (0.5 * cst)


@njit(cache=True, error_model="numpy", inline="always")
def _put_line_row(i, n, lower, upper, cst, transpose, L, U, D, src, rhs, with_rhs, dt):
    """Row i of M_k (or, with transpose, its column i as rows of M_k^T) into the line's (L, D, U), and
    rhs_i = src_i + dt c_k(g)_i when with_rhs (cst: twice the row's cost, as the row builders return it)."""
    D[i] = 1.0 - lower - upper
    if transpose:
        if i < n - 1:
            L[i + 1] = upper
        if i > 0:
            U[i - 1] = lower
    else:
        L[i] = lower
        U[i] = upper
    if with_rhs:
        rhs[i] = src[i] + dt * (0.5 * cst)


@njit(cache=True, error_model="numpy")
def _wall_line(g, d, wl, ax, transpose, L, U, D, src, rhs, with_rhs, line):
    """``_wall_rows`` for one contiguous non-periodic line (number ``line``) with wall codes wl, in the layout
    of ``_line_rows`` (rows of M_k, or of M_k^T with transpose: lower^T_i = upper_{i-1}, upper^T_i = lower_{i+1})."""
    n = g.shape[0]
    has_drift = ax.has_drift
    dt = ax.dt
    hk = ax.hkind
    Wh = _hw_lines(ax, n)
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for i in range(n):
        code = wl[i]
        if code == 0:
            continue
        lower, upper, cst = any_row(g[max(i - 1, 0)], g[i], g[min(i + 1, n - 1)], d[i] if has_drift else 0.0,
                                    has_drift, i > 0 and (code & 1) == 0, i < n - 1 and (code & 2) == 0, dif, inv_h,
                                    dt, hk, ax.hpar, _wat(Wh, line, i, 0, hk))
        _put_line_row(i, n, lower, upper, cst, transpose, L, U, D, src, rhs, with_rhs, dt)


@njit(cache=True, error_model="numpy")
def _wall_cost(g, axis, ax, out):
    """out = c_k(g) on the cells with a wall code of axis k (the wall face's one-sided term dropped)."""
    A, n, B = _split(g.shape, axis)
    g3 = g.reshape((A, n, B))
    o3 = out.reshape((A, n, B))
    W = ax.walls[ax.k].reshape((A, n, B))
    Wh = _hw3(ax, A, n, B)
    hk = ax.hkind
    inv_h = 1.0 / ax.h
    for a in range(A):
        for i in range(n):
            im, ip, has_lo, has_hi = neighbours(i, n, ax.periodic)
            for b in range(B):
                code = W[a, i, b]
                if code == 0:
                    continue
                gi = g3[a, i, b]
                dp = (g3[a, ip, b] - gi) * inv_h if has_hi and (code & 2) == 0 else 0.0
                dm = (gi - g3[a, im, b]) * inv_h if has_lo and (code & 1) == 0 else 0.0
                o3[a, i, b] = 0.5 * any_cost2(dp, dm, hk, ax.hpar, _wat(Wh, a, i, b, hk))


# ----------------------------------------------------------------------------- coefficients
@njit(cache=True, error_model="numpy")
def _rows_h(g3, drift_k, a, ax, src3, lo, di, up, rhs, with_rhs):
    """``line_coefficients`` (and with with_rhs ``_rows_cost``: rhs = src + dt c_k(g)) for a general convex
    Hamiltonian (ax.hkind != HAM_QUADRATIC; ``ham_row``), walls and exits included.

    Two passes: the one-sided differences of the edges go to (up[e + 1], lo[e + 1]) for the edge between
    nodes e and e + 1 and become (h', L(h')) there (``ham_edges``, one kind test per line); the rows then
    read each edge before overwriting its slot (row i reads slots i and i + 1 and writes slot i).  A
    periodic axis keeps its wrap edge (n - 1, 0) apart."""
    n = g3.shape[1]
    B = g3.shape[2]
    has_drift = ax.has_drift
    dt = ax.dt
    hk = ax.hkind
    hp = ax.hpar
    periodic = ax.periodic
    weighted = hk == HAM_WEIGHTED
    Wh = _hw3(ax, g3.shape[0], n, B)
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for e in range(n - 1):
        for b in range(B):
            p = (g3[a, e + 1, b] - g3[a, e, b]) * inv_h
            up[e + 1, b] = p
            if weighted:  # the weight of the node the edge is upwind for
                lo[e + 1, b] = Wh[a, e, b] if p < 0.0 else Wh[a, e + 1, b]
    for e in range(1, n):
        ham_edges(up[e], lo[e], hk, hp, with_rhs)
    pw = up[0]  # a dummy unless periodic
    cw = lo[0]
    if periodic:
        pw = np.empty(B)
        cw = np.empty(B)
        for b in range(B):
            p = (g3[a, 0, b] - g3[a, n - 1, b]) * inv_h
            pw[b] = p
            if weighted:
                cw[b] = Wh[a, n - 1, b] if p < 0.0 else Wh[a, 0, b]
        ham_edges(pw, cw, hk, hp, with_rhs)
    for i in range(n):
        has_lo = i > 0 or periodic
        has_hi = i < n - 1 or periodic
        for b in range(B):
            if i > 0:
                e_lo = up[i, b]
                c_lo = lo[i, b]
            else:
                e_lo = pw[b]
                c_lo = cw[b]
            if i < n - 1:
                e_hi = up[i + 1, b]
                c_hi = lo[i + 1, b]
            else:
                e_hi = pw[b]
                c_hi = cw[b]
            bk = drift_k[a, i, b] if has_drift else 0.0
            lower, upper, cst = _edge_row(e_lo, c_lo, e_hi, c_hi, bk, has_drift,
                                          has_lo, has_hi, dif, inv_h, dt)
            lo[i, b] = lower
            up[i, b] = upper
            di[i, b] = 1.0 - lower - upper
            if with_rhs:
                rhs[i, b] = src3[a, i, b] + dt * (0.5 * cst)
    if ax.has_walls:
        _wall_rows(g3, drift_k, a, ax, lo, di, up, src3, rhs, with_rhs)
    if ax.elo or ax.ehi:
        _exit_rows(g3, drift_k, a, a * B, ax, di, rhs, with_rhs, Wh, a)


@njit(cache=True, error_model="numpy")
def _line_rows_h(g, d, ax, transpose, L, U, D, src, rhs, with_rhs, line):
    """``_line_rows`` (and with with_rhs ``_line_rows_cost``) for a general convex Hamiltonian
    (ax.hkind != HAM_QUADRATIC; ``ham_row``) on contiguous non-periodic line number ``line``: the two passes
    of ``_rows_h`` (edge e in slot e + 1 of U and L).  The rows of M^T are written by a pass of their own
    after the loop (written in it, they made the loop 3x slower)."""
    n = g.shape[0]
    has_drift = ax.has_drift
    dt = ax.dt
    hk = ax.hkind
    hp = ax.hpar
    Wh = _hw_lines(ax, n)
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for e in range(n - 1):
        U[e + 1] = (g[e + 1] - g[e]) * inv_h
    if hk == HAM_WEIGHTED:  # the weight of the node the edge is upwind for
        for e in range(n - 1):
            L[e + 1] = Wh[line, e, 0] if U[e + 1] < 0.0 else Wh[line, e + 1, 0]
    ham_edges(U[1:], L[1:], hk, hp, with_rhs)
    for i in range(n):
        bk = d[i] if has_drift else 0.0
        e_lo = U[i]  # (slot 0: not an edge, unused)
        c_lo = L[i]
        e_hi = U[i + 1] if i < n - 1 else 0.0
        c_hi = L[i + 1] if i < n - 1 else 0.0
        lower, upper, cst = _edge_row(e_lo, c_lo, e_hi, c_hi, bk, has_drift, i > 0, i < n - 1, dif,
                                      inv_h, dt)
        _put_line_row(i, n, lower, upper, cst, bool(False), L, U, D, src, rhs, with_rhs, dt)
    if transpose:  # rows of M^T: lower^T_i = upper_{i-1}, upper^T_i = lower_{i+1} (a pass of its own: writing
        for i in range(n):  # them inside the loop above made it 3x slower)
            t = L[i]
            L[i] = U[i]
            U[i] = t
        for i in range(n - 1, 0, -1):
            L[i] = L[i - 1]
        L[0] = 0.0
        for i in range(n - 1):
            U[i] = U[i + 1]
        U[n - 1] = 0.0
    if ax.has_walls:
        _wall_line(g, d, _walls2(ax, ax.walls[0].size // n, n)[line], ax, transpose, L, U, D, src, rhs, with_rhs,
                   line)
    if ax.elo or ax.ehi:
        _exit_line(g, d, line, ax, D, rhs, with_rhs)


@njit(cache=True, error_model="numpy")
def _coefficients_q(g3, drift_k, a, ax, lo, di, up):
    """Fill lo, di, up (shape (n, B)) with the rows of M_k(g) for outer index a.

    g3 and drift_k are (A, n, B) views of the state and of the drift component b_k; ax.elo/ehi flag exit
    sides (ghost values ax.ghost[ax.k, 0 or 1]; see the module docstring), mirror walls otherwise."""
    n = g3.shape[1]
    B = g3.shape[2]
    has_drift = ax.has_drift
    dt = ax.dt
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for i in range(n):
        im, ip, has_lo, has_hi = neighbours(i, n, ax.periodic)
        for b in range(B):
            bk = drift_k[a, i, b] if has_drift else 0.0
            lower, upper, _c = eo_row(g3[a, im, b], g3[a, i, b], g3[a, ip, b], bk, has_drift, has_lo, has_hi,
                                      dif, inv_h, dt)
            lo[i, b] = lower
            up[i, b] = upper
            di[i, b] = 1.0 - lower - upper
    if ax.has_walls:
        _wall_rows(g3, drift_k, a, ax, lo, di, up, g3, di, bool(False))
    if ax.elo or ax.ehi:
        _exit_rows(g3, drift_k, a, a * B, ax, di, di, bool(False), _hw3(ax, g3.shape[0], n, B), a)


@njit(cache=True, error_model="numpy")
def _coefficients_h(g3, drift_k, a, ax, lo, di, up):
    """``_coefficients_q`` for a general Hamiltonian (``_rows_h``)."""
    _rows_h(g3, drift_k, a, ax, g3, lo, di, up, di, bool(False))


line_coefficients = _by_hamiltonian("line_coefficients", "g3, drift_k, a, ax, lo, di, up", _coefficients_q,
                                    _coefficients_h, "ax")


@njit(cache=True, error_model="numpy")
def _line_rows_q(g, d, ax, transpose, L, U, D, line):
    """Rows (L, D, U) of M_k(g) -- or of M_k(g)^T -- for the contiguous non-periodic line number ``line``."""
    n = g.shape[0]
    has_drift = ax.has_drift
    dt = ax.dt
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    # the two wall nodes apart and the interior without per-node tests (of the direction or of the walls):
    # branch-free interior loops, as fast as the stencil allows (a test per node cost the FP sweep a quarter)
    lower, upper, _c = eo_row(g[0], g[0], g[min(1, n - 1)], d[0] if has_drift else 0.0, has_drift, False,
                              n > 1, dif, inv_h, dt)
    D[0] = 1.0 - lower - upper
    if transpose:  # rows of M^T: lower^T_i = upper_{i-1}, upper^T_i = lower_{i+1}
        L[0] = 0.0
        if n > 1:
            L[1] = upper
        for i in range(1, n - 1):
            lower, upper, _c = eo_row(g[i - 1], g[i], g[i + 1], d[i] if has_drift else 0.0, has_drift, True,
                                      True, dif, inv_h, dt)
            D[i] = 1.0 - lower - upper
            L[i + 1] = upper
            U[i - 1] = lower
    else:
        L[0] = lower
        U[0] = upper
        for i in range(1, n - 1):
            lower, upper, _c = eo_row(g[i - 1], g[i], g[i + 1], d[i] if has_drift else 0.0, has_drift, True,
                                      True, dif, inv_h, dt)
            D[i] = 1.0 - lower - upper
            L[i] = lower
            U[i] = upper
    if n > 1:
        i = n - 1
        lower, upper, _c = eo_row(g[i - 1], g[i], g[i], d[i] if has_drift else 0.0, has_drift, True, False, dif,
                                  inv_h, dt)
        D[i] = 1.0 - lower - upper
        if transpose:
            U[i - 1] = lower
        else:
            L[i] = lower
            U[i] = upper
    if transpose:
        U[n - 1] = 0.0
    if ax.has_walls:
        _wall_line(g, d, _walls2(ax, ax.walls[0].size // n, n)[line], ax, transpose, L, U, D, g, D, bool(False),
                   line)
    if ax.elo or ax.ehi:
        _exit_line(g, d, line, ax, D, D, bool(False))


@njit(cache=True, error_model="numpy")
def _line_rows_g(g, d, ax, transpose, L, U, D, line):
    """``_line_rows_q`` for a general Hamiltonian (``_line_rows_h``)."""
    _line_rows_h(g, d, ax, transpose, L, U, D, g, D, bool(False), line)


_line_rows = _by_hamiltonian("_line_rows", "g, d, ax, transpose, L, U, D, line", _line_rows_q, _line_rows_g, "ax")


@njit(cache=True, error_model="numpy")
def _line_rows_cost_q(g, d, ax, L, U, D, src, rhs, line):
    """Rows of M_k(g) on contiguous non-periodic line number ``line`` AND rhs = src + dt c_k(g) in the same
    pass."""
    n = g.shape[0]
    has_drift = ax.has_drift
    dt = ax.dt
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for i in range(n):
        bk = d[i] if has_drift else 0.0
        lower, upper, cst = eo_row(g[max(i - 1, 0)], g[i], g[min(i + 1, n - 1)], bk, has_drift, i > 0, i < n - 1,
                                   dif, inv_h, dt)
        L[i] = lower
        U[i] = upper
        D[i] = 1.0 - lower - upper
        rhs[i] = src[i] + dt * (0.5 * cst)
    if ax.has_walls:
        _wall_line(g, d, _walls2(ax, ax.walls[0].size // n, n)[line], ax, bool(False), L, U, D, src, rhs, bool(True),
                   line)
    if ax.elo or ax.ehi:
        _exit_line(g, d, line, ax, D, rhs, bool(True))


@njit(cache=True, error_model="numpy")
def _line_rows_cost_h(g, d, ax, L, U, D, src, rhs, line):
    """``_line_rows_cost_q`` for a general Hamiltonian (``_line_rows_h``)."""
    _line_rows_h(g, d, ax, bool(False), L, U, D, src, rhs, bool(True), line)


_line_rows_cost = _by_hamiltonian("_line_rows_cost", "g, d, ax, L, U, D, src, rhs, line", _line_rows_cost_q,
                                  _line_rows_cost_h, "ax")


@njit(cache=True, error_model="numpy", inline="always")
def newton_done(delta, scale, jump, quad, tol):
    """The stopping rule of a Newton substep (``newton_axis``): after an update with max|change| = delta,
    max|new state| = scale and largest squared change difference over an edge = jump, stop when
    delta <= tol * scale, delta == 0, or the a-posteriori error bound quad * jump <= tol * scale
    (quad = dt / h^2)."""
    return delta <= tol * scale or delta == 0.0 or quad * jump <= tol * scale


@njit(cache=True, error_model="numpy", inline="always")
def _newton_line(s, src, d, ax, tol, maxit, L, U, D, r, x, c, line):
    """Newton for one contiguous non-periodic line:  M_k(s) s = src + dt c_k(s)  (s: guess in, solution out).
    Stops on |change| <= tol max|s| or on the a-posteriori error bound of ``newton_axis``."""
    n = s.shape[0]
    quad = ax.dt / (ax.h * ax.h)
    if ax.hkind != HAM_QUADRATIC:  # the bound scales with the Lipschitz constant of h' (inf: |change| only)
        quad *= ax.hlip
    elo = ax.elo
    for it in range(1, maxit + 1):
        _line_rows_cost(s, d, ax, L, U, D, src, r, line)
        two_ended_minors(L, D, U, r, x, c)
        delta = 0.0
        scale = 0.0
        jump = 0.0
        last = 0.0
        for i in range(n):
            v = x[i]
            ds = v - s[i]
            dd = abs(ds)
            if dd > delta:
                delta = dd
            if abs(v) > scale:
                scale = abs(v)
            if i > 0:
                e = (ds - last) * (ds - last)
                if e > jump:
                    jump = e
            elif elo:  # an exit ghost is fixed: its edge carries the wall node's whole change
                jump = ds * ds
            last = ds
            s[i] = v
        if ax.ehi and last * last > jump:
            jump = last * last
        if newton_done(delta, scale, jump, quad, tol):
            return it
    return -maxit


@njit(cache=True, error_model="numpy", inline="always")
def _transpose_lines(lo, di, up, lo_t, up_t, periodic):
    """Rows of M^T: lower^T_i = upper_{i-1}, upper^T_i = lower_{i+1} (wrapping if periodic)."""
    n = lo.shape[0]
    B = lo.shape[1]
    for i in range(n):
        for b in range(B):
            if i > 0:
                lo_t[i, b] = up[i - 1, b]
            elif periodic:
                lo_t[i, b] = up[n - 1, b]
            else:
                lo_t[i, b] = 0.0
            if i < n - 1:
                up_t[i, b] = lo[i + 1, b]
            elif periodic:
                up_t[i, b] = lo[0, b]
            else:
                up_t[i, b] = 0.0


# ----------------------------------------------------------------------------- line solvers
@njit(cache=True, error_model="numpy")
def _thomas(lo, di, up, rhs, x, cp):
    """Batched Thomas: one tridiagonal system per column b (lo[0], up[n-1] ignored)."""
    n = di.shape[0]
    B = di.shape[1]
    for b in range(B):
        inv = 1.0 / di[0, b]
        cp[0, b] = up[0, b] * inv
        x[0, b] = rhs[0, b] * inv
    for i in range(1, n):
        for b in range(B):
            li = lo[i, b]
            inv = 1.0 / (di[i, b] - li * cp[i - 1, b])  # one division per unknown
            cp[i, b] = up[i, b] * inv
            x[i, b] = (rhs[i, b] - li * x[i - 1, b]) * inv
    for i in range(n - 2, -1, -1):
        for b in range(B):
            x[i, b] -= cp[i, b] * x[i + 1, b]


@njit(cache=True, error_model="numpy")
def _thomas_t(lo, di, up, rhs, x, cp):
    """Batched Thomas for the TRANSPOSED systems M^T x = rhs, given the rows lo, di, up of M (non-periodic):
    row i of M^T is (up[i-1], di[i], lo[i+1]) -- the arithmetic of ``_thomas`` on ``_transpose_lines``'
    output without writing the transposed rows."""
    n = di.shape[0]
    B = di.shape[1]
    for b in range(B):
        inv = 1.0 / di[0, b]
        cp[0, b] = (lo[1, b] if n > 1 else 0.0) * inv
        x[0, b] = rhs[0, b] * inv
    for i in range(1, n - 1):
        for b in range(B):
            li = up[i - 1, b]
            inv = 1.0 / (di[i, b] - li * cp[i - 1, b])
            cp[i, b] = lo[i + 1, b] * inv
            x[i, b] = (rhs[i, b] - li * x[i - 1, b]) * inv
    if n > 1:
        i = n - 1
        for b in range(B):
            li = up[i - 1, b]
            inv = 1.0 / (di[i, b] - li * cp[i - 1, b])
            cp[i, b] = 0.0
            x[i, b] = (rhs[i, b] - li * x[i - 1, b]) * inv
    for i in range(n - 2, -1, -1):
        for b in range(B):
            x[i, b] -= cp[i, b] * x[i + 1, b]


@njit(cache=True, error_model="numpy")
def _cyclic(lo, di, up, rhs, x, cp, di2, z, zr):
    """Cyclic tridiagonal solve (corners lo[0] at column n-1, up[n-1] at column 0) by
    Sherman-Morrison on top of two batched Thomas solves."""
    n = di.shape[0]
    B = di.shape[1]
    for i in range(n):
        for b in range(B):
            di2[i, b] = di[i, b]
            zr[i, b] = 0.0
    for b in range(B):
        gamma = -di[0, b]
        di2[0, b] = di[0, b] - gamma
        di2[n - 1, b] = di[n - 1, b] - up[n - 1, b] * lo[0, b] / gamma
        zr[0, b] = gamma
        zr[n - 1, b] = up[n - 1, b]
    _thomas(lo, di2, up, rhs, x, cp)
    _thomas(lo, di2, up, zr, z, cp)
    for b in range(B):
        gamma = -di[0, b]
        beta = lo[0, b]
        fact = (x[0, b] + beta * x[n - 1, b] / gamma) / (1.0 + z[0, b] + beta * z[n - 1, b] / gamma)
        for i in range(n):
            x[i, b] -= fact * z[i, b]



# ----------------------------------------------------------------------------- blocks of contiguous lines
# Lines along the contiguous axis (B == 1) are handled LINE_BLOCK at a time: the block is copied into a
# transposed (n, w) scratch, so the batched solvers above run across the w lines in SIMD lanes instead of
# one latency-bound line at a time.  The scratch is carved out of the caller's 9-row workspace.
LINE_BLOCK = 8
_CHUNK_ARRAYS = 14   # the (n, w) arrays of ``_block_views``


@njit(cache=True, error_model="numpy", inline="always")
def _chunk_width(A, n, work):
    """Number of lines per block: LINE_BLOCK, fewer if the workspace cannot hold the block scratch."""
    w = work.size // (_CHUNK_ARRAYS * n)
    if w > LINE_BLOCK:
        w = LINE_BLOCK
    if w > A:
        w = A
    return w


@njit(cache=True, error_model="numpy", inline="always")
def _chunk_view(flat, k, n, w):
    return flat[k * n * w:(k + 1) * n * w].reshape((n, w))


@njit(cache=True, error_model="numpy", inline="always")
def _block_views(flat, n, w):
    """The scratch of one block of w lines, 14 (n, w) arrays carved from the flat workspace, in the order

        state, drift, source, solution, lo, di, up  (the block, transposed)
        cp, lo_t, up_t, di2, z, zr                  (the batched solvers' scratch, ``_batched_solve``)
        rhs                                         (Newton's right-hand side)."""
    return (_chunk_view(flat, 0, n, w), _chunk_view(flat, 1, n, w), _chunk_view(flat, 2, n, w),
            _chunk_view(flat, 3, n, w), _chunk_view(flat, 4, n, w), _chunk_view(flat, 5, n, w),
            _chunk_view(flat, 6, n, w),
            (_chunk_view(flat, 7, n, w), _chunk_view(flat, 8, n, w), _chunk_view(flat, 9, n, w),
             _chunk_view(flat, 10, n, w), _chunk_view(flat, 11, n, w), _chunk_view(flat, 12, n, w)),
            _chunk_view(flat, 13, n, w))


@njit(cache=True, error_model="numpy", inline="always")
def _line_scratch(work, n, B):
    """The 9 rows of the workspace as (n, B) arrays: lo, di, up (the rows of M_k) and the batched solvers'
    scratch (cp, lo_t, up_t, di2, z, zr) in the order ``_batched_solve`` takes it."""
    nb = n * B
    return (work[0, :nb].reshape((n, B)), work[1, :nb].reshape((n, B)), work[2, :nb].reshape((n, B)),
            (work[3, :nb].reshape((n, B)), work[4, :nb].reshape((n, B)), work[5, :nb].reshape((n, B)),
             work[6, :nb].reshape((n, B)), work[7, :nb].reshape((n, B)), work[8, :nb].reshape((n, B))))


@njit(cache=True, error_model="numpy", inline="always")
def _gather_lines(x2, a0, xT):
    """xT[i, j] = x2[a0 + j, i] for the w = xT.shape[1] lines starting at a0."""
    n, w = xT.shape
    for i in range(n):
        for j in range(w):
            xT[i, j] = x2[a0 + j, i]


@njit(cache=True, error_model="numpy", inline="always")
def _scatter_lines(xT, a0, x2):
    """x2[a0 + j, i] = xT[i, j] (inverse of _gather_lines)."""
    n, w = xT.shape
    for j in range(w):
        for i in range(n):
            x2[a0 + j, i] = xT[i, j]


@njit(cache=True, error_model="numpy", inline="always")
def _batched_solve(lo, di, up, periodic, transpose, rhs, x, scratch):
    """x = M^{-1} rhs (or M^{-T} rhs) for the batch of lines whose rows are lo, di, up (n, B);
    scratch = (cp, lo_t, up_t, di2, z, zr), (n, B) each."""
    cp, lo_t, up_t, di2, z, zr = scratch
    if transpose:
        _transpose_lines(lo, di, up, lo_t, up_t, periodic)
        if periodic:
            _cyclic(lo_t, di, up_t, rhs, x, cp, di2, z, zr)
        else:
            _thomas(lo_t, di, up_t, rhs, x, cp)
    elif periodic:
        _cyclic(lo, di, up, rhs, x, cp, di2, z, zr)
    else:
        _thomas(lo, di, up, rhs, x, cp)


@njit(cache=True, error_model="numpy")
def _solve_line_blocks_q(g2, d2, ax, transpose, r2, o2, w, work):
    """solve_axis for lines along the contiguous axis ((A, n) views), w lines per block; returns True (done)."""
    A, n = g2.shape
    flat = work.reshape(work.size)
    a0 = int(0)
    while a0 < A:
        wb = min(w, A - a0)
        gT, dT, rT, xT, lo, di, up, scratch, _rhs = _block_views(flat, n, wb)
        _gather_lines(g2, a0, gT)
        if ax.has_drift:
            _gather_lines(d2, a0, dT)
        _gather_lines(r2, a0, rT)
        line_coefficients(gT.reshape((1, n, wb)), dT.reshape((1, n, wb)), int(0), ax, lo, di, up)
        _batched_solve(lo, di, up, ax.periodic, transpose, rT, xT, scratch)
        _scatter_lines(xT, a0, o2)
        a0 += wb
    return True


@njit(cache=True, error_model="numpy")
def _solve_line_blocks_h(g2, d2, ax, transpose, r2, o2, w, work):
    """General Hamiltonians solve periodic contiguous lines one at a time: False (nothing done)."""
    return False


_solve_line_blocks = _by_hamiltonian("_solve_line_blocks", "g2, d2, ax, transpose, r2, o2, w, work",
                                     _solve_line_blocks_q, _solve_line_blocks_h, "ax")


@njit(cache=True, error_model="numpy")
def _rows_cost_q(g3, drift_k, a, ax, src3, lo, di, up, rhs):
    """line_coefficients AND rhs = src + dt c_k(g) for outer index a, in one pass ((n, B) outputs)."""
    n = g3.shape[1]
    B = g3.shape[2]
    has_drift = ax.has_drift
    dt = ax.dt
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for i in range(n):
        im, ip, has_lo, has_hi = neighbours(i, n, ax.periodic)
        for b in range(B):
            bk = drift_k[a, i, b] if has_drift else 0.0
            lower, upper, cst = eo_row(g3[a, im, b], g3[a, i, b], g3[a, ip, b], bk, has_drift, has_lo, has_hi,
                                       dif, inv_h, dt)
            lo[i, b] = lower
            up[i, b] = upper
            di[i, b] = 1.0 - lower - upper
            rhs[i, b] = src3[a, i, b] + dt * (0.5 * cst)
    if ax.has_walls:
        _wall_rows(g3, drift_k, a, ax, lo, di, up, src3, rhs, bool(True))
    if ax.elo or ax.ehi:
        _exit_rows(g3, drift_k, a, a * B, ax, di, rhs, bool(True), _hw3(ax, g3.shape[0], n, B), a)


@njit(cache=True, error_model="numpy")
def _rows_cost_h(g3, drift_k, a, ax, src3, lo, di, up, rhs):
    """``_rows_cost_q`` for a general Hamiltonian (``_rows_h``)."""
    _rows_h(g3, drift_k, a, ax, src3, lo, di, up, rhs, bool(True))


_rows_cost = _by_hamiltonian("_rows_cost", "g3, drift_k, a, ax, src3, lo, di, up, rhs", _rows_cost_q, _rows_cost_h,
                             "ax")


@njit(cache=True, error_model="numpy")
def _newton_line_blocks_q(s2, src2, d2, ax, tol, maxit, w, work):
    """newton_axis for lines along the contiguous axis ((A, n) views), w lines per block.  Each line
    keeps its own stopping test (|change| <= tol max|s| on that line, or the error bound of
    ``newton_axis``), exactly as one line at a time: a line that has converged is frozen while the
    others of its block iterate on.  Returns (True, the Newton count as ``newton_axis``'s)."""
    A, n = s2.shape
    flat = work.reshape(work.size)
    worst = 0
    delta = np.empty(w)
    scale = np.empty(w)
    jump = np.empty(w)
    prev = np.empty(w)
    first = np.empty(w)
    quad = ax.dt / (ax.h * ax.h)   # (the quadratic Hamiltonian's blocks only)
    elo = ax.elo
    ehi = ax.ehi
    periodic = ax.periodic
    active = np.empty(w, dtype=np.bool_)
    a0 = int(0)
    while a0 < A:
        wb = min(w, A - a0)
        sT, dT, srcT, xT, lo, di, up, scratch, rT = _block_views(flat, n, wb)
        _gather_lines(s2, a0, sT)
        if ax.has_drift:
            _gather_lines(d2, a0, dT)
        _gather_lines(src2, a0, srcT)
        for j in range(wb):
            active[j] = True
        left = wb
        for it in range(1, maxit + 1):
            _rows_cost(sT.reshape((1, n, wb)), dT.reshape((1, n, wb)), int(0), ax, srcT.reshape((1, n, wb)),
                       lo, di, up, rT)
            _batched_solve(lo, di, up, periodic, bool(False), rT, xT, scratch)
            for j in range(wb):
                delta[j] = 0.0
                scale[j] = 0.0
                jump[j] = 0.0
            for i in range(n):
                for j in range(wb):
                    v = xT[i, j]
                    ds = v - sT[i, j]
                    dd = abs(ds)
                    if dd > delta[j]:
                        delta[j] = dd
                    if abs(v) > scale[j]:
                        scale[j] = abs(v)
                    if i > 0:
                        e = (ds - prev[j]) ** 2
                        if e > jump[j]:
                            jump[j] = e
                    else:
                        first[j] = ds
                    if (i == 0 and elo) or (i == n - 1 and ehi):
                        if ds * ds > jump[j]:
                            jump[j] = ds * ds
                    if i == n - 1 and periodic:
                        e = (ds - first[j]) ** 2
                        if e > jump[j]:
                            jump[j] = e
                    prev[j] = ds
                    if active[j]:
                        sT[i, j] = v
            for j in range(wb):
                if active[j] and newton_done(delta[j], scale[j], jump[j], quad, tol):
                    active[j] = False
                    left -= 1
                    if worst >= 0 and it > worst:
                        worst = it
            if left == 0:
                break
        if left > 0:
            worst = -maxit
        _scatter_lines(sT, a0, s2)
        a0 += wb
    return True, worst


@njit(cache=True, error_model="numpy")
def _newton_line_blocks_h(s2, src2, d2, ax, tol, maxit, w, work):
    """General Hamiltonians: periodic contiguous lines one at a time, (False, 0) (nothing done)."""
    return False, 0


_newton_line_blocks = _by_hamiltonian("_newton_line_blocks", "s2, src2, d2, ax, tol, maxit, w, work",
                                      _newton_line_blocks_q, _newton_line_blocks_h, "ax")


@njit(cache=True, error_model="numpy", inline="always")
def _lines_of(g, other, drift_k, A, n, ax, work):
    """(A, n) views of g, of other and of the drift (g where there is none), and the line scratch L, U, D, c
    (rows 0-3 of the workspace): what the contiguous-line solvers take."""
    g2 = g.reshape((A, n))
    d2 = drift_k.reshape((A, n)) if ax.has_drift else g2
    return g2, other.reshape((A, n)), d2, work[0, :n], work[1, :n], work[2, :n], work[3, :n]


@njit(cache=True, error_model="numpy", inline="always")
def _newton_lines(s, src, drift_k, A, n, ax, tol, maxit, work):
    """``newton_axis`` along the contiguous axis of A non-periodic lines of n nodes, one line at a time
    (``_newton_line``); returns the largest Newton count (negative if a cap was hit)."""
    s2, src2, d2, L, U, D, c = _lines_of(s, src, drift_k, A, n, ax, work)
    r = work[4, :n]
    x = work[5, :n]
    worst = 0
    for a in range(A):
        it = _newton_line(s2[a], src2[a], d2[a], ax, tol, maxit, L, U, D, r, x, c, a)
        if it < 0:
            worst = it if worst >= 0 or it < worst else worst
        elif worst >= 0 and it > worst:
            worst = it
    return worst


@njit(cache=True, error_model="numpy", inline="always")
def _solve_lines(g, drift_k, A, n, ax, transpose, rhs, out, work):
    """``solve_axis`` along the contiguous axis of A non-periodic lines of n nodes, one line at a time."""
    g2, r2, d2, L, U, D, c = _lines_of(g, rhs, drift_k, A, n, ax, work)
    o2 = out.reshape((A, n))
    for a in range(A):
        _line_rows(g2[a], d2[a], ax, transpose, L, U, D, a)
        two_ended_minors(L, D, U, r2[a], o2[a], c)


@njit(cache=True, error_model="numpy")
def solve_axis(g, drift_k, axis, ax, transpose, rhs, out, work):
    """out = M_k(g)^{-1} rhs (or M_k(g)^{-T} rhs if transpose); arrays 3-D (n0, n1, n2); ax: the Axis
    record (exit sides: the known ghost term dt r g belongs to rhs)."""
    A, n, B = _split(g.shape, axis)
    periodic = ax.periodic
    has_drift = ax.has_drift
    if B == 1 and periodic and not ax.has_walls:  # cyclic lines: blocks in SIMD lanes (quadratic Hamiltonian)
        w = _chunk_width(A, n, work)
        if w >= 1:
            g2 = g.reshape((A, n))
            d2 = drift_k.reshape((A, n)) if has_drift else g2
            if _solve_line_blocks(g2, d2, ax, transpose, rhs.reshape((A, n)), out.reshape((A, n)), w, work):
                return
    if B == 1 and not periodic:
        _solve_lines(g, drift_k, A, n, ax, transpose, rhs, out, work)
        return
    g3 = g.reshape((A, n, B))
    r3 = rhs.reshape((A, n, B))
    o3 = out.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if has_drift else g3
    lo, di, up, scratch = _line_scratch(work, n, B)
    cp, lo_t, up_t, di2, z, zr = scratch
    for a in range(A):
        line_coefficients(g3, d3, a, ax, lo, di, up)
        if transpose and periodic:
            _transpose_lines(lo, di, up, lo_t, up_t, periodic)
            _cyclic(lo_t, di, up_t, r3[a], o3[a], cp, di2, z, zr)
        elif transpose:
            _thomas_t(lo, di, up, r3[a], o3[a], cp)
        elif periodic:
            _cyclic(lo, di, up, r3[a], o3[a], cp, di2, z, zr)
        else:
            _thomas(lo, di, up, r3[a], o3[a], cp)


@njit(cache=True, error_model="numpy")
def apply_axis(g, drift_k, axis, ax, transpose, x, out, work):
    """out = M_k(g) x (or M_k(g)^T x): the matrix-vector product used by residuals.  With exit sides
    (ax.elo/ehi) M_k is the matrix without the ghost column (the ghost term is part of the cost c_k)."""
    A, n, B = _split(g.shape, axis)
    periodic = ax.periodic
    has_drift = ax.has_drift
    if B == 1 and not periodic:
        g2 = g.reshape((A, n))
        x2 = x.reshape((A, n))
        o2 = out.reshape((A, n))
        d2 = drift_k.reshape((A, n)) if has_drift else g2
        L = work[0, :n]
        U = work[1, :n]
        D = work[2, :n]
        for a in range(A):
            _line_rows(g2[a], d2[a], ax, transpose, L, U, D, a)
            xa = x2[a]
            oa = o2[a]
            oa[0] = D[0] * xa[0] + U[0] * xa[1]
            for i in range(1, n - 1):
                oa[i] = L[i] * xa[i - 1] + D[i] * xa[i] + U[i] * xa[i + 1]
            oa[n - 1] = L[n - 1] * xa[n - 2] + D[n - 1] * xa[n - 1]
        return
    g3 = g.reshape((A, n, B))
    x3 = x.reshape((A, n, B))
    o3 = out.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if has_drift else g3
    lo, di, up, scratch = _line_scratch(work, n, B)
    lo_t = scratch[1]
    up_t = scratch[2]
    for a in range(A):
        line_coefficients(g3, d3, a, ax, lo, di, up)
        if transpose:
            _transpose_lines(lo, di, up, lo_t, up_t, periodic)
        else:
            lo_t[:, :] = lo
            up_t[:, :] = up
        for i in range(n):
            im = i - 1 if i > 0 else n - 1
            ip = i + 1 if i < n - 1 else 0
            has_lo = i > 0 or periodic
            has_up = i < n - 1 or periodic
            for b in range(B):
                s = di[i, b] * x3[a, i, b]
                if has_lo:
                    s += lo_t[i, b] * x3[a, im, b]
                if has_up:
                    s += up_t[i, b] * x3[a, ip, b]
                o3[a, i, b] = s


# ----------------------------------------------------------------------------- Hamiltonian cost
@njit(cache=True, error_model="numpy")
def axis_cost(g, axis, h, periodic, out):
    """out = c_k(g) = [min(D+_k g, 0)^2 + max(D-_k g, 0)^2] / 2 along one axis (mirror walls)."""
    A, n, B = _split(g.shape, axis)
    inv_h = 1.0 / h
    if B == 1 and n >= 2:  # contiguous lines: branch-free interior loop
        g2 = g.reshape((A, n))
        o2 = out.reshape((A, n))
        for a in range(A):
            ga = g2[a]
            oa = o2[a]
            for i in range(1, n - 1):
                oa[i] = 0.5 * eo_cost2((ga[i + 1] - ga[i]) * inv_h, (ga[i] - ga[i - 1]) * inv_h)
            oa[0] = 0.5 * eo_cost2((ga[1] - ga[0]) * inv_h, (ga[0] - ga[n - 1]) * inv_h if periodic else 0.0)
            oa[n - 1] = 0.5 * eo_cost2((ga[0] - ga[n - 1]) * inv_h if periodic else 0.0,
                                       (ga[n - 1] - ga[n - 2]) * inv_h)
        return
    g3 = g.reshape((A, n, B))
    o3 = out.reshape((A, n, B))
    for a in range(A):
        for i in range(n):
            ip = i + 1
            im = i - 1
            hi_ok = True
            lo_ok = True
            if ip == n:
                if periodic:
                    ip = 0
                else:
                    hi_ok = False
            if im < 0:
                if periodic:
                    im = n - 1
                else:
                    lo_ok = False
            for b in range(B):
                gi = g3[a, i, b]
                dp = (g3[a, ip, b] - gi) * inv_h if hi_ok else 0.0
                dm = (gi - g3[a, im, b]) * inv_h if lo_ok else 0.0
                o3[a, i, b] = 0.5 * eo_cost2(dp, dm)


@njit(cache=True, error_model="numpy")
def edge_costs(g3, a, ax, Wh, E, C, out):
    """out[i, b] = twice the Engquist-Osher cost of node (a, i, b) of the (A, n, B) view g3 along its middle
    index, L(h'(min(D+g, 0))) + L(h'(max(D-g, 0))) doubled (``ham_cost2``'s numbers), for the general
    Hamiltonian of the Axis record ax (Wh: its (A, n, B) weight view, ``_hw3``), mirror walls at the ends (or
    wrapping when periodic); no obstacle walls (the callers redo those cells).  h' and L(h') once per edge
    (``ham_edges``) into the (n, B) scratch E, C (edge e between nodes e and e + 1; n - 1 the wrap edge)."""
    n = g3.shape[1]
    B = g3.shape[2]
    hk = ax.hkind
    periodic = ax.periodic
    weighted = hk == HAM_WEIGHTED
    inv_h = 1.0 / ax.h
    m = n if periodic else n - 1
    for e in range(m):
        e1 = e + 1 if e + 1 < n else 0
        for b in range(B):
            p = (g3[a, e1, b] - g3[a, e, b]) * inv_h
            E[e, b] = p
            if weighted:  # the weight of the node the edge is upwind for
                C[e, b] = Wh[a, e, b] if p < 0.0 else Wh[a, e1, b]
    if B == 1:
        ham_edges(E.reshape(n)[:m], C.reshape(n)[:m], hk, ax.hpar, bool(True))
    else:
        for e in range(m):
            ham_edges(E[e], C[e], hk, ax.hpar, bool(True))
    for i in range(n):
        el = i - 1 if i > 0 else n - 1
        for b in range(B):
            c = 0.0
            if (i < n - 1 or periodic) and E[i, b] < 0.0:
                c += C[i, b]
            if (i > 0 or periodic) and E[el, b] > 0.0:
                c += C[el, b]
            out[i, b] = 2.0 * c


@njit(cache=True, error_model="numpy")
def axis_cost_h(g, axis, ax, out):
    """out = c_k(g) = L(h'(min(D+_k g, 0))) + L(h'(max(D-_k g, 0))) along one axis (mirror walls) for the
    Hamiltonian of the Axis record ax (``edge_costs``; ``axis_cost`` is the quadratic one)."""
    A, n, B = _split(g.shape, axis)
    Wh = _hw3(ax, A, n, B)
    g3 = g.reshape((A, n, B))
    o3 = out.reshape((A, n, B))
    E = np.empty((n, B))
    C = np.empty((n, B))
    for a in range(A):
        oa = o3[a]
        edge_costs(g3, a, ax, Wh, E, C, oa)
        for i in range(n):
            for b in range(B):
                oa[i, b] = 0.5 * oa[i, b]


@njit(cache=True, error_model="numpy")
def _axis_cost_q(g, axis, ax, out):
    """``axis_cost`` with the scalars of the Axis record ax."""
    axis_cost(g, axis, ax.h, ax.periodic, out)


_axis_cost = _by_hamiltonian("_axis_cost", "g, axis, ax, out", _axis_cost_q, axis_cost_h, "ax")


@njit(cache=True, error_model="numpy")
def _no_costs(g3, a, ax, Wh, E, C, out):
    """The quadratic Hamiltonian's residual loops compute their costs node by node (``eo_cost2``): nothing."""
    return


#: the residual passes' costs of a line: nothing for the quadratic Hamiltonian, ``edge_costs`` for the others
_line_costs = _by_hamiltonian("_line_costs", "g3, a, ax, Wh, E, C, out", _no_costs, edge_costs, "ax")


@njit(cache=True, error_model="numpy")
def _node_cost2_q(dp, dm, hp, pre):
    """Twice the node's cost from its one-sided differences (``eo_cost2``)."""
    return eo_cost2(dp, dm)


@njit(cache=True, error_model="numpy")
def _node_cost2_h(dp, dm, hp, pre):
    """Twice the node's cost, computed beforehand by ``edge_costs`` (pre)."""
    return pre


_node_cost2 = _by_hamiltonian("_node_cost2", "dp, dm, hp, pre", _node_cost2_q, _node_cost2_h, "hp")


@njit(cache=True, error_model="numpy")
def axis_source(g, drift_k, axis, ax, out):
    """out = c_k(g) including exit sides: ``axis_cost`` plus, on the rows of the exit sides (ax.elo/ehi,
    ghost values glo/ghi), the ghost's Engquist-Osher term and the exit payment rate r g (see the module
    docstring).  The right-hand side of an HJB substep / a policy evaluation is src + dt * out."""
    _axis_cost(g, axis, ax, out)
    if ax.has_walls:
        _wall_cost(g, axis, ax, out)
    if ax.elo or ax.ehi:
        add_exit_source(g, drift_k, axis, ax, 1.0, out)


@njit(cache=True, error_model="numpy")
def add_exit_source(g, drift_k, axis, ax, scale, out):
    """out += scale * (c_ghost + r g) on the wall cells of the exit faces of axis k (the exit part of c_k:
    ``axis_source`` = ``axis_cost`` + this with scale 1; faces with a NaN ghost value are walls)."""
    A, n, B = _split(g.shape, axis)
    has_drift = ax.has_drift
    g3 = g.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if has_drift else g3
    o3 = out.reshape((A, n, B))
    Wh = _hw3(ax, A, n, B)
    inv_h, dif = stencil_scales(ax.nu, ax.h)
    for side in range(2):
        if (side == 0 and not ax.elo) or (side == 1 and not ax.ehi):
            continue
        i = 0 if side == 0 else n - 1
        G = ax.ghost[ax.k, side]
        for a in range(A):
            for b in range(B):
                gex = G[a * B + b]
                if np.isnan(gex):
                    continue
                bk = d3[a, i, b] if has_drift else 0.0
                rate, cst = _exit_ghost(g3[a, i, b], gex, bk, has_drift, side == 1, inv_h, dif, ax.hkind, ax.hpar,
                                        _wat(Wh, a, i, b, ax.hkind))
                o3[a, i, b] += scale * (cst + rate * gex)


@njit(cache=True, error_model="numpy")
def hamiltonian_cost(g, ndim, h, periodic, out, tmp):
    """out = c(g) = sum_k c_k(g) (the Engquist-Osher |grad g|^2 / 2)."""
    out[:, :, :] = 0.0
    for k in range(ndim):
        axis_cost(g, k, h[k], periodic[k], tmp)
        out += tmp


# ----------------------------------------------------------------------------- steps and sweeps
START_COLD = 0
START_PREDICTOR = 1
START_GUESS = 2

@njit(cache=True, error_model="numpy")
def newton_axis(s, src, drift_k, axis, ax, tol, maxit, new, work):
    """Solve the 1-D implicit substep  M_k(s) s = src + dt c_k(s)  along one axis by Newton's method
    (policy iteration), s holding the initial guess on entry and the solution on exit (ax: the Axis
    record, exit sides included).
    Returns the iteration count, negated if maxit was hit before |change| <= tol * max|s|.

    Stopping: after an update delta = s_new - s, the residual of s_new is the Taylor remainder of the
    Engquist-Osher cost alone (the rest is linear in s): dt [H(D s_new) - H(D s) - H'(D s) D delta] with
    H = [min(D+,0)^2 + max(D-,0)^2]/2, whose one-sided parts have derivatives with Lipschitz constant 1,
    so |residual_i| <= dt ((D+ delta)_i^2 + (D- delta)_i^2) / 2 <= dt max_edges (delta_j - delta_i)^2 / h^2
    (an exit ghost is fixed: its edge counts the wall node's change).  M_k is an M-matrix with row sums
    >= 1 at every state, so ||M^{-1}||_inf <= 1: the error of s_new to the exact substep solution is at
    most that bound.  Newton stops when the bound, or |delta|, is <= tol * max|s| (a smooth change has
    small edge differences, so the confirming extra iteration of a plain |delta| test is saved):
    ``newton_done``."""
    A, n, B = _split(s.shape, axis)
    periodic = ax.periodic
    has_drift = ax.has_drift
    elo = ax.elo
    ehi = ax.ehi
    if B == 1 and periodic and not ax.has_walls:  # cyclic lines: blocks in SIMD lanes (quadratic Hamiltonian)
        w = _chunk_width(A, n, work)
        if w >= 1:
            s2 = s.reshape((A, n))
            d2 = drift_k.reshape((A, n)) if has_drift else s2
            done, worst = _newton_line_blocks(s2, src.reshape((A, n)), d2, ax, tol, maxit, w, work)
            if done:
                return worst
    if B == 1 and not periodic:
        return _newton_lines(s, src, drift_k, A, n, ax, tol, maxit, work)
    # strided lines, batched over b: per outer index a, rows and right-hand side in one pass
    # (``_rows_cost``), the batched solve, and the update with its stopping statistics while the lines
    # are in cache
    s3 = s.reshape((A, n, B))
    src3 = src.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if has_drift else s3
    n3 = new.reshape((A, n, B))
    lo, di, up, scratch = _line_scratch(work, n, B)
    cp, rr, _unused, di2, z, zr = scratch
    quad = ax.dt / (ax.h * ax.h)
    if ax.hkind != HAM_QUADRATIC:  # the bound scales with the Lipschitz constant of h' (inf: |change| only)
        quad *= ax.hlip
    for it in range(1, maxit + 1):
        delta = 0.0
        scale = 0.0
        jump = 0.0
        for a in range(A):
            _rows_cost(s3, d3, a, ax, src3, lo, di, up, rr)
            if periodic:
                _cyclic(lo, di, up, rr, n3[a], cp, di2, z, zr)
            else:
                _thomas(lo, di, up, rr, n3[a], cp)
            for i in range(n):
                for b in range(B):
                    v = n3[a, i, b]
                    ds = v - s3[a, i, b]
                    dd = abs(ds)
                    if dd > delta:
                        delta = dd
                    if abs(v) > scale:
                        scale = abs(v)
                    s3[a, i, b] = v
                    n3[a, i, b] = ds  # the change, for the edge differences
                    if i > 0:
                        e = (ds - n3[a, i - 1, b]) ** 2
                        if e > jump:
                            jump = e
                    if (i == 0 and elo) or (i == n - 1 and ehi):
                        if ds * ds > jump:
                            jump = ds * ds
                    if i == n - 1 and periodic:
                        e = (ds - n3[a, 0, b]) ** 2
                        if e > jump:
                            jump = e
        if newton_done(delta, scale, jump, quad, tol):
            return it
    return -maxit


@njit(cache=True, error_model="numpy", inline="always")
def hjb_step(w, drift_n, op, g, states_n, tol, maxit, new, work, n):
    """One backward step from s_{-1} = w = u^{n+1} + dt f^n: for k = 0..ndim-1 Newton-solve
    M_k(s_k) s_k = s_{k-1} + dt c_k(s_k); the last state is u^n (written to g).  op: the Operator
    record; drift_n the step's drift (``drift_at``); n the step (its Hamiltonian weights, ``axis_at``).

    g holds the initial guess of the last state on entry; states_n[k] (k < ndim-1) hold the
    guesses of the intermediate states on entry and the solved states on exit.
    Returns the largest Newton count over the substeps (negative if a cap was hit)."""
    worst = 0
    src = w
    ndim = op.ndim
    for k in range(ndim):
        s = g if k == ndim - 1 else states_n[k]
        it = newton_axis(s, src, drift_n[k], k, axis_at(op, k, op.dt, n), tol, maxit, new, work)
        if it < 0:
            worst = it if worst >= 0 or it < worst else worst
        elif worst >= 0 and it > worst:
            worst = it
        src = s
    return worst


@njit(cache=True, error_model="numpy", inline="always")
def _start_level(u, states, f, guess, start, n, w, ndim, dt):
    """Newton's start of HJB step n in u[n] (and the intermediate states[n]) and the step's source
    w = u^{n+1} + dt f^n, in one pass over the level (``hjb_sweep``'s ``start``)."""
    size = w.size
    wf = w.reshape(size)
    g = u[n]
    gf = g.reshape(size)
    un1 = u[n + 1].reshape(size)
    fn = f[n].reshape(size)
    if start == START_GUESS:
        g0 = guess[n].reshape(size)
        for j in range(size):
            gf[j] = g0[j]
            wf[j] = un1[j] + dt * fn[j]
    elif start == START_PREDICTOR:  # the shift u[n+1] - guess[n+1] applied to the last and intermediate states
        g0 = guess[n].reshape(size)
        g1 = guess[n + 1].reshape(size)
        if ndim == 1:
            for j in range(size):
                v = un1[j]
                gf[j] = g0[j] + (v - g1[j])
                wf[j] = v + dt * fn[j]
        else:
            s0 = states[n, 0].reshape(size)
            for j in range(size):
                v = un1[j]
                d = v - g1[j]
                gf[j] = g0[j] + d
                s0[j] += d
                wf[j] = v + dt * fn[j]
            for k in range(1, ndim - 1):
                sk = states[n, k].reshape(size)
                for j in range(size):
                    sk[j] += un1[j] - g1[j]
    else:
        for j in range(size):
            v = un1[j]
            gf[j] = v
            wf[j] = v + dt * fn[j]
        for k in range(ndim - 1):  # element loop: an array slice assignment would compile numba's
            sk = states[n, k].reshape(size)  # shape-mismatch message formatting (seconds of cold start)
            for j in range(size):
                sk[j] = un1[j]


@njit(cache=True, error_model="numpy")
def hjb_sweep(u, states, f, op, tol, maxit, guess, start, its):
    """Backward sweep: given u[Nt], fill u[Nt-1..0] and the intermediate states[n, k] (k < ndim-1).

    f[n] is the running cost of step n (t_n -> t_{n+1}); op the Operator record (its drift[n], or
    drift[0] if static, the step's drift).  Where Newton starts (``start``):
      START_COLD       from u[n+1] (and the intermediate states likewise);
      START_PREDICTOR  from the predictor guess[n] + (u[n+1] - guess[n+1]) (the previous iterate shifted by
                       the change already seen one level later; the incoming states[n] likewise);
      START_GUESS      from guess[n] and the incoming states[n] themselves: with maxit = 1 each substep is
                       then the LINEAR step of the policy of the guess, M_k(p_k) s_k = s_{k-1} + dt c_k(p_k)
                       (policy evaluation, ``diagnostics.exploitability``).
    its[n] receives the Newton count of step n.  The start and the step's source u^{n+1} + dt f^n are
    formed in one pass over the level."""
    Nt = u.shape[0] - 1
    shape = u.shape[1:]
    w = np.empty(shape)
    new = np.empty(shape)
    work = _workspace(shape)
    ndim = op.ndim
    dt = op.dt
    for n in range(Nt - 1, -1, -1):
        g = u[n]  # Newton works on u^n in place
        _start_level(u, states, f, guess, start, n, w, ndim, dt)
        its[n] = hjb_step(w, drift_at(op, n), op, g, states[n], tol, maxit, new, work, n)


@njit(cache=True, error_model="numpy", inline="always")
def fp_step(m_prev, u_n, states_n, drift_n, op, out, tmp, work, n):
    """One forward step: m^{n+1} = M_0(s_0)^{-T} ... M_{d-1}(s_{d-1})^{-T} m^n  (s_{d-1} = u^n), the factors
    those of the HJB step n (exit rows, walls and the step's Hamiltonian weights included)."""
    src = m_prev
    ndim = op.ndim
    bufs = (out, tmp) if ndim % 2 == 1 else (tmp, out)
    for j in range(ndim):
        k = ndim - 1 - j
        s = u_n if k == ndim - 1 else states_n[k]
        dst = bufs[j % 2]
        solve_axis(s, drift_n[k], k, axis_at(op, k, op.dt, n), bool(True), src, dst, work)
        src = dst


@njit(cache=True, error_model="numpy")
def fp_sweep(m, u, states, op):
    """Forward sweep: given m[0], fill m[1..Nt] with the transposed HJB steps (op: the Operator record)."""
    Nt = m.shape[0] - 1
    tmp = np.empty(m.shape[1:])
    work = _workspace(m.shape[1:])
    for n in range(Nt):
        fp_step(m[n], u[n], states[n], drift_at(op, n), op, m[n + 1], tmp, work, n)


@njit(cache=True, error_model="numpy")
def hjb_sweep_line(u, states, f, op, tol, maxit, guess, start, its):
    """``hjb_sweep`` on a 1-D grid whose axis is not periodic (exits and walls allowed): the same steps, the
    Newton of the contiguous line only (``_newton_lines``), so a 1-D problem does not compile the strided,
    batched and cyclic solvers of 2-D/3-D and periodic grids (half of a cold start)."""
    Nt = u.shape[0] - 1
    shape = u.shape[1:]
    w = np.empty(shape)
    work = _workspace(shape)
    n0 = shape[0]
    for n in range(Nt - 1, -1, -1):
        _start_level(u, states, f, guess, start, n, w, int(1), op.dt)
        its[n] = _newton_lines(u[n], w, drift_at(op, n)[0], int(1), n0, axis_at(op, 0, op.dt, n), tol, maxit,
                               work)


@njit(cache=True, error_model="numpy")
def fp_sweep_line(m, u, states, op):
    """``fp_sweep`` on a 1-D grid whose axis is not periodic (``hjb_sweep_line``): m^{n+1} = M_0(u^n)^{-T} m^n
    by the contiguous-line solve only (``_solve_lines``)."""
    Nt = m.shape[0] - 1
    work = _workspace(m.shape[1:])
    n0 = m.shape[1]
    for n in range(Nt):
        _solve_lines(u[n], drift_at(op, n)[0], int(1), n0, axis_at(op, 0, op.dt, n), bool(True), m[n], m[n + 1],
                     work)


def is_line(op) -> bool:
    """Whether the Operator op is one non-periodic line (a 1-D grid, exits and walls allowed): then the
    sweeps are ``hjb_sweep_line`` and ``fp_sweep_line``."""
    return int(op.ndim) == 1 and not bool(op.periodic[0])


def hjb_sweep_for(op):
    """The HJB sweep for the Operator op: ``hjb_sweep_line`` on one non-periodic line, ``hjb_sweep`` otherwise."""
    return hjb_sweep_line if is_line(op) else hjb_sweep


def fp_sweep_for(op):
    """The FP sweep for the Operator op: ``fp_sweep_line`` on one non-periodic line, ``fp_sweep`` otherwise."""
    return fp_sweep_line if is_line(op) else fp_sweep


@njit(cache=True, error_model="numpy")
def fp_sweep_source(m, u, states, op, S):
    """``fp_sweep`` with a source: m^{n+1} = M_0^{-T} ... M_{d-1}^{-T} (m^n + dt S[n]), i.e. the implicit step of
    dm/dt - nu Lap m - div(m (h'(grad u) - b)) = S with S[n] the source at t_{n+1} (manufactured solutions)."""
    Nt = m.shape[0] - 1
    tmp = np.empty(m.shape[1:])
    rhs = np.empty(m.shape[1:])
    work = _workspace(m.shape[1:])
    dt = op.dt
    for n in range(Nt):
        rf = rhs.reshape(rhs.size)
        mf = m[n].reshape(rhs.size)
        sf = S[n].reshape(rhs.size)
        for j in range(rhs.size):
            rf[j] = mf[j] + dt * sf[j]
        fp_step(rhs, u[n], states[n], drift_at(op, n), op, m[n + 1], tmp, work, n)


@njit(cache=True, error_model="numpy")
def _pair_line_norms(g2, d2, ax, p2, q2, cq, has_q, x2, y2, last, z2, work):
    """_pair_axis_norms for non-periodic lines along the contiguous axis ((A, n) views), one at a time."""
    A, n = g2.shape
    L = work[0, :n]
    U = work[1, :n]
    D = work[2, :n]
    dt = ax.dt
    inv_h = 1.0 / ax.h
    rh = 0.0
    sh = 0.0
    rf = 0.0
    sf = 0.0
    has_walls = ax.has_walls
    walls2 = _walls2(ax, A, n)
    hk = ax.hkind
    Wh = _hw3(ax, A, n, 1)
    g3 = g2.reshape((A, n, 1))
    E = work[3, :n].reshape((n, 1))
    C = work[4, :n].reshape((n, 1))
    pre = work[5, :n]
    for a in range(A):
        g = g2[a]
        pa = p2[a]
        qa = q2[a]
        xa = x2[a]
        _line_rows(g, d2[a], ax, bool(False), L, U, D, a)
        _line_costs(g3, a, ax, Wh, E, C, pre.reshape((n, 1)))
        for i in range(n):
            v = D[i] * g[i]
            w = D[i] * xa[i]
            dm = 0.0
            dp = 0.0
            if i > 0:
                v += L[i] * g[i - 1]
                w += U[i - 1] * xa[i - 1]
                dm = (g[i] - g[i - 1]) * inv_h
            if i < n - 1:
                v += U[i] * g[i + 1]
                w += L[i + 1] * xa[i + 1]
                dp = (g[i + 1] - g[i]) * inv_h
            if has_walls and walls2[a, i] != 0:  # no Hamiltonian term through a wall face
                code = walls2[a, i]
                if code & 1:
                    dm = 0.0
                if code & 2:
                    dp = 0.0
                c = any_cost2(dp, dm, hk, ax.hpar, _wat(Wh, a, i, 0, hk))
            else:
                c = _node_cost2(dp, dm, ax.hpar, pre[i])
            rhs = pa[i]
            if has_q:
                rhs += cq * qa[i]
            rhs += dt * (0.5 * c)
            r = abs(v - rhs)
            if r > rh:
                rh = r
            if abs(rhs) > sh:
                sh = abs(rhs)
            if last:
                r = abs(w - z2[a, i])
                if r > rf:
                    rf = r
                if abs(z2[a, i]) > sf:
                    sf = abs(z2[a, i])
            else:
                y2[a, i] = w
    return rh, sh, rf, sf


@njit(cache=True, error_model="numpy")
def _pair_axis_norms(g, drift_k, axis, ax, p, q, cq, has_q, x, y, last, z, work):
    """Both discrete equations along axis k with the rows of M_k(g) built once:

        HJB:  r = M_k(g) g - (p [+ cq q if has_q] + dt c_k(g))      -> (max |r|, max |p [+ cq q] + dt c_k|)
        FP:   y = M_k(g)^T x; if last: (max |y - z|, max |z|), else y is stored and (0, 0) returned

    as (rh, sh, rf, sf), the rows built once for both.  Exit sides change the rows only; the exit terms of
    c_k (ghost term and exit payment, ``add_exit_source``) must be in p."""
    A, n, B = _split(g.shape, axis)
    periodic = ax.periodic
    dt = ax.dt
    if B == 1 and not periodic:
        d2 = drift_k.reshape((A, n)) if ax.has_drift else g.reshape((A, n))
        return _pair_line_norms(g.reshape((A, n)), d2, ax, p.reshape((A, n)), q.reshape((A, n)),
                                cq, has_q, x.reshape((A, n)), y.reshape((A, n)), last, z.reshape((A, n)), work)
    g3 = g.reshape((A, n, B))
    p3 = p.reshape((A, n, B))
    q3 = q.reshape((A, n, B))
    x3 = x.reshape((A, n, B))
    y3 = y.reshape((A, n, B))
    z3 = z.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if ax.has_drift else g3
    lo, di, up, scratch = _line_scratch(work, n, B)
    pre, E, C = scratch[0], scratch[1], scratch[2]
    inv_h = 1.0 / ax.h
    has_walls = ax.has_walls
    W = _walls3(ax, A, n, B)
    hk = ax.hkind
    Wh = _hw3(ax, A, n, B)
    rh = 0.0
    sh = 0.0
    rf = 0.0
    sf = 0.0
    for a in range(A):
        line_coefficients(g3, d3, a, ax, lo, di, up)
        _line_costs(g3, a, ax, Wh, E, C, pre)
        for i in range(n):
            im = i - 1 if i > 0 else n - 1
            ip = i + 1 if i < n - 1 else 0
            has_lo = i > 0 or periodic
            has_up = i < n - 1 or periodic
            for b in range(B):
                gi = g3[a, i, b]
                v = di[i, b] * gi
                w = di[i, b] * x3[a, i, b]
                dm = 0.0
                dp = 0.0
                if has_lo:  # row i of M^T: up[i-1] at i-1, lo[i+1] at i+1 (wrapping if periodic)
                    v += lo[i, b] * g3[a, im, b]
                    w += up[im, b] * x3[a, im, b]
                    dm = (gi - g3[a, im, b]) * inv_h
                if has_up:
                    v += up[i, b] * g3[a, ip, b]
                    w += lo[ip, b] * x3[a, ip, b]
                    dp = (g3[a, ip, b] - gi) * inv_h
                if has_walls and W[a, i, b] != 0:  # no Hamiltonian term through a wall face
                    code = W[a, i, b]
                    if code & 1:
                        dm = 0.0
                    if code & 2:
                        dp = 0.0
                    c = any_cost2(dp, dm, hk, ax.hpar, _wat(Wh, a, i, b, hk))
                else:
                    c = _node_cost2(dp, dm, ax.hpar, pre[i, b])
                rhs = p3[a, i, b]
                if has_q:
                    rhs += cq * q3[a, i, b]
                rhs += dt * (0.5 * c)
                r = abs(v - rhs)
                if r > rh:
                    rh = r
                if abs(rhs) > sh:
                    sh = abs(rhs)
                if last:
                    zi = z3[a, i, b]
                    r = abs(w - zi)
                    if r > rf:
                        rf = r
                    if abs(zi) > sf:
                        sf = abs(zi)
                else:
                    y3[a, i, b] = w
    return rh, sh, rf, sf


@njit(cache=True, error_model="numpy")
def pair_residual(u, states, f, m, z, op, out_norms):
    """Residuals of the discrete (split) HJB and FP equations for the pair (u with its intermediate
    states, m) and the running cost f, in one pass: at every step and axis the rows of M_k(s_k) are built
    once and used for

        HJB substep k:  r_k = M_k(s_k) s_k - s_{k-1} - dt c_k(s_k)    (s_{-1} = u^{n+1} + dt f^n, s_{d-1} = u^n)
        FP step n:      r^n = M_{d-1}^T ... M_0^T m^{n+1} - m^n

    out_norms[n] = (max_k max|r_k|, max_k max|s_{k-1} + dt c_k|, max|r^n|, max|m^n|).  On exit rows the
    ghost term and exit payment are part of c_k.  z: the FP targets, z[n] in place of m^n in r^n (z = m, or
    m^n + dt S^n with an FP source S)."""
    Nt = u.shape[0] - 1
    shape = u.shape[1:]
    work = _workspace(shape)
    ya = np.empty(shape)
    yb = np.empty(shape)
    pex = np.empty(shape)
    ndim = op.ndim
    dt = op.dt
    for n in range(Nt):
        dn = drift_at(op, n)
        rh = 0.0
        sh = 0.0
        prev = u[n + 1]
        x = m[n + 1]
        for k in range(ndim):
            s = u[n] if k == ndim - 1 else states[n, k]
            y = ya if k % 2 == 0 else yb
            last = k == ndim - 1
            ax = axis_at(op, k, dt, n)
            p = prev
            if ax.elo or ax.ehi:
                pex[:, :, :] = prev
                add_exit_source(s, dn[k], k, ax, dt, pex)
                p = pex
            r, sc, rf, sf = _pair_axis_norms(s, dn[k], k, ax, p, f[n], dt, k == 0, x, y, last, z[n], work)
            rh = max(rh, r)
            sh = max(sh, sc)
            prev = s
            x = y
        out_norms[n, 0] = rh
        out_norms[n, 1] = sh
        out_norms[n, 2] = rf
        out_norms[n, 3] = sf


@njit(cache=True, error_model="numpy")
def pair_residual_line(u, f, m, z, op, out_norms):
    """``pair_residual`` on one reflecting line without exits (1-D), the same arithmetic (``_pair_line_norms``
    per level) without compiling the strided, periodic and exit paths (seconds of a cold start).
    u, m, z: (Nt+1, N); f: (Nt, N)."""
    Nt = u.shape[0] - 1
    N = u.shape[1]
    work = _workspace((1, N, 1))
    y = np.empty((1, N))
    for n in range(Nt):
        ax = axis_at(op, 0, op.dt, n)
        d = drift_at(op, n)[0].reshape((1, N)) if op.has_drift else u[n].reshape((1, N))
        rh, sh, rf, sf = _pair_line_norms(u[n].reshape((1, N)), d, ax, u[n + 1].reshape((1, N)),
                                          f[n].reshape((1, N)), op.dt, bool(True), m[n + 1].reshape((1, N)), y,
                                          bool(True), z[n].reshape((1, N)), work)
        out_norms[n, 0] = rh
        out_norms[n, 1] = sh
        out_norms[n, 2] = rf
        out_norms[n, 3] = sf


@njit(cache=True, error_model="numpy")
def exit_outflow(m, u, states, op, labels, out):
    """Outflow of every step through every exit (door or whole exit side), without the cell volume:

        out[n, e] = sum over the exit faces f labelled e (labels[k, j, f] = e) of  dt r_i(s_k) z_k,i,

    i the wall cell of face f, with z_0 = m^{n+1} and z_{k+1} = M_k(s_k)^T z_k (the FP step undone factor by
    factor, so z_d = m^n up to the round-off of the FP solve).  The column sums of M_k^T are 1 + dt r on
    exit cells and 1 elsewhere, so sum z_{k+1} = sum z_k + the outflow of axis k: the mass lost in step n is
    exactly the sum of out[n] (the outflow balance).  labels: (3, 2, S) int64 exit number per face (-1 on
    walls, ``operator.exit_faces``); out: (Nt, number of exits), overwritten."""
    Nt = m.shape[0] - 1
    shape = m.shape[1:]
    za = np.empty(shape)
    zb = np.empty(shape)
    work = _workspace(shape)
    ndim = op.ndim
    dt = op.dt
    has_drift = op.has_drift
    for n in range(Nt):
        for e in range(out.shape[1]):
            out[n, e] = 0.0
        dn = drift_at(op, n)
        src = m[n + 1]
        for k in range(ndim):
            s = u[n] if k == ndim - 1 else states[n, k]
            ax = axis_at(op, k, dt, n)
            A, nk, B = _split(shape, k)
            Wh = _hw3(ax, A, nk, B)
            s3 = s.reshape((A, nk, B))
            z3 = src.reshape((A, nk, B))
            d3 = dn[k].reshape((A, nk, B)) if has_drift else s3
            inv_h, dif = stencil_scales(ax.nu, ax.h)
            for side in range(2):
                if (side == 0 and ax.elo) or (side == 1 and ax.ehi):
                    i = 0 if side == 0 else nk - 1
                    G = ax.ghost[ax.k, side]
                    for a in range(A):
                        for b in range(B):
                            gex = G[a * B + b]
                            if np.isnan(gex):
                                continue
                            bk = d3[a, i, b] if has_drift else 0.0
                            rate, cst = _exit_ghost(s3[a, i, b], gex, bk, has_drift, side == 1, inv_h, dif,
                                                    ax.hkind, ax.hpar, _wat(Wh, a, i, b, ax.hkind))
                            out[n, labels[k, side, a * B + b]] += dt * rate * z3[a, i, b]
            if k < ndim - 1:
                dst = za if k % 2 == 0 else zb
                apply_axis(s, dn[k], k, ax, bool(True), src, dst, work)
                src = dst


@njit(cache=True, error_model="numpy")
def axis_coefficients(g, drift_k, axis, ax, lo, di, up):
    """Rows of M_k(g) at every node: lo, di, up shaped like g (for assembly and tests).  Exit sides
    (ax.elo/ehi): lo/up of the wall row stay 0 (no ghost column); its diagonal carries dt r."""
    A, n, B = _split(g.shape, axis)
    g3 = g.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if ax.has_drift else g3
    lo3 = lo.reshape((A, n, B))
    di3 = di.reshape((A, n, B))
    up3 = up.reshape((A, n, B))
    for a in range(A):
        line_coefficients(g3, d3, a, ax, lo3[a], di3[a], up3[a])


# ----------------------------------------------------------------------------- coupling-loop reductions
@njit(cache=True, error_model="numpy")
def coupling_stats(m, m_hat, u, cell_volume, mass0, outflow=None):
    """One pass over the iterate m and the candidate pair (u, m_hat), all (Nt+1, size) views:

        finite    all of u and m_hat finite
        norm_m    sum_{n>=1} |m^n|                        (l1 norm of the iterate, levels 1..Nt)
        res_sum   sum_{n>=1} |m_hat^n - m^n|              (l1 norm of the fixed-point residual)
        mass_err  max_n |cell_volume * sum m_hat^n - mass0|                  (no exits: outflow omitted)
                  max_n |cell_volume * sum m_hat^n + outflow[n] - mass0|     (exit sides: the outflow balance,
                  outflow[n] = cumulative outflow(0, t_n), ``outflow.outflow_history(...).cumulative``)

    Returned as (finite, norm_m, res_sum, mass_err); the sums are plain sequential sums."""
    z = 0.0  # x * 0 is 0 for finite x and nan otherwise: z stays 0 iff every value is finite
    for j in range(u.shape[0]):
        for i in range(u.shape[1]):
            z += u[j, i] * 0.0
    norm_m = 0.0
    res_sum = 0.0
    mass_err = 0.0
    for j in range(m_hat.shape[0]):
        tot = 0.0
        for i in range(m_hat.shape[1]):
            v = m_hat[j, i]
            tot += v
            z += v * 0.0
            if j > 0:
                w = m[j, i]
                norm_m += abs(w)
                res_sum += abs(v - w)
        if outflow is None:
            e = abs(tot * cell_volume - mass0)
        else:
            e = abs(tot * cell_volume + outflow[j] - mass0)
        if e > mass_err:
            mass_err = e
    finite = z == 0.0
    return finite, norm_m, res_sum, mass_err


@njit(cache=True, error_model="numpy")
def mix_inplace(m, m_hat, theta):
    """m <- m + theta (m_hat - m) elementwise (2-D views); returns sum |m_new - m_old|."""
    change = 0.0
    for j in range(m.shape[0]):
        for i in range(m.shape[1]):
            old = m[j, i]
            new = old + theta * (m_hat[j, i] - old)
            change += abs(new - old)
            m[j, i] = new
    return change


@njit(cache=True, error_model="numpy")
def l1_diff(a, b):
    """sum |a - b| over two 1-D arrays."""
    s = 0.0
    for i in range(a.shape[0]):
        s += abs(a[i] - b[i])
    return s
