"""Fast solver for one tridiagonal line: two-ended elimination with division-free pivot chains.

``two_ended_minors(L, D, U, r, x, c)`` solves  L_i x_{i-1} + D_i x_i + U_i x_{i+1} = r_i  (L_0 = U_{n-1} = 0)
with the exact signature (and the scratch c of length n) of ``kernels._two_ended_thomas``; it is a
drop-in replacement about 3-4x faster for n ~ 100..4000 (see benchmarks/bench_tridiag.py).

Why the textbook sweep is slow.  Thomas' pivots p_i = D_i - L_i U_{i-1} / p_{i-1} form a chain in which
every step waits for a division (latency ~13-15 cycles) plus a multiply and a subtraction; the
two-ended variant runs two such chains at once, still ~6 ns per unknown.

Algorithm (top half; the bottom half is the mirror image, eliminating upwards from row n-1, with
L and U exchanged; both halves run interleaved: four independent fma chains):

 1. Leading principal minors instead of pivots.  With q_{-1} = 1, q_0 = D_0,

        q_i = D_i q_{i-1} - (L_i U_{i-1}) q_{i-2},          p_i = q_i / q_{i-1},

    a LINEAR recurrence: one fused multiply-add on the critical path (4 cycles), no division.
    The forward substitution y_i = (r_i - L_i y_{i-1}) / p_i is carried homogeneously as
    z_i = q_i y_i, which obeys the equally division-free recurrence

        z_i = q_{i-1} r_i - L_i z_{i-1}.

    Every _BLOCK = 16 steps the state (q_{i-1}, q_{i-2}, z_{i-1}) is multiplied by s = 1/q_m, m the
    block's midpoint (a value known 8 steps earlier, so the division is off the critical path).
    The stored q_i, z_i of a row always share one scale, so every ratio below is unaffected; only
    the pair (q_{b-1}, q_b) straddling a rescale differs by the known factor s, which is applied to
    that one coefficient.  A range guard (see "Range" below) falls back to the division-based
    two-ended Thomas sweep if the minors ever leave [1e-290, 1e290].
 2. One vectorised pass per block (run one block behind the chains, so the SIMD divisions overlap
    the latency-bound chains): y_i = z_i / q_i and e_i = U_i q_{i-1} / q_i ( = U_i / p_i), one SIMD
    division per unknown.  e_i is stored in c[i-1] (c[j+1] in the bottom half), so the pass works in
    place on c = (q_0, q_1, ...) without an extra array (writes go one slot behind the reads).
 3. Back substitution outwards from the meeting rows k = ntop-1, k+1 (two fma chains):
        x_k = (y_k - e_k y_{k+1}) / (1 - e_k e_{k+1}),    x_{k+1} = y_{k+1} - e_{k+1} x_k,
        x_i = y_i - e_i x_{i+1} (top),    x_j = y_j - e_j x_{j-1} (bottom),
    exactly as in the two-ended Thomas sweep.  (A stride-2 variant, x_i = (y_i - e_i y_{i+1})
    + e_i e_{i+1} x_{i+2} on four chains, was tried: no faster here -- the extra vectorised pass
    eats the gain -- and it loses the componentwise backward stability of the row-by-row
    substitution, up to ~1e3 eps on stiff lines.)

Stability.  For an M-matrix A (L_i, U_i <= 0, A^{-1} >= 0) or its transpose, all leading (and
trailing) principal minors are positive, so every p_i > 0; moreover 0 < p_i <= D_i and, when the rows
of A (or of A^T) are diagonally dominant with margin delta, p_i >= delta (the pivots of A and A^T
coincide).  Thomas' elimination without pivoting is componentwise backward stable for such matrices
(|L||U| = |A| for the triangular factors of an M-matrix; Higham, Accuracy and Stability of Numerical
Algorithms, ch. 9).  The minor recurrence is the same computation in homogeneous coordinates: with
p^_i := q^_i / q^_{i-1} formed from the computed minors, one step of step 1 reads

        p^_i = D_i (1 + t_1) - (L_i U_{i-1}) (1 + t_2) / p^_{i-1},      |t_1|, |t_2| <= 4u,

(the rescaling adds one more rounding to t_1, t_2), i.e. the computed pivots are the exact Thomas
pivots of a matrix whose diagonal and off-diagonal products are perturbed by a few ulps, and the
same holds for y (z^_i / q^_i) and e.  The first-order propagation of errors is identical to
Thomas' (the map (q_{i-1}, q_{i-2}) -> p_i is the Moebius map p_{i-1} -> p_i, with the factor
(D_i - p_i) / p_i); in particular the minors are the dominant solution of their recurrence (for
constant coefficients the roots are real, D^2 >= 4 L U by diagonal dominance, and q_i / q_{i-1} tends
to the larger one), so the components along the subdominant solution that rounding introduces decay
relative to q.  Hence the solver inherits the backward stability of the Thomas algorithm: measured
componentwise backward error <= 1.2 eps, like the division-based sweep, and forward errors equal
to it and to dense LU against an extended-precision reference (tests/test_tridiag.py: random,
stiff, nearly singular, drift, converging-drift M-matrices and their transposes).

Range.  Measured from the last rescaling, |q| is a product of at most 24 consecutive pivots, so it
stays within [(min_i p_i)^24, (max_i D_i)^24] (0 < p_i <= D_i): no overflow for entries up to ~1e12
(the application has D = 1 + dt (2 nu / h^2 + |b| / h) <= ~1e8).  The guard (|q| within [1e-290,
1e290] at every midpoint, block end and at the end of the chains, which also catches inf and NaN)
hands the line to the division-based sweep should that ever fail.

Compiled with error_model="numpy" (IEEE division, no zero checks) and fastmath={"contract"}: only
fusion of a*b + c into fma is allowed (no reassociation, no approximations); the fma's are what
make each chain step a single 4-cycle operation.
"""

from __future__ import annotations

from numba import njit, uint64

_BLOCK = 16        # chain steps between rescalings
_HALF = 8          # the rescaling factor is taken at this step of the block
_BIG = 1e290       # guard: the scaled minors must stay within [1/_BIG, _BIG]

_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})


# ----------------------------------------------------------------------------- reference (fallback)
@njit(**_JIT)
def two_ended_thomas_div(L, D, U, r, x, c):
    """The division-based two-ended Thomas sweep ("burn at both ends": two independent recurrences meet
    in the middle), the reference and fallback of ``two_ended_minors``; also handles n = 1."""
    n = D.shape[0]
    if n == 1:
        x[0] = r[0] / D[0]
        return
    ntop = (n + 1) // 2
    nbot = n - ntop
    inv = 1.0 / D[0]
    c[0] = U[0] * inv
    x[0] = r[0] * inv
    j = n - 1
    inv = 1.0 / D[j]
    c[j] = L[j] * inv
    x[j] = r[j] * inv
    for s in range(1, nbot):
        i = s
        inv = 1.0 / (D[i] - L[i] * c[i - 1])
        c[i] = U[i] * inv
        x[i] = (r[i] - L[i] * x[i - 1]) * inv
        j = n - 1 - s
        inv2 = 1.0 / (D[j] - U[j] * c[j + 1])
        c[j] = L[j] * inv2
        x[j] = (r[j] - U[j] * x[j + 1]) * inv2
    if ntop > nbot:
        i = ntop - 1
        inv = 1.0 / (D[i] - L[i] * c[i - 1])
        c[i] = U[i] * inv
        x[i] = (r[i] - L[i] * x[i - 1]) * inv
    k = ntop - 1
    xk = (x[k] - c[k] * x[k + 1]) / (1.0 - c[k] * c[k + 1])
    x[k] = xk
    x[k + 1] = x[k + 1] - c[k + 1] * xk
    for s in range(1, ntop):
        i = k - s
        x[i] = x[i] - c[i] * x[i + 1]
        j = k + 1 + s
        if j < n:
            x[j] = x[j] - c[j] * x[j - 1]


# ----------------------------------------------------------------------------- building blocks
# Indices are cast to uint64 so that numba emits no negative-index wraparound code (all are >= 0).
@njit(**_JIT)
def _chain_top(i, L, D, U, r, c, x, q1, q2, z1):
    """Row i of the top chain: q_i = D_i q_{i-1} - L_i U_{i-1} q_{i-2},  z_i = q_{i-1} r_i - L_i z_{i-1}."""
    ui = uint64(i)
    um = uint64(i - 1)
    q = D[ui] * q1 - (L[ui] * U[um]) * q2
    # (0 - L), not -L: with -L LLVM rewrites z as q1 r_i - L_i z1 and fuses q1 r_i, putting a multiply
    # AND an fma on the z chain; (0 - L) cannot be folded (signed zeros), so z = fma(a, z1, q1 r_i)
    a = 0.0 - L[ui]
    z = a * z1 + q1 * r[ui]
    c[ui] = q
    x[ui] = z
    return q, q1, z


@njit(**_JIT)
def _chain_bot(j, L, D, U, r, c, x, q1, q2, z1):
    """Row j of the bottom chain (eliminating upwards): the mirror image of _chain_top."""
    uj = uint64(j)
    up = uint64(j + 1)
    q = D[uj] * q1 - (U[uj] * L[up]) * q2
    a = 0.0 - U[uj]
    z = a * z1 + q1 * r[uj]
    c[uj] = q
    x[uj] = z
    return q, q1, z


@njit(**_JIT)
def _ratios_top(lo, hi, U, c, x):
    """Rows lo..hi-1 (lo >= 1) of the top half: y_i = z_i / q_i -> x[i],  e_i = U_i q_{i-1} / q_i -> c[i-1]."""
    for ii in range(lo, hi):
        i = uint64(ii)
        im = i - uint64(1)
        inv = 1.0 / c[i]
        x[i] = x[i] * inv
        c[im] = U[i] * c[im] * inv


@njit(**_JIT)
def _ratios_bot(m, lo, hi, L, c, x):
    """Rows j = m-lo .. m-hi+1 of the bottom half: y_j -> x[j],  e_j = L_j q_{j+1} / q_j -> c[j+1]."""
    for ii in range(lo, hi):
        j = uint64(m - ii)
        jp = j + uint64(1)
        inv = 1.0 / c[j]
        x[j] = x[j] * inv
        c[jp] = L[j] * c[jp] * inv


# ----------------------------------------------------------------------------- the solver
@njit(**_JIT)
def two_ended_minors(L, D, U, r, x, c):
    """Solve L_i x_{i-1} + D_i x_i + U_i x_{i+1} = r_i (L_0 = U_{n-1} = 0) for x; c: scratch of length n.

    Drop-in replacement for kernels._two_ended_thomas (same arguments, same scratch), for M-matrices
    and their transposes (any matrix on which Thomas' algorithm without pivoting is stable).
    Algorithm and stability argument: see the module docstring.  L, D, U, r are not modified;
    x may be r itself (then the division-based sweep is used), but must not partially overlap it."""
    n = D.shape[0]
    if n <= 2 or x.ctypes.data == r.ctypes.data:
        # tiny lines, and in-place solves (x is r): the range guard's fallback below needs r intact
        two_ended_thomas_div(L, D, U, r, x, c)
        return
    m = n - 1
    ntop = (n + 1) // 2            # top half: rows 0..ntop-1, bottom half: rows ntop..m
    nbot = n - ntop
    k = ntop - 1                   # meeting rows k, k+1
    # ---- pass 1 (with pass 2 running one block behind): the four chains
    q1 = D[0]
    q2 = 1.0
    z1 = r[0]
    c[0] = q1
    x[0] = z1
    b1 = D[m]
    b2 = 1.0
    y1 = r[m]
    c[m] = b1
    x[m] = y1
    nblk = (nbot - 1) // _BLOCK    # full blocks of chain steps i = 1 .. nblk*_BLOCK (both halves)
    s_prev = 1.0                   # factor applied to the state at the start of the previous block
    sb_prev = 1.0
    s_last = 1.0                   # factor applied at the end of the previous block
    sb_last = 1.0
    lo = 1.0 / _BIG
    ok = True
    for blk in range(nblk):
        base = 1 + blk * _BLOCK
        for t in range(_HALF):
            i = base + t
            q1, q2, z1 = _chain_top(i, L, D, U, r, c, x, q1, q2, z1)
            b1, b2, y1 = _chain_bot(m - i, L, D, U, r, c, x, b1, b2, y1)
        aq = abs(q1)
        ab = abs(b1)
        ok &= (aq > lo) & (aq < _BIG) & (ab > lo) & (ab < _BIG)
        s = 1.0 / q1
        sb = 1.0 / b1
        for t in range(_HALF, _BLOCK):
            i = base + t
            q1, q2, z1 = _chain_top(i, L, D, U, r, c, x, q1, q2, z1)
            b1, b2, y1 = _chain_bot(m - i, L, D, U, r, c, x, b1, b2, y1)
        aq = abs(q1)
        ab = abs(b1)
        ok &= (aq > lo) & (aq < _BIG) & (ab > lo) & (ab < _BIG)
        q1 *= s
        q2 *= s
        z1 *= s
        b1 *= sb
        b2 *= sb
        y1 *= sb
        if blk >= 1:
            # pass 2 on the previous block, then fix its first row (its q_{i-1} was in the older scale)
            pb = base - _BLOCK
            # hi = min(base, nbot) == base, but a trip count LLVM cannot fold keeps these loops as
            # loops (vectorised with runtime alias checks); with the constant 16 they are fully
            # unrolled and left scalar (numba arrays may alias, so SLP cannot vectorise them).
            hi = min(base, nbot)
            _ratios_top(pb, hi, U, c, x)
            _ratios_bot(m, pb, hi, L, c, x)
            c[pb - 1] *= s_prev
            c[m - pb + 1] *= sb_prev
            s_prev = s_last
            sb_prev = sb_last
        s_last = s
        sb_last = sb
    for i in range(1 + nblk * _BLOCK, nbot):
        q1, q2, z1 = _chain_top(i, L, D, U, r, c, x, q1, q2, z1)
        b1, b2, y1 = _chain_bot(m - i, L, D, U, r, c, x, b1, b2, y1)
    if ntop > nbot:
        q1, q2, z1 = _chain_top(k, L, D, U, r, c, x, q1, q2, z1)
    aq = abs(q1)
    ab = abs(b1)
    ok &= (aq > lo) & (aq < _BIG) & (ab > lo) & (ab < _BIG)
    if not ok:
        two_ended_thomas_div(L, D, U, r, x, c)
        return
    # ---- pass 2 on the rest: the last full block and the tail rows
    x[0] = r[0] / D[0]
    x[m] = r[m] / D[m]
    e0 = U[0] / D[0]
    em = L[m] / D[m]
    p2 = 1
    if nblk >= 1:
        p2 = 1 + (nblk - 1) * _BLOCK
    _ratios_top(p2, ntop, U, c, x)
    _ratios_bot(m, p2, nbot, L, c, x)
    if nblk >= 1:
        c[p2 - 1] *= s_prev
        c[m - p2 + 1] *= sb_prev
        b0 = p2 + _BLOCK           # first row after the last full block
        if b0 < ntop:
            c[b0 - 1] *= s_last
        if b0 < nbot:
            c[m - b0 + 1] *= sb_last
    # ---- meeting rows
    ek = c[k - 1]                  # k >= 1 since n >= 3
    ek1 = c[k + 2] if k + 1 < m else em
    xk = (x[k] - ek * x[k + 1]) / (1.0 - ek * ek1)
    xk1 = x[k + 1] - ek1 * xk
    x[k] = xk
    x[k + 1] = xk1
    # ---- pass 3: back substitution x_i = y_i - e_i x_{i+1} (top), x_j = y_j - e_j x_{j-1} (bottom)
    xt = xk
    xb = xk1
    for s_ in range(1, nbot - 1):
        i = uint64(k - s_)
        xt = x[i] - c[i - uint64(1)] * xt
        x[i] = xt
        j = uint64(k + 1 + s_)
        xb = x[j] - c[j + uint64(1)] * xb
        x[j] = xb
    if ntop > nbot and ntop >= 3:   # odd n: one more top row (row 1)
        xt = x[1] - c[0] * xt
        x[1] = xt
    x[0] = x[0] - e0 * xt           # row 0
    if m >= k + 2:
        x[m] = x[m] - em * xb       # row m
