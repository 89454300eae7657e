"""Types of agents with Poisson switching in the time-dependent solver (``MultiPopulationProblem(switching=Q)``,
``fd.switching``): reductions to the single-type sweeps, exact shares and mass, the LQ closed form with its
orders, the joint residuals and exploitability, 2-D, files and bad input."""

import numpy as np
import pytest
from scipy.linalg import expm

import mfg_pde as mp
from mfg_pde.cases import get
from mfg_pde.fd.fp import solve_fp
from mfg_pde.fd.hjb import solve_hjb
from mfg_pde.fd.switching import solve_fp_types, solve_hjb_types, type_residuals, types_gap
from mfg_pde.model.switching import propagator

Q2 = np.array([[-2.0, 2.0], [1.0, -1.0]])


def _grid(dim, N):
    return mp.Grid([(-2.0, 2.0)] * dim, N)


def _types(grid, Nt=12, T=0.5, sigma=(0.6, 0.4), hamiltonian=None):
    """Two different types: own potentials, noises and initial densities."""
    xs = grid.mesh()
    pots = [lambda *c: 0.5 * (c[0] - 1.0) ** 2, lambda *c: 0.5 * (c[0] + 1.0) ** 2]
    m0s = [mp.model.densities.normalise(grid, np.exp(-sum((x - s) ** 2 for x in xs) / 0.3) + 1e-3)
           for s in (-0.5, 0.5)]
    return [mp.MFGProblem(grid, T, Nt, sigma[k], m0s[k], potential=(lambda p: (lambda *c, t=None: p(*c)))(pots[k]),
                          hamiltonian=hamiltonian) for k in range(2)]


@pytest.mark.parametrize("dim", [1, 2])
def test_without_switching_the_joint_sweeps_are_the_single_sweeps_bit_for_bit(dim):
    grid = _grid(dim, 24 if dim == 1 else 12)
    pops = _types(grid)
    pb = mp.MultiPopulationProblem(pops, switching=np.zeros((2, 2)), shares=[0.25, 0.75])
    rng = np.random.default_rng(3)
    fs = [rng.uniform(0.0, 1.0, (pb.Nt,) + grid.shape) for _ in range(2)]
    uTs = [rng.uniform(0.0, 1.0, grid.shape) for _ in range(2)]
    E = pb.switching_step()
    assert np.array_equal(E, np.eye(2))
    sol = solve_hjb_types(pb, fs, uTs, E)
    m = solve_fp_types(pb, sol, E)
    for k, pop in enumerate(pops):
        alone = solve_hjb(pop, fs[k], uTs[k])
        assert np.array_equal(sol.u[:, k], alone.u)
        assert np.array_equal(m[:, k], solve_fp(pop, alone, m0=pb.m0_of(k)))


def test_identical_types_reproduce_the_single_population_and_the_shares_are_exact():
    """Identical types that feel the total density: every type has the single population's value, the total
    density is the single population's, and the shares are p0 exp(t Q) whatever the motion."""
    grid = _grid(1, 80)
    m0 = mp.gaussian(grid, -0.3, 0.4)
    kw = {"potential": lambda x, t: 0.5 * x ** 2, "terminal_cost": mp.QuadraticTerminalCost(1.0, 0.5)}
    single = mp.MFGProblem(grid, 1.0, 40, 0.5, m0, coupling=mp.LocalPower(1.0), **kw)
    types = [mp.MFGProblem(grid, 1.0, 40, 0.5, m0, **kw) for _ in range(2)]
    p0 = [0.3, 0.7]
    pb = mp.MultiPopulationProblem(types, switching=Q2, total_coupling=mp.LocalPower(1.0), shares=p0)
    r = mp.solve(pb, method="anderson", tol=1e-12)
    s = mp.solve(single, method="anderson", tol=1e-12)
    assert r.converged and s.converged
    # both loops stop at a fixed-point residual of 1e-12; the discrete systems coincide
    assert np.abs(r.u[0] - s.u).max() < 1e-10 and np.abs(r.u[1] - s.u).max() < 1e-10
    assert np.abs(r.m.sum(axis=0) - s.m).max() < 1e-10 * np.abs(s.m).max()
    exact = np.stack([np.asarray(p0) @ expm(t * Q2) for t in r.t], axis=1)
    assert np.abs(r.shares() - exact).max() < 1e-14


def test_fast_switching_keeps_mass_and_positivity_for_any_dt():
    grid = _grid(1, 60)
    Q = np.array([[-50.0, 50.0], [80.0, -80.0]])     # dt q = 5 and 8: explicit switching would not be monotone
    pb = mp.MultiPopulationProblem(_types(grid, Nt=10, T=1.0), switching=Q, total_coupling=mp.LocalPower(2.0))
    r = mp.solve(pb, tol=1e-10)
    assert r.converged
    assert r.mass_error() < 1e-14
    assert r.m.min() >= 0.0
    E = propagator(Q, pb.dt)
    assert E.min() >= 0.0 and np.abs(E.sum(axis=1) - 1.0).max() < 1e-15
    exact = np.stack([pb.shares @ expm(t * Q) for t in r.t], axis=1)   # default shares: the long-run ones
    assert np.abs(r.shares() - exact).max() < 1e-13
    assert np.abs(r.shares() - pb.shares[:, None]).max() < 1e-13


def test_lq_switching_closed_form_and_orders():
    run = get("lq-switching-time").validate()
    assert run.passed, [(c.quantity, c.error) for c in run.checks if not c.passed]
    orders = {c.quantity: c.error for c in run.checks if c.quantity.endswith("observed order")}
    assert set(orders) == {"mean: observed order", "variance: observed order", "u(0, x): observed order"}
    assert min(orders.values()) > 0.9     # measured 0.96-0.97: the scheme is first order in h and dt


def test_joint_residuals_and_exploitability():
    grid = _grid(1, 50)
    pb = mp.MultiPopulationProblem(_types(grid, Nt=20), switching=Q2, total_coupling=mp.LocalPower(1.0))
    r = mp.solve(pb, method="anderson", tol=1e-11, newton_tol=1e-13)
    assert r.converged
    E = pb.switching_step()
    ms = [p.m for p in r.populations]
    fs = [pb.running_cost(k, ms) for k in range(2)]
    uTs = [pb.terminal_values(k, ms) for k in range(2)]
    sol = solve_hjb_types(pb, fs, uTs, E, tol=1e-13)
    hjb, fp = type_residuals(pb, sol, fs, r.m.transpose(1, 0, 2).copy(), E, uTs)
    assert hjb < 1e-11 and fp < 1e-11
    wrong = r.m.transpose(1, 0, 2).copy()
    wrong[1:, 0] *= 1.01
    assert type_residuals(pb, sol, fs, wrong, E, uTs)[1] > 1e-3
    assert abs(r.history["exploitability"][-1]) < 1e-9
    # a policy that is not the best response costs more: the gap is positive
    bumped = type(sol)(sol.u + 0.05 * np.sin(3 * grid.axes[0]), sol.states, sol.newton, sol.ops)
    gap = types_gap(pb, bumped, fs, uTs, E, ms)
    assert gap > 1e-5


def test_switching_in_2d_with_congestion_conserves_mass():
    grid = _grid(2, 16)
    pb = mp.MultiPopulationProblem(_types(grid, Nt=8, hamiltonian=mp.Congestion(1.0, 1.0, 0.5)), switching=Q2,
                                   total_coupling=mp.LocalPower(1.0))
    r = mp.solve(pb, tol=1e-9)
    assert r.converged, r.status
    assert r.mass_error() < 1e-13 and r.m.min() >= 0.0
    exact = np.stack([pb.shares @ expm(t * Q2) for t in r.t], axis=1)
    assert np.abs(r.shares() - exact).max() < 1e-13


def test_save_and_load_keep_the_switching(tmp_path):
    grid = _grid(1, 40)
    pb = mp.MultiPopulationProblem(_types(grid, Nt=10), switching=Q2, shares=[0.9, 0.1])
    r = mp.solve(pb)
    path = tmp_path / "types.h5"
    r.save(path)
    back = mp.load(path)
    assert back.has_switching and back.params["switching"] == Q2.tolist() and back.params["shares"] == [0.9, 0.1]
    assert np.array_equal(back.m, r.m) and np.array_equal(back.shares(), r.shares())
    assert back.mass_error() == r.mass_error() < 1e-14


def test_newton_is_refused_and_auto_uses_the_loops():
    grid = _grid(1, 30)
    pb = mp.MultiPopulationProblem(_types(grid, Nt=10), switching=Q2, total_coupling=mp.LocalPower(1.0))
    with pytest.raises(NotImplementedError, match="switching"):
        mp.solve(pb, method="newton")
    r = mp.solve(pb)
    assert r.converged and r.solver["winner"] in ("anderson", "picard")


def test_bad_switching_input_is_refused_with_the_parameter_named():
    grid = _grid(1, 20)
    pops = _types(grid, Nt=5)
    with pytest.raises(ValueError, match=r"switching has shape \(3, 3\).*2 populations"):
        mp.MultiPopulationProblem(pops, switching=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"switching\[0, 1\] = -1 < 0"):
        mp.MultiPopulationProblem(pops, switching=[[1.0, -1.0], [1.0, -1.0]])
    with pytest.raises(ValueError, match="row 1 sums to"):
        mp.MultiPopulationProblem(pops, switching=[[-1.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="shares"):
        mp.MultiPopulationProblem(pops, switching=Q2, shares=[0.5, 0.6])
    with pytest.raises(ValueError, match="shares"):
        mp.MultiPopulationProblem(pops, shares=[0.5, 0.5])
    with pytest.raises(ValueError, match="no unique long-run shares"):
        mp.MultiPopulationProblem(pops, switching=np.zeros((2, 2)))
    with pytest.raises(TypeError, match="total_coupling"):
        mp.MultiPopulationProblem(pops, total_coupling=1.0)
    exit_grid = mp.Grid([(-2.0, 2.0)], 20, bc=("reflecting", "exit"))
    with pytest.raises(NotImplementedError, match="exit"):
        mp.MultiPopulationProblem(_types(exit_grid, Nt=5), switching=Q2)


def test_case_names_are_unique():
    from mfg_pde.cases.base import Case, register

    class Clash(Case):
        name = "lq-switching"

    with pytest.raises(ValueError, match="taken"):
        register(Clash)


def _readme_game():
    grid = mp.Grid([(-1, 1)], 120)
    types = [mp.MFGProblem(grid, T=1.0, Nt=60, sigma=s, m0=mp.gaussian(grid, 0.0, 0.3),
                           potential=lambda x, t, c=c: 0.5 * (x - c) ** 2) for s, c in ((0.3, -0.5), (0.2, 0.5))]
    return mp.MultiPopulationProblem(types, names=["low", "high"], switching=[[-1.0, 1.0], [2.0, -2.0]],
                                     total_coupling=mp.LocalPower(1.0))


def test_auto_converges_where_half_damped_picard_cycles():
    """The README's example: damped Picard with theta = 0.5 cycles (its residual stays near 0.57); without a
    joint Newton, auto lets a slow Anderson run on, and its Picard fallback halves theta when Picard stalls."""
    from mfg_pde.iterate.monitor import Progress
    from mfg_pde.iterate.multipop import _picard_fallback

    game = _readme_game()
    r = mp.solve(game)
    assert r.converged and r.solver["winner"] == "anderson" and r.final_residual <= 1e-8
    half = mp.solve(game, method="picard", damping=0.5, max_iter=60)
    assert not half.converged and half.history["residual"][-1] > 0.1
    from mfg_pde.iterate.monitor import HISTORY_KEYS
    from mfg_pde.newton.driver import NEWTON_KEYS

    history = {k: [] for k in HISTORY_KEYS + NEWTON_KEYS}
    common = {"anderson_depth": 5, "newton_tol": 1e-12, "newton_maxit": 50, "inner_factor": 1e-2,
              "callback": None, "exploitability": "none", "diagnostics": "lean", "report": Progress(False),
              "history": history, "t_start": 0.0}
    _loop, converged, _status, theta = _picard_fallback(game, 1e-8, 300, None, 1e4, 8, common, Progress(False),
                                                         "test")
    assert converged and theta == 0.25


@pytest.mark.parametrize("dim", [1, 2])
def test_newton_takes_the_coupling_of_the_total_density(dim):
    """Without switching the joint Newton carries dF_tot/dm in every block (k, j): quadratic convergence and the
    Anderson solution."""
    grid = mp.Grid([(-1.0, 1.0)] * dim, 60 if dim == 1 else 16)
    xs = grid.mesh()
    pops = [mp.MFGProblem(grid, 1.0, 16, 0.3, mp.normalise(grid, np.exp(-sum((x - c) ** 2 for x in xs) / 0.1) + 1e-3),
                          potential=(lambda c: (lambda *a: 0.5 * (a[0] - c) ** 2))(c)) for c in (-0.5, 0.5)]
    pb = mp.MultiPopulationProblem(pops, total_coupling=mp.LocalPower(2.0))
    rn = mp.solve(pb, method="newton", tol=1e-11)
    ra = mp.solve(pb, method="anderson", tol=1e-11)
    assert rn.converged and ra.converged
    res = rn.history["residual"]
    assert rn.iterations <= 8
    assert res[-2] < res[-3] ** 1.5      # quadratic tail (measured e.g. 4e-5 -> 5e-9 -> 4e-14)
    assert np.abs(rn.m - ra.m).max() < 1e-9 * np.abs(ra.m).max()


def test_types_with_different_hamiltonians():
    """A quadratic type beside a bounded-control one: the quadratic records take the general rows (the same
    Engquist-Osher formula), and with Q = 0 the joint sweeps are still each type's own solve."""
    grid = _grid(1, 40)
    pops = [_types(grid)[0], _types(grid, hamiltonian=mp.BoundedControl(0.3))[1]]
    pb = mp.MultiPopulationProblem(pops, switching=np.zeros((2, 2)), shares=[0.5, 0.5])
    rng = np.random.default_rng(5)
    fs = [rng.uniform(0.0, 1.0, (pb.Nt,) + grid.shape) for _ in range(2)]
    uTs = [rng.uniform(0.0, 1.0, grid.shape) for _ in range(2)]
    E = pb.switching_step()
    sol = solve_hjb_types(pb, fs, uTs, E, tol=1e-14)
    m = solve_fp_types(pb, sol, E)
    for k, pop in enumerate(pops):
        alone = solve_hjb(pop, fs[k], uTs[k], tol=1e-14)
        assert np.abs(sol.u[:, k] - alone.u).max() < 1e-13 * np.abs(alone.u).max()
        assert np.abs(m[:, k] - solve_fp(pop, alone, m0=pb.m0_of(k))).max() < 1e-13
    r = mp.solve(mp.MultiPopulationProblem(pops, switching=Q2, total_coupling=mp.LocalPower(1.0)))
    assert r.converged and r.mass_error() < 1e-14
