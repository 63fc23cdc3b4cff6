"""Bad arguments: a clear error that names the argument, and nothing lost.

Every public method rejects every kind of bad argument with ValueError or
TypeError whose message names the offending argument, and does so before any
parameter is touched: the weights and biases are bit-identical after the
rejected call (and so are the momentum buffer, the shuffling generator and
``net.history``, as later training shows).
"""

import copy
import re

import numpy as np
import pytest

import bpfast
from conftest import assert_same_params, params_snapshot

ANY = (ValueError, TypeError)       # for mistakes that could be called either
N_IN, N_OUT, N = 4, 3, 6

rng = np.random.default_rng(0)
X_GOOD = rng.normal(size=(N, N_IN))
Y_GOOD = np.array([0, 1, 2, 2, 1, 0])
ROWS_GOOD = rng.uniform(size=(N, N_OUT))


def _with(a, index, value):
    a = np.array(a, dtype=np.float64)
    a[index] = value
    return a


def names(message, name):
    """`name` appears in `message` as a word (followed by ':' or '[k]' or a space...)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message)


def assert_rejected(net, call, name, exc=ANY):
    """call() raises exc naming `name`, and leaves net's parameters and history as they were."""
    before = params_snapshot(net)
    history = net.history
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert names(message, name), f"the message does not name {name!r}: {message!r}"
    assert_same_params(before, params_snapshot(net))
    assert net.history is history


@pytest.fixture(params=["float32", "float64"])
def net(request):
    """A trained classifier: it has a momentum buffer and a History to lose."""
    net = bpfast.MLP([N_IN, 5, N_OUT], activation="tanh", output="softmax",
                     loss="cross_entropy", dtype=request.param, seed=0)
    net.fit(X_GOOD, Y_GOOD, epochs=1, batch_size=2, momentum=0.9, progress=False)
    return net


# ------------------------------------------------------------ MLP(...)

BAD_CONSTRUCTOR = [
    ("layers", dict(layers=5), ANY),
    ("layers", dict(layers="784,10"), ANY),
    ("layers", dict(layers=None), ANY),
    ("layers", dict(layers=[5]), ValueError),
    ("layers", dict(layers=[]), ValueError),
    ("layers", dict(layers=[3, 0, 2]), ValueError),
    ("layers", dict(layers=[3, -4, 2]), ValueError),
    ("layers", dict(layers=[3, 2.5, 2]), ANY),
    ("layers", dict(layers=[3, "4", 2]), ANY),
    ("layers", dict(layers=[3, [4], 2]), ANY),
    ("activation", dict(activation="softmax"), ValueError),     # output-only
    ("activation", dict(activation="Sigmoid"), ValueError),
    ("activation", dict(activation="logistic"), ValueError),
    ("activation", dict(activation=None), ANY),
    ("output", dict(output="leaky_relu"), ValueError),           # hidden-only
    ("output", dict(output="linear"), ValueError),
    ("output", dict(output=None), ANY),
    ("loss", dict(loss="nll"), ValueError),
    ("loss", dict(loss="MSE"), ValueError),
    ("loss", dict(loss=None), ANY),
    ("dtype", dict(dtype="float16"), ValueError),
    ("dtype", dict(dtype=np.float16), ValueError),
    ("dtype", dict(dtype="int32"), ValueError),
    ("dtype", dict(dtype="complex128"), ValueError),
    ("dtype", dict(dtype="no such type"), ValueError),
    ("dtype", dict(dtype=None), ValueError),
    ("init", dict(init="uniform"), ValueError),
    ("init", dict(init="Xavier"), ValueError),
    ("init", dict(init=None), ANY),
    ("seed", dict(seed=-1), ValueError),
    ("seed", dict(seed=1.5), ANY),
    ("seed", dict(seed="0"), ANY),
]


@pytest.mark.parametrize("name,kwargs,exc", BAD_CONSTRUCTOR,
                         ids=[f"{n}={kw[n]!r}" for n, kw, _ in BAD_CONSTRUCTOR])
def test_bad_constructor_arguments(name, kwargs, exc):
    kwargs = {"layers": [3, 4, 2], **kwargs}
    with pytest.raises(exc) as info:
        bpfast.MLP(**kwargs)
    assert names(str(info.value), name), str(info.value)


@pytest.mark.parametrize("output", ["identity", "tanh", "relu"])
def test_cross_entropy_needs_a_probability_output(output):
    with pytest.raises(ValueError) as info:
        bpfast.MLP([3, 4, 2], output=output, loss="cross_entropy")
    message = str(info.value)
    assert names(message, "loss") or names(message, "output"), message
    assert output in message


def test_accepted_dtype_spellings():
    for spelling in ("float32", np.float32, np.dtype("float32"), "float64", np.float64):
        assert bpfast.MLP([2, 1], dtype=spelling).dtype == np.dtype(spelling)


# ------------------------------------------------------------ bad X

BAD_X = {
    "wrong width": np.zeros((N, N_IN + 1)),
    "one sample of wrong width": np.zeros(N_IN + 1),
    "3-d": np.zeros((N, N_IN, 1)),
    "scalar": 1.0,
    "None": None,
    "complex": X_GOOD.astype(np.complex128),
    "object": X_GOOD.astype(object),
    "str": X_GOOD.astype(str),
    "ragged": [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]],
    "NaN": _with(X_GOOD, (2, 1), np.nan),
    "+inf": _with(X_GOOD, (0, 0), np.inf),
    "-inf": _with(X_GOOD, (5, 3), -np.inf),
    "empty": np.zeros((0, N_IN)),
}

# method name -> (call with X and Y, names of X and Y in that method's errors)
DATA_METHODS = {
    "forward": (lambda net, X, Y: net.forward(X), "X", None),
    "predict": (lambda net, X, Y: net.predict(X), "X", None),
    "loss": (lambda net, X, Y: net.loss(X, Y), "X", "Y"),
    "evaluate": (lambda net, X, Y: net.evaluate(X, Y), "X", "Y"),
    "gradients": (lambda net, X, Y: net.gradients(X, Y), "X", "Y"),
    "sgd_step": (lambda net, X, Y: net.sgd_step(X, Y, 0.1), "X", "Y"),
    "fit": (lambda net, X, Y: net.fit(X, Y, epochs=1, progress=False), "X", "Y"),
    "validation_data": (lambda net, X, Y: net.fit(X_GOOD, Y_GOOD, validation_data=(X, Y),
                                                  progress=False),
                        "validation_data", "validation_data"),
}


@pytest.mark.parametrize("case", list(BAD_X))
@pytest.mark.parametrize("method", list(DATA_METHODS))
def test_bad_X_is_rejected_before_anything_changes(net, method, case):
    call, x_name, _ = DATA_METHODS[method]
    assert_rejected(net, lambda: call(net, BAD_X[case], Y_GOOD), x_name)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_values_that_overflow_float32_are_rejected():
    net = bpfast.MLP([N_IN, 5, N_OUT], output="identity", dtype="float32", seed=0)
    huge = _with(X_GOOD, (1, 1), 1e300)          # inf once converted to float32
    assert_rejected(net, lambda: net.forward(huge), "X", ValueError)
    assert_rejected(net, lambda: net.sgd_step(X_GOOD, _with(ROWS_GOOD, (0, 0), -1e300), 0.1),
                    "Y", ValueError)


# ------------------------------------------------------------ bad Y

BAD_Y = {
    "label too large": np.array([0, 1, 3, 0, 1, 2]),
    "negative label": np.array([0, -1, 2, 0, 1, 2]),
    "float labels": Y_GOOD.astype(np.float64),
    "too few labels": Y_GOOD[:-1],
    "too many labels": np.append(Y_GOOD, 0),
    "too wide targets": np.zeros((N, N_OUT + 1)),
    "too narrow targets": np.zeros((N, N_OUT - 1)),
    "too few target rows": ROWS_GOOD[:-1],
    "3-d targets": ROWS_GOOD[:, :, None],
    "scalar": 1,
    "None": None,
    "empty": np.zeros(0, dtype=np.int64),
    "NaN": _with(ROWS_GOOD, (3, 2), np.nan),
    "inf": _with(ROWS_GOOD, (0, 1), np.inf),
    "complex": ROWS_GOOD.astype(np.complex128),
    "object": Y_GOOD.astype(object),
    "str": Y_GOOD.astype(str),
}


@pytest.mark.parametrize("case", list(BAD_Y))
@pytest.mark.parametrize("method", [m for m, (_, _, y) in DATA_METHODS.items() if y])
def test_bad_Y_is_rejected_before_anything_changes(net, method, case):
    call, _, y_name = DATA_METHODS[method]
    assert_rejected(net, lambda: call(net, X_GOOD, BAD_Y[case]), y_name)


@pytest.mark.parametrize("labels", [[0, 2, 1], [-1, 0, 1], [0, 1, 5]])
def test_labels_must_be_0_or_1_with_one_output(labels):
    net = bpfast.MLP([N_IN, 3, 1], seed=0)
    X = X_GOOD[:3]
    for call in (lambda: net.loss(X, np.array(labels)),
                 lambda: net.sgd_step(X, np.array(labels), 0.1),
                 lambda: net.fit(X, np.array(labels), progress=False)):
        assert_rejected(net, call, "Y", ValueError)


def test_empty_data_everywhere(net):
    X0, y0 = np.zeros((0, N_IN)), np.zeros(0, dtype=np.int64)
    for method, (call, x_name, _) in DATA_METHODS.items():
        assert_rejected(net, lambda: call(net, X0, y0), x_name, ValueError)


# ------------------------------------------------------------ single samples: trace

@pytest.mark.parametrize("x,y,name", [
    (X_GOOD, Y_GOOD, "x"),                               # a batch, not one sample
    (np.zeros(N_IN + 1), 0, "x"),
    (_with(X_GOOD[0], 1, np.nan), 0, "x"),
    (X_GOOD[0].astype(np.complex128), 0, "x"),
    (X_GOOD[0], 3, "y"),
    (X_GOOD[0], -1, "y"),
    (X_GOOD[0], 1.0, "y"),                              # float label, nL > 1
    (X_GOOD[0], np.zeros(N_OUT + 1), "y"),
    (X_GOOD[0], np.array([np.inf, 0.0, 0.0]), "y"),
    (X_GOOD[0], "1", "y"),
])
def test_bad_trace_arguments(net, x, y, name):
    assert_rejected(net, lambda: net.trace(x, y), name)


@pytest.mark.parametrize("method", ["loss", "gradients", "sgd_step", "evaluate"])
@pytest.mark.parametrize("y", [3, -1, 1.5, np.zeros(N_OUT + 1), np.array([1, 2])])
def test_bad_single_sample_targets(net, method, y):
    call, _, y_name = DATA_METHODS[method]
    assert_rejected(net, lambda: call(net, X_GOOD[0], y), y_name)


# ------------------------------------------------------------ learning rates and options

BAD_LR = [(0, ValueError), (0.0, ValueError), (-0.1, ValueError), (np.nan, ValueError),
          (np.inf, ValueError), (-np.inf, ValueError), ("0.1", ANY), (None, ANY),
          (1j, ANY), (True, ANY), ([0.1], ANY)]


@pytest.mark.parametrize("lr,exc", BAD_LR, ids=[repr(v) for v, _ in BAD_LR])
def test_bad_lr(net, lr, exc):
    assert_rejected(net, lambda: net.sgd_step(X_GOOD, Y_GOOD, lr), "lr", exc)
    assert_rejected(net, lambda: net.fit(X_GOOD, Y_GOOD, lr=lr, progress=False), "lr", exc)
    if lr is not None:                      # trace(lr=None) means "show no update"
        assert_rejected(net, lambda: net.trace(X_GOOD[0], 1, lr=lr), "lr", exc)


BAD_FIT = [
    ("epochs", 0, ValueError), ("epochs", -1, ValueError), ("epochs", 1.5, ANY),
    ("epochs", "1", ANY), ("epochs", None, ANY),
    ("batch_size", 0, ValueError), ("batch_size", -2, ValueError), ("batch_size", 2.0, ANY),
    ("batch_size", "10", ANY), ("batch_size", None, ANY),
    ("momentum", -0.1, ValueError), ("momentum", np.nan, ValueError),
    ("momentum", np.inf, ValueError), ("momentum", "0.9", ANY), ("momentum", None, ANY),
    ("weight_decay", -1e-3, ValueError), ("weight_decay", np.nan, ValueError),
    ("weight_decay", np.inf, ValueError), ("weight_decay", "0", ANY),
    ("nesterov", "yes", ANY), ("nesterov", None, ANY),
    ("shuffle", "no", ANY), ("shuffle", None, ANY),
    ("seed", -1, ValueError), ("seed", 1.5, ANY), ("seed", "3", ANY),
    ("n_threads", 0, ValueError), ("n_threads", -1, ValueError), ("n_threads", 1.5, ANY),
    ("n_threads", "2", ANY), ("n_threads", None, ANY),
    ("progress", "yes", ANY), ("progress", 2, ANY),
    ("callbacks", 1, ANY), ("callbacks", ["not callable"], ANY), ("callbacks", [None], ANY),
    ("callbacks", "abc", ANY),
    ("validation_data", "abc", ANY), ("validation_data", X_GOOD, ANY),
    ("validation_data", (X_GOOD,), ANY), ("validation_data", (X_GOOD, Y_GOOD, X_GOOD), ANY),
    ("validation_data", 3, ANY),
]


@pytest.mark.parametrize("name,value,exc", BAD_FIT,
                         ids=[f"{n}={v!r}"[:40] for n, v, _ in BAD_FIT])
def test_bad_fit_arguments(net, name, value, exc):
    kwargs = {name: value, "progress": False} if name != "progress" else {name: value}
    assert_rejected(net, lambda: net.fit(X_GOOD, Y_GOOD, **kwargs), name, exc)


def test_nesterov_needs_momentum(net):
    with pytest.raises(ValueError) as info:
        net.fit(X_GOOD, Y_GOOD, nesterov=True, progress=False)
    assert names(str(info.value), "nesterov") or names(str(info.value), "momentum")
    assert_rejected(net, lambda: net.fit(X_GOOD, Y_GOOD, nesterov=True, momentum=0.0,
                                         progress=False), "nesterov", ValueError)


def test_bad_argument_after_good_data_trains_nothing(net):
    """The last argument checked is still checked before the first sample is seen."""
    twin = copy.deepcopy(net)
    calls = [dict(n_threads=0), dict(callbacks=[1]), dict(progress="x"),
             dict(validation_data=(X_GOOD, BAD_Y["label too large"])),
             dict(lr=np.nan), dict(momentum=-1.0)]
    for kwargs in calls:
        with pytest.raises(ANY):
            net.fit(X_GOOD, Y_GOOD, epochs=3, **{"progress": False, **kwargs})
    # momentum buffer and shuffling generator are untouched too: training goes on
    # exactly as for a twin that never saw the rejected calls.
    options = dict(epochs=2, batch_size=2, momentum=0.9, progress=False)
    net.fit(X_GOOD, Y_GOOD, **options)
    twin.fit(X_GOOD, Y_GOOD, **options)
    assert_same_params(params_snapshot(net), params_snapshot(twin))


# ------------------------------------------------------------ EarlyStopping

@pytest.mark.parametrize("name,kwargs", [
    ("patience", dict(patience=-1)), ("patience", dict(patience=1.5)),
    ("min_delta", dict(min_delta=-0.1)), ("min_delta", dict(min_delta=np.nan)),
    ("monitor", dict(monitor=3)),
])
def test_bad_early_stopping_arguments(name, kwargs):
    with pytest.raises(ANY) as info:
        bpfast.EarlyStopping(**kwargs)
    assert names(str(info.value), name), str(info.value)


def test_early_stopping_monitor_missing_from_the_history_trains_nothing(net):
    """monitor='val_loss' without validation_data can be known to fail before training."""
    stopper = bpfast.EarlyStopping(monitor="val_loss")
    assert_rejected(net, lambda: net.fit(X_GOOD, Y_GOOD, epochs=3, callbacks=[stopper],
                                         progress=False), "monitor", ValueError)


def test_a_layer_wider_than_the_kernels_int32_indices_is_a_value_error():
    """The kernel lists a layer's nonzero inputs as int32: 2**31 inputs are refused
    at construction (by the memory check first, on a machine too small to hold them)."""
    with pytest.raises(ValueError, match=r"layers"):
        bpfast.MLP([2**31, 1], dtype="float32")
