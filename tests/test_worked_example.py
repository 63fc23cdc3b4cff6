"""The tutorial's worked example, number for number.

A 1-1-1 network (sigmoid hidden and output units, loss ½(ŷ − y)²) with
x = 0.5, y = 0.8, w1 = 0.4, b1 = 0.1, w2 = 0.6, b2 = 0.2 and lr = 0.1.  The
expected values were worked out by hand from

    a1 = σ(w1·x + b1),  ŷ = σ(w2·a1 + b2),  L = ½(ŷ − y)²,
    δ2 = (ŷ − y)·ŷ(1 − ŷ),  ∂L/∂w2 = δ2·a1,  ∂L/∂b2 = δ2,
    δ1 = w2·δ2·a1(1 − a1),  ∂L/∂w1 = δ1·x,   ∂L/∂b1 = δ1,

and are checked to 1e-12 (absolute), float64.
"""

import numpy as np
import pytest

import bpfast
from reference import ReferenceMLP

x = np.array([0.5])
y = np.array([0.8])
W1, B1, W2, B2 = 0.4, 0.1, 0.6, 0.2
LR = 0.1
ATOL = 1e-12

A1 = 0.574442516811659
Y_HAT = 0.6328970652944873
LOSS = 0.013961695393597427
DL_DW2 = -0.022302399536308776
DL_DB2 = -0.03882442347772981
DL_DW1 = -0.0028472859047197156
DL_DB1 = -0.005694571809439431
W2_NEW = 0.6022302399536309
B2_NEW = 0.203882442347773
W1_NEW = 0.400284728590472
B1_NEW = 0.10056945718094396


def close(actual, expected):
    """A scalar (or one-element array) equals the hand-worked value to 1e-12."""
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.size == 1
    assert abs(float(actual.ravel()[0]) - expected) <= ATOL, (float(actual.ravel()[0]), expected)


@pytest.fixture
def net():
    net = bpfast.MLP([1, 1, 1], activation="sigmoid", output="sigmoid", loss="mse",
                     dtype="float64", seed=0)
    net.weights[0][...] = W1
    net.biases[0][...] = B1
    net.weights[1][...] = W2
    net.biases[1][...] = B2
    return net


def assert_updated(net):
    close(net.weights[0], W1_NEW)
    close(net.biases[0], B1_NEW)
    close(net.weights[1], W2_NEW)
    close(net.biases[1], B2_NEW)


def test_expected_values_follow_from_the_formulas():
    """Guard the constants themselves: the independent reference reproduces them."""
    ref = ReferenceMLP([[[W1]], [[W2]]], [[B1], [B2]], "sigmoid", "sigmoid", "mse")
    _, a = ref.forward_all(x[None, :])
    close(a[1], A1)
    close(a[2], Y_HAT)
    close(ref.loss(x[None, :], y[None, :]), LOSS)
    (gw1, gw2), (gb1, gb2) = ref.gradients(x[None, :], y[None, :])
    for actual, expected in ((gw2, DL_DW2), (gb2, DL_DB2), (gw1, DL_DW1), (gb1, DL_DB1)):
        close(actual, expected)
    for param, grad, new in ((W2, DL_DW2, W2_NEW), (B2, DL_DB2, B2_NEW),
                             (W1, DL_DW1, W1_NEW), (B1, DL_DB1, B1_NEW)):
        close(param - LR * grad, new)


def test_forward_pass(net):
    close(net.forward(x), Y_HAT)
    tr = net.trace(x, y)
    assert len(tr.a) == 3 and len(tr.z) == 2
    close(tr.a[0], 0.5)
    close(tr.z[0], W1 * 0.5 + B1)
    close(tr.a[1], A1)
    close(tr.a[2], Y_HAT)


def test_loss(net):
    close(net.loss(x, y), LOSS)
    close(net.trace(x, y).loss, LOSS)


def test_gradients(net):
    grad_w, grad_b = net.gradients(x, y)
    assert [g.shape for g in grad_w] == [(1, 1), (1, 1)]
    assert [g.shape for g in grad_b] == [(1,), (1,)]
    close(grad_w[1], DL_DW2)
    close(grad_b[1], DL_DB2)
    close(grad_w[0], DL_DW1)
    close(grad_b[0], DL_DB1)


def test_trace_backward_pass(net):
    tr = net.trace(x, y)
    close(tr.delta[1], DL_DB2)            # δ2 = ∂L/∂z2 = ∂L/∂b2
    close(tr.delta[0], DL_DB1)
    close(tr.grad_w[1], DL_DW2)
    close(tr.grad_b[1], DL_DB2)
    close(tr.grad_w[0], DL_DW1)
    close(tr.grad_b[0], DL_DB1)


def test_trace_with_lr_shows_the_update_without_applying_it(net):
    tr = net.trace(x, y, lr=LR)
    close(tr.new_weights[0], W1_NEW)
    close(tr.new_biases[0], B1_NEW)
    close(tr.new_weights[1], W2_NEW)
    close(tr.new_biases[1], B2_NEW)
    # the network itself is untouched
    assert net.weights[0][0, 0] == W1 and net.biases[0][0] == B1
    assert net.weights[1][0, 0] == W2 and net.biases[1][0] == B2
    text = str(tr)
    assert "0.6329" in text and "0.01396" in text    # ŷ and L, as a tutorial prints them


def test_sgd_step(net):
    loss_before = net.sgd_step(x, y, LR)
    close(loss_before, LOSS)
    assert_updated(net)


def test_fit_one_sample_one_epoch_equals_sgd_step(net):
    hist = net.fit(x[None, :], y[None, :], epochs=1, lr=LR, batch_size=1, shuffle=False,
                   progress=False)
    assert_updated(net)
    close(hist.history[0]["loss"], LOSS)

    twin = bpfast.MLP([1, 1, 1], dtype="float64", seed=0)
    for dst, src in zip(twin.weights + twin.biases,
                        ([[W1]], [[W2]], [B1], [B2])):
        dst[...] = src
    twin.sgd_step(x, y, LR)
    for a, b in zip(net.weights + net.biases, twin.weights + twin.biases):
        np.testing.assert_array_equal(a, b)
