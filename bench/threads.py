"""Threads: fit's n_threads=2 against one thread, idle and beside a busy core.

Three measurements, each in one run on this machine:

* minibatch training (deterministic slices): ``fit(n_threads=2)`` against
  ``fit(n_threads=1)`` on N2 and N3 (bench/_common.py) at batch 32 and 128,
  each timed epoch both the first of a new network ("new") and the second
  ("2nd epoch", after an untimed one): a new network's fit pays for choosing
  how many OS threads to run and for waking the other core, which a longer
  training pays once;
* Hogwild per-sample SGD: ``fit(batch_size=1, n_threads=2, hogwild=True)``
  against serial batch-1 SGD on N1, N2 and N3 (dense MNIST rows: both
  threads write the same first-layer rows at almost every sample), and on S1,
  sparse rows as fastText and Vowpal Wabbit see them (2^16 features, 20
  nonzeros per row, 2^16-32-2 relu/softmax/cross_entropy), where two threads
  rarely write the same row;

both first on an idle machine, then with a busy process (a Python loop that
spins) beside them, so that one of the two cores is taken.  Every ratio is
of two cases timed interleaved (bench/_common.measure) under the same load.
The targets of the issue: two threads >= 1.8x one (1.7x for Hogwild) when
idle, and never below 0.9x one thread when the other core is busy.

* Hogwild's accuracy: MNIST test accuracy after 1, 2 and 3 epochs of N2 at
  batch 1, serial and Hogwild on two threads, over several seeds (--seeds):
  the mean and spread of each, so that "within noise" can be read off.

    python bench/threads.py                  # the whole measurement (a few minutes)
    python bench/threads.py --quick          # a smoke run (timings mean little)
    python bench/threads.py --json out.json
"""

import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

import bpfast  # noqa: E402

MINIBATCH = dict(nets=("N2", "N3"), batch_sizes=(32, 128), idle=1.8, busy=0.9)
HOGWILD = dict(nets=("N1", "N2", "N3", "S1"), idle=1.7, busy=0.9)
SPARSE = _common.NetConfig("S1", (1 << 16, 32, 2), "relu", "softmax", "cross_entropy", 0.05,
                           "sparse")
SPARSE_NNZ = 20
ACCURACY_NET = "N2"
SPIN = "while True: pass"


def parse_args(argv=None):
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--samples", type=_common.positive_int, default=None,
                        help="samples per timed epoch (default 20,000; 2,000 with --quick)")
    parser.add_argument("--reps", type=_common.positive_int, default=None,
                        help="timed epochs per case, median reported (default 5; 2 with --quick)")
    parser.add_argument("--seeds", type=_common.positive_int, default=None,
                        help="seeds of the accuracy comparison (default 4; 1 with --quick)")
    parser.add_argument("--epochs", type=_common.positive_int, default=3,
                        help="epochs of the accuracy comparison")
    parser.set_defaults(dtype="float32")
    args = parser.parse_args(argv)
    args.samples = args.samples or (2000 if args.quick else 20000)
    args.reps = args.reps or (2 if args.quick else 5)
    args.seeds = args.seeds or (1 if args.quick else 4)
    return args


@contextmanager
def load(busy):
    """Run the block with one spinning process beside it when `busy`."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    time.sleep(0.5)                       # let the scheduler see it
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def fit_case(cfg, dtype, data, batch, threads, hogwild, seed=0, epoch=1):
    """One timed epoch of fit: the first of a new network (epoch 1) or the
    second, after an untimed first (epoch 2)."""
    holder = {}

    def run():
        holder["net"].fit(data.X, data.targets, epochs=1, lr=cfg.lr, batch_size=batch,
                          n_threads=threads, hogwild=hogwild, shuffle=True, seed=seed,
                          progress=False)

    def setup():
        holder["net"] = bpfast.MLP(list(cfg.layers), activation=cfg.activation,
                                   output=cfg.output, loss=cfg.loss, dtype=dtype, seed=seed)
        for _ in range(epoch - 1):
            run()

    key = dict(net=cfg.key, dtype=dtype, batch=batch, threads=threads, hogwild=hogwild,
               epoch=epoch)
    return _common.Case(key, run, data.n, setup=setup)


def sparse_data(n, dtype, seed=0):
    """n CSR rows of SPARSE_NNZ ones among 2^16 columns; the label says whether
    most of them fall in the first half of the columns."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_features = SPARSE.layers[0]
    cols = rng.integers(0, n_features, size=(n, SPARSE_NNZ))
    X = sp.csr_matrix((np.ones(cols.size, dtype=dtype), cols.ravel(),
                       np.arange(0, cols.size + 1, SPARSE_NNZ)), shape=(n, n_features))
    X.sum_duplicates()
    y = ((cols < n_features // 2).sum(axis=1) > SPARSE_NNZ // 2).astype(np.int64)
    return _common.Data(X, y, None)


def timing_rows(args, X, y):
    rows, ratios = [], []
    pairs = []        # (title, net, dtype, batch, hogwild, targets, timed epoch)
    for dtype in _common.dtypes(args):
        for net in MINIBATCH["nets"]:
            cfg = _common.NETWORKS[net]
            for batch in MINIBATCH["batch_sizes"]:
                for epoch, name in ((1, "new"), (2, "2nd epoch")):
                    pairs.append((f"n_threads 2 / 1, b{batch}, {name}", cfg, dtype, batch, False,
                                  MINIBATCH, epoch))
        for net in HOGWILD["nets"]:
            pairs.append(("hogwild 2 threads / serial, b1",
                          SPARSE if net == SPARSE.key else _common.NETWORKS[net], dtype, 1,
                          True, HOGWILD, 1))
    for busy in (False, True):
        condition = "other core busy" if busy else "idle"
        cases = []
        for title, cfg, dtype, batch, hogwild, _, epoch in pairs:
            data = (sparse_data(2 * len(y), dtype) if cfg is SPARSE
                    else _common.Data(X.astype(dtype), y, None))
            cases.append((fit_case(cfg, dtype, data, batch, 1, False, epoch=epoch),
                          fit_case(cfg, dtype, data, batch, 2, hogwild, epoch=epoch)))
        with load(busy):
            for one, two in cases:           # each pair interleaved, under the same load
                _common.measure([one, two], args.reps)
        for (title, cfg, dtype, batch, hogwild, targets, _), (one, two) in zip(pairs, cases):
            for case in (one, two):
                rows.append(dict(case.key, condition=condition,
                                 samples_per_s=case.samples_per_s))
            target = targets["busy" if busy else "idle"]
            value = two.samples_per_s / one.samples_per_s
            ratios.append(dict(ratio=title, net=cfg.key, dtype=dtype, condition=condition,
                               one=one.samples_per_s, two=two.samples_per_s, value=value,
                               target=target, verdict="ok" if value >= target else "MISSED"))
    return rows, ratios


def accuracy_rows(args, X, y, X_test, y_test):
    cfg = _common.NETWORKS[ACCURACY_NET]
    scores = {}          # (mode, epoch) -> accuracies over seeds
    for seed in range(args.seeds):
        for mode, threads, hogwild in (("serial", 1, False), ("hogwild", 2, True)):
            net = bpfast.MLP(list(cfg.layers), activation=cfg.activation, output=cfg.output,
                             loss=cfg.loss, dtype="float32", seed=seed)
            for epoch in range(1, args.epochs + 1):
                net.fit(X, y, epochs=1, lr=cfg.lr, batch_size=1, n_threads=threads,
                        hogwild=hogwild, shuffle=True, seed=seed * 1000 + epoch,
                        progress=False)
                accuracy = float(np.mean(net.predict(X_test) == y_test))
                scores.setdefault((mode, epoch), []).append(accuracy)
    rows = []
    for epoch in range(1, args.epochs + 1):
        row = dict(net=cfg.key, epoch=epoch, seeds=args.seeds)
        for mode in ("serial", "hogwild"):
            acc = scores[(mode, epoch)]
            row[f"{mode}_mean"] = statistics.mean(acc)
            row[f"{mode}_sd"] = statistics.stdev(acc) if len(acc) > 1 else 0.0
        row["difference"] = row["hogwild_mean"] - row["serial_mean"]
        rows.append(row)
    return rows


def main(argv=None):
    args = parse_args(argv)
    info = _common.machine_info()
    _common.print_machine(info)
    print(f"logical CPUs: {os.cpu_count()}; a busy process is one Python loop that spins")
    X_train, y_train, X_test, y_test = _common.load_mnist(args.mnist_dir)
    X, y = X_train[:args.samples], y_train[:args.samples]
    print(_common.describe_data("MNIST train", X, y))
    print(f"{args.samples} samples per timed epoch, median of {args.reps} after 1 warm-up\n")

    rows, ratios = timing_rows(args, X, y)
    print(_common.format_table(ratios, [
        ("ratio", "ratio", ""), ("net", "net", ""), ("dtype", "dtype", ""),
        ("condition", "load", ""), ("one", "1 thread/s", ",.0f"), ("two", "2 threads/s", ",.0f"),
        ("value", "value", ".2f"), ("target", "target", "g"), ("verdict", "", "")]))

    n_fit = 2000 if args.quick else len(X_train)
    accuracy = accuracy_rows(args, X_train[:n_fit], y_train[:n_fit], X_test, y_test)
    print(f"\nMNIST test accuracy, {ACCURACY_NET} at batch 1, {n_fit} training samples, "
          f"{args.seeds} seed(s): serial against Hogwild on 2 threads")
    print(_common.format_table(accuracy, [
        ("epoch", "epoch", "d"), ("serial_mean", "serial", ".4f"), ("serial_sd", "sd", ".4f"),
        ("hogwild_mean", "hogwild", ".4f"), ("hogwild_sd", "sd", ".4f"),
        ("difference", "difference", "+.4f")]))
    if args.json:
        _common.write_json(args.json, dict(benchmark="threads", args=vars(args), machine=info,
                                           rows=rows, ratios=ratios, accuracy=accuracy))


if __name__ == "__main__":
    main()
