# The typed kernel of bpfast: per-sample forward and backward loops and the
# in-place update of every rule of bpfast.optim (in _update.pxi), for float32
# and float64 through the fused type `floating`, run without the GIL.
#
# This file is included by one or more extension modules (`_core.pyx` is the
# portable build, `_core_avx2.pyx` the same source compiled for AVX2+FMA and
# `_core_avx512.pyx` for AVX-512F/VL), so that the Python layer can pick the
# best build for the CPU at import time (bpfast._dispatch).
#
# Index convention, used everywhere below:
#   l   weight layer, from units a[l] (size[l] of them) to a[l+1] (size[l+1])
#   j   input column of layer l   (0 <= j < size[l])
#   i   output row of layer l     (0 <= i < size[l+1])
#   z[l+1] = W[l] a[l] + b[l],  a[l+1] = f(z[l+1]),  delta[l] = dL/dz[l+1]
#
# Memory layout.  All parameters live in one flat buffer `params`.  W[l] is
# stored input-major, [j][i] (shape size[l] x size[l+1]), so that the forward
# pass z += a_j * W[j, :], the gradient g_W[j, :] += a_j * delta and the
# update W[j, :] -= lr * a_j * delta are contiguous axpy loops the compiler
# vectorises, and an input a_j == 0 skips a whole row exactly.  The Python
# layer exposes the transposed view, shape (size[l+1], size[l]).
#
# Each row of W[l], b[l] and each layer's z, a, delta is padded with zeros to
# width[l], a multiple of 8, so that every vector loop runs whole SIMD
# registers with no scalar remainder.  The pads stay exactly zero: their
# weights meet a zero delta in every update (each entry point zeroes the
# delta section, and delta is only ever written for real units), and no loop
# reads a pad as an input.
#
# Zero inputs.  An input a_j == 0 adds nothing to z and nothing to the
# gradient of row j, so skipping it is exact; MNIST is ~80% zeros and relu
# layers have many too.  The forward pass lists each layer's nonzero inputs
# once (a bit per input, 64 at a time) and every later loop over rows walks
# only that list.
#
# Tiles.  In a dense minibatch each sample's gradient of W[0] would be a
# load and a store of every row it touches, sample after sample; instead the
# samples of a tile (spec's tile size, up to MAX_TILE) mark the rows they
# touch and keep their delta[0], and tile_outer adds their terms to each row
# in one pass, four samples per load and store.  The order of every sum is
# kept, so a tile changes the speed, never the result.
#
# Sparse inputs.  The first layer reads its input as a list of (column,
# value) pairs: for a dense row the forward pass builds that list (the
# nonzeros above); a CSR row's stored entries, indices[indptr[s]:indptr[s+1]]
# and data[...], ARE that list, read where they lie (int32 or int64 indices,
# the fused `index_t`).  So a sample costs its non-zeros times the width of
# the first layer, whatever n0 is; duplicate columns add up (SciPy's
# meaning) and unsorted ones work, by construction.  A minibatch's plain SGD
# step (and SparseAdam's) on CSR rows updates only the rows of W[0] its
# samples touch: they are listed once per batch (a flag per row in scratch)
# and the rest of the buffer gets the dense update.
#
# A network is described to the kernel by one int array `spec` (built by
# bpfast._layout.Layout) and per-thread scratch space `ws` holding z, a and
# delta of every layer, one target vector, the nonzero-input lists and a
# tile; nothing is allocated here.
#
# The kernel trusts its arguments: every shape, index and label is checked by
# the Python layer (bpfast._validate, bpfast.mlp) before a call.

from libc.math cimport exp, log, log1p, isfinite
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define BPFAST_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define BPFAST_PREFETCH(p) ((void)(p))
    #endif
    """
    void prefetch "BPFAST_PREFETCH"(const void* p) noexcept nogil

cdef extern from *:
    """
    #if defined(_OPENMP)
    #include <omp.h>
    #define BPFAST_TEAM() omp_get_num_threads()
    #if defined(_MSC_VER) && !defined(__clang__)
    #define BPFAST_BARRIER() __pragma(omp barrier)
    #else
    #define BPFAST_BARRIER() _Pragma("omp barrier")
    #endif
    #else
    #define BPFAST_TEAM() 1
    #define BPFAST_BARRIER()
    #endif
    """
    # Inside a parallel region: the number of its threads, and a barrier they
    # all must reach (without OpenMP: one thread, no barrier).
    int team_size "BPFAST_TEAM"() noexcept nogil
    void barrier "BPFAST_BARRIER"() noexcept nogil

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define BPFAST_OPAQUE(p) __extension__ ({ \\
        void* bpfast_q_ = (p); __asm__("" : "+r"(bpfast_q_)); bpfast_q_; })
    #else
    #define BPFAST_OPAQUE(p) (p)
    #endif
    """
    # p, whose value the compiler cannot see through: a function called
    # through it is not inlined (see rows_batches).
    void* opaque "BPFAST_OPAQUE"(void* p) noexcept nogil

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define BPFAST_CTZ64(x) __builtin_ctzll(x)
    #elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_ARM64))
    #include <intrin.h>
    static __inline int bpfast_ctz64(unsigned __int64 x)
    { unsigned long i; _BitScanForward64(&i, x); return (int)i; }
    #define BPFAST_CTZ64(x) bpfast_ctz64(x)
    #else
    static int bpfast_ctz64(unsigned long long x)
    { int i = 0; while (!(x & 1)) { x >>= 1; i++; } return i; }
    #define BPFAST_CTZ64(x) bpfast_ctz64(x)
    #endif
    """
    int ctz64 "BPFAST_CTZ64"(uint64_t x) noexcept nogil   # index of the lowest set bit; x != 0

# Activation codes (shared with bpfast._layout.ACTIVATIONS).
cdef enum:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    SOFTMAX = 5
    EXP = 6

# Loss codes (shared with bpfast._layout.LOSSES).
cdef enum:
    MSE = 0
    CROSS_ENTROPY = 1
    POISSON = 2

# Positions in `spec` (shared with bpfast._layout).
cdef enum:
    SPEC_L = 0
    SPEC_LOSS = 1
    SPEC_N_UNITS = 2
    SPEC_N_PARAMS = 3
    SPEC_TILE = 4
    SPEC_TILE_OFF = 5
    SPEC_HEADER = 6
    LANES = 8                 # the block of a row the inner loops keep in registers
    AHEAD_MIN_BYTES = 1 << 21 # a W[0] this large has its rows fetched a sample ahead
    MAX_TILE = 32             # the most samples a tile holds (bits of a mark_tile mask)
    FINITE_LANES = 32         # independent sums of finite(): 4 AVX2 registers of float32

cdef extern from *:
    """
    #define BPFAST_LEAKY_SLOPE 0.01
    """
    const double LEAKY_SLOPE "BPFAST_LEAKY_SLOPE"   # leaky_relu's slope for z < 0


cdef struct Net:
    Py_ssize_t L              # number of weight layers
    int loss                  # MSE, CROSS_ENTROPY or POISSON
    Py_ssize_t n_units        # size[1] + ... + size[L]: length of z, a, delta
    Py_ssize_t n_params
    Py_ssize_t tile           # samples per tile of a dense minibatch (<= 1: none)
    Py_ssize_t tile_off       # where a scratch row's two tile sections start
    const Py_ssize_t* size    # size[0..L]
    const Py_ssize_t* w_off   # W[l] starts at params[w_off[l]]
    const Py_ssize_t* b_off   # b[l] starts at params[b_off[l]]
    const Py_ssize_t* u_off   # z[l+1], a[l+1], delta[l] start at u_off[l] in ws
    const Py_ssize_t* act     # activation code of layer l -> l+1
    const Py_ssize_t* width   # row length of W[l] and b[l]: size[l+1] padded (see below)
    const Py_ssize_t* nz_off  # layer l's nonzero-input list starts at nz_off[l] (int32s)


ctypedef fused index_t:      # column indices of a CSR input
    int32_t
    int64_t


cdef struct Row:
    # One sample's input a[0], as the first layer reads it.
    const void* x             # dense: its n0 values; CSR: its m stored values (network's dtype)
    const void* idx           # CSR: the m column indices of those values; NULL for a dense row
    Py_ssize_t m
    bint wide                 # idx is int64 (else int32)


cdef struct Inputs:
    # The samples of one call: n dense rows, or n CSR rows.
    const void* X             # dense rows, n x n0 row-major; NULL for CSR
    const void* data          # CSR values (network's dtype)
    const void* indices       # CSR column indices, int32 or int64 (wide)
    const void* indptr        # row s is entries indptr[s]:indptr[s+1] (the indices' type)
    bint wide
    Py_ssize_t n              # number of samples
    Py_ssize_t n_in           # n0
    Py_ssize_t itemsize       # sizeof(floating)
    # Plain SGD on CSR rows, batch > 1 (see apply_deferred): when not NULL,
    # accumulate() leaves W[0]'s gradient out and stores each sample's
    # delta[0] at deferred[(r - batch_start) * width[0]] instead.
    void* deferred
    Py_ssize_t batch_start


cdef inline Inputs dense_inputs(const void* X, Py_ssize_t n, Py_ssize_t n_in,
                                Py_ssize_t itemsize) noexcept nogil:
    """n dense rows of n_in values (itemsize bytes each) at X, as Inputs."""
    cdef Inputs inp
    memset(&inp, 0, sizeof(Inputs))
    inp.X = X
    inp.n = n
    inp.n_in = n_in
    inp.itemsize = itemsize
    return inp


cdef struct Ahead:
    # The rows of W[0] that the next sample's CSR entries will read, asked of
    # the memory system a few at a time while this sample computes (see
    # fetch_ahead).  idx NULL: nothing to fetch.
    const char* W0            # W[0]'s first row
    const void* idx           # the next sample's column indices
    bint wide
    Py_ssize_t m              # how many
    Py_ssize_t done           # rows asked for so far
    Py_ssize_t in_forward     # of which during the forward pass (the rest: in the update)
    Py_ssize_t row_bytes      # width[0] * itemsize
    Py_ssize_t quota          # rows to ask for per step of the current loop


cdef inline void fetch_ahead(Ahead* p, Py_ssize_t n_rows) noexcept nogil:
    """Prefetch the next n_rows rows of p (-1: p.quota of them; fewer at its
    end), every cache line; p may be NULL.

    A wide W[0] (2^18 features x 64 floats is 64 MiB) lives in memory, and
    a sample's rows are scattered: each is a miss.  Fetched on demand in the
    forward pass, a sample's misses overlap only within the few rows the
    core has in flight, and its arithmetic waits for them; asked for one
    sample ahead, spread over the current sample's row loops (a burst of
    hundreds of prefetches would fill the miss buffers and stall the core
    instead), they arrive while the core computes.
    """
    cdef Py_ssize_t k, c, stop, j
    if p == NULL or p.idx == NULL:
        return
    if n_rows < 0:
        n_rows = p.quota
    stop = p.done + n_rows if p.done + n_rows < p.m else p.m
    for k in range(p.done, stop):
        j = (<const int64_t*>p.idx)[k] if p.wide else (<const int32_t*>p.idx)[k]
        c = 0
        while c < p.row_bytes:
            prefetch(p.W0 + j * p.row_bytes + c)
            c += 64
    p.done = stop


cdef inline Row row_of(const Inputs* X, Py_ssize_t s) noexcept nogil:
    """Sample s of X as a Row (no copy: pointers into X)."""
    cdef Row r
    cdef Py_ssize_t p0
    if X.X != NULL:
        r.x = <const char*>X.X + s * X.n_in * X.itemsize
        r.idx = NULL
        r.m = X.n_in
        r.wide = False
        return r
    if X.wide:
        p0 = (<const int64_t*>X.indptr)[s]
        r.m = (<const int64_t*>X.indptr)[s + 1] - p0
        r.idx = <const int64_t*>X.indices + p0
    else:
        p0 = (<const int32_t*>X.indptr)[s]
        r.m = (<const int32_t*>X.indptr)[s + 1] - p0
        r.idx = <const int32_t*>X.indices + p0
    r.x = <const char*>X.data + p0 * X.itemsize
    r.wide = X.wide
    return r


cdef inline Net unpack(const Py_ssize_t[::1] spec) noexcept nogil:
    """Point a Net at the sections of `spec` (see bpfast._layout.Layout)."""
    cdef Net net
    net.L = spec[SPEC_L]
    net.loss = <int>spec[SPEC_LOSS]
    net.n_units = spec[SPEC_N_UNITS]
    net.n_params = spec[SPEC_N_PARAMS]
    net.tile = spec[SPEC_TILE] if spec[SPEC_TILE] <= MAX_TILE else MAX_TILE
    net.tile_off = spec[SPEC_TILE_OFF]
    net.size = &spec[SPEC_HEADER]
    net.w_off = net.size + net.L + 1
    net.b_off = net.w_off + net.L
    net.u_off = net.b_off + net.L
    net.act = net.u_off + net.L
    net.width = net.act + net.L
    net.nz_off = net.width + net.L
    return net


include "_update.pxi"


# ---------------------------------------------------------------- elementwise

include "_math.pxi"
include "_dots.pxi"


cdef inline double softplus(double t) noexcept nogil:
    """log(1 + e^t) without overflow."""
    if t > 0:
        return t + log1p(exp(-t))
    return log1p(exp(t))


cdef inline floating activation(Py_ssize_t code, floating z) noexcept nogil:
    """f(z) for an elementwise activation (softmax is handled per layer)."""
    if code == SIGMOID:
        return 1 / (1 + fast_exp(-z))     # e^-z = inf for z < -709: 1 / inf = 0
    elif code == TANH:
        return fast_tanh(z)
    elif code == RELU:
        return z if z > 0 else 0
    elif code == LEAKY_RELU:
        return z if z > 0 else <floating>LEAKY_SLOPE * z
    elif code == EXP:
        return fast_exp(z)
    return z


cdef inline floating derivative(Py_ssize_t code, floating z, floating a) noexcept nogil:
    """f'(z), written with a = f(z) where that is cheaper."""
    if code == SIGMOID:
        return a * (1 - a)
    elif code == TANH:
        return 1 - a * a
    elif code == RELU:
        return 1 if z > 0 else 0
    elif code == LEAKY_RELU:
        return 1 if z > 0 else <floating>LEAKY_SLOPE
    elif code == EXP:
        return a
    return 1


cdef inline void activations(Py_ssize_t code, const floating* z, floating* a,
                             Py_ssize_t n) noexcept nogil:
    """a[i] = f(z[i]) for i < n: the code is tested once per layer, not per
    unit, and each loop (the code a constant in it) vectorises."""
    cdef Py_ssize_t i
    if code == RELU:
        for i in range(n):
            a[i] = z[i] if z[i] > 0 else 0
    elif code == IDENTITY:
        for i in range(n):
            a[i] = z[i]
    elif code == SIGMOID:
        for i in range(n):
            a[i] = activation(SIGMOID, z[i])
    elif code == TANH:
        for i in range(n):
            a[i] = activation(TANH, z[i])
    elif code == EXP:
        for i in range(n):
            a[i] = activation(EXP, z[i])
    else:
        for i in range(n):
            a[i] = activation(code, z[i])


cdef inline void derivatives(Py_ssize_t code, const floating* z, const floating* a,
                             floating* out, Py_ssize_t n) noexcept nogil:
    """out[i] = f'(z[i]) for i < n (a = f(z)), one loop per activation as in
    activations()."""
    cdef Py_ssize_t i
    if code == RELU:
        for i in range(n):
            out[i] = 1 if z[i] > 0 else 0
    elif code == TANH:
        for i in range(n):
            out[i] = 1 - a[i] * a[i]
    elif code == SIGMOID:
        for i in range(n):
            out[i] = a[i] * (1 - a[i])
    else:
        for i in range(n):
            out[i] = derivative(code, z[i], a[i])


cdef inline void softmax(const floating* z, floating* a, Py_ssize_t n) noexcept nogil:
    """a = exp(z - max z) / sum: the max shift keeps exp from overflowing."""
    cdef Py_ssize_t i
    cdef floating m = z[0]
    cdef floating s = 0
    for i in range(1, n):
        if z[i] > m:
            m = z[i]
    for i in range(n):
        a[i] = fast_exp(z[i] - m)
        s += a[i]
    for i in range(n):
        a[i] = a[i] / s


cdef inline floating dot(const floating* u, const floating* v, Py_ssize_t n) noexcept nogil:
    """u . v with eight independent accumulators.

    Compilers do not reorder a floating-point sum on their own (that would
    change its rounding), so a plain loop is one serial chain of adds; eight
    lanes fill a SIMD register (two for double) and break the chain.
    """
    cdef floating acc[8]
    cdef floating s
    cdef Py_ssize_t i = 0, k
    for k in range(8):
        acc[k] = 0
    while i + 8 <= n:
        for k in range(8):
            acc[k] += u[i + k] * v[i + k]
        i += 8
    s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
    while i < n:
        s += u[i] * v[i]
        i += 1
    return s


# ---------------------------------------------------------------- one sample

cdef inline Py_ssize_t nonzeros(const floating* v, Py_ssize_t n, int32_t* nz) noexcept nogil:
    """Write the indices j with v[j] != 0 to nz, in order; return their count.

    64 inputs at a time: one bit per input (a loop of compares the compiler
    vectorises), then one step per set bit.  A plain test per input costs
    more than the multiply-adds it saves when most inputs are zero.
    """
    cdef Py_ssize_t j0 = 0, k, kn, m = 0
    cdef uint64_t bits
    while j0 < n:
        kn = n - j0 if n - j0 < 64 else 64
        bits = 0
        for k in range(kn):
            bits |= (<uint64_t>(v[j0 + k] != 0)) << k
        while bits != 0:
            nz[m] = <int32_t>(j0 + ctz64(bits))
            m += 1
            bits &= bits - 1
        j0 += 64
    return m


cdef inline int32_t* nonzero_list(const Net* net, floating* ws) noexcept nogil:
    """Where a scratch row keeps, for each layer l at nz_off[l], the count of
    its nonzero inputs followed by their indices (int32, after the target)."""
    return <int32_t*>(ws + 3 * net.n_units + net.size[net.L])


cdef inline void add_four(floating* out, Py_ssize_t width,
                          floating a0, const floating* p0, floating a1, const floating* p1,
                          floating a2, const floating* p2, floating a3, const floating* p3
                          ) noexcept nogil:
    """out[i] += a0 p0[i], then += a1 p1[i], a2 p2[i], a3 p3[i], for i < width:
    four terms per load and store of out, each added as one term alone is.

    LANES values of out at a time are held in a local block (registers): a
    compiler cannot rule out that out overlaps the p's, and on a plain loop
    it checks that at run time before every pass (about 40 instructions, as
    much as the pass itself for a narrow layer).
    """
    cdef Py_ssize_t i = 0, c
    cdef floating acc[LANES]
    cdef floating o
    while i + LANES <= width:
        for c in range(LANES):
            acc[c] = out[i + c]
        for c in range(LANES):
            acc[c] += a0 * p0[i + c]
        for c in range(LANES):
            acc[c] += a1 * p1[i + c]
        for c in range(LANES):
            acc[c] += a2 * p2[i + c]
        for c in range(LANES):
            acc[c] += a3 * p3[i + c]
        for c in range(LANES):
            out[i + c] = acc[c]
        i += LANES
    while i < width:
        o = out[i]
        o += a0 * p0[i]
        o += a1 * p1[i]
        o += a2 * p2[i]
        o += a3 * p3[i]
        out[i] = o
        i += 1


cdef inline void add_rows(floating* z, const floating* W, Py_ssize_t width,
                          const index_t* idx, const floating* v, Py_ssize_t m,
                          bint gather, Ahead* ahead) noexcept nogil:
    """z += a_k W[j_k, :] over the inputs k < m, j_k = idx[k]: a_k = v[j_k] when
    `gather` (v is the whole input vector, idx its nonzero list), else v[k]
    (v holds the listed values: a CSR row).

    Four input rows per pass over z (add_four); each z_i still adds its
    terms in list order, so the result is bit-identical to one row at a time.
    Each pass also asks for ahead.quota rows of the next sample.
    """
    cdef Py_ssize_t i, k = 0
    cdef const floating* W0
    cdef const floating* W1
    cdef const floating* W2
    cdef const floating* W3
    cdef floating a0, a1, a2, a3
    while k + 4 <= m:
        if gather:
            a0 = v[idx[k]]
            a1 = v[idx[k + 1]]
            a2 = v[idx[k + 2]]
            a3 = v[idx[k + 3]]
        else:
            a0 = v[k]
            a1 = v[k + 1]
            a2 = v[k + 2]
            a3 = v[k + 3]
        W0 = W + idx[k] * width
        W1 = W + idx[k + 1] * width
        W2 = W + idx[k + 2] * width
        W3 = W + idx[k + 3] * width
        add_four(z, width, a0, W0, a1, W1, a2, W2, a3, W3)
        fetch_ahead(ahead, -1)
        k += 4
    while k < m:
        a0 = v[idx[k]] if gather else v[k]
        W0 = W + idx[k] * width
        for i in range(width):
            z[i] += a0 * W0[i]
        k += 1


cdef inline void add_scaled(floating* out, Py_ssize_t width, floating a, const floating* d,
                            floating scale) noexcept nogil:
    """out[i] += scale * (a * d[i]) for i < width: one row of a fused step.

    LANES values of out at a time in a local block, as in add_four: on a
    plain loop the compiler tests at run time whether out overlaps d, and
    the test and the loop's own counting cost about as much as the
    arithmetic (7 instructions per SIMD register of a row, measured).
    """
    cdef Py_ssize_t i = 0, c
    cdef floating acc[LANES]
    while i + LANES <= width:
        for c in range(LANES):
            acc[c] = out[i + c]
        for c in range(LANES):
            acc[c] += scale * (a * d[i + c])
        for c in range(LANES):
            out[i + c] = acc[c]
        i += LANES
    while i < width:
        out[i] += scale * (a * d[i])
        i += 1


cdef inline void add_product(floating* out, Py_ssize_t width, floating a,
                             const floating* d) noexcept nogil:
    """out[i] += a * d[i] for i < width: one row of a gradient.  LANES values
    of out at a time in a local block, as in add_four, so that the compiler
    drops its run-time test of whether out overlaps d."""
    cdef Py_ssize_t i = 0, c
    cdef floating acc[LANES]
    while i + LANES <= width:
        for c in range(LANES):
            acc[c] = out[i + c]
        for c in range(LANES):
            acc[c] += a * d[i + c]
        for c in range(LANES):
            out[i + c] = acc[c]
        i += LANES
    while i < width:
        out[i] += a * d[i]
        i += 1


cdef inline void add_four_products(floating* o0, floating a0, floating* o1, floating a1,
                                   floating* o2, floating a2, floating* o3, floating a3,
                                   const floating* d, Py_ssize_t width) noexcept nogil:
    """add_product(o_r, width, a_r, d) for the four rows o_r, in one loop: the
    same statements row by row, so the same rounding as one row alone."""
    cdef Py_ssize_t i = 0, c
    cdef floating acc[LANES]
    while i + LANES <= width:
        for c in range(LANES):
            acc[c] = o0[i + c]
        for c in range(LANES):
            acc[c] += a0 * d[i + c]
        for c in range(LANES):
            o0[i + c] = acc[c]
        for c in range(LANES):
            acc[c] = o1[i + c]
        for c in range(LANES):
            acc[c] += a1 * d[i + c]
        for c in range(LANES):
            o1[i + c] = acc[c]
        for c in range(LANES):
            acc[c] = o2[i + c]
        for c in range(LANES):
            acc[c] += a2 * d[i + c]
        for c in range(LANES):
            o2[i + c] = acc[c]
        for c in range(LANES):
            acc[c] = o3[i + c]
        for c in range(LANES):
            acc[c] += a3 * d[i + c]
        for c in range(LANES):
            o3[i + c] = acc[c]
        i += LANES
    while i < width:
        o0[i] += a0 * d[i]
        o1[i] += a1 * d[i]
        o2[i] += a2 * d[i]
        o3[i] += a3 * d[i]
        i += 1


cdef inline void add_four_scaled(floating* o0, floating a0, floating* o1, floating a1,
                                 floating* o2, floating a2, floating* o3, floating a3,
                                 const floating* d, Py_ssize_t width,
                                 floating scale) noexcept nogil:
    """add_scaled(o_r, width, a_r, d, scale) for the four rows o_r, in one loop."""
    cdef Py_ssize_t i = 0, c
    cdef floating acc[LANES]
    while i + LANES <= width:
        for c in range(LANES):
            acc[c] = o0[i + c]
        for c in range(LANES):
            acc[c] += scale * (a0 * d[i + c])
        for c in range(LANES):
            o0[i + c] = acc[c]
        for c in range(LANES):
            acc[c] = o1[i + c]
        for c in range(LANES):
            acc[c] += scale * (a1 * d[i + c])
        for c in range(LANES):
            o1[i + c] = acc[c]
        for c in range(LANES):
            acc[c] = o2[i + c]
        for c in range(LANES):
            acc[c] += scale * (a2 * d[i + c])
        for c in range(LANES):
            o2[i + c] = acc[c]
        for c in range(LANES):
            acc[c] = o3[i + c]
        for c in range(LANES):
            acc[c] += scale * (a3 * d[i + c])
        for c in range(LANES):
            o3[i + c] = acc[c]
        i += LANES
    while i < width:
        o0[i] += scale * (a0 * d[i])
        o1[i] += scale * (a1 * d[i])
        o2[i] += scale * (a2 * d[i])
        o3[i] += scale * (a3 * d[i])
        i += 1


cdef inline void add_four_rows(floating* o0, floating a0, floating* o1, floating a1,
                               floating* o2, floating a2, floating* o3, floating a3,
                               const floating* d, Py_ssize_t width,
                               floating scale) noexcept nogil:
    """add_four_products (scale 1) or add_four_scaled: add_product and
    add_scaled on four rows.  Two functions, not one loop with both
    branches: GCC 12 compiled that one with some products and sums left
    unfused, which changed roundings against the one-row and tiled paths."""
    if scale == 1:
        add_four_products(o0, a0, o1, a1, o2, a2, o3, a3, d, width)
    else:
        add_four_scaled(o0, a0, o1, a1, o2, a2, o3, a3, d, width, scale)


cdef inline Py_ssize_t outer_passes(Py_ssize_t m) noexcept nogil:
    """How many passes add_outer makes over m rows (each asks for ahead.quota)."""
    return m // 4 + m % 4


cdef inline void add_outer(floating* out_W, Py_ssize_t width, const index_t* idx,
                           const floating* v, Py_ssize_t m, bint gather,
                           const floating* d, floating scale, Ahead* ahead) noexcept nogil:
    """out_W[j_k, :] += scale * a_k * d over the inputs k < m (a_k, j_k as in
    add_rows): the weight gradient delta a^T, row by nonzero row, four rows
    per pass (add_four_rows; the rows are distinct, each gets what one row
    alone would).

    scale 1 (a gradient) adds a_k * d[i] as tile_outer does, so that a
    dense batch's sum is the same whether its rows go by tiles or not;
    otherwise (a fused step) the product is rounded before it is scaled,
    so that the step is the gradient's, times the scale.  Each pass also
    asks for ahead.quota rows of the next sample.
    """
    cdef Py_ssize_t k = 0
    cdef floating a_k
    cdef floating* out_j
    while k + 4 <= m:
        if gather:
            add_four_rows(out_W + idx[k] * width, v[idx[k]],
                          out_W + idx[k + 1] * width, v[idx[k + 1]],
                          out_W + idx[k + 2] * width, v[idx[k + 2]],
                          out_W + idx[k + 3] * width, v[idx[k + 3]], d, width, scale)
        else:
            add_four_rows(out_W + idx[k] * width, v[k], out_W + idx[k + 1] * width, v[k + 1],
                          out_W + idx[k + 2] * width, v[k + 2],
                          out_W + idx[k + 3] * width, v[k + 3], d, width, scale)
        fetch_ahead(ahead, -1)
        k += 4
    while k < m:
        a_k = v[idx[k]] if gather else v[k]
        out_j = out_W + idx[k] * width
        if scale == 1:
            add_product(out_j, width, a_k, d)
        else:
            add_scaled(out_j, width, a_k, d, scale)
        fetch_ahead(ahead, -1)
        k += 1


cdef inline void activate(const Net* net, Py_ssize_t l, const floating* z,
                          floating* a) noexcept nogil:
    """a[l+1] = f(z[l+1]): layer l's activation."""
    cdef Py_ssize_t code = net.act[l], o = net.u_off[l]
    if code == SOFTMAX:
        softmax(z + o, a + o, net.size[l + 1])
    else:
        activations(code, z + o, a + o, net.size[l + 1])


cdef inline void dense_layer(const Net* net, const floating* params, Py_ssize_t l,
                             const floating* a_prev, floating* z, floating* a,
                             int32_t* nz) noexcept nogil:
    """z[l+1] = W[l] a_prev + b[l] over a_prev's nonzero inputs, listed in nz
    at nz_off[l] (see nonzero_list), then a[l+1] = f(z[l+1])."""
    cdef Py_ssize_t i, m, width = net.width[l]
    cdef const floating* b = params + net.b_off[l]
    cdef floating* z_l = z + net.u_off[l]
    cdef int32_t* nz_l = nz + net.nz_off[l]
    for i in range(width):
        z_l[i] = b[i]
    m = nonzeros(a_prev, net.size[l], nz_l + 1)     # exact: a zero input adds nothing
    nz_l[0] = <int32_t>m
    add_rows(z_l, params + net.w_off[l], width, <const int32_t*>(nz_l + 1), a_prev, m, True,
             NULL)
    activate(net, l, z, a)


cdef void forward(const Net* net, const floating* params, const Row* x,
                  floating* z, floating* a, int32_t* nz, Ahead* ahead) noexcept nogil:
    """z[l+1] = W[l] a[l] + b[l], a[l+1] = f(z[l+1]) for every layer; a[0] = x.

    nz receives, per layer, the count and indices of its nonzero inputs
    (see nonzero_list), which backward() reuses; a CSR row is its own list
    for layer 0, which is then left unwritten.  ahead (NULL: none): the
    next sample's rows of W[0], half of which are asked for during the
    first layer's passes (see fetch_ahead).
    """
    cdef Py_ssize_t l, i, width = net.width[0]
    cdef const floating* b = params + net.b_off[0]
    cdef floating* z_0 = z + net.u_off[0]
    if x.idx == NULL:
        dense_layer(net, params, 0, <const floating*>x.x, z, a, nz)
    else:
        for i in range(width):
            z_0[i] = b[i]
        if ahead != NULL:     # spread over this layer's passes
            ahead.quota = ahead.in_forward // (x.m // 4 + 1) + 1
        if x.wide:
            add_rows(z_0, params + net.w_off[0], width, <const int64_t*>x.idx,
                     <const floating*>x.x, x.m, False, ahead)
        else:
            add_rows(z_0, params + net.w_off[0], width, <const int32_t*>x.idx,
                     <const floating*>x.x, x.m, False, ahead)
        activate(net, 0, z, a)
    for l in range(1, net.L):
        dense_layer(net, params, l, a + net.u_off[l - 1], z, a, nz)


cdef double sample_loss(const Net* net, const floating* z, const floating* a,
                        const floating* y) noexcept nogil:
    """The loss of one sample, from the output layer's z and a (in double)."""
    cdef Py_ssize_t k, n = net.size[net.L]
    cdef Py_ssize_t off = net.u_off[net.L - 1]
    cdef Py_ssize_t code = net.act[net.L - 1]
    cdef const floating* z_L = z + off
    cdef const floating* a_L = a + off
    cdef double loss = 0, d, m, log_sum, y_k
    if net.loss == MSE:
        for k in range(n):
            d = <double>a_L[k] - <double>y[k]
            loss += d * d
        return 0.5 * loss
    if net.loss == POISSON:
        # y log(y / a) - y + a with a = exp(z), from z: y log y - y z - y + e^z
        # (0 log 0 = 0), finite where a itself would underflow or round.
        for k in range(n):
            y_k = y[k]
            if y_k > 0:
                loss += y_k * log(y_k)
            loss += exp(<double>z_L[k]) - y_k * <double>z_L[k] - y_k
        return loss
    if code == SOFTMAX:
        # log a_k = z_k - logsumexp(z): finite even where a_k underflows to 0.
        m = z_L[0]
        for k in range(1, n):
            if z_L[k] > m:
                m = z_L[k]
        log_sum = 0
        for k in range(n):
            log_sum += fast_exp(<double>z_L[k] - m)
        log_sum = m + log(log_sum)
        for k in range(n):
            if y[k] != 0:
                loss -= <double>y[k] * (<double>z_L[k] - log_sum)
        return loss
    # Sigmoid output: -log a = softplus(-z), -log(1 - a) = softplus(z).
    for k in range(n):
        loss += <double>y[k] * softplus(-<double>z_L[k]) \
            + (1 - <double>y[k]) * softplus(<double>z_L[k])
    return loss


cdef void output_delta(const Net* net, const floating* z, const floating* a,
                       const floating* y, floating* delta) noexcept nogil:
    """delta[L-1] = dL/dz at the output layer, for every output/loss pair."""
    cdef Py_ssize_t k, n = net.size[net.L]
    cdef Py_ssize_t off = net.u_off[net.L - 1]
    cdef Py_ssize_t code = net.act[net.L - 1]
    cdef const floating* z_L = z + off
    cdef const floating* a_L = a + off
    cdef floating* d_L = delta + off
    cdef floating s = 0
    if net.loss == POISSON:
        # Canonical link (exp output, checked in Python): dL/dz = a - y.
        for k in range(n):
            d_L[k] = a_L[k] - y[k]
    elif net.loss == CROSS_ENTROPY:
        if code == SOFTMAX:
            # d/dz of -sum y log softmax(z) is a * sum(y) - y: a - y for a
            # one-hot or probability target (sum(y) = 1 exactly for labels).
            for k in range(n):
                s += y[k]
            for k in range(n):
                d_L[k] = a_L[k] * s - y[k]
        else:
            for k in range(n):
                d_L[k] = a_L[k] - y[k]
    elif code == SOFTMAX:
        # MSE through softmax: delta = J^T (a - y), J = diag(a) - a a^T.
        for k in range(n):
            s += a_L[k] * (a_L[k] - y[k])
        for k in range(n):
            d_L[k] = a_L[k] * ((a_L[k] - y[k]) - s)
    else:
        for k in range(n):
            d_L[k] = (a_L[k] - y[k]) * derivative(code, z_L[k], a_L[k])


cdef inline void back_propagate(const Net* net, const floating* params, const floating* z,
                                const floating* a, floating* delta,
                                Py_ssize_t l) noexcept nogil:
    """delta[l-1]_j = (W[l]^T delta[l])_j * f'(z[l]_j), for l >= 1, from W[l]
    as it is: the chain rule through one layer, reading W[l] and writing
    nothing but delta[l-1]."""
    cdef Py_ssize_t n_in = net.size[l], width = net.width[l]
    cdef const floating* W = params + net.w_off[l]
    cdef const floating* d_l = delta + net.u_off[l]
    cdef floating* d_prev = delta + net.u_off[l - 1]
    derivatives(net.act[l - 1], z + net.u_off[l - 1], a + net.u_off[l - 1], d_prev,
                n_in)                                   # f'(z[l]) first, then
    chain_rows(W, width, d_l, d_prev, n_in)             # (W[l]^T delta[l]) f'


cdef inline void add_layer_gradient(const Net* net, const Row* x, const floating* a,
                                    const floating* delta, const int32_t* nz, floating* out,
                                    floating scale, Ahead* ahead, Py_ssize_t l) noexcept nogil:
    """out's W[l] += scale * delta[l] a[l]^T (the rows of a[l]'s nonzero
    inputs) and b[l] += scale * delta[l]: one layer's gradient, or its fused
    step when out is params itself."""
    cdef Py_ssize_t i, width = net.width[l]
    cdef const floating* d_l = delta + net.u_off[l]
    cdef floating* out_b = out + net.b_off[l]
    cdef const floating* a_prev = a + net.u_off[l - 1] if l > 0 else <const floating*>x.x
    cdef const int32_t* nz_l
    for i in range(width):
        out_b[i] += scale * d_l[i]
    if l == 0 and x.idx != NULL:
        if ahead != NULL:
            ahead.quota = (ahead.m - ahead.done) // (outer_passes(x.m) + 1) + 1
        if x.wide:
            add_outer(out + net.w_off[0], width, <const int64_t*>x.idx, a_prev, x.m,
                      False, d_l, scale, ahead)
        else:
            add_outer(out + net.w_off[0], width, <const int32_t*>x.idx, a_prev, x.m,
                      False, d_l, scale, ahead)
    else:
        nz_l = nz + net.nz_off[l]
        add_outer(out + net.w_off[l], width, <const int32_t*>(nz_l + 1), a_prev, nz_l[0],
                  True, d_l, scale, NULL)


cdef void backward(const Net* net, const floating* params, const Row* x,
                   const floating* z, const floating* a, floating* delta,
                   const int32_t* nz, floating* out, floating scale,
                   Ahead* ahead) noexcept nogil:
    """Back-propagate delta[L-1]; add scale * (this sample's dL/dW, dL/db) to out.

    delta[l-1]_j = (W[l]^T delta[l])_j * f'(z[l]_j);  dL/dW[l] = delta[l] a[l]^T;
    dL/db[l] = delta[l].  out has the layout of params and is either a
    gradient buffer (scale 1) or params itself (scale -lr: the plain SGD step
    of batch size 1, fused into this pass).  delta[l-1] is computed from W[l]
    before W[l] is written, so the fused step equals the gradient followed by
    the update.  ahead (NULL: none): the rest of the next sample's
    rows of W[0] not yet asked for, spread over W[0]'s rows here, if any
    (see fetch_ahead).
    """
    cdef Py_ssize_t l
    for l in range(net.L - 1, 0, -1):
        back_propagate(net, params, z, a, delta, l)     # reads W[l], then
        add_layer_gradient(net, x, a, delta, nz, out, scale, NULL, l)   # out may write it
    add_layer_gradient(net, x, a, delta, nz, out, scale, ahead, 0)
    if ahead != NULL:
        fetch_ahead(ahead, ahead.m)


cdef void update_span(const Net* net, const Rule* rule, floating* params, floating* grad,
                      floating* state, Py_ssize_t lo, Py_ssize_t hi,
                      floating scale) noexcept nogil:
    """The rule's step on params[lo:hi] (grad and state alike), segment by
    segment: weights decay by weight_decay, biases by weight_decay * bias_decay,
    both times the batch scale with mean_decay (scikit-learn's alpha / sum(w))."""
    cdef Py_ssize_t l, seg, a, b
    cdef floating wd
    cdef double decay = rule.weight_decay * (<double>scale if rule.mean_decay else 1.0)
    for l in range(net.L):
        for seg in range(2):
            if seg == 0:
                a, b = net.w_off[l], net.b_off[l]
                wd = <floating>decay
            else:
                a, b = net.b_off[l], net.b_off[l] + net.width[l]
                wd = <floating>(decay * rule.bias_decay)
            if a < lo:
                a = lo
            if b > hi:
                b = hi
            if a < b:
                apply_rule(rule, params + a, grad + a, state + a if state != NULL else NULL,
                           b - a, scale, wd)


cdef void reduce_update(const Net* net, const Rule* rule, floating* params, floating* grad,
                        Py_ssize_t n_threads, floating* state, Py_ssize_t lo,
                        Py_ssize_t hi, floating scale) noexcept nogil:
    """For params[lo:hi]: sum the threads' gradient rows (grad is n_threads rows
    of n_params) into row 0, in thread order, then take the rule's step.
    Every row is left zeroed, ready for the next batch."""
    cdef Py_ssize_t t, k
    cdef floating* g_t
    for t in range(1, n_threads):
        g_t = grad + t * net.n_params
        for k in range(lo, hi):
            grad[k] += g_t[k]
            g_t[k] = 0
    update_span(net, rule, params, grad, state, lo, hi, scale)


cdef inline int32_t* row_flags(const Net* net, floating* ws) noexcept nogil:
    """n0 flags, one per row of W[0], after a scratch row's nonzero lists:
    1 for a row listed in the current batch, 0 between batches."""
    return nonzero_list(net, ws) + net.nz_off[net.L - 1] + net.size[net.L - 1] + 1


cdef inline Py_ssize_t mark_rows(const index_t* idx, const floating* v, Py_ssize_t m,
                                 int32_t* flags, int32_t* rows,
                                 Py_ssize_t count) noexcept nogil:
    """Append to rows[count:] the columns idx[k] with v[k] != 0 not yet flagged."""
    cdef Py_ssize_t k, j
    for k in range(m):
        j = idx[k]
        if v[k] != 0 and flags[j] == 0:
            flags[j] = 1
            rows[count] = <int32_t>j
            count += 1
    return count


cdef void update_touched(const Net* net, const Rule* rule, floating* params, floating* grad,
                         Py_ssize_t n_threads, floating* state, const Inputs* X,
                         const Py_ssize_t* order, Py_ssize_t lo, Py_ssize_t hi,
                         int32_t* flags, int32_t* rows, floating scale) noexcept nogil:
    """The rule's step on the rows of W[0] that samples order[lo:hi] touch (a
    nonzero input in that column), each once; with several threads their
    gradient rows are summed into row 0 first, in thread order.

    Every other row of W[0] has a zero gradient, which plain SGD (no momentum,
    no weight decay) and SparseAdam map to no change at all: so a batch costs
    its non-zeros, not n0.  rows needs room for n0 entries; flags are left 0.
    """
    cdef Py_ssize_t r, t, i, j, off, count = 0, width = net.width[0]
    cdef Row x
    cdef const floating* v
    cdef floating* g_t
    for r in range(lo, hi):
        x = row_of(X, order[r])
        v = <const floating*>x.x
        if x.idx == NULL:                   # a dense row: its nonzero columns
            for j in range(x.m):
                if v[j] != 0 and flags[j] == 0:
                    flags[j] = 1
                    rows[count] = <int32_t>j
                    count += 1
        elif x.wide:
            count = mark_rows(<const int64_t*>x.idx, v, x.m, flags, rows, count)
        else:
            count = mark_rows(<const int32_t*>x.idx, v, x.m, flags, rows, count)
    for r in range(count):
        j = rows[r]
        flags[j] = 0
        off = net.w_off[0] + j * width
        for t in range(1, n_threads):
            g_t = grad + t * net.n_params + off
            for i in range(width):
                grad[off + i] += g_t[i]
                g_t[i] = 0
        if rule.code == RULE_SPARSE_ADAM:
            sparse_adam_rule(rule, params + off, grad + off, state + off, width, scale)
        else:
            apply_rule(rule, params + off, grad + off, state + off if state != NULL else NULL,
                       width, scale, 0)


cdef inline Py_ssize_t predicted_class(const floating* a_L, Py_ssize_t n) noexcept nogil:
    """argmax (first of ties); for one output, 1 where a >= 0.5."""
    cdef Py_ssize_t k, best = 0
    if n == 1:
        return 1 if a_L[0] >= 0.5 else 0
    for k in range(1, n):
        if a_L[k] > a_L[best]:
            best = k
    return best


cdef inline const floating* target(const Net* net, const floating* Y,
                                   const int64_t* labels, Py_ssize_t s,
                                   floating* y_buf) noexcept nogil:
    """The target row of sample s: Y[s], or label s as a vector in y_buf
    (one-hot, or the 0/1 value itself for a single output)."""
    cdef Py_ssize_t k, n = net.size[net.L]
    if labels == NULL:
        return Y + s * n
    if n == 1:
        y_buf[0] = <floating>labels[s]
    else:
        for k in range(n):
            y_buf[k] = 0
        y_buf[labels[s]] = 1
    return y_buf


cdef inline Py_ssize_t sample_at(const Py_ssize_t* order, Py_ssize_t r) noexcept nogil:
    """The sample at position r: order[r], or r itself when order is NULL."""
    return order[r] if order != NULL else r


cdef inline Py_ssize_t mark_tile(const int32_t* nz, Py_ssize_t m, Py_ssize_t q,
                                 uint32_t* mark, int32_t* rows, Py_ssize_t count) noexcept nogil:
    """Tile sample q uses the rows nz[:m] of W[0]: set bit q of their marks,
    appending each row not yet marked to rows[count:] (branch-free: every
    row is written at rows[count], so rows needs one slot beyond n0)."""
    cdef Py_ssize_t k, j
    cdef uint32_t bit = (<uint32_t>1) << q
    for k in range(m):
        j = nz[k]
        rows[count] = <int32_t>j
        count += mark[j] == 0
        mark[j] |= bit
    return count


cdef inline void add_terms(floating* out_j, Py_ssize_t width, const floating* a,
                           const floating* const* d, Py_ssize_t c) noexcept nogil:
    """out_j += a[0] d[0] + ... + a[c-1] d[c-1], term after term (each as
    add_outer adds it), four terms per pass over out_j."""
    cdef Py_ssize_t i, g = 0
    cdef floating a0, a1, a2, a3, o
    cdef const floating* d0
    cdef const floating* d1
    cdef const floating* d2
    cdef const floating* d3
    while g + 4 <= c:
        a0, a1, a2, a3 = a[g], a[g + 1], a[g + 2], a[g + 3]
        d0, d1, d2, d3 = d[g], d[g + 1], d[g + 2], d[g + 3]
        add_four(out_j, width, a0, d0, a1, d1, a2, d2, a3, d3)
        g += 4
    if c - g == 3:
        a0, a1, a2 = a[g], a[g + 1], a[g + 2]
        d0, d1, d2 = d[g], d[g + 1], d[g + 2]
        for i in range(width):
            o = out_j[i]
            o += a0 * d0[i]
            o += a1 * d1[i]
            o += a2 * d2[i]
            out_j[i] = o
    elif c - g == 2:
        a0, a1 = a[g], a[g + 1]
        d0, d1 = d[g], d[g + 1]
        for i in range(width):
            o = out_j[i]
            o += a0 * d0[i]
            o += a1 * d1[i]
            out_j[i] = o
    elif c - g == 1:
        a0, d0 = a[g], d[g]
        for i in range(width):
            out_j[i] += a0 * d0[i]


cdef void tile_outer(const Net* net, floating* out, const floating* const* xs,
                     const int32_t* rows, Py_ssize_t count, uint32_t* mark,
                     const floating* deltas) noexcept nogil:
    """out's W[0] += the gradients x_q delta[0]_q^T of the samples q of a tile
    (inputs xs[q], delta[0] at deltas + q * width[0]), row by row: each row
    of the gradient the tile touches is read and written once per four of
    its samples instead of once per sample, the terms added in tile order,
    each as add_outer adds it, so the sum is bit-identical to sample by
    sample.  A row's samples are the set bits of its mark, taken lowest
    first; the marks are cleared (see mark_tile).
    """
    cdef Py_ssize_t k, q, c, j, width = net.width[0]
    cdef uint32_t mask
    cdef floating a[MAX_TILE]
    cdef const floating* d[MAX_TILE]
    for k in range(count):
        j = rows[k]
        mask = mark[j]
        mark[j] = 0
        c = 0
        while mask != 0:               # the tile's samples with x_q[j] != 0, in order
            q = ctz64(mask)
            a[c] = xs[q][j]
            d[c] = deltas + q * width
            c += 1
            mask &= mask - 1
        add_terms(out + net.w_off[0] + j * width, width, a, d, c)


cdef inline void score(const Net* net, const floating* z, const floating* a, floating* delta,
                       const floating* y, const int64_t* labels, const floating* sw,
                       Py_ssize_t s, double* loss_sum, double* n_correct) noexcept nogil:
    """Sample s after its forward pass: count it if it predicts its label,
    add its loss (times its weight sw[s], unless sw is NULL) to loss_sum,
    and write its output delta (times the same weight)."""
    cdef Py_ssize_t k, n_out = net.size[net.L], off = net.u_off[net.L - 1]
    cdef floating w
    if labels != NULL and predicted_class(a + off, n_out) == labels[s]:
        n_correct[0] += 1
    output_delta(net, z, a, y, delta)
    if sw == NULL:
        loss_sum[0] += sample_loss(net, z, a, y)
    else:
        w = sw[s]
        loss_sum[0] += <double>w * sample_loss(net, z, a, y)
        for k in range(n_out):
            delta[off + k] *= w


cdef void accumulate(const Net* net, const floating* params, floating* grad,
                     floating* ws, const Inputs* X, const floating* Y,
                     const int64_t* labels, const floating* sw, const Py_ssize_t* order,
                     Py_ssize_t lo, Py_ssize_t hi, double* stats) noexcept nogil:
    """For samples order[lo:hi] (or lo:hi when order is NULL): forward, loss,
    backward, summed into grad.  Every sample sees the same params.

    With sample weights sw (NULL: every weight 1) sample s's output delta,
    hence its gradient, and its loss are multiplied by sw[s].
    stats[0] += sum of the (weighted) losses, stats[1] += number of labels
    predicted correctly.  ws holds z, a, delta and the target of the last sample.

    Dense rows go by tiles of net.tile samples, W[0] by rows on one slice
    (tiled_slice): W[0] is the big matrix when n0 is large (MNIST's
    [784, 100, 10]: 627 KB in float64), and a tile reads it, and its
    gradient's rows, once instead of once per sample.
    """
    cdef floating* z = ws
    cdef floating* a = ws + net.n_units
    cdef floating* delta = ws + 2 * net.n_units
    cdef floating* y_buf = ws + 3 * net.n_units
    cdef int32_t* nz = nonzero_list(net, ws)
    cdef Py_ssize_t width0 = net.width[0]
    cdef Py_ssize_t r, s
    cdef Row x
    cdef const floating* y
    cdef double loss_sum = 0, n_correct = 0    # in registers, not in shared memory
    cdef Ahead ahead
    if X.X != NULL and X.deferred == NULL and net.tile > 1 and hi - lo > 1:
        tiled_slice(net, params, grad, ws, X, Y, labels, sw, order, lo, hi, stats)
        return
    for r in range(lo, hi):
        if order != NULL:
            fetch_samples_ahead(net, X, Y, labels, order, r, hi)
        s = sample_at(order, r)
        x = row_of(X, s)
        y = target(net, Y, labels, s, y_buf)
        ahead = ahead_of(net, params, X, sample_at(order, r + 1) if r + 1 < hi else -1, False)
        forward(net, params, &x, z, a, nz, &ahead)
        score(net, z, a, delta, y, labels, sw, s, &loss_sum, &n_correct)
        if X.deferred != NULL:
            # W[0]'s part waits for apply_deferred: backward gets a row without
            # entries, so it adds all the rest; then keep delta[0].
            x.m = 0
            backward(net, params, &x, z, a, delta, nz, grad, 1, NULL)
            memcpy(<floating*>X.deferred + (r - X.batch_start) * width0,
                   delta + net.u_off[0], width0 * sizeof(floating))
            continue
        backward(net, params, &x, z, a, delta, nz, grad, 1, NULL)
    stats[0] += loss_sum
    stats[1] += n_correct


# ------------------------------------------------- a dense minibatch by tiles: W[0] by rows
#
# With n_t slices on dense rows (threads; one slice on a single thread), each
# owns a contiguous share of the rows of W[0] (inputs j0 <= j < j1): it alone
# reads them in the forward pass, adds their gradient and steps them.  So
# W[0], the big matrix (MNIST's [784, 100, 10]: 326 KB in float32), stays in
# that core's cache batch after batch and its gradient needs no sum over
# threads; only the small vectors of a tile cross between cores.  A tile
# takes three parallel steps:
#   1. rows: each thread's partial z[1] of every sample of the tile, from its
#      rows (thread 0's starting at b[0]), into its tile section;
#   2. samples: each thread, for its share of the tile's samples, sums the
#      partials in thread order, runs the layers above, the loss and backward
#      (W[1..] and every b into its own gradient row) and keeps delta[0]
#      where thread 0's partial was;
#   3. rows: each thread adds its rows' gradient, tile_outer's way, from the
#      tile's delta[0] into gradient row 0.
# Then split_update steps each thread's rows of W[0] and the threads' summed
# gradient of the rest.  The result depends on n_t (z[1] is summed in n_t
# parts), never on timing or on how many OS threads run the slices.  On one
# slice (tiled_slice) the steps run in turn: each sample's sums are then in
# the order of the one-sample path, so the result is the same bit for bit.
#
# Steps 1 and 3 touch only a thread's own rows, and step 1 reads only its own
# rows of W[0] (and b[0], which thread 0 steps): so a thread goes on from
# step 3 and its update to the next tile's step 1 without waiting for the
# others, into the other of two tile sections (tiles use them in turn) while
# the others may still read the last tile's delta[0].  Two barriers a tile,
# after steps 1 and 2, and one parallel region for all the batches of a call
# (rows_batches).

cdef inline Py_ssize_t first_row(const Net* net, Py_ssize_t t, Py_ssize_t n_t) noexcept nogil:
    """The first row of W[0] that thread t of n_t owns (t = n_t: n0)."""
    return t * net.size[0] // n_t


cdef inline Py_ssize_t tile_section(const Net* net, Py_ssize_t tile_number) noexcept nogil:
    """Where in a scratch row the tile section of the given tile starts:
    the two sections in turn (see the section's comment)."""
    return net.tile_off + (tile_number % 2) * net.tile * net.width[0]


cdef inline int32_t* tile_rows(const Net* net, floating* ws) noexcept nogil:
    """After the two tile sections of a scratch row: the rows of W[0] the
    current tile touches, then (n0 + 1 on) their bit masks (mark_tile)."""
    return <int32_t*>(ws + net.tile_off + 2 * net.tile * net.width[0])


cdef inline Py_ssize_t first_rest(const Net* net, Py_ssize_t t, Py_ssize_t n_t) noexcept nogil:
    """The first parameter after W[0] whose step thread t of n_t takes (t =
    n_t: n_params): an equal share each, except that thread 0's covers all
    of b[0], the one parameter outside its rows that its step 1 reads."""
    cdef Py_ssize_t rest = net.b_off[0], n = net.n_params - rest
    cdef Py_ssize_t lo = rest + t * n // n_t
    if t == 0:
        return rest
    return lo if lo > rest + net.width[0] else rest + net.width[0]


cdef Py_ssize_t split_first_layer(const Net* net, const floating* params, floating* ws,
                                  const Inputs* X, const Py_ssize_t* order,
                                  Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t j0,
                                  Py_ssize_t j1, bint with_bias, Py_ssize_t part) noexcept nogil:
    """Step 1 for the dense samples order[lo:hi] (order NULL: lo:hi; tile
    sample q = 0, 1, ...) and rows j0 <= j < j1 of W[0]: partial q = (b[0] if with_bias, else 0)
    + the sum over those rows with x_j != 0 of x_j W[0][j, :], in row order,
    at ws + part + q * width[0] (part: the tile's section, tile_section); the
    rows each sample uses are marked (mark_tile, numbered from j0).  Returns
    how many rows are marked."""
    cdef Py_ssize_t q, m, count = 0, width = net.width[0]
    cdef floating* partial = ws + part
    cdef int32_t* rows = tile_rows(net, ws)
    cdef uint32_t* mark = <uint32_t*>(rows + net.size[0] + 1)
    cdef int32_t* nz = nonzero_list(net, ws) + net.nz_off[0] + 1
    cdef const floating* W = params + net.w_off[0] + j0 * width
    cdef const floating* b = params + net.b_off[0]
    cdef const floating* x
    cdef floating* P
    for q in range(hi - lo):
        if lo + q + 2 < hi:             # shuffled rows are cache misses: ask ahead
            prefetch(<const floating*>row_of(X, sample_at(order, lo + q + 2)).x + j0)
        x = <const floating*>row_of(X, sample_at(order, lo + q)).x + j0
        P = partial + q * width
        if with_bias:
            memcpy(P, b, width * sizeof(floating))
        else:
            memset(P, 0, width * sizeof(floating))
        m = nonzeros(x, j1 - j0, nz)
        add_rows(P, W, width, <const int32_t*>nz, x, m, True, NULL)
        count = mark_tile(nz, m, q, mark, rows, count)
    return count


cdef void split_samples(const Net* net, const floating* params, floating* grad,
                        floating* ws_all, Py_ssize_t ws_len, Py_ssize_t n_t, Py_ssize_t u,
                        const Inputs* X, const floating* Y, const int64_t* labels,
                        const floating* sw, const Py_ssize_t* order, Py_ssize_t start,
                        Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t part, double* stats
                        ) noexcept nogil:
    """Step 2, by thread u (scratch row u of ws_all), for the samples of the
    tile order[lo:hi] that are u modulo n_t in their batch (which starts at
    order[start]): whatever the tile size, thread u sums the same samples in
    the same order.  For each, s = order[r], q = r - lo: z[1] = the n_t
    partials summed in thread order; the layers above; the loss (stats as
    accumulate's); backward into grad for all but W[0]; delta[0] kept in
    thread 0's tile section (at part), in place of partial q, which only
    this thread reads."""
    cdef floating* ws = ws_all + u * ws_len
    cdef floating* z = ws
    cdef floating* a = ws + net.n_units
    cdef floating* delta = ws + 2 * net.n_units
    cdef floating* y_buf = ws + 3 * net.n_units
    cdef int32_t* nz = nonzero_list(net, ws)
    cdef Py_ssize_t r, q, s, t, i, l, width = net.width[0]
    cdef floating* z_0 = z + net.u_off[0]
    cdef floating* kept
    cdef const floating* P
    cdef const floating* y
    cdef Row x
    # running on from the batch's earlier tiles: the same sum whatever the tiles
    cdef double loss_sum = stats[0], n_correct = stats[1]
    r = lo + (u - (lo - start) % n_t + n_t) % n_t - n_t
    while r + n_t < hi:
        r += n_t
        q = r - lo
        s = sample_at(order, r)
        x = row_of(X, s)
        y = target(net, Y, labels, s, y_buf)
        kept = ws_all + part + q * width
        memcpy(z_0, kept, width * sizeof(floating))
        for t in range(1, n_t):
            P = ws_all + t * ws_len + part + q * width
            for i in range(width):
                z_0[i] += P[i]
        activate(net, 0, z, a)
        for l in range(1, net.L):
            dense_layer(net, params, l, a + net.u_off[l - 1], z, a, nz)
        score(net, z, a, delta, y, labels, sw, s, &loss_sum, &n_correct)
        nz[net.nz_off[0]] = 0           # W[0]'s rows wait for step 3
        backward(net, params, &x, z, a, delta, nz, grad, 1, NULL)
        memcpy(kept, delta + net.u_off[0], width * sizeof(floating))
    stats[0] = loss_sum
    stats[1] = n_correct


cdef void split_outer(const Net* net, floating* grad, const floating* ws_all, floating* ws,
                      const Inputs* X, const Py_ssize_t* order, Py_ssize_t lo,
                      Py_ssize_t hi, Py_ssize_t j0, Py_ssize_t count,
                      Py_ssize_t part) noexcept nogil:
    """Step 3 for the rows from j0 that split_first_layer marked in ws (count
    of them): grad's W[0] += the tile's x_q delta[0]_q^T (delta[0] of sample q
    kept in the tile section at part of ws_all's row 0), as tile_outer adds
    them."""
    cdef Py_ssize_t q, width = net.width[0]
    cdef const floating* xs[MAX_TILE]
    cdef int32_t* rows = tile_rows(net, ws)
    cdef uint32_t* mark = <uint32_t*>(rows + net.size[0] + 1)
    for q in range(hi - lo):
        xs[q] = <const floating*>row_of(X, sample_at(order, lo + q)).x + j0
    tile_outer(net, grad + j0 * width, xs, rows, count, mark, ws_all + part)


cdef void split_update(const Net* net, const Rule* rule, floating* params, floating* grad,
                       Py_ssize_t n_t, floating* state, Py_ssize_t t,
                       floating scale) noexcept nogil:
    """Thread t's share of a batch's step after the three steps: its rows of
    W[0] (whose gradient is whole in grad's row 0, the other rows zero), and
    its share of the rest (first_rest), summed over the threads' rows first.
    Every rule steps each parameter on its own, so the shares do not change
    the result."""
    cdef Py_ssize_t width = net.width[0]
    update_span(net, rule, params, grad, state,
                net.w_off[0] + first_row(net, t, n_t) * width,
                net.w_off[0] + first_row(net, t + 1, n_t) * width, scale)
    reduce_update(net, rule, params, grad, n_t, state, first_rest(net, t, n_t),
                  first_rest(net, t + 1, n_t), scale)


cdef void tiled_slice(const Net* net, const floating* params, floating* grad, floating* ws,
                      const Inputs* X, const floating* Y, const int64_t* labels,
                      const floating* sw, const Py_ssize_t* order, Py_ssize_t lo,
                      Py_ssize_t hi, double* stats) noexcept nogil:
    """accumulate's dense samples order[lo:hi] (order NULL: lo:hi) on one
    slice, tile by tile: the three steps of the split by rows with one
    owner of every row of W[0]."""
    cdef Py_ssize_t start = lo, stop, count, part = tile_section(net, 0)
    while start < hi:
        stop = start + net.tile if start + net.tile < hi else hi
        count = split_first_layer(net, params, ws, X, order, start, stop, 0, net.size[0], True,
                                  part)
        split_samples(net, params, grad, ws, 0, 1, 0, X, Y, labels, sw, order, lo, start,
                      stop, part, stats)
        split_outer(net, grad, ws, ws, X, order, start, stop, 0, count, part)
        start = stop


cdef inline floating batch_scale(const floating* sw, const Py_ssize_t* order, Py_ssize_t lo,
                                 Py_ssize_t hi) noexcept nogil:
    """What the summed gradient of the batch order[lo:hi] is scaled by: one
    over its size, or over the sum of its sample weights sw (NULL: none; a
    batch whose weights sum to 0 takes no step)."""
    cdef double sw_sum = 0
    cdef Py_ssize_t k
    if sw == NULL:
        return <floating>(1.0 / (hi - lo))
    for k in range(lo, hi):
        sw_sum += sw[order[k]]
    return <floating>(1.0 / sw_sum) if sw_sum > 0 else 0


# split_first_layer's type, for rows_batches
ctypedef Py_ssize_t (*first_layer_step)(const Net*, const floating*, floating*, const Inputs*,
                                         const Py_ssize_t*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                         Py_ssize_t, bint, Py_ssize_t) noexcept nogil


cdef void rows_batches(const Net* net, const Rule* rule, floating* params, floating* grad,
                       floating* ws_all, Py_ssize_t ws_len, double* thread_stats,
                       Py_ssize_t* marked, floating* state, const Inputs* X,
                       const floating* Y, const int64_t* labels, const floating* sw,
                       const Py_ssize_t* order, Py_ssize_t start, Py_ssize_t stop,
                       Py_ssize_t batch_size, Py_ssize_t n_t, double* stats,
                       double* batch_loss, double* batch_sq, Py_ssize_t w,
                       Py_ssize_t team) noexcept nogil:
    """The minibatches order[start:stop] (batch_size each, the last maybe
    fewer, but at least n_t) on n_t slices each, W[0] by rows: run by each of
    the `team` threads of one parallel region (this one is number w), which
    take slices w, w + team, ... at every step, with a barrier after steps 1
    and 2 of every tile (so team may be anything from 1 to n_t: the same
    result).  Batch k's rule step is number rule.step + k; thread 0 adds
    its loss sum and count of correct labels to stats (as train does for
    a batch) and, unless NULL, writes batch_loss[k] and batch_sq[k] (the
    sum of ||W[l]||^2 before its update).  thread_stats (n_t rows of 2,
    zero on entry): each slice's loss sum and count within a batch;
    marked: n_t counts, between steps 1 and 3."""
    cdef Rule own = rule[0]          # the step number is this thread's to count
    # Step 1 called through a pointer the compiler cannot follow: inlined
    # into this loop of loops, its inner loop ran out of registers and
    # reloaded its row pointers from the stack (14% more instructions for
    # two slices than one thread on MNIST's N2, against 3% so).
    cdef first_layer_step step_1 = <first_layer_step>opaque(
        <void*><first_layer_step>split_first_layer)
    cdef Py_ssize_t t, k = 0, b_lo = start, b_hi, lo, hi, part, tiles = 0
    cdef Py_ssize_t span = net.tile if net.tile > 1 else 1, n_params = net.n_params
    cdef floating scale
    cdef double batch_sum
    while b_lo < stop:
        b_hi = b_lo + batch_size if b_lo + batch_size < stop else stop
        own.step = rule.step + k
        scale = batch_scale(sw, order, b_lo, b_hi)
        lo = b_lo
        while lo < b_hi:
            hi = lo + span if lo + span < b_hi else b_hi
            part = tile_section(net, tiles)
            t = w
            while t < n_t:
                marked[t] = step_1(net, params, ws_all + t * ws_len, X, order, lo,
                                   hi, first_row(net, t, n_t),
                                   first_row(net, t + 1, n_t), t == 0, part)
                t += team
            barrier()       # every update of the last batch is done, every partial written
            if w == 0 and lo == b_lo and batch_sq != NULL:
                batch_sq[k] = squared_weights(net, params)
            t = w
            while t < n_t:
                split_samples(net, params, grad + t * n_params, ws_all, ws_len, n_t, t, X,
                              Y, labels, sw, order, b_lo, lo, hi, part, thread_stats + 2 * t)
                t += team
            barrier()       # every delta[0] of the tile kept, the batch's stats summed
            if w == 0 and hi == b_hi:
                batch_sum = 0
                for t in range(n_t):
                    batch_sum += thread_stats[2 * t]
                    stats[1] += thread_stats[2 * t + 1]
                    thread_stats[2 * t] = 0
                    thread_stats[2 * t + 1] = 0
                stats[0] += batch_sum
                if batch_loss != NULL:
                    batch_loss[k] = batch_sum
            t = w
            while t < n_t:
                split_outer(net, grad, ws_all, ws_all + t * ws_len, X, order, lo, hi,
                            first_row(net, t, n_t), marked[t], part)
                t += team
            tiles += 1
            lo = hi
        t = w
        while t < n_t:
            split_update(net, &own, params, grad, n_t, state, t, scale)
            t += team
        k += 1
        b_lo = b_hi


cdef void apply_deferred(const Net* net, floating* params, const Inputs* X,
                         const Py_ssize_t* order, Py_ssize_t lo, Py_ssize_t hi,
                         floating* deferred, floating neg_step) noexcept nogil:
    """Plain SGD's step on W[0] for the CSR samples order[lo:hi], from their
    kept delta[0] (see Inputs.deferred): W[0][j, :] += neg_step * a_k * delta
    for every stored entry (column j, value a_k) of every sample; neg_step is
    -lr / batch size, the step of the batch's mean gradient.  The deltas are
    zeroed after use (the buffer is part of the gradient scratch).

    As torch's sparse SGD does, this never forms a gradient buffer for W[0]:
    each row a batch touches is read and written once here, after being read
    once in the forward pass, instead of going through a gradient row too.
    """
    cdef Py_ssize_t r, i, width = net.width[0]
    cdef Row x
    cdef floating* d
    for r in range(lo, hi):
        x = row_of(X, order[r])
        d = deferred + (r - lo) * width
        if x.wide:
            add_outer(params + net.w_off[0], width, <const int64_t*>x.idx,
                      <const floating*>x.x, x.m, False, d, neg_step, NULL)
        else:
            add_outer(params + net.w_off[0], width, <const int32_t*>x.idx,
                      <const floating*>x.x, x.m, False, d, neg_step, NULL)
        for i in range(width):
            d[i] = 0


cdef inline void prefetch_sample(const Net* net, const Inputs* X, const floating* Y,
                                 const int64_t* labels, Py_ssize_t s) noexcept nogil:
    """Ask for sample s's input and target before they are needed: in a
    shuffled epoch each sample is a cache miss, and for small networks the
    miss, not the arithmetic, is the cost of a sample.  (For a CSR row, its
    row pointer: where its entries are is itself not known yet.)"""
    if X.X != NULL:
        prefetch(<const char*>X.X + s * X.n_in * X.itemsize)
    else:
        prefetch(<const char*>X.indptr + s * (8 if X.wide else 4))
    if labels != NULL:
        prefetch(labels + s)
    else:
        prefetch(Y + s * net.size[net.L])


cdef inline void prefetch_entries(const Inputs* X, Py_ssize_t s) noexcept nogil:
    """Ask for CSR row s's column indices and values (its row pointer was
    asked for a sample earlier, by prefetch_sample)."""
    cdef Row r
    cdef Py_ssize_t c = 0
    if X.X != NULL:
        return
    r = row_of(X, s)
    while c < r.m * (8 if r.wide else 4):
        prefetch(<const char*>r.idx + c)
        c += 64
    c = 0
    while c < r.m * X.itemsize:
        prefetch(<const char*>r.x + c)
        c += 64


cdef inline void fetch_samples_ahead(const Net* net, const Inputs* X, const floating* Y,
                                     const int64_t* labels, const Py_ssize_t* order,
                                     Py_ssize_t k, Py_ssize_t hi) noexcept nogil:
    """Before sample order[k] of a loop over order[..hi]: ask for the input
    and target of order[k + 2]; for CSR rows, in stages, the row pointer of
    order[k + 3] and the entries of order[k + 2], so that the rows of W[0]
    that order[k + 1] reads can be fetched during sample k (ahead_of)."""
    if X.X != NULL:
        if k + 2 < hi:
            prefetch_sample(net, X, Y, labels, order[k + 2])
        return
    if k + 3 < hi:
        prefetch_sample(net, X, Y, labels, order[k + 3])
    if k + 2 < hi:
        prefetch_entries(X, order[k + 2])


cdef inline Ahead ahead_of(const Net* net, const floating* params, const Inputs* X,
                           Py_ssize_t s, bint update_too) noexcept nogil:
    """What fetch_ahead needs for CSR row s of X (s < 0, dense rows, or a
    W[0] that stays in the caches: nothing to fetch): half of the rows
    during the forward pass and half during the update when `update_too`
    (a fused step), else all during the forward pass."""
    cdef Ahead p
    cdef Row r
    memset(&p, 0, sizeof(Ahead))
    if s < 0 or X.X != NULL or net.size[0] * net.width[0] * X.itemsize < AHEAD_MIN_BYTES:
        return p
    r = row_of(X, s)
    p.W0 = <const char*>(params + net.w_off[0])
    p.idx = r.idx
    p.wide = r.wide
    p.m = r.m
    p.in_forward = r.m // 2 if update_too else r.m
    p.row_bytes = net.width[0] * X.itemsize
    return p


cdef void step_one(const Net* net, floating* params, floating* ws,
                   const Inputs* X, const floating* Y, const int64_t* labels,
                   Py_ssize_t s, Py_ssize_t s_next, floating neg_lr,
                   double* stats) noexcept nogil:
    """One sample, one plain SGD step, the update fused into the backward
    pass; meanwhile the rows of W[0] that sample s_next (< 0: none) reads
    are fetched (see fetch_ahead)."""
    cdef Ahead ahead = ahead_of(net, params, X, s_next, True)
    cdef floating* z = ws
    cdef floating* a = ws + net.n_units
    cdef floating* delta = ws + 2 * net.n_units
    cdef int32_t* nz = nonzero_list(net, ws)
    cdef Py_ssize_t n_out = net.size[net.L], off = net.u_off[net.L - 1]
    cdef Row x = row_of(X, s)
    cdef const floating* y = target(net, Y, labels, s, ws + 3 * net.n_units)
    forward(net, params, &x, z, a, nz, &ahead)
    stats[0] += sample_loss(net, z, a, y)
    if labels != NULL and predicted_class(a + off, n_out) == labels[s]:
        stats[1] += 1
    output_delta(net, z, a, y, delta)
    backward(net, params, &x, z, a, delta, nz, params, neg_lr, &ahead)


cdef void hogwild_slice(const Net* net, floating* params, floating* ws,
                        const Inputs* X, const floating* Y, const int64_t* labels,
                        const Py_ssize_t* order, Py_ssize_t lo, Py_ssize_t hi,
                        floating neg_lr, double* stats) noexcept nogil:
    """Per-sample plain SGD on samples order[lo:hi], as one Hogwild thread.

    Several threads run this at once on the same params without locks (Niu et
    al., 2011): a thread may read a weight row while another writes it, and
    two updates of one weight may race so that one is lost.  Both are benign
    for SGD's convergence on aligned floats (no torn values on the supported
    platforms: every float and double is written whole), and the results then
    depend on timing.  The sums stay in registers and are written once, so
    threads share no cache line but the parameters'.
    """
    cdef Py_ssize_t k
    cdef double local[2]
    local[0] = 0
    local[1] = 0
    for k in range(lo, hi):
        fetch_samples_ahead(net, X, Y, labels, order, k, hi)
        step_one(net, params, ws, X, Y, labels, order[k], order[k + 1] if k + 1 < hi else -1,
                 neg_lr, local)
    stats[0] = local[0]
    stats[1] = local[1]


# ---------------------------------------------------------------- entry points

cdef inline void clear_delta(const Net* net, floating* ws) noexcept nogil:
    """Zero a scratch row's delta section, pads included (see Memory layout)."""
    memset(ws + 2 * net.n_units, 0, net.n_units * sizeof(floating))


cdef inline const floating* rows_or_null(const floating[:, ::1] Y) noexcept nogil:
    return &Y[0, 0] if Y.shape[0] > 0 else NULL


cdef inline const int64_t* labels_or_null(const int64_t[::1] labels) noexcept nogil:
    return &labels[0] if labels.shape[0] > 0 else NULL


cdef inline const floating* weights_or_null(const floating[::1] w) noexcept nogil:
    return &w[0] if w.shape[0] > 0 else NULL


cdef inline double squared_weights(const Net* net, const floating* params) noexcept nogil:
    """sum over l of ||W[l]||² (weights only; the pads are zero), in double,
    in eight independent sums (as dot does: one chain of adds would not
    vectorise, and this runs over every weight once per minibatch)."""
    cdef Py_ssize_t l, k, c, hi
    cdef double acc[8]
    cdef double v
    for c in range(8):
        acc[c] = 0
    for l in range(net.L):
        k = net.w_off[l]
        hi = net.b_off[l]
        while k + 8 <= hi:
            for c in range(8):
                v = <double>params[k + c]
                acc[c] += v * v
            k += 8
        while k < hi:
            v = <double>params[k]
            acc[0] += v * v
            k += 1
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))


cdef inline floating* rows_or_null_mut(floating[:, ::1] A) noexcept nogil:
    return &A[0, 0] if A.shape[0] > 0 else NULL


cdef inline Py_ssize_t workers(Py_ssize_t n_slices, Py_ssize_t n_workers) noexcept nogil:
    """OS threads for n_slices slices: n_workers, at most one per slice (0: one per slice)."""
    return n_slices if n_workers <= 0 or n_workers > n_slices else n_workers


cdef int64_t _no_entries[1]        # where the arrays of a CSR input without entries point


cdef Inputs read_inputs(object X, Py_ssize_t n_in, floating dtype_tag) except *:
    """The kernel's view of X: a C-contiguous (n, n0) array of the network's
    dtype, or CSR rows (an object with .data in that dtype, .indices and
    .indptr both int32 or both int64: bpfast._validate.SparseRows, whose
    structure the Python layer has checked in full).  No copy: the pointers
    are valid while the caller holds X.  dtype_tag only picks the dtype."""
    cdef Inputs inp
    cdef const floating[:, ::1] dense
    cdef const floating[::1] data
    cdef const int32_t[::1] i32, p32
    cdef const int64_t[::1] i64, p64
    memset(&inp, 0, sizeof(Inputs))
    inp.n_in = n_in
    inp.itemsize = sizeof(floating)
    if not hasattr(X, "indptr"):
        dense = X
        if dense.shape[1] != n_in:
            raise ValueError(f"X: expected {n_in} columns; got {dense.shape[1]}")
        inp.n = dense.shape[0]
        inp.X = <const void*>&dense[0, 0] if inp.n > 0 else <const void*>_no_entries
        return inp
    data = X.data
    inp.data = <const void*>&data[0] if data.shape[0] > 0 else <const void*>_no_entries
    inp.wide = X.indices.dtype.itemsize == 8
    if inp.wide:
        i64 = X.indices
        p64 = X.indptr
        inp.n = p64.shape[0] - 1
        inp.indptr = <const void*>&p64[0]
        inp.indices = <const void*>&i64[0] if i64.shape[0] > 0 else <const void*>_no_entries
        if i64.shape[0] != data.shape[0] or p64[0] != 0 or p64[inp.n] != data.shape[0]:
            raise ValueError("X: inconsistent CSR arrays")
    else:
        i32 = X.indices
        p32 = X.indptr
        inp.n = p32.shape[0] - 1
        inp.indptr = <const void*>&p32[0]
        inp.indices = <const void*>&i32[0] if i32.shape[0] > 0 else <const void*>_no_entries
        if i32.shape[0] != data.shape[0] or p32[0] != 0 or p32[inp.n] != data.shape[0]:
            raise ValueError("X: inconsistent CSR arrays")
    return inp


def train(const Py_ssize_t[::1] spec, floating[::1] params, floating[:, ::1] grad,
          floating[:, ::1] ws, double[:, ::1] thread_stats,
          X, const floating[:, ::1] Y,
          const int64_t[::1] labels, const Py_ssize_t[::1] order,
          Py_ssize_t batch_size, int rule_code, const double[::1] hyper,
          const floating[::1] sample_weight, double[::1] batch_loss,
          double[::1] batch_sq, floating[:, ::1] state, double[::1] counters,
          bint hogwild=False, Py_ssize_t n_workers=0):
    """Train in place on the samples order[0], order[1], ... of X (dense rows
    or CSR rows, see read_inputs) in minibatches.

    Targets are the rows of Y, or (when labels is not empty) the labels.
    Minibatch k is order[k*batch_size : (k+1)*batch_size]; the last may be
    smaller and is averaged over its own size.  Each minibatch's mean
    gradient is applied by the update rule `rule_code` with hyperparameters
    `hyper` and state `state` (n_slots rows in the layout of params; see
    _update.pxi); counters[0], the step count, is advanced per minibatch.

    sample_weight (empty: unweighted; else one weight per row of X) scales
    each sample's loss and output delta; a batch is then averaged over the
    sum of its weights (a batch whose weights are all 0 takes a zero
    gradient).  When not empty, batch_loss[k] receives minibatch k's loss sum
    and batch_sq[k] the sum of ||W[l]||² (weights only) just before its update
    (one entry per minibatch of this call).

    On n_threads > 1, a batch of dense rows goes tile by tile, each thread
    owning a share of W[0]'s rows and every n_threads-th sample for the
    layers above (rows_batches); other batches are split into contiguous
    slices, one per row of grad (one per thread), whose gradients are summed
    in thread order.  Either way the result depends on the number of
    threads, never on timing.  Plain SGD with batch_size 1
    and no weight decay fuses the update into the backward pass (same result,
    one pass less).  With `hogwild` too, the samples are split between the
    rows of ws (threads), each running that fused per-sample SGD on the shared
    params without locks: not deterministic (see hogwild_slice).

    n_workers (0: one per slice) is how many OS threads run the slices: fewer
    run several slices each, in turn, with the same result bit for bit (the
    slices and the order of their sums do not change), which lets the caller
    fall back to one thread when the other cores are busy.

    On CSR rows, plain SGD (no momentum or weight decay) and SparseAdam
    update only the rows of W[0] the batch touches (apply_deferred,
    update_touched).  grad must be zero on entry, and every call leaves it
    so (each update zeroes what it read): it is never cleared, neither per
    call nor per batch -- a pass over all of it (n_threads copies of the
    parameters, a megabyte or two for an MNIST network) would cost about
    as much as a minibatch on threads, and more than a short call.

    params, state, counters: IN/OUT.  grad, ws, thread_stats: scratch, one
    row per thread.  Returns (sum of the per-sample losses, each measured
    before its batch's update; number of labels predicted correctly).
    """
    cdef Net net = unpack(spec)
    cdef Rule rule
    if rule_args(rule_code) < 0 or hyper.shape[0] < H_ARGS + rule_args(rule_code):
        raise ValueError(f"hyper: rule {rule_code} needs {H_ARGS + rule_args(rule_code)} "
                         f"numbers; got {hyper.shape[0]}")
    if state.shape[0] < rule_slots(rule_code, &hyper[H_ARGS]) or (
            state.shape[0] > 0 and state.shape[1] != net.n_params):
        raise ValueError(f"state: rule {rule_code} needs "
                         f"{rule_slots(rule_code, &hyper[H_ARGS])} rows of {net.n_params}; got "
                         f"shape ({state.shape[0]}, {state.shape[1]})")
    rule = make_rule(rule_code, &hyper[0], state.shape[1], state.shape[0])
    cdef Py_ssize_t n = order.shape[0], n_threads = grad.shape[0]
    cdef Py_ssize_t n_params = net.n_params, start, stop, size, t, n_t, k
    cdef floating* p = &params[0]
    cdef floating* g0 = &grad[0, 0]
    cdef floating* st = rows_or_null_mut(state)
    cdef Inputs inp = read_inputs(X, net.size[0], <floating>0)
    cdef const Inputs* Xp = &inp
    cdef const floating* Yp = rows_or_null(Y)
    cdef const int64_t* lab = labels_or_null(labels)
    cdef const Py_ssize_t* idx = &order[0]
    cdef floating neg_lr = <floating>(-rule.lr)
    cdef const floating* sw = weights_or_null(sample_weight)
    cdef bint write_loss = batch_loss.shape[0] > 0, write_sq = batch_sq.shape[0] > 0
    cdef Py_ssize_t b = 0
    cdef double stats[2]
    cdef double batch_sum
    cdef floating scale
    cdef bint plain = rule_code == RULE_SGD and rule.h[0] == 0 and rule.weight_decay == 0
    cdef bint fused = (batch_size == 1 and plain and sw == NULL and not write_loss
                       and not write_sq)
    cdef bint csr = inp.X == NULL
    # rows of W[0] updated only where touched; the dense update starts after W[0]
    # plain SGD on CSR rows: W[0]'s step from each sample's delta[0], kept in
    # W[0]'s (unused) gradient rows, which hold a batch when n0 >= batch_size
    cdef bint deferred = csr and plain and batch_size <= net.size[0]
    cdef bint lazy = rule_code == RULE_SPARSE_ADAM or (csr and plain and not deferred)
    cdef Py_ssize_t dense_lo = net.b_off[0] if lazy or deferred else 0
    # a dense minibatch on threads: W[0] by rows (see split_first_layer)
    cdef bint by_rows = not csr and not lazy
    cdef Py_ssize_t* marked = NULL
    cdef int32_t* flags = row_flags(&net, &ws[0, 0])
    cdef int32_t* rows = nonzero_list(&net, &ws[0, 0]) + net.nz_off[0]   # free between samples
    stats[0] = 0
    stats[1] = 0
    if by_rows and n_threads > 1:
        marked = <Py_ssize_t*>malloc(n_threads * sizeof(Py_ssize_t))
        if marked == NULL:
            raise MemoryError()
    with nogil:
        for t in range(n_threads):
            clear_delta(&net, &ws[t, 0])
        if fused and hogwild and n_threads > 1 and n >= n_threads:
            for t in prange(n_threads, schedule="static", chunksize=1,
                            num_threads=workers(n_threads, n_workers)):
                hogwild_slice(&net, p, &ws[t, 0], Xp, Yp, lab, idx, t * n // n_threads,
                              (t + 1) * n // n_threads, neg_lr, &thread_stats[t, 0])
            for t in range(n_threads):
                stats[0] += thread_stats[t, 0]
                stats[1] += thread_stats[t, 1]
            counters[0] += n
            start = n
        elif fused:
            for k in range(n):
                fetch_samples_ahead(&net, Xp, Yp, lab, idx, k, n)   # shuffled order
                step_one(&net, p, &ws[0, 0], Xp, Yp, lab, idx[k],
                         idx[k + 1] if k + 1 < n else -1, neg_lr, stats)
            counters[0] += n
            start = n
        else:
            start = 0       # grad is zero on entry: see the docstring
        if by_rows and n_threads > 1 and batch_size > 1:
            # Dense minibatches on threads, W[0] by rows: one parallel region
            # for the batches on n_t slices, then one for a last batch too
            # small for n_t but not for two; a last single sample goes below.
            n_t = n_threads if n_threads < batch_size else batch_size
            size = (n - start) % batch_size
            stop = n if size == 0 or size >= n_t else n - size
            while n - start > 1:
                if stop > start:
                    k = (stop - start + batch_size - 1) // batch_size    # batches
                    rule.step = counters[0] + 1
                    for t in range(n_t):
                        thread_stats[t, 0] = 0
                        thread_stats[t, 1] = 0
                    with parallel(num_threads=workers(n_t, n_workers)):
                        rows_batches(&net, &rule, p, g0, &ws[0, 0], ws.shape[1],
                                     &thread_stats[0, 0], marked, st, Xp, Yp, lab, sw, idx,
                                     start, stop, batch_size, n_t, stats,
                                     &batch_loss[b] if write_loss else NULL,
                                     &batch_sq[b] if write_sq else NULL, threadid(),
                                     team_size())
                    counters[0] += k
                    b += k
                start = stop
                stop = n
                n_t = n - start
        while start < n:
            stop = start + batch_size if start + batch_size < n else n
            size = stop - start
            n_t = n_threads if n_threads < size else size
            counters[0] += 1
            rule.step = counters[0]
            scale = batch_scale(sw, idx, start, stop)
            if write_sq:
                batch_sq[b] = squared_weights(&net, p)
            if deferred:
                inp.deferred = g0 + net.w_off[0]
                inp.batch_start = start
            if n_t == 1:
                thread_stats[0, 0] = 0
                thread_stats[0, 1] = 0
                accumulate(&net, p, g0, &ws[0, 0], Xp, Yp, lab, sw, idx, start, stop,
                           &thread_stats[0, 0])
                if lazy:
                    update_touched(&net, &rule, p, g0, 1, st, Xp, idx, start, stop, flags,
                                   rows, scale)
                elif deferred:
                    apply_deferred(&net, p, Xp, idx, start, stop, g0 + net.w_off[0],
                                   <floating>(-rule.lr) * scale)
                update_span(&net, &rule, p, g0, st, dense_lo, n_params, scale)
            else:
                # Each thread: the gradient of its share of the batch...
                for t in prange(n_t, schedule="static", chunksize=1,
                                num_threads=workers(n_t, n_workers)):
                    thread_stats[t, 0] = 0
                    thread_stats[t, 1] = 0
                    accumulate(&net, p, &grad[t, 0], &ws[t, 0], Xp, Yp, lab, sw, idx,
                               start + t * size // n_t, start + (t + 1) * size // n_t,
                               &thread_stats[t, 0])
                # ...then the sum over threads and the update of its share of params.
                if lazy:
                    update_touched(&net, &rule, p, g0, n_t, st, Xp, idx, start, stop, flags,
                                   rows, scale)
                elif deferred:
                    apply_deferred(&net, p, Xp, idx, start, stop, g0 + net.w_off[0],
                                   <floating>(-rule.lr) * scale)
                for t in prange(n_t, schedule="static", chunksize=1,
                                num_threads=workers(n_t, n_workers)):
                    reduce_update(&net, &rule, p, g0, n_t, st,
                                  dense_lo + t * (n_params - dense_lo) // n_t,
                                  dense_lo + (t + 1) * (n_params - dense_lo) // n_t,
                                  scale)
            batch_sum = 0
            for t in range(n_t):
                batch_sum += thread_stats[t, 0]
                stats[1] += thread_stats[t, 1]
            stats[0] += batch_sum
            if write_loss:
                batch_loss[b] = batch_sum
            b += 1
            start = stop
    free(marked)
    return stats[0], stats[1]


def gradient(const Py_ssize_t[::1] spec, const floating[::1] params, floating[::1] grad,
             floating[::1] ws, X, const floating[:, ::1] Y,
             const int64_t[::1] labels, const floating[::1] sample_weight):
    """grad = the sum over the samples of X (dense or CSR rows, see
    read_inputs) of dL/dparams (params unchanged), each sample's term (and
    loss) times its weight unless sample_weight is empty.

    ws keeps z, a and delta of the last sample (what trace() shows).
    Returns (sum of losses, number of labels predicted correctly).
    """
    cdef Net net = unpack(spec)
    cdef Inputs inp = read_inputs(X, net.size[0], <floating>0)
    cdef double stats[2]
    stats[0] = 0
    stats[1] = 0
    with nogil:
        clear_delta(&net, &ws[0])
        memset(&grad[0], 0, net.n_params * sizeof(floating))
        accumulate(&net, &params[0], &grad[0], &ws[0], &inp, rows_or_null(Y),
                   labels_or_null(labels), weights_or_null(sample_weight), NULL, 0, inp.n,
                   stats)
    return stats[0], stats[1]


def evaluate(const Py_ssize_t[::1] spec, const floating[::1] params, floating[::1] ws,
             X, const floating[:, ::1] Y,
             const int64_t[::1] labels, floating[:, ::1] out):
    """Forward every sample of X (dense or CSR rows, see read_inputs), writing
    a[L] to out unless out has no rows.

    With targets (Y or labels not empty) also sums the losses and counts the
    labels predicted correctly.  Returns (sum of losses, number correct).
    """
    cdef Net net = unpack(spec)
    cdef floating* z = &ws[0]
    cdef floating* a = &ws[net.n_units]
    cdef floating* y_buf = &ws[3 * net.n_units]
    cdef int32_t* nz = nonzero_list(&net, &ws[0])
    cdef Inputs inp = read_inputs(X, net.size[0], <floating>0)
    cdef Py_ssize_t s, k, n = inp.n, n_out = net.size[net.L]
    cdef Py_ssize_t off = net.u_off[net.L - 1]
    cdef Row x
    cdef const floating* Yp = rows_or_null(Y)
    cdef const int64_t* lab = labels_or_null(labels)
    cdef bint has_targets = Yp != NULL or lab != NULL
    cdef bint write_out = out.shape[0] > 0
    cdef double loss_sum = 0, n_correct = 0
    with nogil:
        for s in range(n):
            x = row_of(&inp, s)
            forward(&net, &params[0], &x, z, a, nz, NULL)
            if write_out:
                for k in range(n_out):
                    out[s, k] = a[off + k]
            if has_targets:
                loss_sum += sample_loss(&net, z, a, target(&net, Yp, lab, s, y_buf))
                if lab != NULL and predicted_class(a + off, n_out) == lab[s]:
                    n_correct += 1
    return loss_sum, n_correct


cdef inline bint finite(const floating* v, Py_ssize_t n) noexcept nogil:
    """True when no entry of v[0:n] is NaN or infinite.

    v[k] * 0 is 0 for a finite v[k] and NaN for NaN and +-inf, so the sum
    of those products is 0 exactly when every entry is finite.  The sum
    runs in FINITE_LANES independent lanes (a local block the compiler
    keeps in SIMD registers: one multiply-add per register of entries, no
    chain of additions waiting on each other), so checking the parameters
    after a one-sample step or between chunks of a fit costs little next
    to computing them.  (The compiler may not drop the products: without
    -ffinite-math-only, x * 0 is not 0 for every x.)
    """
    cdef Py_ssize_t k = 0, c
    cdef floating acc[FINITE_LANES]
    cdef floating total = 0, zero = 0     # zero: in v's type (a literal 0 is a double)
    for c in range(FINITE_LANES):
        acc[c] = 0
    while k + FINITE_LANES <= n:
        for c in range(FINITE_LANES):
            acc[c] += v[k + c] * zero
        k += FINITE_LANES
    while k < n:
        total += v[k] * zero
        k += 1
    for c in range(FINITE_LANES):
        total += acc[c]
    return total == 0


def all_finite(const floating[::1] v):
    """True when no entry of v is NaN or infinite (see finite)."""
    cdef bint ok
    if v.shape[0] == 0:
        return True
    with nogil:
        ok = finite(&v[0], v.shape[0])
    return ok


def _py_activation(Py_ssize_t code, double z):
    """f(z) in double, for tests of the cdef helper."""
    return activation(code, z)


def _py_activation_f32(Py_ssize_t code, float z):
    """f(z) in float32, for tests of the cdef helper."""
    return activation(code, z)


def _py_derivative(Py_ssize_t code, double z, double a):
    return derivative(code, z, a)


include "_buffers.pxi"
include "_one_sample.pxi"
