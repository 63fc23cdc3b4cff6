/*
 * mlp_ref.c: a plain C per-sample SGD loop, the yardstick for bpfast's kernel.
 *
 * This is what a C programmer would write for online backpropagation, and on
 * purpose it does exactly the arithmetic of bpfast's kernel (src/bpfast/_core.pxi)
 * for batch size 1, in the same order, so that the two produce the same weights
 * (up to the compiler's choice of fused multiply-adds) and a timing comparison
 * measures only how well each is compiled:
 *
 *   forward   z[l+1] = b[l];  z[l+1] += a[l]_j * W[l][j, :]  for each input j
 *             (W stored input-major, [j][i]: a contiguous axpy per input),
 *             a[l+1] = f(z[l+1])  (softmax subtracts the max);
 *   loss      per sample, in double, plus the argmax count, like bpfast's fit;
 *   output    delta = dL/dz for sigmoid/softmax/identity/tanh/relu and mse or
 *             cross-entropy (a - y where that holds, the f'(z) factor otherwise);
 *   backward  for each input j of layer l: delta[l-1]_j = dot(W[l][j, :], delta[l])
 *             * f'(z_j) (eight accumulators), then the fused update
 *             W[l][j, :] -= lr * (a_j * delta[l])  (the row is read before it is written);
 *             b[l] -= lr * delta[l].
 *
 * skip_zeros = 1 skips the axpy of an input a_j == 0 in the forward pass and
 * in the update (exact: it adds or subtracts zero), as bpfast always does;
 * skip_zeros = 0 is the plain loop that touches every weight.
 *
 * The parameter buffer has bpfast's layout: for each layer l, W[l] (size[l]
 * rows, input-major) then b[l], every row width[l] long: size[l+1], or padded
 * with zeros to a multiple of the SIMD width as bpfast's kernel may do (then
 * the vector loops run over the whole padded row, the activations over the
 * real units only, and the pads stay zero because delta's pads are zero).
 * The scratch rows z, a, delta use the same widths.
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
enum { IDENTITY = 0, SIGMOID = 1, TANH_ACT = 2, RELU = 3, LEAKY_RELU = 4, SOFTMAX = 5 };
enum { MSE = 0, CROSS_ENTROPY = 1 };

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
    int64_t n_units;
    int64_t n_params;
} Net;

/* width == NULL: unpadded rows (width[l] = size[l+1]).  -1 for a bad shape. */
static int net_init(Net *net, int64_t L, const int64_t *size, const int64_t *width,
                    const int64_t *act, int64_t loss)
{
    int64_t l, offset = 0, units = 0;
    if (L < 1 || L > MLP_MAX_LAYERS)
        return -1;
    net->L = L;
    net->loss = loss;
    net->size = size;
    net->act = act;
    for (l = 0; l < L; l++) {
        net->width[l] = width ? width[l] : size[l + 1];
        if (net->width[l] < size[l + 1])
            return -1;
        net->w_off[l] = offset;
        offset += size[l] * net->width[l];
        net->b_off[l] = offset;
        offset += net->width[l];
        net->u_off[l] = units;
        units += net->width[l];
    }
    net->n_params = offset;
    net->n_units = units;
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

/* The literals 1.0 are doubles on purpose: Cython writes `1` in the kernel's
 * fused-type code as 1.0, so its float32 sigmoid and derivatives are evaluated
 * in double and rounded to float on return; so are these. */
static inline real activation(int64_t code, real z)
{
    real e;
    if (code == SIGMOID) {
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
    }
    return z;
}

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

static inline real dot(const real *u, const real *v, int64_t n)
{
    /* Eight independent accumulators (a SIMD register of floats, two of doubles),
     * summed pairwise, then the tail: the kernel's order of additions exactly. */
    real acc[8], s;
    int64_t i = 0, k;
    for (k = 0; k < 8; k++)
        acc[k] = 0;
    while (i + 8 <= n) {
        for (k = 0; k < 8; k++)
            acc[k] += u[i + k] * v[i + k];
        i += 8;
    }
    s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    while (i < n) {
        s += u[i] * v[i];
        i += 1;
    }
    return s;
}

/* ------------------------------------------------------------ one sample */

static inline __attribute__((always_inline)) void
forward(const Net *net, const real *params, const real *x, real *z, real *a, int skip_zeros)
{
    int64_t l, i, j, n_in, n_out, width, code;
    const real *a_prev = x, *W, *W_j, *b;
    real *z_l, *a_l, a_j;
    for (l = 0; l < net->L; l++) {
        n_in = net->size[l];
        n_out = net->size[l + 1];
        width = net->width[l];
        W = params + net->w_off[l];
        b = params + net->b_off[l];
        z_l = z + net->u_off[l];
        a_l = a + net->u_off[l];
        for (i = 0; i < width; i++)
            z_l[i] = b[i];
        for (j = 0; j < n_in; j++) {
            a_j = a_prev[j];
            if (skip_zeros && a_j == 0)
                continue;
            W_j = W + j * width;
            for (i = 0; i < width; i++)
                z_l[i] += a_j * W_j[i];
        }
        code = net->act[l];
        if (code == SOFTMAX)
            softmax(z_l, a_l, n_out);
        else
            for (i = 0; i < n_out; i++)
                a_l[i] = activation(code, z_l[i]);
        a_prev = a_l;
    }
}

static double sample_loss(const Net *net, const real *z, const real *a, const real *y)
{
    int64_t k, n = net->size[net->L], off = net->u_off[net->L - 1];
    int64_t code = net->act[net->L - 1];
    const real *z_L = z + off, *a_L = a + off;
    double loss = 0, d, m, log_sum;
    if (net->loss == MSE) {
        for (k = 0; k < n; k++) {
            d = (double)a_L[k] - (double)y[k];
            loss += d * d;
        }
        return 0.5 * loss;
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
    if (net->loss == CROSS_ENTROPY) {
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

static inline __attribute__((always_inline)) void
backward_update(const Net *net, real *params, const real *x, const real *z,
                const real *a, real *delta, real lr, int skip_zeros)
{
    int64_t l, i, j, n_in, width, code = 0;
    real *W_j, *b, *d_prev = NULL, a_j;
    const real *a_prev, *z_prev = NULL, *d_l;
    for (l = net->L - 1; l >= 0; l--) {
        n_in = net->size[l];
        width = net->width[l];
        b = params + net->b_off[l];
        d_l = delta + net->u_off[l];
        if (l > 0) {
            a_prev = a + net->u_off[l - 1];
            z_prev = z + net->u_off[l - 1];
            d_prev = delta + net->u_off[l - 1];
            code = net->act[l - 1];
        } else {
            a_prev = x;
        }
        for (i = 0; i < width; i++)
            b[i] -= lr * d_l[i];
        for (j = 0; j < n_in; j++) {
            W_j = params + net->w_off[l] + j * width;
            if (l > 0)
                d_prev[j] = dot(W_j, d_l, width) * derivative(code, z_prev[j], a_prev[j]);
            a_j = a_prev[j];
            if (skip_zeros && a_j == 0)
                continue;
            for (i = 0; i < width; i++)
                W_j[i] -= lr * (a_j * d_l[i]);
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

/* Length of the work buffer train_epoch needs: z, a, delta of every layer and one
 * target.  It must be zeroed before the first call (delta's pads must be zero). */
int64_t mlp_ref_work_len(int64_t L, const int64_t *size, const int64_t *width)
{
    Net net;
    if (net_init(&net, L, size, width, size, 0) != 0)
        return -1;
    return 3 * net.n_units + size[L];
}

/* sizeof(real): 4 or 8, so the caller can check it loaded the right build. */
int64_t mlp_ref_real_size(void) { return (int64_t)sizeof(real); }

/* The epoch loop; skip_zeros is a constant in each inlined copy, so neither
 * variant tests it per weight row at run time. */
static inline __attribute__((always_inline)) void
train_samples(const Net *net, real *params, const real *X, const real *Y,
              const int64_t *labels, const int64_t *order, int64_t n, real lr,
              const int skip_zeros, real *work, double *stats)
{
    int64_t r, s, k, n_in = net->size[0], n_out = net->size[net->L];
    int64_t off = net->u_off[net->L - 1];
    real *z = work, *a = work + net->n_units, *delta = work + 2 * net->n_units;
    real *y_buf = work + 3 * net->n_units;
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
        forward(net, params, x, z, a, skip_zeros);
        stats[0] += sample_loss(net, z, a, y);
        if (labels != NULL && predicted_class(a + off, n_out) == labels[s])
            stats[1] += 1;
        output_delta(net, z, a, y, delta);
        backward_update(net, params, x, z, a, delta, lr, skip_zeros);
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
