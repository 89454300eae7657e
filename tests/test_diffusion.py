"""Diffusion models on the grid: error AND observed order for every claim."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.studies import diffusion_models as D
from mfg_pde.cases import CaseError, get
from mfg_pde.cases.diffusion import PATH_INTEGRAL_COLUMNS
from mfg_pde.fd.transport import fp_transport


SGM_OU_ERRORS = ["forward FP vs closed form (L1, max over t)",
                 "log-density HJB density vs closed form (L1)",
                 "HJB residual of log p_FP (weighted L1)",
                 "reverse FP vs data (L1)",
                 "reverse FP vs data (W2)"]
PATH_INTEGRAL_ERRORS = ["moments vs ODE (max |dM|, |dV| over eta, lambda)",
                        "negative control: W2 spread over eta"]
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
    files = {"figure": tmp_path / "h.png", "table": tmp_path / "h.csv", "densities": tmp_path / "d.csv"}
    case = get("path-integral-h")
    run = case.run({k: str(v) for k, v in files.items()})
    # every file the run wrote is the one its parameter named (what `mfg-pde run` announces)
    assert case.written(run.params) == [(k, str(v)) for k, v in files.items()]
    # the exact check list of the default run (lambda = 1 has no noise-helps / spread rows)
    control = [f"lambda={lam}: W2(eta=1) - W2(eta=0) < 0 (noise helps)" for lam in ("0.9", "1.1")] \
        + [f"lambda={lam}: W2 spread over eta / control spread" for lam in ("0.9", "1.1")]
    assert sorted(c.quantity for c in run.checks) == sorted(PATH_INTEGRAL_ERRORS + control)
    selected = [c for c in run.checks if c.quantity in control]
    assert len(selected) == 4
    assert all(c.passed for c in selected), [(c.quantity, c.error, c.tol) for c in selected]
    assert all(c.error < 0 for c in selected if "noise helps" in c.quantity)
    assert all(c.at_least and c.error >= 3.0 for c in selected if "spread over eta /" in c.quantity)
    assert run.passed, [(c.quantity, c.error, c.tol) for c in run.checks if not c.passed]
    assert files["figure"].stat().st_size > 10000
    with open(files["table"]) as fh:
        assert fh.readline().strip().split(",") == list(PATH_INTEGRAL_COLUMNS)
    tab = np.loadtxt(files["table"], delimiter=",", skiprows=1)
    assert tab.shape == (15, 12)
    col = {c: k for k, c in enumerate(PATH_INTEGRAL_COLUMNS)}
    # with the exact score (lambda = 1) the ODE W2 falls with eta only through the prior mismatch
    assert np.all(np.diff(tab[tab[:, 0] == 1.0][:, col["W2_ode"]]) <= 1e-12)
    # every final density: one per table row, in the report and in the CSV (x, one column per row, data)
    rep = run.result.case_report
    assert rep.arrays["densities"].shape == (15, 300)
    np.testing.assert_allclose(run.result.grid.integrate(rep.arrays["densities"]), 1.0, atol=1e-12)
    dens = np.loadtxt(files["densities"], delimiter=",", skiprows=1)
    with open(files["densities"]) as fh:
        head = fh.readline().strip().split(",")
    assert head[0] == "x" and head[-1] == "data" and head[1] == "lambda=0.9 eta=0" and head[15] == "lambda=1.1 eta=2"
    np.testing.assert_allclose(dens[:, 0], rep.arrays["x"], rtol=1e-8)
    np.testing.assert_allclose(dens[:, 1:16].T, rep.arrays["densities"], rtol=1e-8, atol=1e-300)
    # the density columns are the table's: its moments are M_grid, V_grid of the same row
    grid = run.result.grid
    for k in (0, 7, 14):
        assert grid.mean(rep.arrays["densities"][k])[0] == pytest.approx(tab[k, col["M_grid"]], rel=1e-5)
        assert grid.covariance(rep.arrays["densities"][k])[0, 0] == pytest.approx(tab[k, col["V_grid"]], rel=1e-5)
        assert D.w2_1d(grid, rep.arrays["densities"][k], rep.arrays["data_density"]) == pytest.approx(
            tab[k, col["W2_density"]], rel=1e-5)


def test_path_integral_h_density_measures_approach_the_moment_ones():
    """W2 and NLL from the grid density itself (quantile functions; cross-entropy on the grid) and from its
    moments (Gaussian formulas) differ by the grid density's departure from a Gaussian, which vanishes at
    first order with h and dt; both approach the ODE's."""
    case = get("path-integral-h")
    col = {c: k for k, c in enumerate(PATH_INTEGRAL_COLUMNS)}
    gap, to_ode = [], []
    for N in (150, 300):
        tab = case.run({"N": N, "Nt": N}).result.case_report.table
        gap.append([np.max(np.abs(tab[:, col[f"{q}_density"]] - tab[:, col[f"{q}_moments"]])) for q in ("W2", "NLL")])
        to_ode.append([np.max(np.abs(tab[:, col[f"{q}_density"]] - tab[:, col[f"{q}_ode"]])) for q in ("W2", "NLL")])
    gap, to_ode = np.array(gap), np.array(to_ode)
    assert np.all(gap[1] < gap[0] / 1.6), gap
    assert gap[1, 0] < 0.005 and gap[1, 1] < 0.02, gap
    assert np.all(to_ode[1] < to_ode[0]), to_ode
    assert to_ode[1, 0] < 0.03 and to_ode[1, 1] < 0.04, to_ode


def test_path_integral_h_refuses_the_old_noise_name():
    with pytest.raises(CaseError, match="parameter 'h_values' is called 'eta_values' now.*grid spacing.*"
                                        "--set eta_values="):
        get("path-integral-h").resolve({"h_values": "0,1"})
    with pytest.raises(TypeError, match=r"h=\.\.\.\): the noise level is called eta now"):
        D.gaussian_reverse_moments([1.0], h=0.5, lam=1.0, mu=0.0, s=1.0, T=1.0)
    with pytest.raises(TypeError, match="needs the noise level eta"):
        D.gaussian_reverse_moments([1.0], lam=1.0, mu=0.0, s=1.0, T=1.0)


def test_nll_grid_of_gaussians_is_the_closed_form():
    grid = mp.Grid([(-8, 8)], 800)
    m, data = mp.gaussian(grid, 0.3, 0.9), mp.gaussian(grid, 1.1, 0.6)
    assert D.nll_grid(grid, m, data) == pytest.approx(D.gaussian_w2_nll(0.3, 0.81, 1.1, 0.6)[1], abs=1e-9)
    assert D.w2_1d(grid, m, data) == pytest.approx(D.gaussian_w2_nll(0.3, 0.81, 1.1, 0.6)[0], abs=2e-3)
    with pytest.raises(ValueError, match="densities on the grid"):
        D.nll_grid(grid, m[:-1], data)


def test_gaussian_reverse_moments_exact_start_is_exact():
    """Started from the exact p_T with the exact score, the moment ODE returns the data for every h."""
    mu, s, T = 1.5, 0.5, 2.0
    vT = s ** 2 * np.exp(-2 * T) + 1 - np.exp(-2 * T)
    for h in (0.0, 0.7, 1.0, 2.0):
        M, V = D.gaussian_reverse_moments([T], eta=h, lam=1.0, mu=mu, s=s, T=T, M0=mu * np.exp(-T), V0=vT)
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
