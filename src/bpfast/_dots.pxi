# Dot products of weight rows with a delta: the chain rule's sums.  Included
# by _core.pxi.
#
# A row j of W[l] (l >= 1) and delta[l] give delta[l-1]_j = (W[l][j, :] .
# delta[l]) * f'(z_j).  Each dot product is summed in eight lanes (i mod 8,
# the row's width being a multiple of 8), which are then added as
# ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)): one order, whatever the
# path and the build, so that a result never depends on which path ran.
#
# On a narrow layer (the 10 outputs of a classifier, padded to 16) the work of
# a row is small next to the horizontal sum that ends it and the loop around
# it.  So with AVX2 and FMA four rows at a time end in one transposed sum
# (hadd and permutes: the same pairs, added in the same order), and the row
# loop, the loads of delta and the test of f' (a blend, not a branch) are
# shared by the four: 3% fewer kernel instructions on digits' [64, 100, 10]
# (float64, Adam, batch 200; callgrind).  Other builds sum row by row in
# plain C, the same eight lanes in the same order.

cdef extern from *:
    """
    #if (defined(__AVX2__) && defined(__FMA__)) || (defined(_MSC_VER) && defined(__AVX2__))
    #include <immintrin.h>

    /* u . v over n (a multiple of 8) in eight lanes, added as described. */
    static CYTHON_INLINE double bpfast_dot8_d(const double* u, const double* v, Py_ssize_t n)
    {
        __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
        for (Py_ssize_t i = 0; i < n; i += 8) {
            lo = _mm256_fmadd_pd(_mm256_loadu_pd(u + i), _mm256_loadu_pd(v + i), lo);
            hi = _mm256_fmadd_pd(_mm256_loadu_pd(u + i + 4), _mm256_loadu_pd(v + i + 4), hi);
        }
        __m256d s = _mm256_add_pd(lo, hi);                  /* a0+a4, a1+a5, a2+a6, a3+a7 */
        __m128d p = _mm_hadd_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
        return _mm_cvtsd_f64(_mm_add_sd(p, _mm_unpackhi_pd(p, p)));
    }

    static CYTHON_INLINE float bpfast_dot8_f(const float* u, const float* v, Py_ssize_t n)
    {
        __m256 acc = _mm256_setzero_ps();
        for (Py_ssize_t i = 0; i < n; i += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(u + i), _mm256_loadu_ps(v + i), acc);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        __m128 p = _mm_hadd_ps(s, s);                       /* s0+s1, s2+s3, ... */
        return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
    }

    /* f[r] <- f[r] == 0 ? 0 : (W_r . d) * f[r] for the four rows W_r = W + r * n. */
    static CYTHON_INLINE void bpfast_chain4_d(const double* W, Py_ssize_t n, const double* d,
                                              double* f)
    {
        __m256d lo0 = _mm256_setzero_pd(), lo1 = lo0, lo2 = lo0, lo3 = lo0;
        __m256d hi0 = lo0, hi1 = lo0, hi2 = lo0, hi3 = lo0;
        for (Py_ssize_t i = 0; i < n; i += 8) {
            __m256d dl = _mm256_loadu_pd(d + i), dh = _mm256_loadu_pd(d + i + 4);
            lo0 = _mm256_fmadd_pd(_mm256_loadu_pd(W + i), dl, lo0);
            hi0 = _mm256_fmadd_pd(_mm256_loadu_pd(W + i + 4), dh, hi0);
            lo1 = _mm256_fmadd_pd(_mm256_loadu_pd(W + n + i), dl, lo1);
            hi1 = _mm256_fmadd_pd(_mm256_loadu_pd(W + n + i + 4), dh, hi1);
            lo2 = _mm256_fmadd_pd(_mm256_loadu_pd(W + 2 * n + i), dl, lo2);
            hi2 = _mm256_fmadd_pd(_mm256_loadu_pd(W + 2 * n + i + 4), dh, hi2);
            lo3 = _mm256_fmadd_pd(_mm256_loadu_pd(W + 3 * n + i), dl, lo3);
            hi3 = _mm256_fmadd_pd(_mm256_loadu_pd(W + 3 * n + i + 4), dh, hi3);
        }
        /* per row s = lo + hi; then (s0 + s1) + (s2 + s3), four rows side by side */
        __m256d h01 = _mm256_hadd_pd(_mm256_add_pd(lo0, hi0), _mm256_add_pd(lo1, hi1));
        __m256d h23 = _mm256_hadd_pd(_mm256_add_pd(lo2, hi2), _mm256_add_pd(lo3, hi3));
        __m256d sum = _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x20),
                                    _mm256_permute2f128_pd(h01, h23, 0x31));
        __m256d fp = _mm256_loadu_pd(f);
        __m256d zero = _mm256_cmp_pd(fp, _mm256_setzero_pd(), _CMP_EQ_OQ);
        _mm256_storeu_pd(f, _mm256_andnot_pd(zero, _mm256_mul_pd(sum, fp)));
    }

    static CYTHON_INLINE void bpfast_chain4_f(const float* W, Py_ssize_t n, const float* d,
                                              float* f)
    {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (Py_ssize_t i = 0; i < n; i += 8) {
            __m256 dv = _mm256_loadu_ps(d + i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(W + i), dv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(W + n + i), dv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(W + 2 * n + i), dv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(W + 3 * n + i), dv, a3);
        }
        #define BPFAST_HALVES(a) _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1))
        __m128 h01 = _mm_hadd_ps(BPFAST_HALVES(a0), BPFAST_HALVES(a1));
        __m128 h23 = _mm_hadd_ps(BPFAST_HALVES(a2), BPFAST_HALVES(a3));
        #undef BPFAST_HALVES
        __m128 sum = _mm_hadd_ps(h01, h23);   /* row r: (s0 + s1) + (s2 + s3) */
        __m128 fp = _mm_loadu_ps(f);
        __m128 zero = _mm_cmpeq_ps(fp, _mm_setzero_ps());
        _mm_storeu_ps(f, _mm_andnot_ps(zero, _mm_mul_ps(sum, fp)));
    }

    #else   /* plain C: the same lanes, the same order */

    #define BPFAST_DOT8(T, NAME)                                                        \\
    static CYTHON_INLINE T NAME(const T* u, const T* v, Py_ssize_t n)                   \\
    {                                                                                   \\
        T a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                              \\
        for (Py_ssize_t i = 0; i < n; i += 8)                                           \\
            for (int k = 0; k < 8; k++)                                                 \\
                a[k] += u[i + k] * v[i + k];                                            \\
        return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));      \\
    }
    BPFAST_DOT8(double, bpfast_dot8_d)
    BPFAST_DOT8(float, bpfast_dot8_f)
    #undef BPFAST_DOT8

    #define BPFAST_CHAIN4(T, NAME, DOT)                                                 \\
    static CYTHON_INLINE void NAME(const T* W, Py_ssize_t n, const T* d, T* f)          \\
    {                                                                                   \\
        for (int r = 0; r < 4; r++)                                                     \\
            f[r] = f[r] == 0 ? (T)0 : DOT(W + r * n, d, n) * f[r];                      \\
    }
    BPFAST_CHAIN4(double, bpfast_chain4_d, bpfast_dot8_d)
    BPFAST_CHAIN4(float, bpfast_chain4_f, bpfast_dot8_f)
    #undef BPFAST_CHAIN4

    #endif
    """
    double dot8_d "bpfast_dot8_d"(const double* u, const double* v, Py_ssize_t n) noexcept nogil
    float dot8_f "bpfast_dot8_f"(const float* u, const float* v, Py_ssize_t n) noexcept nogil
    void chain4_d "bpfast_chain4_d"(const double* W, Py_ssize_t n, const double* d,
                                    double* f) noexcept nogil
    void chain4_f "bpfast_chain4_f"(const float* W, Py_ssize_t n, const float* d,
                                    float* f) noexcept nogil


cdef inline floating row_dot(const floating* u, const floating* v, Py_ssize_t n) noexcept nogil:
    """u . v for a row of width n (a multiple of 8), summed as described above."""
    if floating is double:
        return dot8_d(u, v, n)
    else:
        return dot8_f(u, v, n)


cdef inline void chain_rows(const floating* W, Py_ssize_t width, const floating* delta,
                            floating* d_prev, Py_ssize_t n_rows) noexcept nogil:
    """One step of the chain rule for n_rows rows: d_prev[j] = (W[j, :] .
    delta) * f'(z_j), d_prev holding f'(z_j) on entry.  A unit with f' = 0 (a
    relu at z <= 0) passes no error back: 0 there, whatever the row holds.
    Four rows at a time, the rest one by one."""
    cdef Py_ssize_t j = 0
    while j + 4 <= n_rows:
        if floating is double:
            chain4_d(W + j * width, width, delta, d_prev + j)
        else:
            chain4_f(W + j * width, width, delta, d_prev + j)
        j += 4
    while j < n_rows:
        d_prev[j] = 0 if d_prev[j] == 0 else row_dot(W + j * width, delta, width) * d_prev[j]
        j += 1
