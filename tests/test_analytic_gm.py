"""Oracles of the Gaussian-mixture regime and of the d-dimensional LQG problem in
mfg_pde.oracles.analytic (docs/method.md, sections 'LQG Riccati closed forms' to 'Demand-response energies'):
protocol ODEs and boundary conditions, the guidance
shift c, the agent drift (against the LQ bridge feedback, the Fokker-Planck equation of the exact
marginal, and an Euler-Maruyama simulation, sigma != 1 included), exact product marginals,
mean-channel energies, and the matrix Riccati/Lyapunov route."""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.linalg import expm

from mfg_pde.oracles import analytic as an
from mfg_pde.model.schedules import Constant, PiecewiseConstant

T = 1.0
BETA_PWC = PiecewiseConstant.uniform(T, 12.0 * 0.65 ** np.arange(8))      # the paper's protocol
BETA_ODD = PiecewiseConstant([0.0, 0.23, 0.5, 0.61, 1.3], [4.0, 0.0, 9.0, 1.5])  # T = 1.3, a zero piece


def _fd2(y, h):
    return (y[2:] - 2.0 * y[1:-1] + y[:-2]) / h ** 2


def _interior_off_breaks(t, breaks):
    """Interior grid indices whose 3-point stencil does not straddle a break."""
    i = np.arange(1, len(t) - 1)
    on = np.zeros(len(i), bool)
    for b in breaks:
        on |= np.isclose(t[i], b, atol=1e-12, rtol=0)
    return i[~on]


EPS = np.finfo(float).eps


def _shc(x):
    """sinh(x)/x, = 1 at x = 0."""
    x = np.asarray(x, dtype=float)
    safe = np.where(x == 0.0, 1.0, x)
    return np.where(x == 0.0, 1.0, np.sinh(safe) / safe)


def _fd_truncation(beta_at, h):
    """Exact truncation factors of the 3-point stencils for y'' = beta y with beta constant across the
    stencil (y = A e^{w t} + B e^{-w t}, w = sqrt(beta)): the second difference of y is exactly
    y * 4 sinh^2(w h / 2) / h^2 = y * beta shc(w h / 2)^2 and the central difference exactly
    y' * shc(w h).  Returns (e2, e1) with  d2(y) - beta y = e2 y  and  cd(y) - y' = e1 y'."""
    wh = np.sqrt(beta_at) * h
    return beta_at * (_shc(0.5 * wh) ** 2 - 1.0), _shc(wh) - 1.0


def _bvp_mean_energy(beta, m0, m1, nu=0.0, kappa=0.0):
    """Independent route to a mean-channel energy: the mean solves x'' = (beta + kappa^2) x - beta nu,
    x(0) = m0, x(T) = m1 (PWC beta, constant nu); linear shooting with DOP853 (rtol 1e-13) piece by piece,
    the energy int (x' + kappa x)^2 dt carried as a third state."""
    from scipy.integrate import solve_ivp

    br, vals = np.asarray(beta.breaks, float), np.asarray(beta.values, float)

    def shoot(v0):
        y = np.array([m0, v0, 0.0])
        for lo, hi, b in zip(br[:-1], br[1:], vals):
            sol = solve_ivp(lambda s, y, b=b: [y[1], (b + kappa ** 2) * y[0] - b * nu, (y[1] + kappa * y[0]) ** 2],
                            (lo, hi), y, method="DOP853", rtol=1e-13, atol=1e-14)
            assert sol.success
            y = sol.y[:, -1]
        return y
    x0, x1 = shoot(0.0)[0], shoot(1.0)[0]
    return float(shoot((m1 - x0) / (x1 - x0))[2])   # x(T) is affine in the initial slope


# ------------------------------------------------------------------ protocol p, q, W, a, b, g, K

@pytest.mark.parametrize("beta,TT", [(BETA_PWC, 1.0), (BETA_ODD, 1.3), (3.0, 0.8)])
def test_pq_odes_bcs_second_order(beta, TT):
    sched = beta if isinstance(beta, PiecewiseConstant) else Constant(beta)
    breaks = np.asarray(getattr(sched, "breaks", []), float)
    errs, exact, tols = [], [], []
    for n in (520, 1040):
        t = np.linspace(0.0, TT, n + 1)
        hh = t[1] - t[0]
        assert np.all(np.min(np.abs(breaks[:, None] - t[None, :]), axis=1) < 1e-12)  # breaks are nodes
        pr = an.gm_protocol(t, T=TT, beta=beta, sigma=1.0)
        # boundary conditions, W
        assert pr.p[-1] == 0.0 and pr.q[0] == 0.0
        assert pr.dp[-1] == pytest.approx(-1.0, abs=1e-14) and pr.dq[0] == pytest.approx(1.0, abs=1e-14)
        assert pr.W == pr.p[0]
        assert abs(pr.p[0] - pr.q[-1]) < 1e-13 * pr.W
        # Wronskian p q' - q p' = W everywhere
        assert np.max(np.abs(pr.p * pr.dq - pr.q * pr.dp - pr.W)) < 1e-12 * pr.W
        # second-order FD residual of y'' = beta y at nodes whose stencil does not cross a break
        ti = _interior_off_breaks(t, breaks)
        b_at = sched(t[ti])
        res = 0.0
        for y in (pr.p, pr.q):
            d2 = (y[ti + 1] - 2.0 * y[ti] + y[ti - 1]) / hh ** 2
            res = max(res, np.max(np.abs(d2 - b_at * y[ti])) / pr.W)
        # the slope arrays are the derivatives of the values (central difference, O(h^2))
        for y, dy in ((pr.p, pr.dp), (pr.q, pr.dq)):
            cd = (y[ti + 1] - y[ti - 1]) / (2.0 * hh)
            res = max(res, np.max(np.abs(cd - dy[ti])) / pr.W)
        errs.append(res)
        # the exact truncation of the stencils on the exact p, q (cosh/sinh pieces), evaluated independently
        e2, e1 = _fd_truncation(b_at, hh)
        exact.append(max(max(np.max(np.abs(e2 * y[ti])), np.max(np.abs(e1 * dy[ti]))) / pr.W
                         for y, dy in ((pr.p, pr.dp), (pr.q, pr.dq))))
        # rounding: a few ulps of |y| in each stencil value, divided by h^2
        tols.append(32 * EPS * max(np.max(np.abs(pr.p)), np.max(np.abs(pr.q))) / pr.W / hh ** 2)
        assert res == pytest.approx(exact[-1], rel=0, abs=tols[-1])
        # a, b, g, K definitions
        assert np.allclose(pr.a, pr.p / pr.W, rtol=0, atol=1e-15)
        assert np.allclose(pr.b, pr.q / pr.W, rtol=0, atol=1e-15)
        assert np.allclose(pr.g, pr.p * pr.q / pr.W, rtol=1e-14, atol=0)
        assert pr.K[0] == 0.0 and pr.K[-1] == np.inf
        assert np.allclose(pr.K[1:-1], pr.b[1:-1] ** 2 / pr.g[1:-1], rtol=1e-12)
    assert errs[0] < 1e-4
    # second order: the residual is the FD truncation error, its ratio the exact one (-> 4 as h -> 0)
    assert errs[0] / errs[1] == pytest.approx(exact[0] / exact[1], rel=tols[0] / exact[0] + tols[1] / exact[1])


@pytest.mark.parametrize("beta,TT", [(BETA_PWC, 1.0), (BETA_ODD, 1.3)])
def test_pq_continuous_value_and_slope_at_breaks(beta, TT):
    eps = 1e-11
    br = beta.breaks[1:-1]
    t = np.unique(np.concatenate([[0.0, TT], br - eps, br, br + eps]))
    pr = an.gm_protocol(t, T=TT, beta=beta)
    for y in (pr.p, pr.dp, pr.q, pr.dq):
        k = np.searchsorted(t, br)
        assert np.max(np.abs(y[k + 1] - y[k - 1])) < 1e-9 * pr.W


def test_callable_beta_route_matches_exact_pieces():
    t = np.linspace(0.0, 1.3, 131)
    ex = an.gm_protocol(t, T=1.3, beta=BETA_ODD, sigma=0.8, nu=0.7)
    num = an.gm_protocol(t, T=1.3, beta=lambda s: BETA_ODD(s), sigma=0.8, nu=0.7)
    for key in ("p", "dp", "q", "dq", "a", "b", "g", "c", "dc"):
        assert np.max(np.abs(getattr(ex, key) - getattr(num, key))) < 1e-9 * max(1.0, ex.W), key


@pytest.mark.parametrize("sigma", [1.0, 0.6, 2.0])
def test_beta_zero_limit_and_constant_beta(sigma):
    t = np.linspace(0.0, 1.7, 35)
    for beta in (0.0, PiecewiseConstant([0.0, 0.4, 1.7], [0.0, 0.0])):
        pr = an.gm_protocol(t, T=1.7, beta=beta, sigma=sigma)
        assert np.allclose(pr.a, 1 - t / 1.7, rtol=0, atol=1e-15)
        assert np.allclose(pr.b, t / 1.7, rtol=0, atol=1e-15)
        assert np.allclose(pr.g, sigma ** 2 * t * (1.7 - t) / 1.7, rtol=0, atol=1e-15)
        assert np.all(pr.c == 0.0)
    # constant beta: the existing closed-form bridge coefficients
    pr = an.gm_protocol(t, T=1.7, beta=2.3, sigma=sigma)
    bc = an.bridge_coefficients(t, T=1.7, sigma=sigma, beta=2.3)
    for k in ("a", "b", "g"):
        assert np.allclose(getattr(pr, k), bc[k], rtol=1e-13, atol=1e-15), k
    assert np.allclose(pr.dp / pr.W, bc["da"], rtol=1e-13, atol=1e-15)
    assert np.allclose(pr.dq / pr.W, bc["db"], rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------ guidance shift c

def _c_residual(pr, beta_sched, nu_vals, breaks):
    t = pr.t
    ti = _interior_off_breaks(t, breaks)
    h = t[1] - t[0]
    d2 = (pr.c[ti + 1] - 2.0 * pr.c[ti] + pr.c[ti - 1]) / h ** 2
    res = d2 - beta_sched(t[ti])[:, None] * (pr.c[ti] - nu_vals[ti])
    cd = (pr.c[ti + 1] - pr.c[ti - 1]) / (2.0 * h)
    return max(np.max(np.abs(res)), np.max(np.abs(cd - pr.dc[ti])))


def test_shift_c_solves_bvp_pwc_nu():
    """PWC beta and PWC nu with different breaks (the exact route): FD residual is O(h^2)."""
    nu_sched = [PiecewiseConstant([0.0, 0.3, 0.7, 1.0], [1.0, -0.5, 2.0]), Constant(-0.8)]
    br = np.concatenate([BETA_PWC.breaks, [0.3, 0.7]])
    errs, exact, tols = [], [], []
    for n in (400, 800):
        t = np.linspace(0.0, T, n + 1)
        h = t[1] - t[0]
        pr = an.gm_protocol(t, T=T, beta=BETA_PWC, nu=nu_sched, d=2)
        assert pr.c.shape == (n + 1, 2)
        assert pr.c[0].tolist() == [0.0, 0.0] and pr.c[-1].tolist() == [0.0, 0.0]
        nu_vals = np.stack([nu_sched[0](t), nu_sched[1](t)], axis=1)
        errs.append(_c_residual(pr, BETA_PWC, nu_vals, br))
        # where beta and nu are constant across the stencil, f = c - nu solves f'' = beta f: the exact
        # truncation of the stencils is e2 f (second difference) and e1 c' (central difference)
        ti = _interior_off_breaks(t, br)
        e2, e1 = _fd_truncation(BETA_PWC(t[ti])[:, None], h)
        exact.append(max(np.max(np.abs(e2 * (pr.c[ti] - nu_vals[ti]))), np.max(np.abs(e1 * pr.dc[ti]))))
        tols.append(32 * EPS * (np.max(np.abs(pr.c)) + np.max(np.abs(nu_vals))) / h ** 2)   # rounding / h^2
        assert errs[-1] == pytest.approx(exact[-1], rel=0, abs=tols[-1])
    assert errs[0] < 2e-3
    assert errs[0] / errs[1] == pytest.approx(exact[0] / exact[1], rel=tols[0] / exact[0] + tols[1] / exact[1])
    # constant nu: c = nu (1 - a - b)  (the IA mean-shift)
    pr = an.gm_protocol(t, T=T, beta=BETA_PWC, nu=[0.3, -1.2], d=2)
    assert np.allclose(pr.c, np.outer(1 - pr.a - pr.b, [0.3, -1.2]), rtol=0, atol=1e-14)


def test_shift_c_routes_agree_and_linear_nu_exact():
    TT = 1.3
    t = np.linspace(0.0, TT, 261)
    # nu linear in t: c = nu - a nu(0) - b nu(T) exactly (nu'' = 0), for all three nu routes
    n0, n1 = np.array([0.4, -1.0]), np.array([-1.1, 0.5])
    lin = lambda s: n0 * (1 - s / TT) + n1 * s / TT  # noqa: E731
    grid = np.array([lin(s) for s in t])
    exact = grid - np.outer(an.gm_protocol(t, T=TT, beta=BETA_ODD).a, n0) \
        - np.outer(an.gm_protocol(t, T=TT, beta=BETA_ODD).b, n1)
    for nu in (lin, grid):
        pr = an.gm_protocol(t, T=TT, beta=BETA_ODD, nu=nu)
        assert pr.c.shape == (len(t), 2)
        assert np.max(np.abs(pr.c - exact)) < 1e-11
        assert np.max(np.abs(pr.dc - (n1 - n0) / TT
                             + np.outer(pr.dp / pr.W, n0) + np.outer(pr.dq / pr.W, n1))) < 1e-10
    # a smooth nonlinear nu: callable route (DOP853) vs FD residual and vs the grid route (O(h^2))
    def nu_k(s, k):
        """k-th derivative of nu = (sin 3s, 2 e^-s)."""
        s = np.asarray(s, dtype=float)
        trig = (np.sin, np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x))[k % 4]
        return np.stack([3.0 ** k * trig(3.0 * s), (-1.0) ** k * 2.0 * np.exp(-s)], axis=-1)
    f = lambda s: nu_k(s, 0)  # noqa: E731
    pr = an.gm_protocol(t, T=TT, beta=BETA_ODD, nu=f)
    nu_vals = np.array([f(s) for s in t])
    res = _c_residual(pr, BETA_ODD, nu_vals, BETA_ODD.breaks)
    assert res < 5e-4
    # per node the residuals are the Taylor truncation of the stencils, from c'' = beta (c - nu) on a piece:
    #   d2(c) - c'' = h^2/12 c'''' + h^4/360 c^(6),  cd(c) - c' = h^2/6 c''' + h^4/120 c^(5)
    # (the next terms are below 1e-13); tolerance: c and c' carry the DOP853 rtol of the callable route
    # (1e-12 of |c| + |nu|) plus rounding, divided by h^2 (second difference) or h (central difference)
    h = t[1] - t[0]
    ti = _interior_off_breaks(t, BETA_ODD.breaks)
    b = BETA_ODD(t[ti])[:, None]
    c, dc = pr.c[ti], pr.dc[ti]
    nu0, nu1, nu2, nu3, nu4 = (nu_k(t[ti], k) for k in range(5))
    c2 = b * (c - nu0)
    c3 = b * (dc - nu1)
    c4 = b * (c2 - nu2)
    c5 = b * (c3 - nu3)
    c6 = b * (c4 - nu4)
    d2 = (pr.c[ti + 1] - 2.0 * pr.c[ti] + pr.c[ti - 1]) / h ** 2
    cd = (pr.c[ti + 1] - pr.c[ti - 1]) / (2.0 * h)
    scale = np.max(np.abs(pr.c)) + np.max(np.abs(nu_vals))
    rtol_ode = 1e-12
    tol2 = (4 * rtol_ode + 32 * EPS) * scale / h ** 2
    tol1 = (rtol_ode + 32 * EPS) * scale * (1.0 / h + 1.0)
    trunc2 = h ** 2 / 12 * c4 + h ** 4 / 360 * c6
    trunc1 = h ** 2 / 6 * c3 + h ** 4 / 120 * c5
    np.testing.assert_allclose(d2 - c2, trunc2, rtol=0, atol=tol2)
    np.testing.assert_allclose(cd - dc, trunc1, rtol=0, atol=tol1)
    assert res == pytest.approx(max(np.max(np.abs(trunc2)), np.max(np.abs(trunc1))), rel=0, abs=tol2)
    # the grid route takes nu piecewise linear on tf (exact for that nu): its c differs from the exact c by
    # the shift of the interpolation error, to leading order hf^2/12 times the shift c[nu''] of the guidance
    # nu'' (the trapezoid rule's h^2/12 term), with an O(hf^4) remainder far below the DOP853 tolerance
    tf = np.linspace(0.0, TT, 4 * 260 + 1)
    hf = tf[1] - tf[0]
    pg = an.gm_protocol(tf, T=TT, beta=BETA_ODD, nu=np.array([f(s) for s in tf]))
    pr2 = an.gm_protocol(t, T=TT, beta=BETA_ODD, nu=lambda s: nu_k(s, 2))
    assert np.max(np.abs(pg.c[::4] - pr.c)) < 2e-6
    np.testing.assert_allclose(pg.c[::4] - pr.c, hf ** 2 / 12 * pr2.c, rtol=0, atol=4 * rtol_ode * scale)
    np.testing.assert_allclose(pg.dc[::4] - pr.dc, hf ** 2 / 12 * pr2.dc, rtol=0,
                               atol=4 * rtol_ode * np.max(np.abs(pr.dc)))


# ------------------------------------------------------------------ agent drift

@pytest.mark.parametrize("sigma,beta,nu_kind", [(1.0, 2.5, "callable"), (0.7, 2.5, "grid"),
                                                 (1.6, 0.0, "callable"), (1.3, 7.0, "grid")])
def test_drift_gaussian_target_equals_lq_bridge_feedback(sigma, beta, nu_kind):
    """K = 1 target, point start z, MF guidance nu_t = (1 - t/T) z + (t/T) m1 (the MF mean of the
    population started at delta_z): the agent is the product-coupling LQG bridge of
    lqg_bridge(mean0=z, var0=0, ..., coupling='product'), whose feedback is -(S x + s)."""
    TT, d = 1.3, 2
    z, m1, v1 = np.array([0.4, -0.2]), np.array([-1.1, 0.8]), np.array([0.3, 0.05])
    t = np.linspace(0.0, TT, 261)
    lin = lambda s: z * (1 - s / TT) + m1 * s / TT  # noqa: E731
    nu = lin if nu_kind == "callable" else np.array([lin(s) for s in t])
    pr = an.gm_protocol(t, T=TT, beta=beta, sigma=sigma, nu=nu, d=d)
    x = np.stack([np.linspace(-3, 3, 9), np.linspace(2, -2.5, 9)], axis=1)
    lbs = [an.lqg_bridge(t, T=TT, sigma=sigma, mean0=z[i], var0=0.0, mean1=m1[i], var1=v1[i],
                         beta=beta, coupling="product") for i in range(d)]
    for k in (1, 40, 130, 200, 259):
        al = an.gm_agent_drift(t[k], x, z, pr, ([1.0], [m1], [v1]))
        for i, lb in enumerate(lbs):
            ref = -(lb["S"][k] * x[:, i] + lb["s"][k])
            assert np.max(np.abs(al[:, i] - ref)) < 1e-10 * max(1.0, np.max(np.abs(ref))), (k, i)


def test_drift_posterior_mean_vs_quadrature():
    """The mixture posterior (log-domain responsibilities, Kalman form) against direct quadrature
    of y m1(y) N(y; mu, 1/K) (d = 1, K = 3 components), via alpha = [yhat + p'(x - c)]/p + c'."""
    t = np.linspace(0.0, T, 101)
    pr = an.gm_protocol(t, T=T, beta=BETA_PWC, sigma=1.4, nu=0.5)
    w, m, v = np.array([0.5, 0.3, 0.2]), np.array([-1.0, 0.4, 2.0]), np.array([0.09, 0.3, 0.04])
    z = 2.3
    for k in (7, 50, 93):
        for x in (-2.0, 0.3, 1.9):
            a, b, K, c = pr.a[k], pr.b[k], pr.K[k], pr.c[k, 0]
            mu = (x - a * z - c) / b

            def dens(y):
                prior = np.sum(w * np.exp(-0.5 * (y - m) ** 2 / v) / np.sqrt(v))
                return prior * math.exp(-0.5 * K * (y - mu) ** 2)
            lo, hi = -6.0, 8.0
            Z = quad(dens, lo, hi, points=list(m), epsabs=0, epsrel=1e-12, limit=400)[0]
            Y = quad(lambda y: y * dens(y), lo, hi, points=list(m), epsabs=0, epsrel=1e-12, limit=400)[0]
            yhat = Y / Z
            ref = (yhat + pr.dp[k] * (x - c)) / pr.p[k] + pr.dc[k, 0]
            al = an.gm_agent_drift(t[k], [[x]], [[z]], pr, (w, m, v))[0, 0]
            assert al == pytest.approx(ref, rel=1e-9, abs=1e-9)
    # far from every component: still finite (log-domain responsibilities)
    assert np.all(np.isfinite(an.gm_agent_drift(0.5, [[80.0], [-80.0]], [[z], [z]], pr, (w, m, v))))
    with pytest.raises(ValueError):
        an.gm_agent_drift(T, [[0.0]], [[z]], pr, (w, m, v))


@pytest.mark.parametrize("sigma", [0.6, 1.4])
def test_drift_solves_fokker_planck_of_exact_marginal(sigma):
    """From delta_z the exact marginal is rho_t(x) = sum_k pi_k N(x; mu_k, V_k), mu_k = a z + b m_k + c,
    V_k = b^2 S_k + g; the drift must satisfy d rho/dt = -d(alpha rho)/dx + sigma^2/2 d^2 rho/dx^2 (this is
    where sigma enters).  Integrated over (-inf, x] this is an identity with no derivative left to
    discretise:  dF/dt + alpha rho - sigma^2/2 d rho/dx = 0,  F = sum_k pi_k Phi((x - mu_k)/sqrt(V_k)),
    dF/dt = -sum_k pi_k N_k [mu_k' + (x - mu_k) V_k' / (2 V_k)] with mu_k', V_k' from the protocol slopes
    (a' = p'/W, b' = q'/W, c', g' = sigma^2 (p' q + p q')/W).  Holds to rounding."""
    w, m, v = np.array([0.6, 0.4]), np.array([0.1, 1.5]), np.array([0.04, 0.09])
    z, tt0 = 3.0, 0.37
    target = (w, m, v)
    nu = PiecewiseConstant([0, 0.5, 1], [0.3, 1.0])
    t = np.array([0.0, 0.2, tt0, 0.6, T])
    x = np.linspace(-1.0, 4.0, 51)
    zs = np.full((len(x), 1), z)

    def flux_residual(sigma_drift):
        pr = an.gm_protocol(t, T=T, beta=BETA_PWC, sigma=sigma, nu=nu)
        prd = an.gm_protocol(t, T=T, beta=BETA_PWC, sigma=sigma_drift, nu=nu)
        i, W = 2, pr.W
        a, b, c, g = pr.a[i], pr.b[i], pr.c[i, 0], pr.g[i]
        da, db, dc = pr.dp[i] / W, pr.dq[i] / W, pr.dc[i, 0]
        dg = sigma ** 2 * (pr.dp[i] * pr.q[i] + pr.p[i] * pr.dq[i]) / W
        mu, V = a * z + b * m + c, b * b * v + g
        dmu, dV = da * z + db * m + dc, 2 * b * db * v + dg
        dev = x[:, None] - mu
        N = w * np.exp(-0.5 * dev ** 2 / V) / np.sqrt(2 * np.pi * V)
        rho = N.sum(axis=1)
        # the package's marginal is this mixture
        ref = an.gm_product_marginal(i, x[:, None], ([1.0], [[z]], [[0.0]]), target, pr)
        np.testing.assert_allclose(ref, rho, rtol=1e-14, atol=1e-15 * rho.max())
        rho_x = -(N * dev / V).sum(axis=1)
        dF = -(N * (dmu + dev * dV / (2 * V))).sum(axis=1)
        al = an.gm_agent_drift(tt0, x[:, None], zs, prd, target)[:, 0]
        resid = dF + al * rho - 0.5 * sigma ** 2 * rho_x
        return np.max(np.abs(resid)) / np.max(np.abs(dF))

    # rounding only: a few hundred ulps of the largest term (measured ~3e-16)
    assert flux_residual(sigma) < 1e-13
    # a drift built with a 10 % wrong sigma violates it by ~2e-2 (so the identity sees sigma)
    assert flux_residual(1.1 * sigma) > 1e-2


START = ([0.6, 0.4], [[1.6, 1.4], [4.0, 4.2]], [[0.25, 0.30], [0.49, 0.40]])
TARGET = ([0.6, 0.4], [[0.1, 0.2], [1.5, 1.3]], [[0.04, 0.05], [0.09, 0.07]])
BETA_EM = PiecewiseConstant.uniform(T, 6.0 * 0.65 ** np.arange(4))


def _em(sigma_proto, sigma_sim, nu, N=4000, n=400, seed=1):
    t = np.linspace(0.0, T, n + 1)
    pr = an.gm_protocol(t, T=T, beta=BETA_EM, sigma=sigma_proto, nu=nu, d=2)
    rng = np.random.default_rng(seed)
    w, m, v = (np.asarray(a, float) for a in START)
    k = rng.choice(len(w), size=N, p=w)
    z = m[k] + np.sqrt(v[k]) * rng.standard_normal((N, 2))
    x = z.copy()
    dt = T / n
    mid = None
    for i in range(n):
        ti = t[i] if i > 0 else 1e-9 * T  # the drift's t = 0+ limit
        dW = math.sqrt(dt) * rng.standard_normal((N, 2))
        x = x + an.gm_agent_drift(ti, x, z, pr, TARGET) * dt + sigma_sim * dW
        if i + 1 == n // 2:
            mid = x.copy()
    return pr, {n // 2: mid, n: x}


def _zscores(X, mean, cov):
    N = len(X)
    zm = (X.mean(0) - mean) / np.sqrt(np.diag(cov) / N)
    dev = X - X.mean(0)
    var = (dev ** 2).mean(0)
    zv = (var - np.diag(cov)) / np.sqrt(((dev ** 2 - var) ** 2).mean(0) / N)
    return np.concatenate([zm, zv])


M0 = np.array(START[0]) @ np.array(START[1])
M1 = np.array(TARGET[0]) @ np.array(TARGET[1])


@pytest.mark.parametrize("sigma,nu", [(0.6, lambda s: M0 * (1 - s / T) + M1 * s / T), (1.5, 0.0)])
def test_euler_maruyama_reaches_target(sigma, nu):
    """4000 agents, 400 steps, drift gm_agent_drift from z ~ start: mean and variance at T/2 and T
    equal the exact product-coupling marginal (4 Monte-Carlo sigmas)."""
    pr, snaps = _em(sigma, sigma, nu)
    for i, X in snaps.items():
        mean, cov = an.gm_product_moments(i, START, TARGET, pr)
        assert np.max(np.abs(_zscores(X, mean, cov))) < 4.0, i
    mT, cT = an.gm_product_moments(-1, START, TARGET, pr)
    assert np.allclose(mT, M1, atol=1e-14)


def test_euler_maruyama_detects_wrong_sigma():
    """Negative control: the drift built for sigma = 1 but driven with noise 1.5 misses the target
    by far more than the tolerance above (so the test above does check the sigma-dependence)."""
    pr, snaps = _em(1.0, 1.5, 0.0, N=2000, n=200)
    mean, cov = an.gm_product_moments(-1, START, TARGET, pr)
    assert np.max(np.abs(_zscores(snaps[200], mean, cov))) > 8.0


# ------------------------------------------------------------------ exact product marginal

def _box_mass(i, pr, lo, hi):
    """Exact probability of the product marginal at t_i on the square [lo, hi]^2 (components are products
    of independent normals per axis)."""
    from scipy.special import ndtr

    (w0, m0, S0), (w1, m1, S1) = ((np.asarray(a, float) for a in mix) for mix in (START, TARGET))
    tot = 0.0
    for j in range(len(w0)):
        for k in range(len(w1)):
            mu = pr.a[i] * m0[j] + pr.b[i] * m1[k] + pr.c[i]
            sd = np.sqrt(pr.a[i] ** 2 * S0[j] + pr.b[i] ** 2 * S1[k] + pr.g[i])
            tot += w0[j] * w1[k] * np.prod(ndtr((hi - mu) / sd) - ndtr((lo - mu) / sd))
    return tot


def test_product_marginal_moments_vs_monte_carlo():
    rng = np.random.default_rng(2024)
    n = 100_000
    t = np.linspace(0.0, T, 21)
    pr = an.gm_protocol(t, T=T, beta=BETA_PWC, sigma=1.3, nu=[0.5, -0.2], d=2)

    def sample(mix):
        w, m, v = (np.asarray(a, float) for a in mix)
        k = rng.choice(len(w), size=n, p=w)
        return m[k] + np.sqrt(v[k]) * rng.standard_normal((n, 2))
    X0, XT = sample(START), sample(TARGET)
    for i in (3, 10, 17):
        X = pr.a[i] * X0 + pr.b[i] * XT + pr.c[i] + math.sqrt(pr.g[i]) * rng.standard_normal((n, 2))
        mean, cov = an.gm_product_moments(i, START, TARGET, pr)
        assert np.max(np.abs(_zscores(X, mean, cov))) < 4.0
        # off-diagonal covariance (mixtures correlate the axes)
        dev = X - X.mean(0)
        prod = dev[:, 0] * dev[:, 1]
        assert abs(prod.mean() - cov[0, 1]) < 4.0 * prod.std() / math.sqrt(n)
        # the density: normalised, its mean is the closed-form mean, a box probability matches MC
        g1 = np.linspace(-4.0, 8.0, 241)
        G = np.stack(np.meshgrid(g1, g1, indexing="ij"), axis=-1).reshape(-1, 2)
        rho = an.gm_product_marginal(i, G, START, TARGET, pr)
        dA = (g1[1] - g1[0]) ** 2
        # the uniform-grid sum of this analytic, Gaussian-decaying density is spectrally accurate: its error
        # is the mass outside the box (exact, from the normal CDFs of the components) plus rounding
        outside = abs(1.0 - _box_mass(i, pr, g1[0] - 0.025, g1[-1] + 0.025))
        assert outside < 1e-12
        assert np.sum(rho) * dA == pytest.approx(1.0, rel=0, abs=1e-12 + outside)
        np.testing.assert_allclose((rho[:, None] * G).sum(0) * dA, mean, rtol=0, atol=1e-12 + 10 * outside)
        lo, hi = mean - np.array([1.0, 0.7]), mean + np.array([0.2, 0.5])
        xg, wg = np.polynomial.legendre.leggauss(60)
        u = [0.5 * (hi[j] - lo[j]) * xg + 0.5 * (hi[j] + lo[j]) for j in range(2)]
        U = np.stack(np.meshgrid(u[0], u[1], indexing="ij"), axis=-1).reshape(-1, 2)
        pbox = np.sum(np.outer(wg, wg).ravel() * an.gm_product_marginal(i, U, START, TARGET, pr)) \
            * 0.25 * np.prod(hi - lo)
        emp = np.mean(np.all((X > lo) & (X < hi), axis=1))
        assert abs(pbox - emp) < 4.0 * math.sqrt(pbox * (1 - pbox) / n)


# ------------------------------------------------------------------ mean-channel energy

def test_mean_channel_energy():
    m0, m1 = np.array([3.16, 3.19, 3.13]), np.array([0.66, 0.69, 0.63])
    # MF: linear mean, (m1 - m0)^2 / T = 2.5^2 up to the rounding of the decimal inputs
    np.testing.assert_allclose(an.gm_mean_channel_energy(T=T, beta=BETA_PWC, mean0=m0, mean1=m1), 2.5 ** 2,
                               rtol=1e-14)
    # constant beta: the existing closed form
    for beta, nu in ((3.0, 0.3), (40.0, -1.0), (1e-9, 2.0), (0.0, 0.7)):
        e = an.gm_mean_channel_energy(T=1.4, beta=beta, mean0=m0, mean1=m1, nu=nu)
        ref = [an.ia_mean_energy(T=1.4, beta=beta, mean0=a, mean1=b, nu=nu) for a, b in zip(m0, m1)]
        assert np.allclose(e, ref, rtol=1e-12), (beta, nu)
    # PWC beta: against quadrature of mean' from an independent DOP853 solution (callable beta)
    # and Gauss-Kronrod of the exact piecewise derivative
    for beta, TT in ((BETA_PWC, 1.0), (BETA_ODD, 1.3)):
        nu = np.array([0.0, 0.5, -0.3])
        e = an.gm_mean_channel_energy(T=TT, beta=beta, mean0=m0, mean1=m1, nu=nu)
        e_num = an.gm_mean_channel_energy(T=TT, beta=lambda s, b=beta: b(s), mean0=m0, mean1=m1, nu=nu)
        assert np.allclose(e, e_num, rtol=1e-9)
        pr = an.gm_protocol(np.linspace(0, TT, 3), T=TT, beta=beta)
        pq = an._PQ(TT, beta)

        def dmean2(s, i):
            _, dp, _, dq = pq(s)
            return float(((m0[i] - nu[i]) * dp[0] + (m1[i] - nu[i]) * dq[0]) / pr.W) ** 2
        for i in range(3):
            ref = quad(dmean2, 0.0, TT, args=(i,), points=list(beta.breaks[1:-1]), epsabs=0,
                       epsrel=1e-13, limit=400)[0]
            assert e[i] == pytest.approx(ref, rel=1e-11)
    # scalars in, float out; demand-response check: the exact per-zone mean-channel gap
    # int |mean_IA0'|^2 - 2.5^2 (4.0469; the paper's Monte-Carlo E_IA0 - E_MF is 3.91, 3.89, 3.85, ... for
    # d = 1, 2, 4), against an independent DOP853 shooting solution of x'' = beta x, x(0) = 3.16, x(1) = 0.66
    gap = an.gm_mean_channel_energy(T=T, beta=BETA_PWC, mean0=3.16, mean1=0.66, nu=0.0) - 2.5 ** 2
    assert isinstance(gap, float)
    assert gap == pytest.approx(_bvp_mean_energy(BETA_PWC, 3.16, 0.66) - 2.5 ** 2, rel=1e-10)


# ------------------------------------------------------------------ LQG in d dimensions

def _rot(d, seed):
    A = np.random.default_rng(seed).standard_normal((d, d))
    Qm, R = np.linalg.qr(A)
    return Qm * np.sign(np.diag(R))


@pytest.mark.parametrize("beta,kap", [(2.0, [0.0, 0.0, 0.0]), (BETA_PWC, [0.5, -0.3, 1.2]),
                                      (lambda s: 1.0 + np.sin(3 * s) ** 2, [0.2, 0.0, 0.7])])
def test_lqg_nd_rotated_equals_rotated_scalar(beta, kap):
    d, TT, sigma = 3, 1.0, 0.8
    qd, vd = np.array([1.0, 4.0, 0.3]), np.array([0.2, 0.5, 0.05])
    md, xd = np.array([0.3, -1.0, 2.0]), np.array([1.0, 0.5, -0.5])
    t = np.linspace(0.0, TT, 23)
    kw = dict(T=TT, sigma=sigma, beta=beta)
    diag = an.lqg_terminal_nd(t, Q=np.diag(qd), x_target=xd, mean0=md, cov0=np.diag(vd),
                              kappa=np.diag(kap), **kw)
    # fast path = the scalar solver per axis
    for i in range(d):
        sc = an.lq_terminal(t, q=qd[i], x_target=xd[i], mean0=md[i], var0=vd[i], kappa=kap[i], **kw)
        assert np.array_equal(diag["mean"][:, i], sc["mean"])
        assert np.array_equal(diag["cov"][:, i, i], sc["var"])
        assert np.array_equal(diag["S"][:, i, i], sc["S"])
    R = _rot(d, 7)
    rot = an.lqg_terminal_nd(t, Q=R @ np.diag(qd) @ R.T, x_target=R @ xd, mean0=R @ md,
                             cov0=R @ np.diag(vd) @ R.T, kappa=R @ np.diag(kap) @ R.T, **kw)
    tol = 1e-9
    assert np.max(np.abs(rot["mean"] - diag["mean"] @ R.T)) < tol
    assert np.max(np.abs(rot["s"] - diag["s"] @ R.T)) < tol * 10
    assert np.max(np.abs(rot["cov"] - R @ diag["cov"] @ R.T)) < tol
    assert np.max(np.abs(rot["S"] - R @ diag["S"] @ R.T)) < tol
    # the matrix route on the diagonal problem itself
    ode = an.lqg_terminal_nd(t, Q=np.diag(qd), x_target=xd, mean0=md, cov0=np.diag(vd),
                             kappa=np.diag(kap), method="ode", **kw)
    for key in ("mean", "cov", "S", "s"):
        assert np.max(np.abs(ode[key] - diag[key])) < tol * 10, key


def test_lqg_nd_mean_theorem_nondiagonal():
    """b = 0, any beta_t, full Q: mean_t = mean0 + v t with (I + Q T) v = Q (x_target - mean0)."""
    d, TT = 2, 1.5
    Q = np.array([[2.0, 0.7], [0.7, 1.0]])
    m0, xt = np.array([0.3, -1.0]), np.array([1.0, 2.0])
    cov0 = np.array([[0.3, 0.1], [0.1, 0.2]])
    t = np.linspace(0.0, TT, 31)
    r = an.lqg_terminal_nd(t, T=TT, sigma=0.9, Q=Q, x_target=xt, mean0=m0, cov0=cov0,
                           beta=PiecewiseConstant([0.0, 0.5, 1.5], [5.0, 1.0]))
    v = np.linalg.solve(np.eye(d) + Q * TT, Q @ (xt - m0))
    assert np.max(np.abs(r["mean"] - (m0 + np.outer(t, v)))) < 1e-10
    assert np.allclose(r["S"], np.transpose(r["S"], (0, 2, 1)), atol=1e-12)
    assert np.allclose(r["S"][-1], Q, atol=1e-14) and np.allclose(r["cov"][0], cov0, atol=1e-14)
    # alpha's mean is the constant velocity: -(S mean + s) = v
    assert np.max(np.abs(-(np.einsum("nij,nj->ni", r["S"], r["mean"]) + r["s"]) - v)) < 1e-9


def test_lqg_nd_nonnormal_kappa_beta0_closed_form():
    """beta = 0, non-symmetric kappa: S(t) = Phi^T (Q^-1 + G)^-1 Phi with Phi = exp(-kappa (T-t)),
    G = int_t^T exp(-kappa (T-s)) exp(-kappa^T (T-s)) ds (deterministic LQ value function), and the
    Lyapunov covariance by a finite-difference residual."""
    kappa = np.array([[0.3, 1.1], [-0.4, 0.8]])
    Q = np.array([[1.5, 0.4], [0.4, 0.9]])
    TT, sigma = 1.2, 0.7
    cov0 = np.array([[0.2, 0.05], [0.05, 0.1]])
    t = np.linspace(0.0, TT, 481)
    r = an.lqg_terminal_nd(t, T=TT, sigma=sigma, Q=Q, x_target=[0.5, -1.0], mean0=[1.0, 0.0],
                           cov0=cov0, kappa=kappa)
    x, wts = np.polynomial.legendre.leggauss(40)
    for k in (0, 150, 400):
        tau = TT - t[k]
        Phi = expm(-kappa * tau)
        s = 0.5 * tau * (x + 1.0)
        G = 0.5 * tau * sum(wi * expm(-kappa * si) @ expm(-kappa.T * si) for si, wi in zip(s, wts))
        S_ref = Phi.T @ np.linalg.inv(np.linalg.inv(Q) + G) @ Phi
        assert np.max(np.abs(r["S"][k] - S_ref)) < 1e-10
    h = t[1] - t[0]
    A = kappa + r["S"]
    dC = (r["cov"][2:] - r["cov"][:-2]) / (2 * h)
    C = r["cov"][1:-1]
    rhs = -A[1:-1] @ C - C @ np.transpose(A[1:-1], (0, 2, 1)) + sigma ** 2 * np.eye(2)
    assert np.max(np.abs(dC - rhs)) < 1e-4
