"""Threads hammering bpfast at once: the stress test behind ``freethreading_compatible``.

Runs on any interpreter.  On a free-threaded CPython (3.13t, 3.14t) the calls
really run in parallel; with the GIL the thread switch interval is cut to a
microsecond so that the threads interleave as finely as they can.  Two kinds:

* One network shared by many threads, each running a rotating mix of every
  entry point (updates, reads, pickling, saving, the optimizer's state_dict).
  All updates take the same sample with the same rule, so whatever their
  order, k updates give the same state: the serial replay's state k.  Hence
  exact checks: the final network is the replay's state K (no update lost,
  none doubled), each returned loss is the replay's at a distinct step, and
  every read equals the read of one whole replay state (none sees an update
  half-way).
* Many threads, each with its own network: every result is bit-identical to
  the same work done serially.

tests/test_concurrency.py checks the lock contract itself, deterministically.
"""

import collections
import copy
import os
import pickle
import subprocess
import sys
import sysconfig
import warnings

import numpy as np
import pytest

import bpfast
from bpfast import optim
from conftest import run_threads

try:
    from scipy import sparse
except ImportError:
    sparse = None

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
LR = 0.1
ADAM_LR = 0.01


def gil_enabled():
    return getattr(sys, "_is_gil_enabled", lambda: True)()


@pytest.fixture(autouse=True)
def fine_interleaving():
    """With the GIL, switch threads every microsecond (restored afterwards)."""
    if not gil_enabled():
        yield
        return
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


# ---------------------------------------------------------------- the GIL

@pytest.mark.skipif(not FREE_THREADED, reason="not a free-threaded CPython build")
def test_importing_bpfast_keeps_the_gil_disabled():
    """Every kernel build declares that it runs without the GIL: importing it
    neither warns nor switches the GIL back on (in a fresh interpreter)."""
    code = ("import importlib, sys\n"
            "import bpfast\n"
            "from bpfast import _dispatch\n"
            "for name in _dispatch.available_kernels():\n"
            "    _dispatch.load_kernel(name)\n"
            "print(sys._is_gil_enabled())\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    src = os.path.dirname(os.path.dirname(os.path.abspath(bpfast.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([src, *env.get("PYTHONPATH", "").split(os.pathsep)])
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", done.stdout + done.stderr


# ---------------------------------------------------------------- one network, many threads

# steps: updates it makes; call; returns_loss: returns the loss before its one step;
# counted: its steps are the shared optimizer's (opt.steps)
Update = collections.namedtuple("Update", "steps call returns_loss counted")


class SharedProblem:
    """A network, one sample that every update takes, and queries to read it with."""

    def __init__(self, rule, dtype):
        self.rule = rule
        self.net = bpfast.MLP([6, 12, 3], activation="tanh", output="softmax",
                              loss="cross_entropy", dtype=dtype, seed=0)
        rng = np.random.default_rng(1)
        self.x = rng.normal(size=6).astype(dtype)
        self.label = 1
        self.X3 = np.tile(self.x, (3, 1))               # fit: three updates on the sample
        self.y3 = np.full(3, self.label)
        self.Q = rng.normal(size=(16, 6)).astype(dtype)
        self.yQ = rng.integers(0, 3, size=16)
        self.opt = optim.SGD(lr=LR) if rule == "sgd" else optim.Adam(lr=ADAM_LR)

    def updates(self):
        """{name: Update}: every way of making the update, each on the same sample."""
        net, x, label, opt = self.net, self.x, self.label, self.opt
        fit_kw = dict(epochs=1, batch_size=1, shuffle=False, progress=False)
        if self.rule == "sgd":
            return {
                "sgd_step": Update(1, lambda: net.sgd_step(x, label, LR), True, False),
                "sgd_step batch": Update(1, lambda: net.sgd_step(x[None], [label], LR),
                                         True, False),
                # a list of floats: read into the network's own input row
                "sgd_step list": Update(1, lambda: net.sgd_step(x.tolist(), label, LR),
                                        True, False),
                "step": Update(1, lambda: net.step(x, label, opt), True, True),
                "fit": Update(3, lambda: net.fit(self.X3, self.y3, lr=LR, **fit_kw),
                              False, False),
            }
        return {
            "step": Update(1, lambda: net.step(x, label, opt), True, True),
            "step batch": Update(1, lambda: net.step(x[None], [label], opt), True, True),
            "step list": Update(1, lambda: net.step(x.tolist(), label, opt), True, True),
            "fit": Update(3, lambda: net.fit(self.X3, self.y3, optimizer=opt, **fit_kw),
                          False, True),
        }

    def replay_step(self):
        """One update, serially; the loss before it."""
        if self.rule == "sgd":
            return self.net.sgd_step(self.x, self.label, LR)
        return self.net.step(self.x, self.label, self.opt)

    def reads(self, folder):
        """{name: call(k) -> what it read, as a tuple of arrays}; k names the thread."""
        net, Q, yQ, opt = self.net, self.Q, self.yQ, self.opt

        def save(k):
            path = folder / f"net{k}.npz"
            net.save(path)
            return (bpfast.load(path)._params,)

        def state_dict(k):
            return optimizer_arrays(opt.state_dict())

        def pickled_optimizer(k):
            twin = pickle.loads(pickle.dumps(opt))     # unbound: its state as it was
            if twin._state is None:
                return (np.array(twin.steps),)
            return (np.array(twin.steps), twin._state)

        reads = {
            "forward": lambda k: (net.forward(Q),),
            "forward one": lambda k: (net.forward(Q[0]),),
            "forward one list": lambda k: (net.forward(Q[1].tolist()),),
            "predict": lambda k: (net.predict(Q),),
            "predict one": lambda k: (np.array(net.predict(Q[0])),),
            "evaluate": lambda k: tuple(np.array(v) for v in net.evaluate(Q, yQ).values()),
            "gradients": lambda k: tuple(g for part in net.gradients(Q, yQ) for g in part),
            "pickle": lambda k: (pickle.loads(pickle.dumps(net))._params,),
            "deepcopy": lambda k: (copy.deepcopy(net)._params,),
            "save": save,
        }
        if self.rule == "adam":
            reads["state_dict"] = state_dict
            reads["pickled optimizer"] = pickled_optimizer
        return reads


def optimizer_arrays(state_dict):
    """(step, every state array) of an optimizer's state_dict; (0,) before a step."""
    state = state_dict["state"]
    if not state:
        return (np.array(0.0),)
    out = [np.array(state[0]["step"])]
    for i in sorted(state):
        out += [np.asarray(v) for key, v in sorted(state[i].items()) if key != "step"]
    return tuple(out)


def fingerprint(arrays):
    return tuple((a.dtype.str, a.shape, a.tobytes()) for a in arrays)


def check_arrays(name, arrays):
    for a in arrays:
        assert isinstance(a, np.ndarray), (name, type(a))
        if a.dtype.kind == "f":
            assert np.isfinite(a).all(), f"{name} returned NaN or inf"


def schedule(n_threads, rounds, names):
    """Thread k's calls: the names in turn, starting at its own offset."""
    return [[names[(k + r) % len(names)] for r in range(rounds)] for k in range(n_threads)]


def hammer_one_network(rule, dtype, tmp_path, n_threads, rounds):
    problem = SharedProblem(rule, dtype)
    replay = copy.deepcopy(problem)          # the same network, optimizer and data, untouched
    updates = problem.updates()
    reads = problem.reads(tmp_path)
    plan = schedule(n_threads, rounds, list(updates) + list(reads))
    made = [updates[name] for calls in plan for name in calls if name in updates]
    n_steps = sum(u.steps for u in made)

    def job(k):
        def run():
            return [(name, updates[name].call() if name in updates else reads[name](k))
                    for name in plan[k]]
        return run

    results = run_threads(*(job(k) for k in range(n_threads)))

    # The serial replay: state j is the network after j updates.  Index every
    # read of every state by what it returned.
    replay_reads = replay.reads(tmp_path)
    for name in ("pickle", "deepcopy", "save"):      # each copies the parameters
        replay_reads[name] = lambda k: (replay.net._params,)
    states = {name: collections.defaultdict(set) for name in reads}
    losses = []
    for j in range(n_steps + 1):
        for name, read in replay_reads.items():
            states[name][fingerprint(read(0))].add(j)
        if j < n_steps:
            losses.append(replay.replay_step())

    returned = []
    for calls in results:
        for name, value in calls:
            if name in reads:
                check_arrays(name, value)
                assert fingerprint(value) in states[name], (
                    f"{name} read a state that no number of whole updates gives: {value}")
            elif updates[name].returns_loss:
                assert isinstance(value, float) and np.isfinite(value), (name, value)
                returned.append(value)
            else:
                assert np.isfinite(value["loss"]).all(), (name, value)
    # No update lost or made twice, and each loss is that of a distinct replay step.
    np.testing.assert_array_equal(problem.net._params, replay.net._params, strict=True)
    assert problem.opt.steps == sum(u.steps for u in made if u.counted)
    unexplained = collections.Counter(returned) - collections.Counter(losses)
    assert not unexplained, f"losses of no replay step, or of one step twice: {unexplained}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_one_network_shared_by_many_threads(rule, dtype, tmp_path):
    hammer_one_network(rule, dtype, tmp_path, n_threads=8, rounds=40)


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_one_network_shared_by_many_threads_long(rule, tmp_path):
    hammer_one_network(rule, "float64", tmp_path, n_threads=16, rounds=400)


# ---------------------------------------------------------------- a network per thread

CONFIGS = [
    dict(activation="tanh", output="softmax", loss="cross_entropy", dtype="float64"),
    dict(activation="relu", output="sigmoid", loss="mse", dtype="float32"),
    dict(activation="leaky_relu", output="softmax", loss="cross_entropy", dtype="float32"),
    dict(activation="sigmoid", output="sigmoid", loss="cross_entropy", dtype="float64"),
]


def own_network_work(k):
    """Build network k and train it through every entry point; what it computed."""
    config = CONFIGS[k % len(CONFIGS)]
    dtype = config["dtype"]
    rng = np.random.default_rng(100 + k)
    X = rng.normal(size=(120, 8)).astype(dtype)
    y = rng.integers(0, 4, size=120)
    net = bpfast.MLP([8, 16, 4], seed=k, **config)
    out = []
    hist = net.fit(X, y, epochs=2, lr=0.05, batch_size=8, momentum=0.9, seed=k,
                   n_threads=1 + k % 2, progress=False)
    out += [np.array(hist["loss"]), np.array(hist["accuracy"])]
    for s in range(10):
        out.append(np.array(net.sgd_step(X[s], y[s], 0.05)))
    adam = optim.Adam(lr=0.005)
    for s in range(5):
        out.append(np.array(net.step(X[s], y[s], adam)))
        out.append(np.array(net.step(X[8 * s:8 * s + 8], y[8 * s:8 * s + 8], adam)))
    twin = pickle.loads(pickle.dumps(net))
    twin.fit(X, y, epochs=1, batch_size=1, seed=k, progress=False)
    if sparse is not None:          # the kernel's CSR path
        X_csr = sparse.csr_matrix(np.where(X > 0.5, X, 0))
        twin.fit(X_csr, y, epochs=1, batch_size=4, seed=k, progress=False)
        out.append(twin.forward(X_csr))
    out += [net.forward(X), net.forward(X[0]), net.predict(X), np.array(net.predict(X[0])),
            *net.gradients(X, y)[0], np.array(net.evaluate(X, y)["loss"]),
            net._params, twin._params, *optimizer_arrays(adam.state_dict())]
    return out


def check_a_network_per_thread(n_threads):
    expected = [own_network_work(k) for k in range(n_threads)]
    results = run_threads(*(lambda k=k: own_network_work(k) for k in range(n_threads)))
    for got, want in zip(results, expected):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b, strict=True)


def test_a_network_per_thread_equals_serial():
    check_a_network_per_thread(8)


@pytest.mark.slow
def test_a_network_per_thread_equals_serial_long():
    for _ in range(5):
        check_a_network_per_thread(16)


# ---------------------------------------------------------------- the estimators

def test_a_shared_estimator_predicts_as_serially():
    pytest.importorskip("sklearn")
    from bpfast.sklearn import BPClassifier
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 5))
    y = rng.integers(0, 3, size=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # not converged in 5 epochs: not the point
        clf = BPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0).fit(X, y)
    parts = [X[k::8] for k in range(8)]
    expected = [(clf.predict_proba(p), clf.predict(p), clf.score(p, y[k::8]))
                for k, p in enumerate(parts)]

    def job(k):
        return lambda: [(clf.predict_proba(parts[k]), clf.predict(parts[k]),
                         clf.score(parts[k], y[k::8])) for _ in range(5)]

    for got, want in zip(run_threads(*(job(k) for k in range(8))), expected):
        for proba, classes, score in got:
            np.testing.assert_array_equal(proba, want[0], strict=True)
            np.testing.assert_array_equal(classes, want[1], strict=True)
            assert score == want[2]
