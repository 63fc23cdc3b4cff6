"""GridSearchCV over bpfast estimators on a dask.distributed cluster, through joblib.

The same GridSearchCV call runs three times: serially, on joblib's default
process pool (n_jobs=2), and on a dask.distributed LocalCluster of 2 worker
processes through joblib's "dask" backend.  Pointing the Client at a real
cluster (``Client("scheduler-address:8786")``) spreads the very same search
over many machines; Ray offers the same through ``ray.util.joblib``.  Training
is deterministic given random_state, so every backend should find the same
scores; the script compares every fold's score and reports any difference.

    python bench/dask_gridsearch.py            # MNIST 5k subset (or digits), 12 fits x 3 folds
    python bench/dask_gridsearch.py --quick    # digits, smaller grid
"""

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
from dask.distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import bpfast
from bpfast.sklearn import BPClassifier

DEFAULT_MNIST = Path(os.environ.get(
    "BPFAST_MNIST_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))


def load(args):
    if not args.quick:
        try:
            X, y, _, _ = bpfast.datasets.load_mnist(args.mnist_dir)
            rng = np.random.default_rng(args.seed)
            keep = rng.choice(len(X), 5000, replace=False)
            return "mnist-5k", X[keep].astype(np.float64), y[keep]
        except (OSError, ValueError) as exc:
            print(f"MNIST unavailable ({exc}); using digits")
    X, y = load_digits(return_X_y=True)
    return "digits", X / 16.0, y


def search(X, y, grid, args, n_jobs):
    estimator = BPClassifier(batch_size=1, momentum=0.0, max_iter=args.epochs, tol=0.0,
                             n_iter_no_change=args.epochs, random_state=args.seed)
    gs = GridSearchCV(estimator, grid, cv=3, n_jobs=n_jobs)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gs.fit(X, y)
    return gs, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits and a 4-point grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST)
    args = parser.parse_args(argv)
    args.epochs = 3 if args.quick else 5
    grid = {"hidden_layer_sizes": [(32,), (128,)], "learning_rate_init": [0.003, 0.03]}
    if not args.quick:
        grid["activation"] = ["relu", "tanh", "logistic"]
    data_name, X, y = load(args)
    n_fits = 3 * int(np.prod([len(v) for v in grid.values()]))
    print(f"{data_name}: {X.shape[0]} samples x {X.shape[1]} features; grid {grid}; "
          f"{n_fits} fits of {args.epochs} epochs of per-sample SGD")

    timings = {}
    serial, timings["serial (n_jobs=1)"] = search(X, y, grid, args, n_jobs=1)
    loky, timings["joblib processes (n_jobs=2)"] = search(X, y, grid, args, n_jobs=2)
    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - start
        with joblib.parallel_backend("dask"):
            on_dask, timings["dask LocalCluster (2 workers)"] = search(X, y, grid, args,
                                                                      n_jobs=-1)
        workers = len(client.scheduler_info()["workers"])
    agree = True
    for name, gs in (("joblib", loky), ("dask", on_dask)):
        for k in range(3):
            key = f"split{k}_test_score"
            differ = np.flatnonzero(gs.cv_results_[key] != serial.cv_results_[key])
            for i in differ:
                agree = False
                print(f"{name} differs from serial: fold {k}, {serial.cv_results_['params'][i]}: "
                      f"{gs.cv_results_[key][i]} vs {serial.cv_results_[key][i]}")

    print(f"\n{'backend':<32} {'seconds':>8} {'speedup':>8}")
    print("-" * 50)
    for name, seconds in timings.items():
        print(f"{name:<32} {seconds:>8.2f} {timings['serial (n_jobs=1)'] / seconds:>7.2f}x")
    print(f"(dask cluster start-up, not included: {startup:.2f} s, {workers} workers)")
    verdict = "all three backends agree" if agree else "THE BACKENDS DISAGREE, see above"
    print(f"\nbest params {on_dask.best_params_}, mean CV accuracy {on_dask.best_score_:.4f} "
          f"({verdict})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(data=data_name, grid={k: [str(v) for v in vs]
                                                 for k, vs in grid.items()},
                           epochs=args.epochs, n_fits=n_fits, seconds=timings,
                           cluster_startup_seconds=startup, best_params={
                               k: str(v) for k, v in on_dask.best_params_.items()},
                           best_score=on_dask.best_score_, backends_agree=agree), f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
