"""bpfast.sklearn.BPClassifier vs sklearn's MLPClassifier, side by side.

Two regimes, each timed in the same run on one core (bpfast's n_threads=1;
scikit-learn's BLAS limited to one thread with threadpoolctl unless
--blas-threads says otherwise), over several seeds:

* default: ``BPClassifier()`` against ``MLPClassifier()``, both with every
  default (Adam, batch 200, up to 200 epochs with scikit-learn's stopping rule)
  and the same ``random_state``.  bpfast follows scikit-learn's trajectory
  (same initial weights, shuffles and updates), so both stop at the same epoch
  with the same accuracy: the difference is the time.
* per-sample: ``solver="sgd"``, ``batch_size=1``, a fixed number of epochs,
  where scikit-learn pays Python overhead on every sample and bpfast does not.

Data: scikit-learn's digits, and 10k MNIST training images (the IDX files in
``shared/data/mnist`` beside the repository, or $BPFAST_MNIST_DIR).

    python bench/estimators.py                 # digits + MNIST 10k, 3 seeds, a few minutes
    python bench/estimators.py --quick         # smaller, one seed, < 30 s
    python bench/estimators.py --json out.json
"""

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_info, threadpool_limits

import bpfast
from _common import write_json
from bpfast.sklearn import BPClassifier

DEFAULT_MNIST = Path(os.environ.get(
    "BPFAST_MNIST_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))

# (name, hyperparameters beyond the defaults); the per-sample epochs are set per run.
REGIMES = [
    ("default", dict()),
    ("per-sample", dict(solver="sgd", batch_size=1, learning_rate_init=0.01, momentum=0.0,
                        alpha=0.0, tol=0.0)),
]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_data(args):
    """{name: (X_train, y_train, X_test, y_test)}; pixels in [0, 1]."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.25, random_state=args.seed, stratify=y)
    data = {"digits": (X_train, y_train, X_test, y_test)}
    try:
        X_train, y_train, X_test, y_test = bpfast.datasets.load_mnist(args.mnist_dir)
    except (OSError, ValueError) as exc:
        print(f"MNIST skipped ({exc})", file=sys.stderr)
        return data
    rng = np.random.default_rng(args.seed)
    train = rng.choice(len(X_train), args.mnist_train, replace=False)
    test = rng.choice(len(X_test), args.mnist_test, replace=False)
    name = f"mnist-{args.mnist_train // 1000}k"
    data[name] = (X_train[train].astype(np.float64), y_train[train],
                  X_test[test].astype(np.float64), y_test[test])
    return data


def estimators(params, seed):
    """The contenders for one regime: (label, dtype, estimator)."""
    return [
        ("sklearn MLPClassifier", "float64", MLPClassifier(random_state=seed, **params)),
        ("bpfast BPClassifier", "float64", BPClassifier(random_state=seed, **params)),
        ("bpfast BPClassifier", "float32", BPClassifier(random_state=seed, dtype="float32",
                                                        **params)),
    ]


def run(args):
    data = load_data(args)
    rows = []
    for data_name, (X_train, y_train, X_test, y_test) in data.items():
        print(f"{data_name}: {X_train.shape[0]} train, {X_test.shape[0]} test samples, "
              f"{X_train.shape[1]} features, {len(np.unique(y_train))} classes", flush=True)
        for regime, shared in REGIMES:
          # per-sample SGD in scikit-learn costs minutes per seed: the first seed only
          for seed in (args.seeds if regime == "default" else args.seeds[:1]):
            params = dict(shared, hidden_layer_sizes=(args.hidden,))
            if regime == "per-sample":
                params.update(max_iter=args.epochs_per_sample,
                              n_iter_no_change=args.epochs_per_sample)
            for label, dtype, est in estimators(params, seed):
                with warnings.catch_warnings(), threadpool_limits(args.blas_threads or None):
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    start = time.perf_counter()
                    est.fit(X_train, y_train)
                    seconds = time.perf_counter() - start
                rows.append(dict(
                    dataset=data_name, regime=regime, seed=seed,
                    batch_size=params.get("batch_size", min(200, len(X_train))),
                    estimator=label, dtype=dtype, epochs=int(est.n_iter_),
                    fit_seconds=seconds,
                    samples_per_s=est.n_iter_ * X_train.shape[0] / seconds,
                    train_accuracy=float(est.score(X_train, y_train)),
                    test_accuracy=float(est.score(X_test, y_test)),
                    final_loss=float(est.loss_curve_[-1])))
                print_row(rows[-1])
    return rows


HEADER = (f"{'dataset':<10} {'batch':>5} {'estimator':<22} {'dtype':<8} {'epochs':>6} "
          f"{'fit s':>8} {'samples/s':>11} {'speedup':>8} {'train acc':>9} {'test acc':>8}")


def print_row(row, speedup=None):
    ratio = "" if speedup is None else f"{speedup:.1f}x"
    print(f"{row['dataset']:<10} {row['batch_size']:>5} {row['estimator']:<22} "
          f"{row['dtype']:<8} {row['epochs']:>6} {row['fit_seconds']:>8.2f} "
          f"{row['samples_per_s']:>11,.0f} {ratio:>8} {row['train_accuracy']:>9.4f} "
          f"{row['test_accuracy']:>8.4f}", flush=True)


def print_table(rows):
    """Per dataset, regime and contender: the mean over the seeds."""
    print("\nmean over seeds " + ", ".join(str(s) for s in sorted({r["seed"] for r in rows})))
    print(HEADER)
    print("-" * len(HEADER))
    groups = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["regime"], row["estimator"], row["dtype"]),
                          []).append(row)
    baseline = {}
    for key, group in groups.items():
        mean = dict(group[0])
        for name in ("epochs", "fit_seconds", "samples_per_s", "train_accuracy",
                     "test_accuracy"):
            mean[name] = float(np.mean([r[name] for r in group]))
        mean["epochs"] = round(mean["epochs"])
        if key[2].startswith("sklearn"):
            baseline[key[:2]] = mean["fit_seconds"]
        print_row(mean, baseline[key[:2]] / mean["fit_seconds"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="MNIST 2k/1k, fewer epochs: under 30 s")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", metavar="OUT", help="write the rows and the set-up here")
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--hidden", type=int, default=100, help="hidden units (default 100)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads for scikit-learn (default 1, like bpfast's "
                             "n_threads=1; 0 keeps the library's default)")
    args = parser.parse_args(argv)
    if args.quick:
        args.mnist_train, args.mnist_test, args.epochs_per_sample = 2000, 1000, 2
        args.seeds = args.seeds[:1]
    else:
        args.mnist_train, args.mnist_test, args.epochs_per_sample = 10000, 5000, 3
    args.seed = args.seeds[0]          # the data split and the MNIST subset

    setup = dict(
        cpu=cpu_name(), python=platform.python_version(), numpy=np.__version__,
        sklearn=sklearn.__version__, bpfast=bpfast.__version__,
        bpfast_kernel=bpfast._dispatch.kernel_name,
        blas=[(i.get("internal_api"), i.get("num_threads")) for i in threadpool_info()],
        blas_threads_used=args.blas_threads or "library default",
        hidden_layer_sizes=[args.hidden], activation="relu", seeds=args.seeds,
        regimes={name: params for name, params in REGIMES},
        epochs={"default": "scikit-learn's stopping rule, max_iter=200",
                "per-sample": args.epochs_per_sample})
    print(f"bpfast {setup['bpfast']} ({setup['bpfast_kernel']} kernel), scikit-learn "
          f"{setup['sklearn']}, numpy {setup['numpy']}, BLAS {setup['blas']}, "
          f"{setup['blas_threads_used']} BLAS thread(s) used")
    print(f"CPU: {setup['cpu']}; network [n_features, {args.hidden}, n_classes], relu")
    print(HEADER)
    rows = run(args)
    print_table(rows)
    if args.json:
        write_json(args.json, dict(setup=setup, rows=rows))


if __name__ == "__main__":
    main()
