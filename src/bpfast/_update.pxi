# The update rules of bpfast.optim: one short loop per rule, each the
# single-tensor algorithm of the torch.optim class of the same name, applied
# to a contiguous span of the parameter buffer.  Included by _core.pxi.
#
# A rule is described to the kernel by a code, a small array of
# hyperparameters `hyper` (positions H_* below, written by bpfast.optim) and
# a state buffer of `n_slots` rows laid out like the parameters (slot k of
# parameter i is state[k * stride + i]).  The step count lives in `counters`
# and is advanced here, once per minibatch, so that bias corrections and
# schedules inside one kernel call need no Python.
#
# Every rule reads the summed gradient g_sum of the span, takes
# g = scale * g_sum (scale = 1 / batch size: the mean gradient), updates the
# parameters and its state, and leaves the gradient zeroed for the next
# batch.  Pads (see the Memory layout note in _core.pxi) have p = g = 0 and a
# state that every rule maps to a zero update, so they stay exactly zero.

from libc.math cimport sqrt, sqrtf, pow, fabs

# Rule codes (shared with bpfast.optim).
cdef enum:
    RULE_SGD = 0
    RULE_ADAM = 1
    RULE_RMSPROP = 2
    RULE_ADAGRAD = 3
    RULE_RPROP = 4
    RULE_SPARSE_ADAM = 5      # adam_rule on dense spans, sparse_adam_rule on the rows of W[0]

# Positions in `hyper` (shared with bpfast.optim).  The first three are
# common to every rule; the rule's own follow from H_ARGS.
cdef enum:
    H_LR = 0
    H_WEIGHT_DECAY = 1
    H_BIAS_DECAY = 2          # factor on weight_decay for the biases (1: torch, 0: weights only)
    H_ARGS = 3


cdef struct Rule:
    int code
    double lr
    double weight_decay
    double bias_decay
    const double* h           # the rule's own hyperparameters, hyper[H_ARGS:]
    double step               # this step's number, 1 for the first
    Py_ssize_t stride         # distance between two state slots
    Py_ssize_t n_slots


cdef inline Rule make_rule(int code, const double* hyper, Py_ssize_t stride,
                           Py_ssize_t n_slots) noexcept nogil:
    cdef Rule r
    r.code = code
    r.lr = hyper[H_LR]
    r.weight_decay = hyper[H_WEIGHT_DECAY]
    r.bias_decay = hyper[H_BIAS_DECAY]
    r.h = hyper + H_ARGS
    r.step = 0
    r.stride = stride
    r.n_slots = n_slots
    return r


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating clamp(floating x, floating lo, floating hi) noexcept nogil:
    return lo if x < lo else (hi if x > hi else x)


cdef void sgd_rule(const Rule* r, floating* p, floating* g_sum, floating* s, Py_ssize_t n,
                   floating scale, floating wd) noexcept nogil:
    """torch.optim.SGD.  h = (momentum, dampening, nesterov); slot 0 momentum_buffer.

    g = mean grad + wd p;  buf = g on the first step, else
    momentum buf + (1 - dampening) g;  g = g + momentum buf (Nesterov) or buf;
    p -= lr g.
    """
    cdef Py_ssize_t k
    cdef floating g, buf, lr = <floating>r.lr
    cdef floating momentum = <floating>r.h[0], keep = <floating>(1 - r.h[1])
    cdef bint nesterov = r.h[2] != 0
    # torch starts the buffer at g; from a zeroed buffer that is what the
    # general rule gives too, unless dampening scales g
    cdef bint first = r.step == 1 and r.h[1] != 0
    if momentum == 0:
        for k in range(n):
            g = g_sum[k] * scale + wd * p[k]
            g_sum[k] = 0
            p[k] -= lr * g
        return
    for k in range(n):
        g = g_sum[k] * scale + wd * p[k]
        g_sum[k] = 0
        buf = g if first else momentum * s[k] + keep * g
        s[k] = buf
        p[k] -= lr * (g + momentum * buf if nesterov else buf)


cdef void adam_rule(const Rule* r, floating* p, floating* g_sum, floating* s, Py_ssize_t n,
                    floating scale, floating wd) noexcept nogil:
    """torch.optim.Adam and AdamW.  h = (beta1, beta2, eps, amsgrad, decoupled);
    slots exp_avg, exp_avg_sq (, max_exp_avg_sq with amsgrad).

    AdamW (decoupled) scales p by 1 - lr wd, Adam adds wd p to g;
    m += (1 - beta1)(g - m);  v = beta2 v + (1 - beta2) g²;
    p -= lr / (1 - beta1^t) · m / (sqrt(v or max v) / sqrt(1 - beta2^t) + eps).
    """
    cdef Py_ssize_t k
    cdef floating* m = s
    cdef floating* v = s + r.stride
    cdef floating* v_max = s + 2 * r.stride
    cdef floating g, m_k, v_k
    cdef double beta1 = r.h[0], beta2 = r.h[1]
    cdef floating one_m_b1 = <floating>(1 - beta1), b2 = <floating>beta2
    cdef floating one_m_b2 = <floating>(1 - beta2), eps = <floating>r.h[2]
    cdef bint amsgrad = r.h[3] != 0, decoupled = r.h[4] != 0
    cdef floating step_size = <floating>(r.lr / (1 - pow(beta1, r.step)))
    cdef floating bc2_sqrt = <floating>sqrt(1 - pow(beta2, r.step))
    cdef floating shrink = <floating>(1 - r.lr * wd)
    cdef floating decay = 0 if decoupled else wd
    for k in range(n):
        if decoupled:
            p[k] *= shrink
        g = g_sum[k] * scale + decay * p[k]
        g_sum[k] = 0
        m_k = m[k] + one_m_b1 * (g - m[k])
        v_k = b2 * v[k] + one_m_b2 * g * g
        m[k] = m_k
        v[k] = v_k
        if amsgrad:
            if v_max[k] > v_k:
                v_k = v_max[k]
            v_max[k] = v_k
        p[k] -= step_size * (m_k / (_sqrt(v_k) / bc2_sqrt + eps))


cdef void rmsprop_rule(const Rule* r, floating* p, floating* g_sum, floating* s, Py_ssize_t n,
                       floating scale, floating wd) noexcept nogil:
    """torch.optim.RMSprop.  h = (alpha, eps, momentum, centered); slots
    square_avg (, grad_avg when centered) (, momentum_buffer with momentum).

    g = mean grad + wd p;  sq = alpha sq + (1 - alpha) g²;  centered:
    ga += (1 - alpha)(g - ga), avg = sqrt(sq - ga²), else avg = sqrt(sq);
    buf = momentum buf + g / (avg + eps), p -= lr buf (momentum) or
    p -= lr g / (avg + eps).
    """
    cdef Py_ssize_t k
    cdef floating alpha = <floating>r.h[0], one_m_a = <floating>(1 - r.h[0])
    cdef floating eps = <floating>r.h[1], momentum = <floating>r.h[2]
    cdef floating lr = <floating>r.lr
    cdef bint centered = r.h[3] != 0
    cdef floating* sq = s
    cdef floating* ga = s + r.stride
    cdef floating* buf = s + (2 if centered else 1) * r.stride
    cdef floating g, sq_k, avg, ga_k
    for k in range(n):
        g = g_sum[k] * scale + wd * p[k]
        g_sum[k] = 0
        sq_k = alpha * sq[k] + one_m_a * g * g
        sq[k] = sq_k
        if centered:
            ga_k = ga[k] + one_m_a * (g - ga[k])
            ga[k] = ga_k
            avg = _sqrt(sq_k - ga_k * ga_k) + eps
        else:
            avg = _sqrt(sq_k) + eps
        if momentum > 0:
            buf[k] = momentum * buf[k] + g / avg
            p[k] -= lr * buf[k]
        else:
            p[k] -= lr * (g / avg)


cdef void adagrad_rule(const Rule* r, floating* p, floating* g_sum, floating* s, Py_ssize_t n,
                       floating scale, floating wd) noexcept nogil:
    """torch.optim.Adagrad.  h = (lr_decay, eps); slot 0 sum.

    g = mean grad + wd p;  sum += g²;
    p -= lr / (1 + (t - 1) lr_decay) · g / (sqrt(sum) + eps).
    """
    cdef Py_ssize_t k
    cdef floating clr = <floating>(r.lr / (1 + (r.step - 1) * r.h[0]))
    cdef floating eps = <floating>r.h[1], g, acc
    for k in range(n):
        g = g_sum[k] * scale + wd * p[k]
        g_sum[k] = 0
        acc = s[k] + g * g
        s[k] = acc
        p[k] -= clr * (g / (_sqrt(acc) + eps))


cdef void rprop_rule(const Rule* r, floating* p, floating* g_sum, floating* s, Py_ssize_t n,
                     floating scale, floating wd) noexcept nogil:
    """torch.optim.Rprop.  h = (eta_minus, eta_plus, step_min, step_max); slots
    prev, step_size (filled with lr before the first step).

    Where g · prev > 0 the step size grows by eta_plus, where < 0 it shrinks by
    eta_minus and g counts as 0, clamped to [step_min, step_max];
    p -= sign(g) step_size;  prev = g.
    """
    cdef Py_ssize_t k
    cdef floating* prev = s
    cdef floating* step = s + r.stride
    cdef floating eta_minus = <floating>r.h[0], eta_plus = <floating>r.h[1]
    cdef floating lo = <floating>r.h[2], hi = <floating>r.h[3]
    cdef floating g, product, factor
    for k in range(n):
        g = g_sum[k] * scale
        g_sum[k] = 0
        product = g * prev[k]
        factor = eta_plus if product > 0 else (eta_minus if product < 0 else 1)
        step[k] = clamp(step[k] * factor, lo, hi)
        if product < 0:
            g = 0
        if g > 0:
            p[k] -= step[k]
        elif g < 0:
            p[k] += step[k]
        prev[k] = g


cdef void sparse_adam_rule(const Rule* r, floating* p, floating* g_sum, floating* s,
                           Py_ssize_t n, floating scale) noexcept nogil:
    """torch.optim.SparseAdam on one row of W[0] present in the batch (the
    values of torch's coalesced sparse gradient).  h = (beta1, beta2, eps, 0, 0),
    as Adam's; slots exp_avg, exp_avg_sq.  Rows not present keep their
    parameters and moments (the lazy semantics); t is the global step count.

    m += (g - m)(1 - beta1);  v += (g² - v)(1 - beta2);
    p -= lr sqrt(1 - beta2^t) / (1 - beta1^t) · m / (sqrt(v) + eps).
    """
    cdef Py_ssize_t k
    cdef floating* m = s
    cdef floating* v = s + r.stride
    cdef floating g, m_k, v_k
    cdef double beta1 = r.h[0], beta2 = r.h[1]
    cdef floating one_m_b1 = <floating>(1 - beta1), one_m_b2 = <floating>(1 - beta2)
    cdef floating eps = <floating>r.h[2]
    cdef floating step_size = <floating>(r.lr * sqrt(1 - pow(beta2, r.step))
                                         / (1 - pow(beta1, r.step)))
    for k in range(n):
        g = g_sum[k] * scale
        g_sum[k] = 0
        m_k = m[k] + (g - m[k]) * one_m_b1
        v_k = v[k] + (g * g - v[k]) * one_m_b2
        m[k] = m_k
        v[k] = v_k
        p[k] -= step_size * (m_k / (_sqrt(v_k) + eps))


cdef inline void apply_rule(const Rule* r, floating* p, floating* g_sum, floating* s,
                            Py_ssize_t n, floating scale, floating wd) noexcept nogil:
    """The one place where a rule is chosen."""
    if r.code == RULE_SGD:
        sgd_rule(r, p, g_sum, s, n, scale, wd)
    elif r.code == RULE_ADAM or r.code == RULE_SPARSE_ADAM:
        adam_rule(r, p, g_sum, s, n, scale, wd)
    elif r.code == RULE_RMSPROP:
        rmsprop_rule(r, p, g_sum, s, n, scale, wd)
    elif r.code == RULE_ADAGRAD:
        adagrad_rule(r, p, g_sum, s, n, scale, wd)
    elif r.code == RULE_RPROP:
        rprop_rule(r, p, g_sum, s, n, scale, wd)
