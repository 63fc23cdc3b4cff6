"""The public API of bpfast.MLP behaves as the contract, docs/design.md, promises.

Construction and initialisation, the parameter views, forward/predict/loss/
evaluate on every accepted form of input and target, input conversion
without side effects, fresh result arrays, fit's History and callbacks,
EarlyStopping, reproducibility (seeds and threads) and pickling.
"""

import copy
import pickle
import tracemalloc

import numpy as np
import pytest

import bpfast
from conftest import RTOL, assert_same_params, params_snapshot
from reference import ReferenceMLP, sigmoid

HIDDEN = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
OUTPUT_LOSS = [("sigmoid", "mse"), ("softmax", "mse"), ("identity", "mse"), ("tanh", "mse"),
               ("relu", "mse"), ("sigmoid", "cross_entropy"), ("softmax", "cross_entropy")]
INITS = ("auto", "xavier", "he", "normal", "scaled_normal")


def n_params_of(layers):
    return sum((n_in + 1) * n_out for n_in, n_out in zip(layers[:-1], layers[1:]))


@pytest.fixture(scope="module")
def blobs():
    """A small 3-class problem: (X_train, y_train, X_val, y_val)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 2.0, size=(3, 4))
    y = rng.integers(0, 3, size=60)
    X = centres[y] + rng.normal(size=(60, 4))
    return X[:40], y[:40], X[40:], y[40:]


def classifier(dtype="float64", seed=0, **kw):
    kw = {"activation": "tanh", "output": "softmax", "loss": "cross_entropy", **kw}
    return bpfast.MLP([4, 8, 3], dtype=dtype, seed=seed, **kw)


# ------------------------------------------------------------ construction

@pytest.mark.parametrize("output,loss", OUTPUT_LOSS)
@pytest.mark.parametrize("activation", HIDDEN)
def test_construction_with_every_activation_output_and_loss(activation, output, loss, dtype):
    layers = [5, 4, 3, 2]
    net = bpfast.MLP(layers, activation=activation, output=output, loss=loss, dtype=dtype,
                     seed=0)
    assert list(net.layers) == layers
    assert net.n_params == n_params_of(layers)
    assert net.dtype == np.dtype(dtype)
    assert isinstance(net.weights, tuple) and isinstance(net.biases, tuple)
    assert [W.shape for W in net.weights] == [(4, 5), (3, 4), (2, 3)]
    assert [b.shape for b in net.biases] == [(4,), (3,), (2,)]
    for p in net.weights + net.biases:
        assert p.dtype == np.dtype(dtype)
        assert p.flags.writeable
        assert np.all(np.isfinite(p))
    X = np.random.default_rng(1).normal(size=(6, 5))
    ref = ReferenceMLP.like(net, activation, output, loss)
    np.testing.assert_allclose(net.forward(X), ref.forward(X), rtol=RTOL[dtype],
                               atol=RTOL[dtype])


@pytest.mark.parametrize("init", INITS)
def test_construction_with_every_init(init, dtype):
    net = bpfast.MLP([6, 5, 2], init=init, dtype=dtype, seed=3)
    assert net.n_params == n_params_of([6, 5, 2])
    assert net.dtype == np.dtype(dtype)
    assert all(np.all(np.isfinite(p)) for p in net.weights + net.biases)


def test_constructor_defaults_are_the_tutorial_network():
    """MLP(layers) is sigmoid hidden, sigmoid output, mse loss, float64."""
    net = bpfast.MLP([3, 4, 2], seed=0)
    assert net.dtype == np.float64
    X = np.random.default_rng(2).normal(size=(5, 3))
    Y = np.random.default_rng(3).uniform(size=(5, 2))
    ref = ReferenceMLP.like(net, "sigmoid", "sigmoid", "mse")
    np.testing.assert_allclose(net.forward(X), ref.forward(X), rtol=1e-12)
    np.testing.assert_allclose(net.loss(X, Y), ref.loss(X, Y), rtol=1e-12)


def test_layers_accepts_any_integer_sequence_and_is_not_aliased():
    net = bpfast.MLP((3, np.int64(4), np.int32(2)), seed=0)
    assert list(net.layers) == [3, 4, 2]
    sizes = net.layers
    try:
        sizes[0] = 99
    except TypeError:
        pass
    assert list(net.layers) == [3, 4, 2]


def test_network_without_hidden_layer():
    net = bpfast.MLP([3, 2], output="softmax", loss="cross_entropy", seed=0)
    assert len(net.weights) == 1 and net.weights[0].shape == (2, 3)
    X = np.random.default_rng(0).normal(size=(4, 3))
    ref = ReferenceMLP.like(net, "sigmoid", "softmax", "cross_entropy")
    np.testing.assert_allclose(net.forward(X), ref.forward(X), rtol=1e-12)


# ------------------------------------------------------------ initialisation

N_IN, N_OUT = 500, 400          # 200 000 weights: sample moments within ~0.3 %


def assert_xavier(W, b, n_in, n_out):
    limit = np.sqrt(6.0 / (n_in + n_out))
    assert np.max(np.abs(W)) <= limit
    assert np.max(np.abs(W)) > 0.99 * limit           # the whole interval is used
    assert abs(W.mean()) < 5 * limit / np.sqrt(3 * W.size)
    assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert np.all(b == 0)


def assert_normal(W, std):
    assert abs(W.mean()) < 5 * std / np.sqrt(W.size)
    assert W.std() == pytest.approx(std, rel=0.02)
    assert np.max(np.abs(W)) > 3 * std               # Gaussian tails, not a bounded law


def assert_he(W, b, n_in):
    assert_normal(W, np.sqrt(2.0 / n_in))
    assert np.all(b == 0)


def test_xavier_init():
    net = bpfast.MLP([N_IN, N_OUT], init="xavier", seed=0)
    assert_xavier(net.weights[0], net.biases[0], N_IN, N_OUT)


def test_he_init():
    net = bpfast.MLP([N_IN, N_OUT], init="he", seed=0)
    assert_he(net.weights[0], net.biases[0], N_IN)


def test_scaled_normal_init():
    net = bpfast.MLP([N_IN, N_OUT], init="scaled_normal", seed=0)
    assert_normal(net.weights[0], np.sqrt(1.0 / N_IN))
    b = net.biases[0]
    assert b.std() == pytest.approx(1.0, rel=0.15)     # 400 draws of N(0, 1)
    assert abs(b.mean()) < 0.25


def test_normal_init():
    net = bpfast.MLP([N_IN, N_OUT], init="normal", seed=0)
    assert_normal(net.weights[0], 1.0)
    b = net.biases[0]
    assert b.std() == pytest.approx(1.0, rel=0.15)
    assert abs(b.mean()) < 0.25


def test_init_statistics_hold_in_float32():
    net = bpfast.MLP([N_IN, N_OUT], init="xavier", dtype="float32", seed=0)
    assert net.weights[0].dtype == np.float32
    assert_xavier(net.weights[0].astype(np.float64), net.biases[0], N_IN, N_OUT)


@pytest.mark.parametrize("activation,output,expected", [
    ("relu", "sigmoid", ["he", "he", "xavier"]),
    ("leaky_relu", "softmax", ["he", "he", "xavier"]),
    ("tanh", "relu", ["xavier", "xavier", "he"]),
    ("sigmoid", "identity", ["xavier", "xavier", "xavier"]),
    ("identity", "tanh", ["xavier", "xavier", "xavier"]),
])
def test_auto_init_chooses_per_layer(activation, output, expected):
    """Hidden layers by `activation`, the output layer by `output`."""
    n = 300
    loss = "cross_entropy" if output == "softmax" else "mse"
    net = bpfast.MLP([n, n, n, n], activation=activation, output=output, loss=loss,
                     init="auto", seed=0)
    for W, b, kind in zip(net.weights, net.biases, expected):
        if kind == "he":
            assert_he(W, b, n)
        else:
            assert_xavier(W, b, n, n)


def test_same_seed_same_initial_weights_and_different_seed_different(dtype):
    a = bpfast.MLP([5, 7, 3], init="normal", dtype=dtype, seed=42)
    b = bpfast.MLP([5, 7, 3], init="normal", dtype=dtype, seed=42)
    c = bpfast.MLP([5, 7, 3], init="normal", dtype=dtype, seed=43)
    assert_same_params(params_snapshot(a), params_snapshot(b))
    assert not np.array_equal(a.weights[0], c.weights[0])


# ------------------------------------------------------------ parameter views

def test_weights_and_biases_are_writable_views(dtype):
    net = bpfast.MLP([3, 4, 2], dtype=dtype, seed=0)
    x = np.array([0.3, -1.2, 0.8])
    before = net.forward(x)
    net.weights[0][:] = 0.0
    net.biases[0][:] = 0.0
    net.weights[1][:] = [[1, 2, 3, 4], [-1, 0, 1, 0.5]]
    net.biases[1][...] = [0.25, -0.5]
    hidden = np.full(4, 0.5)                          # σ(0)
    expected = sigmoid(np.array([[1, 2, 3, 4], [-1, 0, 1, 0.5]]) @ hidden + [0.25, -0.5])
    after = net.forward(x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expected, rtol=RTOL[dtype])
    # element-wise assignment goes to the same memory
    net.weights[1][0, 0] = -3.0
    assert net.weights[1][0, 0] == -3.0
    assert net.forward(x)[0] < after[0]


def test_views_show_updates_made_by_training(dtype):
    net = bpfast.MLP([3, 4, 2], dtype=dtype, seed=0)
    W0, b1 = net.weights[0], net.biases[1]
    W0_before, b1_before = W0.copy(), b1.copy()
    net.sgd_step(np.ones((2, 3)), np.array([0, 1]), 0.5)
    assert not np.array_equal(W0, W0_before) and not np.array_equal(b1, b1_before)
    np.testing.assert_array_equal(W0, net.weights[0])
    np.testing.assert_array_equal(b1, net.biases[1])


def test_replacing_an_element_of_weights_or_biases_is_a_type_error():
    net = bpfast.MLP([3, 4, 2], seed=0)
    with pytest.raises(TypeError):
        net.weights[0] = np.zeros((4, 3))
    with pytest.raises(TypeError):
        net.biases[1] = np.zeros(2)
    assert np.any(net.weights[0] != 0)


# ------------------------------------------------------------ forward and predict

def test_forward_shapes_and_dtype(dtype):
    net = bpfast.MLP([3, 5, 4], output="softmax", loss="cross_entropy", dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 3))
    out = net.forward(X)
    assert out.shape == (7, 4) and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=RTOL[dtype])
    one = net.forward(X[2])
    assert one.shape == (4,) and one.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(one, out[2])
    assert net.forward(X[2:3]).shape == (1, 4)
    ref = ReferenceMLP.like(net, "sigmoid", "softmax", "cross_entropy")
    np.testing.assert_allclose(out, ref.forward(X), rtol=RTOL[dtype], atol=RTOL[dtype])


def test_predict_is_argmax(dtype):
    net = bpfast.MLP([3, 5, 4], dtype=dtype, seed=1)
    X = np.random.default_rng(1).normal(size=(9, 3))
    classes = net.predict(X)
    assert classes.shape == (9,) and classes.dtype.kind == "i"
    np.testing.assert_array_equal(classes, net.forward(X).argmax(axis=1))
    one = net.predict(X[4])
    assert isinstance(one, (int, np.integer)) and not isinstance(one, bool)
    assert one == classes[4]
    assert net.predict(X[4:5]).shape == (1,)


def test_predict_with_one_output_thresholds_at_one_half():
    net = bpfast.MLP([2, 1], seed=0)                  # one sigmoid output
    net.weights[0][:] = 0.0
    X = np.array([[1.0, 2.0], [-3.0, 0.5]])
    for bias, expected in ((0.0, 1), (-1e-6, 0), (1e-6, 1)):   # σ(0) = 0.5 -> class 1
        net.biases[0][:] = bias
        np.testing.assert_array_equal(net.predict(X), [expected, expected])
        assert net.predict(X[0]) == expected
    net.weights[0][:] = [[1.0, 0.0]]
    net.biases[0][:] = 0.0
    np.testing.assert_array_equal(net.predict(X), [1, 0])


# ------------------------------------------------------------ loss and evaluate

def test_evaluate_with_labels_reports_loss_and_accuracy(blobs, dtype):
    X, y, _, _ = blobs
    net = classifier(dtype)
    result = net.evaluate(X, y)
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(net.loss(X, y), rel=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(net.predict(X) == y), abs=1e-12)
    assert net.evaluate(X, np.eye(3)[y]) == result          # one-hot rows are labels


def test_evaluate_with_real_targets_reports_loss_only(dtype):
    net = bpfast.MLP([3, 4, 2], output="identity", dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    result = net.evaluate(X, Y)
    assert set(result) == {"loss"}
    ref = ReferenceMLP.like(net, "sigmoid", "identity", "mse")
    assert result["loss"] == pytest.approx(ref.loss(X, Y), rel=RTOL[dtype])


def test_evaluate_with_one_output_and_binary_labels():
    net = bpfast.MLP([3, 4, 1], output="sigmoid", loss="cross_entropy", seed=0)
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(8, 3)), rng.integers(0, 2, size=8)
    result = net.evaluate(X, y)
    assert set(result) == {"loss", "accuracy"}
    assert result["accuracy"] == pytest.approx(np.mean(net.predict(X) == y), abs=1e-12)


# ------------------------------------------------------------ target forms

@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint64])
def test_integer_labels_of_any_integer_dtype(label_dtype):
    net = classifier()
    X = np.random.default_rng(0).normal(size=(5, 4))
    y = np.array([0, 2, 1, 2, 0])
    ref = ReferenceMLP.like(net, "tanh", "softmax", "cross_entropy")
    assert net.loss(X, y.astype(label_dtype)) == pytest.approx(ref.loss(X, y), rel=1e-12)


def test_real_target_rows(dtype):
    net = bpfast.MLP([4, 6, 3], dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 4)), rng.uniform(size=(5, 3))
    ref = ReferenceMLP.like(net, "sigmoid", "sigmoid", "mse")
    assert net.loss(X, Y) == pytest.approx(ref.loss(X, Y), rel=RTOL[dtype])


def test_float_vector_targets_when_one_output(dtype):
    net = bpfast.MLP([4, 6, 1], output="identity", dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 4)), rng.normal(size=5)
    assert net.loss(X, y) == net.loss(X, y[:, None])
    ref = ReferenceMLP.like(net, "sigmoid", "identity", "mse")
    assert net.loss(X, y) == pytest.approx(ref.loss(X, y[:, None]), rel=RTOL[dtype])


def test_single_sample_targets(dtype):
    net = classifier(dtype)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 4))
    for label in (2, np.int64(2), np.uint8(2)):
        assert net.loss(X[0], label) == net.loss(X[:1], np.array([2]))
    target = np.array([0.2, 0.3, 0.5])
    assert net.loss(X[0], target) == net.loss(X[:1], target[None, :])
    assert set(net.evaluate(X[0], 1)) == {"loss", "accuracy"}


def test_single_sample_targets_with_one_output():
    net = bpfast.MLP([4, 3, 1], seed=0)
    x = np.random.default_rng(0).normal(size=4)
    assert net.loss(x, 1) == net.loss(x[None, :], np.array([1]))
    assert net.loss(x, np.array([0.3])) == net.loss(x[None, :], np.array([[0.3]]))


def test_python_lists_are_accepted():
    net = classifier()
    X = [[0.0, 1.0, 2.0, 3.0], [1.0, -1.0, 0.5, 0.0]]
    y = [2, 0]
    assert net.loss(X, y) == net.loss(np.array(X), np.array(y))
    assert net.forward(X).shape == (2, 3)


# ------------------------------------------------------------ input conversion

def _input_variants(X):
    """X in other dtypes and layouts, each paired with its canonical float64 C array."""
    Xi = np.round(X * 3).astype(np.int64)
    F = np.asfortranarray(X)
    wide = np.zeros((X.shape[0] * 2, X.shape[1] * 2))
    wide[::2, ::2] = X
    strided = wide[::2, ::2]
    readonly = X.copy()
    readonly.setflags(write=False)
    return {
        "int64": (Xi, Xi.astype(np.float64)),
        "int32": (Xi.astype(np.int32), Xi.astype(np.float64)),
        "float32": (X.astype(np.float32), X.astype(np.float32).astype(np.float64)),
        "fortran": (F, X),
        "strided": (strided, X),
        "readonly": (readonly, X),
    }


@pytest.mark.parametrize("variant", ["int64", "int32", "float32", "fortran", "strided",
                                     "readonly"])
def test_inputs_of_any_dtype_and_layout_are_converted(variant, dtype, blobs):
    X, y, _, _ = blobs
    given, canonical = _input_variants(X[:10])[variant]
    canonical = canonical.astype(dtype)
    y = y[:10]
    net = classifier(dtype)
    np.testing.assert_array_equal(net.forward(given), net.forward(canonical))
    np.testing.assert_array_equal(net.predict(given), net.predict(canonical))
    assert net.loss(given, y) == net.loss(canonical, y)
    g1, g2 = net.gradients(given, y), net.gradients(canonical, y)
    for a, b in zip(g1[0] + g1[1], g2[0] + g2[1]):
        np.testing.assert_array_equal(a, b)
    twin = classifier(dtype)
    net.fit(given, y, epochs=1, batch_size=3, seed=0, progress=False)
    twin.fit(canonical, y, epochs=1, batch_size=3, seed=0, progress=False)
    assert_same_params(params_snapshot(net), params_snapshot(twin))


@pytest.mark.parametrize("variant", ["fortran", "strided", "readonly"])
def test_targets_of_any_layout_are_converted(variant, dtype):
    net = bpfast.MLP([4, 5, 3], output="identity", dtype=dtype, seed=0)
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    given, canonical = _input_variants(Y)[variant]
    assert net.loss(X, given) == net.loss(X, canonical)
    labels = np.array([0, 1, 2, 2, 1, 0], dtype=np.int32)
    labels.setflags(write=False)
    clf = classifier(dtype)
    assert clf.loss(X, labels) == clf.loss(X, labels.astype(np.int64))


def _peak_allocation(call):
    """Peak bytes allocated (NumPy buffers included) while call() runs."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("method", ["forward", "loss", "evaluate", "gradients", "sgd_step",
                                    "fit"])
def test_data_in_the_network_dtype_is_not_copied(method, dtype):
    """C-contiguous data of the network's dtype is used in place; other layouts are
    copied once (the control that shows the measurement sees a copy)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 50)).astype(dtype)          # 4-8 MB
    y = (X[:, 0] > 0).astype(np.int64)
    net = bpfast.MLP([50, 2], dtype=dtype, seed=0)
    calls = {
        "forward": lambda X: net.forward(X),
        "loss": lambda X: net.loss(X, y),
        "evaluate": lambda X: net.evaluate(X, y),
        "gradients": lambda X: net.gradients(X, y),
        "sgd_step": lambda X: net.sgd_step(X, y, 0.01),
        "fit": lambda X: net.fit(X, y, epochs=1, batch_size=100, progress=False),
    }
    assert _peak_allocation(lambda: calls[method](X)) < 0.5 * X.nbytes
    assert _peak_allocation(lambda: calls[method](np.asfortranarray(X))) >= X.nbytes


def _frozen_copies(*arrays):
    return [np.array(a, copy=True) for a in arrays]


def test_inputs_are_never_written_to(blobs):
    X, y, Xv, yv = (np.array(a) for a in blobs)
    Y_rows = np.eye(3)[y] * 0.9 + 0.03                     # soft targets: a rows path
    originals = _frozen_copies(X, y, Xv, yv, Y_rows)
    net = classifier()
    net.forward(X)
    net.predict(X)
    net.loss(X, y)
    net.evaluate(X, Y_rows)
    net.gradients(X, Y_rows)
    net.sgd_step(X, y, 0.1)
    net.sgd_step(X, Y_rows, 0.1)
    net.trace(X[0], y[0], lr=0.1)
    net.fit(X, y, epochs=2, batch_size=4, momentum=0.5, validation_data=(Xv, yv),
            progress=False)
    net.fit(X, Y_rows, epochs=1, batch_size=1, progress=False)
    for now, before in zip((X, y, Xv, yv, Y_rows), originals):
        np.testing.assert_array_equal(now, before, strict=True)


def test_read_only_arrays_work_everywhere(blobs, dtype):
    X, y, Xv, yv = blobs
    frozen = []
    for a in (X, y, Xv, yv):
        a = np.array(a, dtype=dtype if a.dtype.kind == "f" else None)
        a.setflags(write=False)
        frozen.append(a)
    X, y, Xv, yv = frozen
    net = classifier(dtype)
    net.forward(X)
    net.predict(X[0])
    net.evaluate(X, y)
    net.gradients(X, y)
    net.sgd_step(X, y, 0.1)
    net.trace(X[0], y[0])
    hist = net.fit(X, y, epochs=1, batch_size=5, validation_data=(Xv, yv), progress=False)
    assert "val_loss" in hist.history[0]


# ------------------------------------------------------------ fresh results

def test_results_are_fresh_arrays(dtype):
    net = bpfast.MLP([4, 5, 3], dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X1, X2 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    y1, y2 = np.array([0, 1, 2]), np.array([2, 2, 0])
    internals = net.weights + net.biases

    out1 = net.forward(X1)
    kept = out1.copy()
    out2 = net.forward(X2)
    np.testing.assert_array_equal(out1, kept)
    assert not np.shares_memory(out1, out2)

    g1 = net.gradients(X1, y1)
    kept_g = [g.copy() for g in g1[0] + g1[1]]
    g2 = net.gradients(X2, y2)
    for g, k in zip(g1[0] + g1[1], kept_g):
        np.testing.assert_array_equal(g, k)
    for g in g1[0] + g1[1] + g2[0] + g2[1] + [out1, out2]:
        assert g.dtype == np.dtype(dtype)
        assert not any(np.shares_memory(g, p) for p in internals)
    for a in g1[0] + g1[1]:
        assert not any(np.shares_memory(a, b) for b in g2[0] + g2[1])
    # writing into results changes nothing inside the network
    snapshot = params_snapshot(net)
    out1[...] = 7.0
    for g in g1[0] + g1[1]:
        g[...] = 7.0
    assert_same_params(snapshot, params_snapshot(net))
    np.testing.assert_array_equal(net.forward(X2), out2)
    g3 = net.gradients(X2, y2)
    for a, b in zip(g3[0] + g3[1], g2[0] + g2[1]):
        np.testing.assert_array_equal(a, b)


def test_trace_results_are_fresh():
    net = bpfast.MLP([3, 4, 2], seed=0)
    x = np.array([0.1, 0.2, 0.3])
    tr = net.trace(x, 1)
    a_kept = [a.copy() for a in tr.a]
    net.trace(-x, 0)
    net.forward(np.ones((5, 3)))
    for a, k in zip(tr.a, a_kept):
        np.testing.assert_array_equal(a, k)
    assert not any(np.shares_memory(a, p) for a in tr.a + tr.grad_w
                   for p in net.weights + net.biases)


# ------------------------------------------------------------ fit and History

CLASSIFICATION_KEYS = {"loss", "accuracy", "lr", "seconds", "samples_per_s"}


def test_history_keys_for_classification(blobs):
    X, y, Xv, yv = blobs
    net = classifier()
    hist = net.fit(X, y, epochs=3, batch_size=4, validation_data=(Xv, yv), progress=False)
    assert net.history is hist
    assert len(hist.history) == 3
    for row in hist.history:
        assert set(row) == CLASSIFICATION_KEYS | {"val_loss", "val_accuracy"}
        assert row["seconds"] >= 0 and row["samples_per_s"] > 0
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["val_accuracy"] <= 1
    last = net.evaluate(Xv, yv)
    assert hist.history[-1]["val_loss"] == pytest.approx(last["loss"], rel=1e-12)
    assert hist.history[-1]["val_accuracy"] == pytest.approx(last["accuracy"], abs=1e-12)
    assert hist.history[-1]["loss"] < hist.history[0]["loss"]   # it learns

    hist = net.fit(X, np.eye(3)[y], epochs=1, progress=False)  # one-hot rows classify too
    assert set(hist.history[0]) == CLASSIFICATION_KEYS
    assert net.history is hist


def test_history_keys_for_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    Y = np.stack([X.sum(axis=1), X[:, 0] - X[:, 1]], axis=1)
    net = bpfast.MLP([3, 6, 2], activation="tanh", output="identity", seed=0)
    hist = net.fit(X[:20], Y[:20], epochs=2, lr=0.01, progress=False)
    assert [set(row) for row in hist.history] == [{"loss", "lr", "seconds", "samples_per_s"}] * 2
    hist = net.fit(X[:20], Y[:20], epochs=1, lr=0.01, validation_data=(X[20:], Y[20:]),
                   progress=False)
    assert set(hist.history[0]) == {"loss", "val_loss", "lr", "seconds", "samples_per_s"}


def test_epoch_loss_is_measured_before_each_update(blobs, dtype):
    """History loss/accuracy: running means over samples, each before its own update."""
    X, y, _, _ = blobs
    # one full batch: the epoch's loss is the loss before the only update
    net = classifier(dtype)
    before = net.evaluate(X, y)
    hist = net.fit(X, y, epochs=1, batch_size=len(X), lr=0.5, shuffle=False, progress=False)
    assert hist.history[0]["loss"] == pytest.approx(before["loss"], rel=RTOL[dtype])
    assert hist.history[0]["accuracy"] == pytest.approx(before["accuracy"], abs=1e-12)
    # batches of one: the mean of what sgd_step reports before each update
    net, manual = classifier(dtype), classifier(dtype)
    hist = net.fit(X, y, epochs=1, batch_size=1, lr=0.5, shuffle=False, progress=False)
    losses = [manual.sgd_step(X[i], y[i], 0.5) for i in range(len(X))]
    assert hist.history[0]["loss"] == pytest.approx(np.mean(losses), rel=RTOL[dtype])


def test_callbacks_are_called_with_epoch_and_logs(blobs):
    X, y, Xv, yv = blobs
    calls, also = [], []
    net = classifier()
    hist = net.fit(X, y, epochs=3, validation_data=(Xv, yv), progress=False,
                   callbacks=[lambda epoch, logs: calls.append((epoch, dict(logs))),
                              lambda epoch, logs: also.append(epoch) or True])
    assert [epoch for epoch, _ in calls] == [0, 1, 2]
    assert also == [0, 1, 2]
    assert [logs for _, logs in calls] == hist.history


def test_callback_returning_false_stops_training(blobs):
    X, y, _, _ = blobs
    seen = []

    def stop_after_second(epoch, logs):
        seen.append(epoch)
        return epoch < 1          # False after epoch 1

    net = classifier()
    hist = net.fit(X, y, epochs=10, callbacks=[stop_after_second], shuffle=False,
                   progress=False)
    assert seen == [0, 1] and len(hist.history) == 2
    # training really stopped after two epochs
    twin = classifier()
    twin.fit(X, y, epochs=2, shuffle=False, progress=False)
    assert_same_params(params_snapshot(net), params_snapshot(twin))


@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping(blobs, restore_best):
    """min_delta so large that only the first epoch counts as an improvement."""
    X, y, Xv, yv = blobs
    stopper = bpfast.EarlyStopping(monitor="val_loss", patience=2, min_delta=1e9,
                                   restore_best=restore_best)
    net = classifier()
    hist = net.fit(X, y, epochs=20, lr=0.2, shuffle=False, validation_data=(Xv, yv),
                   callbacks=[stopper], progress=False)
    assert len(hist.history) == 3                    # best epoch, then `patience` more
    twin = classifier()
    twin.fit(X, y, epochs=1 if restore_best else 3, lr=0.2, shuffle=False, progress=False)
    assert_same_params(params_snapshot(net), params_snapshot(twin))


def test_early_stopping_on_accuracy_monitors_a_maximum(blobs):
    X, y, Xv, yv = blobs
    stopper = bpfast.EarlyStopping(monitor="val_accuracy", patience=1, min_delta=2.0)
    hist = classifier().fit(X, y, epochs=10, validation_data=(Xv, yv), callbacks=[stopper],
                            progress=False)
    assert len(hist.history) == 2


# ------------------------------------------------------------ reproducibility

def test_fit_with_seed_is_reproducible_and_ignores_the_network_generator(blobs, dtype):
    X, y, _, _ = blobs
    a = classifier(dtype, seed=0)
    b = classifier(dtype, seed=1)                    # another generator ...
    for dst, src in zip(b.weights + b.biases, a.weights + a.biases):
        dst[...] = src                               # ... same parameters
    c = copy.deepcopy(a)
    a.fit(X, y, epochs=2, seed=5, progress=False)
    b.fit(X, y, epochs=2, seed=5, progress=False)
    c.fit(X, y, epochs=2, seed=6, progress=False)
    assert_same_params(params_snapshot(a), params_snapshot(b))
    assert not np.array_equal(a.weights[0], c.weights[0])   # the order matters


def test_same_seed_twice_gives_bit_identical_weights(blobs, dtype):
    X, y, Xv, yv = blobs

    def train():
        net = classifier(dtype, seed=123, init="normal")
        net.fit(X, y, epochs=2, batch_size=3, momentum=0.9, nesterov=True,
                weight_decay=1e-3, validation_data=(Xv, yv), progress=False)
        net.fit(X, y, epochs=1, batch_size=1, progress=False)   # the net's generator again
        return params_snapshot(net)

    assert_same_params(train(), train())


def test_unseeded_fit_draws_from_the_network_generator(blobs):
    """fit(seed=None) continues the generator seeded by MLP(seed=) from call to call."""
    X, y, _, _ = blobs
    one_call, two_calls = classifier(seed=9), classifier(seed=9)
    one_call.fit(X, y, epochs=2, progress=False)
    two_calls.fit(X, y, epochs=1, progress=False)
    two_calls.fit(X, y, epochs=1, progress=False)
    assert_same_params(params_snapshot(one_call), params_snapshot(two_calls))
    # same parameters, another generator: another order, other weights
    other = classifier(seed=10)
    start = classifier(seed=9)
    for dst, src in zip(other.weights + other.biases, start.weights + start.biases):
        dst[...] = src
    start.fit(X, y, epochs=1, progress=False)
    other.fit(X, y, epochs=1, progress=False)
    assert not np.array_equal(start.weights[0], other.weights[0])


def test_threads_are_deterministic_and_agree_with_one_thread(blobs, dtype):
    X, y, _, _ = blobs

    def train(n_threads):
        net = classifier(dtype, seed=4)
        net.fit(X, y, epochs=3, batch_size=8, momentum=0.5, seed=2, n_threads=n_threads,
                progress=False)
        return params_snapshot(net)

    two = train(2)
    assert_same_params(two, train(2))
    for a, b in zip(two, train(1)):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype],
                                   atol=RTOL[dtype] * np.max(np.abs(b)))
    # more threads than samples in a batch is fine
    net = classifier(dtype, seed=4)
    net.fit(X, y, epochs=1, batch_size=3, n_threads=4, progress=False)


# ------------------------------------------------------------ pickling

@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_round_trip_is_by_value(how, blobs, dtype):
    X, y, _, _ = blobs
    net = classifier(dtype, seed=0)
    net.fit(X, y, epochs=1, batch_size=4, momentum=0.9, progress=False)   # momentum buffer
    clone = (pickle.loads(pickle.dumps(net, protocol=pickle.HIGHEST_PROTOCOL))
             if how == "pickle" else copy.deepcopy(net))
    assert list(clone.layers) == list(net.layers)
    assert clone.dtype == net.dtype and clone.n_params == net.n_params
    assert_same_params(params_snapshot(net), params_snapshot(clone))
    np.testing.assert_array_equal(clone.forward(X), net.forward(X))
    assert clone.loss(X, y) == net.loss(X, y)
    for p in clone.weights + clone.biases:
        assert p.flags.writeable
        assert not any(np.shares_memory(p, q) for q in net.weights + net.biases)

    # training continues identically: momentum buffer and generator travel along
    net.fit(X, y, epochs=1, batch_size=4, momentum=0.9, progress=False)
    clone.fit(X, y, epochs=1, batch_size=4, momentum=0.9, progress=False)
    assert_same_params(params_snapshot(net), params_snapshot(clone))

    # and the two are independent; the clone's views still drive the clone
    before = net.forward(X)
    clone.weights[0][:] = 0.0
    clone.biases[0][:] = 0.0
    np.testing.assert_array_equal(net.forward(X), before)
    out = clone.forward(X)
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape))   # input ignored


# ------------------------------------------------------------ memory layout

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_kernel_buffer_starts_a_cache_line(dtype):
    """The kernel's SIMD rows are whole registers long, so in a buffer that
    starts a cache line none of its accesses straddles two (the kernel's
    aligned_zeros, _buffers.pxi); NumPy alone promises 16 bytes, which made a
    small network's step ~12% slower for half of all allocations."""
    from bpfast import _dispatch, optim
    ALIGN = _dispatch.kernel.ALIGN

    def aligned(a, boundary=ALIGN):
        return a.ctypes.data % boundary == 0

    nets = []
    for seed in range(8):           # several allocations, so that luck cannot pass
        net = bpfast.MLP([5, 7, 3], activation="tanh", output="softmax",
                         loss="cross_entropy", dtype=dtype, seed=seed)
        X = np.random.default_rng(seed).normal(size=(9, 5)).astype(dtype)
        y = np.arange(9) % 3
        net.fit(X, y, epochs=1, batch_size=4, n_threads=1, progress=False)
        net.fit(X, y, epochs=1, batch_size=4, n_threads=2, progress=False)
        opt = optim.Adam(lr=1e-3)
        net.step(X[0], 1, opt)
        net.sgd_step(X[0], 1, 0.1)
        nets += [net, copy.deepcopy(net), pickle.loads(pickle.dumps(net))]
        buffers = [net._params, net._velocity, opt._state]
        rows = []
        for grad, ws, _ in net._workspaces.values():
            buffers += [grad, ws]
            rows += list(grad) + list(ws)   # every thread's: whole rows of 8 entries
        assert all(aligned(b) for b in buffers)
        assert all(aligned(r, 32) for r in rows)    # an AVX2 register never straddles
    assert all(aligned(n._params) and aligned(n._velocity) for n in nets)
