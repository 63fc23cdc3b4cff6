"""fit(n_threads=k): k slices per minibatch, run by as many OS threads as pay off.

The result depends on the number of slices only: the same bit for bit
whether one OS thread or k run them (so fit may fall back to one thread when
the other cores are busy), and the fit loop's choice follows the timings.
"""

import numpy as np
import pytest

import bpfast
from bpfast import optim
from bpfast._threads import WorkerChoice
from bpfast._validate import as_targets
from conftest import assert_same_params, params_snapshot


@pytest.mark.parametrize("opt", [None, "adam"])
@pytest.mark.parametrize("batch", [7, 32])
def test_the_result_does_not_depend_on_the_os_threads(dtype, batch, opt):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 12)).astype(dtype)
    y = rng.integers(0, 4, size=100)
    nets = []
    order = rng.permutation(100).astype(np.intp)
    for workers in (1, 2, 3):
        net = bpfast.MLP([12, 16, 4], "relu", "softmax", "cross_entropy", dtype=dtype, seed=0)
        o = optim.Adam(lr=0.01) if opt else optim.SGD(lr=0.1, momentum=0.9)
        targets = as_targets(y, 100, 4, net.dtype, False)
        with net._lock:
            net._train(X, targets, order, batch, o, n_threads=3, n_workers=workers)
        nets.append(net)
    for other in nets[1:]:
        assert_same_params(params_snapshot(nets[0]), params_snapshot(other))


def test_fit_with_threads_equals_itself_whatever_the_timings(monkeypatch):
    """Force the worker choice both ways: the trained networks are identical."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, 8)), rng.integers(0, 3, size=300)
    results = []
    for forced in (1, 2):
        monkeypatch.setattr(WorkerChoice, "choose",
                            lambda self, n, b, chunk=0, forced=forced: (min(n, forced), 3 * b))
        net = bpfast.MLP([8, 10, 3], "tanh", "softmax", "cross_entropy", seed=0)
        net.fit(X, y, epochs=3, batch_size=16, n_threads=2, shuffle=False, lr=0.2,
                progress=False)
        results.append(params_snapshot(net))
    assert_same_params(*results)


def test_worker_choice_follows_the_timings():
    choice = WorkerChoice()
    probe = WorkerChoice.PROBE_BATCHES * 32
    assert choice.choose(1, 32) == (1, float("inf"))
    assert choice.choose(2, 32) == (2, probe)    # first: a short probe on every thread
    choice.record(2, 2, probe, 4.0)              # slow with two threads
    assert choice.choose(2, 32) == (1, probe)    # then one
    choice.record(2, 1, probe, 1.0)              # one thread is faster (a busy core)
    for _ in range(WorkerChoice.REPROBE - 2):
        assert choice.choose(2, 32) == (1, float("inf"))
        choice.record(2, 1, 1000, 1.0 * 1000 / probe)
    assert choice.choose(2, 32) == (2, probe)    # timed again after REPROBE chunks
    choice.record(2, 2, probe, 4.0)              # and it loses again:
    assert choice.choose(2, 32) == (1, probe)    # (one thread timed again too)
    choice.record(2, 1, probe, 1.0)
    for _ in range(2 * WorkerChoice.REPROBE - 2):   # twice as long before the next probe
        assert choice.choose(2, 32) == (1, float("inf"))
        choice.record(2, 1, 1000, 1.0 * 1000 / probe)
    assert choice.choose(2, 32) == (2, probe)
    choice.record(2, 2, probe, 0.5)              # the other core is free again
    assert choice.choose(2, 32) == (1, probe)
    choice.record(2, 1, probe, 1.0)
    assert choice.choose(2, 32) == (2, float("inf"))
    assert choice.gap == WorkerChoice.REPROBE


def test_a_probe_is_a_share_of_a_chunk():
    """At batch size 1 (Hogwild) four samples would time only the threads'
    start: a probe runs at least 1/PROBE_CHUNK of a chunk, in whole batches."""
    choice = WorkerChoice()
    chunk = 100 * WorkerChoice.PROBE_CHUNK
    assert choice.choose(2, 1, chunk) == (2, 100)
    assert choice.choose(2, 32, chunk) == (2, 128)     # 4 batches, the least
    assert choice.choose(2, 32, 1000 * chunk)[1] == 100_000 // 32 * 32


def test_the_choice_lives_in_the_network(monkeypatch):
    """A second fit starts from what the first measured: no probe on every thread."""
    monkeypatch.setattr(WorkerChoice, "PROBE_CHUNK", 10**9)    # probes of 4 batches
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(200, 8)), rng.integers(0, 3, size=200)
    net = bpfast.MLP([8, 10, 3], "tanh", "softmax", "cross_entropy", seed=0)
    net.fit(X, y, epochs=1, batch_size=8, n_threads=2, progress=False, lr=0.1)
    seen = dict(net._worker_choice.seconds_per_sample)
    assert set(seen) == {1, 2}
    chunks = net._worker_choice.chunks
    net.fit(X, y, epochs=1, batch_size=8, n_threads=2, progress=False, lr=0.1)
    assert net._worker_choice.chunks > chunks


@pytest.mark.parametrize("n", [96, 97, 98])    # last batch of 32, 1 or 2 samples
def test_threads_sum_the_slices_and_leave_the_gradient_rows_zero(dtype, n):
    """The threads' slices of a batch are summed before its step: the step is
    the plain sum of the slices' gradients, and every gradient row is zero
    after the call (sparse rows rely on that), whatever the last batch's size
    (here 32, 1 or 2 samples: as many threads, or fewer)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(n, 10)).astype(dtype)
    y = rng.integers(0, 3, size=n)
    order = np.arange(n, dtype=np.intp)
    net = bpfast.MLP([10, 12, 3], "tanh", "softmax", "cross_entropy", dtype=dtype, seed=1)
    start = params_snapshot(net)
    targets = as_targets(y, n, 3, net.dtype, False)
    with net._lock:
        net._train(X, targets, order, 32, optim.SGD(lr=0.1), n_threads=3)
        grad = net._workspace(3)[0]
    assert not np.any(grad)
    # The reference: per batch, the slices' gradient sums in NumPy, one SGD step.
    ref = bpfast.MLP([10, 12, 3], "tanh", "softmax", "cross_entropy", dtype=dtype, seed=1)
    for lo in range(0, n, 32):
        hi = min(lo + 32, n)
        k = min(3, hi - lo)
        cuts = [lo + t * (hi - lo) // k for t in range(k + 1)]
        grads = [ref.gradients(X[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
        for l in range(2):
            for part in range(2):
                total = sum(g[part][l] * (b - a) for g, a, b in zip(grads, cuts[:-1], cuts[1:]))
                target = ref.weights[l] if part == 0 else ref.biases[l]
                target -= 0.1 * total / (hi - lo)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(net.weights + net.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert not np.array_equal(net.weights[0], start[0])      # it trained


@pytest.mark.parametrize("n0", [1, 2, 5, 40])
@pytest.mark.parametrize("n_threads", [2, 3, 4])
def test_threads_own_rows_of_the_first_layer_and_match_one_thread(n0, n_threads):
    """On dense rows each thread owns a share of W[0]'s rows (the kernel's
    split_first_layer): its part of every z[1], its rows' gradient and step.
    Whatever the share (none when n0 < n_threads), the result is one
    thread's to rounding, for the first layer's weights and the rest, with
    sample weights and Adam; a mistaken share or a lost tile would show far
    beyond rounding."""
    rng = np.random.default_rng(n0)
    X = rng.normal(size=(75, n0))
    X[rng.random(X.shape) < 0.4] = 0
    y = rng.integers(0, 3, size=75)
    weights = rng.uniform(0, 2, size=75)

    def trained(k):
        net = bpfast.MLP([n0, 9, 7, 3], "tanh", "softmax", "cross_entropy", seed=1)
        net.fit(X, y, epochs=3, batch_size=40, optimizer=optim.Adam(lr=0.05),
                sample_weight=weights, n_threads=k, seed=2, progress=False)
        return net

    one, many = trained(1), trained(n_threads)
    for a, b in zip(one.weights + one.biases, many.weights + many.biases):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    assert not np.allclose(one.weights[0], bpfast.MLP([n0, 9, 7, 3], seed=1).weights[0])


def test_a_chunk_first_minibatch_on_threads_is_not_timed(monkeypatch):
    """The first minibatch of a chunk on several threads (Hogwild: one sample
    per thread) wakes them and moves their share of the parameters to their
    cores; timing it made a probe of two threads look slower than one (it
    had cost a whole probe's time on this project's virtual machine), so fit
    times the rest of the chunk only, and cuts every chunk so whatever the
    choice."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(400, 8)), rng.integers(0, 3, size=400)
    timed, calls = [], []
    record = WorkerChoice.record
    monkeypatch.setattr(WorkerChoice, "record", lambda self, n, w, samples, seconds:
                        (timed.append(samples), record(self, n, w, samples, seconds)))
    train = bpfast.MLP._train
    monkeypatch.setattr(bpfast.MLP, "_train", lambda self, X, T, order, *a, **k:
                        (calls.append(len(order)), train(self, X, T, order, *a, **k))[1])
    net = bpfast.MLP([8, 10, 3], "tanh", "softmax", "cross_entropy", seed=0)
    net.fit(X, y, epochs=1, batch_size=16, n_threads=2, progress=False, lr=0.1)
    assert calls[0] == 16 and sum(calls) == 400
    assert sum(timed) + 16 * len(timed) == 400          # every chunk's head untimed
    calls.clear()
    net.fit(X, y, epochs=1, batch_size=16, n_threads=1, progress=False, lr=0.1)
    assert calls == [400]                               # one thread: one call per chunk
    calls.clear()
    timed.clear()
    net.fit(X, y, epochs=1, batch_size=1, n_threads=2, hogwild=True, progress=False, lr=0.1)
    assert calls[0] == 2 and sum(calls) == 400 and sum(timed) + 2 * len(timed) == 400


def test_a_non_finite_loss_in_the_untimed_head_still_stops_fit(monkeypatch):
    """The divergence check covers both calls of a chunk cut for timing."""
    from bpfast.errors import DivergenceError
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(200, 8)), rng.integers(0, 3, size=200)
    net = bpfast.MLP([8, 10, 3], "tanh", "softmax", "cross_entropy", seed=0)
    before = params_snapshot(net)
    train = bpfast.MLP._train

    def head_diverges(self, X, T, order, *a, **k):
        loss, correct = train(self, X, T, order, *a, **k)
        return (np.inf if len(order) == 16 else loss), correct
    monkeypatch.setattr(bpfast.MLP, "_train", head_diverges)
    with pytest.raises(DivergenceError):
        net.fit(X, y, epochs=1, batch_size=16, n_threads=2, progress=False, lr=0.1)
    assert_same_params(before, params_snapshot(net))


@pytest.mark.parametrize("n", [75, 72, 71])    # last batch of 5, 2 or 1 samples
def test_each_batch_on_threads_records_its_loss_and_weights_before_its_step(dtype, n):
    """On dense rows, threads run a call's batches in one parallel region
    (the kernel's rows_batches), the last one too when it has at least two
    samples, and one thread reports each batch's loss sum and squared
    weights (before its step, as scikit-learn's alpha needs them): the same
    numbers, to rounding, as batch by batch on one thread, and the same bit
    for bit whatever the OS threads, with Adam's step count carried on."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 6)).astype(dtype)
    X[rng.random(X.shape) < 0.3] = 0
    y = rng.integers(0, 3, size=n)
    order = rng.permutation(n).astype(np.intp)
    batches = -(-n // 10)

    def trained(n_threads, workers):
        net = bpfast.MLP([6, 9, 3], "relu", "softmax", "cross_entropy", dtype=dtype, seed=3)
        opt = optim.Adam(lr=0.05)
        targets = as_targets(y, n, 3, net.dtype, False)
        losses, squares = np.empty((2, batches)), np.empty((2, batches))
        with net._lock:
            for call in range(2):     # the second call's steps count on from the first's
                net._train(X, targets, order, 10, opt, n_threads=n_threads, n_workers=workers,
                           batch_loss=losses[call], batch_sq=squares[call])
        return net, losses, squares

    one, loss_1, sq_1 = trained(1, 1)
    for workers in (1, 3):
        net, loss_3, sq_3 = trained(3, workers)
        tol = 2e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(loss_3, loss_1, rtol=tol)
        np.testing.assert_allclose(sq_3, sq_1, rtol=tol)
        for a, b in zip(one.weights + one.biases, net.weights + net.biases):
            np.testing.assert_allclose(b, a, rtol=50 * tol, atol=50 * tol)
        if workers == 1:
            first = (loss_3, sq_3, params_snapshot(net))
    assert np.array_equal(first[0], loss_3) and np.array_equal(first[1], sq_3)
    assert_same_params(first[2], params_snapshot(net))
    assert len(set(sq_1[0])) == batches       # every batch stepped the weights


RULES = {
    "sgd": lambda: optim.SGD(lr=0.05),
    "momentum": lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "weight_decay": lambda: optim.SGD(lr=0.05, weight_decay=1e-3),
    "adam": lambda: optim.Adam(lr=1e-2),
    "adamw": lambda: optim.AdamW(lr=1e-2),
    "sparse_adam": lambda: optim.SparseAdam(lr=1e-2),
    "rmsprop": lambda: optim.RMSprop(lr=1e-2, momentum=0.5),
    "adagrad": lambda: optim.Adagrad(lr=1e-2),
    "rprop": lambda: optim.Rprop(lr=1e-2),
    "adamax": lambda: optim.Adamax(lr=1e-2),
}


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_training_call_leaves_the_gradient_rows_zero(rule, sparse):
    """The kernel never clears its gradient scratch on entry: every call,
    whatever its path, must leave every row of it zero, or the next call's
    first step would add a stale gradient.  Every path: one thread and
    several (tiles of W[0]'s rows, contiguous slices, a last batch of one
    sample), batch sizes 1 (fused or not), 3 and 32, with and without sample
    weights and per-batch records, Hogwild, and (sparse rows) the deferred and
    lazy updates of W[0]."""
    sp = pytest.importorskip("scipy.sparse") if sparse else None
    rng = np.random.default_rng(5)
    n = 41
    X = rng.normal(size=(n, 12))
    X[rng.random(X.shape) < 0.6] = 0
    X = sp.csr_matrix(X) if sparse else X
    y = rng.integers(0, 3, size=n)
    weights = rng.uniform(0.5, 2, size=n)
    order = rng.permutation(n).astype(np.intp)
    net = bpfast.MLP([12, 9, 7, 3], "tanh", "softmax", "cross_entropy", seed=1)
    opt = RULES[rule]()
    X, targets, _ = net._data(X, y)
    calls = 0
    for n_threads in (1, 2, 3):
        for batch in (1, 3, 32):
            for weighted in (False, True):
                for records in (False, True):
                    for hogwild in (False, True) if batch == 1 else (False,):
                        n_batches = -(-n // batch)
                        extra = dict(batch_loss=np.zeros(n_batches),
                                     batch_sq=np.zeros(n_batches)) if records else {}
                        with net._lock:
                            net._train(X, targets, order, batch, opt, n_threads,
                                       sample_weight=weights if weighted else None,
                                       hogwild=hogwild, **extra)
                            grad = net._workspace(n_threads)[0]
                        assert not np.any(grad), (n_threads, batch, weighted, records, hogwild)
                        calls += 1
    assert calls == 3 * (8 + 4 + 4)
    assert np.all(np.isfinite(net._params))
