"""Samples/s of learn_one: bpfast.river vs river's own models, on the same stream.

Regression: river's Friedman #1 stream (10 features in [0, 1], generated, no
download), one sample at a time, progressive validation (predict_one, then
learn_one).  The MLPs have the same shape ([10, 32, 1], ReLU hidden units,
identity output) and take the same plain SGD steps: bpfast's loss is
½(ŷ − y)² and river's Squared loss is (ŷ − y)², so river's learning rate is half
of bpfast's.  river's ``neural_net.MLPRegressor`` (pure Python over pandas) was
deprecated in river 0.25 and removed in 0.26; it is timed when the installed
river still has it.  river's LinearRegression is a reference point that every
river version has.  Classification: the Phishing data set shipped with river,
bpfast.river.BPClassifier vs river's LogisticRegression.

    python bench/river_stream.py             # 20,000 samples per model
    python bench/river_stream.py --quick     # 3,000
    python bench/river_stream.py --json out.json
"""

import argparse
import itertools
import platform
import time

import numpy as np
import river
from river import datasets, linear_model, metrics, optim
from river.datasets import synth

import bpfast
from _common import write_json
from bpfast.river import BPClassifier, BPRegressor

HIDDEN = 32
LR = 0.01          # bpfast's; river's optimiser gets LR / 2 for the same steps


def river_mlp(seed):
    """river's own MLPRegressor, or None when this river no longer has it."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from river import neural_net
    except ImportError:
        return None
    act = neural_net.activations
    return neural_net.MLPRegressor(hidden_dims=(HIDDEN,),
                                   activations=(act.ReLU, act.ReLU, act.Identity),
                                   optimizer=optim.SGD(LR / 2), seed=seed)


def time_stream(model, stream, metric):
    """Progressive validation; returns (learn_one seconds, predict_one seconds, metric)."""
    learn = predict = 0.0
    clock = time.perf_counter
    for x, y in stream:
        t0 = clock()
        y_pred = model.predict_one(x)
        t1 = clock()
        model.learn_one(x, y)
        t2 = clock()
        predict += t1 - t0
        learn += t2 - t1
        if y_pred is not None:
            metric.update(y, y_pred)
    return learn, predict, metric


def run(args):
    regression = list(synth.Friedman(seed=args.seed).take(args.n))
    phishing = list(itertools.islice(itertools.cycle(datasets.Phishing()), args.n))
    contenders = [
        ("regression", "friedman", "bpfast.river BPRegressor",
         BPRegressor(hidden_layer_sizes=(HIDDEN,), activation="relu", lr=LR, seed=args.seed),
         regression, metrics.MAE),
        ("regression", "friedman", "river neural_net.MLPRegressor", river_mlp(args.seed),
         regression, metrics.MAE),
        ("regression", "friedman", "river LinearRegression",
         linear_model.LinearRegression(optimizer=optim.SGD(LR / 2)), regression, metrics.MAE),
        ("classification", "phishing", "bpfast.river BPClassifier",
         BPClassifier(hidden_layer_sizes=(HIDDEN,), activation="relu", lr=LR, seed=args.seed),
         phishing, metrics.Accuracy),
        ("classification", "phishing", "river LogisticRegression",
         linear_model.LogisticRegression(optimizer=optim.SGD(LR)), phishing, metrics.Accuracy),
    ]
    rows = []
    for task, data, name, model, stream, metric in contenders:
        if model is None:
            print(f"{name}: not in river {river.__version__} (removed in 0.26), skipped")
            continue
        learn, predict, metric = time_stream(model, stream, metric())
        rows.append(dict(task=task, data=data, model=name, samples=len(stream),
                         learn_one_per_s=len(stream) / learn,
                         learn_one_us=1e6 * learn / len(stream),
                         predict_one_us=1e6 * predict / len(stream),
                         metric=type(metric).__name__, value=metric.get()))
    return rows


def print_table(rows):
    header = (f"{'data':<9} {'model':<32} {'samples':>8} {'learn_one/s':>12} "
              f"{'learn µs':>9} {'predict µs':>10} {'metric':>16}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['data']:<9} {r['model']:<32} {r['samples']:>8} {r['learn_one_per_s']:>12,.0f} "
              f"{r['learn_one_us']:>9.1f} {r['predict_one_us']:>10.1f} "
              f"{r['metric'] + ' ' + format(r['value'], '.4f'):>16}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 samples per model")
    parser.add_argument("-n", type=int, default=None, help="samples per model (default 20,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="write the rows and the set-up here")
    args = parser.parse_args(argv)
    args.n = args.n or (3000 if args.quick else 20000)
    setup = dict(python=platform.python_version(), numpy=np.__version__,
                 river=river.__version__, bpfast=bpfast.__version__,
                 bpfast_kernel=bpfast._dispatch.kernel_name, hidden=HIDDEN, lr_bpfast=LR,
                 machine=platform.machine(), seed=args.seed)
    print(f"bpfast {setup['bpfast']} ({setup['bpfast_kernel']}), river {setup['river']}, "
          f"numpy {setup['numpy']}; MLPs [n_features, {HIDDEN}, n_outputs], plain SGD")
    rows = run(args)
    print_table(rows)
    if args.json:
        write_json(args.json, dict(setup=setup, rows=rows))


if __name__ == "__main__":
    main()
