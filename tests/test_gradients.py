"""Backpropagation is right: bpfast's gradients against three independent oracles.

1. Central finite differences of ``net.loss``, in float64, taken by perturbing
   one parameter at a time through the public ``net.weights``/``net.biases``
   views (for a float32 network, on a float64 twin holding the same values).
2. The plain-NumPy reference in ``tests/reference.py`` (full chain rule with
   the output Jacobian, no simplifications).
3. PyTorch autograd in double precision (skipped when torch is absent).

Every hidden activation x output activation x loss that docs/design.md allows is
covered, for 1, 2 and 3 hidden layers, batches of 1 and 5, float32 and float64.
All data and parameters are exactly representable in float32, so the float32
network and its float64 oracle see the same problem; test points are kept away
from the relu kink at 0.
"""

import zlib

import numpy as np
import pytest

import bpfast
from conftest import RTOL
from reference import ReferenceMLP, as_target_rows

HIDDEN = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
OUTPUTS = ("sigmoid", "softmax", "identity", "tanh", "relu")
COMBOS = [(act, out, loss) for act in HIDDEN for out in OUTPUTS
          for loss in ("mse", "cross_entropy")
          if loss == "mse" or out in ("softmax", "sigmoid")]
COMBO_IDS = [f"{act}-{out}-{loss}" for act, out, loss in COMBOS]
HIDDEN_SIZES = (4, 5, 4)
N_IN, N_OUT = 3, 3
KINK_MARGIN = 1e-3        # every relu/leaky_relu pre-activation is this far from 0
FD_EPS = 1e-5
FD_RTOL = 1e-6            # central differences in float64: O(eps²) + O(ε_mach/eps) error


def test_every_allowed_combination_is_covered():
    assert len(COMBOS) == 5 * 5 + 5 * 2      # mse with every output, CE with softmax/sigmoid


def _f32_exact(a):
    """Round to float32 and back: values both dtypes represent exactly."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _targets(rng, output, loss, n, n_out):
    """Real-valued (never one-hot) targets in the range the output can reach."""
    if loss == "cross_entropy" and output == "softmax":
        return _f32_exact(rng.dirichlet(np.ones(n_out), size=n))     # probability rows
    if output in ("sigmoid", "softmax"):
        return _f32_exact(rng.uniform(0.05, 0.95, size=(n, n_out)))
    if output == "tanh":
        return _f32_exact(rng.uniform(-0.9, 0.9, size=(n, n_out)))
    return _f32_exact(rng.normal(size=(n, n_out)))


def make_problem(activation, output, loss, depth, batch, n_out=N_OUT):
    """(layers, weights, biases, X, Y): a small random problem, off the relu kinks,
    and with at least one active output per sample for a relu output layer.

    The seed is derived from the arguments, so every case is reproducible and
    different cases get different numbers.
    """
    layers = [N_IN, *HIDDEN_SIZES[:depth], n_out]
    key = f"{activation}/{output}/{loss}/{depth}/{batch}/{n_out}".encode()
    rng = np.random.default_rng(zlib.crc32(key))
    kinked = {"relu", "leaky_relu"} & {activation, output}
    for _ in range(100):
        weights = [_f32_exact(rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(n_o, n_in)))
                   for n_in, n_o in zip(layers[:-1], layers[1:])]
        biases = [_f32_exact(rng.normal(0.0, 0.5, size=n_o)) for n_o in layers[1:]]
        X = _f32_exact(rng.normal(size=(batch, N_IN)))
        Y = _targets(rng, output, loss, batch, n_out)
        ref = ReferenceMLP(weights, biases, activation, output, loss)
        z_out = ref.forward_all(X)[0][-1]
        off_kinks = not kinked or np.min(np.abs(ref.pre_activations(X))) > KINK_MARGIN
        # a relu output unit that is off for a sample passes no gradient back
        alive = output != "relu" or np.all(np.any(z_out > 0, axis=1))
        if off_kinks and alive:
            return layers, weights, biases, X, Y
    raise RuntimeError("no test point away from the relu kink")     # pragma: no cover


def make_net(layers, weights, biases, activation, output, loss, dtype):
    net = bpfast.MLP(layers, activation=activation, output=output, loss=loss,
                     dtype=dtype, seed=0)
    for view, value in zip(net.weights + net.biases, weights + biases):
        view[...] = value
    return net


def numerical_gradients(net, X, Y, eps=FD_EPS):
    """Central differences (L(p + h) − L(p − h)) / 2h for every parameter of a float64 net.

    Each parameter is perturbed through the public views; the step actually
    taken, (p + h) − (p − h) as stored, is used as the denominator.
    """
    assert net.dtype == np.float64
    grads = []
    for view in net.weights + net.biases:
        g = np.empty(view.shape)
        for idx in np.ndindex(view.shape):
            p = view[idx]
            view[idx] = p + eps
            up, step_up = net.loss(X, Y), view[idx]
            view[idx] = p - eps
            down, step_down = net.loss(X, Y), view[idx]
            view[idx] = p
            g[idx] = (up - down) / (step_up - step_down)
        grads.append(g)
    L = len(net.weights)
    return grads[:L], grads[L:]


def assert_gradients_close(actual, expected, rtol):
    """Every gradient array agrees to rtol, with an absolute floor of rtol times
    that array's largest entry (entries that cancel to ~0 have no relative accuracy)."""
    assert len(actual) == len(expected)
    for l, (a, e) in enumerate(zip(actual, expected)):
        e = np.asarray(e, dtype=np.float64)
        assert a.shape == e.shape, (l, a.shape, e.shape)
        scale = np.max(np.abs(e)) if e.size else 0.0
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64), e, rtol=rtol,
                                   atol=rtol * scale, err_msg=f"array {l}")


def _gradient_case(combo, depth, batch, dtype):
    activation, output, loss = combo
    layers, weights, biases, X, Y = make_problem(activation, output, loss, depth, batch)
    net = make_net(layers, weights, biases, activation, output, loss, dtype)
    grad_w, grad_b = net.gradients(X, Y)
    assert all(g.dtype == np.dtype(dtype) for g in grad_w + grad_b)
    assert max(np.max(np.abs(g)) for g in grad_w + grad_b) > 1e-6, "degenerate test point"
    return net, layers, weights, biases, X, Y, grad_w, grad_b


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("combo", COMBOS, ids=COMBO_IDS)
def test_gradients_match_finite_differences(combo, depth, batch, dtype):
    net, layers, weights, biases, X, Y, grad_w, grad_b = _gradient_case(combo, depth, batch,
                                                                         dtype)
    twin = net if dtype == "float64" else make_net(layers, weights, biases, *combo, "float64")
    num_w, num_b = numerical_gradients(twin, X, Y)
    rtol = max(FD_RTOL, RTOL[dtype])
    assert_gradients_close(grad_w, num_w, rtol)
    assert_gradients_close(grad_b, num_b, rtol)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("combo", COMBOS, ids=COMBO_IDS)
def test_gradients_and_loss_match_numpy_reference(combo, depth, batch, dtype):
    net, layers, weights, biases, X, Y, grad_w, grad_b = _gradient_case(combo, depth, batch,
                                                                         dtype)
    ref = ReferenceMLP(weights, biases, *combo)
    ref_w, ref_b = ref.gradients(X, Y)
    assert_gradients_close(grad_w, ref_w, RTOL[dtype])
    assert_gradients_close(grad_b, ref_b, RTOL[dtype])
    np.testing.assert_allclose(net.loss(X, Y), ref.loss(X, Y), rtol=RTOL[dtype])
    np.testing.assert_allclose(net.forward(X), ref.forward(X), rtol=RTOL[dtype],
                               atol=RTOL[dtype])


def torch_gradients(weights, biases, activation, output, loss, X, Y):
    """Mean loss and gradients by torch autograd in float64."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
           "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.01),
           "identity": lambda z: z, "softmax": lambda z: torch.softmax(z, dim=1)}
    Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in weights]
    bs = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in biases]
    a = torch.tensor(X, dtype=torch.float64)
    Yt = torch.tensor(Y, dtype=torch.float64)
    for l, (W, b) in enumerate(zip(Ws, bs)):
        z = a @ W.T + b
        a = act[output if l == len(Ws) - 1 else activation](z)
    if loss == "mse":
        per_sample = 0.5 * ((a - Yt) ** 2).sum(dim=1)
    elif output == "softmax":
        per_sample = -(Yt * torch.log_softmax(z, dim=1)).sum(dim=1)
    else:
        per_sample = F.binary_cross_entropy_with_logits(z, Yt, reduction="none").sum(dim=1)
    mean_loss = per_sample.mean()
    mean_loss.backward()
    return (float(mean_loss.detach()), [W.grad.numpy() for W in Ws], [b.grad.numpy() for b in bs])


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("combo", COMBOS, ids=COMBO_IDS)
def test_gradients_match_torch_autograd(combo, depth, batch, dtype):
    pytest.importorskip("torch")
    net, layers, weights, biases, X, Y, grad_w, grad_b = _gradient_case(combo, depth, batch,
                                                                         dtype)
    t_loss, t_w, t_b = torch_gradients(weights, biases, *combo, X, Y)
    assert_gradients_close(grad_w, t_w, RTOL[dtype])
    assert_gradients_close(grad_b, t_b, RTOL[dtype])
    np.testing.assert_allclose(net.loss(X, Y), t_loss, rtol=RTOL[dtype])


# ------------------------------------------------------------ label targets

CLASSIFIERS = [("sigmoid", "mse"), ("softmax", "mse"), ("sigmoid", "cross_entropy"),
               ("softmax", "cross_entropy")]


@pytest.mark.parametrize("output,loss", CLASSIFIERS)
def test_labels_and_one_hot_targets_give_identical_gradients(output, loss, dtype):
    rng = np.random.default_rng(7)
    net = bpfast.MLP([4, 6, 3], activation="tanh", output=output, loss=loss, dtype=dtype,
                     seed=1)
    X = rng.normal(size=(6, 4))
    labels = np.array([0, 2, 1, 1, 0, 2])
    one_hot = np.eye(3)[labels]
    by_label = net.gradients(X, labels)
    by_rows = net.gradients(X, one_hot)
    for a, b in zip(by_label[0] + by_label[1], by_rows[0] + by_rows[1]):
        np.testing.assert_array_equal(a, b)
    assert net.loss(X, labels) == net.loss(X, one_hot)
    ref = ReferenceMLP.like(net, "tanh", output, loss)
    assert_gradients_close(by_label[0], ref.gradients(X, labels)[0], RTOL[dtype])


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_binary_labels_with_one_output(loss, dtype):
    """nL == 1: labels 0/1 are the target itself; float (n,) and (n, 1) agree."""
    layers, weights, biases, X, _ = make_problem("tanh", "sigmoid", loss, 2, 5, n_out=1)
    net = make_net(layers, weights, biases, "tanh", "sigmoid", loss, dtype)
    labels = np.array([1, 0, 0, 1, 1])
    g_labels = net.gradients(X, labels)
    for Y in (labels.astype(np.float64), labels[:, None].astype(np.float64)):
        g = net.gradients(X, Y)
        for a, b in zip(g_labels[0] + g_labels[1], g[0] + g[1]):
            np.testing.assert_array_equal(a, b)
    twin = net if dtype == "float64" else make_net(layers, weights, biases, "tanh", "sigmoid",
                                                   loss, "float64")
    num_w, num_b = numerical_gradients(twin, X, labels)
    rtol = max(FD_RTOL, RTOL[dtype])
    assert_gradients_close(g_labels[0], num_w, rtol)
    assert_gradients_close(g_labels[1], num_b, rtol)


@pytest.mark.parametrize("output,loss", CLASSIFIERS + [("identity", "mse")])
def test_single_sample_equals_batch_of_one(output, loss, dtype):
    rng = np.random.default_rng(3)
    net = bpfast.MLP([4, 5, 3], activation="sigmoid", output=output, loss=loss, dtype=dtype,
                     seed=2)
    x = rng.normal(size=4)
    target = _targets(rng, output, loss, 1, 3)[0]
    cases = [(target, target[None, :])]
    if output != "identity":
        cases.append((2, np.array([2])))
    for y_single, y_batch in cases:
        single = net.gradients(x, y_single)
        batch = net.gradients(x[None, :], y_batch)
        for a, b in zip(single[0] + single[1], batch[0] + batch[1]):
            np.testing.assert_array_equal(a, b)
        assert net.loss(x, y_single) == net.loss(x[None, :], y_batch)


def test_gradients_are_the_mean_over_samples(dtype):
    layers, weights, biases, X, Y = make_problem("sigmoid", "softmax", "cross_entropy", 2, 5)
    net = make_net(layers, weights, biases, "sigmoid", "softmax", "cross_entropy", dtype)
    grad_w, grad_b = net.gradients(X, Y)
    per_sample = [net.gradients(X[s], Y[s]) for s in range(len(X))]
    for l in range(len(layers) - 1):
        mean_w = np.mean([g[0][l].astype(np.float64) for g in per_sample], axis=0)
        mean_b = np.mean([g[1][l].astype(np.float64) for g in per_sample], axis=0)
        assert_gradients_close([grad_w[l], grad_b[l]], [mean_w, mean_b], RTOL[dtype])
    mean_loss = np.mean([net.loss(X[s], Y[s]) for s in range(len(X))])
    np.testing.assert_allclose(net.loss(X, Y), mean_loss, rtol=RTOL[dtype])


def test_unnormalised_soft_targets_with_softmax_cross_entropy(dtype):
    """−Σ y log softmax(z) for targets that do not sum to one: ∂L/∂z = a·Σy − y."""
    layers, weights, biases, X, _ = make_problem("tanh", "softmax", "cross_entropy", 1, 5)
    Y = _f32_exact(np.random.default_rng(11).uniform(0.0, 2.0, size=(5, N_OUT)))
    net = make_net(layers, weights, biases, "tanh", "softmax", "cross_entropy", dtype)
    ref_w, ref_b = ReferenceMLP(weights, biases, "tanh", "softmax", "cross_entropy") \
        .gradients(X, Y)
    grad_w, grad_b = net.gradients(X, Y)
    assert_gradients_close(grad_w, ref_w, RTOL[dtype])
    assert_gradients_close(grad_b, ref_b, RTOL[dtype])


def test_reference_one_hot_helper():
    """The reference's own label encoding, which the other tests rely on."""
    np.testing.assert_array_equal(as_target_rows(np.array([2, 0]), 3),
                                  [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(as_target_rows(np.array([1, 0]), 1), [[1], [0]])
