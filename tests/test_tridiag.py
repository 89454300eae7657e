"""Accuracy of tridiag.two_ended_minors (division-free two-ended tridiagonal solver) against dense LU
(numpy.linalg.solve), an extended-precision Thomas reference and kernels._two_ended_thomas, on random
M-matrices and their transposes: mild, stiff (D ~ 1e6, off-diagonals ~ -5e5), nearly singular (unit
row sums with off-diagonals 1e3..5e5), one-sided drift rows, converging drift ("sink": nearly
singular 2x2 block in the middle), every n from 1 to 100 (all remainders of the 16-step rescaling
blocks, odd and even), a few larger n and n = 500, 1000, 1001, 4000, 4001."""

import numpy as np
import pytest

from mfg_pde.fd import kernels as K
from mfg_pde.fd import tridiag as T

EPS = np.finfo(float).eps
LD = np.longdouble
HAVE_LD = np.finfo(LD).eps < 1e-18          # x87 80-bit long double (not on every platform)


def _m_matrix(rng, n, scale, kind="random", transpose=False):
    """Rows of an M-matrix with unit row sums (or of its transpose): L, U <= 0, D = 1 - L - U."""
    if kind == "random":
        lo = -rng.random(n) * scale
        up = -rng.random(n) * scale
    elif kind == "diffusion":          # constant off-diagonals: nearly singular, Laplacian-like
        lo = np.full(n, -scale)
        up = np.full(n, -scale)
    elif kind == "drift":              # one-sided (upwind) rows of random direction, weak diffusion
        s = rng.random(n) < 0.5
        lo = -np.where(s, scale, 1e-3 * scale) * rng.random(n)
        up = -np.where(s, 1e-3 * scale, scale) * rng.random(n)
    elif kind == "sink":               # drift towards the middle: nearly singular 2x2 block there
        i = np.arange(n)
        lo = -np.where(i >= n // 2, scale, 1e-6 * scale) * (0.5 + rng.random(n))
        up = -np.where(i < n // 2, scale, 1e-6 * scale) * (0.5 + rng.random(n))
    else:
        raise ValueError(kind)
    lo[0] = 0.0
    up[-1] = 0.0
    di = 1.0 - lo - up
    if transpose:                      # rows of M^T: lower^T_i = upper_{i-1}, upper^T_i = lower_{i+1}
        L = np.zeros(n)
        U = np.zeros(n)
        L[1:] = up[:-1]
        U[:-1] = lo[1:]
        return L, di.copy(), U
    return lo, di, up


def _dense(L, D, U):
    return np.diag(D) + np.diag(L[1:], -1) + np.diag(U[:-1], 1)


def _solve_new(L, D, U, r):
    n = D.shape[0]
    x = np.full(n, np.nan)
    c = np.full(n, np.nan)
    saved = (L.copy(), D.copy(), U.copy(), r.copy())
    T.two_ended_minors(L, D, U, r, x, c)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip((L, D, U, r), saved))   # inputs untouched
    return x


def _solve_old(L, D, U, r):
    n = D.shape[0]
    x = np.empty(n)
    c = np.empty(n)
    if n == 1:                          # (kernels._two_ended_thomas reads x[1] when n == 1)
        x[0] = r[0] / D[0]
    else:
        K._two_ended_thomas(L, D, U, r, x, c)
    return x


def _dense_solve_and_cond(A, r):
    """Dense LU solution of A x = r and kappa_inf(A) = ||A||_inf ||A^{-1} 1||_inf (A^{-1} >= 0 for
    the M-matrices and transposes used here, so one extra right-hand side gives ||A^{-1}||_inf)."""
    sol = np.linalg.solve(A, np.column_stack([r, np.ones_like(r)]))
    return sol[:, 0], np.abs(A).sum(axis=1).max() * np.abs(sol[:, 1]).max()


def _relerr(x, ref):
    return float(np.abs(x - ref).max() / np.abs(ref).max())


def _backward_error(L, D, U, r, x):
    """Componentwise backward error  max_i |r - A x|_i / (|A| |x| + |r|)_i  (residual in long double)."""
    L, D, U, r, x = (a.astype(LD) for a in (L, D, U, r, x))
    res = D * x - r
    den = np.abs(D * x) + np.abs(r)
    res[1:] += L[1:] * x[:-1]
    res[:-1] += U[:-1] * x[1:]
    den[1:] += np.abs(L[1:] * x[:-1])
    den[:-1] += np.abs(U[:-1] * x[1:])
    return float(np.max(np.abs(res) / den))


def _thomas_ld(L, D, U, r):
    """Thomas' algorithm in long double: a reference ~2000x more accurate than any double solver."""
    n = D.shape[0]
    L, D, U, r = (a.astype(LD) for a in (L, D, U, r))
    c = np.zeros(n, LD)
    y = np.zeros(n, LD)
    p = D[0]
    c[0] = U[0] / p
    y[0] = r[0] / p
    for i in range(1, n):
        p = D[i] - L[i] * c[i - 1]
        c[i] = U[i] / p
        y[i] = (r[i] - L[i] * y[i - 1]) / p
    for i in range(n - 2, -1, -1):
        y[i] -= c[i] * y[i + 1]
    return y


# all n up to 100 (0..3 full rescaling blocks per half, every remainder, odd and even) and a few more
SMALL_N = list(range(1, 101)) + [129, 130, 161, 162, 163]
CASES = [("random", 1e-3), ("random", 1.0), ("random", 1e3), ("random", 5e5),
         ("diffusion", 1e3), ("diffusion", 5e5), ("drift", 1e3), ("drift", 5e5), ("sink", 1e3), ("sink", 5e5)]


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("kind,scale", CASES)
def test_small_n(kind, scale, transpose):
    """Every n = 1..100 (and a few larger): forward error vs dense LU within the condition-number
    bound, componentwise backward error at round-off level (as the division-based sweep), error vs
    an extended-precision reference no worse than the current solver's (max and median over n)."""
    rng = np.random.default_rng(1234)
    e_new, e_old = [], []
    for n in SMALL_N:
        L, D, U = _m_matrix(rng, n, scale, kind, transpose)
        r = rng.standard_normal(n)
        A = _dense(L, D, U)
        x_new = _solve_new(L, D, U, r)
        x_old = _solve_old(L, D, U, r)
        ref, kappa = _dense_solve_and_cond(A, r)
        assert _relerr(x_new, ref) <= 8 * EPS * kappa, (n, _relerr(x_new, ref), _relerr(x_old, ref), kappa)
        if scale <= 1.0:
            assert _relerr(x_new, ref) <= 1e-14
        assert _backward_error(L, D, U, r, x_new) <= 4 * EPS, n
        if HAVE_LD:
            exact = _thomas_ld(L, D, U, r)
            e_new.append(_relerr(x_new, exact))
            e_old.append(_relerr(x_old, exact))
    if HAVE_LD:
        assert max(e_new) <= 2.0 * max(e_old) + 2 * EPS, (max(e_new), max(e_old))
        assert np.median(e_new) <= 2.0 * np.median(e_old) + 2 * EPS, (np.median(e_new), np.median(e_old))


@pytest.mark.parametrize("n", [1000, 1001, 4000, 4001])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("kind,scale", CASES)
def test_large_n_against_two_ended_thomas(n, kind, scale, transpose):
    rng = np.random.default_rng(n)
    L, D, U = _m_matrix(rng, n, scale, kind, transpose)
    r = rng.standard_normal(n)
    x_old = _solve_old(L, D, U, r)
    x_new = _solve_new(L, D, U, r)
    # both are backward stable; they agree to (condition number) x eps, cond <= ~4 scale + 1 here
    assert _relerr(x_new, x_old) <= 16 * EPS * (4 * scale + 1)
    assert _backward_error(L, D, U, r, x_new) <= 4 * EPS


def test_large_n_against_dense():
    rng = np.random.default_rng(7)
    for n in (500,):
        for transpose in (False, True):
            for kind, scale in CASES:
                L, D, U = _m_matrix(rng, n, scale, kind, transpose)
                r = rng.standard_normal(n)
                A = _dense(L, D, U)
                ref, kappa = _dense_solve_and_cond(A, r)
                x_new = _solve_new(L, D, U, r)
                assert _relerr(x_new, ref) <= 8 * EPS * kappa, (n, kind, scale, transpose)


def test_application_rows():
    """Rows exactly as kernels._line_rows builds them (M_k and M_k^T) for a rough value function."""
    rng = np.random.default_rng(3)
    for n in (3, 4, 17, 200, 1000, 1001):
        g = np.cumsum(rng.standard_normal(n)) * 0.3
        d = rng.standard_normal(n) * 5.0
        for transpose in (False, True):
            for dt, h in ((1e-3, 1e-3), (0.1, 1e-3), (1.0, 1e-4)):
                L, U, D = np.empty(n), np.empty(n), np.empty(n)
                ax = K.Axis(0.2, dt, h, False, True, False, False, 0, np.zeros((3, 2, 1)), False,
                            np.zeros((3, 1, 1, 1), dtype=np.int8))
                K._line_rows(g, d, ax, transpose, L, U, D, 0)
                r = rng.random(n)
                x_new = _solve_new(L, D, U, r)
                x_old = _solve_old(L, D, U, r)
                assert _relerr(x_new, x_old) <= 1e-15 * (1 + 4 * dt * (0.2 / h**2 + 50 / h))
                assert _backward_error(L, D, U, r, x_new) <= 4 * EPS
                if transpose:   # FP step: mass is conserved, sum(M^{-T} r) = sum(r), up to cond x eps
                    err = abs(x_new.sum() - r.sum())
                    assert err <= 8 * EPS * D.max() * np.abs(r).sum()


def test_range_guard():
    """Huge / tiny entries: the minors overflow between rescalings and the guard hands the line to
    the division-based sweep (or they do not, and the fast path is right); NaN in gives NaN out."""
    rng = np.random.default_rng(5)
    for n in (5, 40, 300):
        for s in (1e14, 1e-14, 1e100):
            L, D, U = _m_matrix(rng, n, 1e3, "random")
            L, D, U = L * s, D * s, U * s
            r = rng.standard_normal(n)
            x = _solve_new(L, D, U, r)
            assert np.all(np.isfinite(x))
            assert _backward_error(L, D, U, r, x) <= 4 * EPS
    L, D, U = _m_matrix(rng, 100, 1.0)
    D[50] = np.nan
    assert np.isnan(_solve_new(L, D, U, np.ones(100))).any()


def test_diagonally_dominant_non_m_matrix():
    """Mixed-sign off-diagonals and negative diagonals, strictly diagonally dominant: still exact to
    round-off (the algorithm is Thomas' in homogeneous coordinates; signs of the minors do not matter)."""
    rng = np.random.default_rng(11)
    for n in (1, 2, 3, 10, 99, 500):
        L = rng.standard_normal(n)
        U = rng.standard_normal(n)
        L[0] = 0.0
        U[-1] = 0.0
        D = (np.abs(L) + np.abs(U) + 0.5) * np.sign(rng.standard_normal(n))
        r = rng.standard_normal(n)
        ref = np.linalg.solve(_dense(L, D, U), r)
        assert _relerr(_solve_new(L, D, U, r), ref) < 1e-13


def test_in_place():
    """x may be r itself (as with kernels._two_ended_thomas)."""
    rng = np.random.default_rng(13)
    for n in (1, 2, 3, 50, 1001):
        L, D, U = _m_matrix(rng, n, 1e3, "random")
        r = rng.standard_normal(n)
        x = _solve_new(L, D, U, r)
        rr = r.copy()
        T.two_ended_minors(L, D, U, rr, rr, np.empty(n))
        assert _relerr(rr, x) <= 1e-12
