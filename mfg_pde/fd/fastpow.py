"""x^r for x > 0 in a form the compiler can vectorise: the power of the power-law Hamiltonian's h'(p).

The library ``pow`` is a call per value (11-16 ns each on the machines we measured), and the power-law rows
evaluate one per grid edge and axis twice per coupled iteration; ``pow_fast`` is plain arithmetic on the
bits of x (no calls, no branches; Horner steps as fused multiply-adds), so a loop of it runs in SIMD
lanes (2.3 ns per value where the library pow took 11).  Method:

    x = 2^e m with m in [sqrt(1/2), sqrt(2)):   log x = e log 2 + log m,
    log m = 2 atanh(s) = 2 s (1 + z/3 + z^2/5 + ... + z^11/23),   s = (m - 1)/(m + 1), z = s^2 <= 0.0295,
    y = r log x = n log 2 + w with n = round(y / log 2), |w| <= log(2)/2:   x^r = 2^n exp(w),
    exp(w) = sum_{j <= 13} w^j / j!                       (truncation below 1e-17 relative in both series)

with log 2 split in a high part (exact in products with small integers) and a low part.  Measured against
the library pow (``tests/test_ham_edges.py``): relative error <= 2^-52 (2 + |r log x|) over the whole range --
the rounding of y = r log x dominates, which the library carries in extra precision -- so at most 2e-15 over
x in [1e-8, 1e4], where the power-law rows evaluate it.

``pow_fast`` is valid for x in [POW_MIN, POW_MAX] and 0 < r <= 1; its callers take the library pow outside
that range (``kernels._power_side``, ``kernels.ham_edges``).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: the range of x where ``pow_fast`` holds (2^n stays a normal number for r in (0, 1])
POW_MIN = 1e-300
POW_MAX = 1e300

_LN2_HI = 6.93147180369123816490e-01   # log 2 to 32 bits: n * _LN2_HI is exact for |n| < 2^21
_LN2_LO = 1.90821492927058770002e-10   # log 2 - _LN2_HI
_INV_LN2 = 1.44269504088896338700e+00
_SQRT2 = 1.4142135623730951
# 1 / (2k + 1), k = 1..11 (the atanh series) and 1 / j!, j = 0..13 (the exp series)
_A1, _A2, _A3, _A4, _A5, _A6, _A7, _A8, _A9, _A10, _A11 = (1.0 / (2 * k + 1) for k in range(1, 12))
(_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12,
 _E13) = (1.0 / math.factorial(j) for j in range(14))


@intrinsic
def fma(typingctx, a, b, c):
    """a b + c rounded once (LLVM's fma: the fused instruction where the machine has one, the C library's fma
    where not): the same bits in scalar code and in SIMD lanes, and a Horner step a third cheaper than a
    multiply and an add."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, error_model="numpy", inline="always")
def pow_fast(x, r):
    """x^r for x in [POW_MIN, POW_MAX] and 0 < r <= 1 (the module docstring's series; no branches)."""
    bits = np.float64(x).view(np.int64)
    e = (bits >> 52) - 1023
    m = np.int64((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000).view(np.float64)  # x / 2^e, in [1, 2)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = fma(_A11, z, _A10)
    p = fma(p, z, _A9)
    p = fma(p, z, _A8)
    p = fma(p, z, _A7)
    p = fma(p, z, _A6)
    p = fma(p, z, _A5)
    p = fma(p, z, _A4)
    p = fma(p, z, _A3)
    p = fma(p, z, _A2)
    p = fma(p, z, _A1)
    log_m = fma(2.0 * s, z * p, 2.0 * s)
    fe = float(e)
    y = r * fma(fe, _LN2_HI, fma(fe, _LN2_LO, log_m))
    n = np.floor(fma(y, _INV_LN2, 0.5))
    w = fma(-n, _LN2_LO, fma(-n, _LN2_HI, y))
    q = fma(_E13, w, _E12)
    q = fma(q, w, _E11)
    q = fma(q, w, _E10)
    q = fma(q, w, _E9)
    q = fma(q, w, _E8)
    q = fma(q, w, _E7)
    q = fma(q, w, _E6)
    q = fma(q, w, _E5)
    q = fma(q, w, _E4)
    q = fma(q, w, _E3)
    q = fma(q, w, _E2)
    q = fma(q, w, _E1)
    q = fma(q, w, _E0)
    return q * np.int64((np.int64(n) + 1023) << 52).view(np.float64)

