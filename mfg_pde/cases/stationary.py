"""Stationary cases with closed forms (docs/method.md, section 'Stationary problems'):

* ``lq-ergodic``    ergodic LQ MFG, V = a/2 (x - c)^2, F = beta/2 (x - mean)^2: Gaussian m = N(c, nu/P),
                    u = P/2 (x - c)^2 + const, lambda = nu P with P = sqrt(a + beta);
* ``lq-discounted`` the same with discount rho > 0: P^2 + rho P = a + beta, u = P/2 (x - c)^2 + nu P / rho;
* ``lq-switching``  two types with Poisson switching (potentials centred at c_1, c_2): quadratic u_k, the
                    type shares, per-type means and variances in closed form (``oracles.analytic.lq_stationary``);
* ``lq-ergodic-2d`` the ergodic LQ MFG on a 2-D box, V = a_1/2 (x - c_1)^2 + a_2/2 (y - c_2)^2,
                    F = beta/2 |x - mean|^2: the sum of two 1-D solutions for u and lambda, the product of two
                    Gaussians for m (``oracles.analytic.lq_stationary_product``);
* ``stationary-ham`` a non-quadratic Hamiltonian (BoundedControl, or Power) on a 2-D box (x reflecting, y
                    periodic), ergodic with F = kappa m: a manufactured solution (``manufactured_stationary``);
* ``stationary-congestion`` the congestion Hamiltonian |p|^2 / (2 (c0 + c m)^alpha) on the same box: a
                    manufactured solution built from the density (``manufactured_congestion``).

Each run checks the errors at the default grid, the exact identities (mass 1, m >= 0, FP matrix = transpose of
the linearised HJB matrix), and ``validate`` the observed order on a twice finer grid.
"""

from __future__ import annotations

import time

import numpy as np

from ..model.couplings import LocalPower, QuadraticInteraction
from ..model.grid import Grid
from ..model.hamiltonians import BoundedControl, Congestion, Power
from ..model.stationary import StationaryProblem
from ..newton.stationary import solve_stationary
from ..oracles.analytic import lq_stationary, lq_stationary_product
from .base import Case, CaseError, CaseRun, Check, Param, register


class StationaryCase(Case):
    """A stationary case: ``build`` returns a StationaryProblem; solved by ``solve_stationary`` (Newton)."""

    min_order = 0.8

    def solver(self):
        return solve_stationary

    def refined(self, p):
        return {**p, "N": 2 * p["N"]}

    def check_memory(self, p, method=None):
        """A stationary solve holds a few sparse matrices of the grid's size: nothing to refuse."""

    def run(self, overrides=None, progress=False, **solve_overrides):
        method = solve_overrides.pop("method", None)
        if method not in (None, "newton"):
            raise CaseError(f"case {self.name!r}: method {method!r} is not available; stationary problems are "
                            "solved by Newton's method (leave --method out or give --method newton)")
        p = self.resolve(overrides)
        problem = self.build(p)
        opts = {"tol": p.get("tol", 1e-10), **solve_overrides}
        t0 = time.perf_counter()
        result = solve_stationary(problem, progress=progress, **opts)
        result.case = self.name
        result.params = dict(p)
        self.decorate(result, problem, p)
        return CaseRun(self.name, p, result, self.checks(result, p), time.perf_counter() - t0)

    def tolerance(self, quantity, p):
        """The allowed error of a quantity at the default grid.  A discounted value carries the constant
        (lambda-like part) / rho, so its first-order error grows like 1/rho: u (bulk) gets 0.1 + 0.06 / rho."""
        rho = p.get("rho", 0.0)
        if quantity == "u (bulk)" and rho > 0:
            return 0.1 + 0.06 / rho
        return self.tolerances[quantity]

    def checks(self, result, p):
        rows = [Check(k, v, self.tolerance(k, p), f"N = {p['N']}") for k, v in self.errors(result, p).items()]
        res = result.residuals
        rows += [Check("mass |h sum m - 1|", res["mass"], 1e-13, "round-off"),
                 Check("negative density max(-min m, 0)", max(-res["min_m"], 0.0), 0.0, "m >= 0"),
                 Check("duality ||A_FP - A_HJB^T||", res["duality"], 0.0, "exact transpose")]
        return rows


def lq_errors(result, ref, per_type: bool) -> dict:
    """Errors of a stationary LQ result against ``lq_stationary``: u in the bulk (the cells between the
    0.05% and 99.95% quantiles of the total density; ergodic: up to the common constant, removed by its
    m-weighted mean), lambda, and either the Gaussian density (one type) or the per-type means and variances."""
    grid = result.grid
    x, h = grid.axes[0], grid.spacing[0]
    u = np.atleast_2d(result.u)
    m = np.atleast_2d(result.m)
    e = u - ref["u"](x)
    if result.lam is not None:
        e = e - (e * m).sum() * h
    cdf = np.cumsum(m.sum(axis=0)) * h
    bulk = (cdf > 5e-4) & (cdf < 1 - 5e-4)
    out = {"u (bulk)": float(np.abs(e[:, bulk]).max())}
    if result.lam is not None:
        out["lambda"] = abs(result.lam - ref["lam"])
    if per_type:
        pis = m.sum(axis=1) * h
        means = (m * x).sum(axis=1) * h / pis
        var = (m * x ** 2).sum(axis=1) * h / pis - means ** 2
        out["type means"] = float(np.abs(means - ref["mean"]).max())
        out["type variances (relative)"] = float(np.abs(var / ref["var"] - 1.0).max())
    else:
        g = np.exp(-ref["P"] * (x - ref["mean"][0]) ** 2 / (2 * ref["nu"]))
        out["m (max)"] = float(np.abs(m[0] - g / (g.sum() * h)).max())
    return out


def _lq_params(rho_default):
    return (Param("sigma", 0.8, "noise intensity", positive=True),
            Param("a", 1.0, "potential stiffness (V = a/2 (x - c)^2)", positive=True),
            Param("c", 0.33, "potential centre"),
            Param("beta", 1.0, "interaction stiffness (F = beta/2 (x - mean)^2)", nonnegative=True),
            *((Param("rho", rho_default, "discount rate", positive=True),) if rho_default else ()),
            Param("L", 5.0, "half-width of the box [-L, L]", positive=True),
            Param("N", 100, "cells", positive=True),
            Param("tol", 1e-10, "Newton tolerance (relative HJB residual)", positive=True))


class _LQOneType(StationaryCase):
    has_oracle = True
    tolerances = {"u (bulk)": 0.15, "lambda": 0.04, "m (max)": 0.03}

    def validate_params(self, p):
        nu = 0.5 * p["sigma"] ** 2
        std = np.sqrt(nu / np.sqrt(p["a"] + p["beta"]))
        if abs(p["c"]) + 6 * std >= p["L"]:
            raise CaseError(f"box half-width L = {p['L']} is too small for the stationary density (mean c = {p['c']}, "
                            f"std {std:.3g}); increase L")

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        c, a = p["c"], p["a"]
        return StationaryProblem(grid, p["sigma"], coupling=QuadraticInteraction(p["beta"]) if p["beta"] else None,
                                 potential=lambda x: 0.5 * a * (x - c) ** 2, discount=p.get("rho", 0.0),
                                 name=self.name)

    def errors(self, result, p):
        ref = lq_stationary(p["a"], [p["c"]], p["sigma"], p.get("rho", 0.0), p["beta"])
        return lq_errors(result, ref, per_type=False)


@register
class LQErgodic(_LQOneType):
    name = "lq-ergodic"
    description = "ergodic 1-D LQ MFG (stationary, unknown lambda) vs its closed form: Gaussian m, quadratic u, lambda"
    params = _lq_params(0.0)


@register
class LQDiscounted(_LQOneType):
    name = "lq-discounted"
    description = "discounted stationary 1-D LQ MFG (rho > 0) vs its closed form: Gaussian m, quadratic u"
    params = _lq_params(0.4)


@register
class LQSwitching(StationaryCase):
    name = "lq-switching"
    description = "two types with Poisson switching, stationary LQ MFG vs closed form (u_k, type shares, moments)"
    has_oracle = True
    params = (Param("sigma", 0.8, "noise intensity", positive=True),
              Param("a", 1.0, "potential stiffness (V_k = a/2 (x - c_k)^2)", positive=True),
              Param("c1", -0.5, "potential centre of type 1"),
              Param("c2", 1.0, "potential centre of type 2"),
              Param("q12", 0.5, "switching rate type 1 -> 2", positive=True),
              Param("q21", 0.3, "switching rate type 2 -> 1", positive=True),
              Param("beta", 1.0, "interaction stiffness (F = beta/2 (x - mean)^2, mean of all agents)",
                    nonnegative=True),
              Param("rho", 0.0, "discount rate (0: ergodic)", nonnegative=True),
              Param("L", 5.0, "half-width of the box [-L, L]", positive=True),
              Param("N", 100, "cells", positive=True),
              Param("tol", 1e-10, "Newton tolerance (relative HJB residual)", positive=True))
    tolerances = {"u (bulk)": 0.15, "lambda": 0.05, "type means": 0.01, "type variances (relative)": 0.15}

    def Q(self, p):
        return np.array([[-p["q12"], p["q12"]], [p["q21"], -p["q21"]]])

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])], p["N"])
        a = p["a"]
        pots = [lambda x, c=c: 0.5 * a * (x - c) ** 2 for c in (p["c1"], p["c2"])]
        return StationaryProblem(grid, p["sigma"], coupling=QuadraticInteraction(p["beta"]) if p["beta"] else None,
                                 potential=pots, discount=p["rho"], switching=self.Q(p), name=self.name)

    def errors(self, result, p):
        ref = lq_stationary(p["a"], [p["c1"], p["c2"]], p["sigma"], p["rho"], p["beta"], self.Q(p))
        return lq_errors(result, ref, per_type=True)

    def checks(self, result, p):
        ref = lq_stationary(p["a"], [p["c1"], p["c2"]], p["sigma"], p["rho"], p["beta"], self.Q(p))
        shares = result.m.sum(axis=1) * result.grid.spacing[0]
        return super().checks(result, p) + [Check("type shares (pi Q = 0)", float(np.abs(shares - ref["pi"]).max()),
                                                  1e-13, "exact: round-off")]


@register
class LQErgodic2D(StationaryCase):
    name = "lq-ergodic-2d"
    description = ("ergodic 2-D LQ MFG vs its closed form (u and lambda sums, m the product of the 1-D "
                   "solutions)")
    has_oracle = True
    params = (Param("sigma", 0.8, "noise intensity", positive=True),
              Param("a1", 1.0, "potential stiffness along x", positive=True),
              Param("a2", 2.0, "potential stiffness along y", positive=True),
              Param("c1", 0.33, "potential centre, x"),
              Param("c2", -0.2, "potential centre, y"),
              Param("beta", 1.0, "interaction stiffness (F = beta/2 |x - mean|^2)", nonnegative=True),
              Param("L", 3.5, "half-width of the box [-L, L]^2", positive=True),
              Param("N", 50, "cells per axis", positive=True),
              Param("tol", 1e-10, "Newton tolerance (relative HJB residual)", positive=True))
    tolerances = {"u (bulk)": 0.15, "lambda": 0.2, "m (max)": 0.1}

    def validate_params(self, p):
        nu = 0.5 * p["sigma"] ** 2
        for a, c in ((p["a1"], p["c1"]), (p["a2"], p["c2"])):
            std = np.sqrt(nu / np.sqrt(a + p["beta"]))
            if abs(c) + 6 * std >= p["L"]:
                raise CaseError(f"box half-width L = {p['L']} is too small for the stationary density (centre {c}, "
                                f"std {std:.3g}); increase L")

    def reference(self, p):
        return lq_stationary_product((p["a1"], p["a2"]), (p["c1"], p["c2"]), p["sigma"], 0.0, p["beta"])

    def build(self, p):
        grid = Grid([(-p["L"], p["L"])] * 2, (p["N"], p["N"]))
        a1, a2, c1, c2 = p["a1"], p["a2"], p["c1"], p["c2"]
        return StationaryProblem(grid, p["sigma"], coupling=QuadraticInteraction(p["beta"]) if p["beta"] else None,
                                 potential=lambda x, y: 0.5 * a1 * (x - c1) ** 2 + 0.5 * a2 * (y - c2) ** 2,
                                 name=self.name)

    def errors(self, result, p):
        """u in the bulk (where the exact density exceeds 1e-3 of its peak; up to the constant, removed by its
        m-weighted mean), lambda, and the density against the exact Gaussian (normalised on the grid)."""
        ref = self.reference(p)
        grid = result.grid
        X, Y = grid.mesh()
        vol = grid.cell_volume
        e = result.u - ref["u"](X, Y)
        e = e - (e * result.m).sum() * vol
        g = ref["m"](X, Y)
        bulk = g > 1e-3 * g.max()
        return {"u (bulk)": float(np.abs(e[bulk]).max()), "lambda": abs(result.lam - ref["lam"]),
                "m (max)": float(np.abs(result.m - g / (g.sum() * vol)).max())}


def manufactured_stationary(hamiltonian, sigma, amplitudes=(0.3, 0.2), lam=0.5, kappa=1.0, fine=1 << 16):
    """A manufactured ergodic stationary MFG on [0, 1]^2 (x reflecting, y periodic) for any separable H = h(p_x)
    + h(p_y) and F = kappa m: with u* = A cos(pi x) + B sin(2 pi y) (u*_x = 0 on the walls) the zero-flux
    density of the feedback -h'(grad u*) is the product m* = m_x(x) m_y(y),

        m_k(s) = exp(-phi_k(s)) / Z_k,    phi_k(s) = (1/nu) int_0^s h'(u*_k'(r)) dr

    (nu m_k' + m_k h'(u*_k') = 0; periodic in y because h' is odd and u*_y' = 2 pi B cos(2 pi y) is odd about
    y = 1/4), and the potential V = lam + H(grad u*) - nu Lap u* - kappa m* makes (u*, m*, lam) the solution.
    phi_k by the trapezoid rule on ``fine`` intervals (error O(fine^-2), far below the grid's O(h)).

    Returns a dict: u(X, Y), m(X, Y) (on cell-centre arrays), V(X, Y), lam, nu."""
    A, B = (float(v) for v in amplitudes)
    nu = 0.5 * float(sigma) ** 2
    du = (lambda x: -A * np.pi * np.sin(np.pi * x), lambda y: 2 * np.pi * B * np.cos(2 * np.pi * y))
    lap = (lambda x: -A * np.pi ** 2 * np.cos(np.pi * x), lambda y: -4 * np.pi ** 2 * B * np.sin(2 * np.pi * y))
    s = np.linspace(0.0, 1.0, fine + 1)
    dens = []
    for k in range(2):
        d = np.asarray(hamiltonian.dH(du[k](s)), dtype=float) / nu
        phi = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * (s[1] - s[0]))])
        w = np.exp(-phi)
        Z = float(np.sum(0.5 * (w[1:] + w[:-1])) * (s[1] - s[0]))
        dens.append(lambda x, w=w, Z=Z: np.interp(x, s, w) / Z)

    def m(X, Y):
        return dens[0](X) * dens[1](Y)

    def u(X, Y):
        return A * np.cos(np.pi * X) + B * np.sin(2 * np.pi * Y)

    def V(X, Y):
        return (lam + hamiltonian.H(du[0](X)) + hamiltonian.H(du[1](Y)) - nu * (lap[0](X) + lap[1](Y))
                - kappa * m(X, Y))

    return dict(u=u, m=m, V=V, lam=float(lam), nu=nu)


def manufactured_congestion(hamiltonian, sigma, ndim=1, lam=0.5, kappa=1.0, amplitudes=(0.5, 0.5), fine=1 << 16):
    """A manufactured ergodic stationary MFG with the congestion Hamiltonian H(p, m) = |p|^2 w(m) / 2,
    w(m) = (c0 + c m)^(-alpha) (``Congestion``), and F = kappa m, on [0, 1] (reflecting) or [0, 1]^2 (x
    reflecting, y periodic).  Pick the density m* = (1 + a cos(pi x)) [(1 + b sin(2 pi y))] (mass 1, zero
    normal derivative on the walls); the feedback -w(m*) grad u* has zero flux, nu grad m* + m* w(m*) grad u* = 0,
    exactly when grad u* = -nu Phi'(m*) grad m* with Phi'(m) = 1 / (m w(m)) = (c0 + c m)^alpha / m, so

        u* = -nu Phi(m*),   Lap u* = -nu (Phi''(m*) |grad m*|^2 + Phi'(m*) Lap m*),
        V  = lam + H(grad u*, m*) - nu Lap u* - kappa m*

    makes (u*, m*, lam) the solution (any dimension: the flux vanishes pointwise).  Phi(m) = int_1^m Phi' by the
    trapezoid rule on ``fine`` intervals (error O(fine^-2)); Phi'' = alpha c (c0 + c m)^(alpha - 1) / m -
    (c0 + c m)^alpha / m^2 in closed form.  Returns a dict: u, m, V (callables of the ndim cell-centre arrays),
    lam, nu."""
    c0, c, alpha = hamiltonian.c0, hamiltonian.c, hamiltonian.alpha
    nu = 0.5 * float(sigma) ** 2
    a, b = (float(v) for v in amplitudes)
    if not (0 <= a < 1 and 0 <= b < 1):
        raise ValueError(f"amplitudes = {amplitudes}: each must lie in [0, 1) (m* > 0)")

    def dphi(m):
        return (c0 + c * m) ** alpha / m

    def d2phi(m):
        return alpha * c * (c0 + c * m) ** (alpha - 1.0) / m - (c0 + c * m) ** alpha / m ** 2

    lo, hi = (1 - a) * (1 - b) if ndim == 2 else 1 - a, (1 + a) * (1 + b) if ndim == 2 else 1 + a
    s = np.linspace(min(lo, 1.0), max(hi, 1.0), fine + 1)
    d = dphi(s)
    prim = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * (s[1] - s[0]))])
    prim -= np.interp(1.0, s, prim)

    # the factors of m* and their first two derivatives along each axis
    facs = [(lambda x: 1 + a * np.cos(np.pi * x), lambda x: -a * np.pi * np.sin(np.pi * x),
             lambda x: -a * np.pi ** 2 * np.cos(np.pi * x)),
            (lambda y: 1 + b * np.sin(2 * np.pi * y), lambda y: 2 * np.pi * b * np.cos(2 * np.pi * y),
             lambda y: -4 * np.pi ** 2 * b * np.sin(2 * np.pi * y))][:ndim]

    def parts(*X):
        """m*, grad m* (per axis), Lap m* at the coordinate arrays X."""
        f = [fac[0](x) for fac, x in zip(facs, X)]
        m = np.prod(f, axis=0)
        grad = [facs[k][1](X[k]) * m / f[k] for k in range(ndim)]
        lap = sum(facs[k][2](X[k]) * m / f[k] for k in range(ndim))
        return m, grad, lap

    def m(*X):
        return parts(*X)[0]

    def u(*X):
        return -nu * np.interp(parts(*X)[0], s, prim)

    def V(*X):
        mm, grad, lap = parts(*X)
        H = sum(hamiltonian.H(-nu * dphi(mm) * g, mm) for g in grad)
        lap_u = -nu * (d2phi(mm) * sum(g * g for g in grad) + dphi(mm) * lap)
        return lam + H - nu * lap_u - kappa * mm

    return {"u": u, "m": m, "V": V, "lam": float(lam), "nu": nu}


@register
class StationaryHamiltonian(StationaryCase):
    name = "stationary-ham"
    description = ("ergodic 2-D stationary MFG with a non-quadratic Hamiltonian (bounded control or power) vs a "
                   "manufactured solution")
    has_oracle = True
    params = (Param("hamiltonian", "bounded", "H: bounded (BoundedControl(a_max)) or power (Power(q))",
                    choices=("bounded", "power")),
              Param("a_max", 0.6, "control bound of BoundedControl (below max |grad u*| = 1.26: the bound binds)",
                    positive=True),
              Param("q", 1.8, "exponent of Power, in (1, 2]", positive=True),
              Param("sigma", 0.8, "noise intensity", positive=True),
              Param("kappa", 1.0, "local coupling F = kappa m", nonnegative=True),
              Param("lam", 0.5, "the manufactured ergodic constant"),
              Param("N", 50, "cells per axis", positive=True),
              Param("tol", 1e-10, "Newton tolerance (relative HJB residual)", positive=True))
    tolerances = {"u": 0.01, "lambda": 0.01, "m (max)": 0.08}

    def hamiltonian(self, p):
        return BoundedControl(p["a_max"]) if p["hamiltonian"] == "bounded" else Power(p["q"])

    def reference(self, p):
        return manufactured_stationary(self.hamiltonian(p), p["sigma"], lam=p["lam"], kappa=p["kappa"])

    def build(self, p):
        grid = Grid([(0.0, 1.0), (0.0, 1.0)], (p["N"], p["N"]), bc=("reflecting", "periodic"))
        ref = self.reference(p)
        return StationaryProblem(grid, p["sigma"], coupling=LocalPower(p["kappa"]) if p["kappa"] else None,
                                 potential=ref["V"], hamiltonian=self.hamiltonian(p), name=self.name)

    def errors(self, result, p):
        """u (up to the constant, removed by its mean), lambda and m against the manufactured solution."""
        ref = self.reference(p)
        X, Y = result.grid.mesh()
        e = result.u - ref["u"](X, Y)
        return {"u": float(np.abs(e - e.mean()).max()), "lambda": abs(result.lam - ref["lam"]),
                "m (max)": float(np.abs(result.m - ref["m"](X, Y)).max())}


@register
class StationaryCongestion(StationaryHamiltonian):
    """``stationary-ham``'s problem and checks with the congestion Hamiltonian and its manufactured solution."""

    name = "stationary-congestion"
    description = ("ergodic 2-D stationary MFG with the congestion Hamiltonian |p|^2 / (2 (c0 + c m)^alpha) vs a "
                   "manufactured solution")
    has_oracle = True
    params = (Param("c0", 0.5, "congestion: the cost factor of an empty region, > 0", positive=True),
              Param("c", 3.0, "congestion strength c >= 0 (c m* reaches 6.8 at the default)", nonnegative=True),
              Param("alpha", 0.5, "congestion exponent, in [0, 1]", nonnegative=True),
              Param("sigma", 0.8, "noise intensity", positive=True),
              Param("kappa", 1.0, "local coupling F = kappa m", nonnegative=True),
              Param("lam", 0.5, "the manufactured ergodic constant"),
              Param("N", 40, "cells per axis", positive=True),
              Param("tol", 1e-10, "Newton tolerance (relative HJB and FP residuals)", positive=True))
    tolerances = {"u": 0.01, "lambda": 0.015, "m (max)": 0.05}

    def hamiltonian(self, p):
        return Congestion(p["c0"], p["c"], p["alpha"])

    def reference(self, p):
        return manufactured_congestion(self.hamiltonian(p), p["sigma"], ndim=2, lam=p["lam"], kappa=p["kappa"])

    def checks(self, result, p):
        """The common checks and the FP residual: with congestion the density is the null vector of the FP
        matrix at the predicted density's weights, so R_F is not round-off by construction but converges with
        Newton (``solve_stationary``)."""
        return super().checks(result, p) + [Check("FP residual (relative)", result.residuals["fp"], p["tol"],
                                                  "Newton tolerance")]
