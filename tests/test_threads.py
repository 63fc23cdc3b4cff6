"""fit(n_threads=k): k slices per minibatch, run by as many OS threads as pay off.

The result depends on the number of slices only: the same bit for bit
whether one OS thread or k run them (so fit may fall back to one thread when
the other cores are busy), and the fit loop's choice follows the timings.
"""

import numpy as np
import pytest

import bpfast
from bpfast import _load, _training, optim
from bpfast._threads import WorkerChoice
from bpfast._validate import as_targets
from conftest import assert_same_params, params_snapshot


class FixedLoad:
    """A load sensor that answers what it is told (None: unknown)."""

    def __init__(self, other=None, n_cpus=2):
        self.other, self.n_cpus, self.asked = other, n_cpus, 0

    def cpus(self):
        self.asked += 1
        return self.other


@pytest.fixture(autouse=True)
def unknown_load(monkeypatch):
    """The machine's real load (other test processes beside this one) must
    not decide what these tests see: the probes decide alone, unless a test
    gives its WorkerChoice a sensor of its own."""
    monkeypatch.setattr(_load, "LOAD", FixedLoad(None))


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

    def probes(two_threads_seconds):
        """One probe: one thread, then every thread."""
        assert choice.choose(2, 32) == (1, probe)
        choice.record(2, 1, probe, 1.0)
        assert choice.choose(2, 32) == (2, probe)
        choice.record(2, 2, probe, two_threads_seconds)

    def keeps(workers, chunks):
        for _ in range(chunks):
            assert choice.choose(2, 32) == (workers, float("inf"))
            choice.record(2, workers, 1000, 1000 / probe / workers)

    assert choice.choose(1, 32) == (1, float("inf"))
    probes(4.0)             # every thread slower (a busy core or a hiccup):
    probes(4.0)             # timed again at once, and slower again (a busy core):
    keeps(1, WorkerChoice.REPROBE - 1)      # one thread for REPROBE chunks,
    probes(4.0)                             # then a probe, lost again:
    keeps(1, 2 * WorkerChoice.REPROBE - 1)  # twice as long
    assert choice.gap == 2 * WorkerChoice.REPROBE
    probes(0.5)             # the other core is free again
    keeps(2, WorkerChoice.REPROBE - 1)
    assert choice.gap == WorkerChoice.REPROBE
    probes(4.0)             # a hiccup, and then no more: every thread again
    probes(0.5)
    keeps(2, WorkerChoice.REPROBE - 1)
    probes(4.0)
    choice.losses = 30      # after a long run of losses the gap stops at MAX_REPROBE
    probes(4.0)
    assert choice.gap == WorkerChoice.MAX_REPROBE


def test_no_probe_while_other_processes_keep_the_cpus_busy():
    """With fewer CPUs free than threads (by the load sensor), no probe runs:
    one thread until the next probe is due, which asks again; once the CPUs
    are free, the probes decide as before."""
    load = FixedLoad(other=1.0, n_cpus=2)          # another process on one of two CPUs
    choice = WorkerChoice(load=load)
    probe = WorkerChoice.PROBE_BATCHES * 32

    def keeps(workers, chunks):
        for _ in range(chunks):
            assert choice.choose(2, 32) == (workers, float("inf"))
            choice.record(2, workers, 1000, 1000 / probe / workers)

    assert choice.choose(2, 32) == (1, float("inf"))   # a new network: no probe
    assert load.asked == 1
    choice.record(2, 1, 1000, 1.0)
    keeps(1, WorkerChoice.REPROBE - 2)
    assert load.asked == 1                              # asked only when a probe is due
    keeps(1, 2)                                         # due: asked, still busy
    assert load.asked == 2 and choice.losses == 0 and choice.gap == WorkerChoice.REPROBE
    load.other = 0.3                                    # free enough: a probe, won
    keeps(1, WorkerChoice.REPROBE - 1)
    assert choice.choose(2, 32) == (1, probe)
    choice.record(2, 1, probe, 1.0)
    assert choice.choose(2, 32) == (2, probe)
    choice.record(2, 2, probe, 0.5)
    keeps(2, WorkerChoice.REPROBE - 1)
    load.other = 0.9                                    # busy again: back to one thread
    keeps(1, 3)
    assert WorkerChoice(load=FixedLoad(0.0, n_cpus=1)).choose(2, 32) == (1, float("inf"))
    assert WorkerChoice(load=FixedLoad(60.0, n_cpus=64)).choose(2, 32) == (1, probe)
    assert WorkerChoice(load=FixedLoad(62.6, n_cpus=64)).choose(2, 32) == (1, float("inf"))


def test_fit_follows_the_load_sensor(monkeypatch):
    """fit on two threads beside a busy machine runs every chunk on one OS
    thread, with no probe of two; the same network bit for bit as on an idle
    machine (the probes, here all lost or won, change no result)."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(400, 8)), rng.integers(0, 3, size=400)
    train = bpfast.MLP._train
    results = []
    for other in (None, 1.0):
        workers = []
        monkeypatch.setattr(bpfast.MLP, "_train", lambda self, *a, **k:
                            (workers.append(k["n_workers"]), train(self, *a, **k))[1])
        monkeypatch.setattr(_load, "LOAD", FixedLoad(other))
        net = bpfast.MLP([8, 10, 3], "tanh", "softmax", "cross_entropy", seed=0)
        net.fit(X, y, epochs=2, batch_size=8, n_threads=2, lr=0.1, progress=False)
        assert (set(workers) == {1}) == (other == 1.0), workers
        results.append(params_snapshot(net))
    assert_same_params(*results)


def test_a_probe_is_a_share_of_a_chunk():
    """At batch size 1 (Hogwild) four samples would time only the threads'
    start: a probe runs at least 1/PROBE_CHUNK of a chunk, in whole batches."""
    chunk = 100 * WorkerChoice.PROBE_CHUNK
    assert WorkerChoice().choose(2, 1, chunk) == (1, 100)
    assert WorkerChoice().choose(2, 32, chunk) == (1, 128)     # 4 batches, the least
    assert WorkerChoice().choose(2, 32, 1000 * chunk)[1] == 100_000 // 32 * 32


def test_a_probe_of_every_thread_runs_in_pieces_and_stops_once_lost():
    """The probe of every thread runs in PROBE_PIECES calls of whole batches
    and stops as soon as it is GIVE_UP times slower per sample than one
    thread; other chunks run in one call."""
    choice = WorkerChoice()
    assert choice.pieces(1, 320, 32) == [320]
    choice.choose(2, 32)
    assert choice.pieces(1, 128, 32) == [128]                  # one thread's probe: whole
    choice.record(2, 1, 128, 1.0)                               # 1/128 s per sample
    assert choice.choose(2, 32)[0] == 2
    assert choice.pieces(2, 200, 32) == [32, 64, 64, 40]       # 7 batches, the last short
    assert choice.pieces(2, 40, 32) == [32, 8]
    assert choice.pieces(2, 20, 32) == [20]
    assert not choice.give_up(2, 32, 1.2 * 32 / 128)
    assert choice.give_up(2, 32, 1.3 * 32 / 128)
    assert not choice.give_up(1, 32, 9.0)                      # one thread never stops
    choice.record(2, 2, 32, 1.3 * 32 / 128)                     # the probe, stopped, lost
    assert choice.choose(2, 32)[0] == 1                         # (timed again at once)
    assert choice.pieces(1, 320, 32) == [320] and not choice.give_up(2, 32, 9.0)


def test_a_probe_that_gives_up_changes_nothing_but_the_calls(monkeypatch):
    """A probe of every thread that stops early leaves the rest of its chunk
    to the next kernel call: the same minibatches, the same result bit for
    bit as a fit whose probes all run to the end -- the parameters, and the
    epochs' (weighted) losses, summed per minibatch rather than per call."""
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(600, 8)), rng.integers(0, 3, size=600)
    weights = rng.uniform(0.5, 2.0, size=600)
    results, losses, calls = [], [], []
    train = bpfast.MLP._train
    monkeypatch.setattr(bpfast.MLP, "_train", lambda self, X, T, order, *a, **k:
                        (calls.append((len(order), k["n_workers"])),
                         train(self, X, T, order, *a, **k))[1])
    for stop in (False, True):
        monkeypatch.setattr(WorkerChoice, "give_up",
                            lambda self, w, n, s, stop=stop: stop and self.probes(w))
        calls.clear()
        net = bpfast.MLP([8, 10, 3], "tanh", "softmax", "cross_entropy", seed=0)
        history = net.fit(X, y, epochs=2, batch_size=8, n_threads=2, sample_weight=weights,
                          optimizer=optim.Adam(lr=0.01), progress=False)
        results.append(params_snapshot(net))
        losses.append(history["loss"])
        assert sum(n for n, _ in calls) == 1200
        i = calls.index((8, 2))             # the untimed head of the probe of every thread
        probe = calls[i + 1:i + 1 + WorkerChoice.PROBE_PIECES]
        if stop:                            # one call, then a new chunk and its head
            assert probe[0][1] == 2 and 8 < probe[0][0] < 592 and probe[1][0] == 8
        else:
            assert [w for _, w in probe] == [2] * WorkerChoice.PROBE_PIECES
            assert sum(n for n, _ in probe) == 592      # the rest of the epoch
    assert_same_params(*results)
    assert losses[0] == losses[1]


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


def test_a_chunk_first_minibatch_on_threads_is_untimed_in_a_probe(monkeypatch):
    """The first minibatch of a chunk on several threads (Hogwild: one sample
    per thread) runs in a call of its own.  In a probe of every thread it
    wakes them and moves their share of the parameters to their cores;
    timing it made a probe of two threads look slower than one (it had cost
    a whole probe's time on this project's virtual machine), so a probe
    times the rest of its chunk only.  In any other chunk it is part of what
    the threads cost, and timed (beside a busy core, where a barrier can wait
    a scheduler slice, an untimed minibatch hid that cost from the choice).
    Every chunk is cut so whatever the choice."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(400, 8)), rng.integers(0, 3, size=400)
    timed, calls = [], []
    record = WorkerChoice.record
    monkeypatch.setattr(WorkerChoice, "record", lambda self, n, w, samples, seconds:
                        (timed.append((samples, self.probes(w))),
                         record(self, n, w, samples, seconds)))
    train = bpfast.MLP._train
    monkeypatch.setattr(bpfast.MLP, "_train", lambda self, X, T, order, *a, **k:
                        (calls.append(len(order)), train(self, X, T, order, *a, **k))[1])
    monkeypatch.setattr(WorkerChoice, "give_up", lambda *a: False)
    monkeypatch.setattr(_training, "chunk_samples", lambda *a: 64)
    net = bpfast.MLP([8, 10, 3], "tanh", "softmax", "cross_entropy", seed=0)
    net.fit(X, y, epochs=1, batch_size=16, n_threads=2, progress=False, lr=0.1)
    probes = sum(probe for _, probe in timed)
    assert calls[0] == 16 and sum(calls) == 400 and probes >= 1   # 2: lost, timed again
    assert sum(n for n, _ in timed) + 16 * probes == 400     # the probe's head untimed
    assert len(calls) > len(timed) + WorkerChoice.PROBE_PIECES - 1   # a head per chunk
    calls.clear()
    net.fit(X, y, epochs=1, batch_size=16, n_threads=1, progress=False, lr=0.1)
    assert calls == [64] * 6 + [16]                     # one thread: one call per chunk
    calls.clear()
    timed.clear()
    net = bpfast.MLP([8, 10, 3], "tanh", "softmax", "cross_entropy", seed=0)
    net.fit(X, y, epochs=1, batch_size=1, n_threads=2, hogwild=True, progress=False, lr=0.1)
    probes = sum(probe for _, probe in timed)
    assert calls[0] == 2 and sum(calls) == 400 and probes >= 1
    assert sum(n for n, _ in timed) + 2 * probes == 400


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
