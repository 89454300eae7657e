"""Second-order, positive, O(N) Hopf-Cole sweeps: Crank-Nicolson substeps short enough to stay positive.

At zero policy the core operator along axis k is M_k = I + dt L_k (diffusion plus upwinded drift, see
``fd.kernels``); Q_k = -L_k is Metzler (off-diagonal >= 0) and tridiagonal (cyclic on periodic axes).
Over a time step the generator is advanced by s_k Crank-Nicolson substeps of length tau_k = dt / s_k:

    C_k = S_k^{-1} E_k,     S_k = I - (tau_k / 2) Q_k,     E_k = I + (tau_k / 2) Q_k,     K_k = C_k^{s_k}

C_k is the (1,1) Pade approximant of exp(tau_k Q_k): second order.  S_k is an M-matrix, so S_k^{-1} >= 0
entrywise; E_k >= 0 entrywise exactly when its diagonal 1 - (tau_k / 2) |Q_k,ii| is >= 0, which fixes

    s_k = ceil(dt max_i |Q_k,ii| / 2)

(one substep while dt nu / h^2 <= 1, i.e. the diffusion number of the step).  Every factor is then
entrywise non-negative, for any dt: m = phi psi >= 0 without a CFL condition on dt, only on the
substeps, which cost O(N) each.  A scheme that is a fixed rational function of dt Q cannot be both
second order and positive for every dt (rational approximations absolutely monotone on (-inf, 0] are
at most first order); the substep count is what buys positivity here.

Tails: the tridiagonal solves are done by Gaussian elimination without pivoting on the M-matrix S_k
(the cyclic case keeps a fill column and a fill row), whose multipliers and fill entries all have
fixed signs: with non-negative data, every right-hand-side update and back-substitution step adds
non-negative numbers, and E_k has non-negative entries.  So every value is computed to relative
round-off, however small (a density of 1e-200 keeps its digits), exactly as the implicit-Euler sweeps.

The axes act on different coordinates and, for a base drift whose k-th component depends on x_k alone
and not on t, with coefficients that depend on their own coordinate only: the K_k commute and the order
of the product does not matter.  The Hopf-Cole step is Strang-split with the potential at the step
midpoint (P^n = exp(-dt Vtot^{n+1/2} / (2 sigma^2))):

    phi^n     = P^n K_0 ... K_{d-1} P^n phi^{n+1}            psi^{n+1} = P^n K_{d-1}^T ... K_0^T P^n psi^n

The forward factor is the exact transpose of the backward one, so sum phi^n psi^n is the same at every
level: the mass of m = phi psi is exact.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..fd.kernels import _workspace, apply_axis
from .hopf_cole import _store_scaled

#: contiguous lines are transposed into SIMD lanes from this many lines on
LANES_MIN = 8

#: rows of a factor table (one per axis and direction), each of length n_k (padded to the largest n)
EL, ED, EU, MUL, WINV, UP, FILL, LAST, DLINV = range(9)


def static_separable_drift(kd):
    """None when the base drift is absent, or time-independent with b_k depending on x_k only (the
    condition for commuting per-axis generators); otherwise a sentence saying why not."""
    if not kd.has_drift:
        return None
    if kd.drift.shape[0] != 1:
        return "the base drift depends on t"
    for k in range(kd.ndim):
        n = int(kd.shape3[k])
        bk = np.moveaxis(kd.drift[0, k], k, 0).reshape(n, -1)
        if not np.allclose(bk, bk[:, :1], rtol=1e-12, atol=1e-14 * (1.0 + np.abs(bk).max())):
            return f"component {k} of the base drift depends on other coordinates than x_{k}"
    return None


def axis_tridiagonal(kd, k):
    """(lower, diag, upper) of the generator Q_k = -L_k along axis k at zero policy, each of length n_k:
    row i is lower[i] x_{i-1} + diag[i] x_i + upper[i] x_{i+1}; on a periodic axis lower[0] and
    upper[n-1] are the wrap-around entries (0 otherwise).

    Read off the kernels' own stencil: ``apply_axis`` of M_k = I + L_k (dt = 1) on comb vectors (every
    q-th cell), with q chosen so that the three entries of every row fall on different combs."""
    why = static_separable_drift(kd)
    if why is not None:
        raise ValueError(f"the per-axis planning sweeps need a time-independent base drift with b_k depending on "
                         f"x_k only: {why}; use time_scheme='euler'")
    n = int(kd.shape3[k])
    periodic = bool(kd.periodic[k])
    if n < 3:
        raise ValueError(f"axis {k} has {n} cells: the planning sweeps need at least 3 per axis")
    q = 3
    while periodic and not (n % q == 0 or n % q >= 3):
        q += 1
    line = np.zeros(n)
    if kd.has_drift:
        line = np.moveaxis(kd.drift[0, k], k, 0).reshape(n, -1)[:, 0].copy()
    shape = (n, q, 1)
    x = np.zeros(shape)
    idx = np.arange(n)
    x[idx, idx % q, 0] = 1.0
    out = np.empty(shape)
    drift_k = np.ascontiguousarray(np.broadcast_to(line[:, None, None], shape))
    apply_axis(np.zeros(shape), drift_k, 0, kd.axis(k, 1.0), False, x, out, _workspace(shape))
    Mq = out[:, :, 0]  # (M comb_c)_i: row i's entries in columns j = c (mod q)
    diag = 1.0 - Mq[idx, idx % q]
    lower = -Mq[idx, ((idx - 1) % n) % q]
    upper = -Mq[idx, ((idx + 1) % n) % q]
    if not periodic:
        lower[0] = 0.0
        upper[n - 1] = 0.0
    return lower, diag, upper


def substeps(diag, dt, factor: float = 1.0) -> int:
    """s = ceil(factor dt max|Q_ii| / 2): with factor 1 the fewest Crank-Nicolson substeps with
    E = I + (dt/s/2) Q >= 0; a larger factor takes proportionally shorter substeps (smaller error constant
    where the fields vary by large factors from cell to cell)."""
    return max(1, math.ceil(factor * dt * float(np.max(np.abs(diag))) / 2.0 * (1.0 - 1e-13)))


def _eliminate(lo, di, up, periodic):
    """Gaussian elimination (no pivoting) of the cyclic tridiagonal M-matrix with rows (lo, di, up):
    returns (mul, winv, u, fill, last, dlinv) for ``_solve_line`` / ``_solve_lanes``.  All multipliers
    and fill entries are <= 0, every pivot > 0 (checked)."""
    n = di.size
    mul = np.zeros(n)
    w = np.zeros(n)
    u = up.copy()
    fill = np.zeros(n)
    last = np.zeros(n)
    w[0] = di[0]
    fill[0] = lo[0] if periodic else 0.0
    for i in range(1, n - 1):
        mul[i] = lo[i] / w[i - 1]
        w[i] = di[i] - mul[i] * u[i - 1]
        fill[i] = -mul[i] * fill[i - 1]
    u[n - 2] += fill[n - 2]  # column n-1 is the fill column: row n-2's upper entry and fill coincide
    fill[n - 2] = 0.0
    dl = di[n - 1]
    g = up[n - 1] if periodic else 0.0  # last row, entry in column j (starts at column 0)
    for j in range(n - 2):
        last[j] = g / w[j]
        dl -= last[j] * fill[j]
        g = -last[j] * u[j]
    e = g + lo[n - 1]
    last[n - 2] = e / w[n - 2]
    dl -= last[n - 2] * u[n - 2]
    w[n - 1] = dl
    if not np.all(w > 0):
        raise ValueError("the Crank-Nicolson substep matrix is not an M-matrix (a pivot <= 0)")
    return mul, 1.0 / w, u, fill, last


def factor_table(kd, dt, factor: float = 1.0):
    """Per-axis substep counts (``substeps`` with ``factor``) and factor tables: (nsub (ndim,), table (ndim, 2,
    9, nmax)), direction 0
    for the backward sweep (C = S^{-1} E) and 1 for the forward sweep (C^T = E^T S^{-T})."""
    ndim = kd.ndim
    nmax = max(int(kd.shape3[k]) for k in range(ndim))
    table = np.zeros((ndim, 2, 9, nmax))
    nsub = np.zeros(ndim, dtype=np.int64)
    for k in range(ndim):
        lo, di, up = axis_tridiagonal(kd, k)
        n = di.size
        periodic = bool(kd.periodic[k])
        s = substeps(di, dt, factor)
        nsub[k] = s
        half = 0.5 * dt / s
        e_lo, e_di, e_up = half * lo, np.maximum(1.0 + half * di, 0.0), half * up
        s_lo, s_di, s_up = -half * lo, 1.0 - half * di, -half * up
        # transposes: row i of A^T has lower A[i-1, i] = up[i-1] and upper A[i+1, i] = lo[i+1] (cyclic)
        for d, (el, ed, eu, sl, sd, su) in enumerate((
                (e_lo, e_di, e_up, s_lo, s_di, s_up),
                (np.roll(e_up, 1), e_di, np.roll(e_lo, -1), np.roll(s_up, 1), s_di, np.roll(s_lo, -1)))):
            if not periodic:
                el, eu, sl, su = el.copy(), eu.copy(), sl.copy(), su.copy()
                el[0] = eu[n - 1] = sl[0] = su[n - 1] = 0.0
            mul, winv, u, fill, last = _eliminate(sl, sd, su, periodic)
            u, fill = u * winv, fill * winv  # pre-scaled: one multiply-add per node on the back-substitution chain
            for row, arr in ((EL, el), (ED, ed), (EU, eu), (MUL, mul), (WINV, winv), (UP, u), (FILL, fill),
                             (LAST, last)):
                table[k, d, row, :n] = arr
    return nsub, table


# ----------------------------------------------------------------------------- kernels


@njit(cache=True, error_model="numpy", inline="always")
def _explicit_rows(src, dst, tab, n, periodic):
    """dst <- E src along axis 0 of the (n, B) arrays: row i is EL_i src_{i-1} + ED_i src_i + EU_i src_{i+1}
    (wrapping on a periodic axis)."""
    B = src.shape[1]
    el = tab[EL]
    ed = tab[ED]
    eu = tab[EU]
    for i in range(n):
        lo = el[i]
        up = eu[i]
        if not periodic:
            if i == 0:
                lo = 0.0
            if i == n - 1:
                up = 0.0
        di = ed[i]
        xm = src[i - 1 if i > 0 else n - 1]
        x0 = src[i]
        xp = src[i + 1 if i < n - 1 else 0]
        di_ = dst[i]
        for b in range(B):
            di_[b] = lo * xm[b] + di * x0[b] + up * xp[b]


@njit(cache=True, error_model="numpy", inline="always")
def _eliminate_rows(src, dst, tab, n, periodic):
    """Forward elimination of S z = src along axis 0 of (n, B) arrays into dst (src may be dst):
    z_i = src_i - MUL_i z_{i-1}, then the last row against every reduced row (cyclic) or the one above."""
    B = src.shape[1]
    mul = tab[MUL]
    last = tab[LAST]
    d0 = dst[0]
    s0 = src[0]
    for b in range(B):
        d0[b] = s0[b]
    for i in range(1, n):
        di_ = dst[i]
        si = src[i]
        if i < n - 1:
            m = mul[i]
            dp = dst[i - 1]
            for b in range(B):
                di_[b] = si[b] - m * dp[b]
        else:
            for b in range(B):
                di_[b] = si[b]
    xl = dst[n - 1]
    if periodic:
        for j in range(n - 1):
            lj = last[j]
            xj = dst[j]
            for b in range(B):
                xl[b] -= lj * xj[b]
    else:
        lj = last[n - 2]
        xj = dst[n - 2]
        for b in range(B):
            xl[b] -= lj * xj[b]


@njit(cache=True, error_model="numpy", inline="always")
def _back_rows(src, dst, tab, n, periodic):
    """Back substitution of the reduced system in src into dst along axis 0 of (n, B) arrays (src may be
    dst): x_{n-1} = z_{n-1} / w_{n-1}, x_i = z_i / w_i - UP_i x_{i+1} - FILL_i x_{n-1} (UP, FILL stored
    divided by the pivot w_i)."""
    B = src.shape[1]
    winv = tab[WINV]
    up = tab[UP]
    fill = tab[FILL]
    wl = winv[n - 1]
    xl = dst[n - 1]
    sl = src[n - 1]
    for b in range(B):
        xl[b] = sl[b] * wl
    for i in range(n - 2, -1, -1):
        u = up[i]
        f = fill[i] if periodic else 0.0
        wi = winv[i]
        xi = dst[i]
        si = src[i]
        xn = dst[i + 1]
        for b in range(B):
            xi[b] = si[b] * wi - u * xn[b] - f * xl[b]


@njit(cache=True, error_model="numpy")
def _substeps_lanes(x, tab, n, periodic, solve_first, nsub, tmp):
    """x <- (S^{-1} E)^nsub x (or (E S^{-1})^nsub x with the transposed table) along axis 1 of x (A, n, B),
    B lanes at once; tmp: (n, B) scratch."""
    A = x.shape[0]
    for a in range(A):
        xa = x[a]
        for _ in range(nsub):
            if solve_first:
                _eliminate_rows(xa, xa, tab, n, periodic)
                _back_rows(xa, tmp, tab, n, periodic)
                _explicit_rows(tmp, xa, tab, n, periodic)
            else:
                _explicit_rows(xa, tmp, tab, n, periodic)
                _eliminate_rows(tmp, xa, tab, n, periodic)
                _back_rows(xa, xa, tab, n, periodic)


@njit(cache=True, error_model="numpy")
def _substeps_line(x, tab, n, periodic, solve_first, nsub):
    """The same on one contiguous line, with the explicit product fused into the elimination (S^{-1} E) or
    into the back substitution (E S^{-1}): two passes per substep, the neighbours kept in registers."""
    el = tab[EL]
    ed = tab[ED]
    eu = tab[EU]
    mul = tab[MUL]
    winv = tab[WINV]
    up = tab[UP]
    fill = tab[FILL]
    last = tab[LAST]
    for _ in range(nsub):
        if not solve_first:
            # z = E x on the fly, eliminated in the same pass (x_{i-1} kept before it is overwritten)
            x0 = x[0]
            xn1 = x[n - 1]
            prev = x0
            z = (el[0] * xn1 if periodic else 0.0) + ed[0] * x0 + eu[0] * x[1]
            x[0] = z
            for i in range(1, n - 1):
                cur = x[i]
                e = el[i] * prev + ed[i] * cur + eu[i] * x[i + 1]
                z = e - mul[i] * z
                x[i] = z
                prev = cur
            xl = el[n - 1] * prev + ed[n - 1] * xn1 + (eu[n - 1] * x0 if periodic else 0.0)
            if periodic:
                for j in range(n - 1):
                    xl -= last[j] * x[j]
            else:
                xl -= last[n - 2] * x[n - 2]
            xl *= winv[n - 1]
            x[n - 1] = xl
            nxt = xl
            if periodic:
                for i in range(n - 2, -1, -1):
                    nxt = x[i] * winv[i] - up[i] * nxt - fill[i] * xl
                    x[i] = nxt
            else:
                for i in range(n - 2, -1, -1):
                    nxt = x[i] * winv[i] - up[i] * nxt
                    x[i] = nxt
        else:
            for i in range(1, n - 1):
                x[i] -= mul[i] * x[i - 1]
            yl = x[n - 1]
            if periodic:
                for j in range(n - 1):
                    yl -= last[j] * x[j]
            else:
                yl -= last[n - 2] * x[n - 2]
            yl *= winv[n - 1]
            # back substitution for y = S^{-1} x, writing row i of E y as soon as y_{i-1} is known
            y_up = yl
            y_i = x[n - 2] * winv[n - 2] - up[n - 2] * yl
            y_nm2 = y_i
            for i in range(n - 2, 0, -1):
                y_dn = x[i - 1] * winv[i - 1] - up[i - 1] * y_i - (fill[i - 1] * yl if periodic else 0.0)
                x[i] = el[i] * y_dn + ed[i] * y_i + eu[i] * y_up
                y_up = y_i
                y_i = y_dn
            x[0] = (el[0] * yl if periodic else 0.0) + ed[0] * y_i + eu[0] * y_up
            x[n - 1] = el[n - 1] * y_nm2 + ed[n - 1] * yl + (eu[n - 1] * y_i if periodic else 0.0)


@njit(cache=True, error_model="numpy")
def cn_axis(x, k, tab, nsub, periodic, solve_first, tmp):
    """Apply K_k = (S^{-1} E)^s (solve_first False) or K_k^T = (E^T S^{-T})^s (solve_first True, with the
    transposed table) along axis k of the 3-D field x, in place; tmp: scratch of 2 x.size."""
    s0, s1, s2 = x.shape
    n = x.shape[k]
    if k == 0:
        A, B = 1, s1 * s2
    elif k == 1:
        A, B = s0, s2
    else:
        A, B = s0 * s1, 1
    if B == 1 and A >= LANES_MIN:
        # contiguous lines: transpose the block so that the lines become lanes (the recurrences along a line
        # are latency-bound one line at a time), substep there, transpose back
        x2 = x.reshape((A, n))
        xt = tmp[:n * A].reshape((n, A))
        _transpose(x2, xt)
        _substeps_lanes(xt.reshape((1, n, A)), tab, n, periodic, solve_first, nsub,
                        tmp[n * A:2 * n * A].reshape((n, A)))
        _transpose(xt, x2)
        return
    if B == 1:
        x2 = x.reshape((A, n))
        for a in range(A):
            _substeps_line(x2[a], tab, n, periodic, solve_first, nsub)
        return
    _substeps_lanes(x.reshape((A, n, B)), tab, n, periodic, solve_first, nsub, tmp[:n * B].reshape((n, B)))


@njit(cache=True, error_model="numpy")
def _transpose(src, dst):
    """dst = src.T for 2-D arrays, in cache blocks."""
    r, c = src.shape
    blk = 32
    for i0 in range(0, r, blk):
        i1 = min(i0 + blk, r)
        for j0 in range(0, c, blk):
            j1 = min(j0 + blk, c)
            for i in range(i0, i1):
                for j in range(j0, j1):
                    dst[j, i] = src[i, j]


@njit(cache=True, error_model="numpy")
def _scale(buf, P):
    bf = buf.reshape(buf.size)
    pf = P.reshape(buf.size)
    for i in range(bf.size):
        bf[i] *= pf[i]


@njit(cache=True)
def cn_backward_sweep(phi, logscale, P, table, nsub, periodic):
    """phi^n = P^n K_0 ... K_{d-1} P^n phi^{n+1}, n = Nt-1..0, from phi[Nt] (with logscale[Nt]); P (Nt or 1,
    *shape3) the half-step potential factors; each level stored scaled to max 1 with its log scale."""
    Nt = phi.shape[0] - 1
    ndim = nsub.size
    buf = np.empty(phi.shape[1:])
    tmp = np.empty(2 * buf.size)
    static = P.shape[0] == 1
    for n in range(Nt - 1, -1, -1):
        Pn = P[0] if static else P[n]
        buf[:] = phi[n + 1]
        _scale(buf, Pn)
        for k in range(ndim):
            cn_axis(buf, k, table[k, 0], nsub[k], periodic[k], False, tmp)
        _scale(buf, Pn)
        _store_scaled(buf, phi[n], logscale, n, logscale[n + 1])


@njit(cache=True)
def cn_forward_sweep(psi, logscale, P, table, nsub, periodic):
    """psi^{n+1} = P^n K_{d-1}^T ... K_0^T P^n psi^n, n = 0..Nt-1, from psi[0] (with logscale[0])."""
    Nt = psi.shape[0] - 1
    ndim = nsub.size
    buf = np.empty(psi.shape[1:])
    tmp = np.empty(2 * buf.size)
    static = P.shape[0] == 1
    for n in range(Nt):
        Pn = P[0] if static else P[n]
        buf[:] = psi[n]
        _scale(buf, Pn)
        for j in range(ndim):
            k = ndim - 1 - j
            cn_axis(buf, k, table[k, 1], nsub[k], periodic[k], True, tmp)
        _scale(buf, Pn)
        _store_scaled(buf, psi[n + 1], logscale, n + 1, logscale[n])
