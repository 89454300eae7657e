"""Closed forms and high-accuracy ODE routes used as oracles (reference: math.md sections 1, 3, 4).

Everything here is scalar (one axis); a d-D product problem (separable data, diagonal
covariances) calls these functions once per axis.  All path functions take an array of times
``t`` in [0, T] and return numpy arrays of the same shape.

Conventions (math.md section 1)::

    dX = (-kappa X + alpha) dt + sigma dW,          nu := sigma^2 / 2
    running cost |alpha|^2/2 + beta_t/2 (x - nu_t)^2      (nu_t = guidance; MF: nu_t = mean_t)
    value u = S x^2/2 + s x + c,   optimal feedback alpha = -(S x + s)

Energy convention: ``E = int_0^T E|alpha_t|^2 dt`` with NO factor 1/2; the control cost is E/2.

Numerically stable building block used throughout (z >= 0)::

    ex(z) = (1 - exp(-2 z)) / (2 z),   ex(0) = 1,   so   sinh(z) = exp(z) * z * ex(z)

which lets every sinh/cosh ratio be written without overflow for large arguments and without
0/0 in the limit beta, kappa -> 0 (the beta = kappa = 0 formulas come out exactly).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import quad, solve_ivp

from .schedules import Constant, PiecewiseConstant, as_schedule

__all__ = [
    "lq_terminal", "mean_terminal_velocity", "terminal_cost_energy",
    "bridge_coefficients", "sb_endpoint_covariance", "lqg_bridge", "mf_mean_path", "mf_mean_energy",
    "ia_mean_path", "ia_mean_energy", "energy_identity_gap",
]

_ODE_OPTS = dict(method="DOP853", rtol=1e-12, atol=1e-14)
_QUAD_OPTS = dict(epsabs=1e-15, epsrel=1e-13, limit=400)


# --------------------------------------------------------------------------------------------
# stable elementary helpers
# --------------------------------------------------------------------------------------------

def _ex(z):
    """(1 - exp(-2z)) / (2z) for z >= 0, = 1 at z = 0 (so sinh z = e^z z ex(z))."""
    z = np.asarray(z, dtype=float)
    out = np.ones_like(z)
    nz = z != 0.0
    out[nz] = -np.expm1(-2.0 * z[nz]) / (2.0 * z[nz])
    return out


def _times(t, T):
    t = np.asarray(t, dtype=float)
    if np.any(t < -1e-12 * max(T, 1.0)) or np.any(t > T * (1 + 1e-12) + 1e-15):
        raise ValueError(f"times must lie in [0, T] = [0, {T}]")
    return np.clip(t, 0.0, T)


# --------------------------------------------------------------------------------------------
# section 4, terminal-cost LQ problem
# --------------------------------------------------------------------------------------------

def mean_terminal_velocity(q, x_target, mean0, T):
    """Mean velocity of the MF terminal-cost problem (b = 0, any beta_t, any sigma, any m0):

        mean_t = mean0 + v t,   v = q (x_target - mean0) / (1 + q T)

    (math.md section 3, the mean-interpolant theorem in terminal-cost form).
    """
    return q * (x_target - mean0) / (1.0 + q * T)


def _is_constant(sched):
    return isinstance(sched, Constant)


def _lq_closed(t, T, sigma, q, x_target, mean0, var0, beta):
    """Closed form of math.md section 4 "Terminal-cost variant" (kappa = 0, constant beta, MF).

    With omega = sqrt(beta), tau = T - t, h(tau) = omega cosh(omega tau) + q sinh(omega tau):

        S_t     = h'(tau)/h(tau) = omega (q + omega tanh(omega tau)) / (omega + q tanh(omega tau))
        Sigma_t = h_t^2 [ s0^2/h_0^2 + sigma^2 (F(T) - F(T-t)) ],  F(tau) = sinh(omega tau)/(omega^2 h(tau))

    (verified: F' = 1/h^2, and d/dt log h(T-t) = -S, so this solves Sigma' = -2 S Sigma + sigma^2).
    Since sinh(omega T) h(T-t) - sinh(omega (T-t)) h(T) = omega sinh(omega t), the bracket
    simplifies exactly to

        Sigma_t = s0^2 h(T-t)^2/h(T)^2 + sigma^2 h(T-t) sinh(omega t) / (omega h(T)),

    evaluated here with h(tau) = omega e^{omega tau} H(tau),
    H(tau) = (1 + e^{-2 omega tau})/2 + q tau ex(omega tau), i.e.

        S_t     = [omega^2 tau ex(omega tau) + q (1 + e^{-2 omega tau})/2] / H(tau)
        Sigma_t = s0^2 e^{-2 omega t} (H(T-t)/H(T))^2 + sigma^2 t ex(omega t) H(T-t)/H(T)

    which is overflow-free and reduces exactly to the beta = 0 forms S = q/(1 + q tau),
    Sigma = s0^2 r^2 + sigma^2 t r, r = (1 + q (T-t))/(1 + q T).  Mean: mean_t = mean0 + v t,
    s_t = -v - S_t mean_t (so that alpha's mean is -(S mean + s) = v).
    """
    if beta < 0:
        raise ValueError("closed form needs beta >= 0")
    w = math.sqrt(beta)
    tau = T - t

    def H(tt):
        tt = np.asarray(tt, dtype=float)
        return 0.5 * (1.0 + np.exp(-2.0 * w * tt)) + q * tt * _ex(w * tt)

    HT = H(np.asarray(T))
    Htau = H(tau)
    S = (w * w * tau * _ex(w * tau) + q * 0.5 * (1.0 + np.exp(-2.0 * w * tau))) / Htau
    r = Htau / HT
    var = var0 * np.exp(-2.0 * w * t) * r * r + sigma ** 2 * t * _ex(w * t) * r
    v = mean_terminal_velocity(q, x_target, mean0, T)
    mean = mean0 + v * t
    s = -v - S * mean
    return dict(mean=mean, var=var, S=S, s=s, nu=mean.copy())


def _segment_edges(T, *scheds):
    edges = {0.0, float(T)}
    for sc in scheds:
        if isinstance(sc, PiecewiseConstant):
            for b in sc.breaks:
                if 0.0 < b < T:
                    edges.add(float(b))
    return np.array(sorted(edges))


def _on_segment(sched, lo, hi):
    """Scalar function of t for one segment; PWC schedules are frozen to the segment's value
    (the integrator evaluates at the segment ends, where the schedule would jump)."""
    if isinstance(sched, (Constant, PiecewiseConstant)):
        val = float(sched(np.asarray(0.5 * (lo + hi))))
        return lambda t: val
    return lambda t: float(sched(np.asarray(t, dtype=float)))


class _Stitched:
    """Dense outputs of solve_ivp on consecutive segments, evaluated as one function."""

    def __init__(self, edges, sols):
        self.edges = edges
        self.sols = sols  # sols[i] covers [edges[i], edges[i+1]]

    def __call__(self, t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        idx = np.clip(np.searchsorted(self.edges, t, side="right") - 1, 0, len(self.sols) - 1)
        out = np.empty((self.sols[0].sol(self.edges[0]).shape[0], t.size))
        for i in np.unique(idx):
            m = idx == i
            out[:, m] = self.sols[i].sol(t[m])
        return out


def _lq_ode(T, sigma, q, x_target, mean0, var0, beta, kappa, guidance):
    """ODE route.  Backward (from T) then forward (from 0), piecewise across schedule breaks.

    Fixed guidance nu_t: backward  S' = S^2 + 2 kappa S - beta,  s' = (kappa + S) s + beta nu,
    S(T) = q, s(T) = -q x_target.

    Mean field (nu_t = mean_t): the linear two-point BVP
        mean' = -kappa mean - (S mean + s),  mean(0) = mean0;   s' = (kappa + S) s + beta mean,  s(T) = -q x_tar
    is decoupled exactly by the Riccati transform s = P mean + rho:
        P'   = 2 (kappa + S) P + P^2 + beta,   P(T) = 0
        rho' = (kappa + S + P) rho,            rho(T) = -q x_target
    (all integrated backward, stable), then mean' = -(kappa + S + P) mean - rho forward.
    beta enters S and P separately; the cancellation in S + P (which solves the beta-free
    Riccati) is only numerical, so the mean theorem is a genuine check of this route.

    Forward: Sigma' = -2 (kappa + S) Sigma + sigma^2, E' = (S mean + s)^2 + S^2 Sigma.
    """
    mf = guidance is None
    edges = _segment_edges(T, beta, *(() if mf else (guidance,)))
    nseg = len(edges) - 1

    back_sols = [None] * nseg
    y = np.array([q, 0.0, -q * x_target]) if mf else np.array([q, -q * x_target])
    for i in range(nseg - 1, -1, -1):
        lo, hi = edges[i], edges[i + 1]
        bf = _on_segment(beta, lo, hi)
        if mf:
            def rhs(t, z, bf=bf):
                S, P, rho = z
                b = bf(t)
                return [S * S + 2 * kappa * S - b, 2 * (kappa + S) * P + P * P + b, (kappa + S + P) * rho]
        else:
            gf = _on_segment(guidance, lo, hi)

            def rhs(t, z, bf=bf, gf=gf):
                S, s = z
                b = bf(t)
                return [S * S + 2 * kappa * S - b, (kappa + S) * s + b * gf(t)]
        sol = solve_ivp(rhs, (hi, lo), y, dense_output=True, **_ODE_OPTS)
        if not sol.success:
            raise RuntimeError(f"backward LQ integration failed: {sol.message}")
        back_sols[i] = sol
        y = sol.y[:, -1]
    back = _Stitched(edges, back_sols)

    fwd_sols = []
    y = np.array([mean0, var0, 0.0])
    for i in range(nseg):
        lo, hi = edges[i], edges[i + 1]
        bsol = back_sols[i].sol
        if mf:
            def rhs(t, z, bsol=bsol):
                S, P, rho = bsol(t)
                m, V, _ = z
                s = P * m + rho
                a = S * m + s
                return [-kappa * m - a, -2 * (kappa + S) * V + sigma ** 2, a * a + S * S * V]
        else:
            def rhs(t, z, bsol=bsol):
                S, s = bsol(t)
                m, V, _ = z
                a = S * m + s
                return [-kappa * m - a, -2 * (kappa + S) * V + sigma ** 2, a * a + S * S * V]
        sol = solve_ivp(rhs, (lo, hi), y, dense_output=True, **_ODE_OPTS)
        if not sol.success:
            raise RuntimeError(f"forward LQ integration failed: {sol.message}")
        fwd_sols.append(sol)
        y = sol.y[:, -1]
    fwd = _Stitched(edges, fwd_sols)
    return back, fwd, float(y[2])


def _lq_dispatch(T, q, beta, kappa, guidance, method):
    beta_s = as_schedule(beta, "beta")
    guid_s = None if guidance is None else as_schedule(guidance, "guidance")
    closed_ok = kappa == 0 and _is_constant(beta_s) and guid_s is None and beta_s.value >= 0
    if method not in ("auto", "closed", "ode"):
        raise ValueError(f"method must be 'auto', 'closed' or 'ode', got {method!r}")
    if method == "closed" and not closed_ok:
        raise ValueError("closed form needs kappa == 0, constant beta >= 0 and guidance=None (MF)")
    use_closed = closed_ok and method != "ode"
    return beta_s, guid_s, use_closed


def lq_terminal(t, *, T, sigma, q, x_target, mean0, var0, beta=0.0, kappa=0.0, guidance=None,
                method="auto"):
    """Gaussian solution of the scalar terminal-cost LQ mean-field game.

    Model::

        dX = (-kappa X + alpha) dt + sigma dW,  X_0 ~ N(mean0, var0)
        cost  E[ int_0^T |alpha|^2/2 + beta_t/2 (X - nu_t)^2 dt + q/2 (X_T - x_target)^2 ]

    Value u = S x^2/2 + s x + c, alpha = -(S x + s)::

        S' = S^2 + 2 kappa S - beta_t,        S(T) = q
        s' = (kappa + S) s + beta_t nu_t,     s(T) = -q x_target
        mean'  = -kappa mean - (S mean + s),  mean(0) = mean0
        Sigma' = -2 (kappa + S) Sigma + sigma^2,   Sigma(0) = var0

    guidance=None: mean field, nu_t = mean_t (a linear two-point BVP, solved exactly by a
    Riccati decoupling, see ``_lq_ode``); a number or callable of t: fixed guidance (IA).
    beta: number, callable of t, or PiecewiseConstant (integrated piece by piece).

    method: "auto" uses the closed form (math.md section 4, terminal-cost variant, see
    ``_lq_closed``) when kappa == 0, beta constant and guidance None; "closed" insists on it;
    "ode" forces solve_ivp(DOP853, rtol=1e-12, atol=1e-14).

    Returns dict of arrays at t: mean, var, S, s, nu (the guidance used; = mean for MF).
    """
    tt = _times(t, T)
    beta_s, guid_s, use_closed = _lq_dispatch(T, q, beta, kappa, guidance, method)
    if use_closed:
        r = _lq_closed(tt, T, sigma, q, x_target, mean0, var0, beta_s.value)
        return {k: np.asarray(v, dtype=float).reshape(tt.shape) for k, v in r.items()}
    back, fwd, _ = _lq_ode(T, sigma, q, x_target, mean0, var0, beta_s, kappa, guid_s)
    flat = tt.ravel()
    bv = back(flat)
    fv = fwd(flat)
    if guid_s is None:
        S, P, rho = bv
        mean = fv[0]
        s = P * mean + rho
        nu = mean.copy()
    else:
        S, s = bv
        mean = fv[0]
        nu = np.asarray(guid_s(flat), dtype=float)
    shape = tt.shape
    return dict(mean=mean.reshape(shape), var=fv[1].reshape(shape), S=S.reshape(shape),
                s=s.reshape(shape), nu=nu.reshape(shape))


def terminal_cost_energy(*, T, sigma, q, x_target, mean0, var0, beta=0.0, kappa=0.0, guidance=None,
                         method="auto"):
    """Control energy of the terminal-cost LQ problem (same model as ``lq_terminal``)::

        E = int_0^T E|alpha_t|^2 dt = int_0^T (S mean + s)^2 + S^2 Sigma dt

    Convention: E has NO factor 1/2; the control cost is E/2.  MF with kappa = 0:
    S mean + s = -v, so E_MF = v^2 T + int S^2 Sigma dt.

    Closed-form route: int S^2 Sigma by adaptive Gauss-Kronrod (scipy.integrate.quad,
    epsrel 1e-13) on the closed-form paths.  ODE route: E is integrated as an extra component
    of the forward system (DOP853, rtol 1e-12), piecewise across schedule breaks.
    """
    beta_s, guid_s, use_closed = _lq_dispatch(T, q, beta, kappa, guidance, method)
    if use_closed:
        def f(x):
            p = _lq_closed(np.array([x]), T, sigma, q, x_target, mean0, var0, beta_s.value)
            return float(p["S"][0] ** 2 * p["var"][0])
        v = mean_terminal_velocity(q, x_target, mean0, T)
        return v * v * T + quad(f, 0.0, T, **_QUAD_OPTS)[0]
    return _lq_ode(T, sigma, q, x_target, mean0, var0, beta_s, kappa, guid_s)[2]


# --------------------------------------------------------------------------------------------
# section 4, planning (bridge) closed forms
# --------------------------------------------------------------------------------------------

def bridge_coefficients(t, *, T, sigma, beta=0.0, kappa=0.0):
    """Coefficients of the LQ bridge, X_t = a_t X_0 + b_t X_T + c_t + xi_t, xi_t ~ N(0, g_t)::

        D = sqrt(kappa^2 + beta)   (constant beta)
        a_t = sinh(D (T-t)) / sinh(D T),   b_t = sinh(D t) / sinh(D T)
        g_t = sigma^2 sinh(D t) sinh(D (T-t)) / (D sinh(D T))
        beta = kappa = 0:  a = 1 - t/T,  b = t/T,  g = sigma^2 t (T-t) / T

    Also returns the exact time derivatives da, db, dg
    (da = -D cosh(D(T-t))/sinh(DT), db = D cosh(Dt)/sinh(DT), dg = sigma^2 sinh(D(T-2t))/sinh(DT))
    and D.  Evaluated overflow-free and without 0/0 as D -> 0.
    """
    tt = _times(t, T)
    D = math.sqrt(kappa * kappa + beta)
    eT = _ex(np.asarray(D * T))
    u = T - tt
    a = np.exp(-D * tt) * u * _ex(D * u) / (T * eT)
    b = np.exp(-D * u) * tt * _ex(D * tt) / (T * eT)
    g = sigma ** 2 * tt * u * _ex(D * tt) * _ex(D * u) / (T * eT)
    da = -np.exp(-D * tt) * 0.5 * (1.0 + np.exp(-2.0 * D * u)) / (T * eT)
    db = np.exp(-D * u) * 0.5 * (1.0 + np.exp(-2.0 * D * tt)) / (T * eT)
    w = np.abs(T - 2.0 * tt)
    dg = sigma ** 2 * np.sign(T - 2.0 * tt) * (w / T) * np.exp(D * (w - T)) * _ex(D * w) / eT
    return dict(a=a, b=b, g=g, da=da, db=db, dg=dg, D=D)


def _sb_k(T, sigma, D):
    # k = D / (sigma^2 sinh(D T)) = exp(-D T) / (sigma^2 T ex(D T));  D -> 0: 1/(sigma^2 T)
    return math.exp(-D * T) / (sigma ** 2 * T * float(_ex(np.asarray(D * T))))


def sb_endpoint_covariance(*, T, sigma, s0, s1, beta=0.0, kappa=0.0):
    """Cov(X_0, X_T) of the Schroedinger-bridge coupling of N(., s0^2) and N(., s1^2)
    (s0, s1 are STANDARD DEVIATIONS)::

        C01 = (sqrt(1 + 4 k^2 s0^2 s1^2) - 1) / (2 k),   k = D / (sigma^2 sinh(D T)),
        D = sqrt(kappa^2 + beta);   D -> 0: k = 1 / (sigma^2 T)

    (k is the x0 x1 coefficient in the log of the reference transition kernel; the SB coupling
    has precision off-diagonal -k).  Computed as 2 k s0^2 s1^2 / (1 + sqrt(1 + 4 k^2 s0^2 s1^2))
    (no cancellation for small k).
    """
    D = math.sqrt(kappa * kappa + beta)
    k = _sb_k(T, sigma, D)
    X = (s0 * s1) ** 2
    return 2.0 * k * X / (1.0 + math.sqrt(1.0 + 4.0 * k * k * X))


def mf_mean_path(t, *, T, mean0, mean1, kappa=0.0):
    """MF planning mean (b = -kappa x, any beta_t: pair forces cancel, math.md section 3)::

        mean_t = [m0 sinh kappa(T-t) + m1 sinh kappa t] / sinh kappa T    (kappa = 0: linear)

    Returns (mean, dmean) with the exact derivative.
    """
    c = bridge_coefficients(t, T=T, sigma=1.0, beta=0.0, kappa=abs(kappa))
    return mean0 * c["a"] + mean1 * c["b"], mean0 * c["da"] + mean1 * c["db"]


def mf_mean_energy(*, T, mean0, mean1, kappa=0.0):
    """Minimal mean-channel energy int_0^T (mean' + kappa mean)^2 dt of the MF planning mean::

        2 kappa (m1 e^{kappa T} - m0)^2 / (e^{2 kappa T} - 1)      (kappa = 0: (m1 - m0)^2 / T)
    """
    K = abs(kappa) * T
    e = float(_ex(np.asarray(K)))
    if kappa >= 0:
        return (mean1 - mean0 * math.exp(-K)) ** 2 / (T * e)
    return (mean1 * math.exp(-K) - mean0) ** 2 / (T * e)


def lqg_bridge(t, *, T, sigma, mean0, var0, mean1, var1, beta=0.0, kappa=0.0, coupling="sb"):
    """Mean-field LQG planning problem N(mean0, var0) -> N(mean1, var1), constant beta,
    b = -kappa x, F = beta/2 (x - mean_t)^2 (math.md section 4)::

        mean_t  = [m0 sinh kappa(T-t) + m1 sinh kappa t] / sinh kappa T   (kappa = 0: linear)
        Sigma_t = a^2 var0 + b^2 var1 + 2 a b C01 + g        (a, b, g: bridge_coefficients, D)
        S_t     = (sigma^2 - Sigma_t') / (2 Sigma_t) - kappa   (Sigma' analytic)
        s_t     = -mean' - kappa mean - S mean
        E       = int (mean' + kappa mean)^2 dt + int S^2 Sigma dt   (no 1/2; cost = E/2)

    coupling: "sb" (Schroedinger bridge, C01 = sb_endpoint_covariance; one value function, S
    solves the Riccati S' = S^2 + 2 kappa S - beta) or "product" (C01 = 0, per-agent bridges).
    var0 = 0 (point start) is allowed: S(0) is then the limit
    D coth(DT) - var1 (D/sinh DT)^2 / sigma^2 - kappa.  var1 = 0 gives S(T) = inf, E = inf.

    Returns dict: mean, dmean, var, dvar, S, s, energy, energy_mean, energy_fluct, C01.
    """
    tt = _times(t, T)
    if coupling == "sb":
        C01 = sb_endpoint_covariance(T=T, sigma=sigma, s0=math.sqrt(var0), s1=math.sqrt(var1),
                                     beta=beta, kappa=kappa)
    elif coupling == "product":
        C01 = 0.0
    else:
        raise ValueError(f"coupling must be 'sb' or 'product', got {coupling!r}")

    def paths(x):
        c = bridge_coefficients(x, T=T, sigma=sigma, beta=beta, kappa=kappa)
        a, b, da, db = c["a"], c["b"], c["da"], c["db"]
        var = a * a * var0 + b * b * var1 + 2.0 * a * b * C01 + c["g"]
        dvar_ab = 2.0 * a * da * var0 + 2.0 * b * db * var1 + 2.0 * (da * b + a * db) * C01
        dvar = dvar_ab + c["dg"]
        # sigma^2 - g' = 2 sigma^2 cosh(D(T-t)) sinh(Dt) / sinh(DT) exactly: subtracting it
        # analytically avoids the cancellation sigma^2 - Sigma' where Sigma is tiny (var0 -> 0)
        D, u = c["D"], T - np.asarray(x, dtype=float)
        sig2_mdg = (sigma ** 2 * (1.0 + np.exp(-2.0 * D * u)) * x * _ex(D * np.asarray(x, dtype=float))
                    / (T * _ex(np.asarray(D * T))))
        num = sig2_mdg - dvar_ab
        with np.errstate(divide="ignore", invalid="ignore"):
            S = num / (2.0 * var) - kappa
        zero = var == 0.0
        if np.any(zero):
            x = np.broadcast_to(np.asarray(x, dtype=float), var.shape)
            eT = float(_ex(np.asarray(D * T)))
            Dcoth = 0.5 * (1.0 + math.exp(-2.0 * D * T)) / (T * eT)  # D coth(DT)
            db0 = math.exp(-D * T) / (T * eT)                       # D / sinh(DT)
            S = np.where(zero & (x < 0.5 * T), Dcoth - db0 * db0 * var1 / sigma ** 2 - kappa, S)
            S = np.where(zero & (x >= 0.5 * T), np.inf, S)
        return var, dvar, S

    var, dvar, S = paths(tt)
    mean, dmean = mf_mean_path(tt, T=T, mean0=mean0, mean1=mean1, kappa=kappa)
    s = -dmean - kappa * mean - S * mean

    e_mean = mf_mean_energy(T=T, mean0=mean0, mean1=mean1, kappa=kappa)
    if var1 == 0.0:
        e_fluct = math.inf
    else:
        def f(x):
            V, _, Sx = paths(np.array([x]))
            return float(Sx[0] ** 2 * V[0])
        e_fluct = quad(f, 0.0, T, **_QUAD_OPTS)[0]
    return dict(mean=mean, dmean=dmean, var=var, dvar=dvar, S=S, s=s, C01=C01,
                energy=e_mean + e_fluct, energy_mean=e_mean, energy_fluct=e_fluct)


# --------------------------------------------------------------------------------------------
# section 3, independent agents (fixed guidance) vs mean field
# --------------------------------------------------------------------------------------------

def ia_mean_path(t, *, T, beta, mean0, mean1, nu):
    """Planning mean under a fixed constant guidance nu (independent agents), b = 0,
    constant beta, omega = sqrt(beta)::

        mean_t = a_t mean0 + b_t mean1 + nu (1 - a_t - b_t),
        a_t = sinh(omega (T-t)) / sinh(omega T),  b_t = sinh(omega t) / sinh(omega T)
        (beta = 0: linear interpolation)
    """
    c = bridge_coefficients(t, T=T, sigma=1.0, beta=beta, kappa=0.0)
    a, b = c["a"], c["b"]
    return nu + a * (mean0 - nu) + b * (mean1 - nu)


_NSER = 30


def _ia_coeffs(x, T):
    """Return (A - 1/T, A - B) with A = omega^2 I1 / sinh^2(omega T), B = omega^2 I2 / sinh^2,
    x = omega T.  Both differences are O(x^4), O(x^2); computed by their (all-positive) Taylor
    series for x < 2 and by overflow-free closed forms otherwise:

        A T - 1 = [x^2/2 + x sinh(2x)/4 - sinh^2 x] / sinh^2 x,
                  numerator = sum_{j>=3} 2^{2j-2} (j-2) x^{2j} / (2j)!
        (A - B) T = x^2 (sinh(x)/x - 1) / (4 cosh^2(x/2)),   sinh(x)/x - 1 = sum_{j>=1} x^{2j}/(2j+1)!
    """
    if x < 2.0:
        num = sum(4.0 ** (j - 1) * (j - 2) * x ** (2 * j) / math.factorial(2 * j) for j in range(3, _NSER))
        sh2 = math.sinh(x) ** 2
        AT1 = num / sh2 if x > 0 else 0.0
        shc1 = sum(x ** (2 * j) / math.factorial(2 * j + 1) for j in range(1, _NSER))
        ABT = x * x * shc1 / (4.0 * math.cosh(0.5 * x) ** 2)
    else:
        em = math.exp(-x)
        inv_sh = 2.0 * em / (1.0 - em * em)            # 1 / sinh x
        coth = (1.0 + em * em) / (1.0 - em * em)
        AT1 = 0.5 * x * x * inv_sh * inv_sh + 0.5 * x * coth - 1.0
        # x^2 (sinh x / x - 1) / (2 (cosh x + 1)) = x (sinh x - x) / (2 (cosh x + 1))
        ABT = x * (0.5 * (1.0 - em * em) - x * em) / (2.0 * (0.5 * (1.0 + em * em) + em))
    return AT1 / T, ABT / T


def ia_mean_energy(*, T, beta, mean0, mean1, nu):
    """int_0^T |mean_IA'|^2 dt for ``ia_mean_path`` (constant beta, constant nu), math.md sec. 3::

        omega^2 / sinh^2(omega T) [ (p^2 + q^2) I1 - 2 p q I2 ],   p = mean0 - nu, q = mean1 - nu,
        I1 = T/2 + sinh(2 omega T)/(4 omega),  I2 = (T/2) cosh(omega T) + sinh(omega T)/(2 omega)

    evaluated as (p - q)^2 A + 2 p q (A - B) (A, B the I1, I2 coefficients) with the stable
    differences of ``_ia_coeffs``; beta = 0 gives (mean1 - mean0)^2 / T.
    """
    x = math.sqrt(beta) * T
    A1, AB = _ia_coeffs(x, T)
    p, q = mean0 - nu, mean1 - nu
    return (p - q) ** 2 * (1.0 / T + A1) + 2.0 * p * q * AB


def energy_identity_gap(*, T, beta, mean0, mean1, nu):
    """E_IA(nu) - E_MF = int |mean_IA'|^2 dt - |mean1 - mean0|^2 / T  (>= 0; math.md section 3:
    the fluctuation energies are equal, only the mean channel differs).  Equals
    int (mean_IA' - (mean1 - mean0)/T)^2 dt; computed without cancellation as
    (p - q)^2 (A - 1/T) + 2 p q (A - B).
    """
    x = math.sqrt(beta) * T
    A1, AB = _ia_coeffs(x, T)
    p, q = mean0 - nu, mean1 - nu
    return (p - q) ** 2 * A1 + 2.0 * p * q * AB
