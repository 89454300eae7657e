"""Heterogeneous-agent macroeconomics: utility Hamiltonian, household solver with the borrowing limit, Huggett and
Aiyagari equilibria, the time-dependent solver and the transition (docs/method.md, 'Household problems and market
clearing')."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from mfg_pde import cases
from mfg_pde.model.household import Household, two_state_switching
from mfg_pde.model.utility import CRRA
from mfg_pde.newton.equilibrium import (
    Aiyagari,
    Huggett,
    load_equilibrium,
    solve_equilibrium,
)
from mfg_pde.newton.household import (
    flat,
    initial_value,
    policy,
    solve_household,
    sqrt_law_coefficient,
    sqrt_law_estimate,
)
from mfg_pde.newton.transition import evolve, huggett_transition
from mfg_pde.richardson import observed_order


# ----------------------------------------------------------------------------------------- utility
@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
def test_hamiltonian_is_the_maximum_over_consumption(gamma):
    U = CRRA(gamma)
    y = 0.3
    for p in (0.2, 1.0, 7.0):
        c = np.linspace(1e-3, 3.0 * float(U.consumption(p)), 400001)
        brute = float(np.max(U.u(c) + p * (y - c)))
        assert abs(U.hamiltonian(y, p) - brute) < 1e-6 * max(1.0, abs(brute))
        assert abs(U.marginal(U.consumption(p)) - p) < 1e-12 * p


def test_log_utility_is_gamma_one():
    U = CRRA(1.0)
    c = np.array([0.5, 1.0, 3.0])
    assert np.allclose(U.u(c), np.log(c), rtol=0, atol=1e-15)
    assert np.allclose(U.consumption(1.0 / c), c, rtol=1e-14)


# ----------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("gamma", [0.0, -1.0, float("nan")])
def test_utility_not_increasing_concave_is_refused(gamma):
    with pytest.raises(ValueError, match="gamma"):
        CRRA(gamma)


@pytest.mark.parametrize("rho", [0.0, -0.05])
def test_nonpositive_discount_is_refused(rho):
    with pytest.raises(ValueError, match="rho"):
        Household(rho=rho)


def test_bad_switching_is_refused():
    with pytest.raises(ValueError, match="sums to"):
        Household(switching=[[-1.0, 1.2], [1.2, -1.2]])
    with pytest.raises(ValueError, match=r"switching\[0, 1\].*>= 0"):
        Household(switching=[[0.5, -0.5], [1.2, -1.2]])
    with pytest.raises(ValueError, match="incomes"):
        Household(switching=two_state_switching(1, 1), z=(0.1, 0.2, 0.3))


def test_borrowing_limit_below_natural_limit_is_refused():
    hh = Household(a_min=-3.0, N=50)          # natural limit -z1 / r = -0.1 / 0.04 = -2.5
    with pytest.raises(ValueError, match="a_min = -3.*natural borrowing limit"):
        solve_household(hh, 0.04)
    with pytest.raises(ValueError, match="a_min"):
        solve_equilibrium(Huggett(hh), bracket=(0.01, 0.045))


def test_bracket_without_sign_change_is_refused():
    econ = Huggett(Household(N=200))
    with pytest.raises(ValueError, match=r"bracket = \(0.01, 0.02\).*does not change sign"):
        solve_equilibrium(econ, bracket=(0.01, 0.02))
    with pytest.raises(ValueError, match="below rho"):
        solve_equilibrium(econ, bracket=(0.01, 0.06))


def test_case_refuses_bad_parameters():
    with pytest.raises(cases.CaseError, match="gamma"):
        cases.get("huggett").resolve({"gamma": "-2"})
    with pytest.raises(cases.CaseError, match="rho"):
        cases.get("aiyagari").resolve({"rho": "0"})


# ----------------------------------------------------------------------------------------- household solver
def test_generator_state_constraint_and_duality():
    hh = Household(N=400)
    sol = solve_household(hh, 0.03)
    A = sol.A
    assert np.abs(np.asarray(A.sum(axis=1))).max() < 1e-12          # rows of the generator sum to 0
    off = A.toarray() - np.diag(A.diagonal())
    assert float(off.min()) >= 0.0                                  # off-diagonal rates >= 0
    assert sol.s[:, 0].min() >= 0.0 and sol.s[:, -1].max() <= 0.0   # no drift out of [a_min, a_max]
    assert np.abs(A.T @ flat(sol.g)).max() < 1e-12                  # g is the null vector of A^T
    assert abs(sol.g.sum() * hh.h - 1.0) < 1e-13 and sol.g.min() >= 0.0
    # the discrete HJB holds with the policy of its own solution
    pol = policy(hh, sol.v, 0.03)
    assert np.abs(hh.rho * flat(sol.v) - flat(hh.utility.u(pol.c)) - pol.A @ flat(sol.v)).max() < 1e-9


def test_top_node_is_not_absorbing():
    """At a_max the state-constraint difference gives exactly zero forward drift: round-off in y - c*(u'(y)) must
    not select it where the households dissave (gamma = 5, r = 0.01 once put all the mass on a_max)."""
    hh = Household(utility=5.0, N=1000)
    sol = solve_household(hh, 0.01)
    assert sol.s[:, -1].max() < 0.0
    assert sol.g[:, -50:].sum() * hh.h < 1e-12
    assert sol.residuals["fp"] < 1e-12


def test_sqrt_law_and_mass_at_the_limit_converge():
    """s_1(a)^2 / (2 (a - a_min)) at the first node -> nu_1 of the sqrt law at order ~1/2; the low type has a mass
    point at a_min, the high type none (its mass there -> 0 at order 1)."""
    nu_err, hi, lo = [], [], []
    for N in (1000, 2000, 4000):
        hh = Household(N=N)
        sol = solve_household(hh, 0.03)
        nu_err.append(abs(sqrt_law_estimate(hh, sol) - sqrt_law_coefficient(hh, sol)))
        lo.append(sol.mass_at_limit[0])
        hi.append(sol.mass_at_limit[1])
    assert 0.35 < observed_order(nu_err)[-1] < 0.7
    assert observed_order(hi)[-1] > 0.8
    assert min(lo) > 0.01


# ----------------------------------------------------------------------------------------- equilibria
def test_huggett_r_first_order_in_the_wealth_step():
    rs = [solve_equilibrium(Huggett(Household(N=N))).r for N in (500, 1000, 2000)]
    order = np.log2(abs(rs[1] - rs[0]) / abs(rs[2] - rs[1]))
    assert 0.85 < order < 1.15
    res = solve_equilibrium(Huggett(Household(N=500)), curve_points=5)
    assert abs(res.excess) < 1e-10 and res.converged
    assert np.all(np.diff(res.curve_S) > 0)            # excess supply increases with r
    assert res.curve_S[0] < 0 < res.curve_S[-1]


def test_aiyagari_prices_satisfy_the_firm_conditions():
    hh = Household(z=(0.4, 1.6), switching=two_state_switching(0.2, 0.2), a_min=0.0, a_max=60.0, N=500)
    res = solve_equilibrium(Aiyagari(hh, alpha=1 / 3, delta=0.05))
    K, L = res.K, hh.labour
    assert abs(L - 1.0) < 1e-14
    assert abs(res.r - ((1 / 3) * (K / L) ** (-2 / 3) - 0.05)) < 1e-12
    assert abs(res.w - (2 / 3) * (K / L) ** (1 / 3)) < 1e-12
    assert abs(res.solution.assets - K) < 1e-9          # capital market clears
    assert -0.05 < res.r < hh.rho


# ----------------------------------------------------------------------------------------- time-dependent
def test_long_time_limit_is_the_stationary_solution():
    hh = Household(N=150)
    ref = solve_household(hh, 0.03)
    g0 = np.zeros((2, hh.N))
    g0[:, 0] = hh.shares
    errs_v, errs_g = [], []
    for T in (50.0, 100.0):
        v0 = evolve(hh, 0.03, 1.0, initial_value(hh, 0.03), ref.g, T, int(T)).v0
        errs_v.append(np.abs(v0 - ref.v).max())
        errs_g.append(np.abs(evolve(hh, 0.03, 1.0, ref.v, g0, 2 * T, int(2 * T)).g[-1] - ref.g).max())
    rate = np.log(errs_v[0] / errs_v[1]) / 50.0
    assert abs(rate / np.log1p(hh.rho) - 1.0) < 0.02
    assert errs_g[1] < 1e-6 * ref.g.max() and errs_g[1] < errs_g[0]


def test_transition_without_shock_stays_put_and_with_shock_clears_the_market():
    hh = Household(N=150)
    eq = solve_equilibrium(Huggett(hh))
    still = huggett_transition(eq, eq, T=40.0, Nt=40, tol=1e-9)
    assert still.iterations == 1 and still.converged
    assert np.abs(still.r - eq.r).max() == 0.0
    assert np.abs(still.path.g - eq.solution.g[None]).max() < 1e-9
    new = solve_equilibrium(Huggett(hh.with_(z=(0.12, 0.2))))
    tr = huggett_transition(eq, new, T=120.0, Nt=120, tol=1e-6)
    assert tr.converged and tr.excess <= 1e-6
    assert tr.mass_error() < 1e-12 and tr.path.g.min() >= 0.0
    assert abs(tr.r[-1] - new.r) < 1e-4


# ----------------------------------------------------------------------------------------- case and CLI
def test_cli_run_huggett_writes_figure_and_hdf5(tmp_path):
    fig, h5 = tmp_path / "h.png", tmp_path / "h.h5"
    out = subprocess.run([sys.executable, "-m", "mfg_pde.cli", "run", "huggett", "--set", "N=300", "--set",
                          f"figure={fig}", "--set", f"h5={h5}", "--set", "curve=5"],
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "market clearing" in out.stdout and fig.stat().st_size > 0
    with h5py.File(h5) as f:
        assert f.attrs["kind"] == "equilibrium" and f.attrs["economy"] == "huggett"
        assert f["g"].shape == (2, 300) and f["excess_curve/S"].shape == (5,)
        assert abs(f["g"][()].sum() * (f["a"][1] - f["a"][0]) - 1.0) < 1e-12


def test_equilibrium_hdf5_round_trip(tmp_path):
    hh = Household(z=(0.4, 1.6), switching=two_state_switching(0.2, 0.2), a_min=0.0, a_max=60.0, N=200)
    res = solve_equilibrium(Aiyagari(hh), curve_points=4)
    res.save(tmp_path / "a.h5")
    back = load_equilibrium(tmp_path / "a.h5")
    assert back.economy.name == "aiyagari" and back.economy.alpha == res.economy.alpha
    assert back.r == res.r and back.K == res.K and back.w == res.w
    assert np.array_equal(back.solution.g, res.solution.g) and np.array_equal(back.curve_S, res.curve_S)
    assert back.fraction_at_limit == res.fraction_at_limit
    with pytest.raises(ValueError, match="not an equilibrium file"):
        with h5py.File(tmp_path / "x.h5", "w") as f:
            f.attrs["kind"] = "stationary"
        load_equilibrium(tmp_path / "x.h5")


def test_validate_runs_the_macro_checks():
    run = cases.get("aiyagari").validate()
    names = {c.quantity for c in run.checks}
    assert {"r*: observed order", "r*: Richardson error estimate", "sqrt law nu_1: observed order",
            "long-time limit: density |g(T) - g*| / max g*"} <= names
    assert run.passed, [(c.quantity, c.error, c.tol) for c in run.checks if not c.passed]


@pytest.mark.slow
def test_huggett_r_richardson_sequence():
    """r* on N = 1000 ... 32000: first order, and the Richardson values converge at order >= 1.3 (the next term
    of the error, h^(3/2), of the NEXT_ORDER constant in cases/macro.py)."""
    rs = np.array([solve_equilibrium(Huggett(Household(N=N))).r for N in (1000, 2000, 4000, 8000, 16000, 32000)])
    d = np.abs(np.diff(rs))
    assert np.all(np.abs(np.log2(d[:-1] / d[1:])[-2:] - 1.0) < 0.05)
    rich = 2 * rs[1:] - rs[:-1]
    dr = np.abs(np.diff(rich))
    assert np.all(np.log2(dr[:-1] / dr[1:]) > 1.3)
    assert dr[-1] < 1e-5
