# One sample at the cost of a NumPy call (docs/design.md, "One-sample
# latency").  Included by _core.pxi.
#
# For one sample of a small network the kernel's work is about a microsecond;
# what costs is around it: acquiring a typed memoryview costs ~0.3 us per
# argument, np.empty ~0.2 us, a parameter copy for rollback O(n_params)
# Python-level work.  `OneSample` is the kernel's entry for that case: made
# once per network, it holds the spec, the parameters and its own scratch
# (ws, grad, a rollback copy) as memoryviews taken at construction, and per
# call it reads the sample through the NumPy C API after checking, in C, what
# a memoryview would check (1-D, this length, this dtype, native byte order,
# aligned, C-contiguous) and that it is finite.  A list or tuple of n0 Python
# floats (what a stream or an environment often hands over) is read into the
# object's own input row instead, with no NumPy array made for it.
#
# Each method either does the whole call or declines (returns None), having
# changed nothing: the general path of bpfast.mlp then runs, with every
# conversion, every named error and the divergence handling.  So the checks
# that reject live in one place (bpfast._validate); here are only the
# conditions for taking the short way, each one cdef function.
#
# A step is committed only when it is finite, and it runs exactly the
# per-batch code of `train` for one sample (so the result is bit-identical
# to the general path).  A plain SGD step (sgd_step, an SGD optimizer without
# momentum or decay) first proves that it will leave every parameter finite
# and only then writes (see proven_step); that costs a few checks on the
# network's small vectors.  Any other rule, or a plain step that cannot be
# proven, copies what it may write (parameters, optimizer state, step count)
# into the object's rollback buffer, runs, checks the loss and every
# parameter, and on NaN/inf puts the copy back and declines; the general
# path then repeats the step and raises DivergenceError.  For a small network
# of doubles that copy and check cost more than the step's arithmetic (about
# 0.9 and 0.6 us of a 5 us sgd_step on [4, 64, 64, 2]), hence the proof.
#
# Every method takes the network's lock (passed in by the caller, so that a
# replaced lock is honoured), so the object's scratch is used by one thread
# at a time.  The short way keeps the GIL (see SMALL_NETWORK).

cimport numpy as cnp
from cpython.float cimport PyFloat_Check, PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_Check
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport sqrt
from libc.string cimport memcpy

import numpy as np

cdef extern from "Python.h":
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    # With a NULL exception, a huge integer is clipped (then out of range).
    Py_ssize_t index_clipped "PyNumber_AsSsize_t"(object o, void* exc) except? -1

cnp.import_array()

# The short way holds the GIL (releasing it costs more than a small
# network's work); a network with a longer parameter buffer than this takes
# the general path, which releases it, and whose overhead is small next to
# such a network's work.
cdef Py_ssize_t SMALL_NETWORK = 1 << 16


cdef inline bint is_vector(object v, int typenum, Py_ssize_t n):
    """v is an ndarray of n entries of typenum, 1-D, C-contiguous, aligned, native order."""
    if not cnp.PyArray_Check(v):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>v
    return (cnp.PyArray_NDIM(a) == 1 and cnp.PyArray_DIM(a, 0) == n
            and cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_ISCARRAY_RO(a))


cdef inline Py_ssize_t size_of(object v):
    """The number of entries of an ndarray, -1 for anything else."""
    return cnp.PyArray_SIZE(<cnp.ndarray>v) if cnp.PyArray_Check(v) else -1


cdef inline Py_ssize_t rows_of(object v):
    """The length of the first axis of a 2-D ndarray, -1 for anything else."""
    if cnp.PyArray_Check(v) and cnp.PyArray_NDIM(<cnp.ndarray>v) == 2:
        return cnp.PyArray_DIM(<cnp.ndarray>v, 0)
    return -1


cdef inline bint is_matrix(object v, int typenum, Py_ssize_t rows, Py_ssize_t cols):
    """v is a C-contiguous (rows, cols) ndarray of typenum (an optimizer's buffers)."""
    if not cnp.PyArray_Check(v):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>v
    return (cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_DIM(a, 0) == rows
            and cnp.PyArray_DIM(a, 1) == cols and cnp.PyArray_TYPE(a) == typenum
            and cnp.PyArray_ISCARRAY(a))


cdef inline const void* data(object v):
    return cnp.PyArray_DATA(<cnp.ndarray>v)


cdef inline bint rows_finite_but(const floating* W, Py_ssize_t n_rows, Py_ssize_t width,
                                 const int32_t* listed) noexcept nogil:
    """Every row j < n_rows of W not in the sorted list (count, then indices)
    holds only finite numbers."""
    cdef Py_ssize_t j, k = 0, m = listed[0]
    if m == n_rows:               # every row listed (a dense sample: the usual case)
        return True
    for j in range(n_rows):
        if k < m and listed[1 + k] == j:
            k += 1
        elif not finite(W + j * width, width):
            return False
    return True


cdef bint proven_step(const Net* net, floating* params, floating* ws, const Inputs* X,
                      const floating* Y, const int64_t* labels, floating neg_lr,
                      double* stats) noexcept nogil:
    """step_one's plain SGD step on sample 0 of X, written only once it is
    sure to leave every parameter finite; returns whether it was (if not,
    params are untouched and ws holds scratch).  stats[0] += the loss.

    Everything but the writes comes first: the forward pass, the loss, every
    delta (back_propagate, which reads W[l] and writes only delta[l-1]).
    Then the proof, on vectors of the network's units:
    - z, a and the loss are finite.  A finite z[l+1]_i is b[l]_i plus a
      finite term a_j W[l]_ji for each nonzero input j (an infinite or NaN
      term would make the sum so), so b[l] and the rows of W[l] that the
      forward pass read are finite; the others (zero inputs, which the
      update skips too) are checked directly.
    - The update adds to each parameter at most lr |a_j| |delta_i| (a bias:
      lr |delta_i|), rounded twice, and |v_k| <= ||v||.  Kept below 1e288
      (double) or 1e27 (float), under 2^-13 of half an ulp of the largest
      finite number (2^970, 2^103), a step from a finite parameter rounds to
      a finite one, and no product on the way overflows.  A norm of a
      vector with NaN or inf in it, or whose square overflows, is NaN or
      inf and fails the test: so every delta is finite too.
    Then the same add_layer_gradient calls as backward's, in the same
    order, make the step: the parameters equal step_one's bit for bit.
    """
    cdef floating* z = ws
    cdef floating* a = ws + net.n_units
    cdef floating* delta = ws + 2 * net.n_units
    cdef int32_t* nz = nonzero_list(net, ws)
    cdef Row x = row_of(X, 0)
    cdef const floating* y = target(net, Y, labels, 0, ws + 3 * net.n_units)
    cdef double loss, lr = -<double>neg_lr, size_in, size_delta
    cdef const floating* a_in
    cdef double limit = 1e288 if floating is double else 1e27
    cdef Py_ssize_t l
    if not isfinite(neg_lr):
        return False
    forward(net, params, &x, z, a, nz, NULL)
    loss = sample_loss(net, z, a, y)
    if not (isfinite(loss) and finite(z, 2 * net.n_units)):        # z and a
        return False
    output_delta(net, z, a, y, delta)
    for l in range(net.L - 1, 0, -1):
        back_propagate(net, params, z, a, delta, l)
    for l in range(net.L):
        a_in = <const floating*>(a + net.u_off[l - 1]) if l > 0 else <const floating*>x.x
        size_delta = sqrt(<double>dot(delta + net.u_off[l], delta + net.u_off[l], net.width[l]))
        size_in = sqrt(<double>dot(a_in, a_in, net.size[l]))
        if not (size_delta * (lr if lr > 1 else 1.0) * (size_in if size_in > 1 else 1.0)
                <= limit and rows_finite_but(params + net.w_off[l], net.size[l],
                                             net.width[l], nz + net.nz_off[l])):
            return False
    for l in range(net.L - 1, -1, -1):
        add_layer_gradient(net, &x, a, delta, nz, params, neg_lr, NULL, l)
    stats[0] += loss
    return True


cdef double run_step(const Net* net, Rule* rule, bint fused, floating* params,
                     floating* grad, floating* state, Py_ssize_t state_len,
                     floating* backup, floating* ws, const floating* x,
                     const floating* y, const int64_t* label,
                     double* counters, bint* committed) noexcept nogil:
    """One update on one sample, committed only when the loss and every
    parameter are finite; returns the loss before it.

    The update is `train`'s for a batch of one: the fused plain SGD step, or
    the gradient followed by the rule.  params, state, counters: IN/OUT
    (unchanged unless committed).  grad: zeroed scratch, left zeroed.
    """
    cdef Py_ssize_t n = net.n_params
    cdef double stats[2]
    cdef double step_count = counters[0]
    cdef Inputs inp = dense_inputs(x, 1, net.size[0], sizeof(floating))
    stats[0] = 0
    stats[1] = 0
    if fused:
        clear_delta(net, ws)
        committed[0] = proven_step(net, params, ws, &inp, y, label, <floating>(-rule.lr),
                                   stats)
        if committed[0]:
            counters[0] += 1
            return stats[0]
    memcpy(backup, params, n * sizeof(floating))
    if state_len:
        memcpy(backup + n, state, state_len * sizeof(floating))
    clear_delta(net, ws)
    counters[0] += 1
    if fused:
        step_one(net, params, ws, &inp, y, label, 0, -1, <floating>(-rule.lr), stats)
    else:
        rule.step = counters[0]
        accumulate(net, params, grad, ws, &inp, y, label, <const floating*>NULL, NULL, 0, 1,
                   stats)
        update_span(net, rule, params, grad, state, 0, n, <floating>1.0)
    committed[0] = isfinite(stats[0]) and finite(params, n)
    if not committed[0]:
        memcpy(params, backup, n * sizeof(floating))
        if state_len:
            memcpy(state, backup + n, state_len * sizeof(floating))
        counters[0] = step_count
    return stats[0]


cdef class OneSample:
    """The one-sample entry of one network: forward, predict, one update.

    spec: the network's Layout.spec; params: its parameter buffer (written in
    place by the updates); ws_len: Layout.ws_len.  Every method returns None,
    having changed nothing, when its arguments are not for the short way.
    """

    cdef Net net
    cdef const Py_ssize_t[::1] spec
    cdef double[::1] params_d, ws_d, grad_d, backup_d, x_d
    cdef float[::1] params_f, ws_f, grad_f, backup_f, x_f
    cdef object y_row              # a target of one number (regression with one output)
    cdef int typenum
    cdef bint is_double, small
    cdef Py_ssize_t n_in, n_out, n_labels, off

    def __cinit__(self, const Py_ssize_t[::1] spec, params, Py_ssize_t ws_len):
        self.spec = spec
        self.net = unpack(spec)
        self.n_in = self.net.size[0]
        self.n_out = self.net.size[self.net.L]
        self.n_labels = self.n_out if self.n_out > 1 else 2
        self.off = self.net.u_off[self.net.L - 1]
        self.small = self.net.n_params <= SMALL_NETWORK
        self.typenum = cnp.PyArray_TYPE(<cnp.ndarray?>params)
        self.is_double = self.typenum == cnp.NPY_DOUBLE
        n = self.net.n_params
        dtype = params.dtype
        # The rollback copy has room for the parameters and three state slots.
        if self.is_double:
            self.params_d = params
            self.ws_d = aligned_zeros(ws_len, dtype)
            self.grad_d = aligned_zeros(n, dtype)
            self.backup_d = aligned_zeros(4 * n, dtype)
            self.x_d = aligned_zeros(self.n_in, dtype)
        else:
            self.params_f = params
            self.ws_f = aligned_zeros(ws_len, dtype)
            self.grad_f = aligned_zeros(n, dtype)
            self.backup_f = aligned_zeros(4 * n, dtype)
            self.x_f = aligned_zeros(self.n_in, dtype)
        self.y_row = np.empty(1, dtype=dtype)

    # ------------------------------------------------------------ the sample

    cdef inline const void* array_sample(self, x):
        """x's values when x is a finite (n0,) vector of the network's dtype
        (read in place) and the network is small; else NULL."""
        if not (self.small and is_vector(x, self.typenum, self.n_in)):
            return NULL
        if self.is_double:
            return data(x) if finite(<const double*>data(x), self.n_in) else NULL
        return data(x) if finite(<const float*>data(x), self.n_in) else NULL

    cdef inline bint is_sequence(self, x):
        """x is a list or tuple of n0 items and the network is small: a sample
        for sequence_sample, which reads the items (under the lock)."""
        return self.small and ((PyList_CheckExact(x) and PyList_GET_SIZE(x) == self.n_in)
                               or (PyTuple_CheckExact(x) and PyTuple_GET_SIZE(x) == self.n_in))

    cdef const void* sequence_sample(self, x):
        """The items of x (is_sequence) in the object's input row, in the
        network's dtype, when each is a Python float and finite there; else
        NULL.  The row is the object's: call under the lock."""
        cdef Py_ssize_t k
        cdef object v
        cdef bint is_list = PyList_CheckExact(x)
        for k in range(self.n_in):
            v = <object>(PyList_GET_ITEM(x, k) if is_list else PyTuple_GET_ITEM(x, k))
            if not PyFloat_Check(v):
                return NULL
            if self.is_double:
                self.x_d[k] = PyFloat_AS_DOUBLE(v)
            else:
                self.x_f[k] = <float>PyFloat_AS_DOUBLE(v)      # may overflow to inf
        if self.is_double:
            return &self.x_d[0] if finite(&self.x_d[0], self.n_in) else NULL
        return &self.x_f[0] if finite(&self.x_f[0], self.n_in) else NULL

    cdef inline int target(self, y, int64_t* label, const void** row):
        """1 for a label (written to label), 2 for a target vector (row points
        at it), 0 otherwise.

        An int (or NumPy integer) in [0, n_labels), a finite (nL,) vector of
        the dtype, or a finite float when there is one output.
        """
        cdef Py_ssize_t k
        cdef void* value
        if PyLong_Check(y) or (not PyFloat_Check(y) and not cnp.PyArray_Check(y)
                               and isinstance(y, np.integer)):
            k = index_clipped(y, NULL)
            if 0 <= k < self.n_labels:
                label[0] = k
                return 1
            return 0
        if PyFloat_Check(y):
            if self.n_out != 1:
                return 0
            value = cnp.PyArray_DATA(<cnp.ndarray>self.y_row)
            if self.is_double:
                (<double*>value)[0] = PyFloat_AS_DOUBLE(y)
            else:
                (<float*>value)[0] = <float>PyFloat_AS_DOUBLE(y)   # may overflow to inf
            y = self.y_row
        elif not is_vector(y, self.typenum, self.n_out):
            return 0
        row[0] = data(y)
        if self.is_double:
            return 2 if finite(<const double*>row[0], self.n_out) else 0
        return 2 if finite(<const float*>row[0], self.n_out) else 0

    # ------------------------------------------------------------ inference

    cdef void run_forward(self, const void* x) noexcept:
        cdef Net* net = &self.net
        cdef Row row
        row.x = x
        row.idx = NULL
        row.m = net.size[0]
        row.wide = False
        if self.is_double:
            forward(net, &self.params_d[0], &row, &self.ws_d[0],
                    &self.ws_d[net.n_units], nonzero_list(net, &self.ws_d[0]), NULL)
        else:
            forward(net, &self.params_f[0], &row, &self.ws_f[0],
                    &self.ws_f[net.n_units], nonzero_list(net, &self.ws_f[0]), NULL)

    def forward(self, x, lock):
        """a[L] for one sample x as a fresh (nL,) array, or None."""
        cdef cnp.npy_intp n_out = self.n_out
        cdef Py_ssize_t start = self.net.n_units + self.off
        cdef const void* xp = self.array_sample(x)
        if xp == NULL and not self.is_sequence(x):
            return None
        out = cnp.PyArray_SimpleNew(1, &n_out, self.typenum)
        lock.acquire()
        try:
            if xp == NULL:
                xp = self.sequence_sample(x)
                if xp == NULL:
                    return None
            self.run_forward(xp)
            if self.is_double:
                memcpy(cnp.PyArray_DATA(<cnp.ndarray>out), &self.ws_d[start],
                       n_out * sizeof(double))
            else:
                memcpy(cnp.PyArray_DATA(<cnp.ndarray>out), &self.ws_f[start],
                       n_out * sizeof(float))
        finally:
            lock.release()
        return out

    def predict(self, x, lock):
        """The class of one sample x (argmax, or a >= 0.5 for one output), or None."""
        cdef Py_ssize_t start = self.net.n_units + self.off
        cdef Py_ssize_t k
        cdef const void* xp = self.array_sample(x)
        if xp == NULL and not self.is_sequence(x):
            return None
        lock.acquire()
        try:
            if xp == NULL:
                xp = self.sequence_sample(x)
                if xp == NULL:
                    return None
            self.run_forward(xp)
            if self.is_double:
                k = predicted_class(&self.ws_d[start], self.n_out)
            else:
                k = predicted_class(&self.ws_f[start], self.n_out)
        finally:
            lock.release()
        return k

    # ------------------------------------------------------------ updates

    def sgd_step(self, x, y, lr, lock):
        """One plain SGD step p -= lr * grad on one sample; the loss before it, or None."""
        cdef double hyper[H_ARGS + 4]
        cdef double counter = 0
        if not (PyFloat_Check(lr) and isfinite(PyFloat_AS_DOUBLE(lr))
                and PyFloat_AS_DOUBLE(lr) > 0):
            return None
        hyper[H_LR] = PyFloat_AS_DOUBLE(lr)
        hyper[H_WEIGHT_DECAY] = 0
        hyper[H_BIAS_DECAY] = 1
        hyper[H_MEAN_DECAY] = 0
        hyper[H_ARGS] = hyper[H_ARGS + 1] = hyper[H_ARGS + 2] = hyper[H_ARGS + 3] = 0  # no momentum
        cdef Rule rule = make_rule(RULE_SGD, hyper, self.net.n_params, 0)
        return self.update(x, y, &rule, True, NULL, 0, &counter, lock)

    def step(self, x, y, rule, lock):
        """One step of an optimizer's rule (a StepRule made from its
        `_kernel_args`) on one sample x; the loss before it, or None."""
        if not isinstance(rule, StepRule):           # another kernel build's, say
            return None
        cdef StepRule r = <StepRule>rule
        cdef Rule copy = r.rule
        if not (r.usable and r.n_params == self.net.n_params and r.typenum == self.typenum):
            return None
        return self.update(x, y, &copy, r.fused, r.state, r.state_len, r.counters, lock)

    cdef object update(self, x, y, Rule* rule, bint fused, void* sp, Py_ssize_t state_len,
                       double* counters, lock):
        """The step of rule on sample x with target y: sp, state_len: the
        optimizer's state (NULL, 0: none), counters: its step count."""
        cdef int64_t label = 0
        cdef int kind
        cdef double loss
        cdef bint committed = False
        cdef const int64_t* lab
        cdef const void* yp = NULL
        cdef const void* xp = self.array_sample(x)
        if xp == NULL and not self.is_sequence(x):
            return None
        lock.acquire()
        try:
            if xp == NULL:
                xp = self.sequence_sample(x)
                if xp == NULL:
                    return None
            kind = self.target(y, &label, &yp)     # under the lock: it may write y_row
            if kind == 0:
                return None
            lab = &label if kind == 1 else NULL
            if self.is_double:
                loss = run_step(&self.net, rule, fused, &self.params_d[0], &self.grad_d[0],
                                <double*>sp, state_len, &self.backup_d[0], &self.ws_d[0],
                                <const double*>xp, <const double*>yp, lab, counters,
                                &committed)
            else:
                loss = run_step(&self.net, rule, fused, &self.params_f[0], &self.grad_f[0],
                                <float*>sp, state_len, &self.backup_f[0], &self.ws_f[0],
                                <const float*>xp, <const float*>yp, lab, counters,
                                &committed)
        finally:
            lock.release()
        return loss if committed else None


cdef class StepRule:
    """An optimizer's rule as OneSample.step takes it, checked once.

    Made from an optimizer's `_kernel_args` (rule code, hyper, state,
    counters), which bpfast.optim keeps until an attribute of the optimizer
    changes; so a one-sample step pays none of these checks.  It holds the
    arrays (the rule points into hyper, the steps write state and counters
    in place).  `usable` is False for what the short way leaves to the
    general path: SparseAdam's lazy rows, arrays of another shape or type.
    """

    cdef Rule rule
    cdef object hyper, state_array, counters_array
    cdef void* state
    cdef double* counters
    cdef Py_ssize_t state_len, n_params
    cdef int typenum
    cdef readonly bint usable
    cdef bint fused

    def __cinit__(self, int rule_code, hyper, state, counters):
        cdef Py_ssize_t n_hyper = size_of(hyper)
        cdef Py_ssize_t n_slots = rows_of(state)
        self.hyper, self.state_array, self.counters_array = hyper, state, counters
        self.usable = (rule_code != RULE_SPARSE_ADAM and rule_args(rule_code) >= 0
                       and n_hyper >= H_ARGS + rule_args(rule_code)
                       and is_vector(hyper, cnp.NPY_DOUBLE, n_hyper)
                       and is_vector(counters, cnp.NPY_DOUBLE, 1)
                       and 0 <= n_slots <= 3
                       and cnp.PyArray_TYPE(<cnp.ndarray>state) in (cnp.NPY_DOUBLE,
                                                                    cnp.NPY_FLOAT)
                       and is_matrix(state, cnp.PyArray_TYPE(<cnp.ndarray>state), n_slots,
                                     cnp.PyArray_DIM(<cnp.ndarray>state, 1))
                       and n_slots >= rule_slots(rule_code, <const double*>data(hyper) + H_ARGS))
        if not self.usable:
            return
        self.n_params = cnp.PyArray_DIM(<cnp.ndarray>state, 1)
        self.typenum = cnp.PyArray_TYPE(<cnp.ndarray>state)
        self.rule = make_rule(rule_code, <const double*>data(hyper), self.n_params, n_slots)
        self.fused = (rule_code == RULE_SGD and self.rule.h[0] == 0
                      and self.rule.weight_decay == 0)
        self.state = cnp.PyArray_DATA(<cnp.ndarray>state) if n_slots else NULL
        self.state_len = n_slots * self.n_params
        self.counters = <double*>data(counters)
