"""Hamiltonians H(x, p, m), convex in p: what an agent's control costs.

An agent with state dX = (b + alpha) dt + sigma dW pays the running cost L(alpha[, m]) + V + F; the
Hamiltonian is the Legendre transform H(p) = sup_a (-a . p - L(a)), the HJB reads

    -du/dt - nu Lap u + H(grad u[, m]) - b . grad u = V + F(x, m),     alpha = -dH/dp(grad u)

and the FP equation transports m with the optimal drift b - dH/dp(grad u).  The package's Hamiltonians are
SEPARABLE, H(p) = sum_k h(p_k) with one convex one-axis function h, h(0) = h'(0) = 0 (the agent's control cost
is then sum_k l(a_k) with l the dual of h); in 1-D this is no restriction, and for the quadratic and congestion
Hamiltonians it is the usual |p|^2 form in every dimension.  The discretisation (``fd.kernels.ham_row``,
docs/method.md, section 'General Hamiltonians') splits h per axis by Engquist-Osher,

    h_EO(D-u, D+u) = h(max(D-u, 0)) + h(min(D+u, 0)),

monotone, C^1 when h is, and the FP step stays the exact transpose of the linearised HJB step.

* ``Quadratic()``                 h = p^2/2, l = a^2/2 (the default; the kernels' fast path).
* ``Power(q)``                    h = |p|^q / q, q in (1, 2]; l = |a|^q' / q', 1/q + 1/q' = 1.
* ``BoundedControl(a_max)``       h = p^2/2 for |p| <= a_max, a_max |p| - a_max^2/2 outside: the quadratic
                                  cost with the control constrained to |a_k| <= a_max on each axis.
* ``Congestion(c0, c, alpha)``    h = p^2 / (2 (c0 + c m)^alpha), alpha in [0, 1]: moving through a crowd costs
                                  more (l = (c0 + c m)^alpha a^2 / 2).  In step n of the HJB the density is
                                  m^{n+1}, the level the coupling F sees.  ``first_variation()`` gives
                                  ``PlannerCongestion``, the social planner's HJB Hamiltonian H + m dH/dm.
* ``Separable(h, dh, p_max)``     a user-supplied convex h with its derivative: h' is tabulated on a uniform
                                  grid of [-p_max, p_max] and interpolated linearly (h its exact integral), so
                                  the numerical Hamiltonian is C^1 and monotone; convexity (h' non-decreasing),
                                  h'(0) = 0 and the consistency of h with dh are checked on the table.
"""

from __future__ import annotations

import numpy as np

from .numbers import finite_number

HAM_QUADRATIC, HAM_POWER, HAM_BOUNDED, HAM_WEIGHTED, HAM_TABLE = 0, 1, 2, 3, 4


def _number(value, name: str, cls: str) -> float:
    return finite_number(value, name, where=cls)


class Hamiltonian:
    """Base class: a separable convex Hamiltonian H(p[, m]) = sum_k h(p_k[, m]).

    ``H(p, m=None)``, ``dH(p, m=None)`` (= dH/dp; the optimal control is -dH), ``dHdm(p, m)`` and
    ``lagrangian(a, m=None)`` (the control cost l(a), +inf where a is not admissible) act elementwise on
    one axis's component (sum over axes for the d-D value).  The kernels see ``kind``, ``params()`` and,
    when the Hamiltonian depends on m, ``weights(m)``."""

    kind = HAM_QUADRATIC
    depends_on_m = False
    #: Lipschitz constant of h' (Newton's a-posteriori stop in ``fd.kernels.newton_axis``); inf if none
    lipschitz = 1.0

    def H(self, p, m=None):
        raise NotImplementedError

    def dH(self, p, m=None):
        raise NotImplementedError

    def dHdm(self, p, m):
        """dH/dm: 0 for a Hamiltonian that does not depend on m."""
        return np.zeros(np.broadcast(np.asarray(p, dtype=float), np.asarray(m, dtype=float)).shape)

    def lagrangian(self, a, m=None):
        raise NotImplementedError

    def params(self) -> np.ndarray:
        return np.zeros(1)

    def weights(self, m):
        """The per-node weights the kernels take for an m-dependent Hamiltonian (None otherwise)."""
        return None

    def first_variation(self) -> "Hamiltonian":
        """The Hamiltonian of the social planner's HJB, H + m dH/dm (``model.social``): itself when H does not
        depend on m; a NotImplementedError naming the class for an m-dependent H without its own."""
        if self.depends_on_m:
            raise NotImplementedError(
                f"the Hamiltonian {type(self).__name__} depends on m but gives no first_variation(), which "
                "objective='social' needs (the planner's HJB sees H + m dH/dm); implement it or solve the Nash "
                "equilibrium (objective='nash')")
        return self

    def dweights(self, m):
        """d/dm of ``weights`` (Newton's Jacobian; None for a Hamiltonian that does not depend on m)."""
        return None

    @property
    def is_quadratic(self) -> bool:
        return self.kind == HAM_QUADRATIC

    def describe(self) -> dict:
        raise NotImplementedError

    def __repr__(self):
        d = self.describe()
        args = ", ".join(f"{k}={v!r}" for k, v in d.items() if k != "type")
        return f"{type(self).__name__}({args})"


class Quadratic(Hamiltonian):
    """h(p) = p^2 / 2, l(a) = a^2 / 2 (H = |p|^2/2): the default, computed by the kernels' fast path."""

    kind = HAM_QUADRATIC

    def H(self, p, m=None):
        p = np.asarray(p, dtype=float)
        return 0.5 * p * p

    def dH(self, p, m=None):
        return np.asarray(p, dtype=float).copy()

    def lagrangian(self, a, m=None):
        a = np.asarray(a, dtype=float)
        return 0.5 * a * a

    def describe(self):
        return {"type": "quadratic"}


class Power(Hamiltonian):
    """h(p) = |p|^q / q, q in (1, 2]; the dual control cost l(a) = |a|^q' / q' with q' = q / (q - 1) >= 2.

    For q < 2, h' = sign(p) |p|^(q-1) is only Hoelder at p = 0: the best response then moves by
    (round-off of D u)^(q-1) (about 1e-7 for q = 1.5) where u is flat, which no loop can get under.  So
    below |p| = delta the slope is continued linearly, h'(p) = delta^(q-2) p (h = delta^(q-2) p^2 / 2 there,
    and h shifted by delta^q (1/2 - 1/q) above, so that h(0) = h'(0) = 0 and h is C^1 and convex): h' becomes
    Lipschitz with constant delta^(q-2), and h changes by at most delta^q / 2 (1e-12 at the default
    delta = 1e-8), far below any discretisation error.  delta = 0 is the exact power law."""

    kind = HAM_POWER

    def __init__(self, q, delta=1e-8):
        q = _number(q, "q", "Power")
        if not (1.0 < q <= 2.0):
            raise ValueError(f"Power: q = {q} must lie in (1, 2] (H = |p|^q / q; q = 2 is the quadratic "
                             "Hamiltonian, q <= 1 is not strictly convex); e.g. Power(1.5)")
        delta = _number(delta, "delta", "Power")
        if not (0.0 <= delta <= 1e-2):
            raise ValueError(f"Power: delta = {delta} must lie in [0, 1e-2] (the |p| below which h' is continued "
                             "linearly; 0: the exact power law); e.g. Power(1.5, delta=1e-8)")
        self.q = q
        self.delta = delta if q < 2.0 else 0.0
        if q == 2.0:
            self.lipschitz = 1.0
        else:
            self.lipschitz = self.delta ** (q - 2.0) if self.delta > 0 else np.inf

    @property
    def q_dual(self) -> float:
        return self.q / (self.q - 1.0)

    @property
    def _shift(self) -> float:
        """h's shift above delta, delta^q (1/2 - 1/q) (<= 0)."""
        return self.delta ** self.q * (0.5 - 1.0 / self.q)

    def H(self, p, m=None):
        a = np.abs(np.asarray(p, dtype=float))
        if self.delta == 0.0:
            return a ** self.q / self.q
        d = self.delta
        return np.where(a < d, 0.5 * d ** (self.q - 2.0) * a * a, a ** self.q / self.q + self._shift)

    def dH(self, p, m=None):
        p = np.asarray(p, dtype=float)
        a = np.abs(p)
        if self.delta == 0.0:
            return np.sign(p) * a ** (self.q - 1.0)
        d = self.delta
        return np.where(a < d, d ** (self.q - 2.0) * p, np.sign(p) * a ** (self.q - 1.0))

    def lagrangian(self, a, m=None):
        qd = self.q_dual
        a = np.abs(np.asarray(a, dtype=float))
        if self.delta == 0.0:
            return a ** qd / qd
        d = self.delta
        return np.where(a < d ** (self.q - 1.0), 0.5 * d ** (2.0 - self.q) * a * a, a ** qd / qd - self._shift)

    def params(self):
        """(q, delta, delta^q (1/2 - 1/q), delta^(q-2), 1 - 1/q): the constants of ``kernels.ham_side`` computed
        once (the same operations as there before, so the same values)."""
        q, d = self.q, self.delta
        return np.array([q, d, d ** q * (0.5 - 1.0 / q), d ** (q - 2.0) if d > 0.0 else 0.0, 1.0 - 1.0 / q])

    def describe(self):
        return {"type": "power", "q": self.q, "delta": self.delta}


class BoundedControl(Hamiltonian):
    """h(p) = sup_{|a| <= a_max} (-a p - a^2/2) = p^2/2 for |p| <= a_max, a_max |p| - a_max^2/2 outside: the
    quadratic control cost with the control constrained to |a_k| <= a_max on every axis (h' = p clipped)."""

    kind = HAM_BOUNDED

    def __init__(self, a_max):
        a_max = _number(a_max, "a_max", "BoundedControl")
        if a_max <= 0.0:
            raise ValueError(f"BoundedControl: a_max = {a_max} must be > 0 (the largest speed an agent can "
                             "choose per axis); e.g. BoundedControl(1.0)")
        self.a_max = a_max

    def H(self, p, m=None):
        p = np.abs(np.asarray(p, dtype=float))
        A = self.a_max
        return np.where(p <= A, 0.5 * p * p, A * p - 0.5 * A * A)

    def dH(self, p, m=None):
        return np.clip(np.asarray(p, dtype=float), -self.a_max, self.a_max)

    def lagrangian(self, a, m=None):
        a = np.asarray(a, dtype=float)
        return np.where(np.abs(a) <= self.a_max, 0.5 * a * a, np.inf)

    def params(self):
        return np.array([self.a_max])

    def describe(self):
        return {"type": "bounded_control", "a_max": self.a_max}


class Congestion(Hamiltonian):
    """h(p, m) = p^2 / (2 (c0 + c m)^alpha), c0 > 0, c >= 0, alpha in [0, 1]: the cost of moving grows with the
    local density, l(a, m) = (c0 + c m)^alpha a^2 / 2.  dH/dp = p / (c0 + c m)^alpha,
    dH/dm = -alpha c p^2 / (2 (c0 + c m)^(alpha + 1)).  With c = 0 (or alpha = 0) it is the quadratic
    Hamiltonian scaled by 1 / c0^alpha (c0 = 1: exactly the quadratic one)."""

    kind = HAM_WEIGHTED
    depends_on_m = True

    def __init__(self, c0=1.0, c=1.0, alpha=1.0):
        c0 = _number(c0, "c0", "Congestion")
        c = _number(c, "c", "Congestion")
        alpha = _number(alpha, "alpha", "Congestion")
        if c0 <= 0.0:
            raise ValueError(f"Congestion: c0 = {c0} must be > 0 (the cost factor in an empty region); "
                             "e.g. Congestion(c0=1.0, c=1.0, alpha=1.0)")
        if c < 0.0:
            raise ValueError(f"Congestion: c = {c} must be >= 0 (a crowd makes moving dearer, not cheaper); "
                             "use c = 0 for no congestion")
        if not (0.0 <= alpha <= 1.0):
            raise ValueError(f"Congestion: alpha = {alpha} must lie in [0, 1] (the exponent of c0 + c m)")
        self.c0, self.c, self.alpha = c0, c, alpha
        self.depends_on_m = c != 0.0 and alpha != 0.0

    def _g(self, m):
        m = np.maximum(np.asarray(m, dtype=float), 0.0)
        return (self.c0 + self.c * m) ** self.alpha

    def H(self, p, m=None):
        p = np.asarray(p, dtype=float)
        return 0.5 * p * p / self._g(0.0 if m is None else m)

    def dH(self, p, m=None):
        return np.asarray(p, dtype=float) / self._g(0.0 if m is None else m)

    def dHdm(self, p, m):
        p = np.asarray(p, dtype=float)
        return 0.5 * p * p * self.dweights(m)

    def lagrangian(self, a, m=None):
        a = np.asarray(a, dtype=float)
        return 0.5 * self._g(0.0 if m is None else m) * a * a

    def weights(self, m):
        """1 / (c0 + c m)^alpha (m clipped at 0), elementwise."""
        return 1.0 / self._g(m)

    def first_variation(self):
        """``PlannerCongestion(self)`` (the planner's HJB: H + m dH/dm), or itself when H does not depend on m."""
        return PlannerCongestion(self) if self.depends_on_m else self

    def dweights(self, m):
        """d/dm [1 / (c0 + c m)^alpha] = -alpha c / (c0 + c m)^(alpha + 1) for m >= 0 (0 where m < 0, where
        ``weights`` is clipped): the factor of dH/dm = dweights(m) p^2 / 2 (``dHdm``)."""
        m = np.asarray(m, dtype=float)
        d = -self.alpha * self.c / (self.c0 + self.c * np.maximum(m, 0.0)) ** (self.alpha + 1.0)
        return np.where(m >= 0.0, d, 0.0)

    def describe(self):
        return {"type": "congestion", "c0": self.c0, "c": self.c, "alpha": self.alpha}


class PlannerCongestion(Hamiltonian):
    """The social planner's HJB Hamiltonian of ``Congestion(c0, c, alpha)`` (``model.social``): with w = 1/(c0 + c m)^alpha,

        H + m dH/dm = w_s(m) p^2 / 2,      w_s = w + m dw/dm = (c0 + (1 - alpha) c m) / (c0 + c m)^(alpha + 1) > 0

    (the congestion correction -m dH/dm moved to the left side), while the agents still move with the control
    -dH/dp = -w p of the original Hamiltonian: the HJB sweeps take ``weights`` (w_s), the FP sweeps
    ``fp_weights`` (w).  The FP step is then the transpose of the policy's step M_w(u), and the pair is the
    discrete planner's optimality system (docs/method.md, section 'Mean-field control and the price of
    anarchy').  ``dH`` and ``lagrangian`` are the original's (the control and its cost)."""

    kind = HAM_WEIGHTED
    depends_on_m = True

    def __init__(self, base: Congestion):
        if not isinstance(base, Congestion):
            raise TypeError(f"PlannerCongestion needs a Congestion Hamiltonian, got {type(base).__name__}")
        self.base = base

    def H(self, p, m=None):
        p = np.asarray(p, dtype=float)
        return 0.5 * p * p * self.weights(0.0 if m is None else m)

    def dH(self, p, m=None):
        return self.base.dH(p, m)

    def dHdm(self, p, m):
        raise NotImplementedError("PlannerCongestion: dH/dm of the planner's Hamiltonian is not needed")

    def lagrangian(self, a, m=None):
        return self.base.lagrangian(a, m)

    def params(self):
        return self.base.params()

    def weights(self, m):
        """w_s = (c0 + (1 - alpha) c m) / (c0 + c m)^(alpha + 1) (m clipped at 0): the planner's HJB."""
        b = self.base
        m = np.maximum(np.asarray(m, dtype=float), 0.0)
        return (b.c0 + (1.0 - b.alpha) * b.c * m) / (b.c0 + b.c * m) ** (b.alpha + 1.0)

    def fp_weights(self, m):
        """w = 1 / (c0 + c m)^alpha: the FP (the agents' control -w p)."""
        return self.base.weights(m)

    def dweights(self, m):
        """d w_s/dm = 2 w' + m w'' = -alpha c (2 c0 + (1 - alpha) c m) / (c0 + c m)^(alpha + 2) for m >= 0 (0 where
        m < 0, where ``weights`` is clipped): the planner's HJB rows' dependence on m (Newton's Jacobian)."""
        b = self.base
        m = np.asarray(m, dtype=float)
        mp_ = np.maximum(m, 0.0)
        d = -b.alpha * b.c * (2.0 * b.c0 + (1.0 - b.alpha) * b.c * mp_) / (b.c0 + b.c * mp_) ** (b.alpha + 2.0)
        return np.where(m >= 0.0, d, 0.0)

    def fp_dweights(self, m):
        """d w/dm of ``fp_weights`` (the FP rows' dependence on m in Newton's Jacobian): ``Congestion.dweights``."""
        return self.base.dweights(m)

    def describe(self):
        return {"type": "planner-congestion", "congestion": self.base.describe()}


class Separable(Hamiltonian):
    """A user-supplied separable convex Hamiltonian H(p) = sum_k h(p_k): ``h`` and its derivative ``dh``
    (numpy-vectorised callables of p), with h'(0) = 0 (its minimum at p = 0: a preferred direction of motion
    is a drift b, not part of H) and h(0) = 0 (a constant belongs in the potential V).

    h' is tabulated at n nodes of [-p_max, p_max] (p = 0 among them) and interpolated linearly (linear
    extrapolation beyond), h is the exact integral of that interpolant from 0: the kernels then evaluate a
    C^1 convex piecewise-quadratic h, within O((2 p_max / n)^2 max|h'''|) of yours.  Choose p_max above the
    largest |du/dx| of the solution.  Raises ValueError naming the check that fails: dh not non-decreasing
    on the table (h not convex), dh(0) != 0, h(0) != 0, or h not the integral of dh."""

    kind = HAM_TABLE

    def __init__(self, h, dh, p_max=10.0, n=4001, name="separable"):
        if not callable(h) or not callable(dh):
            raise TypeError("Separable: h and dh must be callables of p (numpy arrays in, arrays out)")
        p_max = _number(p_max, "p_max", "Separable")
        if p_max <= 0:
            raise ValueError(f"Separable: p_max = {p_max} must be > 0 (the table covers [-p_max, p_max])")
        whole = isinstance(n, (int, float, np.integer, np.floating)) and not isinstance(n, (bool, np.bool_)) \
            and np.isfinite(n) and float(n).is_integer()
        if not whole:
            raise ValueError(f"Separable: n = {n!r} must be a whole number of table nodes (default 4001)")
        n = int(n)
        if n < 5:
            raise ValueError(f"Separable: n = {n} table nodes is too few; use n >= 5 (default 4001)")
        if n % 2 == 0:
            n += 1  # p = 0 must be a node
        self.h, self.dh, self.p_max, self.n, self.name = h, dh, p_max, n, name
        mid = (n - 1) // 2
        dp = p_max / mid
        p = (np.arange(n) - mid) * dp
        d = np.asarray(dh(p), dtype=float)
        hv = np.asarray(h(p), dtype=float)
        if d.shape != p.shape or hv.shape != p.shape or not (np.all(np.isfinite(d)) and np.all(np.isfinite(hv))):
            raise ValueError("Separable: h(p) and dh(p) must return finite arrays of p's shape on [-p_max, p_max]")
        scale = max(float(np.abs(d).max()), 1e-300)
        if np.any(np.diff(d) < -1e-12 * scale):
            j = int(np.argmin(np.diff(d)))
            raise ValueError(f"Separable '{name}': dh decreases between p = {p[j]:.6g} and {p[j + 1]:.6g}: h is "
                             "not convex in p on the table (a monotone scheme needs a convex Hamiltonian)")
        if abs(d[mid]) > 1e-12 * scale:
            raise ValueError(f"Separable '{name}': dh(0) = {d[mid]:.6g} must be 0 (h has its minimum at p = 0; "
                             "move a preferred direction into the drift b)")
        hscale = max(float(np.abs(hv).max()), 1e-300)
        if abs(hv[mid]) > 1e-12 * hscale:
            raise ValueError(f"Separable '{name}': h(0) = {hv[mid]:.6g} must be 0 (shift h by -h(0) and add "
                             "-h(0) to the potential V)")
        d = np.maximum.accumulate(d)  # round-off decreases removed: the table is exactly monotone
        d[mid] = 0.0
        d[:mid] = np.minimum(d[:mid], 0.0)  # and h' has the sign of p (the kernels' upwind test reads h''s sign)
        d[mid + 1:] = np.maximum(d[mid + 1:], 0.0)
        # h at the nodes: the exact integral of the linear interpolant of h', from 0
        seg = 0.5 * dp * (d[1:] + d[:-1])
        H = np.empty(n)
        H[mid] = 0.0
        H[mid + 1:] = np.cumsum(seg[mid:])
        H[:mid] = -np.cumsum(seg[:mid][::-1])[::-1]
        err = float(np.abs(H - (hv - hv[mid])).max())
        if err > 1e-3 * hscale + 1e-9:
            j = int(np.argmax(np.abs(H - hv)))
            raise ValueError(f"Separable '{name}': h is not the integral of dh (off by {err:.3g} at p = {p[j]:.6g}); "
                             "check the derivative you passed")
        self.table_error = err
        self._p = p
        self._d = d
        self._H = H
        self._dp = dp
        slopes = np.diff(d) / dp
        self.lipschitz = float(slopes.max()) if slopes.size else np.inf

    def _eval(self, p):
        p = np.asarray(p, dtype=float)
        mid = (self.n - 1) // 2
        s = p / self._dp + mid
        j = np.clip(np.floor(s).astype(np.int64), 0, self.n - 2)
        t = s - j
        d0, d1 = self._d[j], self._d[j + 1]
        d = d0 + t * (d1 - d0)
        H = self._H[j] + self._dp * (t * d0 + 0.5 * t * t * (d1 - d0))
        return H, d

    def H(self, p, m=None):
        """The tabulated h the kernels use (within table_error of the user's h on [-p_max, p_max])."""
        return self._eval(p)[0]

    def dH(self, p, m=None):
        return self._eval(p)[1]

    def lagrangian(self, a, m=None):
        """l(a) = sup_p (-a p - h(p)), evaluated on the table's nodes (for diagnostics)."""
        a = np.asarray(a, dtype=float)
        return np.max(-a[..., None] * self._p - self._H, axis=-1)

    def params(self):
        return np.concatenate([[self.p_max, 1.0 / self._dp, float(self.n)], self._d, self._H])

    def describe(self):
        """Type, name, table (p_max, n) and, for h and dh defined at module level, their import references
        ("module:qualname", ``callable_reference``; None for lambdas and closures): what a result file keeps
        to rebuild the Hamiltonian (``from_description``)."""
        return {"type": "separable", "name": self.name, "p_max": self.p_max, "n": self.n,
                "h": callable_reference(self.h), "dh": callable_reference(self.dh)}


def callable_reference(fn) -> str | None:
    """"module:qualname" of a function importable by that name (a module-level def, a numpy ufunc), None for a
    lambda, a closure or anything the import would not give back."""
    import importlib

    module = getattr(fn, "__module__", None) or ("numpy" if isinstance(fn, np.ufunc) else None)
    qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not module or not qual or "<" in qual or module == "__main__":
        return None
    try:
        obj = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qual}" if obj is fn else None


def _import_reference(ref: str):
    import importlib

    module, qual = ref.split(":", 1)
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def from_description(d: dict) -> Hamiltonian:
    """The Hamiltonian a ``describe()`` dict stands for (a result file's /problem keeps it).  Separable needs
    the import references of h and dh (module-level functions); ValueError naming what is missing otherwise
    (h and dh of a lambda or closure are not stored: pass the Hamiltonian again)."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind in (None, "quadratic"):
        return Quadratic()
    if kind == "power":
        return Power(d["q"], d.get("delta", 0.0))  # files written before delta existed: the exact law
    if kind == "bounded_control":
        return BoundedControl(d["a_max"])
    if kind == "congestion":
        return Congestion(d["c0"], d["c"], d["alpha"])
    if kind == "planner-congestion":
        return PlannerCongestion(from_description(d["congestion"]))
    if kind == "separable":
        if not d.get("h") or not d.get("dh"):
            raise ValueError(f"Separable '{d.get('name')}': h and dh are not importable functions (a lambda or a "
                             "closure), so the file keeps only their description; rebuild the problem with "
                             "MFGProblem(..., hamiltonian=Separable(h, dh, ...)), or define h and dh at module "
                             "level so that their references are stored")
        try:
            h, dh = _import_reference(d["h"]), _import_reference(d["dh"])
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(f"Separable '{d.get('name')}': cannot import h = {d['h']!r} or dh = {d['dh']!r} "
                             f"({exc})") from None
        return Separable(h, dh, p_max=d["p_max"], n=d["n"], name=d.get("name", "separable"))
    raise ValueError(f"hamiltonian description {d!r}: unknown type {kind!r}")


def as_hamiltonian(value) -> Hamiltonian:
    """None -> Quadratic(); a Hamiltonian as is; anything else a TypeError naming the choices."""
    if value is None:
        return Quadratic()
    if isinstance(value, Hamiltonian):
        return value
    raise TypeError(f"hamiltonian = {value!r}: give a mfg_pde Hamiltonian: Quadratic(), Power(q), "
                    "BoundedControl(a_max), Congestion(c0, c, alpha) or Separable(h, dh, p_max)")
