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
    RULE_ADAMAX = 5
    RULE_SPARSE_ADAM = 6      # adam_rule on dense spans, sparse_adam_rule on the rows of W[0]

# Positions in `hyper` (shared with bpfast.optim).  The first three are
# common to every rule; the rule's own follow from H_ARGS.
cdef enum:
    H_LR = 0
    H_WEIGHT_DECAY = 1
    H_BIAS_DECAY = 2          # factor on weight_decay for the biases (1: torch, 0: weights only)
    H_MEAN_DECAY = 3          # 1: weight_decay is scaled by the batch scale 1/sum(w) (scikit-learn's alpha)
    H_ARGS = 4


cdef struct Rule:
    int code
    double lr
    double weight_decay
    double bias_decay
    bint mean_decay
    const double* h           # the rule's own hyperparameters, hyper[H_ARGS:]
    double step               # this step's number, 1 for the first
    Py_ssize_t stride         # distance between two state slots
    Py_ssize_t n_slots


cdef inline Py_ssize_t rule_args(int code) noexcept nogil:
    """How many numbers of hyper[H_ARGS:] a rule reads (written by bpfast.optim's
    `_args`), -1 for an unknown code: the kernel's entry points check hyper's
    length with it before any rule runs."""
    if code == RULE_SGD:
        return 4            # momentum, dampening, nesterov, velocity form
    elif code == RULE_ADAM or code == RULE_SPARSE_ADAM:
        return 6            # beta1, beta2, eps, amsgrad, decoupled, scikit-learn's eps
    elif code == RULE_RMSPROP:
        return 4            # alpha, eps, momentum, centered
    elif code == RULE_ADAGRAD:
        return 2            # lr_decay, eps
    elif code == RULE_RPROP:
        return 4            # eta_minus, eta_plus, step_min, step_max
    elif code == RULE_ADAMAX:
        return 3            # beta1, beta2, eps
    return -1


cdef inline Py_ssize_t rule_slots(int code, const double* h) noexcept nogil:
    """How many state rows a rule with arguments h reads and writes."""
    if code == RULE_SGD:
        return 1 if h[0] != 0 else 0
    elif code == RULE_ADAM or code == RULE_SPARSE_ADAM:
        return 3 if h[3] != 0 else 2
    elif code == RULE_RMSPROP:
        return 1 + (1 if h[3] != 0 else 0) + (1 if h[2] > 0 else 0)
    elif code == RULE_ADAGRAD:
        return 1
    return 2                # Rprop, Adamax


cdef inline Rule make_rule(int code, const double* hyper, Py_ssize_t stride,
                           Py_ssize_t n_slots) noexcept nogil:
    cdef Rule r
    r.code = code
    r.lr = hyper[H_LR]
    r.weight_decay = hyper[H_WEIGHT_DECAY]
    r.bias_decay = hyper[H_BIAS_DECAY]
    r.mean_decay = hyper[H_MEAN_DECAY] != 0
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
    """torch.optim.SGD.  h = (momentum, dampening, nesterov, velocity); slot 0
    momentum_buffer.

    g = mean grad + wd p;  buf = g on the first step, else
    momentum buf + (1 - dampening) g;  g = g + momentum buf (Nesterov) or buf;
    p -= lr g.

    velocity != 0 is scikit-learn's form, where the slot holds the velocity
    (lr already in it): v = momentum v - lr g;  p += momentum v - lr g
    (Nesterov) or v.  Both forms agree while lr is constant (v = -lr buf);
    only this one is scikit-learn's when lr changes between steps.
    """
    cdef Py_ssize_t k
    cdef floating g, buf, lr = <floating>r.lr
    cdef floating momentum = <floating>r.h[0], keep = <floating>(1 - r.h[1])
    cdef bint nesterov = r.h[2] != 0
    # torch starts the buffer at g; from a zeroed buffer that is what the
    # general rule gives too, unless dampening scales g
    cdef bint first = r.step == 1 and r.h[1] != 0
    cdef bint velocity = r.h[3] != 0
    cdef floating v
    if momentum == 0:
        for k in range(n):
            g = g_sum[k] * scale + wd * p[k]
            g_sum[k] = 0
            p[k] -= lr * g
        return
    if velocity:
        for k in range(n):
            g = g_sum[k] * scale + wd * p[k]
            g_sum[k] = 0
            v = momentum * s[k] - lr * g
            s[k] = v
            p[k] += (momentum * v - lr * g) if nesterov else v
        return
    for k in range(n):
        g = g_sum[k] * scale + wd * p[k]
        g_sum[k] = 0
        buf = g if first else momentum * s[k] + keep * g
        s[k] = buf
        p[k] -= lr * (g + momentum * buf if nesterov else buf)


cdef void adam_rule(const Rule* r, floating* p, floating* g_sum, floating* s, Py_ssize_t n,
                    floating scale, floating wd) noexcept nogil:
    """torch.optim.Adam and AdamW.  h = (beta1, beta2, eps, amsgrad, decoupled,
    sklearn); slots exp_avg, exp_avg_sq (, max_exp_avg_sq with amsgrad).

    AdamW (decoupled) scales p by 1 - lr wd, Adam adds wd p to g;
    m += (1 - beta1)(g - m);  v = beta2 v + (1 - beta2) g²;
    p -= lr / (1 - beta1^t) · m / (sqrt(v or max v) / sqrt(1 - beta2^t) + eps).

    sklearn != 0 is scikit-learn's AdamOptimizer, whose eps sits outside the
    bias correction: m = beta1 m + (1 - beta1) g, v as above,
    p -= lr sqrt(1 - beta2^t) / (1 - beta1^t) · m / (sqrt(v) + eps).
    """
    cdef Py_ssize_t k
    cdef floating* m = s
    cdef floating* v = s + r.stride
    cdef floating* v_max = s + 2 * r.stride
    cdef floating g, m_k, v_k
    cdef double beta1 = r.h[0], beta2 = r.h[1]
    cdef floating one_m_b1 = <floating>(1 - beta1), b2 = <floating>beta2
    cdef floating one_m_b2 = <floating>(1 - beta2), eps = <floating>r.h[2]
    cdef bint amsgrad = r.h[3] != 0, decoupled = r.h[4] != 0, sklearn = r.h[5] != 0
    cdef floating b1 = <floating>beta1
    cdef floating step_size = <floating>(r.lr / (1 - pow(beta1, r.step)))
    # torch divides sqrt(v) by sqrt(1 - beta2^t); a multiplication by the
    # reciprocal differs by at most one rounding and saves a division per
    # parameter (with the sqrt, what per-sample Adam's time goes to)
    cdef floating inv_bc2_sqrt = <floating>(1 / sqrt(1 - pow(beta2, r.step)))
    cdef floating shrink = <floating>(1 - r.lr * wd)
    cdef floating decay = 0 if decoupled else wd
    cdef floating lr_t = <floating>(r.lr * sqrt(1 - pow(beta2, r.step)) / (1 - pow(beta1, r.step)))
    if sklearn:
        for k in range(n):
            g = g_sum[k] * scale + decay * p[k]
            g_sum[k] = 0
            m_k = b1 * m[k] + one_m_b1 * g
            v_k = b2 * v[k] + one_m_b2 * (g * g)
            m[k] = m_k
            v[k] = v_k
            p[k] -= lr_t * m_k / (_sqrt(v_k) + eps)
        return
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
        p[k] -= step_size * (m_k / (_sqrt(v_k) * inv_bc2_sqrt + eps))


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


cdef void adamax_rule(const Rule* r, floating* p, floating* g_sum, floating* s, Py_ssize_t n,
                      floating scale, floating wd) noexcept nogil:
    """torch.optim.Adamax.  h = (beta1, beta2, eps); slots exp_avg, exp_inf.

    g = mean grad + wd p;  m += (1 - beta1)(g - m);  u = max(beta2 u, |g| + eps);
    p -= lr / (1 - beta1^t) · m / u.
    """
    cdef Py_ssize_t k
    cdef floating* m = s
    cdef floating* u = s + r.stride
    cdef floating one_m_b1 = <floating>(1 - r.h[0]), b2 = <floating>r.h[1]
    cdef floating eps = <floating>r.h[2]
    cdef floating clr = <floating>(r.lr / (1 - pow(r.h[0], r.step)))
    cdef floating g, m_k, u_k, g_abs
    for k in range(n):
        g = g_sum[k] * scale + wd * p[k]
        g_sum[k] = 0
        m_k = m[k] + one_m_b1 * (g - m[k])
        m[k] = m_k
        g_abs = (g if g >= 0 else -g) + eps
        u_k = b2 * u[k]
        u_k = u_k if u_k > g_abs else g_abs
        u[k] = u_k
        p[k] -= clr * (m_k / u_k)


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
    elif r.code == RULE_ADAMAX:
        adamax_rule(r, p, g_sum, s, n, scale, wd)
