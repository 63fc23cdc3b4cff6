"""The one-sample short way (docs/design.md, "One-sample latency").

forward, predict, sgd_step and step take a short way for one finite (n0,)
array of the network's dtype (see src/bpfast/_one_sample.pxi).  It must give
bit for bit what the general path gives for the same sample as a one-row
batch, keep every rejection of the general path, commit only finite steps
(parameters and optimizer state bit-identical after a DivergenceError) and
take the network's lock.  Its speed is measured in bench/latency.py.
"""

import copy
import pickle
import threading

import numpy as np
import pytest

import bpfast
from bpfast import optim

DTYPES = ("float32", "float64")
NETS = {   # (activation, output, loss, n_out)
    "sigmoid/mse": ("sigmoid", "sigmoid", "mse", 2),
    "tanh/softmax/ce": ("tanh", "softmax", "cross_entropy", 3),
    "relu/identity/mse": ("relu", "identity", "mse", 1),
    "leaky/sigmoid/bce": ("leaky_relu", "sigmoid", "cross_entropy", 1),
}
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.05),
    "sgd_momentum_nesterov": lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "sgd_weight_decay": lambda: optim.SGD(lr=0.05, weight_decay=0.01),
    "adam": lambda: optim.Adam(lr=1e-2),
    "adam_amsgrad": lambda: optim.Adam(lr=1e-2, amsgrad=True),
    "adamw": lambda: optim.AdamW(lr=1e-2),
    "rmsprop_centered_momentum": lambda: optim.RMSprop(lr=1e-3, momentum=0.5, centered=True),
    "adagrad": lambda: optim.Adagrad(lr=1e-2),
    "rprop": lambda: optim.Rprop(lr=1e-2),
}


def make(kind, dtype, seed=0):
    activation, output, loss, n_out = NETS[kind]
    return bpfast.MLP([4, 16, 8, n_out], activation=activation, output=output, loss=loss,
                      dtype=dtype, seed=seed)


def samples(net, n=6, seed=1):
    """n (x, label, target row) triples of the network's dtype."""
    rng = np.random.default_rng(seed)
    n_out = net.layers[-1]
    out = []
    for _ in range(n):
        x = rng.normal(size=4).astype(net.dtype)
        label = int(rng.integers(0, max(n_out, 2)))
        row = rng.uniform(0.1, 0.9, size=n_out).astype(net.dtype)
        out.append((x, label, row))
    return out


def short_way_taken(net, x):
    return net._one.forward(x, net._lock) is not None


def assert_same_state(a, b, opt_a=None, opt_b=None):
    np.testing.assert_array_equal(a._params, b._params, strict=True)
    if opt_a is not None:
        assert opt_a.steps == opt_b.steps
        for i, entry in opt_a.state_dict()["state"].items():
            for key, value in entry.items():
                np.testing.assert_array_equal(value, opt_b.state_dict()["state"][i][key],
                                              strict=True)


# ---------------------------------------------------------------- same results

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", NETS)
def test_forward_and_predict_equal_the_general_path(kind, dtype):
    net = make(kind, dtype)
    for x, _, _ in samples(net):
        assert short_way_taken(net, x)
        out = net.forward(x)
        np.testing.assert_array_equal(out, net.forward(x[np.newaxis])[0], strict=True)
        assert out.dtype == net.dtype and out.shape == (net.layers[-1],)
        k = net.predict(x)
        assert type(k) is int and k == net.predict(x[np.newaxis])[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_lists_ints_and_other_dtypes_are_converted_as_before(dtype):
    net = make("tanh/softmax/ce", dtype)
    x_int = np.array([1, 0, -2, 3])
    x = x_int.astype(dtype)
    expected = net.forward(x)
    np.testing.assert_array_equal(net.forward(x_int), expected, strict=True)
    np.testing.assert_array_equal(net.forward(x_int.tolist()), expected, strict=True)
    other = np.float64 if dtype == "float32" else np.float32
    np.testing.assert_array_equal(net.forward(x.astype(other)),
                                  net.forward(x.astype(other).astype(dtype)), strict=True)
    swapped = x.astype(x.dtype.newbyteorder())     # non-native order: converted
    np.testing.assert_array_equal(net.forward(swapped), expected, strict=True)
    strided = np.repeat(x, 2)[::2]
    np.testing.assert_array_equal(net.forward(strided), expected, strict=True)
    assert net.predict(x_int.tolist()) == net.predict(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("target", ["label", "numpy_label", "row", "number"])
def test_sgd_step_equals_the_general_path(kind, dtype, target):
    fast = make(kind, dtype)
    general = copy.deepcopy(fast)
    if target == "number" and fast.layers[-1] != 1:
        pytest.skip("a bare number is a target only for one output")
    for x, label, row in samples(fast):
        y = {"label": label, "numpy_label": np.int64(label), "row": row,
             "number": float(row[0])}[target]
        y_batch = np.array([label]) if target.endswith("label") else row[np.newaxis]
        loss = fast.sgd_step(x, y, 0.1)
        assert loss == general.sgd_step(x[np.newaxis], y_batch, 0.1)
        assert_same_state(fast, general)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", NETS)
def test_steps_near_the_largest_float_commit_or_raise_as_the_general_path(kind, dtype):
    """A plain SGD step on the short way is written only once bounds on the
    network's vectors show that it leaves every parameter finite
    (proven_step in _one_sample.pxi); otherwise it falls back on a copy and a
    check.  With weights and learning rates up to the largest float, inputs
    as large and some inputs zero, each step must have the general path's
    outcome: the same loss and parameters, or DivergenceError with nothing
    changed."""
    rng = np.random.default_rng(11)
    top = float(np.log10(np.finfo(dtype).max))
    outcomes = []
    for trial in range(60):
        fast = make(kind, dtype, seed=trial)
        with np.errstate(over="ignore", invalid="ignore"):
            fast.weights[rng.integers(len(fast.weights))][...] *= 10.0 ** rng.uniform(0, top)
        general = copy.deepcopy(fast)
        x, label, _ = samples(fast, n=1, seed=trial)[0]
        x = (x * 10.0 ** rng.uniform(0, top / 2) * (rng.random(4) < 0.7)).astype(dtype)
        lr = float(10.0 ** rng.uniform(-2, top))
        results = []
        for net, xs, y in ((fast, x, label), (general, x[np.newaxis], [label])):
            before = net._params.copy()
            try:
                results.append(net.sgd_step(xs, y, lr))
            except bpfast.DivergenceError:
                np.testing.assert_array_equal(net._params, before, strict=True)
                results.append("raised")
        assert results[0] == results[1]
        assert_same_state(fast, general)
        outcomes.append(results[0] == "raised")
    assert sum(outcomes) < len(outcomes)                       # some steps commit,
    assert sum(outcomes) > 0 or kind == "sigmoid/mse"          # some diverge (saturated
    # sigmoid units with the squared error pass back a zero delta: no step overflows)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_step_equals_the_general_path(name, dtype):
    fast = make("tanh/softmax/ce", dtype)
    general = copy.deepcopy(fast)
    opt_fast, opt_general = OPTIMIZERS[name](), OPTIMIZERS[name]()
    for k, (x, label, row) in enumerate(samples(fast, n=8)):
        y, y_batch = (label, [label]) if k % 2 else (row, row[np.newaxis])
        loss = fast.step(x, y, opt_fast)
        assert loss == general.step(x[np.newaxis], y_batch, opt_general)
        assert_same_state(fast, general, opt_fast, opt_general)
    assert opt_fast._kernel_cache is not None      # the later steps took the short way


def test_a_changed_hyperparameter_is_used_by_the_next_step():
    fast = make("tanh/softmax/ce", "float64")
    general = copy.deepcopy(fast)
    opt_fast, opt_general = optim.Adam(lr=1e-2), optim.Adam(lr=1e-2)
    for k, (x, label, _) in enumerate(samples(fast, n=4)):
        if k == 2:
            for opt in (opt_fast, opt_general):
                opt.lr = 0.05
                opt.betas = (0.5, 0.9)
        fast.step(x, label, opt_fast)
        general.step(x[np.newaxis], [label], opt_general)
        assert_same_state(fast, general, opt_fast, opt_general)
    clone = pickle.loads(pickle.dumps(opt_fast))
    assert clone._kernel_cache is None


def test_an_optimizer_of_another_network_is_still_refused():
    net, other = make("tanh/softmax/ce", "float64"), make("tanh/softmax/ce", "float64")
    opt = optim.SGD(lr=0.1)
    x, label, _ = samples(net)[0]
    net.step(x, label, opt)
    net.step(x, label, opt)
    before = other._params.copy()
    with pytest.raises(ValueError, match="optimizer"):
        other.step(x, label, opt)
    np.testing.assert_array_equal(other._params, before, strict=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["list", "tuple"])
def test_a_list_or_tuple_of_floats_gives_what_its_array_gives(kind, dtype):
    """A list or tuple of n0 Python floats is read by the kernel itself
    (OneSample.sequence_sample): forward, predict and every update must be
    those of the same sample as an array of the network's dtype, bit for bit,
    in float32 too (each float rounded as NumPy rounds it)."""
    fast = make("tanh/softmax/ce", dtype)
    general = copy.deepcopy(fast)
    opt_fast, opt_general = optim.Adam(lr=1e-2), optim.Adam(lr=1e-2)
    sgd_fast, sgd_general = optim.SGD(lr=0.05), optim.SGD(lr=0.05)
    rng = np.random.default_rng(5)
    for k in range(8):
        values = [float(v) for v in rng.normal(size=4) * 3]
        seq = list(values) if kind == "list" else tuple(values)
        x = np.array(values, dtype=dtype)
        label = k % 3
        assert short_way_taken(fast, seq)
        np.testing.assert_array_equal(fast.forward(seq), general.forward(x), strict=True)
        assert fast.predict(seq) == general.predict(x)
        assert fast.sgd_step(seq, label, 0.1) == general.sgd_step(x, label, 0.1)
        assert fast.step(seq, label, opt_fast) == general.step(x, label, opt_general)
        assert fast.step(seq, label, sgd_fast) == general.step(x, label, sgd_general)
        assert_same_state(fast, general, opt_fast, opt_general)
    assert seq == (list(values) if kind == "list" else tuple(values))     # not written


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_list_the_kernel_does_not_take_goes_the_general_way(dtype):
    """Items that are not all Python floats, a value that is not finite in the
    network's dtype, or another length: the general path converts or
    rejects, as it did before lists had a short way."""
    net = make("tanh/softmax/ce", dtype)
    big = 1e39                                  # finite as a double, inf as a float32
    expected = net.forward(np.array([1.0, 0.0, -2.0, 3.0], dtype=dtype))
    for seq in ([1, 0.0, -2.0, 3.0], [True, 0.0, -2.0, 3.0], [np.float32(1), 0.0, -2.0, 3.0]):
        assert not short_way_taken(net, seq)
        np.testing.assert_array_equal(net.forward(seq), expected, strict=True)
    before = net._params.copy()
    for seq in ([1.0, float("nan"), 0.0, 0.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0],
                [1.0, None, 0.0, 0.0], [1.0, "2", 0.0, 0.0]):
        with pytest.raises((ValueError, TypeError)):
            net.sgd_step(seq, 1, 0.1)
    if dtype == "float32":
        with pytest.raises(ValueError, match="finite"):
            net.sgd_step([big, 0.0, 0.0, 0.0], 1, 0.1)
    else:
        net.forward([big, 0.0, 0.0, 0.0])       # a finite double: fine
    np.testing.assert_array_equal(net._params, before, strict=True)


# ---------------------------------------------------------------- guarantees

@pytest.mark.parametrize("dtype", DTYPES)
def test_results_are_fresh_and_inputs_are_not_written(dtype):
    net = make("sigmoid/mse", dtype)
    x, label, row = samples(net)[0]
    x.setflags(write=False)
    row.setflags(write=False)
    first = net.forward(x)
    second = net.forward(x)
    assert first is not second and not np.shares_memory(first, net._params)
    first[:] = 7
    np.testing.assert_array_equal(net.forward(x), second, strict=True)
    x_before, row_before = x.copy(), row.copy()
    net.sgd_step(x, row, 0.1)
    net.step(x, label, optim.SGD(lr=0.1))
    np.testing.assert_array_equal(x, x_before, strict=True)
    np.testing.assert_array_equal(row, row_before, strict=True)


def _message(call):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", ["forward", "predict", "sgd_step", "step"])
def test_every_rejection_of_the_general_path_still_happens(call, dtype):
    net = make("tanh/softmax/ce", dtype)     # three outputs
    x, label, row = samples(net)[0]
    nan_x = x.copy()
    nan_x[1] = np.nan
    inf_row = row.copy()
    inf_row[0] = np.inf
    opt = optim.SGD(lr=0.1)
    net.step(x, label, opt)                   # bound: later steps may take the short way

    def run(x, y=label, lr=0.1):
        if call in ("forward", "predict"):
            return getattr(net, call)(x)
        if call == "sgd_step":
            return net.sgd_step(x, y, lr)
        return net.step(x, y, opt)      # (opt.lr refuses a bad lr itself)

    bad = [lambda: run(nan_x), lambda: run(x[:3]), lambda: run(np.append(x, 1.0))]
    if call in ("sgd_step", "step"):
        bad += [lambda: run(x, 3), lambda: run(x, -1), lambda: run(x, 2**70),
                lambda: run(x, inf_row), lambda: run(x, 0.5), lambda: run(x, row[:2])]
    if call == "sgd_step":
        bad += [lambda: run(x, label, np.inf), lambda: run(x, label, np.nan),
                lambda: run(x, label, -0.1), lambda: run(x, label, 0.0)]
    before = net._params.copy()
    for attempt in bad:
        kind, text = _message(attempt)
        assert kind in (ValueError, TypeError) and ":" in text
    np.testing.assert_array_equal(net._params, before, strict=True)
    # the same messages as the general path's
    assert "expected finite values" in _message(lambda: run(nan_x))[1]
    one_row = run(x[np.newaxis], [label])      # a 2-D single row still works
    assert np.ndim(one_row) == (2 if call == "forward" else 1 if call == "predict" else 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_messages_equal_those_of_the_general_path(dtype):
    net = make("tanh/softmax/ce", dtype)
    x, label, _ = samples(net)[0]
    nan_x = x.copy()
    nan_x[0] = np.nan
    cases = [(lambda: net.forward(nan_x), lambda: net.forward(nan_x[np.newaxis])),
             (lambda: net.sgd_step(x, 3, 0.1), lambda: net.sgd_step(x[np.newaxis], [3], 0.1)),
             (lambda: net.sgd_step(x, label, float("inf")),
              lambda: net.sgd_step(x[np.newaxis], [label], float("inf")))]
    for short, general in cases:
        assert _message(short) == _message(general)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("how", ["parameter_overflows", "loss_not_finite", "nan_parameter"])
@pytest.mark.parametrize("name", ["sgd_step", "sgd", "sgd_momentum_nesterov", "adam",
                                  "rmsprop_centered_momentum"])
def test_a_diverging_step_restores_everything(name, how, dtype):
    net = bpfast.MLP([4, 8, 1], activation="tanh", output="identity", dtype=dtype, seed=3)
    x = np.array([0.5, -1.0, 2.0, 0.0], dtype=dtype)
    opt = None if name == "sgd_step" else OPTIMIZERS[name]()
    step = (lambda lr: net.sgd_step(x, 1.0, lr)) if opt is None else \
        (lambda lr: (setattr(opt, "lr", lr), net.step(x, 1.0, opt))[1])
    step(1e-3)
    step(1e-3)                 # the optimizer has state, and takes the short way now
    lr = 1e-3
    if how == "parameter_overflows":
        lr = float(np.finfo(dtype).max)
    elif how == "loss_not_finite":
        net.weights[0][:] = 1e3      # hidden units saturate at ±1: the output is huge
        net.weights[-1][0, :] = np.finfo(net.dtype).max
    else:
        net.weights[0][0, 3] = np.nan    # a row the sample's zero input skips
    params = net._params.copy()
    saved = None if opt is None else copy.deepcopy(opt.state_dict())
    steps = None if opt is None else opt.steps
    with pytest.raises(bpfast.DivergenceError):
        step(lr)
    np.testing.assert_array_equal(net._params, params, strict=True)
    if opt is not None:
        assert opt.steps == steps
        for i, entry in saved["state"].items():
            for key, value in entry.items():
                np.testing.assert_array_equal(opt.state_dict()["state"][i][key], value,
                                              strict=True)


# ---------------------------------------------------------------- the lock

class RecordingLock:
    """An RLock that records the threads that asked for it."""

    def __init__(self, lock):
        self._lock = lock
        self.requested_by = set()

    def acquire(self, blocking=True, timeout=-1):
        self.requested_by.add(threading.get_ident())
        return self._lock.acquire(blocking, timeout)

    def release(self):
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc_info):
        self.release()


@pytest.mark.parametrize("call", ["forward", "predict", "sgd_step", "step"])
def test_the_short_way_takes_the_network_lock(call):
    net = make("tanh/softmax/ce", "float64")
    x, label, _ = samples(net)[0]
    opt = optim.Adam(lr=1e-3)
    net.step(x, label, opt)
    net.forward(x)                          # the short way was set up with the first lock
    net._lock = lock = RecordingLock(net._lock)
    {"forward": lambda: net.forward(x), "predict": lambda: net.predict(x),
     "sgd_step": lambda: net.sgd_step(x, label, 0.1),
     "step": lambda: net.step(x, label, opt)}[call]()
    assert threading.get_ident() in lock.requested_by


def test_threads_sharing_a_network_serialise_their_one_sample_steps():
    net = make("tanh/softmax/ce", "float64")
    serial = copy.deepcopy(net)
    data = samples(net, n=200, seed=5)
    for x, label, _ in data:
        serial.sgd_step(x, label, 0.05)

    def worker(part):
        for x, label, _ in part:
            net.sgd_step(x, label, 0.05)
            net.forward(x)

    # The same samples, split between two threads: every step is applied
    # whole (the loss of the result is finite and every parameter moved).
    threads = [threading.Thread(target=worker, args=(data[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert net._finite()
    assert net._one.forward(data[0][0], net._lock) is not None
