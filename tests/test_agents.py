"""Finite-population agent simulator (mfg_pde.particles.agents): grid feedback and analytic GM drift."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest
from scipy import stats

import mfg_pde as mp
from mfg_pde.particles import agents
from mfg_pde.oracles import analytic
from mfg_pde.result import MFGResult

HAS_GM = hasattr(analytic, "gm_protocol") and hasattr(analytic, "gm_agent_drift")


# ----------------------------------------------------------------------------- helpers
@dataclasses.dataclass
class LocalProtocol:
    """The GMProtocol interface (mfg_pde.oracles.analytic) for a CONSTANT beta and constant guidance nu."""

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


def local_protocol(nt=2001, T=1.0, beta=0.0, sigma=1.0, nu=0.0, d=1):
    """beta = 0: a = 1 - t/T, b = t/T, p = T - t, q = t, W = T, g = sigma^2 t (T - t)/T, c = 0 (nu=0).
    beta > 0 (w = sqrt beta): p = sinh(w (T-t))/w, q = sinh(w t)/w, W = sinh(w T)/w, c = nu (1 - a - b)."""
    t = np.linspace(0.0, T, nt)
    if beta == 0:
        p, dp, q, dq, W = T - t, -np.ones_like(t), t.copy(), np.ones_like(t), T
    else:
        w = np.sqrt(beta)
        p, dp = np.sinh(w * (T - t)) / w, -np.cosh(w * (T - t))
        q, dq = np.sinh(w * t) / w, np.cosh(w * t)
        W = np.sinh(w * T) / w
    a, b, g = p / W, q / W, sigma ** 2 * p * q / W
    with np.errstate(divide="ignore", invalid="ignore"):
        K = b ** 2 / g
    nu = np.broadcast_to(np.asarray(nu, dtype=float), (d,))
    c = (1.0 - a - b)[:, None] * nu[None]
    dc = -((dp + dq) / W)[:, None] * nu[None]
    return LocalProtocol(t, T, sigma, p, dp, q, dq, W, a, b, g, K, c, dc)


def protocol(nt=2001, T=1.0, beta=0.0, sigma=1.0, nu=0.0, d=1):
    """mfg_pde.oracles.analytic.gm_protocol when it exists (constant beta), else the local one."""
    if HAS_GM:
        return analytic.gm_protocol(np.linspace(0.0, T, nt), T=T, beta=beta, sigma=sigma, nu=nu, d=d)
    return local_protocol(nt, T, beta, sigma, nu, d)


def numpy_gm_drift(t, x, z, pr, target):
    """docs/method.md, section 'Gaussian-mixture closed form', verbatim: mu = (x - a z - c)/b, yhat = posterior
    mean under m1(y) N(y; mu, 1/K),
    alpha = [yhat + p'(x - c)]/p + c'  (p, p', q, c, c' interpolated linearly at t; a = p/W, b = q/W,
    g = sigma^2 p q / W, K = b^2/g)."""
    w, m, S = (np.asarray(v, dtype=float) for v in target)
    w = w / w.sum()
    d = x.shape[1]
    f = {k: np.interp(t, pr.t, getattr(pr, k)) for k in ("p", "dp", "q")}
    f["a"], f["b"], f["g"] = f["p"] / pr.W, f["q"] / pr.W, pr.sigma ** 2 * f["p"] * f["q"] / pr.W
    c = np.array([np.interp(t, pr.t, pr.c[:, k]) for k in range(d)])
    dc = np.array([np.interp(t, pr.t, pr.dc[:, k]) for k in range(d)])
    K = f["b"] ** 2 / f["g"]
    mu = (x - f["a"] * z - c) / f["b"]                                  # (N, d)
    var = S[None] + 1.0 / K                                             # (1, K, d)
    logw = np.log(w)[None] + stats.norm.logpdf(mu[:, None, :], m[None], np.sqrt(var)).sum(axis=2)
    resp = np.exp(logw - logw.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    post = m[None] + S[None] / var * (mu[:, None, :] - m[None])
    yhat = np.einsum("nk,nkd->nd", resp, post)
    return (yhat + f["dp"] * (x - c)) / f["p"] + dc


def mixture_moments(mix):
    w, m, v = (np.asarray(a, dtype=float) for a in mix)
    w = w / w.sum()
    mean = w @ m
    return mean, w @ (v + m ** 2) - mean ** 2


def product_moments(pr, k, start, target):
    """Exact mean / per-axis variance of the product-coupling marginal at pr.t[k] (docs/method.md, section
    'Gaussian-mixture closed form')."""
    M0, V0 = mixture_moments(start)
    M1, V1 = mixture_moments(target)
    a, b, g = pr.a[k], pr.b[k], pr.g[k]
    return a * M0 + b * M1 + pr.c[k], a * a * V0 + b * b * V1 + g


START = ([0.6, 0.4], [[-1.0, 0.5], [1.5, -0.5]], [[0.20, 0.30], [0.30, 0.15]])
TARGET = ([0.3, 0.5, 0.2], [[2.0, 1.0], [3.0, -1.0], [2.5, 0.0]], [[0.05, 0.10], [0.08, 0.04], [0.10, 0.10]])


@pytest.fixture(scope="module")
def lqg_fine():
    """The lqg case on a grid fine enough that the PDE's first-order bias (~2e-3 in W1) sits below
    the Monte-Carlo error of the largest agent population used here."""
    return mp.cases.get("lqg").run({"N": 1600, "Nt": 400, "L": 3.2}).result


def synthetic_result(grid, Nt, u_fn, T=1.0, sigma=0.5, params=None):
    t = np.linspace(0.0, T, Nt + 1)
    xs = grid.mesh()
    u = np.stack([np.broadcast_to(u_fn(*xs, tn), grid.shape) for tn in t]).astype(float)
    return MFGResult(grid=grid, t=t, u=u, m=np.zeros_like(u), params={"sigma": sigma, **(params or {})})


# ----------------------------------------------------------------------------- generator, sampling, W1
def test_agent_normals_are_standard_normal():
    z = agents.agent_normals(1000, 400, seed=7).ravel()
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    assert stats.kstest(z[:200000], "norm").pvalue > 1e-3
    tail = np.mean(np.abs(z) > 3.6541528853610088)              # the ziggurat's tail branch
    assert abs(tail - 2 * stats.norm.sf(3.6541528853610088)) < 6 * np.sqrt(2.6e-4 / z.size)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(z.size)


def test_sample_density_1d_2d():
    g1 = mp.Grid([(-4, 4)], 160)
    m1 = mp.gaussian_mixture(g1, [0.7, 0.3], [-1.0, 1.5], [0.5, 0.4])
    x = agents.sample_density(g1, m1, 100000, seed=1)
    assert x.shape == (100000, 1)
    assert abs(x.mean() - g1.mean(m1)[0]) < 5 * x.std() / np.sqrt(len(x))
    assert abs(x.var() - g1.covariance(m1)[0, 0]) < 0.02
    assert agents.w1_to_density(x[:, 0], g1, m1) < 0.02
    g2 = mp.Grid([(-3, 3), (-2, 2)], (60, 40))
    m2 = mp.gaussian(g2, [0.5, -0.3], [0.6, 0.4])
    y = agents.sample_density(g2, m2, 100000, seed=2)
    assert np.allclose(y.mean(axis=0), g2.mean(m2), atol=0.01)
    assert np.allclose(np.cov(y, rowvar=False, bias=True), g2.covariance(m2), atol=0.01)


def test_w1_to_density_exact():
    grid = mp.Grid([(-2, 2)], 40)
    m = mp.gaussian(grid, 0.2, 0.5)
    xs = np.array([-0.7, 0.1, 0.15, 0.9, 2.5])                   # one sample right of the box
    fine = np.linspace(-3, 3, 600001)
    edges = np.linspace(-2, 2, 41)
    F = np.interp(fine, edges, np.concatenate([[0.0], np.cumsum(m) * grid.spacing[0]]))
    Fn = np.searchsorted(np.sort(xs), fine, side="right") / len(xs)
    brute = np.trapezoid(np.abs(F - Fn), fine) if hasattr(np, "trapezoid") else np.trapz(np.abs(F - Fn), fine)
    assert agents.w1_to_density(xs, grid, m) == pytest.approx(brute, abs=2e-5)
    # a point mass at x against the uniform density on [0, 1]: W1 = x^2 - x + 1/2
    gu = mp.Grid([(0, 1)], 10)
    assert agents.w1_to_density([0.3], gu, np.ones(10)) == pytest.approx(0.09 - 0.3 + 0.5, abs=1e-12)


def test_mixture_sampling_labels():
    x, lab = agents.sample_gaussian_mixture(START, 50000, seed=3)
    assert x.shape == (50000, 2) and set(np.unique(lab)) == {0, 1}
    assert abs(np.mean(lab == 0) - 0.6) < 0.01
    assert np.allclose(x[lab == 1].mean(axis=0), [1.5, -0.5], atol=0.02)
    assert np.allclose(x[lab == 0].var(axis=0), [0.20, 0.30], atol=0.02)


# ----------------------------------------------------------------------------- reproducibility
def test_reproducible_with_seed_and_thread_count(lqg_fine):
    r1 = agents.simulate_feedback(lqg_fine, N=3000, n_steps=50, seed=11)
    r2 = agents.simulate_feedback(lqg_fine, N=3000, n_steps=50, seed=11)
    r3 = agents.simulate_feedback(lqg_fine, N=3000, n_steps=50, seed=12)
    assert np.array_equal(r1.x, r2.x) and np.array_equal(r1.E, r2.E) and np.array_equal(r1.mean, r2.mean)
    assert not np.allclose(r1.x, r3.x)
    pr = protocol(beta=0.0, d=2)
    g1 = agents.simulate_gm(pr, TARGET, start=START, N=2000, n_steps=50, seed=5)
    nthreads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        g2 = agents.simulate_gm(pr, TARGET, start=START, N=2000, n_steps=50, seed=5)
        r4 = agents.simulate_feedback(lqg_fine, N=3000, n_steps=50, seed=11)
    finally:
        numba.set_num_threads(nthreads)
    assert np.array_equal(g1.x, g2.x) and np.array_equal(g1.cov, g2.cov) and np.array_equal(g1.E, g2.E)
    assert np.array_equal(r1.x, r4.x) and np.array_equal(r1.cov, r4.cov)


# ----------------------------------------------------------------------------- grid feedback
def test_feedback_lqg_mean_variance_paths(lqg_fine):
    """Agents driven by -grad u reproduce the PDE's mean and variance paths within Monte-Carlo error
    (plus the PDE's own measured discretisation error against the closed form)."""
    res = lqg_fine
    run = agents.simulate_feedback(res, N=40000, n_steps=400, seed=3)
    assert run.n_steps == 400 and run.t[-1] == pytest.approx(1.0)
    from mfg_pde.cases.lqg import lq_oracle
    ref = lq_oracle(res.params, res.t)
    pm, pv = res.mean()[:, 0], res.covariance()[:, 0, 0]
    am = np.interp(res.t, run.t, run.mean[:, 0])
    av = np.interp(res.t, run.t, run.cov[:, 0, 0])
    se_m = np.sqrt(av / run.N)
    se_v = av * np.sqrt(2.0 / run.N)
    bias_m = np.max(np.abs(pm - ref["mean"]))
    bias_v = np.max(np.abs(pv - ref["var"]))
    assert np.all(np.abs(am - pm) <= 4.5 * se_m + bias_m)
    assert np.all(np.abs(av - pv) <= 4.5 * se_v + bias_v)
    # against the closed form directly (Euler with 400 steps: its bias is below the MC error here)
    assert np.all(np.abs(am - ref["mean"]) <= 4.5 * se_m + 1e-3)
    assert np.all(np.abs(av - ref["var"]) <= 4.5 * se_v + 2e-3)
    # energy: E(t) increasing, E/2 is the cost
    assert np.all(np.diff(run.E) >= 0) and run.cost == pytest.approx(run.energy / 2)


def test_feedback_w1_falls_like_inverse_sqrt_N(lqg_fine):
    """W1(agents' terminal law, PDE terminal density) ~ N^-1/2 over N = 250 .. 16000."""
    res = lqg_fine
    Ns = [250, 1000, 4000, 16000]
    w1 = [np.mean([agents.simulate_feedback(res, N=n, n_steps=200, seed=1000 + s).w1(res.grid, res.m[-1])
                   for s in range(8)]) for n in Ns]
    slope = np.polyfit(np.log(Ns), np.log(w1), 1)[0]
    assert -0.7 <= slope <= -0.3, (slope, w1)
    assert w1[-1] < 0.01


def test_feedback_2d_3d_interpolation_exact_for_ou():
    """u = S |x|^2 / 2 (alpha = -S x, linear: the multilinear interpolation is exact inside the box):
    the agents follow the OU moments mean0 e^{-S t}, var0 e^{-2 S t} + sigma^2 (1 - e^{-2 S t}) / (2 S)."""
    S, sigma, T = 1.2, 0.6, 1.0
    for ndim, n in ((2, 30), (3, 16)):
        grid = mp.Grid([(-4, 4)] * ndim, n)
        res = synthetic_result(grid, 10, lambda *a: 0.5 * S * sum(x * x for x in a[:-1]), T=T, sigma=sigma)
        rng = np.random.default_rng(ndim)
        x0 = 0.8 + 0.3 * rng.standard_normal((30000, ndim))
        run = agents.simulate_feedback(res, x0=x0, n_steps=400, seed=1)
        mean_t = x0.mean(axis=0)[None] * np.exp(-S * run.t)[:, None]
        var_t = (x0.var(axis=0)[None] * np.exp(-2 * S * run.t)[:, None]
                 + sigma ** 2 * (1 - np.exp(-2 * S * run.t))[:, None] / (2 * S))
        var_a = np.diagonal(run.cov, axis1=1, axis2=2)
        assert np.max(np.abs(run.mean - mean_t)) < 4.5 * np.sqrt(var_t.max() / run.N) + 3e-3
        assert np.max(np.abs(var_a - var_t)) < 4.5 * var_t.max() * np.sqrt(2 / run.N) + 3e-3
        offdiag = run.cov[-1] - np.diag(np.diag(run.cov[-1]))
        assert np.max(np.abs(offdiag)) < 5 * var_t.max() / np.sqrt(run.N)
        # energy rate = S^2 E|X|^2
        e2 = S ** 2 * (np.sum(mean_t ** 2, axis=1) + np.sum(var_t, axis=1))[:-1]
        assert np.allclose(run.energy_rate, e2, rtol=0.03)


def test_feedback_base_drift_linear_and_tabulated():
    """u = 0 with b = -kappa x: OU through the base drift alone (LinearDrift, a number, a Drift tabulated
    on the grid, and 'auto' from the params); control energy 0."""
    kappa, sigma = 0.8, 0.5
    grid = mp.Grid([(-4, 4)], 200)
    res = synthetic_result(grid, 20, lambda x, t: 0.0 * x, sigma=sigma, params={"kappa": kappa})
    x0 = np.full((20000, 1), 1.0)
    runs = [agents.simulate_feedback(res, x0=x0, n_steps=200, seed=4, drift=dr)
            for dr in ("auto", kappa, mp.LinearDrift(kappa), mp.Drift(lambda x, t: [-kappa * x]))]
    # 'auto' also reads MFGProblem.describe()'s drift record (what mp.solve stores in result.params)
    res_p = synthetic_result(grid, 20, lambda x, t: 0.0 * x, sigma=sigma,
                             params={"drift": mp.LinearDrift(kappa).describe()})
    runs.append(agents.simulate_feedback(res_p, x0=x0, n_steps=200, seed=4))
    for run in runs:
        assert np.max(np.abs(run.mean[:, 0] - np.exp(-kappa * run.t))) < 0.01
        assert run.cov[-1, 0, 0] == pytest.approx(sigma ** 2 * (1 - np.exp(-2 * kappa)) / (2 * kappa), rel=0.04)
        assert run.energy == 0.0
    assert np.allclose(runs[0].x, runs[2].x) and np.allclose(runs[0].x, runs[3].x, atol=1e-9)
    assert np.array_equal(runs[0].x, runs[4].x)
    none = agents.simulate_feedback(res, x0=x0, n_steps=200, seed=4, drift=None)
    assert abs(none.mean[-1, 0] - 1.0) < 0.01


def test_feedback_walls_and_periodic():
    grid = mp.Grid([(0, 1)], 20)
    res = synthetic_result(grid, 4, lambda x, t: -3.0 * x, sigma=0.3)          # alpha = +3: into the wall
    run = agents.simulate_feedback(res, x0=np.full((5000, 1), 0.9), n_steps=100, seed=2)
    assert np.all((run.x >= 0) & (run.x <= 1))
    assert run.mean[-1, 0] > 0.8
    gp = mp.Grid([(0, 2)], 20, bc="periodic")
    resp = synthetic_result(gp, 4, lambda x, t: 0.0 * x, sigma=0.0)
    resp.alpha = np.full((5, 20, 1), 0.75)                             # constant velocity 0.75
    x0 = np.linspace(0.05, 1.95, 64)[:, None]
    run = agents.simulate_feedback(resp, x0=x0, n_steps=10, seed=0)
    assert np.allclose(run.x[:, 0], np.mod(x0[:, 0] + 0.75, 2.0))
    assert np.allclose(run.energy, 0.75 ** 2)


def test_feedback_planning_bridge_reaches_m1():
    """Agents steered by the planning (lqg-bridge) feedback end on m1; their energy is the closed form's."""
    res = mp.cases.get("lqg-bridge").run({"N": 400, "Nt": 400}).result
    p = res.params
    run = agents.simulate_feedback(res, N=40000, n_steps=400, seed=6, record=3)
    ref = analytic.lqg_bridge(run.t, T=p["T"], sigma=p["sigma"], mean0=p["mean0"], var0=p["std0"] ** 2,
                              mean1=p["mean1"], var1=p["std1"] ** 2, beta=p["beta"])
    assert np.max(np.abs(run.mean[:, 0] - ref["mean"])) < 0.02            # first-order PDE feedback, h = 0.025
    assert np.max(np.abs(run.cov[:, 0, 0] - ref["var"])) < 0.015
    assert run.w1(res.grid, res.m[-1]) < 0.01
    assert run.energy == pytest.approx(float(ref["energy"]), rel=0.02)
    assert run.paths.shape == (401, 3, 1) and np.array_equal(run.paths[-1], run.x[:3])
    assert np.array_equal(run.paths[0], run.x0[:3])


def test_feedback_bad_input(lqg_fine):
    with pytest.raises(ValueError, match="outside the box"):
        agents.simulate_feedback(lqg_fine, x0=np.array([[9.0]]))
    with pytest.raises(ValueError, match="give N"):
        agents.simulate_feedback(lqg_fine)
    with pytest.raises(ValueError, match="coordinates"):
        agents.simulate_feedback(lqg_fine, x0=np.zeros((3, 2)))


# ----------------------------------------------------------------------------- Gaussian-mixture drift
@pytest.mark.parametrize("beta,nu", [(0.0, 0.0), (3.0, [0.4, -0.7])])
def test_gm_drift_matches_numpy_formula(beta, nu):
    pr = local_protocol(nt=801, beta=beta, nu=nu, d=2)
    rng = np.random.default_rng(0)
    z = np.array([[-1.0, 0.5]]) + 0.5 * rng.standard_normal((300, 2))
    for t in (0.013, 0.25, 0.5, 0.8125, 0.97, 0.999):
        x = (1 - t) * z + t * np.array([2.5, 0.0]) + 0.4 * rng.standard_normal((300, 2))
        got = agents.gm_drift(t, x, z, pr, TARGET)
        want = numpy_gm_drift(t, x, z, pr, TARGET)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-9 * (1 + np.abs(want).max()))
        if HAS_GM:
            other = analytic.gm_agent_drift(t, x, z, pr, TARGET)
            assert np.allclose(got, other, rtol=1e-9, atol=1e-9 * (1 + np.abs(want).max()))
    # t = 0: the posterior is the prior (K = 0): yhat = the target mean
    z0 = z[:5]
    a0 = agents.gm_drift(0.0, z0, z0, pr, TARGET)
    ybar = mixture_moments(TARGET)[0]
    assert np.allclose(a0, (ybar + pr.dp[0] * (z0 - pr.c[0])) / pr.p[0] + pr.dc[0])


def test_gm_transport_beta0_reaches_target_mixture():
    """beta = 0 protocol: a start mixture is carried to the target mixture; the mean / variance paths
    match the exact product-coupling marginals (docs/method.md, section 'Gaussian-mixture closed form') within
    Monte-Carlo error."""
    pr = protocol(nt=2001, beta=0.0, d=2)
    run = agents.simulate_gm(pr, TARGET, start=START, N=40000, n_steps=400, seed=21)
    N = run.N
    M1, V1 = mixture_moments(TARGET)
    m_T, C_T = run.terminal_mean(), run.terminal_cov()
    assert np.all(np.abs(m_T - M1) < 4.5 * np.sqrt(V1 / N))
    assert np.all(np.abs(np.diag(C_T) - V1) < 4.5 * np.sqrt(2 / N) * V1 + 0.01 * V1)
    # terminal component structure: the law of X_T is the target mixture (W1 per axis against it)
    for ax in range(2):
        w = np.asarray(TARGET[0]) / np.sum(TARGET[0])
        cdf = lambda y: sum(wk * stats.norm.cdf(y, TARGET[1][k][ax], np.sqrt(TARGET[2][k][ax]))  # noqa: E731
                            for k, wk in enumerate(w))
        assert stats.kstest(run.x[:4000, ax], cdf).pvalue > 1e-3
    for k in (400, 1000, 1600):
        mean_e, var_e = product_moments(pr, k, START, TARGET)
        i = int(round(pr.t[k] / run.dt))
        assert np.all(np.abs(run.mean[i] - mean_e) < 4.5 * np.sqrt(var_e / N) + 2e-3)
        assert np.all(np.abs(np.diag(run.cov[i]) - var_e) < 4.5 * np.sqrt(2 / N) * var_e + 5e-3)
    # per-label energies average to the total
    counts = run.label_counts
    assert np.sum(counts) == N and len(counts) == 2
    assert np.dot(counts, run.E_by_label[:, -1]) / N == pytest.approx(run.energy, rel=1e-12)
    assert set(run.energy_by_label()) == {0, 1}


def test_guidance_shift_closed_form():
    beta, nu = 4.0, np.array([0.7, -0.2])
    pr0 = local_protocol(nt=4001, beta=beta, nu=0.0, d=2)
    ref = local_protocol(nt=4001, beta=beta, nu=nu, d=2)
    c, dc = agents.guidance_shift(pr0, beta, nu)
    assert np.max(np.abs(c - ref.c)) < 1e-6 and np.max(np.abs(dc - ref.dc)) < 1e-5
    if HAS_GM:
        pwc = mp.PiecewiseConstant.uniform(1.0, 12 * 0.65 ** np.arange(8))
        t = np.linspace(0, 1, 4001)
        line = (1 - t)[:, None] * np.array([[3.16]]) + t[:, None] * np.array([[0.66]])
        want = analytic.gm_protocol(t, T=1.0, beta=pwc, nu=line, d=1)
        got = agents.with_guidance(analytic.gm_protocol(t, T=1.0, beta=pwc, d=1), pwc, line)
        assert np.max(np.abs(got.c - want.c)) < 1e-5 and np.max(np.abs(got.dc - want.dc)) < 1e-3


def test_mf_guidance_line_and_self_consistent_iteration():
    """MF guidance: the population mean is the linear interpolant of the end means; the damped
    self-consistent iteration nu <- (1 - theta) nu + theta mean_emp converges to that line."""
    beta = 4.0
    pr = protocol(nt=1001, beta=beta, d=2)
    mf = agents.simulate_gm(pr, TARGET, start=START, N=20000, n_steps=250, seed=8, guidance="mf", beta=beta)
    M0, V0 = mixture_moments(START)
    M1, V1 = mixture_moments(TARGET)
    line = (1 - mf.t)[:, None] * M0[None] + mf.t[:, None] * M1[None]
    se = np.sqrt(np.diagonal(mf.cov, axis1=1, axis2=2).max() / mf.N)
    assert np.max(np.abs(mf.mean - line)) < 4.5 * se + 0.01
    sc = agents.simulate_gm(pr, TARGET, start=START, N=20000, n_steps=250, seed=8, guidance="mf", beta=beta,
                            self_consistent=True, iterations=8, damping=0.8, nu0=0.0)
    err = sc.guidance_error
    assert err[0] > 1.0                                   # from nu = 0, far from the line
    assert np.all(np.diff(err[:5]) < 0)                    # contracts while above the MC floor
    assert err[-1] < 0.03 and err[-1] < 0.02 * err[0]
    assert np.max(np.abs(sc.mean - line)) < 4.5 * se + 0.03
    assert sc.energy == pytest.approx(mf.energy, rel=0.01)


def test_energy_identity_ia_vs_mf():
    """E_IA(nu) - E_MF = int |mean_IA'|^2 - |mean1 - mean0|^2 / T (docs/method.md, section 'Independent agents
    and the energy identity'), summed over axes;
    common random numbers make the fluctuation energies cancel."""
    beta, nu = 4.0, np.array([0.0, 0.0])
    pr = protocol(nt=2001, beta=beta, nu=nu, d=2)
    kw = dict(start=START, N=20000, n_steps=1000, seed=13)     # Euler bias of the gap ~0.3 % here
    ia = agents.simulate_gm(pr, TARGET, **kw)
    mf = agents.simulate_gm(pr, TARGET, guidance="mf", beta=beta, **kw)
    M0, _ = mixture_moments(START)
    M1, _ = mixture_moments(TARGET)
    gap = sum(analytic.energy_identity_gap(T=1.0, beta=beta, mean0=M0[k], mean1=M1[k], nu=nu[k]) for k in range(2))
    assert gap > 1.0
    assert ia.energy - mf.energy == pytest.approx(gap, rel=0.03)      # MC scatter ~1 % at N = 20000
    assert ia.cost - mf.cost == pytest.approx(gap / 2, rel=0.03)


@pytest.mark.skipif(not HAS_GM, reason="mfg_pde.oracles.analytic.gm_protocol not available")
def test_gm_energy_matches_exact_sampling():
    """The Euler-Maruyama energy path agrees with int E|alpha(t, X_t; z)|^2 dt computed by sampling the
    exact product-coupling marginal X_t = a z + b y + c + sqrt(g) xi and the numpy reference drift."""
    pwc = mp.PiecewiseConstant.uniform(1.0, 12 * 0.65 ** np.arange(8))
    start = ([0.6, 0.4], [[1.6], [5.5]], [[0.25], [0.49]])
    target = ([0.6, 0.4], [[0.1], [1.5]], [[0.04], [0.09]])
    pr = analytic.gm_protocol(np.linspace(0, 1, 2001), T=1.0, beta=pwc, nu=0.0, d=1)
    run = agents.simulate_gm(pr, target, start=start, N=40000, n_steps=500, seed=2)
    M = 40000
    z, _ = agents.sample_gaussian_mixture(start, M, seed=10)
    y, _ = agents.sample_gaussian_mixture(target, M, seed=11)
    rng = np.random.default_rng(12)
    for t in (0.1, 0.5, 0.9):
        k = int(round(t * 2000))
        x = pr.a[k] * z + pr.b[k] * y + pr.c[k] + np.sqrt(pr.g[k]) * rng.standard_normal((M, 1))
        exact = np.mean(analytic.gm_agent_drift(pr.t[k], x, z, pr, target) ** 2)
        sim = run.energy_rate[int(round(t * 500))]
        assert sim == pytest.approx(exact, rel=0.05)


def test_gm_bad_input():
    pr = local_protocol(nt=101, d=1)
    with pytest.raises(ValueError, match="give x0"):
        agents.simulate_gm(pr, ([1.0], [[0.0]], [[1.0]]))
    with pytest.raises(ValueError, match="guidance"):
        agents.simulate_gm(pr, ([1.0], [[0.0]], [[1.0]]), np.zeros((10, 1)), guidance="bogus")
    with pytest.raises(ValueError, match="beta"):
        agents.simulate_gm(pr, ([1.0], [[0.0]], [[1.0]]), np.zeros((10, 1)), guidance="mf")
