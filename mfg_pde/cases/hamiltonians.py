"""Manufactured solutions for the general Hamiltonians (``model.hamiltonians``): ``ham-power``, ``ham-bounded``
and ``ham-congestion`` solve a coupled MFG on the periodic unit interval whose exact solution is known, with
the potential V and the FP source S chosen to make it exact, and report the errors of u (max over space and
time) and m (L1 over space and time) and, in ``mfg-pde validate``, their observed order under refinement
(first-order scheme).

Exact solution (F = KAPPA m, nu = NU, h = dt = 1/N by default):

    u(t, x) = U(x, t) (per Hamiltonian, below),    m(t, x) = 1 + B sin(2 pi x + t)
    V = -u_t - nu u_xx + H(u_x, m) - KAPPA m,       S = m_t - nu m_xx - d/dx [m H_p(u_x, m)]

* Power(q):            U = A cos t P(x), P' = sin^3(2 pi x): u_x vanishes to third order, so H_p(u_x) =
                       sign(u_x) |u_x|^(q-1) is C^1 in x for q = 1.5.
* BoundedControl(a):   U = A sin(2 pi x) cos t: |u_x| <= 2 pi A = 1.26 crosses a, the bound is active on part
                       of the domain (H_p = u_x clipped, its x-derivative u_xx inside and 0 outside).
* Congestion(c0, c, alpha): U = A sin(2 pi x) cos t; d/dx [m H_p] = m_x H_p + m (w(m) u_xx + u_x w'(m) m_x)
                       with w = 1 / (c0 + c m)^alpha (``Congestion.weights``, ``dweights``).

``manufactured_problem`` builds the problem (1-D, and for Power / BoundedControl also the 2-D sum
u = U(x) + U(y), m = M(x) M(y)); tests/test_hamiltonians.py refines it further."""

from __future__ import annotations

import numpy as np

from ..model.couplings import LocalPower
from ..model.grid import Grid
from ..model.hamiltonians import BoundedControl, Congestion, Power
from ..model.problem import MFGProblem
from .base import Case, Param, register
from .params import solver_params

K = 2 * np.pi
NU = 0.1
KAPPA = 0.2   # F = KAPPA m: a moderate coupling, so that the coupled loop converges quickly
A_U, B_M = 0.2, 0.4


def power_solution(q):
    """U = A cos t P(x), P' = sin^3(2 pi x): returns U, U_t, U_x, U_xx and dhx = d/dx H_p(U_x)."""
    def u(x, t):
        return A_U * np.cos(t) * -(3 * np.cos(K * x) / K - np.cos(3 * K * x) / (3 * K)) / 4

    def ut(x, t):
        return -A_U * np.sin(t) * -(3 * np.cos(K * x) / K - np.cos(3 * K * x) / (3 * K)) / 4

    def ux(x, t):
        return A_U * np.cos(t) * np.sin(K * x) ** 3

    def uxx(x, t):
        return A_U * np.cos(t) * 3 * K * np.sin(K * x) ** 2 * np.cos(K * x)

    def dhx(x, t):   # d/dx [sign(w) |w|^(q-1)], w = a sin^3(kx)
        a = A_U * np.cos(t)
        s = np.sin(K * x)
        return np.abs(a) ** (q - 1) * np.sign(a) * 3 * (q - 1) * np.abs(s) ** (3 * (q - 1) - 1) * np.cos(K * x) * K
    return u, ut, ux, uxx, dhx


def sine_solution(a_max=np.inf):
    """U = A sin(2 pi x) cos t; dhx = d/dx clip(U_x, a_max) (u_xx where |u_x| < a_max, 0 elsewhere)."""
    def u(x, t):
        return A_U * np.sin(K * x) * np.cos(t)

    def ut(x, t):
        return -A_U * np.sin(K * x) * np.sin(t)

    def ux(x, t):
        return A_U * K * np.cos(K * x) * np.cos(t)

    def uxx(x, t):
        return -A_U * K * K * np.sin(K * x) * np.cos(t)

    def dhx(x, t):
        return np.where(np.abs(ux(x, t)) < a_max, uxx(x, t), 0.0)
    return u, ut, ux, uxx, dhx


def m_exact(x, t):
    return 1 + B_M * np.sin(K * x + t)


def _m_derivatives(x, t):
    return B_M * np.cos(K * x + t), B_M * K * np.cos(K * x + t), -B_M * K * K * np.sin(K * x + t)


def manufactured_problem(ham, sol, N, ndim=1, T=0.5, Nt=None, name=None):
    """(problem, exact_u(t, X), exact_m(t, X)) of the manufactured MFG (module docstring) on N cells per axis
    (Nt = N steps by default).  Congestion: 1-D only."""
    u, ut, ux, uxx, dhx = sol
    H, dH = ham.H, ham.dH
    grid = Grid([(0.0, 1.0)] * ndim, N, "periodic")
    if ndim == 1:
        if ham.depends_on_m:
            def flux_x(x, t):   # d/dx [m H_p(u_x, m)]
                m = m_exact(x, t)
                _, mx, _ = _m_derivatives(x, t)
                p = ux(x, t)
                return mx * dH(p, m) + m * (ham.weights(m) * uxx(x, t) + p * ham.dweights(m) * mx)
        else:
            def flux_x(x, t):
                _, mx, _ = _m_derivatives(x, t)
                return mx * dH(ux(x, t)) + m_exact(x, t) * dhx(x, t)

        def V(x, t):
            return -ut(x, t) - NU * uxx(x, t) + H(ux(x, t), m_exact(x, t)) - KAPPA * m_exact(x, t)

        def S(x, t):
            mt, _, mxx = _m_derivatives(x, t)
            return mt - NU * mxx - flux_x(x, t)

        def G(x):
            return u(x, T)
        m0 = m_exact(grid.axes[0], 0.0)

        def exact_u(t, X):
            return u(X[0], t)

        def exact_m(t, X):
            return m_exact(X[0], t)
    else:
        if ham.depends_on_m:
            raise NotImplementedError("manufactured_problem: congestion in 1-D only")

        def V(x, y, t):
            m = m_exact(x, t) * m_exact(y, t)
            return -ut(x, t) - ut(y, t) - NU * (uxx(x, t) + uxx(y, t)) + H(ux(x, t)) + H(ux(y, t)) - KAPPA * m

        def S(x, y, t):
            Mx, My = m_exact(x, t), m_exact(y, t)
            (mtx, mxx_, mxxx), (mty, myy, myyy) = _m_derivatives(x, t), _m_derivatives(y, t)
            m_t = mtx * My + Mx * mty
            lap = mxxx * My + Mx * myyy
            div = (mxx_ * dH(ux(x, t)) + Mx * dhx(x, t)) * My + (myy * dH(ux(y, t)) + My * dhx(y, t)) * Mx
            return m_t - NU * lap - div

        def G(x, y):
            return u(x, T) + u(y, T)
        X = grid.mesh()
        m0 = m_exact(X[0], 0.0) * m_exact(X[1], 0.0)

        def exact_u(t, X):
            return u(X[0], t) + u(X[1], t)

        def exact_m(t, X):
            return m_exact(X[0], t) * m_exact(X[1], t)
    m0 = m0 / grid.integrate(m0)
    pb = MFGProblem(grid, T, N if Nt is None else Nt, float(np.sqrt(2 * NU)), m0, coupling=LocalPower(KAPPA),
                    potential=V, terminal_cost=G, hamiltonian=ham, fp_source=S, name=name)
    return pb, exact_u, exact_m


def manufactured_errors(result, problem, exact_u, exact_m):
    """(error of u: max over space and time, error of m: L1 over space and time).  m in L1: with
    BoundedControl the FP source jumps where |u_x| = a_max, and a max-norm error samples that jump erratically."""
    grid = problem.grid
    X = grid.mesh()
    eu = max(float(np.abs(result.u[n] - exact_u(t, X)).max()) for n, t in enumerate(problem.t))
    em = problem.dt * sum(float(grid.integrate(np.abs(result.m[n] - exact_m(t, X)))) for n, t in enumerate(problem.t))
    return eu, em


class _Manufactured(Case):
    """A Hamiltonian's manufactured MFG (module docstring): errors of u and m at N = Nt, observed orders in
    ``validate`` (N and Nt doubled)."""

    has_oracle = True
    min_order = 0.8

    def hamiltonian(self, p):
        raise NotImplementedError

    def solution(self, p):
        raise NotImplementedError

    def build(self, p):
        problem, self._exact_u, self._exact_m = manufactured_problem(self.hamiltonian(p), self.solution(p), p["N"],
                                                                     Nt=p["Nt"], T=p["T"], name=self.name)
        return problem, {"tol": p["tol"], "method": p["method"]}

    def errors(self, result, p):
        problem, exact_u, exact_m = manufactured_problem(self.hamiltonian(p), self.solution(p), p["N"], Nt=p["Nt"],
                                                         T=p["T"])
        eu, em = manufactured_errors(result, problem, exact_u, exact_m)
        return {"u (max)": eu, "m (L1 in x and t)": em}


def _params(**extra):
    return (*extra.values(), Param("T", 0.5, "horizon", positive=True),
            Param("N", 80, "cells (periodic unit interval)", positive=True), Param("Nt", 80, "time steps", positive=True),
            *solver_params(method="anderson"))


@register
class HamPower(_Manufactured):
    name = "ham-power"
    description = "Power(q) Hamiltonian |p|^q/q: manufactured coupled MFG in 1-D, errors of u, m and observed order"
    params = _params(q=Param("q", 1.5, "exponent q in (1, 2]", positive=True))
    # measured at N = Nt = 80 (q = 1.5): u 2.5e-4, m 1.0e-3 (orders 0.86, 1.09 from N = 80 to 160)
    tolerances = {"u (max)": 5e-4, "m (L1 in x and t)": 2e-3}

    def hamiltonian(self, p):
        return Power(p["q"])

    def solution(self, p):
        return power_solution(p["q"])


@register
class HamBounded(_Manufactured):
    name = "ham-bounded"
    description = "BoundedControl(a_max) Hamiltonian (|a| <= a_max, bound active): manufactured coupled MFG in 1-D"
    params = _params(a_max=Param("a_max", 0.9, "the speed bound per axis", positive=True))
    # measured at N = Nt = 80 (a_max = 0.9): u 7.6e-3, m 3.9e-3 (orders 0.96, 1.20)
    tolerances = {"u (max)": 0.012, "m (L1 in x and t)": 0.006}

    def hamiltonian(self, p):
        return BoundedControl(p["a_max"])

    def solution(self, p):
        return sine_solution(p["a_max"])


@register
class HamCongestion(_Manufactured):
    name = "ham-congestion"
    description = "Congestion Hamiltonian |p|^2 / (2 (c0 + c m)^alpha): manufactured coupled MFG in 1-D"
    params = _params(c0=Param("c0", 1.0, "cost factor in an empty region", positive=True),
                     c=Param("c", 2.0, "congestion strength", nonnegative=True),
                     alpha=Param("alpha", 1.0, "exponent of c0 + c m, in [0, 1]", nonnegative=True))
    # measured at N = Nt = 80 (c0 = 1, c = 2, alpha = 1): u 2.6e-3, m 3.2e-4 (orders 0.95, 1.06)
    tolerances = {"u (max)": 5e-3, "m (L1 in x and t)": 6e-4}

    def hamiltonian(self, p):
        return Congestion(p["c0"], p["c"], p["alpha"])

    def solution(self, p):
        return sine_solution()
