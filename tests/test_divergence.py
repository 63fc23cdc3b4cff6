"""Nothing lost: divergence restores the last finite state, Ctrl-C leaves a usable network.

fit checks for NaN/inf between kernel calls ("chunks"); these tests shrink the
chunk (bpfast._training.chunk_samples) where they need several chunks per
epoch, and watch or interrupt training through the one seam the fit loop
calls the kernel by (the `_dispatch` module as bpfast.mlp sees it).
"""

import threading
import types

import numpy as np
import pytest

import bpfast
import bpfast._training


def _linear_net(dtype="float64"):
    """y = w·x + b, w = 0.5, b = 0.

    On x = 1, y = 0 one SGD step maps e = w + b to (1 - 2·lr)·e, so lr = 1.5
    doubles |e| per step: a divergence whose epoch can be planned.
    """
    net = bpfast.MLP([1, 1], "identity", "identity", "mse", dtype=dtype)
    net.weights[0][...] = 0.5
    net.biases[0][...] = 0.0
    return net


def _samples_per_epoch(dtype):
    """Samples per epoch such that the first epoch stays finite and a later one overflows."""
    return {"float64": 200, "float32": 40}[dtype]


def _small_chunks(monkeypatch, samples):
    """Make fit call the kernel every `samples` samples (whole batches)."""
    def chunk_samples(n_params, batch_size, work=None):
        return max(1, samples // batch_size) * batch_size
    monkeypatch.setattr(bpfast._training, "chunk_samples", chunk_samples)


def _spy_on_kernel(monkeypatch, interrupt_at=None, before=True):
    """Route fit's kernel calls through a _SpyKernel and return it."""
    spy = _SpyKernel(bpfast.mlp._dispatch.kernel, interrupt_at, before)
    monkeypatch.setattr(bpfast.mlp, "_dispatch", types.SimpleNamespace(kernel=spy))
    return spy


def _usable_from_another_thread(net, X):
    """True when another thread can run the network (fit released its lock)."""
    outputs = []
    thread = threading.Thread(target=lambda: outputs.append(net.forward(X)), daemon=True)
    thread.start()
    thread.join(10)
    return not thread.is_alive() and len(outputs) == 1 and np.all(np.isfinite(outputs[0]))


def _regression_data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    Y = X @ rng.normal(size=(3, 2)) + 0.1 * rng.normal(size=(n, 2))
    return X, Y


# ----------------------------------------------------------------- fit divergence


@pytest.mark.parametrize("chunked", [False, True], ids=["one-chunk", "many-chunks"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_divergence_in_a_later_epoch_restores_the_start_of_that_epoch(monkeypatch, dtype,
                                                                       chunked):
    net = _linear_net(dtype)
    if chunked:
        _small_chunks(monkeypatch, 7)
    spy = _spy_on_kernel(monkeypatch)
    n = _samples_per_epoch(dtype)
    X, Y = np.ones((n, 1)), np.zeros((n, 1))
    after_epoch = []

    def remember(epoch, logs):
        after_epoch.append(net._params.copy())

    with pytest.raises(bpfast.DivergenceError) as info:
        net.fit(X, Y, epochs=10, lr=1.5, shuffle=False, callbacks=[remember], progress=False)

    assert isinstance(info.value, FloatingPointError)
    message = str(info.value)
    assert "lr" in message and "smaller" in message.lower(), message
    assert "1.5" in message                              # the learning rate that failed
    # At least one epoch completed before the overflow: the restored state is the
    # start of the diverging epoch (= the end of the last finite one), not the start of fit.
    assert len(after_epoch) >= 1
    np.testing.assert_array_equal(net._params, after_epoch[-1])
    assert np.abs(net.weights[0][0, 0]) > 1e3            # ... really the trained state
    assert np.all(np.isfinite(net._params))
    assert len(net.history.history) == len(after_epoch)
    assert all(np.isfinite(row["loss"]) for row in net.history.history)
    per_epoch = -(-n // 7) if chunked else 1               # kernel calls per epoch
    done = len(after_epoch) * per_epoch
    assert done < spy.calls <= done + per_epoch           # it stopped in the next epoch
    if chunked:     # good chunks of the diverging epoch were undone as well
        assert spy.calls > done + 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_huge_lr_restores_parameters_and_momentum_of_the_epoch_start(dtype):
    net = bpfast.MLP([3, 8, 2], "relu", "identity", "mse", dtype=dtype, seed=0)
    X, Y = _regression_data()
    net.fit(X, Y, epochs=1, lr=0.01, momentum=0.9, progress=False)
    good_history = net.history
    params, velocity = net._params.copy(), net._velocity.copy()
    assert np.any(velocity != 0)

    with pytest.raises(bpfast.DivergenceError, match="lr"):
        net.fit(100 * X, 1e4 * Y, epochs=3, lr=1e6, momentum=0.9, progress=False)

    np.testing.assert_array_equal(net._params, params)
    np.testing.assert_array_equal(net._velocity, velocity)
    assert net.history is not good_history and net.history.history == []

    # The network is usable: it predicts and trains on.
    assert np.all(np.isfinite(net.forward(X)))
    loss_before = net.loss(X, Y)
    net.fit(X, Y, epochs=3, lr=0.01, momentum=0.9, progress=False)
    assert net.loss(X, Y) < loss_before


def test_divergence_without_momentum_keeps_the_momentum_buffer_it_never_wrote():
    """fit's own SGD keeps its momentum buffer between calls; a plain-SGD epoch
    (momentum 0) neither writes nor snapshots it, and a diverging one leaves it
    as it was while the parameters go back to the epoch's start."""
    net = bpfast.MLP([3, 8, 2], "relu", "identity", "mse", seed=0)
    X, Y = _regression_data()
    net.fit(X, Y, epochs=1, lr=0.01, momentum=0.9, progress=False)
    net.fit(X, Y, epochs=1, lr=0.01, progress=False)
    params, velocity = net._params.copy(), net._velocity.copy()
    assert np.any(velocity != 0)
    with pytest.raises(bpfast.DivergenceError):
        net.fit(100 * X, 1e4 * Y, epochs=3, lr=1e6, progress=False)
    np.testing.assert_array_equal(net._params, params)
    np.testing.assert_array_equal(net._velocity, velocity)


def test_divergence_with_batches_and_threads_restores_the_epoch_start(monkeypatch):
    """Minibatches split over threads: the good chunks of the diverging epoch are undone too."""
    net = _linear_net()
    _small_chunks(monkeypatch, 10)                        # 2 batches of 5 per kernel call
    spy = _spy_on_kernel(monkeypatch)
    n = 100                                               # 10 kernel calls per epoch
    after_epoch = []
    with pytest.raises(bpfast.DivergenceError):
        # Each batch multiplies |w + b| by |1 - 2 lr| = 1999: overflow in the 3rd epoch.
        net.fit(np.ones((n, 1)), np.zeros((n, 1)), epochs=10, lr=1e3, batch_size=5,
                n_threads=2, shuffle=False, progress=False,
                callbacks=[lambda epoch, logs: after_epoch.append(net._params.copy())])
    assert len(after_epoch) >= 1
    np.testing.assert_array_equal(net._params, after_epoch[-1])
    assert spy.calls > len(after_epoch) * 10 + 1
    assert len(net.history.history) == len(after_epoch)


# ----------------------------------------------------------------- sgd_step divergence


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sgd_step_with_an_infinite_loss_restores_the_state_before_the_step(dtype):
    root_max = float(np.sqrt(np.finfo(dtype).max))
    net = _linear_net(dtype)
    net.weights[0][...] = root_max
    params, velocity = net._params.copy(), net._velocity.copy()
    with pytest.raises(bpfast.DivergenceError, match="lr") as info:
        net.sgd_step([root_max], [0.0], 0.1)               # z = max -> loss = max²/2 = inf
    assert isinstance(info.value, FloatingPointError)
    np.testing.assert_array_equal(net._params, params)
    np.testing.assert_array_equal(net._velocity, velocity)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sgd_step_that_overflows_a_parameter_restores_the_state_before_the_step(dtype):
    root_max = float(np.sqrt(np.finfo(dtype).max))
    net = _linear_net(dtype)
    net.weights[0][...] = root_max / 4                    # loss = max/32: finite
    params = net._params.copy()
    assert np.isfinite(net.loss([1.0], [0.0]))
    with pytest.raises(bpfast.DivergenceError):
        net.sgd_step([1.0], [0.0], 16 * root_max)         # step = 4·max: overflows
    np.testing.assert_array_equal(net._params, params)
    # ... and a sensible step still works from there.
    net.weights[0][...] = 0.5
    assert net.sgd_step([1.0], [0.0], 0.1) == pytest.approx(0.125)
    assert net.weights[0][0, 0] == pytest.approx(0.45)


# ----------------------------------------------------------------- Ctrl-C


class _SpyKernel:
    """The real kernel, counting train calls; call number `at` raises KeyboardInterrupt.

    before=True: the interrupt arrives before the kernel runs that chunk;
    before=False: the chunk is trained and the interrupt arrives as the call returns.
    Records the parameters and momentum buffer after every completed call.
    """

    def __init__(self, real, at=None, before=True):
        self._real, self._at, self._before = real, at, before
        self.calls = 0
        self.after_call = []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def train(self, spec, params, *args, **kwargs):
        self.calls += 1
        if self.calls == self._at and self._before:
            raise KeyboardInterrupt
        result = self._real.train(spec, params, *args, **kwargs)
        state = args[-2]                  # the optimizer's state: fit's SGD momentum buffer
        self.after_call.append((params.copy(), state[0].copy()))
        if self.calls == self._at:
            raise KeyboardInterrupt
        return result


@pytest.mark.parametrize("before", [True, False], ids=["before-chunk", "after-chunk"])
def test_ctrl_c_in_the_middle_of_an_epoch(monkeypatch, before):
    net = bpfast.MLP([3, 4, 2], "tanh", "softmax", "cross_entropy", seed=3)
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, size=50)
    _small_chunks(monkeypatch, 10)                        # 5 kernel calls per epoch
    kernel = _spy_on_kernel(monkeypatch, interrupt_at=13, before=before)

    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=5, lr=0.1, momentum=0.9, progress=False)
    monkeypatch.undo()

    assert kernel.calls == 13                             # in the 3rd chunk of epoch 3
    history = net.history.history
    assert len(history) == 2                              # the completed epochs
    assert all(np.isfinite(row["loss"]) and 0 <= row["accuracy"] <= 1 for row in history)
    # The parameters after the last completed chunk, with their momentum buffer.
    params, velocity = kernel.after_call[-1]
    np.testing.assert_array_equal(net._params, params)
    np.testing.assert_array_equal(net._velocity, velocity)
    assert np.all(np.isfinite(net._params))

    # A consistent, usable network: the lock is free, it predicts and trains on.
    assert _usable_from_another_thread(net, X)
    assert net.predict(X).shape == (50,)
    before_loss = net.loss(X, y)
    net.fit(X, y, epochs=3, lr=0.1, progress=False)
    assert len(net.history.history) == 3
    assert net.loss(X, y) < before_loss


def test_ctrl_c_from_a_callback_keeps_the_finished_epochs():
    net = bpfast.MLP([3, 4, 2], "sigmoid", "softmax", "cross_entropy", seed=5)
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, size=40)
    seen = []

    def interrupt_in_second_epoch(epoch, logs):
        seen.append(net._params.copy())
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=10, lr=0.5, callbacks=[interrupt_in_second_epoch],
                validation_data=(X, y), progress=False)

    assert len(net.history.history) == 2
    assert set(net.history.history[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    np.testing.assert_array_equal(net._params, seen[-1])
    assert _usable_from_another_thread(net, X)
    assert np.all(np.isfinite(net.forward(X)))
    net.fit(X, y, epochs=1, lr=0.5, progress=False)
    assert len(net.history.history) == 1
