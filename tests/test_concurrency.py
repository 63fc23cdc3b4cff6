"""Threads: what bpfast promises when several threads train or use networks.

* Two threads training two different networks at the same time get exactly
  (bit for bit) what training them one after the other gives: the kernel runs
  without the GIL on per-call scratch memory and shares nothing between
  networks.
* A network shared between threads serialises its calls on its own lock
  (``net._lock``, see the MLP docstring): every call that reads or writes the
  parameters takes it, so concurrent calls behave as if made in some serial
  order -- a reader sees the parameters before or after a whole ``fit``, never
  half-way -- and nothing crashes.

The lock contract is checked deterministically with an instrumented lock: it
records who asked for it, and can let another thread train the network each
time the call under test lets go of it, which must not change that call's
result.
"""

import copy
import os
import pickle
import tempfile
import threading
import time

import numpy as np
import pytest

import bpfast
from conftest import JOIN_TIMEOUT, run_threads


def blobs(seed, n=2000, n_features=32, n_classes=10):
    """A Gaussian-blob classification problem (float32 inputs, int labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    X = (centres[y] + rng.normal(size=(n, n_features))).astype(np.float32)
    return X, y


def assert_same_network(a, b):
    np.testing.assert_array_equal(a._params, b._params, strict=True)
    np.testing.assert_array_equal(a._velocity, b._velocity, strict=True)


# ---------------------------------------------------------------- two networks

@pytest.mark.parametrize("batch_size,momentum,n_threads", [
    (1, 0.0, 1),        # the fused per-sample update
    (16, 0.9, 1),       # minibatches with momentum
    (32, 0.0, 2),       # each minibatch split over two OpenMP threads
])
def test_two_networks_trained_at_once_equal_one_after_the_other(batch_size, momentum,
                                                                n_threads):
    X1, y1 = blobs(1)
    X2, y2 = blobs(2)
    nets = [bpfast.MLP([32, 64, 10], activation="tanh", output="softmax",
                       loss="cross_entropy", dtype="float64", seed=1),
            bpfast.MLP([32, 48, 10], activation="relu", output="sigmoid",
                       dtype="float32", seed=2)]
    data = [(X1, y1), (X2, y2)]
    kw = dict(epochs=2, lr=0.05, batch_size=batch_size, momentum=momentum,
              n_threads=n_threads, progress=False)

    serial = [copy.deepcopy(net) for net in nets]
    serial_hist = [net.fit(X, y, **kw) for net, (X, y) in zip(serial, data)]
    serial_out = [net.forward(X) for net, (X, _) in zip(serial, data)]

    def job(net, X, y):
        def train():
            hist = net.fit(X, y, **kw)
            return hist, net.forward(X)
        return train

    results = run_threads(*(job(net, X, y) for net, (X, y) in zip(nets, data)))
    for net, ref, ref_hist, ref_out, (hist, out) in zip(nets, serial, serial_hist,
                                                        serial_out, results):
        assert_same_network(net, ref)
        assert hist["loss"] == ref_hist["loss"]
        assert hist["accuracy"] == ref_hist["accuracy"]
        np.testing.assert_array_equal(out, ref_out, strict=True)


def test_many_networks_in_many_threads_equal_serial():
    """Four threads, four networks, fit then evaluate, twice over."""
    problems = [blobs(10 + k, n=600) for k in range(4)]
    nets = [bpfast.MLP([32, 40, 10], activation=act, output="softmax", loss="cross_entropy",
                       dtype=dt, seed=k)
            for k, (act, dt) in enumerate([("sigmoid", "float64"), ("tanh", "float32"),
                                           ("relu", "float64"), ("leaky_relu", "float32")])]
    serial = [copy.deepcopy(net) for net in nets]

    def work(net, X, y):
        for _ in range(2):
            net.fit(X, y, epochs=1, lr=0.1, batch_size=4, seed=3, progress=False)
        return net.evaluate(X, y)

    expected = [work(net, X, y) for net, (X, y) in zip(serial, problems)]
    results = run_threads(*(lambda net=net, X=X, y=y: work(net, X, y)
                            for net, (X, y) in zip(nets, problems)))
    assert results == expected
    for net, ref in zip(nets, serial):
        assert_same_network(net, ref)


# ---------------------------------------------------------------- one network, many threads

@pytest.mark.parametrize("shuffle", [False, True])
def test_two_fits_on_one_network_equal_one_serial_order(shuffle):
    """fit holds the network's lock for its whole run: two concurrent fits give the
    result of A-then-B or of B-then-A, momentum buffer and shuffling included."""
    (X1, y1), (X2, y2) = blobs(3, n=800), blobs(4, n=800)
    kw = dict(epochs=2, lr=0.05, batch_size=8, momentum=0.9, shuffle=shuffle, progress=False)
    for round_ in range(3):
        net = bpfast.MLP([32, 32, 10], activation="tanh", output="softmax",
                         loss="cross_entropy", seed=round_)
        orders, final_losses = {}, set()
        for name, first, second in [("A then B", (X1, y1), (X2, y2)),
                                    ("B then A", (X2, y2), (X1, y1))]:
            ref = copy.deepcopy(net)
            final_losses.add(ref.fit(*first, **kw)["loss"][-1])
            final_losses.add(ref.fit(*second, **kw)["loss"][-1])
            orders[name] = ref
        run_threads(lambda: net.fit(X1, y1, **kw), lambda: net.fit(X2, y2, **kw))
        matches = [name for name, ref in orders.items()
                   if np.array_equal(net._params, ref._params)
                   and np.array_equal(net._velocity, ref._velocity)
                   and net._rng.bit_generator.state == ref._rng.bit_generator.state]
        assert matches, "concurrent fits on one network gave neither serial order"
        # net.history is the History of one of the two fits (which one is a race:
        # fit assigns it before it takes the lock).
        assert net.history["loss"][-1] in final_losses


def test_forward_during_fit_sees_the_network_before_or_after_each_fit():
    """A reader in one thread, a trainer in another: every forward/predict result is
    that of one of the states between whole fit calls, never of a half-trained one."""
    X, y = blobs(5, n=1500)
    queries = X[:64]
    net = bpfast.MLP([32, 64, 10], activation="tanh", output="softmax",
                     loss="cross_entropy", seed=5)
    states = [net._params.copy()]
    training = threading.Event()
    training.set()
    n_fits = 6

    def trainer():
        try:
            for k in range(n_fits):
                net.fit(X, y, epochs=1, lr=0.05, batch_size=1, shuffle=False, progress=False)
                states.append(net._params.copy())      # only this thread writes them
                time.sleep(0.002)                       # let the reader in between fits
        finally:
            training.clear()

    def reader():
        outputs, classes = [], []
        while True:
            outputs.append(net.forward(queries))
            classes.append(net.predict(queries))
            if not training.is_set():
                return outputs, classes

    _, (outputs, classes) = run_threads(trainer, reader)
    assert len(states) == n_fits + 1 and outputs

    twin = copy.deepcopy(net)
    expected = []
    for params in states:
        twin._params[...] = params
        expected.append(twin.forward(queries))
    for out, cls in zip(outputs, classes):
        hits = [k for k, ref in enumerate(expected) if np.array_equal(out, ref)]
        assert hits, "forward saw parameters from the middle of a fit"
        # predict ran just after forward: on the same state or a later one.
        cls_hits = [k for k, ref in enumerate(expected)
                    if np.array_equal(cls, ref.argmax(axis=1))]
        assert cls_hits and max(cls_hits) >= min(hits), "predict saw a half-trained network"


def test_concurrent_forward_calls_on_one_network_are_correct():
    X, _ = blobs(6, n=400)
    net = bpfast.MLP([32, 64, 10], activation="relu", output="softmax", seed=6)
    batches = [X[k::8] for k in range(8)]
    expected = [net.forward(b) for b in batches]
    expected_loss = [net.loss(b, np.zeros(len(b), dtype=np.int64)) for b in batches]

    def job(k):
        def work():
            outs = []
            for _ in range(25):
                outs.append((net.forward(batches[k]),
                             net.loss(batches[k], np.zeros(len(batches[k]), dtype=np.int64))))
            return outs
        return work

    results = run_threads(*(job(k) for k in range(len(batches))))
    for k, outs in enumerate(results):
        for out, loss in outs:
            np.testing.assert_array_equal(out, expected[k], strict=True)
            assert loss == expected_loss[k]


# ---------------------------------------------------------------- the lock contract

class InstrumentedLock:
    """Stands in for a network's RLock.

    Records which threads asked for it and, each time the watched thread lets
    go of it completely, calls `on_release` (which may run another thread that
    uses the network: the lock is free then).
    """

    def __init__(self, lock, watched=None, on_release=None):
        self._lock = lock
        self._depth = {}
        self.requested_by = set()
        self.watched = watched
        self.on_release = on_release

    def acquire(self, blocking=True, timeout=-1):
        me = threading.get_ident()
        self.requested_by.add(me)
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._depth[me] = self._depth.get(me, 0) + 1
        return got

    def release(self):
        me = threading.get_ident()
        self._depth[me] -= 1
        self._lock.release()
        if self._depth[me] == 0 and me == self.watched and self.on_release is not None:
            self.on_release()

    __enter__ = acquire

    def __exit__(self, *exc_info):
        self.release()


def _small_problem():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 4))
    y = rng.integers(0, 3, size=6)
    net = bpfast.MLP([4, 5, 3], activation="tanh", output="softmax", loss="cross_entropy",
                     seed=7)
    return net, X, y


def _save_bytes(net):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        net.save(path)
        loaded = bpfast.load(path)
    return [loaded._params.copy()]


# Every call that reads the parameters; each returns what it read, as arrays.
READERS = {
    "forward": lambda net, X, y: [net.forward(X)],
    "predict": lambda net, X, y: [net.predict(X)],
    "loss": lambda net, X, y: [net.loss(X, y)],
    "evaluate": lambda net, X, y: list(net.evaluate(X, y).values()),
    "gradients": lambda net, X, y: [g for part in net.gradients(X, y) for g in part],
    "trace": lambda net, X, y: (lambda tr: [*tr.weights, *tr.biases, *tr.z, *tr.grad_w,
                                            *tr.new_weights, tr.loss])(
        net.trace(X[0], y[0], lr=0.1)),
    "gradcheck": lambda net, X, y: [bpfast.gradcheck(net, X, y)],
    "save": lambda net, X, y: _save_bytes(net),
    "pickle": lambda net, X, y: [pickle.loads(pickle.dumps(net))._params],
    "deepcopy": lambda net, X, y: [copy.deepcopy(net)._params],
}
WRITERS = {
    "sgd_step": lambda net, X, y: [net.sgd_step(X, y, 0.1)],
    "fit": lambda net, X, y: [net.fit(X, y, epochs=1, progress=False)["loss"]],
}

@pytest.mark.parametrize("entry", [
    *READERS, *WRITERS,
])
def test_every_call_takes_the_network_lock(entry):
    net, X, y = _small_problem()
    net._lock = lock = InstrumentedLock(net._lock)
    call = {**READERS, **WRITERS}[entry]
    call(net, X, y)
    assert threading.get_ident() in lock.requested_by, f"{entry} never took net._lock"


@pytest.mark.parametrize("entry", list(READERS))
def test_every_read_is_atomic(entry):
    """Another thread trains the network each time the call lets go of the lock:
    the call's result must be that of the network as it was when the call began."""
    net, X, y = _small_problem()
    call = READERS[entry]
    expected = call(copy.deepcopy(net), X, y)

    intrusions = []

    def intrude():
        if len(intrusions) < 3:
            thread = threading.Thread(target=lambda: net.sgd_step(X, y, 0.5))
            thread.start()
            thread.join(JOIN_TIMEOUT)
            assert not thread.is_alive()
            intrusions.append(thread)

    net._lock = InstrumentedLock(net._lock, threading.get_ident(), intrude)
    result = call(net, X, y)
    assert len(result) == len(expected)
    for got, want in zip(result, expected):
        np.testing.assert_array_equal(got, want, strict=True)


def test_a_lock_held_elsewhere_makes_calls_wait():
    """The real lock, real threads: while one thread holds it, fit and forward wait."""
    net, X, y = _small_problem()
    held, release = threading.Event(), threading.Event()

    def holder():
        with net._lock:
            held.set()
            release.wait(JOIN_TIMEOUT)

    done = []
    hold = threading.Thread(target=holder, daemon=True)
    hold.start()
    assert held.wait(JOIN_TIMEOUT)
    workers = [threading.Thread(target=lambda: done.append(net.forward(X)), daemon=True),
               threading.Thread(target=lambda: done.append(net.fit(X, y, progress=False)),
                                daemon=True)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(0.2)
    assert not done, "a call ran while another thread held the network's lock"
    release.set()
    for w in workers + [hold]:
        w.join(JOIN_TIMEOUT)
    assert len(done) == 2
