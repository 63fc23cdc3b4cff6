"""The kernel support behind the scikit-learn estimators (docs/design.md, "scikit-learn
estimators: a true drop-in"): the exp output and the poisson loss, per-sample weights,
weight decay scaled by the batch (scikit-learn's alpha), the per-batch loss and
||W||² outputs, and scikit-learn's forms of the SGD and Adam rules.

Each is checked against an independent oracle: central finite differences, torch,
sample repetition, or the update written out in NumPy.
"""

import numpy as np
import pytest

import bpfast
from bpfast import optim
from conftest import RTOL


def _net(layers=(3, 4, 2), output="exp", loss="poisson", dtype="float64", seed=0,
         activation="tanh"):
    net = bpfast.MLP(list(layers), activation=activation, output=output, loss=loss,
                     dtype=dtype, seed=seed)
    for W in net.weights:
        W *= 0.5
    return net


def _counts(rng, n, k):
    y = rng.poisson(1.5, size=(n, k)).astype(float)
    y[0, 0] = 0.0                            # 0·log 0 = 0 is exercised
    return y


def _flat(grads):
    grad_w, grad_b = grads
    return np.concatenate([g.ravel() for g in (*grad_w, *grad_b)])


def _numeric(net, X, Y, eps=1e-6):
    views = [*net.weights, *net.biases]
    out = []
    for v in views:
        g = np.zeros(v.shape)
        for idx in np.ndindex(v.shape):
            old = v[idx]
            v[idx] = old + eps
            up = net.loss(X, Y)
            v[idx] = old - eps
            down = net.loss(X, Y)
            v[idx] = old
            g[idx] = (up - down) / (2 * eps)
        out.append(g)
    L = len(net.weights)
    return _flat((out[:L], out[L:]))


def test_poisson_needs_the_exp_output():
    with pytest.raises(ValueError, match="poisson.*exp"):
        bpfast.MLP([2, 3, 1], output="identity", loss="poisson")
    net = bpfast.MLP([2, 3, 1], output="exp", loss="mse", seed=0)   # exp with mse is fine
    assert net.forward(np.zeros(2)).shape == (1,)


def test_poisson_refuses_negative_targets_before_any_change():
    net = _net()
    before = [W.copy() for W in net.weights]
    with pytest.raises(ValueError, match="Y: the poisson loss needs targets >= 0"):
        net.fit(np.ones((3, 3)), np.array([[1.0, -1.0]] * 3), progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


@pytest.mark.parametrize("batch", [1, 5])
def test_poisson_gradient_matches_finite_differences(batch):
    rng = np.random.default_rng(1)
    net = _net()
    X, Y = rng.normal(size=(batch, 3)), _counts(rng, batch, 2)
    np.testing.assert_allclose(_flat(net.gradients(X, Y)), _numeric(net, X, Y),
                               rtol=1e-6, atol=1e-9)


def test_poisson_loss_and_gradient_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    net = _net(layers=(3, 5, 4, 2))
    X, Y = rng.normal(size=(6, 3)), _counts(rng, 6, 2)
    params = [torch.tensor(p, requires_grad=True) for p in (*net.weights, *net.biases)]
    L = len(net.weights)
    a = torch.tensor(X)
    for l in range(L):
        a = a @ params[l].T + params[L + l]
        if l < L - 1:
            a = torch.tanh(a)
    y = torch.tensor(Y)
    const = torch.special.xlogy(y, y) - y                 # what full=False leaves out
    loss = (torch.nn.functional.poisson_nll_loss(a, y, log_input=True, full=False,
                                                 reduction="sum") + const.sum()) / len(X)
    loss.backward()
    assert net.loss(X, Y) == pytest.approx(loss.item(), rel=1e-12)
    expected = np.concatenate([p.grad.numpy().ravel() for p in params])
    np.testing.assert_allclose(_flat(net.gradients(X, Y)), expected, rtol=1e-11, atol=1e-14)


def test_poisson_loss_is_finite_where_exp_overflows_float32():
    net = _net(dtype="float32")
    net.biases[-1][...] = 80.0               # e^80 overflows float32, not the double loss
    loss = net.loss(np.zeros((1, 3)), np.array([[1.0, 2.0]]))
    assert np.isinf(loss) or loss > 1e30     # a = inf in float32; the loss is e^80-ish


@pytest.mark.parametrize("loss,output", [("poisson", "exp"), ("mse", "identity"),
                                         ("cross_entropy", "softmax")])
def test_integer_weights_equal_repeated_samples(loss, output, dtype):
    """w = 2 counts a sample twice: the weighted batch gradient (and step) equal the
    mean over the data with that sample repeated."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 3))
    Y = _counts(rng, 5, 2) if loss == "poisson" else rng.uniform(0.1, 0.9, size=(5, 2))
    if loss == "cross_entropy":
        Y = Y / Y.sum(axis=1, keepdims=True)
    w = np.array([2, 1, 0, 3, 1])
    a, b = _net(output=output, loss=loss, dtype=dtype), _net(output=output, loss=loss,
                                                             dtype=dtype)
    rep = np.repeat(np.arange(5), w)
    opt_a, opt_b = optim.Adam(lr=0.01), optim.Adam(lr=0.01)
    la = a.step(X, Y, opt_a, sample_weight=w)
    lb = b.step(X[rep], Y[rep], opt_b)
    assert la == pytest.approx(lb, rel=RTOL[dtype])
    for Wa, Wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(Wa, Wb, rtol=RTOL[dtype], atol=RTOL[dtype])
    hist = a.fit(X, Y, optimizer=opt_a, batch_size=2, shuffle=False, progress=False,
                 sample_weight=w.astype(float))
    assert np.isfinite(hist.history[0]["loss"])


@pytest.mark.parametrize("bad,message", [
    (np.ones(4), r"sample_weight: expected shape \(5,\)"),
    (np.array([1, 1, np.nan, 1, 1.0]), "finite"),
    (np.array([1, 1, -1, 1, 1.0]), ">= 0"),
    (np.zeros(5), "all zeros"),
    (np.array(["a"] * 5), "real numbers"),
])
def test_bad_sample_weight_is_refused_before_any_change(bad, message):
    net = _net(output="identity", loss="mse")
    before = net._snapshot()
    X, Y = np.ones((5, 3)), np.ones((5, 2))
    with pytest.raises((ValueError, TypeError), match=message):
        net.fit(X, Y, sample_weight=bad, progress=False)
    with pytest.raises((ValueError, TypeError), match=message):
        net.step(X, Y, optim.SGD(lr=0.1), sample_weight=bad)
    np.testing.assert_array_equal(before, net._snapshot())


def _sk_reference(params, grads_of, batches, sizes, rule, lrs, alpha, momentum=0.9,
                  nesterov=True, betas=(0.9, 0.999), eps=1e-8):
    """scikit-learn's update written out: grad + alpha W / n_b on the weights only."""
    params = [p.copy() for p in params]
    state = [np.zeros_like(p) for p in params]
    state2 = [np.zeros_like(p) for p in params]
    for t, (batch, n_b, lr) in enumerate(zip(batches, sizes, lrs), start=1):
        grads = grads_of(params, batch)
        grads = [g + (alpha * p / n_b if k % 2 == 0 else 0) for k, (g, p) in
                 enumerate(zip(grads, params))]
        if rule == "sgd":
            upd = [momentum * v - lr * g for v, g in zip(state, grads)]
            state = upd
            if nesterov:
                upd = [momentum * v - lr * g for v, g in zip(state, grads)]
        else:
            state = [betas[0] * m + (1 - betas[0]) * g for m, g in zip(state, grads)]
            state2 = [betas[1] * v + (1 - betas[1]) * g ** 2 for v, g in zip(state2, grads)]
            lr_t = lr * np.sqrt(1 - betas[1] ** t) / (1 - betas[0] ** t)
            upd = [-lr_t * m / (np.sqrt(v) + eps) for m, v in zip(state, state2)]
        params = [p + u for p, u in zip(params, upd)]
    return params


@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_sklearn_rule_forms_with_mean_decay_and_changing_lr(rule):
    """Velocity-form SGD (lr changing between steps) and scikit-learn's Adam, with the
    L2 term alpha W / n_batch on the weights only, against the update in NumPy; the
    per-batch outputs hold each batch's loss sum and ||W||² before its update."""
    rng = np.random.default_rng(4)
    net = _net(output="identity", loss="mse", layers=(3, 4, 2))
    X, Y = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    alpha = 0.3
    if rule == "sgd":
        opt = optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=alpha)
        opt._velocity_form = True
    else:
        opt = optim.Adam(lr=0.05, betas=(0.8, 0.9), eps=1e-3, weight_decay=alpha)
        opt._sklearn_eps = True
    opt._bias_decay, opt._mean_decay = 0.0, 1.0

    def pack(n):
        return [a.copy() for W, b in zip(n.weights, n.biases) for a in (W, b)]

    start = pack(net)
    twin = _net(output="identity", loss="mse", layers=(3, 4, 2))

    def grads_of(params, batch):
        for k, (W, b) in enumerate(zip(twin.weights, twin.biases)):
            W[...], b[...] = params[2 * k], params[2 * k + 1]
        gw, gb = twin.gradients(X[batch], Y[batch])
        return [a for pair in zip(gw, gb) for a in pair]

    batches, sizes, lrs = [], [], []
    order = np.arange(7, dtype=np.intp)
    lr = 0.05
    for epoch in range(3):
        opt.lr = lr
        out_loss, out_sq = np.zeros(3), np.zeros(3)
        sq_expected = sum(float(np.vdot(W, W)) for W in net.weights)
        net._train(*net._data(X, Y)[:2], order, 3, opt, batch_loss=out_loss, batch_sq=out_sq)
        assert out_sq[0] == pytest.approx(sq_expected, rel=1e-12)
        for start_k in range(0, 7, 3):
            batch = order[start_k:start_k + 3]
            batches.append(batch)
            sizes.append(len(batch))
            lrs.append(lr)
        lr /= 5
    expected = _sk_reference(start, grads_of, batches, sizes, rule, lrs, alpha,
                             betas=(0.8, 0.9), eps=1e-3)
    for got, want in zip(pack(net), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_torch_forms_are_unchanged_by_the_new_flags():
    """Buffer-form SGD differs from the velocity form once lr changes: the flags matter."""
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    nets = [_net(output="identity", loss="mse") for _ in range(2)]
    opts = [optim.SGD(lr=0.1, momentum=0.9), optim.SGD(lr=0.1, momentum=0.9)]
    opts[1]._velocity_form = True
    for net, opt in zip(nets, opts):
        net.step(X, Y, opt)
        opt.lr = 0.01
        net.step(X, Y, opt)
    assert not np.allclose(nets[0].weights[0], nets[1].weights[0], rtol=1e-9)
