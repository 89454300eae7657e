"""Closed forms and high-accuracy ODE routes used as oracles (reference: docs/method.md, sections
'Equations and conventions' and 'Closed forms').

Scalar LQ, bridge and IA closed forms (one axis; a d-D product problem with separable data and
diagonal covariances calls them once per axis), the Gaussian-mixture piecewise-constant protocol
(docs/method.md, section 'Gaussian-mixture closed form') and d-dimensional LQG by matrix Riccati/Lyapunov
ODEs.  All path functions take an array of times ``t`` in [0, T] and return numpy arrays of the same shape.

Conventions (docs/method.md, section 'Equations and conventions')::

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

from ..model.mixtures import as_mixture
from ..model.schedules import Constant, PiecewiseConstant, as_schedule

__all__ = [
    "lq_terminal", "mean_terminal_velocity", "terminal_cost_energy",
    "bridge_coefficients", "sb_endpoint_covariance", "lqg_bridge", "mf_mean_path", "mf_mean_energy",
    "ia_mean_path", "ia_mean_energy", "energy_identity_gap",
    "lq_mean_attraction", "lq_price_of_anarchy", "lq_multipop",
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

    (docs/method.md, section 'Mean-interpolant theorem', the theorem in terminal-cost form).
    """
    return q * (x_target - mean0) / (1.0 + q * T)


def _is_constant(sched):
    return isinstance(sched, Constant)


def _lq_closed(t, T, sigma, q, x_target, mean0, var0, beta):
    """Terminal-cost closed form of docs/method.md, section 'LQG Riccati closed forms' (kappa = 0, constant beta, MF).

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

    method: "auto" uses the closed form (docs/method.md, section 'LQG Riccati closed forms', terminal-cost variant, see
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
    """MF planning mean (b = -kappa x, any beta_t: pair forces cancel, docs/method.md, section
    'Mean-interpolant theorem')::

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
    b = -kappa x, F = beta/2 (x - mean_t)^2 (docs/method.md, section 'LQG Riccati closed forms')::

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
    """int_0^T |mean_IA'|^2 dt for ``ia_mean_path`` (constant beta, constant nu), docs/method.md, section
    'Independent agents and the energy identity'::

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
    """E_IA(nu) - E_MF = int |mean_IA'|^2 dt - |mean1 - mean0|^2 / T  (>= 0; docs/method.md, section
    'Independent agents and the energy identity':
    the fluctuation energies are equal, only the mean channel differs).  Equals
    int (mean_IA' - (mean1 - mean0)/T)^2 dt; computed without cancellation as
    (p - q)^2 (A - 1/T) + 2 p q (A - B).
    """
    x = math.sqrt(beta) * T
    A1, AB = _ia_coeffs(x, T)
    p, q = mean0 - nu, mean1 - nu
    return (p - q) ** 2 * A1 + 2.0 * p * q * AB


# ============================================================================================
# section 5, Gaussian-mixture regime: protocol with general beta_t (PWC exact), guidance shift
# ============================================================================================
#
# Model (docs/method.md, sections 'Equations and conventions' and 'Gaussian-mixture closed form'):
# dX = alpha dt + sigma dW, running cost |alpha|^2/2 +
# beta_t/2 |x - nu_t|^2, each agent started at z runs its own bridge delta_z -> m1 (product
# coupling).  The reference (killed Brownian) path measure has density
# exp(-(1/sigma^2) int |x'|^2/2 + beta_t/2 |x - nu_t|^2 dt): the action is sigma-free and sigma^2
# only scales it.  Hence the pinned bridge X_t | (X_0, X_T) is Gaussian with
#
#     mean  a_t X_0 + b_t X_T + c_t       (minimiser of the action: x'' = beta_t (x - nu_t))
#     var   g_t = sigma^2 G(t, t) = sigma^2 p_t q_t / W      per axis,
#
# G the Dirichlet Green's function of -d^2/dt^2 + beta_t, G(s, t) = q(min) p(max) / W, where p, q
# are the fundamental solutions below and W = p q' - q p' (constant; = p(0) = q(T)).

from dataclasses import dataclass  # noqa: E402

__all__ += ["GMProtocol", "gm_protocol", "gm_agent_drift", "gm_product_marginal", "gm_product_moments",
            "gm_mean_channel_energy", "lqg_terminal_nd"]


def _shc(x):
    """sinh(x)/x, = 1 at x = 0 (x any sign)."""
    x = np.asarray(x, dtype=float)
    out = np.ones_like(x)
    nz = x != 0.0
    out[nz] = np.sinh(x[nz]) / x[nz]
    return out


class _PQ:
    """Fundamental solutions of y'' = beta_t y:  p(T) = 0, p'(T) = -1;  q(0) = 0, q'(0) = 1.

    Constant / piecewise-constant beta: exact pieces  y(t0 + h) = y0 cosh(w h) + y0' h shc(w h),
    y'(t0 + h) = y0 w^2 h shc(w h) + y0' cosh(w h)  (w = sqrt(beta_i), h of either sign), glued at
    the breaks with continuous value and slope; q is anchored at the left end of each piece
    (propagated forward from 0), p at the right end (propagated backward from T).
    Callable beta: solve_ivp DOP853 (rtol 1e-12) with dense output, q forward, p backward.
    ``__call__(t)`` returns (p, dp, q, dq) at any t in [0, T].  W := p(0).
    """

    def __init__(self, T, beta_s):
        self.T = float(T)
        self.beta_s = beta_s
        self.exact = isinstance(beta_s, (Constant, PiecewiseConstant))
        if self.exact:
            e = _segment_edges(T, beta_s)
            vals = np.array([float(beta_s(np.asarray(0.5 * (e[i] + e[i + 1])))) for i in range(len(e) - 1)])
            if np.any(vals < 0):
                raise ValueError("gm_protocol needs beta_t >= 0")
            self.edges, self.w = e, np.sqrt(vals)
            n = len(vals)
            qa = np.empty((n + 1, 2))
            qa[0] = (0.0, 1.0)
            for i in range(n):
                qa[i + 1] = self._step(qa[i], self.w[i], e[i + 1] - e[i])
            pa = np.empty((n + 1, 2))
            pa[n] = (0.0, -1.0)
            for i in range(n - 1, -1, -1):
                pa[i] = self._step(pa[i + 1], self.w[i], e[i] - e[i + 1])
            self.qa, self.pa = qa, pa  # values (y, y') at every edge
            self.W = float(pa[0, 0])
        else:
            def rhs(t, y):
                b = float(beta_s(np.asarray(t, dtype=float)))
                return [y[1], b * y[0]]
            sq = solve_ivp(rhs, (0.0, T), [0.0, 1.0], dense_output=True, **_ODE_OPTS)
            sp = solve_ivp(rhs, (T, 0.0), [0.0, -1.0], dense_output=True, **_ODE_OPTS)
            if not (sq.success and sp.success):
                raise RuntimeError("integration of p'' = beta p failed")
            self.sq, self.sp = sq.sol, sp.sol
            self.W = float(sp.y[0, -1])
            self.edges = np.array([0.0, T])

    @staticmethod
    def _step(y, w, h):
        h = float(h)
        ch = math.cosh(w * h)
        sh = h * float(_shc(np.asarray(w * h)))
        return np.array([y[0] * ch + y[1] * sh, y[0] * w * w * sh + y[1] * ch])

    def beta(self, t):
        return np.asarray(self.beta_s(np.asarray(t, dtype=float)), dtype=float)

    def __call__(self, t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        if not self.exact:
            q, dq = self.sq(t)
            p, dp = self.sp(t)
            p = np.where(t >= self.T, 0.0, p)
            q = np.where(t <= 0.0, 0.0, q)
            return p, dp, q, dq
        e = self.edges
        i = np.clip(np.searchsorted(e, t, side="right") - 1, 0, len(self.w) - 1)
        w = self.w[i]
        hq = t - e[i]
        hp = t - e[i + 1]
        chq, shq = np.cosh(w * hq), hq * _shc(w * hq)
        chp, shp = np.cosh(w * hp), hp * _shc(w * hp)
        q0, dq0 = self.qa[i, 0], self.qa[i, 1]
        p0, dp0 = self.pa[i + 1, 0], self.pa[i + 1, 1]
        q = q0 * chq + dq0 * shq
        dq = q0 * w * w * shq + dq0 * chq
        p = p0 * chp + dp0 * shp
        dp = p0 * w * w * shp + dp0 * chp
        return p, dp, q, dq


@dataclass
class GMProtocol:
    """Time-discretised protocol of the Gaussian-mixture regime (docs/method.md, section 'Gaussian-mixture
    closed form').

    Arrays are sampled on ``t`` (nt,), t[0] = 0, t[-1] = T.  p, q solve p'' = beta_t p with
    p(T) = 0, p'(T) = -1 and q(0) = 0, q'(0) = 1; W = p(0) = q(T).  Bridge coefficients
    a = p/W, b = q/W, g = sigma^2 p q / W (so X_t = a X_0 + b X_T + c_t + N(0, g I)) and the
    observation precision K = b^2/g = q / (sigma^2 W p): K = 0 at t = 0 (nothing is learnt about
    X_T there) and K = inf at t = T (stored as np.inf).  c (nt, d), dc: the deterministic shift
    for the guidance nu_t, c'' = beta_t (c - nu_t), c(0) = c(T) = 0 (c = 0 when nu = 0).
    """

    t: np.ndarray
    T: float
    sigma: float
    p: np.ndarray
    dp: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    W: float
    a: np.ndarray
    b: np.ndarray
    g: np.ndarray
    K: np.ndarray
    c: np.ndarray
    dc: np.ndarray


def _guidance_kind(nu, d, t):
    """Normalise nu to ('pwc', edges, values (M, d)) | ('grid', values (nt, d)) |
    ('callable', f(scalar t) -> (d,)).  Returns (kind, payload, d)."""
    if nu is None:
        return "pwc", (None, np.zeros((1, d))), d
    if isinstance(nu, (Constant, PiecewiseConstant)):
        nu = [nu]
    if isinstance(nu, (list, tuple)) and any(callable(v) for v in nu):
        scheds = [as_schedule(v, "nu") for v in nu]
        if len(scheds) == 1 and d > 1:
            scheds = scheds * d
        if d == 1 and len(scheds) > 1:
            d = len(scheds)
        if len(scheds) != d:
            raise ValueError(f"nu has {len(scheds)} components, d = {d}")
        if all(isinstance(s, (Constant, PiecewiseConstant)) for s in scheds):
            return "pwc", (scheds, None), d
        return "callable", (lambda s: np.array([float(sc(np.asarray(s))) for sc in scheds])), d
    if callable(nu):
        v0 = np.atleast_1d(np.asarray(nu(0.0), dtype=float)).ravel()
        if d == 1 and v0.size > 1:
            d = v0.size
        if v0.size not in (1, d):
            raise ValueError(f"nu(t) has {v0.size} components, d = {d}")

        def f(s, nu=nu, d=d):
            return np.broadcast_to(np.asarray(nu(float(s)), dtype=float).ravel(), (d,)).astype(float)
        return "callable", f, d
    arr = np.asarray(nu, dtype=float)
    if arr.ndim == 2:
        if arr.shape[0] != len(t):
            raise ValueError(f"nu array must be (nt, d) = ({len(t)}, d), got {arr.shape}")
        if d == 1 and arr.shape[1] > 1:
            d = arr.shape[1]
        if arr.shape[1] not in (1, d):
            raise ValueError(f"nu array has {arr.shape[1]} components, d = {d}")
        return "grid", np.broadcast_to(arr, (len(t), d)).copy(), d
    arr = np.atleast_1d(arr).ravel()
    if d == 1 and arr.size > 1:
        d = arr.size
    if arr.size not in (1, d):
        raise ValueError(f"nu has {arr.size} components, d = {d}")
    return "pwc", (None, np.broadcast_to(arr, (d,)).reshape(1, d).copy()), d


def _shift_pwc(t, pq, T, scheds, const):
    """c by variation of parameters, exact for piecewise-constant nu (any beta):
        c = [p I1 + q I2] / W,  c' = [p' I1 + q' I2] / W,
        I1(t) = int_0^t q beta nu ds,  I2(t) = int_t^T p beta nu ds,
    and on a piece where nu = nu_i, int beta q = [q'], int beta p = [p'] (since q'' = beta q)."""
    if scheds is None:
        edges = np.array([0.0, T])
        vals = const
    else:
        edges = _segment_edges(T, *scheds)
        mids = 0.5 * (edges[:-1] + edges[1:])
        vals = np.stack([np.asarray(s(mids), dtype=float) for s in scheds], axis=1)
    _, dpe, _, dqe = pq(edges)
    jq = vals * np.diff(dqe)[:, None]   # int over piece of q beta nu, (M, d)
    jp = vals * np.diff(dpe)[:, None]
    M = len(vals)
    cum1 = np.vstack([np.zeros((1, vals.shape[1])), np.cumsum(jq, axis=0)])          # int_0^{E_j}
    cum2 = np.vstack([np.cumsum(jp[::-1], axis=0)[::-1], np.zeros((1, vals.shape[1]))])  # int_{E_j}^T
    p, dp, q, dq = pq(t)
    j = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, M - 1)
    I1 = cum1[j] + vals[j] * (dq - dqe[j])[:, None]
    I2 = cum2[j + 1] + vals[j] * (dpe[j + 1] - dp)[:, None]
    return I1, I2


def _shift_grid(t, pq, nu):
    """Variation-of-parameters integrals for nu piecewise linear between the grid points, exact
    for any beta: on [u, v] with nu = nu_u + k (s - u),
        int beta q nu = nu_u [q'(v) - q'(u)] + k [(v - u) q'(v) - q(v) + q(u)]
    (from q'' = beta q and (s q' - q)' = s q'')."""
    p, dp, q, dq = pq(t)
    h = np.diff(t)[:, None]
    k = np.diff(nu, axis=0) / h
    jq = nu[:-1] * np.diff(dq)[:, None] + k * (h * dq[1:, None] - np.diff(q)[:, None])
    # int_u^v beta p nu with nu anchored at u: nu_u [p'] + k [(v-u) p'(v) - p(v) + p(u)]
    jp = nu[:-1] * np.diff(dp)[:, None] + k * (h * dp[1:, None] - np.diff(p)[:, None])
    z = np.zeros((1, nu.shape[1]))
    I1 = np.vstack([z, np.cumsum(jq, axis=0)])
    I2 = np.vstack([np.cumsum(jp[::-1], axis=0)[::-1], z])
    return I1, I2


def _shift_callable(t, pq, T, beta_s, f, d):
    """Variation-of-parameters integrals for a general nu_t: I1 integrated forward and I2
    backward (both well conditioned) with solve_ivp DOP853 (rtol 1e-12), piecewise across the
    breaks of a PWC beta."""
    edges = _segment_edges(T, beta_s)
    nseg = len(edges) - 1

    def integ(which):
        out = np.zeros((len(t), d))
        order = range(nseg) if which == "q" else range(nseg - 1, -1, -1)
        y = np.zeros(d)
        for i in order:
            lo, hi = edges[i], edges[i + 1]
            bf = _on_segment(beta_s, lo, hi)

            def rhs(s, _y, bf=bf):
                p, _, q, _ = pq(s)
                return (q[0] if which == "q" else -p[0]) * bf(s) * f(s)
            span = (lo, hi) if which == "q" else (hi, lo)
            sol = solve_ivp(rhs, span, y, dense_output=True, **_ODE_OPTS)
            if not sol.success:
                raise RuntimeError(f"guidance shift integration failed: {sol.message}")
            m = (t >= lo) & (t <= hi)
            if np.any(m):
                out[m] = sol.sol(t[m]).T
            y = sol.y[:, -1]
        return out
    # I1(t) = int_0^t q beta nu (forward from 0); I2(t) = int_t^T p beta nu = -(int_T^t), backward
    return integ("q"), integ("p")


def gm_protocol(t, *, T, beta, sigma=1.0, nu=None, d=1) -> GMProtocol:
    """Build the GM-regime protocol (docs/method.md, section 'Gaussian-mixture closed form') on the time grid ``t``.

    t: increasing array with t[0] = 0 and t[-1] = T (or an int nt: np.linspace(0, T, nt)).
    beta: number, PiecewiseConstant (exact cosh/sinh pieces glued C^1 at the breaks) or callable
    of t (solve_ivp DOP853, rtol 1e-12).  beta_t >= 0.
    nu (guidance): None (c = 0); a number or constant vector (d,); a Constant/PiecewiseConstant
    schedule (applied to every axis) or a list of d numbers/schedules; a callable t -> (d,);
    or an (nt, d) array of values on t (taken piecewise linear between grid points).  If d is left
    at 1 it is taken from nu's length.

    c solves c'' = beta_t (c - nu_t), c(0) = c(T) = 0, i.e. -c'' + beta c = beta nu, by variation
    of parameters with the Dirichlet Green's function q(min) p(max) / W:

        c_t  = [p_t int_0^t q_s beta_s nu_s ds + q_t int_t^T p_s beta_s nu_s ds] / W
        c_t' = [p_t' int_0^t q beta nu ds     + q_t' int_t^T p beta nu ds] / W

    (the boundary terms of the derivative cancel).  Exact for piecewise-constant nu (any beta):
    int beta q = [q'] on a piece; for constant nu it reduces to c = nu (1 - a - b).  Exact also for
    the grid-array nu (piecewise linear).  A general callable nu: the two integrals by DOP853.

    Large beta: p, q grow like exp(int sqrt(beta)); fine while int_0^T sqrt(beta_t) dt < ~700.
    """
    T = float(T)
    if isinstance(t, (int, np.integer)):
        t = np.linspace(0.0, T, int(t))
    t = np.array(t, dtype=float)
    if t.ndim != 1 or len(t) < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("t must be a strictly increasing 1-D array")
    tol = 1e-12 * max(T, 1.0)
    if abs(t[0]) > tol or abs(t[-1] - T) > tol:
        raise ValueError(f"t must run from 0 to T = {T}")
    t[0], t[-1] = 0.0, T
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    beta_s = as_schedule(beta, "beta")
    pq = _PQ(T, beta_s)
    p, dp, q, dq = pq(t)
    p[-1] = 0.0
    q[0] = 0.0
    W = pq.W
    a, b = p / W, q / W
    g = sigma ** 2 * p * q / W
    with np.errstate(divide="ignore"):
        K = np.where(p > 0, q / (sigma ** 2 * W * np.where(p > 0, p, 1.0)), np.inf)

    kind, payload, d = _guidance_kind(nu, int(d), t)
    if kind == "pwc":
        I1, I2 = _shift_pwc(t, pq, T, *payload)
    elif kind == "grid":
        I1, I2 = _shift_grid(t, pq, payload)
    else:
        I1, I2 = _shift_callable(t, pq, T, beta_s, payload, d)
    c = (p[:, None] * I1 + q[:, None] * I2) / W
    dc = (dp[:, None] * I1 + dq[:, None] * I2) / W
    c[0] = 0.0
    c[-1] = 0.0
    return GMProtocol(t=t, T=T, sigma=float(sigma), p=p, dp=dp, q=q, dq=dq, W=W, a=a, b=b, g=g,
                      K=K, c=c, dc=dc)


def gm_agent_drift(t, x, z, proto, target) -> np.ndarray:
    """Optimal control of agents started at z (product coupling) towards a diagonal GM target.
    t scalar strictly inside (0, T); x, z (N, d) (z may be (d,)); target = a diagonal Gaussian mixture
    (weights (K,), means (K, d), variances (K, d), or any form ``model.mixtures.as_mixture`` accepts).
    Returns alpha (N, d).  Evaluated by ``mfg_pde.particles.gm_drift.gm_drift``, the package's one
    implementation of the formula below (numba; the agent simulator and the demand-response energies
    use the same kernel); this function adds the checks of the open interval and of x's dimension.

    Derivation (any sigma).  alpha = sigma^2 grad log phi with phi(t, x) = int k(t,x; T,y) h(y) dy
    and k ~ exp(-S_cl(t, x; T, y) / sigma^2) (quadratic action, prefactor independent of x, y).
    Since -d S_cl / dx = x_cl'(t) (the initial velocity of the classical path), the sigma^2 cancels:
    alpha = E[x_cl'(t) | X_t = x], the posterior being the law of X_T given X_t = x.  The classical
    path from (t, x) to (T, y) is p(s)/p(t) x + [p(t) q(s) - q(t) p(s)]/(p(t) W) y + c(s) - c(t) p(s)/p(t),
    so x_cl'(t) = [y + p'(x - c)]/p + c' (Wronskian p q' - q p' = W), affine in y:

        alpha = [yhat + p_t' (x - c_t)] / p_t + c_t',   yhat = E[X_T | X_t = x, X_0 = z]

    (the formula of docs/method.md, section 'Gaussian-mixture closed form', for every sigma).  sigma
    enters only through the posterior:
    X_t | (X_0 = z, X_T = y) ~ N(a z + b y + c, g), g = sigma^2 p q / W, so with r = x - a z - c,
    per axis and component k (prior N(m_k, S_k)):

        responsibility  ~ pi_k N(r; b m_k, b^2 S_k + g)              (log domain)
        y_k = m_k + S_k b (r - b m_k) / (b^2 S_k + g)                 (= m_k + S_k (r - b m_k) / (b S_k +
              sigma^2 p), the precision-weighted mean of m1_k(y) N(y; mu, 1/K), mu = r / b, K = b^2 / g,
              written without dividing by b)

    The protocol arrays are linearly interpolated at t (np.interp; exact at grid nodes).  The drift
    is singular at t = T (p = 0: agents are pinned onto X_T) and its formula degenerates at t = 0
    (b = g = 0), hence the open interval; an Euler-Maruyama scheme evaluates it at t_0 = 0+.
    """
    from ..particles.gm_drift import gm_drift

    t = float(t)
    if not (0.0 < t < proto.T):
        raise ValueError(f"gm_agent_drift needs 0 < t < T = {proto.T}, got {t}")
    d = proto.c.shape[1]
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.shape[1] != d:
        raise ValueError(f"x has {x.shape[1]} components, protocol d = {d}")
    return gm_drift(t, x, z, proto, as_mixture(target, d, name="target"))


def gm_product_marginal(t_index, x_grid_points, start_mixture, target_mixture, proto) -> np.ndarray:
    """Exact density of the product-coupling marginal at proto.t[t_index] (docs/method.md, section
    'Gaussian-mixture closed form')::

        m_t(x) = sum_{j,k} pi_j pi_k N(x; a m_j + b m_k + c, a^2 S_j + b^2 Sigma_k + g I)

    (diagonal covariances, X_0 ~ start, X_T ~ target independent).  x_grid_points (P, d);
    returns (P,), evaluated in the log domain.  Mean and covariance: ``gm_product_moments``.
    """
    i = int(t_index)
    a, b, g, c = proto.a[i], proto.b[i], proto.g[i], proto.c[i]
    d = len(c)
    X = np.asarray(x_grid_points, dtype=float).reshape(-1, d)
    w0, m0, S0 = as_mixture(start_mixture, d, name="start_mixture")
    w1, m1, S1 = as_mixture(target_mixture, d, name="target_mixture")
    mu = a * m0[:, None, :] + b * m1[None, :, :] + c          # (J, K, d)
    var = a * a * S0[:, None, :] + b * b * S1[None, :, :] + g  # (J, K, d)
    with np.errstate(divide="ignore"):
        lw = np.log(w0)[:, None] + np.log(w1)[None, :]
    dev = X[:, None, None, :] - mu[None]
    ll = lw[None] - 0.5 * np.sum(dev * dev / var[None] + np.log(2.0 * np.pi * var)[None], axis=3)
    ll = ll.reshape(len(X), -1)
    mx = ll.max(axis=1, keepdims=True)
    return np.exp(mx[:, 0]) * np.sum(np.exp(ll - mx), axis=1)


def gm_product_moments(t_index, start_mixture, target_mixture, proto):
    """Mean (d,) and covariance (d, d) of the product-coupling marginal at proto.t[t_index]::

        mean = a M0 + b M1 + c,   cov = a^2 C0 + b^2 C1 + g I

    (M, C: the full mixture mean/covariance of start and target; X_0, X_T independent)."""
    i = int(t_index)
    a, b, g, c = proto.a[i], proto.b[i], proto.g[i], proto.c[i]
    d = len(c)
    start = as_mixture(start_mixture, d, name="start_mixture")
    target = as_mixture(target_mixture, d, name="target_mixture")
    M0, C0, M1, C1 = start.mean(), start.covariance(), target.mean(), target.covariance()
    return a * M0 + b * M1 + c, a * a * C0 + b * b * C1 + g * np.eye(d)


def gm_mean_channel_energy(*, T, beta, mean0, mean1, nu=None, sigma=1.0):
    """Mean-channel energy int_0^T |mean_t'|^2 dt, per axis (docs/method.md, sections 'Independent agents
    and the energy identity' and 'Demand-response energies').

    nu=None (MF guidance): the mean is linear, energy = (mean1 - mean0)^2 / T.
    nu constant (IA, scalar or per axis): mean_t = a_t m0 + b_t m1 + nu (1 - a_t - b_t) with the
    a, b of ``gm_protocol`` for this beta (PWC allowed).  f = mean - nu solves f'' = beta f, so on
    a piece [e_i, e_i + h] of constant beta it is the two-point interpolant of its end values,
    f = [f_i sinh(w (h - s)) + f_{i+1} sinh(w s)] / sinh(w h), and exactly (docs/method.md, section
    'Independent agents and the energy identity', with
    T -> h, p -> f_i, q -> f_{i+1}):

        int_piece f'^2 = w^2 / sinh^2(w h) [ (f_i^2 + f_{i+1}^2) I1 - 2 f_i f_{i+1} I2 ]

    evaluated with the cancellation-free coefficients of ``ia_mean_energy``.  (Anchoring both
    ends matters: a one-end cosh/sinh expansion loses exp(2 w h) to cancellation.)

    A callable beta: adaptive quadrature (quad_vec) of the DOP853 dense solution.  The mean channel
    does not depend on sigma (argument kept for a uniform interface).  Returns float or (d,) array.
    """
    m0 = np.asarray(mean0, dtype=float)
    m1 = np.asarray(mean1, dtype=float)
    if nu is None:
        out = (m1 - m0) ** 2 / T
        return float(out) if out.ndim == 0 else out
    nu = np.asarray(nu, dtype=float)
    P0, P1 = np.broadcast_arrays(m0 - nu, m1 - nu)
    beta_s = as_schedule(beta, "beta")
    pq = _PQ(T, beta_s)
    W = pq.W
    if pq.exact:
        e, wv = pq.edges, pq.w
        pe, _, qe, _ = pq(e)
        pe[-1], qe[0] = 0.0, 0.0
        tot = np.zeros(P0.shape)
        for i in range(len(wv)):
            f0 = (P0 * pe[i] + P1 * qe[i]) / W
            f1 = (P0 * pe[i + 1] + P1 * qe[i + 1]) / W
            h = e[i + 1] - e[i]
            A1, AB = _ia_coeffs(wv[i] * h, h)
            tot = tot + (f0 - f1) ** 2 * (1.0 / h + A1) + 2.0 * f0 * f1 * AB
        out = tot
    else:
        from scipy.integrate import quad_vec

        def f(s):
            _, dp, _, dq = pq(s)
            return ((P0 * dp[0] + P1 * dq[0]) / W) ** 2
        out = quad_vec(f, 0.0, T, epsabs=1e-14, epsrel=1e-12, limit=400)[0]
    out = np.asarray(out, dtype=float)
    return float(out) if out.ndim == 0 else out


# ============================================================================================
# section 4 in d dimensions: matrix Riccati / Lyapunov, terminal-cost LQG mean-field game
# ============================================================================================

def _is_diag(A, tol=0.0):
    return np.all(np.abs(A - np.diag(np.diag(A))) <= tol)


def _lq_nd_ode(T, sigma, Q, x_target, mean0, cov0, beta_s, kappa):
    """Matrix ODE route (mean field, guidance nu_t = mean_t), piecewise across beta breaks.

    Backward from T (all stable):
        S'   = S^2 + kappa^T S + S kappa - beta I,                 S(T) = Q
        P'   = P (kappa + S) + (kappa + S)^T P + P^2 + beta I,     P(T) = 0
        rho' = (kappa + S + P)^T rho,                              rho(T) = -Q x_target
    (s = P mean + rho decouples the MF two-point BVP mean' = -(kappa + S) mean - s,
    s' = (kappa^T + S) s + beta mean; S + P solves the beta-free Riccati, as in the scalar code;
    S, P symmetric).  Forward from 0:
        mean'  = -(kappa + S + P) mean - rho
        Sigma' = -(kappa + S) Sigma - Sigma (kappa + S)^T + sigma^2 I
    """
    d = len(mean0)
    I = np.eye(d)
    edges = _segment_edges(T, beta_s)
    nseg = len(edges) - 1
    dd = d * d
    back_sols = [None] * nseg
    y = np.concatenate([Q.ravel(), np.zeros(dd), -Q @ x_target])
    for i in range(nseg - 1, -1, -1):
        lo, hi = edges[i], edges[i + 1]
        bf = _on_segment(beta_s, lo, hi)

        def rhs(t, zz, bf=bf):
            S = zz[:dd].reshape(d, d)
            P = zz[dd:2 * dd].reshape(d, d)
            rho = zz[2 * dd:]
            b = bf(t)
            A = kappa + S
            dS = S @ S + kappa.T @ S + S @ kappa - b * I
            dP = P @ A + A.T @ P + P @ P + b * I
            drho = (A + P).T @ rho
            return np.concatenate([dS.ravel(), dP.ravel(), drho])
        sol = solve_ivp(rhs, (hi, lo), y, dense_output=True, **_ODE_OPTS)
        if not sol.success:
            raise RuntimeError(f"backward matrix Riccati integration failed: {sol.message}")
        back_sols[i] = sol
        y = sol.y[:, -1]
    back = _Stitched(edges, back_sols)

    fwd_sols = []
    y = np.concatenate([mean0, cov0.ravel()])
    s2 = sigma ** 2
    for i in range(nseg):
        lo, hi = edges[i], edges[i + 1]
        bsol = back_sols[i].sol

        def rhs(t, zz, bsol=bsol):
            v = bsol(t)
            S = v[:dd].reshape(d, d)
            P = v[dd:2 * dd].reshape(d, d)
            rho = v[2 * dd:]
            m = zz[:d]
            C = zz[d:].reshape(d, d)
            A = kappa + S
            dm = -(A + P) @ m - rho
            dC = -A @ C - C @ A.T + s2 * I
            return np.concatenate([dm, dC.ravel()])
        sol = solve_ivp(rhs, (lo, hi), y, dense_output=True, **_ODE_OPTS)
        if not sol.success:
            raise RuntimeError(f"forward Lyapunov integration failed: {sol.message}")
        fwd_sols.append(sol)
        y = sol.y[:, -1]
    return back, _Stitched(edges, fwd_sols)


def lqg_terminal_nd(t, *, T, sigma, Q, x_target, mean0, cov0, beta=0.0, kappa=None, method="auto"):
    """Gaussian solution of the d-dimensional terminal-cost LQG mean-field game.

    Model::

        dX = (-kappa X + alpha) dt + sigma dW,   X_0 ~ N(mean0, cov0)
        cost  E[ int_0^T |alpha|^2/2 + beta_t/2 |X - mean_t|^2 dt + (X_T - x_t)^T Q (X_T - x_t)/2 ]

    Value u = x^T S x / 2 + s . x + c, alpha = -(S x + s)::

        S'     = S^2 + kappa^T S + S kappa - beta_t I,          S(T) = Q
        s'     = (kappa^T + S) s + beta_t mean,                 s(T) = -Q x_target
        mean'  = -(kappa + S) mean - s,                         mean(0) = mean0
        Sigma' = -(kappa + S) Sigma - Sigma (kappa + S)^T + sigma^2 I,   Sigma(0) = cov0

    Q (d, d) symmetric (a number means Q I); kappa (d, d) or None (no base drift); beta a number,
    callable or PiecewiseConstant.  Fast path (method "auto"): kappa None/diagonal and Q, cov0
    diagonal -> the problem separates and the scalar ``lq_terminal`` (closed form where it applies)
    runs per axis.  Otherwise (or method="ode") the matrix route ``_lq_nd_ode`` (DOP853,
    rtol 1e-12, Riccati decoupling of the mean BVP).

    Returns dict of arrays at t (shape t.shape + (d,) or + (d, d)): mean, cov, S, s.
    """
    if method not in ("auto", "ode"):
        raise ValueError(f"method must be 'auto' or 'ode', got {method!r}")
    mean0 = np.atleast_1d(np.asarray(mean0, dtype=float)).ravel()
    d = len(mean0)
    x_target = np.broadcast_to(np.asarray(x_target, dtype=float), (d,)).astype(float)
    Q = np.asarray(Q, dtype=float)
    Q = Q * np.eye(d) if Q.ndim == 0 else Q.reshape(d, d)
    cov0 = np.asarray(cov0, dtype=float)
    cov0 = cov0 * np.eye(d) if cov0.ndim == 0 else cov0.reshape(d, d)
    kap = np.zeros((d, d)) if kappa is None else np.asarray(kappa, dtype=float)
    kap = kap * np.eye(d) if kap.ndim == 0 else kap.reshape(d, d)
    if not (np.allclose(Q, Q.T, rtol=0, atol=1e-14 * max(1.0, np.abs(Q).max()))
            and np.allclose(cov0, cov0.T, rtol=0, atol=1e-14 * max(1.0, np.abs(cov0).max()))):
        raise ValueError("Q and cov0 must be symmetric")
    tt = _times(t, T)
    shape = tt.shape
    flat = tt.ravel()
    if method == "auto" and _is_diag(kap) and _is_diag(Q) and _is_diag(cov0):
        cols = [lq_terminal(flat, T=T, sigma=sigma, q=Q[i, i], x_target=x_target[i], mean0=mean0[i],
                            var0=cov0[i, i], beta=beta, kappa=kap[i, i]) for i in range(d)]
        n = len(flat)
        mean = np.stack([c["mean"] for c in cols], axis=-1)
        s = np.stack([c["s"] for c in cols], axis=-1)
        cov = np.zeros((n, d, d))
        S = np.zeros((n, d, d))
        idx = np.arange(d)
        cov[:, idx, idx] = np.stack([c["var"] for c in cols], axis=-1)
        S[:, idx, idx] = np.stack([c["S"] for c in cols], axis=-1)
    else:
        back, fwd = _lq_nd_ode(float(T), sigma, Q, x_target, mean0, cov0, as_schedule(beta, "beta"), kap)
        bv = back(flat).T
        fv = fwd(flat).T
        dd = d * d
        S = bv[:, :dd].reshape(-1, d, d)
        P = bv[:, dd:2 * dd].reshape(-1, d, d)
        rho = bv[:, 2 * dd:]
        mean = fv[:, :d]
        cov = fv[:, d:].reshape(-1, d, d)
        s = np.einsum("nij,nj->ni", P, mean) + rho
    return dict(mean=mean.reshape(shape + (d,)), cov=cov.reshape(shape + (d, d)),
                S=S.reshape(shape + (d, d)), s=s.reshape(shape + (d,)))


# --------------------------------------------------------------------------------------------
# stationary LQ MFGs, discounted and ergodic, with Poisson switching between types
# (docs/method.md, section 'Stationary problems', closed forms)
# --------------------------------------------------------------------------------------------

def lq_stationary(a, centres, sigma, rho=0.0, beta=0.0, switching=None) -> dict:
    """Closed form of the stationary LQ MFG on R with K types (K = 1 without switching):

        rho u_k [or lambda] + |u_k'|^2/2 - nu u_k'' - sum_j q_kj (u_j - u_k) = a/2 (x - c_k)^2 + beta/2 (x - mu)^2

    (mu the mean of the total density, nu = sigma^2/2, a + beta > 0).  The values are quadratics with one
    curvature, u_k = P x^2/2 + q_k x + k_k, with P the positive root of P^2 + rho P = a + beta; the linear
    coefficients and the mean solve the linear system

        ((rho + P) I - Q) q + beta mu 1 = -a c,     (P I - Q^T) M = -q o pi,    mu = sum_k M_k

    (pi the stationary distribution of Q, M_k the first moment of type k's density m_k); the second moments X_k
    solve (2P I - Q^T) X = 2 nu pi - 2 q o M; the constants g_k = (a c_k^2 + beta mu^2 - q_k^2)/2 + nu P give
    (rho I - Q) k = g (discounted) or, ergodic, lambda = pi . g and -Q k = g - lambda (k up to a constant:
    returned with pi . k = 0).  With one type m is Gaussian N(c, nu/P) and mu = c; with several types m_k is not
    Gaussian but its mass pi_k, mean and variance are the values returned.

    Returns a dict: P, q (K,), k (K,), lam (None when rho > 0), pi (K,), mu, mean (K,) (per type, M_k / pi_k),
    var (K,) (per type), and ``u(x)`` -> (K, len(x)) the values."""
    c = np.atleast_1d(np.asarray(centres, dtype=float))
    K = c.size
    Q = np.zeros((1, 1)) if switching is None else np.asarray(switching, dtype=float)
    if Q.shape != (K, K):
        raise ValueError(f"switching has shape {Q.shape}; {K} centres need a {K} x {K} matrix")
    a, beta, rho = float(a), float(beta), float(rho)
    if not a + beta > 0:
        raise ValueError(f"a + beta = {a + beta}: must be > 0 (a confining quadratic cost)")
    if rho < 0:
        raise ValueError(f"rho = {rho}: the discount rate must be >= 0")
    nu = 0.5 * float(sigma) ** 2
    P = 0.5 * (-rho + math.sqrt(rho * rho + 4.0 * (a + beta)))
    Ab = np.vstack([Q.T, np.ones((1, K))])
    pi = np.linalg.lstsq(Ab, np.r_[np.zeros(K), 1.0], rcond=None)[0]
    I = np.eye(K)
    # unknowns (q, mu)
    G = np.linalg.solve(P * I - Q.T, np.diag(pi))          # M = -G q
    S = np.zeros((K + 1, K + 1))
    S[:K, :K] = (rho + P) * I - Q
    S[:K, K] = beta
    S[K, :K] = G.sum(axis=0)                                # mu + 1^T G q = 0
    S[K, K] = 1.0
    sol = np.linalg.solve(S, np.r_[-a * c, 0.0])
    q, mu = sol[:K], float(sol[K])
    M = -G @ q
    X = np.linalg.solve(2.0 * P * I - Q.T, 2.0 * nu * pi - 2.0 * q * M)
    g = 0.5 * (a * c ** 2 + beta * mu ** 2 - q ** 2) + nu * P
    if rho > 0:
        k = np.linalg.solve(rho * I - Q, g)
        lam = None
    else:
        lam = float(pi @ g)
        k = np.linalg.lstsq(-Q, g - lam, rcond=None)[0] if K > 1 else np.zeros(1)
        k = k - pi @ k
    mean = M / pi
    var = X / pi - mean ** 2

    def u(x):
        x = np.asarray(x, dtype=float)
        return 0.5 * P * x[None] ** 2 + q[:, None] * x[None] + k[:, None]

    return dict(P=P, q=q, k=k, lam=lam, pi=pi, mu=mu, mean=mean, var=var, u=u, nu=nu)


__all__ += ["lq_stationary"]


def lq_stationary_product(a, centres, sigma, rho=0.0, beta=0.0) -> dict:
    """Closed form of the one-type stationary LQ MFG on R^d with V = sum_k a_k/2 (x_k - c_k)^2 and
    F = beta/2 |x - mu|^2 (mu the mean of m): the Hamiltonian |p|^2/2 = sum_k p_k^2/2, V and F are sums over the
    axes, so the solution is the sum of the 1-D solutions of ``lq_stationary`` (a_k, c_k, beta) for u and
    lambda, and their product for m: u = sum_k u_k(x_k), lambda = sum_k lambda_k (ergodic), m = prod_k
    N(c_k, nu / P_k).

    Returns a dict: lam (None when rho > 0), mean (d,), var (d,) (the axes' variances nu / P_k), P (d,), nu,
    ``u(*coords)`` the value (ergodic: up to a constant) and ``m(*coords)`` the Gaussian density."""
    a = np.atleast_1d(np.asarray(a, dtype=float))
    c = np.atleast_1d(np.asarray(centres, dtype=float))
    if a.shape != c.shape:
        raise ValueError(f"a has {a.size} entries and centres {c.size}: give one stiffness and one centre per axis")
    axes = [lq_stationary(ak, [ck], sigma, rho, beta) for ak, ck in zip(a, c)]
    nu = axes[0]["nu"]
    P = np.array([ax["P"] for ax in axes])
    mean = np.array([float(ax["mean"][0]) for ax in axes])
    var = nu / P

    def u(*xs):
        return sum(ax["u"](np.asarray(x, dtype=float))[0] for ax, x in zip(axes, xs))

    def m(*xs):
        out = 1.0
        for x, mk, vk in zip(xs, mean, var):
            out = out * np.exp(-(np.asarray(x, dtype=float) - mk) ** 2 / (2 * vk)) / math.sqrt(2 * math.pi * vk)
        return out

    lam = None if rho > 0 else float(sum(ax["lam"] for ax in axes))
    return dict(lam=lam, mean=mean, var=var, P=P, nu=nu, u=u, m=m)


__all__ += ["lq_stationary_product"]


# --------------------------------------------------------------------------------------------
# mean-field control: Nash versus social optimum of an LQ game (docs/method.md, section
# 'Mean-field control and the price of anarchy')
# --------------------------------------------------------------------------------------------

def _cosh_sinh(c, tau):
    """(cosh(sqrt(c) tau), sinh(sqrt(c) tau) / sqrt(c)) for any real c (cos / sin for c < 0; 1, tau at 0)."""
    tau = np.asarray(tau, dtype=float)
    if c > 0.0:
        a = math.sqrt(c)
        return np.cosh(a * tau), np.sinh(a * tau) / a
    if c < 0.0:
        b = math.sqrt(-c)
        return np.cos(b * tau), np.sin(b * tau) / b
    return np.ones_like(tau), tau.copy()


def _attraction_gain(s, objective):
    """g_e: the Riccati system's mean gain, s for the Nash equilibrium, s (2 - s) for the social optimum."""
    if objective == "nash":
        return s
    if objective == "social":
        return s * (2.0 - s)
    raise ValueError(f"objective = {objective!r}: choose 'nash' or 'social'")


def lq_mean_attraction(t, *, T, sigma, kappa, s, mean0, var0, q=0.0, objective="nash"):
    """Gaussian solution of the scalar LQ game with F = kappa/2 (x - s mean_t)^2 (``MeanAttraction``),
    G = q/2 x^2, dX = alpha dt + sigma dW, X_0 ~ N(mean0, var0), for either objective.

    Value (Nash) or planner's adjoint (social) u = P x^2/2 + r x + c, alpha = -(P x + r), with g_e = s (Nash)
    or s (2 - s) (social: the first variation of int F m dx is kappa/2 |x|^2 - kappa g (x mean - mean^2/2))::

        P' = P^2 - kappa,                 P(T) = q      (the same for both objectives)
        r' = P r + kappa g_e mean,        r(T) = 0
        mean' = -(P mean + r),            Sigma' = -2 P Sigma + sigma^2

    z = P mean + r obeys z' = kappa (g_e - 1) mean, so mean'' = c mean with c = kappa (1 - g_e), mean(0) = mean0,
    mean'(T) + q mean(T) = 0; with C, S = cosh(sqrt(c) tau), sinh(sqrt(c) tau)/sqrt(c) and tau = T - t::

        mean = mean0 (C(tau) + q S(tau)) / (C(T) + q S(T)),     P = (q + kappa th(tau)) / (1 + q th(tau)),

    th(tau) = tanh(sqrt(kappa) tau)/sqrt(kappa).  Sigma and the total cost (``lq_price_of_anarchy``) come from
    solve_ivp (DOP853, rtol 1e-12).  Needs kappa >= 0, q >= 0 and C(T) + q S(T) > 0 (no conjugate point:
    c < 0 happens for the Nash equilibrium with s > 1).  Returns dict of arrays at t: mean, var, P, r.
    """
    tt = _times(t, T)
    r = _attraction_paths(tt.ravel(), T, sigma, kappa, s, mean0, var0, q, objective)
    return {k: r[k].reshape(tt.shape) for k in ("mean", "var", "P", "r")}


def _attraction_paths(tt, T, sigma, kappa, s, mean0, var0, q, objective):
    """Paths of ``lq_mean_attraction`` at the times tt and the total cost J (``lq_price_of_anarchy``)."""
    kappa, s, q, sigma = float(kappa), float(s), float(q), float(sigma)
    if kappa < 0.0 or q < 0.0:
        raise ValueError(f"lq_mean_attraction: kappa = {kappa} and q = {q} must be >= 0")
    c = kappa * (1.0 - _attraction_gain(s, objective))
    CT, ST = _cosh_sinh(c, T)
    D = float(CT + q * ST)
    if not D > 0.0:
        raise ValueError(f"lq_mean_attraction: no solution for objective={objective!r} (kappa = {kappa}, s = {s}, "
                         f"T = {T}: the mean equation has a conjugate point); shorten T or lower kappa")
    a = math.sqrt(kappa)

    def P_of(t):
        tau = T - np.asarray(t, dtype=float)
        th = np.tanh(a * tau) / a if a > 0.0 else tau
        return (q + kappa * th) / (1.0 + q * th)

    def mean_of(t):
        C, S = _cosh_sinh(c, T - np.asarray(t, dtype=float))
        return mean0 * (C + q * S) / D

    def z_of(t):  # z = P mean + r = -mean'
        C, S = _cosh_sinh(c, T - np.asarray(t, dtype=float))
        return mean0 * (c * S + q * C) / D

    def rhs(t, y):
        P, mu, z = P_of(t), mean_of(t), z_of(t)
        return [-2.0 * P * y[0] + sigma ** 2,
                0.5 * (P * P * y[0] + z * z) + 0.5 * kappa * (y[0] + (1.0 - s) ** 2 * mu * mu)]

    sol = solve_ivp(rhs, (0.0, T), [float(var0), 0.0], dense_output=True, **_ODE_OPTS)
    if not sol.success:
        raise RuntimeError(f"lq_mean_attraction: the variance ODE failed ({sol.message})")
    var_T, run = sol.y[0, -1], sol.y[1, -1]
    mu_T = float(mean_of(T))
    J = float(run + 0.5 * q * (var_T + mu_T ** 2))
    P, mu = P_of(tt), mean_of(tt)
    return {"mean": mu, "var": sol.sol(tt)[0], "P": P, "r": z_of(tt) - P * mu, "J": J}


def lq_price_of_anarchy(*, T, sigma, kappa, s, mean0, var0, q=0.0):
    """Total costs J = E[int_0^T alpha^2/2 + kappa/2 (X - s mean_t)^2 dt + q/2 X_T^2] of the Nash equilibrium
    and of the social optimum of the ``lq_mean_attraction`` game, and their ratio::

        J = int_0^T [ (P^2 + kappa) Sigma + z^2 + kappa (1 - s)^2 mean^2 ] / 2 dt + q (Sigma_T + mean_T^2) / 2

    (the variance part is the same for both; the mean parts differ).  J is per unit mass (an expectation).

    d-D (mean0, var0 one value per axis): with a product Gaussian X_0, F = kappa/2 |x - s mean_t|^2, G = q/2 |x|^2
    and the control cost |alpha|^2/2 all sums over the axes, both optimality systems separate into the scalar
    ones of the axes, and each total cost is the sum of the axes' J (the price of anarchy is the ratio of the
    sums, not a sum of ratios).  Returns dict nash_cost, social_cost, price_of_anarchy."""
    means, variances = np.broadcast_arrays(np.atleast_1d(np.asarray(mean0, dtype=float)),
                                           np.atleast_1d(np.asarray(var0, dtype=float)))
    if means.ndim != 1:
        raise ValueError(f"lq_price_of_anarchy: mean0 and var0 must be numbers or one value per axis, got shapes "
                         f"{np.shape(mean0)} and {np.shape(var0)}")
    j_n = j_s = 0.0
    for mu0, v0 in zip(means, variances):
        args = (np.asarray([0.0]), T, sigma, kappa, s, float(mu0), float(v0), q)
        j_n += _attraction_paths(*args, "nash")["J"]
        j_s += _attraction_paths(*args, "social")["J"]
    return {"nash_cost": j_n, "social_cost": j_s, "price_of_anarchy": j_n / j_s}


# --------------------------------------------------------------------------------------------
# several populations: LQ game with cross interactions through the means
# --------------------------------------------------------------------------------------------

def lq_multipop(t, *, T, sigma, q, x_target, mean0, var0, beta) -> dict:
    """Mean, variance and value curvature of K interacting LQ populations on the line (docs/method.md,
    section 'Several populations').  Population k: dX = alpha dt + sigma_k dW, running cost
    |alpha|^2/2 + sum_j beta_kj/2 (x - mean_j(t))^2, terminal cost q_k/2 (x - x_target_k)^2, X_0 ~ N(mean0_k,
    var0_k).  With u_k = S_k x^2/2 + s_k x + c_k:

        S_k' = S_k^2 - sum_j beta_kj,   S_k(T) = q_k                    (Riccati, one per population)
        s'   = S s + B mean,            s_k(T) = -q_k x_target_k        (S = diag(S_k), B = (beta_kj))
        mean' = -(S mean + s),          mean(0) = mean0
        Var_k' = -2 S_k Var_k + sigma_k^2,   Var_k(0) = var0_k

    The two-point problem for (mean, s) is decoupled by s = P mean + rho with the K x K matrix Riccati
    P' = S P + P S + P^2 + B, P(T) = 0, and rho' = (S + P) rho, rho(T) = -q x_target, integrated backward
    together with S; then mean' = -(S + P) mean - rho forward.  Arguments are length-K sequences (beta K x K);
    returns {"mean", "var", "S"} shaped (K, len(t))."""
    sig = np.asarray(sigma, dtype=float).reshape(-1)
    K = sig.size
    q = np.broadcast_to(np.asarray(q, dtype=float), (K,))
    tgt = np.broadcast_to(np.asarray(x_target, dtype=float), (K,))
    mu0 = np.broadcast_to(np.asarray(mean0, dtype=float), (K,))
    v0 = np.broadcast_to(np.asarray(var0, dtype=float), (K,))
    B = np.asarray(beta, dtype=float).reshape(K, K)
    Bsum = B.sum(axis=1)

    def back(_t, z):
        S = z[:K]
        P = z[K:K + K * K].reshape(K, K)
        rho = z[K + K * K:]
        return np.concatenate([S * S - Bsum, (S[:, None] * P + P * S[None, :] + P @ P + B).ravel(),
                               S * rho + P @ rho])

    yT = np.concatenate([q, np.zeros(K * K), -q * tgt])
    bsol = solve_ivp(back, (T, 0.0), yT, dense_output=True, **_ODE_OPTS)
    if not bsol.success:
        raise RuntimeError(f"backward multi-population LQ integration failed: {bsol.message}")

    def fwd(tt, z):
        y = bsol.sol(tt)
        S = y[:K]
        P = y[K:K + K * K].reshape(K, K)
        rho = y[K + K * K:]
        mean, var = z[:K], z[K:]
        return np.concatenate([-(S * mean + P @ mean) - rho, -2 * S * var + sig ** 2])

    fsol = solve_ivp(fwd, (0.0, T), np.concatenate([mu0, v0]), dense_output=True, **_ODE_OPTS)
    if not fsol.success:
        raise RuntimeError(f"forward multi-population LQ integration failed: {fsol.message}")
    tt = np.asarray(t, dtype=float).reshape(-1)
    z = fsol.sol(tt)
    return {"mean": z[:K], "var": z[K:], "S": bsol.sol(tt)[:K]}


def lq_switching(t, *, T, Q, sigma, q, x_target, shares0, mean0, var0, beta) -> dict:
    """LQ types with switching that interact through the mean of all agents (docs/method.md, 'Several
    populations').  Type k: dX = alpha dt + sigma_k dW, switching to type j at rate Q_kj; running cost
    |alpha|^2/2 + beta/2 (x - mu(t))^2 with mu the mean of all agents (total mass 1), terminal cost
    q_k/2 (x - x_target_k)^2; at t = 0 type k has mass shares0_k, mean mean0_k and variance var0_k.  With
    u_k = a_k x^2/2 + b_k x + c_k (the switching term sum_j Q_kj (u_j - u_k) = (Q u)_k, rows of Q summing to 0):

        a' = a^2 - Q a - beta,                       a(T) = q
        b' = a b - Q b + beta mu,                    b(T) = -q x_target
        c' = b^2/2 - nu a - Q c - beta mu^2/2,       c(T) = q x_target^2 / 2        (nu_k = sigma_k^2/2)

    and the moments of the types, w_k = int m_k, M1_k = int x m_k, M2_k = int x^2 m_k (feedback -(a_k x + b_k)):

        w' = Q^T w,   M1' = -a M1 - b w + Q^T M1,   M2' = 2 nu w - 2 a M2 - 2 b M1 + Q^T M2,   mu = sum_k M1_k.

    a is integrated backward alone; (b, M1) is a linear two-point problem (b given at T, M1 at 0), solved by
    superposition: the fundamental matrix over [0, T] gives b(0); then (b, M1, M2) forward and c backward.
    Returns {"a", "b", "c", "mass", "mean", "var"} shaped (K, len(t)) (mean, var: of each type's distribution)."""
    Q = np.asarray(Q, dtype=float)
    K = Q.shape[0]
    nu = 0.5 * np.broadcast_to(np.asarray(sigma, dtype=float), (K,)) ** 2
    qT = np.broadcast_to(np.asarray(q, dtype=float), (K,))
    tgt = np.broadcast_to(np.asarray(x_target, dtype=float), (K,))
    w0 = np.broadcast_to(np.asarray(shares0, dtype=float), (K,))
    M10 = w0 * np.broadcast_to(np.asarray(mean0, dtype=float), (K,))
    M20 = w0 * (np.broadcast_to(np.asarray(var0, dtype=float), (K,)) + (M10 / np.where(w0 > 0, w0, 1.0)) ** 2)
    asol = solve_ivp(lambda _t, a: a * a - Q @ a - beta, (T, 0.0), qT, dense_output=True, **_ODE_OPTS)
    if not asol.success:
        raise RuntimeError(f"switching LQ: backward Riccati integration failed: {asol.message}")

    def w_of(tt):
        from scipy.linalg import expm
        return expm(tt * Q.T) @ w0

    def linear(tt, z):   # z = (b, M1, M2) forward: b' = a b - Q b + beta mu, M1', M2' as in the docstring
        a, w = asol.sol(tt), w_of(tt)
        b, M1, M2 = z[:K], z[K:2 * K], z[2 * K:]
        mu = M1.sum()
        return np.concatenate([a * b - Q @ b + beta * mu, -a * M1 - b * w + Q.T @ M1,
                               2 * nu * w - 2 * a * M2 - 2 * b * M1 + Q.T @ M2])

    # the (b, M1) block is linear and homogeneous: its fundamental matrix over [0, T] gives b(0)
    def block(tt, z):
        a, w = asol.sol(tt), w_of(tt)
        b, M1 = z[:K], z[K:]
        return np.concatenate([a * b - Q @ b + beta * M1.sum(), -a * M1 - b * w + Q.T @ M1])

    Phi = np.empty((2 * K, 2 * K))
    for i in range(2 * K):
        e = np.zeros(2 * K)
        e[i] = 1.0
        s = solve_ivp(block, (0.0, T), e, **_ODE_OPTS)
        if not s.success:
            raise RuntimeError(f"switching LQ: fundamental matrix integration failed: {s.message}")
        Phi[:, i] = s.y[:, -1]
    b0 = np.linalg.solve(Phi[:K, :K], -qT * tgt - Phi[:K, K:] @ M10)
    fsol = solve_ivp(linear, (0.0, T), np.concatenate([b0, M10, M20]), dense_output=True, **_ODE_OPTS)
    if not fsol.success:
        raise RuntimeError(f"switching LQ: forward integration failed: {fsol.message}")

    def c_rhs(tt, c):
        z = fsol.sol(tt)
        b, mu = z[:K], z[K:2 * K].sum()
        return b * b / 2 - nu * asol.sol(tt) - Q @ c - beta * mu * mu / 2

    csol = solve_ivp(c_rhs, (T, 0.0), qT * tgt * tgt / 2, dense_output=True, **_ODE_OPTS)
    if not csol.success:
        raise RuntimeError(f"switching LQ: backward integration of c failed: {csol.message}")
    tt = np.asarray(t, dtype=float).reshape(-1)
    z = fsol.sol(tt)
    w = np.stack([w_of(x) for x in tt], axis=1)
    mean = z[K:2 * K] / w
    return {"a": asol.sol(tt), "b": z[:K], "c": csol.sol(tt), "mass": w, "mean": mean,
            "var": z[2 * K:] / w - mean ** 2}
