"""The second-order planning default (Crank-Nicolson substeps with the Strang-split potential): order 2
against closed forms, positivity and exact mass for any dt, tails computed to relative round-off, the
fallback to first order where it does not apply, and the agent's costs."""

import decimal

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.fd.operator import kernel_data
from mfg_pde.model.problem import Drift
from mfg_pde.oracles import analytic
from mfg_pde.planning import positive_cn as pc
from mfg_pde.planning.semigroup import axis_generators


def fixed_centre_problem(N):
    """The fixed-centre case where implicit Euler is far off: T = 1, sigma = 1, beta = 12, centre 0,
    N(3.16, 0.6^2) -> N(0.66, 0.3^2), Nt = N / 2."""
    g = mp.Grid([(-3, 10)], N)
    m0, m1 = mp.gaussian(g, 3.16, 0.6), mp.gaussian(g, 0.66, 0.3)
    return mp.PlanningProblem(g, 1.0, N // 2, 1.0, m0, m1, coupling=mp.FixedGuidance(12.0, centre=0.0))


def fixed_centre_energy(pb):
    """Closed form: the mean channel of the fixed-centre problem plus the Gaussian bridge's fluctuation
    channel (the same Riccati S as the mean-field bridge), from the grid end densities' own moments."""
    g = pb.grid
    mu0, mu1 = g.mean(pb.m0)[0], g.mean(pb.m1)[0]
    v0, v1 = g.covariance(pb.m0)[0, 0], g.covariance(pb.m1)[0, 0]
    br = analytic.lqg_bridge(pb.t, T=pb.T, sigma=pb.sigma, mean0=mu0, var0=v0, mean1=mu1, var1=v1, beta=12.0)
    return analytic.ia_mean_energy(T=pb.T, beta=12.0, mean0=mu0, mean1=mu1, nu=0.0) + br["energy_fluct"]


def test_fixed_centre_energy_second_order_and_euler_is_the_trap():
    errs = []
    for N in (200, 400):
        pb = fixed_centre_problem(N)
        r = mp.solve_planning(pb)
        assert r.converged and r.solver["time_scheme"] == "crank-nicolson" and r.solver["time_order"] == 2
        ref = fixed_centre_energy(pb)
        errs.append(abs(r.planning.energy_E - ref) / ref)
    order = np.log2(errs[0] / errs[1])
    assert errs[-1] < 0.013 and 1.8 < order < 2.3, (errs, order)
    euler = mp.solve_planning(fixed_centre_problem(400), time_scheme="euler")
    ref = fixed_centre_energy(fixed_centre_problem(400))
    assert abs(euler.planning.energy_E - ref) / ref > 10 * errs[-1]  # first order: 15 % low on this grid


@pytest.mark.parametrize("shape, Nt", [((400,), 4), ((100, 90), 1)])
def test_positive_and_mass_exact_far_beyond_any_cfl(shape, Nt):
    """dt nu / h^2 in the hundreds: every factor is still entrywise non-negative (substeps), the mass of
    m = phi psi is exact at every level, and the ends are met."""
    g = mp.Grid([(-4, 4)] * len(shape), shape)
    m0 = mp.gaussian(g, (-1.0,) * len(shape), 0.6)
    m1 = mp.gaussian(g, (1.0,) * len(shape), 0.5)
    pb = mp.PlanningProblem(g, 1.0, Nt, 1.0, m0, m1, coupling=mp.QuadraticInteraction(2.0))
    r = mp.solve_planning(pb)
    diffusion_numbers = [pb.dt * pb.nu / h ** 2 for h in g.spacing]
    assert min(diffusion_numbers) > 50
    assert r.converged and r.solver["time_scheme"] == "crank-nicolson"
    assert all(s >= d for s, d in zip(r.solver["substeps"], diffusion_numbers))
    assert r.m.min() >= 0.0
    assert r.mass_error() < 1e-12
    assert r.planning.terminal_mismatch < 1e-10


def _reference_substeps(lo, di, up, periodic, tau, s, x, transpose):
    """(S^{-1} E)^s x (or its transpose), S, E = I -/+ (tau/2) Q, in 60-digit decimal arithmetic
    (Gaussian elimination of the banded system: a reference 40 digits beyond double precision)."""
    D = decimal.Decimal
    n = len(di)
    Q = [[D(0)] * n for _ in range(n)]
    for i in range(n):
        Q[i][i] = D(float(di[i]))
        if i > 0:
            Q[i][i - 1] = D(float(lo[i]))
        if i < n - 1:
            Q[i][i + 1] = D(float(up[i]))
    if periodic:
        Q[0][n - 1] += D(float(lo[0]))
        Q[n - 1][0] += D(float(up[n - 1]))
    h = D(float(tau)) / 2
    S = [[(D(1) if i == j else D(0)) - h * Q[i][j] for j in range(n)] for i in range(n)]
    E = [[(D(1) if i == j else D(0)) + h * Q[i][j] for j in range(n)] for i in range(n)]
    if transpose:
        S = [list(r) for r in zip(*S)]
        E = [list(r) for r in zip(*E)]

    def matvec(A, y):
        return [sum((A[i][j] * y[j] for j in range(n) if A[i][j] != 0), D(0)) for i in range(n)]

    def solve(A, b):
        A = [row[:] + [bb] for row, bb in zip(A, b)]
        for k in range(n):
            for i in range(k + 1, n):
                if A[i][k] != 0:
                    f = A[i][k] / A[k][k]
                    A[i] = [a - f * c for a, c in zip(A[i], A[k])]
        out = [D(0)] * n
        for i in range(n - 1, -1, -1):
            out[i] = (A[i][n] - sum((A[i][j] * out[j] for j in range(i + 1, n) if A[i][j] != 0), D(0))) / A[i][i]
        return out

    y = [D(float(v)) for v in x]
    for _ in range(s):
        y = matvec(E, solve(S, y)) if transpose else solve(S, matvec(E, y))
    return np.array([float(v) for v in y])


@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
def test_tails_are_computed_to_relative_round_off(bc):
    """Data falling over 250 orders of magnitude, slowly enough that the output falls as far: every
    output value of a substep sweep (both directions) agrees with 60-digit arithmetic to relative
    round-off, however small -- no cancellation anywhere."""
    n = 120
    g = mp.Grid([(-3, 3)], n, bc=bc)
    pb = mp.PlanningProblem(g, 1e-3, 20, 0.8, mp.gaussian(g, 0.0, 0.6), mp.gaussian(g, 0.1, 0.6),
                            drift=mp.LinearDrift(0.7) if bc == "reflecting" else None)
    kd = kernel_data(pb)
    nsub, tab = pc.factor_table(kd, pb.dt)
    lo, di, up = pc.axis_tridiagonal(kd, 0)
    x = 10.0 ** -np.linspace(0, 250, n)
    if bc == "periodic":
        x = np.minimum(x, x[::-1])  # small in the middle: the wrap-around rows see large neighbours
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        for d, transpose in ((0, False), (1, True)):
            y = x.copy().reshape(n, 1, 1)
            pc.cn_axis(y, 0, tab[0, d], nsub[0], bool(kd.periodic[0]), transpose, np.empty(n))
            ref = _reference_substeps(lo, di, up, bc == "periodic", pb.dt / nsub[0], int(nsub[0]), x, transpose)
            assert ref.min() < 1e-100 and np.all(ref > 0)
            assert np.max(np.abs(y.ravel() / ref - 1.0)) < 1e-12


@pytest.mark.parametrize("shape", [(17,), (20, 18), (18, 17, 16), (62,)])
@pytest.mark.parametrize("bc", ["reflecting", "periodic"])
def test_substep_kernels_match_the_dense_factors(shape, bc):
    """cn_axis applies (S^{-1} E)^s and its transpose along each axis; the generator it reads off the
    kernels is the dense generator of the semigroup module; every factor is entrywise non-negative."""
    g = mp.Grid([(-3, 3)] * len(shape), shape, bc=bc)
    drift = mp.LinearDrift(0.7) if bc == "reflecting" else None
    pb = mp.PlanningProblem(g, 1.0, 4, 0.8, mp.gaussian(g, 0.0, 0.6), mp.gaussian(g, 0.1, 0.6), drift=drift)
    kd = kernel_data(pb)
    nsub, tab = pc.factor_table(kd, pb.dt)
    rng = np.random.default_rng(1)
    for k, Q in enumerate(axis_generators(kd)):
        lo, di, up = pc.axis_tridiagonal(kd, k)
        n = di.size
        dense = np.diag(di) + np.diag(lo[1:], -1) + np.diag(up[:-1], 1)
        if bc == "periodic":
            dense[0, n - 1] += lo[0]
            dense[n - 1, 0] += up[n - 1]
        np.testing.assert_allclose(dense, Q, atol=1e-12)
        tau = pb.dt / nsub[k]
        C = np.linalg.matrix_power(np.linalg.solve(np.eye(n) - tau / 2 * Q, np.eye(n) + tau / 2 * Q), nsub[k])
        assert C.min() >= -1e-15
        x = rng.random(kd.shape3)
        for d, (Cm, transpose) in enumerate(((C, False), (C.T, True))):
            y = x.copy()
            pc.cn_axis(y, k, tab[k, d], nsub[k], bool(kd.periodic[k]), transpose, np.empty(2 * y.size))
            ref = np.moveaxis(np.tensordot(Cm, x, axes=([1], [k])), 0, k)
            np.testing.assert_allclose(y, ref, rtol=1e-12, atol=0)


def test_auto_falls_back_to_first_order_and_says_why():
    grid = mp.Grid([(-5, 5)], 100)
    pb = mp.PlanningProblem(grid, 1.0, 20, 1.0, mp.gaussian(grid, -1, 0.5), mp.gaussian(grid, 1, 0.5),
                            drift=Drift(lambda x, t: -x * (1 + t)))
    r = mp.solve_planning(pb)
    assert r.converged
    assert r.solver["time_scheme"] == "euler" and r.solver["time_order"] == 1
    assert r.solver["time_scheme_requested"] == "auto"
    assert "depends on t" in r.solver["time_scheme_note"]
    with pytest.raises(ValueError, match="time-independent base drift"):
        mp.solve_planning(pb, time_scheme="crank-nicolson")


def test_crank_nicolson_is_close_to_the_exact_semigroup():
    """The substeps (tau <= h^2 / nu) approximate the exact per-axis semigroup to O(tau^2) = O(h^4): the
    gap between the two second-order schemes is far below either's own dt error and shrinks at least
    8x when h and dt are halved."""
    def energies(N, Nt):
        grid = mp.Grid([(-5, 5)], N)
        pb = mp.PlanningProblem(grid, 1.5, Nt, 0.7, mp.gaussian(grid, -1.0, 0.5), mp.gaussian(grid, 1.5, 0.4),
                                coupling=mp.QuadraticInteraction(2.0))
        return (mp.solve_planning(pb, time_scheme="crank-nicolson").planning.energy_E,
                mp.solve_planning(pb, time_scheme="strang").planning.energy_E)
    cn1, ex1 = energies(100, 10)
    cn2, ex2 = energies(200, 20)
    _, ex_coarse_dt = energies(200, 10)
    gap1, gap2 = abs(cn1 - ex1), abs(cn2 - ex2)
    assert gap2 < 0.01 * abs(ex_coarse_dt - ex2)
    assert gap1 / gap2 > 8.0, (gap1, gap2)


def test_costs_of_the_returned_pair_and_their_sum():
    grid = mp.Grid([(-6, 6)], 150)
    pb = mp.PlanningProblem(grid, 1.0, 60, 1.0, mp.gaussian(grid, -1.5, 0.5), mp.gaussian(grid, 1.0, 0.6),
                            coupling=mp.QuadraticInteraction(4.0), potential=lambda x, t: 0.5 * x ** 2)
    r = mp.solve_planning(pb, method="picard", damping=0.5)
    h, rec = r.history, r.planning
    assert r.iterations > 3 and "energy_E" not in h  # final only: result.planning
    assert rec.kinetic_cost == rec.energy_E / 2
    assert rec.total_cost == pytest.approx(rec.kinetic_cost + rec.running_cost, rel=1e-15)
    # the running cost: V = x^2/2 plus the interaction beta/2 (x - mean)^2 integrated against m
    mean, var = r.mean()[:, 0], r.covariance()[:, 0, 0]
    dens = 0.5 * (mean ** 2 + var) + 2.0 * var
    trap = float(np.sum(0.5 * (dens[:-1] + dens[1:])) * pb.dt)
    assert rec.running_cost == pytest.approx(trap, rel=2e-3)
