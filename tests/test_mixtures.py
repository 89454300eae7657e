"""Diagonal Gaussian mixtures (mfg_pde.model.mixtures) and the one Gaussian-mixture drift
(mfg_pde.particles.gm_drift) that the oracle, the agents and the demand-response energies share."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

import mfg_pde as mp
from mfg_pde.model.mixtures import DiagonalMixture, as_mixture, normalised_weights
from mfg_pde.oracles import analytic
from mfg_pde.particles import agents, gm_drift
from mfg_pde.studies import demand_response as dr

# hand-computed example: mean = (3, -1); E[y0^2] = .25 (1 + 0) + .75 (3 + 16) = 14.5, E[y1^2] = .25 (2 + 4)
# + .75 (.5 + 4) = 4.875, E[y0 y1] = .75 * 4 * (-2) = -6  ->  cov = [[5.5, -3], [-3, 3.875]]
W2, M2, V2 = [1.0, 3.0], [[0.0, 2.0], [4.0, -2.0]], [[1.0, 2.0], [3.0, 0.5]]


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("mix,match", [
    (([0.5, -0.1], M2, V2), "weights"),                              # negative weight
    (([0.0, 0.0], M2, V2), "weights"),                               # zero sum
    (([1.0, np.nan], M2, V2), "weights"),                            # not finite
    ((W2, M2, [[1.0, -2.0], [3.0, 0.5]]), r"variances\[0, 1\]"),    # negative variance
    ((W2, M2, [[1.0, 2.0], [np.inf, 0.5]]), r"variances\[1, 0\]"),  # infinite variance
    ((W2, [[0.0, 2.0], [4.0, -2.0], [1.0, 1.0]], V2), "means"),      # 3 mean rows for 2 weights
    ((W2, M2, [[1.0, 2.0, 3.0], [3.0, 0.5, 1.0]]), "variances"),    # 3 variance columns, d = 2
    ((W2, [[0.0, np.nan], [4.0, -2.0]], V2), "means"),               # non-finite mean
])
def test_invalid_mixtures_raise_naming_the_parameter(mix, match):
    with pytest.raises(ValueError, match=match):
        as_mixture(mix)
    with pytest.raises(ValueError, match=match):
        DiagonalMixture(*mix)
    with pytest.raises(ValueError, match="^target"):                # the caller's name for the mixture
        as_mixture(mix, name="target")


def test_zero_variance_is_a_point_mass_unless_a_density_is_needed():
    pt = as_mixture(([1.0], [[0.3, -0.2]], [[0.0, 0.5]]))           # the oracle's point starts delta_z
    assert pt.variances.tolist() == [[0.0, 0.5]]
    with pytest.raises(ValueError, match=r"target variances must be finite and > 0; variances\[0, 0\] = 0.0"):
        as_mixture(pt, allow_point_masses=False, name="target")
    with pytest.raises(ValueError, match="target variances"):
        dr.Scenario(name="x", d=1, start=([1.0], [0.0], [1.0]), target=([1.0], [0.0], [0.0]),
                    beta=dr.paper_beta())
    with pytest.raises(ValueError, match="variances"):
        as_mixture(([1.0], [0.0], [-1e-3]))                            # negative: never


def test_wrong_forms_raise():
    with pytest.raises(ValueError, match="a Gaussian mixture is"):
        as_mixture([1.0, 2.0])
    with pytest.raises(ValueError, match="lacks"):
        as_mixture({"weights": [1.0], "means": [0.0]})
    with pytest.raises(ValueError, match="columns"):
        as_mixture((W2, M2, V2), d=3)                                   # d = 2 mixture asked for d = 3
    with pytest.raises(ValueError, match="weights"):
        mp.gaussian_mixture(mp.Grid([(-3, 3)], 60), [1.0, -1.0], [0, 1], [0.5, 0.5])


# ----------------------------------------------------------------------------- normalisation, forms
def test_normalisation_and_forms():
    mix = as_mixture((W2, M2, V2))
    np.testing.assert_array_equal(mix.weights, [0.25, 0.75])
    assert mix.K == 2 and mix.d == 2
    np.testing.assert_array_equal(normalised_weights([3, 1]), [0.75, 0.25])
    assert as_mixture(mix) is mix                                       # no second normalisation
    assert as_mixture(mix, 2) is mix
    w, m, v = mix                                                       # unpacks like the tuple it replaces
    assert w is mix.weights and m is mix.means and v is mix.variances
    for form in ({"weights": W2, "means": M2, "variances": V2}, [W2, M2, V2], DiagonalMixture(W2, M2, V2),
                 type("Obj", (), {"weights": W2, "means": M2, "variances": V2})()):
        other = as_mixture(form)
        for a, b in zip(other, mix):
            np.testing.assert_array_equal(a, b)
    # broadcasting: (K,) means and a scalar variance to d = 3; a K = 1 row; per-axis variances
    b = as_mixture(([1, 1], [0.0, 2.0], 0.5), d=3)
    np.testing.assert_array_equal(b.means, [[0.0] * 3, [2.0] * 3])
    np.testing.assert_array_equal(b.variances, np.full((2, 3), 0.5))
    one = as_mixture(([2.0], [1.0, 2.0], [0.1, 0.2]))
    assert one.means.shape == (1, 2) and one.weights.tolist() == [1.0]
    per_axis = as_mixture(([1, 1, 2], [[0, 0], [1, 1], [2, 2]], [0.1, 0.2]))   # (d,) variances, K = 3 != d
    np.testing.assert_array_equal(per_axis.variances, [[0.1, 0.2]] * 3)
    per_comp = as_mixture(([1, 1], [[0, 0], [1, 1]], [0.1, 0.2]))              # (K,) read first when K = d
    np.testing.assert_array_equal(per_comp.variances, [[0.1, 0.1], [0.2, 0.2]])
    lifted = as_mixture(as_mixture(([1, 3], [0.0, 1.0], [0.5, 0.2])), d=2)      # d = 1 instance broadcast
    assert lifted.means.shape == (2, 2) and lifted.variances.shape == (2, 2)
    np.testing.assert_array_equal(lifted.weights, [0.25, 0.75])
    assert agents.mixture(([1, 3], [0.0, 1.0], [0.5, 0.2])).weights.tolist() == [0.25, 0.75]


def test_mean_and_covariance_hand_computed():
    mix = as_mixture((W2, M2, V2))
    np.testing.assert_allclose(mix.mean(), [3.0, -1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(mix.covariance(), [[5.5, -3.0], [-3.0, 3.875]], rtol=0, atol=1e-14)
    np.testing.assert_allclose(mix.cov_diag(), [5.5, 3.875], rtol=0, atol=1e-14)
    np.testing.assert_allclose(agents.mixture_mean((W2, M2, V2)), [3.0, -1.0], rtol=0, atol=1e-15)
    # the oracle's product-coupling moments at t = T are the target's (a = 0, b = 1, g = 0, c = 0)
    pr = analytic.gm_protocol(np.linspace(0.0, 1.0, 11), T=1.0, beta=2.0, d=2)
    M, C = analytic.gm_product_moments(10, ([1.0], [[0.0, 0.0]], [[0.0, 0.0]]), (W2, M2, V2), pr)
    np.testing.assert_allclose(M, [3.0, -1.0], atol=1e-14)
    np.testing.assert_allclose(C, [[5.5, -3.0], [-3.0, 3.875]], atol=1e-13)


def test_sampling_matches_moments():
    mix = as_mixture((W2, M2, V2))
    n = 200000
    x, lab = mix.sample(n, seed=3)
    assert x.shape == (n, 2) and lab.dtype == np.int64
    assert abs(np.mean(lab == 1) - 0.75) < 5 * np.sqrt(0.75 * 0.25 / n)
    se = np.sqrt(np.diag(mix.covariance()) / n)
    assert np.all(np.abs(x.mean(axis=0) - mix.mean()) < 5 * se)
    np.testing.assert_allclose(np.cov(x, rowvar=False), mix.covariance(), rtol=0.03, atol=0.03)
    y = mix.sample_component(1, 50000, seed=4)
    assert np.all(np.abs(y.mean(axis=0) - mix.means[1]) < 5 * np.sqrt(mix.variances[1] / 50000))
    # the agents' sampler is this one
    xa, la = agents.sample_gaussian_mixture((W2, M2, V2), 1000, seed=9)
    xb, lb = mix.sample(1000, seed=9)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(la, lb)


# ----------------------------------------------------------------------------- the drift, against numpy
TARGET = ([0.3, 0.5, 0.2], [[2.0, 1.0], [3.0, -1.0], [2.5, 0.0]], [[0.05, 0.10], [0.08, 0.04], [0.10, 0.10]])


def numpy_drift(t, x, z, pr, target):
    """alpha = [yhat + p'(x - c)]/p + c' with yhat the posterior mean of Y ~ target given e = x - a z - c
    = b Y + N(0, g I), written in the precision form (independent of the package's Kalman form):
    responsibilities ~ pi_j N(e; b m_j, b^2 S_j + g) (scipy logpdf), component posterior mean
    (m_j / S_j + b e / g) / (1 / S_j + b^2 / g)."""
    w, m, S = (np.asarray(a, dtype=float) for a in target)
    w = w / w.sum()
    f = {k: np.interp(t, pr.t, getattr(pr, k)) for k in ("p", "dp", "q")}
    a, b = f["p"] / pr.W, f["q"] / pr.W
    g = pr.sigma ** 2 * f["p"] * f["q"] / pr.W
    d = x.shape[1]
    c = np.array([np.interp(t, pr.t, pr.c[:, k]) for k in range(d)])
    dc = np.array([np.interp(t, pr.t, pr.dc[:, k]) for k in range(d)])
    e = x - a * z - c
    logr = np.log(w)[None] + stats.norm.logpdf(e[:, None, :], b * m[None], np.sqrt(b * b * S + g)[None]).sum(axis=2)
    r = np.exp(logr - logr.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
    post = (m[None] / S[None] + b * e[:, None, :] / g) / (1.0 / S[None] + b * b / g)
    yhat = np.einsum("nk,nkd->nd", r, post)
    return (yhat + f["dp"] * (x - c)) / f["p"] + dc


@pytest.fixture(scope="module")
def proto():
    beta = mp.PiecewiseConstant.uniform(1.0, [6.0, 3.0, 1.0, 0.5])
    return analytic.gm_protocol(np.linspace(0.0, 1.0, 161), T=1.0, beta=beta, sigma=0.9, nu=[0.4, -0.3], d=2)


def test_drift_matches_numpy_posterior_mean(proto):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 2)) * 0.8
    for t in (0.01, 0.2, 0.4375, 0.61, 0.9):                             # grid nodes and between them
        x = (1 - t) * z + t * np.array([2.6, 0.0]) + rng.normal(size=(500, 2)) * 0.7
        want = numpy_drift(t, x, z, proto, TARGET)
        scale = 1.0 + np.abs(want).max()
        for got in (gm_drift.gm_drift(t, x, z, proto, TARGET), agents.gm_drift(t, x, z, proto, TARGET),
                    analytic.gm_agent_drift(t, x, z, proto, TARGET)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-11 * scale)
    # the check sees the formula: a 5 % error in sigma (the observation noise g) moves the drift far beyond
    # the tolerance above
    wrong = numpy_drift(0.9, x, z, dataclasses.replace(proto, sigma=0.9 * 1.05), TARGET)
    assert np.max(np.abs(wrong - want)) > 1e-3


def test_drift_at_t0_is_the_prior_mean(proto):
    z = np.array([[0.3, -0.1], [1.0, 2.0]])
    got = gm_drift.gm_drift(0.0, z, z, proto, TARGET)
    ybar = as_mixture(TARGET).mean()
    np.testing.assert_allclose(got, (ybar + proto.dp[0] * (z - proto.c[0])) / proto.p[0] + proto.dc[0], rtol=1e-14)


def test_zero_weight_component_is_ignored(proto):
    """log 0 = -inf: a component of weight 0 never takes over, even where the others are ~1e4 nats away."""
    far = ([0.5, 0.5, 0.0], [[2.0, 1.0], [3.0, -1.0], [-40.0, 30.0]], [[0.05, 0.1], [0.08, 0.04], [0.1, 0.1]])
    two = ([0.5, 0.5], far[1][:2], far[2][:2])
    t = 0.9
    x = np.array([[-30.0, 25.0], [2.0, 0.0]])
    z = np.zeros((2, 2))
    np.testing.assert_array_equal(gm_drift.gm_drift(t, x, z, proto, far), gm_drift.gm_drift(t, x, z, proto, two))


def test_energy_kernel_uses_the_same_drift():
    """The demand-response energy kernel (tables on the protocol's nodes, residual passed in) gives
    sum_n w_n |alpha(t_n, X_n; Z)|^2 with alpha the numpy posterior-mean drift above."""
    sc = dr.zone_scenario(2)
    tq, wq, sub, edges = dr.quadrature_nodes(sc, 2, 1)
    tt = np.concatenate([[0.0], tq, [1.0]])
    idx = np.arange(1, len(tt) - 1)
    pr0 = sc.protocol(tt, np.zeros(2))
    rng = np.random.default_rng(5)
    n = 40
    Z = sc.start_mixture.sample(n, rng)[0]
    Y = sc.target_mixture.sample(n, rng)[0]
    XI = rng.standard_normal((n, 2))
    tab, nodes = dr._energy_records(pr0, sc.target, idx, 0.0, np.zeros((1, len(idx), 2)), np.zeros((len(idx), 2)),
                                    sub.astype(np.int64), wq)
    out = np.zeros((n, len(edges) - 1, 2))
    dr._energy_kernel(Z, Y, XI, tab, nodes, out)
    ref = np.zeros(n)
    for i, (t, w) in zip(idx, zip(tq, wq)):
        X = pr0.a[i] * Z + pr0.b[i] * Y + np.sqrt(pr0.g[i]) * XI
        ref += w * np.sum(numpy_drift(t, X, Z, pr0, sc.target) ** 2, axis=1)
    np.testing.assert_allclose(out[:, :, 0].sum(axis=1), ref, rtol=1e-9)
    np.testing.assert_allclose(out[:, :, 1].sum(axis=1), ref, rtol=1e-9)     # V0 = 0: the same number


def test_scenario_holds_the_mixtures():
    sc = dr.subpop_scenario(3)
    assert isinstance(sc.start_mixture, DiagonalMixture) and isinstance(sc.target_mixture, DiagonalMixture)
    for a, b in zip(sc.target, sc.target_mixture):
        assert a is b
    np.testing.assert_array_equal(sc.mean1, sc.target_mixture.mean())
    np.testing.assert_allclose(sc.target_mixture.weights, [0.5, 1 / 3, 1 / 6], rtol=1e-15)
