"""Propagation of chaos: grid mean-field law vs N-particle systems."""

import numpy as np

import mfg_pde as mp
from mfg_pde.particles import mckean_vlasov as MV
from mfg_pde.cases import get


def test_mean_field_fp_ou_moments_first_order():
    errs = []
    for N in (200, 400):
        g = mp.Grid([(-5, 5)], N)
        m0 = mp.gaussian_mixture(g, [0.5, 0.5], [-1.5, 1.0], [0.4, 0.5])
        m = MV.solve_mean_field(g, m0, 1.0, N, a=0.5, c=1.0, A=0.0, ell=1.0, sigma=0.8)
        t = np.linspace(0, 1, N + 1)
        me, va = MV.ou_moments(t, a=0.5, c=1.0, sigma=0.8, mean0=g.mean(m0)[0], var0=g.covariance(m0)[0, 0])
        errs.append([np.abs(g.mean(m)[:, 0] - me).max(), np.abs(g.covariance(m)[:, 0, 0] - va).max()])
        np.testing.assert_allclose(g.integrate(m), 1.0, atol=1e-12)
    o = np.log2(np.array(errs[0]) / np.array(errs[1]))
    assert np.all((o > 0.9) & (o < 1.1)), o


def test_kernel_mean_field_contracts_and_conserves_mass():
    g = mp.Grid([(-5, 5)], 400)
    m0 = mp.gaussian_mixture(g, [0.5, 0.5], [-1.5, 1.0], [0.4, 0.5])
    m = MV.solve_mean_field(g, m0, 1.0, 200, a=0.0, c=0.0, A=2.0, ell=1.0, sigma=0.3)
    var = g.covariance(m)[:, 0, 0]
    assert var[-1] < 0.8 * var[0]  # attraction pulls the population together
    np.testing.assert_allclose(g.integrate(m), 1.0, atol=1e-12)


def test_particles_match_mean_field_moments():
    g = mp.Grid([(-5, 5)], 800)
    m0 = mp.gaussian_mixture(g, [0.5, 0.5], [-1.5, 1.0], [0.4, 0.5])
    m = MV.solve_mean_field(g, m0, 1.0, 400, a=0.5, c=0.0, A=2.0, ell=1.0, sigma=0.8)
    from mfg_pde.particles.agents import sample_density
    xT = MV.simulate_particles(sample_density(g, m0, 2000, seed=3), 1.0, 200, a=0.5, c=0.0, A=2.0, ell=1.0,
                               sigma=0.8, seed=4)
    sd = np.sqrt(g.covariance(m[-1])[0, 0])
    assert abs(xT.mean() - g.mean(m[-1])[0]) < 5 * sd / np.sqrt(2000) + 0.01
    assert abs(xT.std() - sd) < 0.05 * sd


def test_case_slopes_and_orders(tmp_path):
    run = get("propagation-of-chaos").validate({"figure": str(tmp_path / "c.png")})
    assert all(c.passed for c in run.checks), [(c.quantity, c.error, c.tol) for c in run.checks if not c.passed]
    assert (tmp_path / "c.png").stat().st_size > 10000
    s = run.result.case_report.slopes
    assert -0.75 < s["ou"] < -0.35 and -0.75 < s["kernel"] < -0.35
