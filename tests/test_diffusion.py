"""Diffusion models on the grid (seeds 003/004): error AND observed order for every claim."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.studies import diffusion_models as D
from mfg_pde.cases import get
from mfg_pde.fd.transport import fp_transport


SGM_OU_ERRORS = ["forward FP vs closed form (L1, max over t)",
                 "log-density HJB density vs closed form (L1)",
                 "HJB residual of log p_FP (weighted L1)",
                 "reverse FP vs data (L1)",
                 "reverse FP vs data (W2)"]
PATH_INTEGRAL_ERRORS = ["moments vs ODE (max |dM|, |dV| over h, lambda)",
                        "negative control: W2 spread over h"]
EXPECTED_ERRORS = {"sgm-ou": SGM_OU_ERRORS, "path-integral-h": PATH_INTEGRAL_ERRORS}


def _two_levels(name, over, levels):
    case = get(name)
    errs = []
    for N in levels:
        run = case.run({**over, "N": N, "Nt": N})
        errs.append(case.errors(run.result, run.params))
    keys = list(errs[0])
    # the order checks below run over these keys: an empty or renamed set must fail, not pass vacuously
    assert keys == EXPECTED_ERRORS[name]
    assert list(errs[1]) == keys
    E = np.array([[e[k] for k in keys] for e in errs])
    return keys, E, np.log2(E[0] / E[1])


def test_sgm_ou_1d_forward_hjb_reverse_first_order():
    keys, E, o = _two_levels("sgm-ou", {"d": 1}, (100, 200))
    assert np.all((o > 0.8) & (o < 1.3)), dict(zip(keys, o))
    assert E[1, keys.index("reverse FP vs data (L1)")] < 0.06
    assert E[1, keys.index("forward FP vs closed form (L1, max over t)")] < 0.02


@pytest.mark.slow
def test_sgm_ou_2d_first_order():
    keys, E, o = _two_levels("sgm-ou", {"d": 2}, (80, 160))
    assert np.all((o > 0.7) & (o < 1.3)), dict(zip(keys, o))


def test_sgm_ou_2d_reverse_returns_data():
    keys, E, o = _two_levels("sgm-ou", {"d": 2}, (50, 100))
    i = keys.index("reverse FP vs data (L1)")
    assert E[1, i] < 0.15 and o[i] > 0.8
    assert o[keys.index("forward FP vs closed form (L1, max over t)")] > 0.8


def test_ou_mixture_is_the_exact_forward_law():
    # Gaussian data: N(mu e^-t, s^2 e^-2t + 1 - e^-2t)
    grid = mp.Grid([(-6, 6)], 400)
    p = D.ou_mixture(grid, 0.7, [1.0], [[1.5]], [[0.5]])
    v = 0.25 * np.exp(-1.4) + 1 - np.exp(-1.4)
    assert grid.mean(p)[0] == pytest.approx(1.5 * np.exp(-0.7), abs=1e-7)  # midpoint sampling
    assert grid.covariance(p)[0, 0] == pytest.approx(v, rel=1e-4)


def test_path_integral_h_table_orders_and_control(tmp_path):
    keys, E, o = _two_levels("path-integral-h", {}, (150, 300))
    assert np.all((o > 0.85) & (o < 1.3)), dict(zip(keys, o))
    run = get("path-integral-h").run({"figure": str(tmp_path / "h.png"),
                                      "table": str(tmp_path / "h.csv")})
    # the exact check list of the default run (lambda = 1 has no noise-helps / spread rows)
    control = [f"lambda={lam}: W2(h=1) - W2(h=0) < 0 (noise helps)" for lam in ("0.9", "1.1")] \
        + [f"lambda={lam}: W2 spread over h / control spread" for lam in ("0.9", "1.1")]
    assert sorted(c.quantity for c in run.checks) == sorted(PATH_INTEGRAL_ERRORS + control)
    selected = [c for c in run.checks if c.quantity in control]
    assert len(selected) == 4
    assert all(c.passed for c in selected), [(c.quantity, c.error, c.tol) for c in selected]
    assert all(c.error < 0 for c in selected if "noise helps" in c.quantity)
    assert all(c.at_least and c.error >= 3.0 for c in selected if "spread over h /" in c.quantity)
    assert run.passed, [(c.quantity, c.error, c.tol) for c in run.checks if not c.passed]
    assert (tmp_path / "h.png").stat().st_size > 10000
    tab = np.loadtxt(tmp_path / "h.csv", delimiter=",", skiprows=1)
    assert tab.shape == (15, 10)
    # with the exact score (lambda = 1) the ODE W2 falls with h only through the prior mismatch
    assert np.all(np.diff(tab[tab[:, 0] == 1.0][:, 7]) <= 1e-12)


def test_gaussian_reverse_moments_exact_start_is_exact():
    """Started from the exact p_T with the exact score, the moment ODE returns the data for every h."""
    mu, s, T = 1.5, 0.5, 2.0
    vT = s ** 2 * np.exp(-2 * T) + 1 - np.exp(-2 * T)
    for h in (0.0, 0.7, 1.0, 2.0):
        M, V = D.gaussian_reverse_moments([T], h=h, lam=1.0, mu=mu, s=s, T=T, M0=mu * np.exp(-T), V0=vT)
        assert M[0] == pytest.approx(mu, abs=1e-8) and V[0] == pytest.approx(s ** 2, abs=1e-8)


def test_w2_1d_of_shifted_gaussians():
    grid = mp.Grid([(-8, 8)], 800)
    p, q = mp.gaussian(grid, 0.0, 1.0), mp.gaussian(grid, 0.7, 1.0)
    assert D.w2_1d(grid, p, q) == pytest.approx(0.7, abs=2e-3)


def test_transport_conserves_mass_and_checks_shapes():
    grid = mp.Grid([(-3, 3)], 60)
    m = fp_transport(grid, mp.gaussian(grid, 0, 0.5), 1.0, 10, 0.1, lambda x, t: np.sin(x))
    np.testing.assert_allclose(grid.integrate(m), 1.0, atol=1e-13)
    with pytest.raises(ValueError, match="velocity has shape"):
        fp_transport(grid, mp.gaussian(grid, 0, 0.5), 1.0, 10, 0.1, np.zeros((3, 1, 60)))
