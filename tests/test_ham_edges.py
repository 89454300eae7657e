"""The general Hamiltonians' hot rows (``fd.kernels.ham_edges``, ``_rows_h``, ``_line_rows_h``): h' evaluated once
per edge, the kind chosen once per line, and the power law's |p|^(q-1) by ``fd.fastpow``.  They must give the
numbers of the per-node formulas (``ham_side``, ``ham_row``) exactly, on every kind, layout and boundary."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.fd import kernels
from mfg_pde.fd.fastpow import POW_MAX, POW_MIN, pow_fast
from mfg_pde.fd.operator import kernel_data
from numba import njit


@njit  # not cached: numba's cache would not see a change of pow_fast (inlined from another file)
def _pow_fast_all(x, r, out):
    for i in range(x.size):
        out[i] = pow_fast(x[i], r)


def test_pow_fast_matches_the_library_pow_over_its_range():
    """Against numpy's pow, for x log-uniform over the whole range [1e-300, 1e300] (and its ends) and exponents
    across (0, 1]: relative error <= eps (2 + |r log x|) (eps = 2^-52: the rounding of y = r log x, which the
    library pow carries in extra precision, grows with |y|), and <= 2.5e-15 over |p| in [1e-8, 1e4], the range
    of the power-law rows (measured: 2.0e-15)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([np.exp(rng.uniform(np.log(POW_MIN), np.log(POW_MAX), 200_000)),
                        [POW_MIN, POW_MAX, 1.0, 2.0, 0.5, np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 3.0)]])
    work = np.exp(rng.uniform(np.log(1e-8), np.log(1e4), 200_000))
    out = np.empty_like(x)
    out_w = np.empty_like(work)
    eps = np.spacing(1.0)
    for r in (0.01, 0.2, 0.5, 0.8, 0.95, 0.999, 1.0):
        _pow_fast_all(x, r, out)
        rel = np.abs(out / x ** r - 1.0)
        bound = eps * (2.0 + np.abs(r * np.log(x)))
        assert np.all(rel <= bound), (r, x[np.argmax(rel / bound)])
        _pow_fast_all(work, r, out_w)
        assert np.abs(out_w / work ** r - 1.0).max() <= 2.5e-15, r


KINDS = [("power1.5", mp.Power(1.5)), ("power1.8", mp.Power(1.8)), ("power1.3-exact", mp.Power(1.3, delta=0.0)),
         ("bounded", mp.BoundedControl(0.7)), ("congestion", mp.Congestion(c0=1.0, c=2.0, alpha=0.5)),
         ("separable", mp.Separable(lambda p: np.sqrt(1 + p * p) - 1, lambda p: p / np.sqrt(1 + p * p),
                                    p_max=5.0, n=401))]


def _edge_samples(rng):
    """One-sided differences of every regime: 0, around delta, typical, huge, tiny (the library pow's range
    of the exact power law), beyond a table, NaN."""
    return np.concatenate([[0.0, -0.0, 1e-8, -1e-8, 0.999e-8, -1.001e-8, 1e-310, -1e-305, 1e301, -2e302, 7.0, -9.0,
                            np.nan], rng.normal(0.0, 2.0, 300), rng.normal(0.0, 1e-7, 50)])


@pytest.mark.parametrize("name,ham", KINDS, ids=[k[0] for k in KINDS])
@pytest.mark.parametrize("with_cost", [True, False])
def test_ham_edges_equal_ham_side_bit_for_bit(name, ham, with_cost):
    rng = np.random.default_rng(7)
    p = _edge_samples(rng)
    hk, hp = int(ham.kind), np.asarray(ham.params() if hasattr(ham, "params") else [0.0], dtype=float)
    if name == "separable":
        hp = kernel_data(mp.MFGProblem(mp.Grid([(0, 1)], 8), 1.0, 2, 0.3, np.ones(8), hamiltonian=ham)).op.hpar
    w = rng.uniform(0.3, 1.5, p.size) if hk == kernels.HAM_WEIGHTED else np.ones(p.size)
    if name.startswith("power1.3"):
        p = p[np.isfinite(p)]   # the exact law's library pow on the tiny/huge values; NaN is its own line below
        w = w[: p.size]
    P = p.copy()
    C = w.copy() if hk == kernels.HAM_WEIGHTED else np.full(p.size, -7.0)
    kernels.ham_edges(P, C, hk, hp, with_cost)
    ref = [kernels.ham_side(x, hk, hp, wi) for x, wi in zip(p, w)]
    np.testing.assert_array_equal(P, [r[0] for r in ref])
    if with_cost or hk == kernels.HAM_WEIGHTED:
        np.testing.assert_array_equal(C, [r[1] for r in ref])
    else:
        assert np.all(C == -7.0)   # untouched without the cost
    if name.startswith("power1.3"):   # a line with a NaN takes the per-value path: NaN stays NaN there
        P = np.array([0.5, np.nan, -2.0])
        kernels.ham_edges(P, np.zeros(3), hk, hp, True)
        assert np.isnan(P[1]) and P[0] == kernels.ham_side(0.5, hk, hp, 1.0)[0]


def _rows_problem(ham, bc, drift):
    grid = mp.Grid([(0.0, 1.0), (0.0, 1.0)], (13, 11), bc)
    b = (lambda x, y, t: [np.sin(5 * y) + 0.3 * t, np.cos(4 * x) - 0.2]) if drift else None
    return mp.MFGProblem(grid, 1.0, 3, 0.4, mp.normalise(grid, np.ones(grid.shape)), drift=b, hamiltonian=ham)


@pytest.mark.parametrize("name,ham", KINDS, ids=[k[0] for k in KINDS])
@pytest.mark.parametrize("bc,drift", [("reflecting", True), (["periodic", "reflecting"], False),
                                      (["reflecting", "periodic"], True)])
def test_edge_rows_equal_per_node_rows(name, ham, bc, drift):
    """``_rows_h`` (lines batched over the contiguous index), ``_line_rows_h`` (contiguous lines; M and M^T) and
    ``edge_costs`` (the residual passes' costs) against ``ham_row`` node by node: the same numbers bit for bit."""
    pb = _rows_problem(ham, bc, drift)
    kd = kernel_data(pb, exits_supported=True)
    rng = np.random.default_rng(11)
    g = rng.normal(0.0, 0.4, kd.shape3) + np.linspace(0, 3, kd.shape3[0])[:, None, None]
    g[3, :, 0] = g[3, 0, 0]   # flat stretches: p = 0 exactly
    m = np.broadcast_to(pb.m0, (pb.Nt + 1,) + pb.grid.shape) * rng.uniform(0.5, 2.0, (pb.Nt + 1,) + pb.grid.shape)
    op = kd.op_for(m) if kd.depends_on_m else kd.op
    src = rng.normal(size=kd.shape3)
    for k in range(2):
        ax = kd.axis(k, op=op, n=1)
        dk = kd.step_drift(1)[k] if kd.has_drift else g
        A, n, B = (1, g.shape[0], g.shape[1]) if k == 0 else (g.shape[0], g.shape[1], 1)
        g3, d3, s3 = (z.reshape((A, n, B)) for z in (g, dk, src))
        W = op.hw[ax.hn].reshape((A, n, B)) if ax.hkind == kernels.HAM_WEIGHTED else np.ones((A, n, B))
        inv_h, dif = kernels.stencil_scales(ax.nu, ax.h)
        for a in range(A):
            ref = np.zeros((4, n, B))
            cost2 = np.zeros((n, B))
            for i in range(n):
                im, ip = (i - 1) % n, (i + 1) % n
                for b in range(B):
                    lower, upper, cst = kernels.ham_row(
                        g3[a, im, b], g3[a, i, b], g3[a, ip, b], d3[a, i, b] if ax.has_drift else 0.0, ax.has_drift,
                        i > 0 or ax.periodic, i < n - 1 or ax.periodic, dif, inv_h, ax.dt, ax.hkind, ax.hpar,
                        W[a, i, b])
                    ref[:, i, b] = lower, 1.0 - lower - upper, upper, s3[a, i, b] + ax.dt * (0.5 * cst)
                    cost2[i, b] = cst
            lo, di, up, rhs = (np.full((n, B), np.nan) for _ in range(4))
            kernels._rows_h(g3, d3, a, ax, s3, lo, di, up, rhs, True)
            for got, want in zip((lo, di, up, rhs), ref):
                np.testing.assert_array_equal(got, want)
            E, C, out = (np.full((n, B), np.nan) for _ in range(3))   # the residual passes' costs
            kernels.edge_costs(g3, a, ax, W if ax.hkind == kernels.HAM_WEIGHTED else W[:1, :1, :1], E, C, out)
            np.testing.assert_array_equal(out, cost2)
            if B == 1 and not ax.periodic:   # the contiguous-line builder, its rows and those of M^T
                L, U, D, r = (np.full(n, np.nan) for _ in range(4))
                kernels._line_rows_h(g3[a, :, 0], d3[a, :, 0], ax, False, L, U, D, s3[a, :, 0], r, True, a)
                for got, want in zip((L, D, U, r), ref[:, :, 0]):
                    np.testing.assert_array_equal(got, want)
                kernels._line_rows_h(g3[a, :, 0], d3[a, :, 0], ax, True, L, U, D, s3[a, :, 0], r, False, a)
                np.testing.assert_array_equal(D, ref[1, :, 0])
                np.testing.assert_array_equal(L[1:], ref[2, :-1, 0])   # lower^T_i = upper_{i-1}
                np.testing.assert_array_equal(U[:-1], ref[0, 1:, 0])   # upper^T_i = lower_{i+1}


def test_power_two_is_the_quadratic_hamiltonian_bit_for_bit():
    """Power(2): h'(p) = p and L = p^2 / 2 exactly (|p| itself, not the series of ``pow_fast``), per edge and per
    node."""
    rng = np.random.default_rng(5)
    p = np.concatenate([[0.0, 1e-310, -3.0], rng.normal(0.0, 3.0, 500)])
    hp = mp.Power(2.0).params()
    P, C = p.copy(), np.empty(p.size)
    kernels.ham_edges(P, C, kernels.HAM_POWER, hp, True)
    np.testing.assert_array_equal(P, p)
    np.testing.assert_array_equal(C, 0.5 * (p * p))
    side = np.array([kernels.ham_side(x, kernels.HAM_POWER, hp, 1.0) for x in p])
    np.testing.assert_array_equal(side[:, 0], p)


def test_separable_table_slope_has_the_sign_of_p():
    """The kernels read the upwind side from the sign of h' (``_edge_row``): a tabulated h' that is flat at 0 and
    shifted by round-off (within the dh(0) = 0 check) is clamped to the sign of p, so the edge rows still equal
    ``ham_row``'s."""
    def dh(p):
        return np.where(np.abs(p) < 0.5, 0.0, p - np.sign(p) * 0.5) + 1e-14

    def h(p):
        a = np.maximum(np.abs(p) - 0.5, 0.0)
        return 0.5 * a * a + 1e-14 * p

    H = mp.Separable(h, dh, p_max=4.0, n=401)
    d = H._d
    mid = (d.size - 1) // 2
    assert np.all(d[:mid] <= 0.0) and d[mid] == 0.0 and np.all(d[mid + 1:] >= 0.0)
    hp = kernel_data(mp.MFGProblem(mp.Grid([(0, 1)], 8), 1.0, 2, 0.3, np.ones(8), hamiltonian=H)).op.hpar
    p = np.linspace(-3.0, 3.0, 601)
    P, C = p.copy(), np.empty(p.size)
    kernels.ham_edges(P, C, kernels.HAM_TABLE, hp, True)
    assert np.all(P * p >= 0.0)   # h'(p) has the sign of p, or is 0
