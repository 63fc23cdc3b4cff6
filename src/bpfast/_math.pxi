# exp and tanh that a compiler can vectorise.  Included by _core.pxi.
#
# libm's exp and tanh are calls, so a loop over a layer's units that uses
# them runs one unit at a time: on a [4, 64, 64, 2] tanh network, 128 tanh
# calls were two thirds of a forward pass.  These are branch-free
# (selects, not jumps) and call nothing, so activations() and softmax()
# vectorise, and their accuracy is that of libm's for the purpose:
#
# * exp(x) = 2^k e^r with k = round(x / ln 2) and |r| <= ln(2) / 2 (Cody and
#   Waite's two-part ln 2 keeps r exact), e^r - 1 from its Taylor series
#   (degree 13 in double, 7 in float: the truncation is below a tenth of an
#   ulp), 2^k put together from its bits.  Within about 1 ulp of the true
#   value; +inf above the largest finite result; NaN stays NaN.  Results
#   below the smallest normal number (x below about -708 in double, -86 in
#   float) are flushed to 0: at most 2.3e-308 (1.2e-38) away.
# * tanh(z) = -m / (2 + m) with m = e^(-2|z|) - 1, computed as above without
#   forming e^(-2|z|) first, so that small |z| keep their relative accuracy;
#   the sign of z is then copied (tanh(-0) = -0).  Within a few ulp.
#
# The functions are the same on every path (the per-sample loops, tiles,
# one-sample entry), so a result never depends on which path ran.

from libc.math cimport copysign, copysignf, fabs, fabsf
from libc.stdint cimport uint32_t, uint64_t

cdef extern from *:
    """
    #include <string.h>
    /* Bit casts through memcpy (defined behaviour; compiled to a register move). */
    static CYTHON_INLINE unsigned long long bpfast_bits64(double x)
    { unsigned long long u; memcpy(&u, &x, 8); return u; }
    static CYTHON_INLINE double bpfast_double(unsigned long long u)
    { double x; memcpy(&x, &u, 8); return x; }
    static CYTHON_INLINE unsigned int bpfast_bits32(float x)
    { unsigned int u; memcpy(&u, &x, 4); return u; }
    static CYTHON_INLINE float bpfast_float(unsigned int u)
    { float x; memcpy(&x, &u, 4); return x; }
    #define BPFAST_SHIFT_D 6755399441055744.0      /* 0x1.8p52 */
    #define BPFAST_SHIFT_F 12582912.0f             /* 0x1.8p23 */
    #define BPFAST_LOG2E_D 1.4426950408889634
    #define BPFAST_LOG2E_F 1.44269504f
    #define BPFAST_LN2_HI_D 0.6931471803691238     /* ln 2 to 32 bits: k LN2_HI is exact */
    #define BPFAST_LN2_LO_D 1.9082149292705877e-10
    #define BPFAST_LN2_HI_F 0.693359375f           /* ln 2 to 9 bits */
    #define BPFAST_LN2_LO_F -2.12194440e-4f
    """
    uint64_t bits64 "bpfast_bits64"(double x) noexcept nogil
    double from_bits64 "bpfast_double"(uint64_t u) noexcept nogil
    uint32_t bits32 "bpfast_bits32"(float x) noexcept nogil
    float from_bits32 "bpfast_float"(uint32_t u) noexcept nogil

    # k = round(x / ln 2) by the float trick: adding 1.5 * 2^52 (2^23) rounds
    # to an integer, which the low bits of the sum then hold.
    double SHIFT_D "BPFAST_SHIFT_D"
    float SHIFT_F "BPFAST_SHIFT_F"
    double LOG2E_D "BPFAST_LOG2E_D"
    float LOG2E_F "BPFAST_LOG2E_F"
    double LN2_HI_D "BPFAST_LN2_HI_D"
    double LN2_LO_D "BPFAST_LN2_LO_D"
    float LN2_HI_F "BPFAST_LN2_HI_F"
    float LN2_LO_F "BPFAST_LN2_LO_F"

# Past these, e^x is below the smallest normal (flushed to 0) or overflows.
cdef enum:
    LOW_D = -708
    HIGH_D = 710
    LOW_F = -86
    HIGH_F = 89


cdef inline floating expm1_reduced(floating r) noexcept nogil:
    """e^r - 1 for |r| <= ln(2) / 2: its Taylor series, Horner's rule."""
    if floating is float:
        return r * (1 + r * (<float>(1 / 2.) + r * (<float>(1 / 6.) + r * (
            <float>(1 / 24.) + r * (<float>(1 / 120.) + r * (<float>(1 / 720.) + r * (
                <float>(1 / 5040.))))))))
    else:
        return r * (1 + r * (1 / 2. + r * (1 / 6. + r * (1 / 24. + r * (1 / 120. + r * (
            1 / 720. + r * (1 / 5040. + r * (1 / 40320. + r * (1 / 362880. + r * (
                1 / 3628800. + r * (1 / 39916800. + r * (1 / 479001600. + r * (
                    1 / 6227020800.)))))))))))))


cdef inline floating half_pow2(floating t) noexcept nogil:
    """2^(k-1) for the k that t = x log2(e) + SHIFT rounded to (see above)."""
    if floating is float:
        return from_bits32((bits32(t) + 126) << 23)
    else:
        return from_bits64((bits64(t) + 1022) << 52)


cdef inline floating fast_exp(floating x) noexcept nogil:
    """e^x, branch-free (see the top of this file)."""
    cdef floating xc, t, k, r
    if floating is float:
        xc = HIGH_F if x > HIGH_F else x               # NaN passes both
        xc = LOW_F if xc < LOW_F else xc
        t = xc * LOG2E_F + SHIFT_F
        k = t - SHIFT_F
        r = (xc - k * LN2_HI_F) - k * LN2_LO_F
        r = (2 + 2 * expm1_reduced(r)) * half_pow2(t)  # 2 * 2^(k-1): finite up to k = 128
        return 0 if x < LOW_F else r
    else:
        xc = HIGH_D if x > HIGH_D else x
        xc = LOW_D if xc < LOW_D else xc
        t = xc * LOG2E_D + SHIFT_D
        k = t - SHIFT_D
        r = (xc - k * LN2_HI_D) - k * LN2_LO_D
        r = (2 + 2 * expm1_reduced(r)) * half_pow2(t)
        return 0 if x < LOW_D else r


cdef inline floating fast_tanh(floating z) noexcept nogil:
    """tanh(z), branch-free (see the top of this file)."""
    cdef floating x, t, k, r, q, s, m
    # x = -2|z|, clamped where tanh is 1 to the last bit anyway
    if floating is float:
        x = -2 * fabsf(z)
        x = -20 if x < -20 else x                      # NaN passes
        t = x * LOG2E_F + SHIFT_F
        k = t - SHIFT_F
        r = (x - k * LN2_HI_F) - k * LN2_LO_F
    else:
        x = -2 * fabs(z)
        x = -44 if x < -44 else x
        t = x * LOG2E_D + SHIFT_D
        k = t - SHIFT_D
        r = (x - k * LN2_HI_D) - k * LN2_LO_D
    q = expm1_reduced(r)
    s = 2 * half_pow2(t)                               # 2^k
    m = s * q + (s - 1)                                # e^x - 1; exactly q when k = 0
    m = -m / (2 + m)                                   # tanh|z|, up to the sign of 0
    if floating is float:
        return copysignf(fabsf(m), z)
    else:
        return copysign(fabs(m), z)
