"""net.trace(x, y, lr): one sample of backpropagation, every number kept and explained.

The trace is checked three ways: against the network's own API (gradients,
loss, sgd_step on a copy), against the chain rule written out in NumPy from
the trace's own z and a, and, for the 1-1-1 worked example of the
tutorials, against the numbers a reader computes by hand.
"""

import copy
import math
import re

import numpy as np
import pytest

import bpfast

# Relative tolerances for values computed by different routes (kernel vs NumPy).
RTOL = {np.dtype(np.float64): 1e-7, np.dtype(np.float32): 1e-4}
ATOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}

CONFIGS = [
    # layers, hidden activation, output, loss
    ([4, 5, 3], "sigmoid", "sigmoid", "mse"),
    ([4, 6, 5, 3], "tanh", "softmax", "cross_entropy"),
    ([4, 5, 3], "relu", "identity", "mse"),
    ([4, 5, 3], "leaky_relu", "softmax", "mse"),
    ([4, 5, 1], "identity", "sigmoid", "cross_entropy"),
    ([4, 6, 5, 3], "sigmoid", "tanh", "mse"),
    ([4, 5, 3], "tanh", "relu", "mse"),
]
CONFIG_IDS = ["-".join([str(len(c[0]) - 1) + "L", *c[1:]]) for c in CONFIGS]


def _activate(name, z):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.01 * z)
    if name == "identity":
        return z
    if name == "softmax":
        e = np.exp(z - z.max())
        return e / e.sum()
    raise AssertionError(name)


def _derivative(name, z, a):
    """f'(z) for the elementwise activations, written with a = f(z) where the tutorials do."""
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "tanh":
        return 1.0 - a * a
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, 0.01).astype(z.dtype)
    if name == "identity":
        return np.ones_like(z)
    raise AssertionError(name)


def _chain_rule(net, tr):
    """delta[l] = dL/dz[l+1] by the chain rule, from the trace's own z, a and the weights."""
    L = len(net.layers) - 1
    W = [np.asarray(w, dtype=np.float64) for w in net.weights]
    z = [np.asarray(v, dtype=np.float64) for v in tr.z]
    a = [np.asarray(v, dtype=np.float64) for v in tr.a]
    y = np.asarray(tr.y, dtype=np.float64)
    out = a[L]
    if net.loss_name == "cross_entropy":           # softmax+CE and sigmoid+BCE
        delta_out = out - y
    elif net.output == "softmax":                  # softmax+MSE: J^T (a - y), J = diag(a) - a a^T
        jacobian = np.diag(out) - np.outer(out, out)
        delta_out = jacobian.T @ (out - y)
    else:
        delta_out = (out - y) * _derivative(net.output, z[L - 1], out)
    delta = [None] * L
    delta[L - 1] = delta_out
    for l in range(L - 2, -1, -1):
        delta[l] = (W[l + 1].T @ delta[l + 1]) * _derivative(net.activation, z[l], a[l + 1])
    return delta


def _sample(net, rng):
    x = rng.normal(size=net.layers[0])
    n_out = net.layers[-1]
    if net.loss_name == "cross_entropy" and n_out > 1:
        y = np.eye(n_out)[rng.integers(n_out)]
    else:
        y = rng.uniform(0.1, 0.9, size=n_out)
    return x, y


def _snapshot(net):
    return net._params.copy(), net._velocity.copy(), net._rng.bit_generator.state


def _assert_unchanged(net, snapshot):
    params, velocity, rng_state = snapshot
    np.testing.assert_array_equal(net._params, params)
    np.testing.assert_array_equal(net._velocity, velocity)
    assert net._rng.bit_generator.state == rng_state


@pytest.fixture(params=["float64", "float32"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=CONFIGS, ids=CONFIG_IDS)
def net(request, dtype):
    layers, activation, output, loss = request.param
    return bpfast.MLP(layers, activation, output, loss, dtype=dtype, seed=7)


# ----------------------------------------------------------------- structure and agreement


def test_trace_lists_have_one_entry_per_layer_with_the_right_shapes(net):
    rng = np.random.default_rng(0)
    x, y = _sample(net, rng)
    tr = net.trace(x, y)
    L = len(net.layers) - 1
    assert len(tr.a) == L + 1
    for name in ("z", "delta", "grad_w", "grad_b"):
        assert len(getattr(tr, name)) == L, name
    np.testing.assert_array_equal(tr.a[0], x.astype(net.dtype))
    for k, n in enumerate(net.layers):
        assert tr.a[k].shape == (n,)
    for l in range(L):
        n_in, n_out = net.layers[l], net.layers[l + 1]
        assert tr.z[l].shape == (n_out,)
        assert tr.delta[l].shape == (n_out,)
        assert tr.grad_w[l].shape == (n_out, n_in) == net.weights[l].shape
        assert tr.grad_b[l].shape == (n_out,)
        for arr in (tr.z[l], tr.a[l + 1], tr.delta[l], tr.grad_w[l], tr.grad_b[l]):
            assert arr.dtype == net.dtype
    assert isinstance(tr.loss, float)


def test_forward_values_are_z_equals_W_a_plus_b_then_f(net):
    rng = np.random.default_rng(1)
    x, y = _sample(net, rng)
    tr = net.trace(x, y)
    tol = dict(rtol=RTOL[net.dtype], atol=ATOL[net.dtype])
    L = len(net.layers) - 1
    for l in range(L):
        W = np.asarray(net.weights[l], dtype=np.float64)
        b = np.asarray(net.biases[l], dtype=np.float64)
        z = W @ tr.a[l].astype(np.float64) + b
        np.testing.assert_allclose(tr.z[l], z, **tol)
        f = net.output if l == L - 1 else net.activation
        np.testing.assert_allclose(tr.a[l + 1], _activate(f, tr.z[l].astype(np.float64)), **tol)
    np.testing.assert_allclose(tr.a[L], net.forward(x), **tol)


def test_gradients_and_loss_equal_the_networks_own_on_that_sample(net):
    rng = np.random.default_rng(2)
    x, y = _sample(net, rng)
    tr = net.trace(x, y)
    grad_w, grad_b = net.gradients(x[None, :], y[None, :])
    tol = dict(rtol=RTOL[net.dtype], atol=ATOL[net.dtype])
    for l in range(len(grad_w)):
        np.testing.assert_allclose(tr.grad_w[l], grad_w[l], **tol)
        np.testing.assert_allclose(tr.grad_b[l], grad_b[l], **tol)
    assert tr.loss == pytest.approx(net.loss(x, y), rel=RTOL[net.dtype])


def test_delta_follows_the_chain_rule_and_gradients_are_outer_products(net):
    rng = np.random.default_rng(3)
    x, y = _sample(net, rng)
    tr = net.trace(x, y)
    expected_delta = _chain_rule(net, tr)
    tol = dict(rtol=RTOL[net.dtype], atol=ATOL[net.dtype])
    for l, expected in enumerate(expected_delta):
        np.testing.assert_allclose(tr.delta[l], expected, **tol, err_msg=f"delta[{l}]")
        np.testing.assert_allclose(tr.grad_b[l], tr.delta[l], **tol)
        np.testing.assert_allclose(
            tr.grad_w[l], np.outer(tr.delta[l], tr.a[l]), **tol, err_msg=f"grad_w[{l}]")


def test_update_with_lr_equals_sgd_step_on_a_copy_and_leaves_the_network_alone(net):
    rng = np.random.default_rng(4)
    x, y = _sample(net, rng)
    # Give the network a non-zero momentum buffer: trace must not touch it either.
    X = rng.normal(size=(6, net.layers[0]))
    Y = np.stack([_sample(net, rng)[1] for _ in range(6)])
    net.fit(X, Y, epochs=1, lr=0.05, momentum=0.9, progress=False)
    before = _snapshot(net)
    lr = 0.3
    tr = net.trace(x, y, lr=lr)
    _assert_unchanged(net, before)

    stepped = copy.deepcopy(net)
    stepped.sgd_step(x, y, lr)
    tol = dict(rtol=RTOL[net.dtype], atol=ATOL[net.dtype])
    for l in range(len(net.layers) - 1):
        np.testing.assert_allclose(tr.new_weights[l], stepped.weights[l], **tol)
        np.testing.assert_allclose(tr.new_biases[l], stepped.biases[l], **tol)
        # ... which is W - lr * dL/dW with the trace's own gradient.
        np.testing.assert_allclose(
            tr.new_weights[l], net.weights[l] - net.dtype.type(lr) * tr.grad_w[l], **tol)
        np.testing.assert_allclose(
            tr.new_biases[l], net.biases[l] - net.dtype.type(lr) * tr.grad_b[l], **tol)
        # The trace shows the parameters it used, not views that change later.
        np.testing.assert_array_equal(tr.weights[l], net.weights[l])


def test_trace_without_lr_changes_nothing_and_has_no_update_section(net):
    rng = np.random.default_rng(5)
    x, y = _sample(net, rng)
    before = _snapshot(net)
    tr = net.trace(x, y)
    _assert_unchanged(net, before)
    assert "update" not in str(tr).lower()


def test_trace_results_are_fresh_arrays(net):
    rng = np.random.default_rng(6)
    x, y = _sample(net, rng)
    tr = net.trace(x, y)
    shown = (*tr.a, *tr.z, *tr.delta, *tr.grad_w, *tr.grad_b, *tr.weights, *tr.biases)
    kept = [arr.copy() for arr in shown]
    x2, y2 = _sample(net, rng)
    net.trace(x2, y2, lr=0.5)
    net.gradients(x2, y2)
    net.sgd_step(x2, y2, 0.5)
    for old, arr in zip(kept, shown):
        np.testing.assert_array_equal(arr, old)


def test_labels_and_one_hot_targets_give_the_same_trace(dtype):
    net = bpfast.MLP([4, 5, 3], "tanh", "softmax", "cross_entropy", dtype=dtype, seed=3)
    x = np.random.default_rng(7).normal(size=4)
    by_label = net.trace(x, 2, lr=0.1)
    by_row = net.trace(x, np.array([0.0, 0.0, 1.0]), lr=0.1)
    np.testing.assert_array_equal(by_label.y, [0.0, 0.0, 1.0])
    for name in ("a", "z", "delta", "grad_w", "grad_b", "new_weights", "new_biases"):
        for left, right in zip(getattr(by_label, name), getattr(by_row, name)):
            np.testing.assert_array_equal(left, right, err_msg=name)
    assert by_label.loss == by_row.loss
    assert str(by_label) == str(by_row)


def test_binary_label_on_one_output_is_the_target_itself():
    net = bpfast.MLP([3, 4, 1], "tanh", "sigmoid", "cross_entropy", seed=0)
    x = np.array([0.2, -0.4, 1.0])
    for label in (0, 1):
        tr = net.trace(x, label)
        np.testing.assert_array_equal(tr.y, [float(label)])
        a = float(tr.a[-1][0])
        assert tr.loss == pytest.approx(-(label * math.log(a) + (1 - label) * math.log(1 - a)),
                                        rel=1e-12)


# ----------------------------------------------------------------- the worked example


def _worked_example():
    net = bpfast.MLP([1, 1, 1], "sigmoid", "sigmoid", "mse")
    net.weights[0][:] = 0.4
    net.biases[0][:] = 0.1
    net.weights[1][:] = 0.6
    net.biases[1][:] = 0.2
    return net


def _by_hand(x=0.5, y=0.8, w1=0.4, b1=0.1, w2=0.6, b2=0.2, lr=0.1):
    """The worked example as a reader computes it, one line per step."""
    def sigmoid(v):
        return 1.0 / (1.0 + math.exp(-v))
    a1 = sigmoid(w1 * x + b1)
    y_hat = sigmoid(w2 * a1 + b2)
    loss = 0.5 * (y_hat - y) ** 2
    delta2 = (y_hat - y) * y_hat * (1 - y_hat)
    delta1 = w2 * delta2 * a1 * (1 - a1)
    return dict(a1=a1, y_hat=y_hat, loss=loss, dw2=delta2 * a1, db2=delta2, dw1=delta1 * x,
                db1=delta1, new_w2=w2 - lr * delta2 * a1, new_w1=w1 - lr * delta1 * x)


def test_worked_example_numbers_match_the_hand_computation():
    tr = _worked_example().trace([0.5], [0.8], lr=0.1)
    hand = _by_hand()
    assert tr.a[1][0] == pytest.approx(hand["a1"], rel=1e-12)
    assert tr.a[2][0] == pytest.approx(hand["y_hat"], rel=1e-12)
    assert tr.loss == pytest.approx(hand["loss"], rel=1e-12)
    assert tr.grad_w[1][0, 0] == pytest.approx(hand["dw2"], rel=1e-12)
    assert tr.grad_b[1][0] == pytest.approx(hand["db2"], rel=1e-12)
    assert tr.grad_w[0][0, 0] == pytest.approx(hand["dw1"], rel=1e-12)
    assert tr.grad_b[0][0] == pytest.approx(hand["db1"], rel=1e-12)
    assert tr.new_weights[1][0, 0] == pytest.approx(hand["new_w2"], rel=1e-12)
    assert tr.new_weights[0][0, 0] == pytest.approx(hand["new_w1"], rel=1e-12)


def test_worked_example_printout_shows_the_tutorial_numbers_in_order():
    text = str(_worked_example().trace([0.5], 0.8, lr=0.1))
    # The tutorial's values at 4 significant digits (and the hand computation agrees).
    expected = [("a1", "0.5744"), ("y_hat", "0.6329"), ("loss", "0.01396"),
                ("dw2", "-0.02230"), ("dw1", "-0.002847"), ("new_w2", "0.6022")]
    hand = _by_hand()
    for key, shown in expected:
        assert f"{hand[key]:#.4g}" == shown, key
        assert shown in text, f"{key} = {shown} missing from:\n{text}"

    lower = text.lower()
    forward = lower.index("forward")
    loss_line = text.index("0.01396")
    backward = lower.index("backward")
    update = lower.index("update")
    assert forward < loss_line < backward < update, text
    assert lower.index("loss", forward) < backward     # the loss is named before the backward pass
    # Within the sections: a1 before ŷ; the chain rule goes from the output layer down.
    assert text.index("0.5744") < text.index("0.6329") < loss_line
    assert backward < text.index("-0.02230") < text.index("-0.002847") < update
    assert update < text.index("0.6022")
    assert any("ŷ" in line and "0.6329" in line for line in text.splitlines()), text


def test_small_layers_are_spelled_out_with_the_numbers_filled_in():
    """Each step of the worked example appears as the formula a reader writes by hand."""
    text = str(_worked_example().trace([0.5], 0.8, lr=0.1))
    spelled = [
        "z⁽¹⁾₀ = 0.4000·0.5000 + 0.1000 = 0.3000",
        "a⁽¹⁾₀ = sigmoid(0.3000) = 0.5744",
        "(0.6329 − 0.8000)·0.6329·(1 − 0.6329) = -0.03882",       # output delta
        "δ⁽²⁾₀·a⁽¹⁾₀ = (-0.03882)·0.5744 = -0.02230",                  # dL/dw2
        "(0.6000·(-0.03882))·0.5744·(1 − 0.5744) = -0.005695",     # chain rule, layer 1
        "W⁽²⁾₀₀ = 0.6000 − 0.1000·(-0.02230) = 0.6022",              # update of w2
    ]
    for line in spelled:
        assert line in text, f"{line!r} missing from:\n{text}"
    positions = [text.index(line) for line in spelled]
    assert positions == sorted(positions), text


def test_large_layers_are_not_spelled_out(mnist_sized_trace):
    assert "z⁽¹⁾₀ =" not in str(mnist_sized_trace)


def test_trace_repr_is_short_and_names_the_loss():
    tr = _worked_example().trace([0.5], 0.8)
    assert "\n" not in repr(tr)
    assert "0.01396" in repr(tr)


# ----------------------------------------------------------------- large networks


@pytest.fixture(scope="module")
def mnist_sized_trace():
    net = bpfast.MLP([784, 100, 10], seed=0)
    x = np.random.default_rng(0).uniform(size=784)
    return net.trace(x, 3, lr=0.5)


def test_large_network_prints_a_summary_instead_of_every_number(mnist_sized_trace):
    text = str(mnist_sized_trace)
    assert len(text.splitlines()) < 60
    assert len(text) < 8000
    assert "(100, 784)" in text                 # shapes are named ...
    assert "norm" in text                       # ... with a size measure instead of entries
    # The arrays themselves are complete in the Trace.
    assert mnist_sized_trace.grad_w[0].shape == (100, 784)
    assert mnist_sized_trace.new_weights[0].shape == (100, 784)


def test_large_network_summary_prints_plain_indices(mnist_sized_trace):
    """Entry indices read [7, 650], not NumPy 2's repr [np.int64(7), np.int64(650)]."""
    text = str(mnist_sized_trace)
    assert "np." not in text and "int64" not in text
    assert re.search(r"\[\d+, \d+\]=", text), text


# ----------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("x, y, lr, error", [
    (np.zeros(3), 1, None, ValueError),                 # wrong input size
    (np.zeros((2, 4)), np.array([1, 2]), None, ValueError),   # two samples
    (np.zeros((0, 4)), np.zeros(0, dtype=int), None, ValueError),
    ([0.0, np.nan, 0.0, 0.0], 1, None, ValueError),
    ([0.0, np.inf, 0.0, 0.0], 1, None, ValueError),
    (["a", "b", "c", "d"], 1, None, TypeError),
    (np.zeros(4), 3, None, ValueError),                 # label out of range
    (np.zeros(4), -1, None, ValueError),
    (np.zeros(4), np.zeros(2), None, ValueError),       # target of the wrong size
    (np.zeros(4), [0.0, np.nan, 1.0], None, ValueError),
    (np.zeros(4), "1", None, TypeError),
    (np.zeros(4), 1, 0.0, ValueError),
    (np.zeros(4), 1, -0.1, ValueError),
    (np.zeros(4), 1, float("nan"), ValueError),
    (np.zeros(4), 1, float("inf"), ValueError),
    (np.zeros(4), 1, "0.1", TypeError),
    (np.zeros(4), 1, True, TypeError),
])
def test_bad_arguments_are_rejected_and_nothing_changes(x, y, lr, error):
    net = bpfast.MLP([4, 5, 3], "tanh", "softmax", "cross_entropy", seed=0)
    before = _snapshot(net)
    with pytest.raises(error):
        net.trace(x, y, lr=lr)
    _assert_unchanged(net, before)


def test_error_message_names_the_argument():
    net = bpfast.MLP([4, 5, 3], seed=0)
    with pytest.raises(ValueError, match=re.escape("lr")):
        net.trace(np.zeros(4), 1, lr=-1.0)
    with pytest.raises(ValueError, match=r"\bx\b"):
        net.trace(np.zeros(5), 1)
    with pytest.raises(ValueError, match=r"\by\b"):
        net.trace(np.zeros(4), 7)
