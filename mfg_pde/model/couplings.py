"""Couplings F(x, m_t): the population-dependent part of the running cost.

Each coupling maps the density at a set of time levels to the running cost on the grid:
``coupling.field(grid, t, m) -> f`` with ``t`` shaped (K,), ``m`` shaped (K, *grid) and ``f``
shaped (K, *grid).  Couplings add with ``+``.

* ``QuadraticInteraction(beta)``  F = beta_t/2 |x - mean_t|^2  (= beta_t/2 int |x-y|^2 m(y) dy minus
  the x-independent variance term; the MF-PID interaction).
* ``FixedGuidance(beta, centre)`` F = beta_t/2 |x - c_t|^2  (independent agents, prescribed centre).
* ``KernelInteraction(W)``        F = (W * m)(x) = int W(x - y) m(y) dy for an even kernel W.
* ``LocalPower(kappa, p)``        F = kappa m^p   (congestion).
* ``LocalLog(kappa)``             F = kappa log m.
* ``MeanAttraction(kappa, s)``    F = kappa_t/2 |x - s mean_t|^2  (attraction to a fraction s of the mean;
  s = 1 is QuadraticInteraction(kappa), s = 0 FixedGuidance(kappa, 0)).

``coupling.first_variation()`` returns the coupling of the social planner's (mean-field control) optimality
system, F_soc(x, m) = delta/delta m [ int F(y, m) m(y) dy ](x) (docs/method.md, section 'Mean-field control
and the price of anarchy').
"""

from __future__ import annotations

import numpy as np

from .grid import BC_PERIODIC, Grid
from .schedules import as_schedule


class Coupling:
    """Base class.  Subclasses implement ``field`` and ``describe``."""

    #: True when F depends on m only through its mean (cheap to evaluate).
    mean_only = False
    #: False when F does not depend on m at all (a prescribed potential, e.g. FixedGuidance): the
    #: planning solver then needs no outer fixed point.
    uses_m = True

    def field(self, grid: Grid, t: np.ndarray, m: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    def monotone(self, grid: Grid, t=None) -> bool | None:
        """Whether F is monotone on this grid (at the times t), int (F(m1) - F(m2)) (m1 - m2) >= 0 for all
        densities m1, m2 of equal mass (then the equilibrium is unique); False when it is known not to be
        (uniqueness is then not guaranteed), None when unknown (a user-defined coupling)."""
        return None

    def derivative(self, grid: Grid, t: np.ndarray, m: np.ndarray):
        """dF/dm level by level, for Newton, with m shaped (K, N) (levels x grid nodes, flattened): a dict
        with any of "diag" ((K, N): a local coupling), "lowrank" (list of (coef (K,), V (K, N)): the term
        coef_k V_k V_k^T), "shared" (list of (coef (K,), W (N, N)): coef_k W); {} when F does not depend on
        m; None when the coupling has no closed-form derivative (Newton then uses finite differences)."""
        return None

    def first_variation(self) -> "Coupling":
        """The coupling of the planner's optimality system: F_soc(x, m) = delta/delta m [int F(y, m) m(y) dy](x),
        the total interaction cost's first variation (``mp.solve(..., objective="social")``).  A coupling that
        cannot supply it raises NotImplementedError naming itself."""
        raise NotImplementedError(
            f"the coupling {type(self).__name__} cannot supply its first variation delta/delta m int F m dx, which "
            f"objective='social' needs; implement {type(self).__name__}.first_variation() (returning the coupling "
            "F + the derivative of the total interaction cost) or solve the Nash equilibrium (objective='nash')")

    #: True for couplings whose verdict False means anti-monotone (int (F(m1) - F(m2)) (m1 - m2) <= 0 for
    #: all pairs): a sum of such parts is not monotone either
    anti_when_not_monotone = False

    def __add__(self, other):
        return SumCoupling([self, other])

    def __rmul__(self, scale):
        """c * F: the coupling scaled by the number c (``ScaledCoupling``)."""
        if isinstance(scale, (int, float, np.integer, np.floating)):
            return ScaledCoupling(self, scale)
        return NotImplemented


class ScaledCoupling(Coupling):
    """scale * F: another coupling scaled by a number (e.g. continuation in the coupling strength); also
    written ``c * F``.  Monotone when F is and scale >= 0; with scale < 0 a monotone F becomes
    anti-monotone (not monotone), and an F whose "not monotone" means anti-monotone becomes monotone."""

    def __init__(self, base: Coupling, scale: float):
        if not isinstance(base, Coupling):
            raise TypeError(f"ScaledCoupling: base must be a Coupling, got {type(base).__name__}")
        scale = float(scale)
        if not np.isfinite(scale):
            raise ValueError(f"ScaledCoupling: scale = {scale} must be finite")
        self.base = base
        self.scale = scale
        self.mean_only = base.mean_only
        self.uses_m = base.uses_m

    def field(self, grid, t, m):
        return self.scale * self.base.field(grid, t, m)

    def describe(self):
        return {"type": "scaled", "scale": self.scale, "coupling": self.base.describe()}

    def first_variation(self):
        """c F_soc: the first variation is linear in F."""
        return ScaledCoupling(self.base.first_variation(), self.scale)

    def monotone(self, grid, t=None):
        if self.scale == 0.0 or not self.uses_m:
            return True
        verdict = self.base.monotone(grid, t)
        if self.scale > 0.0 or verdict is None:
            return verdict
        if verdict is True:
            return False
        return True if self.base.anti_when_not_monotone else None


class SumCoupling(Coupling):
    def __init__(self, parts):
        flat = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, SumCoupling) else [p])
        self.parts = flat
        self.mean_only = all(p.mean_only for p in flat)
        self.uses_m = any(p.uses_m for p in flat)

    def field(self, grid, t, m):
        out = self.parts[0].field(grid, t, m)
        for p in self.parts[1:]:
            out = out + p.field(grid, t, m)
        return out

    def describe(self):
        return {"type": "sum", "parts": [p.describe() for p in self.parts]}

    def first_variation(self):
        """sum of the parts' first variations (linear in F)."""
        return SumCoupling([p.first_variation() for p in self.parts])

    def monotone(self, grid, t=None):
        verdicts = [p.monotone(grid, t) for p in self.parts]
        if all(v is True for v in verdicts):
            return True
        if all(v is False and p.anti_when_not_monotone for v, p in zip(verdicts, self.parts)):
            return False  # a sum of anti-monotone parts
        return None  # a mixed sum can be either


def _sq_distance(grid: Grid, centres: np.ndarray) -> np.ndarray:
    """|x - c_k|^2 on the grid for centres shaped (K, ndim); returns (K, *grid)."""
    xs = grid.mesh(sparse=True)
    out = 0.0
    for k, xk in enumerate(xs):
        c = centres[:, k].reshape((-1,) + (1,) * grid.ndim)
        out = out + (xk[None] - c) ** 2
    return np.broadcast_to(out, (centres.shape[0],) + grid.shape)


class QuadraticInteraction(Coupling):
    """F = beta_t/2 |x - mean_t|^2 with beta_t a constant, a schedule or a callable of t."""

    mean_only = True

    def __init__(self, beta):
        self.beta = as_schedule(beta, "beta")

    def field(self, grid, t, m):
        mean = grid.mean(m)
        return 0.5 * self.beta(t).reshape((-1,) + (1,) * grid.ndim) * _sq_distance(grid, mean)

    def describe(self):
        return {"type": "quadratic-interaction", "beta": self.beta.describe()}

    def first_variation(self):
        """Itself: with Phi(m) = int beta/2 |x - mu|^2 m dx, delta Phi/delta m = beta/2 |x - mu|^2
        - beta (x - mu) . int (y - mu) m(y) dy / int m, and int (y - mu) m(y) dy = 0 (mu is the mean):
        the Nash and social optima coincide."""
        return self

    anti_when_not_monotone = True

    def derivative(self, grid, t, m):
        # F_i = beta/2 |x_i - mu|^2, mu = sum x m / sum m:  dF_i/dm_j = -beta (x_i - mu).(x_j - mu) / sum m,
        # one rank-one term per axis
        K = m.shape[0]
        S = m.sum(axis=1)
        beta = np.broadcast_to(np.asarray(self.beta(t), dtype=float).reshape(-1), (K,))
        low = []
        for xk in np.broadcast_arrays(*grid.mesh(sparse=True)):
            x = np.ascontiguousarray(xk).reshape(-1)
            mu = (m * x).sum(axis=1) / S
            low.append((-beta / S, x[None, :] - mu[:, None]))
        return {"lowrank": low}

    def monotone(self, grid, t=None):
        # int (F(m1) - F(m2)) (m1 - m2) = -beta_t |mean1 - mean2|^2 for equal masses: monotone where beta <= 0,
        # anti-monotone where beta > 0 (the LQ equilibrium is still unique, by its Riccati equation)
        beta = np.asarray(self.beta(np.asarray([0.0] if t is None else t, dtype=float)), dtype=float)
        if np.all(beta <= 0.0):
            return True
        return False if np.all(beta >= 0.0) else None


class FixedGuidance(Coupling):
    """F = beta_t/2 |x - c_t|^2 with a prescribed guidance centre c_t (``centre``: a number, a vector, or a
    callable of t).  (The package keeps the name nu for sigma^2 / 2; the centre is ``centre``.)"""

    mean_only = True
    uses_m = False

    def __init__(self, beta, centre=0.0, **kwargs):
        if "nu" in kwargs:
            raise TypeError("FixedGuidance(nu=...): the guidance centre is called centre now "
                            "(FixedGuidance(beta, centre=...)); nu means sigma^2/2 in this package")
        if kwargs:
            raise TypeError(f"FixedGuidance got unexpected arguments {', '.join(sorted(kwargs))}; "
                            f"it takes beta and centre")
        self.beta = as_schedule(beta, "beta")
        self.centre = centre

    def centres(self, grid, t):
        t = np.asarray(t, dtype=float)
        if callable(self.centre):
            c = np.asarray(self.centre(t), dtype=float)
        else:
            c = np.asarray(self.centre, dtype=float)
        if c.ndim == 0:
            return np.full((len(t), grid.ndim), float(c))
        if c.ndim == 1 and c.shape[0] == grid.ndim and not callable(self.centre):
            return np.broadcast_to(c, (len(t), grid.ndim)).copy()
        if c.ndim == 1 and c.shape[0] == len(t) and grid.ndim == 1:
            return c[:, None].copy()
        if c.shape == (len(t), grid.ndim):
            return c
        raise ValueError(f"guidance centre gave shape {c.shape}; expected a scalar, a {grid.ndim}-vector "
                         f"or ({len(t)}, {grid.ndim}) values")

    def field(self, grid, t, m):
        return 0.5 * self.beta(t).reshape((-1,) + (1,) * grid.ndim) * _sq_distance(grid, self.centres(grid, t))

    def describe(self):
        c = self.centre if not callable(self.centre) else getattr(self.centre, "__name__", "callable")
        if isinstance(c, np.ndarray):
            c = c.tolist()
        return {"type": "fixed-guidance", "beta": self.beta.describe(), "centre": c}

    def derivative(self, grid, t, m):
        return {}  # F does not depend on m

    def first_variation(self):
        """Itself: F does not depend on m, so delta/delta m int F m dx = F."""
        return self

    def monotone(self, grid, t=None):
        return True  # F does not depend on m


class KernelInteraction(Coupling):
    """F = int W(x - y) m(y) dy for an even kernel W(dx, [dy, dz]) (callable on displacements).

    Evaluated by FFT convolution: zero-padded (linear) along reflecting axes, circular with the
    minimum-image displacement along periodic axes.
    """

    def __init__(self, kernel, strength: float = 1.0):
        if not callable(kernel):
            raise ValueError("KernelInteraction needs a callable kernel W(*displacements)")
        self.kernel = kernel
        self.strength = float(strength)
        self._cache = None

    def _kernel_hat(self, grid):
        key = (grid.bounds, grid.shape, grid.bc)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1:]
        disps, fshape = [], []
        for (lo, hi), n, h, code in zip(grid.bounds, grid.shape, grid.spacing, grid.bc_codes):
            if code == BC_PERIODIC:
                j = np.arange(n)
                j = np.where(j <= n // 2, j, j - n)
                disps.append(j * h)
                fshape.append(n)
            else:
                L = 2 * n
                j = np.arange(L)
                j = np.where(j < n, j, j - L)  # displacements -n..n-1 (index n unused: padding)
                disps.append(j * h)
                fshape.append(L)
        mesh = np.meshgrid(*disps, indexing="ij")
        W = np.asarray(self.kernel(*mesh), dtype=float)
        if W.shape != tuple(fshape):
            W = np.broadcast_to(W, tuple(fshape))
        self._values = (key, W)
        what = np.fft.rfftn(W)
        self._cache = (key, what, tuple(fshape))
        return what, tuple(fshape)

    def kernel_values(self, grid) -> np.ndarray:
        """W on the displacement lattice the convolution uses on this grid (FFT layout: index j of an axis is
        the displacement j h, wrapped; length 2 n on reflecting / exit axes, n on periodic ones); what a
        result file stores so that ``SampledKernel`` rebuilds the coupling."""
        key = (grid.bounds, grid.shape, grid.bc)
        if getattr(self, "_values", None) is None or self._values[0] != key:
            self._cache = None
            self._kernel_hat(grid)
        return np.array(self._values[1], dtype=float)

    def field(self, grid, t, m):
        what, fshape = self._kernel_hat(grid)
        axes = tuple(range(1, grid.ndim + 1))
        mhat = np.fft.rfftn(m, s=fshape, axes=axes)
        conv = np.fft.irfftn(mhat * what[None], s=fshape, axes=axes)
        sl = (slice(None),) + tuple(slice(0, n) for n in grid.shape)
        return self.strength * grid.cell_volume * conv[sl]

    def describe(self):
        return {"type": "kernel-interaction", "kernel": getattr(self.kernel, "__name__", "callable"),
                "strength": self.strength}

    def first_variation(self):
        """c int (W(x - y) + W(y - x)) m(y) dy: the symmetrised kernel (delta/delta m of
        c iint W(x - y) m(x) m(y) dx dy); twice the field for an even W."""
        return KernelInteraction(SymmetrisedKernel(self.kernel), self.strength)

    def derivative(self, grid, t, m):
        # linear in m: the matrix is the field of the unit vectors (row j of the answer = F(e_j))
        N = m.shape[1]
        W = np.asarray(self.field(grid, np.zeros(N), np.eye(N).reshape((N,) + grid.shape)),
                       dtype=float).reshape(N, N).T.copy()
        return {"shared": [(np.ones(m.shape[0]), W)]}

    def monotone(self, grid, t=None):
        """strength x W positive semi-definite on mass-free perturbations (m1 - m2 has zero mass): on a fully
        periodic grid the eigenvalues of the circular convolution but the constant mode are >= 0 (exact);
        otherwise the zero-padded circulant's are >= 0 (sufficient), or, in 1-D with N <= 2000, the dense
        matrix projected on zero-mass vectors decides.  None when undecided or when W cannot be evaluated
        on arrays."""
        key = (grid.bounds, grid.shape, grid.bc)
        if getattr(self, "_monotone", None) is not None and self._monotone[0] == key:
            return self._monotone[1]
        try:
            verdict = self._monotone_verdict(grid)
        except Exception:  # noqa: BLE001 -- a kernel that only takes some argument shapes: unknown
            verdict = None
        self._monotone = (key, verdict)
        return verdict

    def _monotone_verdict(self, grid):
        what, _ = self._kernel_hat(grid)
        lam = self.strength * what.real
        scale = max(float(np.abs(lam).max()), 1e-300)
        periodic = all(code == BC_PERIODIC for code in grid.bc_codes)
        if periodic:
            lam = lam.ravel()[1:]  # the constant mode does not act on zero-mass perturbations
            return bool(lam.size == 0 or lam.min() >= -1e-12 * scale)
        if lam.min() >= -1e-12 * scale:
            return True
        if grid.ndim == 1 and grid.shape[0] <= 2000:
            x = grid.axes[0]
            n = x.size
            Wm = self.strength * np.broadcast_to(np.asarray(self.kernel(x[:, None] - x[None, :]), dtype=float),
                                                 (n, n))
            P = np.eye(n) - 1.0 / n
            lam = np.linalg.eigvalsh(P @ (0.5 * (Wm + Wm.T)) @ P)
            return bool(lam.min() >= -1e-12 * max(float(np.abs(Wm).max()), 1e-300))
        return None


class SymmetrisedKernel:
    """W_sym(d) = W(d) + W(-d), the kernel of delta/delta m of iint W(x - y) m(x) m(y) dx dy."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.__name__ = f"symmetrised {getattr(kernel, '__name__', 'callable')}"

    def __call__(self, *disps):
        return np.asarray(self.kernel(*disps), dtype=float) + np.asarray(self.kernel(*[-d for d in disps]),
                                                                         dtype=float)


class SampledKernel:
    """A kernel W known only on a lattice of displacements (``KernelInteraction.kernel_values``: what a result
    file stores): W(*displacements) looks the values up at the nearest lattice point (index round(d / h),
    wrapped), and raises ValueError for a displacement that is not on the lattice."""

    def __init__(self, values, spacing, name: str = "sampled kernel"):
        self.values = np.asarray(values, dtype=float)
        self.spacing = tuple(float(h) for h in spacing)
        if self.values.ndim != len(self.spacing):
            raise ValueError(f"SampledKernel: {self.values.ndim}-D values, {len(self.spacing)} spacings")
        self.__name__ = name

    def __call__(self, *disps):
        if len(disps) != self.values.ndim:
            raise ValueError(f"{self.__name__}: {len(disps)} displacements, the kernel is {self.values.ndim}-D")
        disps = np.broadcast_arrays(*[np.asarray(d, dtype=float) for d in disps])
        idx = []
        for d, h, n in zip(disps, self.spacing, self.values.shape):
            j = np.rint(d / h)
            if np.any(np.abs(d / h - j) > 1e-6):
                raise ValueError(f"{self.__name__}: a displacement is not on the stored lattice (spacing {h:g})")
            idx.append(np.mod(j.astype(np.int64), n))
        return self.values[tuple(idx)]


class LocalPower(Coupling):
    """F = kappa m^p (p > 0)."""

    def __init__(self, kappa: float, p: float = 1.0):
        self.kappa = float(kappa)
        self.p = float(p)
        if not self.p > 0:
            raise ValueError(f"LocalPower exponent p = {p}: must be > 0")

    def field(self, grid, t, m):
        if self.p == 1.0:
            return self.kappa * m
        return self.kappa * np.power(np.maximum(m, 0.0), self.p)

    def describe(self):
        return {"type": "local-power", "kappa": self.kappa, "p": self.p}

    def first_variation(self):
        """F + m dF/dm = kappa (1 + p) m^p (delta/delta m of int kappa m^(p+1) dx)."""
        return LocalPower(self.kappa * (1.0 + self.p), self.p)

    anti_when_not_monotone = True

    def derivative(self, grid, t, m):
        if self.p == 1.0:
            return {"diag": np.full(m.shape, self.kappa)}
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"diag": np.where(m > 0.0, self.kappa * self.p * np.power(np.maximum(m, 0.0), self.p - 1.0), 0.0)}

    def monotone(self, grid, t=None):
        return self.kappa >= 0.0  # m -> kappa m^p is non-decreasing (non-increasing for kappa < 0)


class LocalLog(Coupling):
    """F = kappa log m + shift (m floored at 1e-300 where it underflows to zero; the constant shift, default 0,
    is what the first variation kappa (log m + 1) adds)."""

    def __init__(self, kappa: float = 1.0, shift: float = 0.0):
        self.kappa = float(kappa)
        self.shift = float(shift)

    def field(self, grid, t, m):
        f = self.kappa * np.log(np.maximum(m, 1e-300))
        return f + self.shift if self.shift else f

    def describe(self):
        return {"type": "local-log", "kappa": self.kappa, **({"shift": self.shift} if self.shift else {})}

    def first_variation(self):
        """F + m dF/dm = kappa (log m + 1) (delta/delta m of int kappa m log m dx)."""
        return LocalLog(self.kappa, shift=self.shift + self.kappa)

    anti_when_not_monotone = True

    def derivative(self, grid, t, m):
        with np.errstate(divide="ignore"):
            return {"diag": np.where(m > 1e-300, self.kappa / np.where(m > 1e-300, m, 1.0), 0.0)}

    def monotone(self, grid, t=None):
        return self.kappa >= 0.0


class MeanAttraction(Coupling):
    """F = kappa_t/2 |x - s mean_t|^2: attraction to the point s mean_t (kappa_t a constant, a schedule or a
    callable of t; s a number).  s = 1 is ``QuadraticInteraction(kappa)``, s = 0 ``FixedGuidance(kappa, 0)``.
    For s != 1 the Nash equilibrium and the social optimum differ (``first_variation``)."""

    mean_only = True
    anti_when_not_monotone = True

    def __init__(self, kappa, s: float = 0.5):
        self.kappa = as_schedule(kappa, "kappa")
        try:
            self.s = float(s)
        except (TypeError, ValueError):
            raise ValueError(f"MeanAttraction: s = {s!r} must be a number (the fraction of the mean)") from None
        if not np.isfinite(self.s):
            raise ValueError(f"MeanAttraction: s = {s!r} must be finite")

    def field(self, grid, t, m):
        mean = grid.mean(m)
        return 0.5 * self.kappa(t).reshape((-1,) + (1,) * grid.ndim) * _sq_distance(grid, self.s * mean)

    def describe(self):
        return {"type": "mean-attraction", "kappa": self.kappa.describe(), "s": self.s}

    def derivative(self, grid, t, m):
        # F_i = kappa/2 |x_i - s mu|^2, mu = sum x m / sum m:
        # dF_i/dm_j = -kappa s (x_i - s mu).(x_j - mu) / sum m, one (non-symmetric) rank-one term per axis
        K = m.shape[0]
        S = m.sum(axis=1)
        kappa = np.broadcast_to(np.asarray(self.kappa(t), dtype=float).reshape(-1), (K,))
        outer = []
        for xk in np.broadcast_arrays(*grid.mesh(sparse=True)):
            x = np.ascontiguousarray(xk).reshape(-1)
            mu = (m * x).sum(axis=1) / S
            outer.append((-kappa * self.s / S, x[None, :] - self.s * mu[:, None], x[None, :] - mu[:, None]))
        return {"outer": outer}

    def monotone(self, grid, t=None):
        # int (F(m1) - F(m2)) (m1 - m2) = -kappa_t s |mean1 - mean2|^2 for equal masses
        kappa = np.asarray(self.kappa(np.asarray([0.0] if t is None else t, dtype=float)), dtype=float) * self.s
        if np.all(kappa <= 0.0):
            return True
        return False if np.all(kappa >= 0.0) else None

    def first_variation(self):
        """With g = s (2 - s):  delta/delta m int kappa/2 |x - s mu|^2 m dx
        = kappa/2 |x - s mu|^2 - kappa s (1 - s) mu . (x - mu)
        = kappa g/2 |x - mu|^2 + kappa (1 - g)/2 |x|^2,
        i.e. QuadraticInteraction(g kappa) + FixedGuidance((1 - g) kappa, 0) (docs/method.md, section
        'Mean-field control and the price of anarchy')."""
        g = self.s * (2.0 - self.s)
        return SumCoupling([ScaledCoupling(QuadraticInteraction(self.kappa), g),
                            ScaledCoupling(FixedGuidance(self.kappa, 0.0), 1.0 - g)])


def coupling_monotone(problem) -> bool | None:
    """Whether the problem's couplings are known to be monotone (True: one equilibrium), known not to be
    (False: several equilibria may exist, and the starting pair selects one), or unknown (None): the
    running coupling F and, when it depends on m, the terminal cost G (user callables: unknown)."""
    grid = problem.grid
    verdict = True if problem.coupling is None else problem.coupling.monotone(grid, problem.t)
    if getattr(problem.terminal_cost, "depends_on_m", False):
        verdict = None if verdict is not False else False
    return verdict
