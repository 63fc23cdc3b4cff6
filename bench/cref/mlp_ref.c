/*
 * mlp_ref.c: a plain C per-sample SGD loop, the yardstick for bpfast's kernel.
 *
 * Online backpropagation as a C programmer would write it to run fast, written
 * independently of bpfast's kernel (src/bpfast/_core.pxi): straightforward loops
 * over contiguous rows that the compiler vectorises at -O3 -march=native; no
 * intrinsics, no -ffast-math, no reassociation the compiler could not do itself.
 * It computes what bpfast's batch-1 SGD computes, so the two end with the same
 * weights up to rounding (bench/throughput.py checks this before timing).
 *
 * Weights are input-major: row i of W[l] holds the weights from input i of layer
 * l to every unit of layer l+1.  Per sample:
 *
 *   forward   z[l+1] = b[l] + sum_i a[l]_i W[l][i, :], as axpys over the rows of
 *             W[l], four rows per pass over z (z is loaded and stored once per
 *             four rows; each z_k still adds its terms one row at a time, in
 *             order), then a[l+1] = f(z[l+1]) (softmax subtracts the max);
 *   loss      per sample, in double, and the argmax count;
 *   output    delta = dL/dz of the output layer, for every output/loss pair;
 *   backward  from the top layer down, one pass over each row i of W[l] (l > 0)
 *             that reads it for the previous layer's error and updates it:
 *                 delta[l-1]_i = (W[l][i, :] . delta[l]) * f'(z_i)
 *                 W[l][i, :]  -= (lr * a[l]_i) * delta[l]
 *             (the dot product sees the row before its update; eight partial
 *             sums, one or two vector registers); W[0] passes no error back and
 *             only gets its update, two rows per pass over delta[0], the dense
 *             one from the last row to the first (the forward pass has just
 *             left the last rows in the L1 cache); b[l] -= lr * delta[l].
 *
 * skip_zeros = 1 leaves out what an input a_i == 0 contributes, which is exactly
 * nothing: its axpy in the forward pass and its row's update (and its dot
 * product too where f'(z_i) == 0, as for a relu unit at z <= 0).  Each layer's
 * nonzero inputs are listed once per sample, without a branch per input, and
 * the forward pass and the update of W[0] run over that list.  skip_zeros = 0
 * is the plain loop that touches every weight twice per sample.
 *
 * The parameter buffer has bpfast's layout: for each layer l, W[l] (size[l]
 * rows, input-major) then b[l], every row width[l] long: size[l+1], or padded
 * with zeros to a multiple of the SIMD width as bpfast's kernel does (then the
 * row loops run over the whole padded row, the activations over the real units
 * only, and the pads stay zero because delta's pads are zero).  The scratch
 * rows z, a, delta use the same widths.  Rows of whole vectors are fastest when
 * the buffers start at a 32- or 64-byte boundary (build.py aligns them).
 *
 * Compile once per precision: with -DMLP_FLOAT for float32, without for float64.
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef MLP_FLOAT
typedef float real;
#define EXP expf
#define TANH tanhf
#else
typedef double real;
#define EXP exp
#define TANH tanh
#endif

#define MLP_MAX_LAYERS 64

/* Codes shared with bpfast._layout.ACTIVATIONS and LOSSES. */
enum { IDENTITY = 0, SIGMOID = 1, TANH_ACT = 2, RELU = 3, LEAKY_RELU = 4, SOFTMAX = 5,
       EXP_ACT = 6 };
enum { MSE = 0, CROSS_ENTROPY = 1, POISSON = 2 };

#define LEAKY_SLOPE 0.01

typedef struct {
    int64_t L;
    int64_t loss;
    const int64_t *size;              /* size[0..L] */
    const int64_t *act;               /* act[l]: activation of layer l -> l+1 */
    int64_t width[MLP_MAX_LAYERS];    /* row length of W[l], b[l] and layer l+1's units */
    int64_t w_off[MLP_MAX_LAYERS];    /* W[l] at params + w_off[l] */
    int64_t b_off[MLP_MAX_LAYERS];    /* b[l] at params + b_off[l] */
    int64_t u_off[MLP_MAX_LAYERS];    /* z, a, delta of layer l+1 at u_off[l] in the work rows */
    int64_t nz_off[MLP_MAX_LAYERS];   /* layer l's nonzero inputs: count, indices at nz + nz_off[l] */
    int64_t n_units;
    int64_t n_nz;
    int64_t n_params;
} Net;

/* width == NULL: unpadded rows (width[l] = size[l+1]).  -1 for a bad shape. */
static int net_init(Net *net, int64_t L, const int64_t *size, const int64_t *width,
                    const int64_t *act, int64_t loss)
{
    int64_t l, offset = 0, units = 0, listed = 0;
    if (L < 1 || L > MLP_MAX_LAYERS)
        return -1;
    net->L = L;
    net->loss = loss;
    net->size = size;
    net->act = act;
    for (l = 0; l < L; l++) {
        net->width[l] = width ? width[l] : size[l + 1];
        if (net->width[l] < size[l + 1] || size[l] > INT32_MAX)   /* int32 lists */
            return -1;
        net->w_off[l] = offset;
        offset += size[l] * net->width[l];
        net->b_off[l] = offset;
        offset += net->width[l];
        net->u_off[l] = units;
        units += net->width[l];
        net->nz_off[l] = listed;
        listed += 1 + size[l];
    }
    net->n_params = offset;
    net->n_units = units;
    net->n_nz = listed;
    return 0;
}

/* ------------------------------------------------------------ elementwise */

static inline double softplus(double t)
{
    /* log(1 + e^t) without overflow. */
    if (t > 0)
        return t + log1p(exp(-t));
    return log1p(exp(t));
}

/* The literals 1.0 are doubles, as in the C that Cython writes for bpfast's
 * kernel: the float32 sigmoid and derivatives are evaluated in double and
 * rounded to float, like bpfast's. */
static inline real activation(int64_t code, real z)
{
    real e;
    if (code == SIGMOID) {
        /* Two branches, so that exp never overflows. */
        if (z >= 0)
            return 1.0 / (1.0 + EXP(-z));
        e = EXP(z);
        return e / (1.0 + e);
    } else if (code == TANH_ACT) {
        return TANH(z);
    } else if (code == RELU) {
        return z > 0 ? z : 0;
    } else if (code == LEAKY_RELU) {
        return z > 0 ? z : (real)LEAKY_SLOPE * z;
    } else if (code == EXP_ACT) {
        return EXP(z);
    }
    return z;
}

/* f'(z), from a = f(z) where that is cheaper. */
static inline real derivative(int64_t code, real z, real a)
{
    if (code == SIGMOID)
        return a * (1.0 - a);
    else if (code == TANH_ACT)
        return 1.0 - a * a;
    else if (code == RELU)
        return z > 0 ? 1 : 0;
    else if (code == LEAKY_RELU)
        return z > 0 ? 1 : (real)LEAKY_SLOPE;
    else if (code == EXP_ACT)
        return a;
    return 1;
}

static inline void softmax(const real *z, real *a, int64_t n)
{
    int64_t i;
    real m = z[0], s = 0;
    for (i = 1; i < n; i++)
        if (z[i] > m)
            m = z[i];
    for (i = 0; i < n; i++) {
        a[i] = EXP(z[i] - m);
        s += a[i];
    }
    for (i = 0; i < n; i++)
        a[i] = a[i] / s;
}

/* ------------------------------------------------------------ row loops
 * Each is one loop over a row of n reals; `restrict` tells the compiler that
 * the rows do not overlap, so it vectorises them without run-time checks. */

/* z += c * w */
static inline void axpy(real *restrict z, real c, const real *restrict w, int64_t n)
{
    int64_t k;
    for (k = 0; k < n; k++)
        z[k] += c * w[k];
}

/* Four axpys in one pass over z: z += c[0] w0, then c[1] w1, c[2] w2, c[3] w3. */
static inline void axpy4(real *restrict z, const real *restrict c, const real *restrict w0,
                         const real *restrict w1, const real *restrict w2,
                         const real *restrict w3, int64_t n)
{
    int64_t k;
    real c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], t;
    for (k = 0; k < n; k++) {
        t = z[k];
        t += c0 * w0[k];
        t += c1 * w1[k];
        t += c2 * w2[k];
        t += c3 * w3[k];
        z[k] = t;
    }
}

/* w -= g * d */
static inline void row_update(real *restrict w, real g, const real *restrict d, int64_t n)
{
    int64_t k;
    for (k = 0; k < n; k++)
        w[k] -= g * d[k];
}

/* Two row_updates in one pass over d: w0 -= g0 * d, w1 -= g1 * d.  A row may
 * be only a few vectors long (32 floats in N1); two per pass halve the loop
 * overhead per row, and make the speed depend much less on where the compiler
 * happens to place and align the loop (measured: 1.5-1.9x the old loop for one
 * row per pass across -falign-loops settings, 1.8-1.9x for two). */
static inline void row_update2(real *restrict w0, real g0, real *restrict w1, real g1,
                               const real *restrict d, int64_t n)
{
    int64_t k;
    for (k = 0; k < n; k++) {
        w0[k] -= g0 * d[k];
        w1[k] -= g1 * d[k];
    }
}

/* w . d with eight partial sums (one vector register of floats, two of
 * doubles; a single running sum would be one serial chain of adds, which the
 * compiler may not split without -ffast-math), summed pairwise, then the tail. */
static inline real row_dot(const real *restrict w, const real *restrict d, int64_t n)
{
    real acc[8], s;
    int64_t k = 0, m;
    for (m = 0; m < 8; m++)
        acc[m] = 0;
    for (; k + 8 <= n; k += 8)
        for (m = 0; m < 8; m++)
            acc[m] += w[k + m] * d[k + m];
    s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; k < n; k++)
        s += w[k] * d[k];
    return s;
}

/* row_dot and row_update in one pass over w: returns w . d (w as it was) and
 * leaves w - g * d. */
static inline real row_dot_update(real *restrict w, real g, const real *restrict d, int64_t n)
{
    real acc[8], s;
    int64_t k = 0, m;
    for (m = 0; m < 8; m++)
        acc[m] = 0;
    for (; k + 8 <= n; k += 8)
        for (m = 0; m < 8; m++) {
            acc[m] += w[k + m] * d[k + m];
            w[k + m] -= g * d[k + m];
        }
    s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; k < n; k++) {
        s += w[k] * d[k];
        w[k] -= g * d[k];
    }
    return s;
}

/* The indices i < n with v[i] != 0, in order, into list; returns their count.
 * Branch-free (every index is written, the count advances only past nonzeros),
 * so a pattern of zeros costs no mispredicted branches. */
static inline int64_t nonzeros(const real *restrict v, int64_t n, int32_t *restrict list)
{
    int64_t i, m = 0;
    for (i = 0; i < n; i++) {
        list[m] = (int32_t)i;
        m += v[i] != 0;
    }
    return m;
}

/* ------------------------------------------------------------ one sample */

/* z[l+1], a[l+1] of every layer; with skip_zeros, nz receives each layer's
 * nonzero inputs (for backward_update). */
static inline __attribute__((always_inline)) void
forward(const Net *net, const real *restrict params, const real *restrict x,
        real *restrict z, real *restrict a, int32_t *restrict nz, int skip_zeros)
{
    int64_t l, i, j, k, g, m, n_out, width, code;
    const real *in = x, *W, *b, *rows[4];
    real *z_l, *a_l, c[4];
    int32_t *list;
    for (l = 0; l < net->L; l++) {
        n_out = net->size[l + 1];
        width = net->width[l];
        W = params + net->w_off[l];
        b = params + net->b_off[l];
        z_l = z + net->u_off[l];
        a_l = a + net->u_off[l];
        list = nz + net->nz_off[l];
        if (skip_zeros)
            m = list[0] = (int32_t)nonzeros(in, net->size[l], list + 1);
        else
            m = net->size[l];
        for (k = 0; k < width; k++)
            z_l[k] = b[k];
        /* z += in_i W[i, :] for the inputs i (all of them, or the listed
         * ones), gathered in fours for axpy4. */
        g = 0;
        for (j = 0; j < m; j++) {
            i = skip_zeros ? list[1 + j] : j;
            c[g] = in[i];
            rows[g] = W + i * width;
            if (++g == 4) {
                axpy4(z_l, c, rows[0], rows[1], rows[2], rows[3], width);
                g = 0;
            }
        }
        for (j = 0; j < g; j++)
            axpy(z_l, c[j], rows[j], width);
        code = net->act[l];
        if (code == SOFTMAX)
            softmax(z_l, a_l, n_out);
        else
            for (k = 0; k < n_out; k++)
                a_l[k] = activation(code, z_l[k]);
        in = a_l;
    }
}

static double sample_loss(const Net *net, const real *z, const real *a, const real *y)
{
    int64_t k, n = net->size[net->L], off = net->u_off[net->L - 1];
    int64_t code = net->act[net->L - 1];
    const real *z_L = z + off, *a_L = a + off;
    double loss = 0, d, m, log_sum, y_k;
    if (net->loss == MSE) {
        for (k = 0; k < n; k++) {
            d = (double)a_L[k] - (double)y[k];
            loss += d * d;
        }
        return 0.5 * loss;
    }
    if (net->loss == POISSON) {
        /* y log(y / a) - y + a with a = exp(z), from z (0 log 0 = 0). */
        for (k = 0; k < n; k++) {
            y_k = y[k];
            if (y_k > 0)
                loss += y_k * log(y_k);
            loss += exp((double)z_L[k]) - y_k * (double)z_L[k] - y_k;
        }
        return loss;
    }
    if (code == SOFTMAX) {
        /* log a_k = z_k - logsumexp(z). */
        m = z_L[0];
        for (k = 1; k < n; k++)
            if (z_L[k] > m)
                m = z_L[k];
        log_sum = 0;
        for (k = 0; k < n; k++)
            log_sum += exp((double)z_L[k] - m);
        log_sum = m + log(log_sum);
        for (k = 0; k < n; k++)
            if (y[k] != 0)
                loss -= (double)y[k] * ((double)z_L[k] - log_sum);
        return loss;
    }
    /* Sigmoid output, binary cross-entropy through softplus. */
    for (k = 0; k < n; k++)
        loss += (double)y[k] * softplus(-(double)z_L[k])
              + (1 - (double)y[k]) * softplus((double)z_L[k]);
    return loss;
}

static void output_delta(const Net *net, const real *z, const real *a, const real *y,
                         real *delta)
{
    int64_t k, n = net->size[net->L], off = net->u_off[net->L - 1];
    int64_t code = net->act[net->L - 1];
    const real *z_L = z + off, *a_L = a + off;
    real *d_L = delta + off, s = 0;
    if (net->loss == POISSON) {
        /* exp output (the canonical link): a - y. */
        for (k = 0; k < n; k++)
            d_L[k] = a_L[k] - y[k];
    } else if (net->loss == CROSS_ENTROPY) {
        if (code == SOFTMAX) {
            for (k = 0; k < n; k++)
                s += y[k];
            for (k = 0; k < n; k++)
                d_L[k] = a_L[k] * s - y[k];
        } else {
            for (k = 0; k < n; k++)
                d_L[k] = a_L[k] - y[k];
        }
    } else if (code == SOFTMAX) {
        for (k = 0; k < n; k++)
            s += a_L[k] * (a_L[k] - y[k]);
        for (k = 0; k < n; k++)
            d_L[k] = a_L[k] * ((a_L[k] - y[k]) - s);
    } else {
        for (k = 0; k < n; k++)
            d_L[k] = (a_L[k] - y[k]) * derivative(code, z_L[k], a_L[k]);
    }
}

/* From the output layer's delta: every delta[l-1], and the SGD step of every
 * W[l] and b[l], each row of W[l] read once (see the top of the file). */
static inline __attribute__((always_inline)) void
backward_update(const Net *net, real *restrict params, const real *restrict x,
                const real *restrict z, const real *restrict a, real *restrict delta,
                const int32_t *restrict nz, real lr, int skip_zeros)
{
    int64_t l, i, j, k, m, n_in, width, code;
    real *W, *b, *d_prev, f1;
    const real *in, *z_in, *d;
    const int32_t *list;
    for (l = net->L - 1; l >= 0; l--) {
        n_in = net->size[l];
        width = net->width[l];
        W = params + net->w_off[l];
        b = params + net->b_off[l];
        d = delta + net->u_off[l];
        for (k = 0; k < width; k++)
            b[k] -= lr * d[k];
        if (l == 0) {
            /* The inputs pass no error back: W[0] gets the update alone. */
            if (skip_zeros) {
                /* The listed rows, two at a time. */
                list = nz + net->nz_off[0];
                m = list[0];
                for (j = 1; j < m; j += 2)
                    row_update2(W + list[j] * width, lr * x[list[j]],
                                W + list[j + 1] * width, lr * x[list[j + 1]], d, width);
                if (j == m)
                    row_update(W + list[m] * width, lr * x[list[m]], d, width);
            } else {
                /* Every row, two at a time, from the last. */
                for (i = n_in - 1; i > 0; i -= 2)
                    row_update2(W + i * width, lr * x[i], W + (i - 1) * width, lr * x[i - 1],
                                d, width);
                if (i == 0)
                    row_update(W, lr * x[0], d, width);
            }
            break;
        }
        in = a + net->u_off[l - 1];
        z_in = z + net->u_off[l - 1];
        d_prev = delta + net->u_off[l - 1];
        code = net->act[l - 1];
        for (i = 0; i < n_in; i++) {
            f1 = derivative(code, z_in[i], in[i]);
            if (skip_zeros && in[i] == 0)
                /* No update; the error still passes back unless f'(z_i) = 0. */
                d_prev[i] = f1 == 0 ? 0 : row_dot(W + i * width, d, width) * f1;
            else
                d_prev[i] = row_dot_update(W + i * width, lr * in[i], d, width) * f1;
        }
    }
}

static inline int64_t predicted_class(const real *a_L, int64_t n)
{
    int64_t k, best = 0;
    if (n == 1)
        return a_L[0] >= 0.5 ? 1 : 0;
    for (k = 1; k < n; k++)
        if (a_L[k] > a_L[best])
            best = k;
    return best;
}

/* ------------------------------------------------------------ C API */

/* Length of the parameter buffer for these sizes and row widths (NULL: unpadded);
 * -1 for an unsupported depth or a width below its layer's size. */
int64_t mlp_ref_buffer_len(int64_t L, const int64_t *size, const int64_t *width)
{
    Net net;
    if (net_init(&net, L, size, width, size, 0) != 0)
        return -1;
    return net.n_params;
}

/* Length (in reals) of the work buffer train_epoch needs: z, a, delta of every
 * layer, one target, and the lists of nonzero inputs (int32).  It must be zeroed
 * before the first call (delta's pads must be zero). */
int64_t mlp_ref_work_len(int64_t L, const int64_t *size, const int64_t *width)
{
    Net net;
    if (net_init(&net, L, size, width, size, 0) != 0)
        return -1;
    return 3 * net.n_units + size[L]
           + (int64_t)((net.n_nz * sizeof(int32_t) + sizeof(real) - 1) / sizeof(real));
}

/* sizeof(real): 4 or 8, so the caller can check it loaded the right build. */
int64_t mlp_ref_real_size(void) { return (int64_t)sizeof(real); }

/* The epoch loop; skip_zeros is a constant in each inlined copy, so neither
 * variant tests it at run time. */
static inline __attribute__((always_inline)) void
train_samples(const Net *net, real *params, const real *X, const real *Y,
              const int64_t *labels, const int64_t *order, int64_t n, real lr,
              const int skip_zeros, real *work, double *stats)
{
    int64_t r, s, k, n_in = net->size[0], n_out = net->size[net->L];
    int64_t off = net->u_off[net->L - 1];
    real *z = work, *a = work + net->n_units, *delta = work + 2 * net->n_units;
    real *y_buf = work + 3 * net->n_units;
    int32_t *nz = (int32_t *)(y_buf + n_out);
    const real *x, *y;
    for (r = 0; r < n; r++) {
        s = order[r];
        x = X + s * n_in;
        if (labels == NULL) {
            y = Y + s * n_out;
        } else {
            if (n_out == 1) {
                y_buf[0] = (real)labels[s];
            } else {
                for (k = 0; k < n_out; k++)
                    y_buf[k] = 0;
                y_buf[labels[s]] = 1;
            }
            y = y_buf;
        }
        forward(net, params, x, z, a, nz, skip_zeros);
        stats[0] += sample_loss(net, z, a, y);
        if (labels != NULL && predicted_class(a + off, n_out) == labels[s])
            stats[1] += 1;
        output_delta(net, z, a, y, delta);
        backward_update(net, params, x, z, a, delta, nz, lr, skip_zeros);
    }
}

/*
 * One epoch of per-sample SGD over the samples order[0], ..., order[n-1].
 *
 * L, size[0..L], act[0..L-1], loss: the network (bpfast's activation and loss codes).
 * width[0..L-1]: row lengths (NULL: unpadded).
 * params: IN/OUT, bpfast's flat layout.  X: (n_samples, size[0]) row-major.
 * Targets: labels (int64 class per sample, one-hot encoded here; the 0/1 value
 * itself for one output) when labels != NULL, else the rows of Y (n_samples, size[L]).
 * work: scratch of mlp_ref_work_len() reals.  stats[0] += sum of the losses,
 * stats[1] += number of labels predicted correctly (each before its update).
 * Returns 0, or -1 for an unsupported depth or width.
 */
int mlp_ref_train_epoch(int64_t L, const int64_t *size, const int64_t *width,
                        const int64_t *act, int64_t loss, real *params, const real *X,
                        const real *Y, const int64_t *labels, const int64_t *order, int64_t n,
                        real lr, int skip_zeros, real *work, double *stats)
{
    Net net;
    if (net_init(&net, L, size, width, act, loss) != 0)
        return -1;
    if (skip_zeros)
        train_samples(&net, params, X, Y, labels, order, n, lr, 1, work, stats);
    else
        train_samples(&net, params, X, Y, labels, order, n, lr, 0, work, stats);
    return 0;
}

/* The memory floor of per-sample SGD on sparse rows (bench/sparse.py): for
 * each of the n CSR rows (indptr, indices: int32, every index < the rows of W),
 * read and write back one real in every 64-byte line of each row of W
 * (width reals) that the row lists, and nothing else.  The accesses are
 * independent of each other, so the core overlaps as many misses as it can:
 * what moving a sample's rows of W[0] through the caches costs, at the least,
 * without any arithmetic. */
void mlp_ref_rows_floor(real *W, int64_t width, const int32_t *indices,
                        const int32_t *indptr, int64_t n)
{
    const int64_t step = 64 / (int64_t)sizeof(real);
    for (int64_t s = 0; s < n; s++)
        for (int32_t k = indptr[s]; k < indptr[s + 1]; k++) {
            real *row = W + (int64_t)indices[k] * width;
            for (int64_t o = 0; o < width; o += step)
                row[o] += (real)1e-30;
        }
}

/* The first layer's row work of per-sample SGD on sparse rows, and no more
 * (bench/sparse.py, "rows pass"): for each of the n CSR rows (indptr,
 * indices: int32, every index < the rows of W; data: its values), the
 * forward pass z = sum_k a_k W[j_k, :], then each listed row updated from
 * it, W[j_k, :] -= 1e-6 a_k z (a stand-in for the error signal).  With
 * `prefetch`, the rows the next CSR row lists are prefetched, one per row of
 * this sample's forward loop (a burst would fill the miss buffers).  Any
 * learner does at least this per sample, so how this loop's rate falls from
 * a narrow W to a wide one is the fall of a kernel that does little else:
 * the memory time is hidden only behind work that does not wait for it.
 * Returns 0, or -1 for a width over 1024. */
int mlp_ref_rows_pass(real *W, int64_t width, const int32_t *indices, const int32_t *indptr,
                      const real *data, int64_t n, int prefetch)
{
    real z[1024];
    if (width > 1024)
        return -1;
    for (int64_t s = 0; s < n; s++) {
        const int32_t lo = indptr[s], hi = indptr[s + 1];
        const int32_t next_hi = s + 1 < n ? indptr[s + 2] : hi;
        int32_t q = hi;                  /* the next row's entries: hi .. next_hi */
        for (int64_t i = 0; i < width; i++)
            z[i] = 0;
        for (int32_t k = lo; k < hi; k++) {
            const real *row = W + (int64_t)indices[k] * width;
            const real a = data[k];
            for (int64_t i = 0; i < width; i++)
                z[i] += a * row[i];
#if defined(__GNUC__) || defined(__clang__)
            if (prefetch && q < next_hi) {
                const char *p = (const char *)(W + (int64_t)indices[q++] * width);
                for (int64_t o = 0; o < width * (int64_t)sizeof(real); o += 64)
                    __builtin_prefetch(p + o);
            }
#endif
        }
        for (int32_t k = lo; k < hi; k++) {
            real *row = W + (int64_t)indices[k] * width;
            const real a = (real)1e-6 * data[k];
            for (int64_t i = 0; i < width; i++)
                row[i] -= a * z[i];
        }
    }
    return 0;
}
