"""Oracles in mfg_pde.oracles.analytic: closed forms vs ODE routes, ODE residuals, the mean theorem,
the Foellmer check, the IA/MF energy identity (docs/method.md, sections 'LQG Riccati closed forms' to
'Independent agents and the energy identity')."""

import math

import numpy as np
import pytest

from mfg_pde.oracles import analytic as an
from mfg_pde.model.schedules import PiecewiseConstant

# (T, sigma, q, x_target, mean0, var0, beta)
PARAMS = [
    (1.0, 1.0, 1.0, 1.0, 0.0, 0.25, 0.0),
    (1.0, 1.0, 1.0, 1.0, 0.0, 0.25, 2.0),
    (1.5, 0.7, 2.0, 1.3, -0.4, 0.30, 3.0),
    (0.8, 1.3, 5.0, -2.0, 1.0, 0.05, 12.0),
    (2.5, 2.0, 0.3, 0.5, 0.2, 1.00, 0.5),
    (1.0, 0.5, 10.0, 2.0, -1.0, 0.00, 1e-10),
    (3.0, 1.0, 0.0, 0.0, 0.7, 0.40, 4.0),
]


def _kw(p):
    T, sigma, q, x_target, mean0, var0, beta = p
    return dict(T=T, sigma=sigma, q=q, x_target=x_target, mean0=mean0, var0=var0, beta=beta)


def _gl(f, a, b, n=80):
    """Gauss-Legendre quadrature of a vectorised f on [a, b]."""
    x, w = np.polynomial.legendre.leggauss(n)
    t = 0.5 * (b - a) * x + 0.5 * (b + a)
    return 0.5 * (b - a) * np.sum(w * f(t))


# ------------------------------------------------------------------ terminal-cost LQ problem

@pytest.mark.parametrize("p", PARAMS)
def test_closed_form_matches_ode(p):
    kw = _kw(p)
    t = np.linspace(0.0, kw["T"], 41)
    a = an.lq_terminal(t, method="closed", **kw)
    b = an.lq_terminal(t, method="ode", **kw)
    for key in ("mean", "var", "S", "s", "nu"):
        scale = max(1.0, np.max(np.abs(a[key])))
        assert np.max(np.abs(a[key] - b[key])) < 1e-9 * scale, key
    ea = an.terminal_cost_energy(method="closed", **kw)
    eb = an.terminal_cost_energy(method="ode", **kw)
    assert abs(ea - eb) < 1e-9 * max(1.0, ea)


def test_closed_form_is_mathmd_literal():
    """The stable closed form equals the literal h/F expression (docs/method.md, section 'LQG Riccati closed
    forms', terminal-cost variant; beta > 0)."""
    T, sigma, q, s0sq, beta = 1.5, 0.7, 2.0, 0.3, 3.0
    w = math.sqrt(beta)
    t = np.linspace(0.0, T, 31)
    tau = T - t
    S_lit = w * (q + w * np.tanh(w * tau)) / (w + q * np.tanh(w * tau))
    h = lambda x: w * np.cosh(w * x) + q * np.sinh(w * x)  # noqa: E731
    F = lambda x: np.sinh(w * x) / (w ** 2 * h(x))  # noqa: E731
    var_lit = h(tau) ** 2 * (s0sq / h(T) ** 2 + sigma ** 2 * (F(T) - F(T - t)))
    r = an.lq_terminal(t, T=T, sigma=sigma, q=q, x_target=1.0, mean0=0.0, var0=s0sq, beta=beta)
    assert np.max(np.abs(r["S"] - S_lit)) < 1e-13
    assert np.max(np.abs(r["var"] - var_lit)) < 1e-13


def test_beta_zero_limit_is_continuous():
    kw = dict(T=1.2, sigma=0.9, q=3.0, x_target=1.0, mean0=0.2, var0=0.4)
    t = np.linspace(0.0, 1.2, 25)
    r0 = an.lq_terminal(t, beta=0.0, **kw)
    tau = 1.2 - t
    assert np.allclose(r0["S"], 3.0 / (1.0 + 3.0 * tau), rtol=0, atol=1e-15)
    for beta in (1e-300, 1e-16, 1e-12):
        r = an.lq_terminal(t, beta=beta, **kw)
        for key in ("S", "var", "s"):
            assert np.all(np.isfinite(r[key]))
            assert np.max(np.abs(r[key] - r0[key])) < 10 * beta + 1e-14
    # large stiffness: no overflow, S -> omega away from T
    r = an.lq_terminal(t, beta=1e6, **kw)
    assert np.all(np.isfinite(r["var"])) and abs(r["S"][0] - 1e3) < 1e-9


def _fd_residuals(res_fn, T, h):
    """Max |residual| of the ODEs at interior points, derivatives by central differences."""
    tc = np.linspace(0.1 * T, 0.9 * T, 17)
    tt = np.concatenate([tc - h, tc, tc + h])
    r = res_fn(tt)
    n = tc.size
    out = {}
    for key, (val, rhs) in r.items():
        d = (val[2 * n:] - val[:n]) / (2 * h)
        out[key] = np.max(np.abs(d - rhs[n:2 * n]))
    return out


CASES_RES = [
    dict(beta=3.0, kappa=0.0, guidance=None, method="closed"),
    dict(beta=3.0, kappa=0.0, guidance=None, method="ode"),
    dict(beta=lambda t: 2.0 + 1.5 * np.sin(3.0 * t), kappa=0.8, guidance=None, method="ode"),
    dict(beta=lambda t: 2.0 + 1.5 * np.sin(3.0 * t), kappa=-0.5, guidance=lambda t: 0.3 * np.cos(t),
         method="ode"),
    dict(beta=5.0, kappa=0.0, guidance=0.0, method="ode"),
]


@pytest.mark.parametrize("case", CASES_RES)
def test_ode_residuals_second_order(case):
    T, sigma, q, x_tar, m0, v0 = 1.3, 0.8, 2.5, 1.5, -0.5, 0.2
    kappa = case["kappa"]
    from mfg_pde.model.schedules import as_schedule
    bs = as_schedule(case["beta"])

    def res_fn(tt):
        r = an.lq_terminal(tt, T=T, sigma=sigma, q=q, x_target=x_tar, mean0=m0, var0=v0, **case)
        S, s, m, V, nu = r["S"], r["s"], r["mean"], r["var"], r["nu"]
        b = bs(tt)
        return {"S": (S, S * S + 2 * kappa * S - b),
                "s": (s, (kappa + S) * s + b * nu),
                "mean": (m, -kappa * m - (S * m + s)),
                "var": (V, -2 * (kappa + S) * V + sigma ** 2)}

    e1 = _fd_residuals(res_fn, T, 1e-2)
    e2 = _fd_residuals(res_fn, T, 5e-3)
    for key in e1:
        assert e1[key] < 0.05, key                      # O(h^2) small
        if e1[key] > 1e-9:   # else exact up to roundoff (e.g. the linear MF mean)
            assert 3.5 < e1[key] / e2[key] < 4.5, (key, e1[key], e2[key])   # order 2
    # boundary conditions
    r = an.lq_terminal(np.array([0.0, T]), T=T, sigma=sigma, q=q, x_target=x_tar, mean0=m0, var0=v0, **case)
    assert abs(r["S"][1] - q) < 1e-12 and abs(r["s"][1] + q * x_tar) < 1e-11
    assert abs(r["mean"][0] - m0) < 1e-14 and abs(r["var"][0] - v0) < 1e-14


@pytest.mark.parametrize("beta", [
    PiecewiseConstant.uniform(1.0, 12.0 * 0.65 ** np.arange(8)),
    PiecewiseConstant([0.0, 0.3, 0.55, 1.0], [0.0, 20.0, 3.0]),
    lambda t: 4.0 + 3.0 * np.cos(5.0 * t),
    7.0,
])
def test_mean_theorem_terminal_cost(beta):
    """kappa = 0, MF: mean_t = mean0 + v t for any beta_t, through the ODE (BVP) route."""
    T, q, x_tar, m0 = 1.0, 3.0, 2.0, -0.5
    t = np.linspace(0.0, T, 101)
    r = an.lq_terminal(t, T=T, sigma=0.9, q=q, x_target=x_tar, mean0=m0, var0=0.3, beta=beta,
                       method="ode")
    v = an.mean_terminal_velocity(q, x_tar, m0, T)
    assert abs(v - q * (x_tar - m0) / (1 + q * T)) < 1e-15
    assert np.max(np.abs(r["mean"] - (m0 + v * t))) < 1e-10
    assert np.max(np.abs(r["S"] * r["mean"] + r["s"] + v)) < 1e-9   # E alpha = v
    # fixed guidance (IA) is a counter-example: not linear when beta > 0
    ia = an.lq_terminal(t, T=T, sigma=0.9, q=q, x_target=x_tar, mean0=m0, var0=0.3, beta=beta, guidance=0.0)
    assert np.max(np.abs(ia["mean"] - (m0 + v * t))) > 1e-3


def test_energy_matches_quadrature_of_paths():
    beta = PiecewiseConstant([0.0, 0.4, 1.0], [6.0, 1.0])
    kw = dict(T=1.0, sigma=1.1, q=2.0, x_target=1.0, mean0=0.0, var0=0.5, beta=beta, kappa=0.3)
    E = an.terminal_cost_energy(**kw)

    def integrand(t):
        r = an.lq_terminal(t, **kw)
        return (r["S"] * r["mean"] + r["s"]) ** 2 + r["S"] ** 2 * r["var"]

    Eq = _gl(integrand, 0.0, 0.4) + _gl(integrand, 0.4, 1.0)
    assert abs(E - Eq) < 1e-10 * E
    # closed form: E_MF = v^2 T + int S^2 Sigma
    kw = dict(T=1.0, sigma=1.0, q=1.0, x_target=1.0, mean0=0.0, var0=0.25, beta=2.0)
    r = lambda t: an.lq_terminal(t, **kw)  # noqa: E731
    v = an.mean_terminal_velocity(1.0, 1.0, 0.0, 1.0)
    Eq = v * v + _gl(lambda t: r(t)["S"] ** 2 * r(t)["var"], 0.0, 1.0)
    assert abs(an.terminal_cost_energy(**kw) - Eq) < 1e-12


def test_method_validation():
    kw = dict(T=1.0, sigma=1.0, q=1.0, x_target=1.0, mean0=0.0, var0=0.25)
    with pytest.raises(ValueError):
        an.lq_terminal([0.5], kappa=0.5, method="closed", **kw)
    with pytest.raises(ValueError):
        an.lq_terminal([0.5], guidance=0.0, method="closed", **kw)
    with pytest.raises(ValueError):
        an.lq_terminal([1.5], **kw)


# ------------------------------------------------------------------ planning (bridge)

@pytest.mark.parametrize("beta,kappa", [(0.0, 0.0), (3.0, 0.0), (2.0, 0.7), (0.0, -0.6)])
def test_terminal_cost_solution_is_an_sb_bridge(beta, kappa):
    """The MF terminal-cost solution is the SB bridge between its own marginals: the bridge
    closed forms (section 4, planning part) must reproduce the terminal-cost paths."""
    T, sigma, m0, v0 = 1.4, 0.8, 0.3, 0.35
    kw = dict(T=T, sigma=sigma, q=2.0, x_target=-1.0, mean0=m0, var0=v0, beta=beta, kappa=kappa)
    t = np.linspace(0.0, T, 29)
    lq = an.lq_terminal(t, **kw)
    br = an.lqg_bridge(t, T=T, sigma=sigma, mean0=m0, var0=v0, mean1=lq["mean"][-1], var1=lq["var"][-1],
                       beta=beta, kappa=kappa)
    for key in ("mean", "var", "S", "s"):
        assert np.max(np.abs(br[key] - lq[key])) < 1e-9, key
    assert abs(br["energy"] - an.terminal_cost_energy(**kw)) < 1e-9


@pytest.mark.parametrize("beta,kappa", [(0.0, 0.0), (4.0, 0.0), (1.5, 0.9)])
def test_bridge_riccati_and_lyapunov(beta, kappa):
    T, sigma = 1.0, 1.2
    kw = dict(T=T, sigma=sigma, mean0=0.5, var0=0.3, mean1=-1.0, var1=0.8, beta=beta, kappa=kappa)
    h = 1e-3
    tc = np.linspace(0.1, 0.9, 9)
    for coupling in ("sb", "product"):
        f = lambda x: an.lqg_bridge(x, coupling=coupling, **kw)  # noqa: E731
        r, rp, rm = f(tc), f(tc + h), f(tc - h)
        dV = (rp["var"] - rm["var"]) / (2 * h)
        dS = (rp["S"] - rm["S"]) / (2 * h)
        dm = (rp["mean"] - rm["mean"]) / (2 * h)
        assert np.max(np.abs(dV - r["dvar"])) < 1e-5
        assert np.max(np.abs(dm - r["dmean"])) < 1e-5
        assert np.max(np.abs(r["dvar"] - (-2 * (kappa + r["S"]) * r["var"] + sigma ** 2))) < 1e-12
        ric = np.max(np.abs(dS - (r["S"] ** 2 + 2 * kappa * r["S"] - beta)))
        if coupling == "sb":
            assert ric < 1e-5            # one value function: S solves the Riccati
            ds = (rp["s"] - rm["s"]) / (2 * h)
            assert np.max(np.abs(ds - ((kappa + r["S"]) * r["s"] + beta * r["mean"]))) < 1e-5
        else:
            assert ric > 1e-2            # per-agent bridges: no single quadratic value function
    # product coupling costs more fluctuation energy than SB
    assert an.lqg_bridge([0.5], coupling="product", **kw)["energy"] > an.lqg_bridge([0.5], **kw)["energy"]


def test_bridge_coefficients_limits_and_derivatives():
    T, sigma = 1.3, 0.9
    t = np.linspace(0.0, T, 27)
    c0 = an.bridge_coefficients(t, T=T, sigma=sigma)
    assert np.allclose(c0["a"], 1 - t / T, atol=1e-15) and np.allclose(c0["b"], t / T, atol=1e-15)
    assert np.allclose(c0["g"], sigma ** 2 * t * (T - t) / T, atol=1e-15)
    c = an.bridge_coefficients(t, T=T, sigma=sigma, beta=1e-14)
    for key in ("a", "b", "g", "da", "db", "dg"):
        assert np.max(np.abs(c[key] - c0[key])) < 1e-13
    beta, kappa = 2.0, 0.5
    D = math.sqrt(kappa ** 2 + beta)
    c = an.bridge_coefficients(t, T=T, sigma=sigma, beta=beta, kappa=kappa)
    assert np.allclose(c["a"], np.sinh(D * (T - t)) / np.sinh(D * T), rtol=0, atol=1e-14)
    assert np.allclose(c["b"], np.sinh(D * t) / np.sinh(D * T), rtol=0, atol=1e-14)
    assert np.allclose(c["g"], sigma ** 2 * np.sinh(D * t) * np.sinh(D * (T - t)) / (D * np.sinh(D * T)),
                       rtol=0, atol=1e-14)
    assert np.allclose(c["da"], -D * np.cosh(D * (T - t)) / np.sinh(D * T), rtol=0, atol=1e-13)
    assert np.allclose(c["db"], D * np.cosh(D * t) / np.sinh(D * T), rtol=0, atol=1e-13)
    assert np.allclose(c["dg"], sigma ** 2 * np.sinh(D * (T - 2 * t)) / np.sinh(D * T), rtol=0, atol=1e-13)
    big = an.bridge_coefficients(t, T=T, sigma=sigma, beta=1e7)     # D T ~ 4100: no overflow
    assert all(np.all(np.isfinite(big[k])) for k in ("a", "b", "g", "da", "db", "dg"))


def test_sb_endpoint_covariance():
    T, sigma, s0, s1 = 1.0, 0.8, 0.6, 1.1
    for beta, kappa in [(2.0, 0.3), (0.5, 0.0)]:
        D = math.sqrt(kappa ** 2 + beta)
        k = D / (sigma ** 2 * math.sinh(D * T))
        lit = (math.sqrt(1 + 4 * k * k * s0 * s0 * s1 * s1) - 1) / (2 * k)
        assert abs(an.sb_endpoint_covariance(T=T, sigma=sigma, s0=s0, s1=s1, beta=beta, kappa=kappa) - lit) < 1e-15
    k = 1 / (sigma ** 2 * T)
    lit = (math.sqrt(1 + 4 * k * k * s0 * s0 * s1 * s1) - 1) / (2 * k)
    assert abs(an.sb_endpoint_covariance(T=T, sigma=sigma, s0=s0, s1=s1) - lit) < 1e-15
    # SB coupling precision matrix has off-diagonal -k
    C = an.sb_endpoint_covariance(T=T, sigma=sigma, s0=s0, s1=s1)
    P = np.linalg.inv([[s0 ** 2, C], [C, s1 ** 2]])
    assert abs(P[0, 1] + k) < 1e-13


@pytest.mark.parametrize("kappa", [0.0, 0.7, -0.5, 1e-13])
def test_mf_mean_energy(kappa):
    T, m0, m1 = 1.3, 0.4, -1.1
    m, dm = an.mf_mean_path(np.array([0.0, T]), T=T, mean0=m0, mean1=m1, kappa=kappa)
    assert np.allclose(m, [m0, m1], atol=1e-15)
    f = lambda t: (lambda md: (md[1] + kappa * md[0]) ** 2)(an.mf_mean_path(t, T=T, mean0=m0, mean1=m1, kappa=kappa))  # noqa: E731
    E = an.mf_mean_energy(T=T, mean0=m0, mean1=m1, kappa=kappa)
    assert abs(E - _gl(f, 0.0, T)) < 1e-13
    if kappa not in (0.0, 1e-13):
        lit = 2 * kappa * (m1 * math.exp(kappa * T) - m0) ** 2 / (math.exp(2 * kappa * T) - 1)
        assert abs(E - lit) < 1e-13


@pytest.mark.parametrize("m1,s1", [(0.0, 1.0), (1.0, 0.5), (-2.0, 1.7), (0.3, 0.2)])
def test_foellmer(m1, s1):
    """beta = 0, point start at 0, sigma = T = 1: E/2 = KL(N(m1, s1^2) || N(0, 1))."""
    kl = 0.5 * (s1 ** 2 + m1 ** 2 - 1.0 - 2.0 * math.log(s1))
    for var0 in (0.0, 1e-12):
        for coupling in ("sb", "product"):
            r = an.lqg_bridge(np.array([0.0, 0.5, 1.0]), T=1.0, sigma=1.0, mean0=0.0, var0=var0,
                              mean1=m1, var1=s1 ** 2, coupling=coupling)
            assert abs(r["energy"] / 2 - kl) < 1e-10
            # S_0: point-start limit (for the SB coupling also the var0 -> 0 limit; the product
            # coupling has a boundary layer of width ~var0 where S goes from 1/T to this value)
            if var0 == 0.0 or coupling == "sb":
                assert abs(r["S"][0] - (1.0 - s1 ** 2)) < 1e-9


# ------------------------------------------------------------------ section 3: IA vs MF

IA = [(1.0, 12.0, 3.16, 0.66, 0.0), (1.0, 12.0, 3.16, 0.66, 0.66), (2.0, 0.5, -1.0, 2.0, 0.3),
      (0.7, 1e-9, 1.0, 2.0, -4.0), (1.5, 3.0, 1.0, 1.0, 0.0), (1.0, 0.0, 0.5, 2.0, 1.0),
      (1.0, 4.1, -1.0, 1.0, 0.0)]


@pytest.mark.parametrize("T,beta,m0,m1,nu", IA)
def test_ia_mean_energy_vs_quadrature(T, beta, m0, m1, nu):
    path = lambda t: an.ia_mean_path(t, T=T, beta=beta, mean0=m0, mean1=m1, nu=nu)  # noqa: E731
    assert np.allclose(path(np.array([0.0, T])), [m0, m1], atol=1e-14)
    h = 1e-5
    dpath2 = lambda t: ((path(t + h) - path(t - h)) / (2 * h)) ** 2  # noqa: E731
    Eq = _gl(dpath2, 0.0, T, n=120)
    E = an.ia_mean_energy(T=T, beta=beta, mean0=m0, mean1=m1, nu=nu)
    assert abs(E - Eq) < 1e-8 * max(1.0, E)
    gap = an.energy_identity_gap(T=T, beta=beta, mean0=m0, mean1=m1, nu=nu)
    assert gap >= 0.0
    assert abs(gap - (E - (m1 - m0) ** 2 / T)) < 1e-12 * max(1.0, E)
    gq = _gl(lambda t: ((path(t + h) - path(t - h)) / (2 * h) - (m1 - m0) / T) ** 2, 0.0, T, n=120)
    assert abs(gap - gq) < 1e-8 * max(1.0, E)
    if beta > 0.01:   # literal formula of docs/method.md, section 'Independent agents and the energy identity'
        w = math.sqrt(beta)
        p, q = m0 - nu, m1 - nu
        I1 = T / 2 + math.sinh(2 * w * T) / (4 * w)
        I2 = T / 2 * math.cosh(w * T) + math.sinh(w * T) / (2 * w)
        lit = w ** 2 / math.sinh(w * T) ** 2 * ((p * p + q * q) * I1 - 2 * p * q * I2)
        assert abs(E - lit) < 1e-12 * max(1.0, E)


def test_energy_identity_small_and_large_beta():
    kw = dict(T=1.0, mean0=3.16, mean1=0.66, nu=0.0)
    assert an.energy_identity_gap(beta=0.0, **kw) == 0.0
    # gap = int (mean_IA' - dm/T)^2 with mean_IA' - dm/T = O(beta): O(beta^2) for small beta; smooth across the series/closed switch (x = 2)
    g1, g2 = an.energy_identity_gap(beta=1e-6, **kw), an.energy_identity_gap(beta=2e-6, **kw)
    assert g1 > 0 and abs(g2 / g1 - 4.0) < 1e-5
    x = 2.0
    ga = an.energy_identity_gap(beta=(x * (1 - 1e-12)) ** 2, **kw)
    gb = an.energy_identity_gap(beta=(x * (1 + 1e-12)) ** 2, **kw)
    assert abs(ga - gb) < 1e-10 * ga
    big = an.ia_mean_energy(beta=1e8, **kw)   # omega T = 1e4: the mean hugs nu, E ~ omega (p^2 + q^2) / 2
    assert math.isfinite(big) and abs(big / (0.5e4 * (3.16 ** 2 + 0.66 ** 2)) - 1) < 1e-3
    # the paper's demand-response mean channel (beta = 12 first interval, nu = 0): gap > 0
    rng = np.random.default_rng(0)
    for _ in range(200):
        T, beta = rng.uniform(0.2, 3), rng.uniform(0, 30)
        m0, m1, nu = rng.normal(size=3) * 2
        assert an.energy_identity_gap(T=T, beta=beta, mean0=m0, mean1=m1, nu=nu) >= 0.0
