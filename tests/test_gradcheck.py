"""bpfast.gradcheck: analytic gradients against central differences.

gradcheck must report a small error for correct gradients, a large one for
wrong gradients (so that it can fail), use the eps it is given, and leave the
network as it found it.
"""

import numpy as np
import pytest

import bpfast

# Max relative error accepted for correct gradients (docs/design.md: float64 reference
# for both; the float32 analytic gradient carries float32 rounding).
MAX_ERROR = {"float64": 1e-6, "float32": 1e-2}

CONFIGS = [
    # layers, hidden activation, output, loss
    ([4, 5, 3], "sigmoid", "sigmoid", "mse"),
    ([4, 5, 3], "tanh", "softmax", "cross_entropy"),
    ([4, 6, 5, 3], "relu", "softmax", "mse"),
    ([4, 5, 3], "leaky_relu", "sigmoid", "cross_entropy"),
    ([4, 5, 1], "tanh", "sigmoid", "cross_entropy"),
    ([4, 6, 5, 2], "sigmoid", "identity", "mse"),
    ([4, 5, 3], "identity", "tanh", "mse"),
    ([4, 5, 3], "tanh", "relu", "mse"),
]
CONFIG_IDS = ["-".join([str(len(c[0]) - 1) + "L", *c[1:]]) for c in CONFIGS]


def _network(layers, activation, output, loss, dtype="float64", seed=0):
    """A network with small random biases as well as weights.

    The default zero biases would put z exactly at relu's kink (z = b = 0)
    for a sample whose previous layer is all dead; at a kink the one-sided
    derivative and the central difference legitimately disagree.
    """
    net = bpfast.MLP(layers, activation, output, loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.normal(scale=0.3, size=b.shape)
    return net


def _data(layers, loss, rng, n=8):
    """Inputs and both kinds of targets the network accepts (labels and real rows)."""
    X = rng.normal(size=(n, layers[0]))
    n_out = layers[-1]
    labels = rng.integers(0, max(n_out, 2), size=n)
    if loss == "cross_entropy" and n_out > 1:
        rows = rng.dirichlet(np.ones(n_out), size=n)      # probability rows for softmax CE
    else:
        rows = rng.uniform(0.1, 0.9, size=(n, n_out))
    return X, labels, rows


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_correct_gradients_give_a_small_error(config, dtype):
    layers, activation, output, loss = config
    net = _network(layers, activation, output, loss, dtype, seed=11)
    X, labels, rows = _data(layers, loss, np.random.default_rng(12))
    for Y in (labels, rows):
        error = bpfast.gradcheck(net, X, Y)
        assert isinstance(error, float)
        assert 0.0 <= error < MAX_ERROR[dtype], (config, dtype, Y.dtype, error)


def test_single_sample_works():
    net = _network([3, 4, 2], "tanh", "softmax", "cross_entropy", seed=1)
    assert bpfast.gradcheck(net, np.array([0.3, -1.2, 0.5]), 1) < MAX_ERROR["float64"]


def test_a_trained_network_still_checks():
    net = _network([4, 6, 3], "tanh", "softmax", "cross_entropy", seed=2)
    X, labels, _ = _data(net.layers, net.loss_name, np.random.default_rng(3), n=30)
    net.fit(X, labels, epochs=5, lr=0.2, progress=False)
    assert bpfast.gradcheck(net, X, labels) < MAX_ERROR["float64"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradcheck_does_not_change_the_network(dtype):
    net = _network([4, 5, 3], "relu", "softmax", "cross_entropy", dtype, seed=4)
    X, labels, _ = _data(net.layers, net.loss_name, np.random.default_rng(5))
    net.fit(X, labels, epochs=1, lr=0.1, momentum=0.9, progress=False)
    params, velocity = net._params.copy(), net._velocity.copy()
    rng_state = net._rng.bit_generator.state
    outputs = net.forward(X)
    X_before, labels_before = X.copy(), labels.copy()

    bpfast.gradcheck(net, X, labels)

    np.testing.assert_array_equal(net._params, params)
    np.testing.assert_array_equal(net._velocity, velocity)
    assert net._rng.bit_generator.state == rng_state
    np.testing.assert_array_equal(net.forward(X), outputs)
    assert net.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(X, X_before)          # inputs are never written to
    np.testing.assert_array_equal(labels, labels_before)


def _perturbed_gradients(original, layer, index, factor):
    """MLP.gradients with one entry of grad_w[layer] scaled by factor."""
    def gradients(self, X, Y):
        grad_w, grad_b = original(self, X, Y)
        grad_w = [g.copy() for g in grad_w]
        grad_w[layer][index] *= factor
        return grad_w, grad_b
    return gradients


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_wrong_gradient_is_detected(monkeypatch, dtype):
    net = _network([4, 5, 3], "sigmoid", "sigmoid", "mse", dtype, seed=6)
    X, _, rows = _data(net.layers, net.loss_name, np.random.default_rng(7))
    correct = bpfast.gradcheck(net, X, rows)
    assert correct < MAX_ERROR[dtype]

    # One entry 50 % too large: the relative error of that entry is 0.5 / 1.5.
    monkeypatch.setattr(bpfast.MLP, "gradients",
                        _perturbed_gradients(bpfast.MLP.gradients, 1, (2, 3), 1.5))
    error = bpfast.gradcheck(net, X, rows)
    assert error == pytest.approx(0.5 / 1.5, rel=1e-6 if dtype == "float64" else 1e-2)
    assert error > 10 * MAX_ERROR[dtype]


def test_a_sign_error_is_detected(monkeypatch):
    net = _network([4, 6, 5, 3], "tanh", "softmax", "cross_entropy", seed=8)
    X, labels, _ = _data(net.layers, net.loss_name, np.random.default_rng(9))
    monkeypatch.setattr(bpfast.MLP, "gradients",
                        _perturbed_gradients(bpfast.MLP.gradients, 0, (1, 2), -1.0))
    assert bpfast.gradcheck(net, X, labels) == pytest.approx(2.0, rel=1e-6)


def test_a_wrong_bias_gradient_is_detected(monkeypatch):
    net = _network([4, 5, 3], "relu", "identity", "mse", seed=10)
    X, _, rows = _data(net.layers, net.loss_name, np.random.default_rng(11))
    original = bpfast.MLP.gradients

    def gradients(self, X, Y):
        grad_w, grad_b = original(self, X, Y)
        return grad_w, [g * 0.5 for g in grad_b]        # biases' gradients halved

    monkeypatch.setattr(bpfast.MLP, "gradients", gradients)
    assert bpfast.gradcheck(net, X, rows) == pytest.approx(0.5, rel=1e-6)


def test_eps_is_used():
    """Central differences err by O(eps²): a coarse eps gives a visibly larger error."""
    net = _network([4, 5, 3], "tanh", "tanh", "mse", seed=12)
    X, _, rows = _data(net.layers, net.loss_name, np.random.default_rng(13))
    default = bpfast.gradcheck(net, X, rows)
    assert bpfast.gradcheck(net, X, rows, eps=1e-5) == default
    fine = bpfast.gradcheck(net, X, rows, eps=1e-4)
    coarse = bpfast.gradcheck(net, X, rows, eps=0.1)
    assert fine < MAX_ERROR["float64"]
    assert coarse > 100 * max(default, fine)
    # For a linear network the loss is quadratic in each parameter, so even a
    # coarse central difference is exact up to rounding.
    linear = bpfast.MLP([4, 5, 3], "identity", "identity", "mse", seed=14)
    assert bpfast.gradcheck(linear, X, rows, eps=0.5) < MAX_ERROR["float64"]


@pytest.mark.parametrize("eps, error", [
    (0.0, ValueError),
    (-1e-5, ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    ("1e-5", TypeError),
    (True, TypeError),
])
def test_bad_eps_is_rejected(eps, error):
    net = bpfast.MLP([3, 2, 2], seed=0)
    with pytest.raises(error, match="eps"):
        bpfast.gradcheck(net, np.zeros((2, 3)), [0, 1], eps=eps)


@pytest.mark.parametrize("X, Y, error", [
    (np.zeros((2, 4)), [0, 1], ValueError),             # wrong input size
    (np.zeros((2, 3)), [0, 1, 1], ValueError),          # one target too many
    (np.zeros((2, 3)), [0, 2], ValueError),             # label out of range
    (np.zeros((0, 3)), np.zeros(0, dtype=int), ValueError),
    (np.full((2, 3), np.nan), [0, 1], ValueError),
    (np.zeros((2, 3)), [[0.5, np.inf], [0.5, 0.5]], ValueError),
    (np.array([["a", "b", "c"]]), [0], TypeError),
])
def test_bad_data_is_rejected(X, Y, error):
    net = bpfast.MLP([3, 2, 2], seed=0)
    with pytest.raises(error):
        bpfast.gradcheck(net, X, Y)


def test_net_must_be_an_mlp():
    with pytest.raises(TypeError, match="net"):
        bpfast.gradcheck(object(), np.zeros((1, 3)), [0])
    with pytest.raises(TypeError, match="net"):
        bpfast.gradcheck(lambda X: X, np.zeros((1, 3)), [0])


# ----------------------------------------------------------------- trained, saturated networks


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    return data.data / 16.0, data.target


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_trained_network_with_tiny_gradients_checks_cleanly(digits, dtype):
    """After training, saturated sigmoid units give gradients of 1e-9 next to 1e-2.

    Judged relative to themselves (the bare 1e-8 floor), their rounding error
    alone reported ~1e-5 here (float64) and ~3e-2 on MNIST (float32); on the
    scale of the largest gradient they check as cleanly as the rest.
    """
    X, y = digits
    net = bpfast.MLP([64, 30, 10], dtype=dtype, seed=0)
    net.fit(X, y, epochs=20, lr=3.0, batch_size=10, progress=False)
    grad_w, grad_b = net.gradients(X[:3], y[:3])
    g = np.concatenate([np.abs(gw).ravel() for gw in grad_w])
    assert np.sum((g > 0) & (g < 1e-6 * g.max())) > 10       # the tiny entries are there
    relative = bpfast.gradcheck(net, X[:3], y[:3], floor="relative")
    assert relative < {"float64": 1e-6, "float32": 1e-4}[dtype]
    # the contract's default floor (1e-8) judges the tiny entries by themselves
    assert bpfast.gradcheck(net, X[:3], y[:3]) >= relative


def test_the_floor_is_relative_to_the_largest_gradient(monkeypatch):
    """An entry far below the largest is judged by its absolute error on 1e-3 of that scale."""
    net = _network([4, 5, 3], "sigmoid", "sigmoid", "mse", seed=6)
    X, _, rows = _data(net.layers, net.loss_name, np.random.default_rng(7))
    X[:, 0] = 1e-7                                   # so dL/dW[0][:, 0] = delta * x is tiny
    grad_w, grad_b = net.gradients(X, rows)
    largest = max(np.abs(np.concatenate([np.ravel(g) for g in grad_w + grad_b])))
    g00 = abs(float(grad_w[0][0, 0]))
    assert g00 < 1e-5 * largest
    original = bpfast.MLP.gradients
    shift = 1e-5 * largest

    def gradients(self, X, Y):                       # that entry off by 1e-5 of the largest
        gw, gb = original(self, X, Y)
        gw = [w.copy() for w in gw]
        gw[0][0, 0] += shift
        return gw, gb

    monkeypatch.setattr(bpfast.MLP, "gradients", gradients)
    error = bpfast.gradcheck(net, X, rows, floor="relative")
    # The floor s = 1e-3 * largest, not the entry itself (which would give about 1).
    assert error == pytest.approx(shift / (1e-3 * largest), rel=1e-2)
    assert error > 1e3 * MAX_ERROR["float64"]        # still far above a correct gradient
    assert bpfast.gradcheck(net, X, rows) == pytest.approx(1.0, abs=1e-2)   # floor 1e-8


@pytest.mark.parametrize("floor,error", [(0, ValueError), (-1.0, ValueError),
                                         ("absolute", ValueError), (None, TypeError)])
def test_bad_floor_is_rejected(floor, error):
    net = _network([3, 2, 2], "tanh", "softmax", "cross_entropy", seed=0)
    with pytest.raises(error, match="floor"):
        bpfast.gradcheck(net, np.zeros((2, 3)), [0, 1], floor=floor)


def test_uses_only_the_networks_interface():
    """gradcheck reads a network through its public API and _data/_parameters/_backprop."""
    import inspect

    import bpfast.gradcheck as module
    source = inspect.getsource(module)
    for private in ("._params", "._layout", "._lock", "_dispatch", "._scratch",
                    "._grad_buffer", "._gradient("):
        assert private not in source, private
