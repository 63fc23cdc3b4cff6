"""Seconds from `import bpfast` to 97% MNIST test accuracy, and PyTorch's best.

Each run happens in a fresh Python process (so import time counts and no run
warms another's caches).  The worker loads the data as NumPy arrays, then
starts the clock, imports the framework, builds a 784-100-10 relu/softmax
network with cross-entropy and trains it epoch by epoch with a decaying
learning rate (lr0 · decay^epoch, one `fit` call per epoch), measuring the
test accuracy after every epoch; the clock stops at the first epoch whose
accuracy reaches the target (evaluation time included).

bpfast runs per-sample SGD (batch 1, one thread); PyTorch (torch.set_num_threads
as --torch-threads, default 1) runs a small grid of batch sizes, learning rates
and momentum, and its fastest configuration is reported.  Every configuration
is run --repeats times; the median time is reported.

    python bench/mnist_time_to_accuracy.py --quick      # 90% target, < 60 s
    python bench/mnist_time_to_accuracy.py --json tta.json --png tta.png
"""

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

LAYERS = (784, 100, 10)

# (batch_size, lr0, decay per epoch, momentum); chosen by hand on this data.
BPFAST_GRID = [(1, 0.015, 0.7, 0.0), (1, 0.01, 0.9, 0.0), (1, 0.02, 0.7, 0.0)]
TORCH_GRID = [(64, 0.05, 0.7, 0.9), (128, 0.1, 0.7, 0.9), (128, 0.2, 0.6, 0.9),
              (256, 0.2, 0.7, 0.9), (32, 0.05, 0.7, 0.9)]
QUICK_BPFAST_GRID = BPFAST_GRID[:1]
QUICK_TORCH_GRID = TORCH_GRID[:1]


def parse_args(argv=None):
    parser = _common.base_parser(
        __doc__.splitlines()[0],
        quick_help="a 90%% target on 20000 training samples, one configuration each (< 60 s)")
    parser.set_defaults(dtype="float32")
    parser.add_argument("--target", type=float, default=None,
                        help="test accuracy to reach (default 0.97, --quick 0.90)")
    parser.add_argument("--max-epochs", type=_common.positive_int, default=None,
                        help="give up after this many epochs (default 15, --quick 3)")
    parser.add_argument("--train-samples", type=_common.positive_int, default=None,
                        help="training samples used (default all 60000, --quick 20000)")
    parser.add_argument("--repeats", type=_common.positive_int, default=None,
                        help="runs per configuration, median reported (default 3, --quick 1)")
    parser.add_argument("--torch-threads", type=_common.positive_int, default=1)
    parser.add_argument("--frameworks", nargs="+", choices=("bpfast", "torch"),
                        default=["bpfast", "torch"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)   # internal: run one configuration
    args = parser.parse_args(argv)
    quick = args.quick
    args.target = args.target if args.target is not None else (0.90 if quick else 0.97)
    args.max_epochs = args.max_epochs or (3 if quick else 15)
    args.train_samples = args.train_samples or (20000 if quick else 60000)
    args.repeats = args.repeats or (1 if quick else 3)
    return args


# ---------------------------------------------------------------- worker (a fresh process)

def worker(spec):
    """Train one configuration to the target; print the result as one JSON line."""
    import numpy as np

    with np.load(spec["data"]) as data:
        X, y, X_test, y_test = (data[k] for k in ("X_train", "y_train", "X_test", "y_test"))
    dtype = spec["dtype"]
    X, X_test = X.astype(dtype, copy=False), X_test.astype(dtype, copy=False)
    t0 = time.perf_counter()          # the clock starts before the framework's import
    train = _train_bpfast if spec["framework"] == "bpfast" else _train_torch
    curve, import_s = train(spec, X, y, X_test, y_test, t0)
    reached = [t for t, acc in curve if acc >= spec["target"]]
    print(json.dumps(dict(spec=spec, curve=curve, import_s=import_s,
                          seconds=reached[0] if reached else None,
                          epochs=len(curve), final_accuracy=curve[-1][1],
                          openblas_overrides=_common.openblas_overrides())))


def _train_bpfast(spec, X, y, X_test, y_test, t0):
    import bpfast
    import_s = time.perf_counter() - t0
    net = bpfast.MLP(list(LAYERS), activation="relu", output="softmax", loss="cross_entropy",
                     dtype=spec["dtype"], seed=spec["seed"])
    curve = []
    for epoch in range(spec["max_epochs"]):
        net.fit(X, y, epochs=1, lr=spec["lr"] * spec["decay"] ** epoch,
                batch_size=spec["batch_size"], momentum=spec["momentum"], progress=False)
        accuracy = net.evaluate(X_test, y_test)["accuracy"]
        curve.append((time.perf_counter() - t0, accuracy))
        if accuracy >= spec["target"]:
            break
    return curve, import_s


def _train_torch(spec, X, y, X_test, y_test, t0):
    import torch
    import torch.nn.functional as F
    from torch import nn
    import_s = time.perf_counter() - t0
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    tdtype = getattr(torch, spec["dtype"])
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    X_test, y_test = torch.from_numpy(X_test), torch.from_numpy(y_test)
    model = nn.Sequential(nn.Linear(LAYERS[0], LAYERS[1], dtype=tdtype), nn.ReLU(),
                          nn.Linear(LAYERS[1], LAYERS[2], dtype=tdtype))
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=spec["momentum"])
    batch, n = spec["batch_size"], X.shape[0]
    curve = []
    for epoch in range(spec["max_epochs"]):
        for group in opt.param_groups:
            group["lr"] = spec["lr"] * spec["decay"] ** epoch
        perm = torch.randperm(n)
        Xp, yp = X[perm], y[perm]
        for start in range(0, n, batch):
            loss = F.cross_entropy(model(Xp[start:start + batch]), yp[start:start + batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            accuracy = (model(X_test).argmax(dim=1) == y_test).double().mean().item()
        curve.append((time.perf_counter() - t0, accuracy))
        if accuracy >= spec["target"]:
            break
    return curve, import_s


# ---------------------------------------------------------------- parent

def run_worker(spec):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    # A fresh process without the OpenBLAS overrides (they act at load time only).
    with _common.without_openblas_overrides():
        result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"worker failed ({spec['framework']}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def config_label(spec):
    text = f"{spec['framework']} b{spec['batch_size']} lr {spec['lr']:g}x{spec['decay']:g}^ep"
    if spec["momentum"]:
        text += f" mom {spec['momentum']:g}"
    return text


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    import numpy as np

    info = _common.machine_info()
    _common.print_machine(info)
    X_train, y_train, X_test, y_test = _common.load_mnist(args.mnist_dir)
    X_train, y_train = X_train[:args.train_samples], y_train[:args.train_samples]
    print(_common.describe_data("MNIST train", X_train, y_train))
    print(_common.describe_data("MNIST test", X_test, y_test))
    print(f"net {'-'.join(map(str, LAYERS))} relu/softmax/cross_entropy, target "
          f"{args.target:.1%} test accuracy, at most {args.max_epochs} epochs, "
          f"median of {args.repeats} run(s)\n")
    overrides = _common.openblas_overrides()
    if overrides:
        print(f"note: workers run without {sorted(overrides)} (set here)")
    grids = {"bpfast": QUICK_BPFAST_GRID if args.quick else BPFAST_GRID,
             "torch": QUICK_TORCH_GRID if args.quick else TORCH_GRID}

    frameworks = list(args.frameworks)
    if "torch" in frameworks and importlib.util.find_spec("torch") is None:
        print("skipped: PyTorch: not installed (pip install torch==2.13.0)")
        frameworks.remove("torch")

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data_path = str(Path(tmp) / "mnist.npz")
        np.savez(data_path, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)
        for dtype in _common.dtypes(args):
            for framework in frameworks:
                for batch, lr, decay, momentum in grids[framework]:
                    spec = dict(framework=framework, dtype=dtype, batch_size=batch, lr=lr,
                                decay=decay, momentum=momentum, seed=args.seed,
                                target=args.target, max_epochs=args.max_epochs,
                                threads=args.torch_threads if framework == "torch" else 1,
                                data=data_path)
                    runs = [run_worker(spec) for _ in range(args.repeats)]
                    reached = [r["seconds"] for r in runs if r["seconds"] is not None]
                    median = statistics.median(reached) if len(reached) == len(runs) else None
                    middle = sorted(runs, key=lambda r: r["seconds"] or float("inf"))[
                        len(runs) // 2]
                    spec = {k: v for k, v in spec.items() if k != "data"}
                    row = dict(spec, label=config_label(spec), dtype=dtype,
                               seconds=median, reached="yes" if median is not None else "no",
                               epochs=middle["epochs"], final_accuracy=middle["final_accuracy"],
                               import_s=statistics.median(r["import_s"] for r in runs),
                               all_seconds=[r["seconds"] for r in runs], curve=middle["curve"],
                               worker_openblas_overrides=middle["openblas_overrides"])
                    results.append(row)
                    shown = f"{median:.2f} s" if median is not None else "not reached"
                    print(f"{row['label']:<36} {dtype}: {shown} "
                          f"({row['epochs']} epochs, {row['final_accuracy']:.2%})", flush=True)

    print()
    print(_common.format_table(results, [
        ("label", "configuration", ""), ("dtype", "dtype", ""), ("reached", "reached", ""),
        ("epochs", "epochs", "d"), ("final_accuracy", "test acc", ".4f"),
        ("import_s", "import s", ".3f"), ("seconds", "seconds", ".2f")]))
    best = {}
    for row in results:
        key = (row["framework"], row["dtype"])
        if row["seconds"] is not None and (key not in best
                                           or row["seconds"] < best[key]["seconds"]):
            best[key] = row
    print()
    summary = []
    for dtype in _common.dtypes(args):
        b, t = best.get(("bpfast", dtype)), best.get(("torch", dtype))
        for name, row in (("bpfast", b), ("PyTorch", t)):
            print(f"{name:<8} {dtype}: " + (f"{row['seconds']:.2f} s to {args.target:.0%} "
                                            f"({row['label']})" if row else "target not reached"))
        if b and t:
            print(f"PyTorch best / bpfast best ({dtype}): {t['seconds'] / b['seconds']:.2f}x "
                  "the time")
            summary.append(dict(dtype=dtype, bpfast=b["label"], bpfast_seconds=b["seconds"],
                                torch=t["label"], torch_seconds=t["seconds"],
                                torch_over_bpfast=t["seconds"] / b["seconds"]))

    if args.json:
        _common.write_json(args.json, dict(
            benchmark="mnist_time_to_accuracy", args=vars(args), machine=info,
            openblas_overrides=overrides, layers=list(LAYERS), runs=results,
            summary=summary))
    if args.png:
        plot(args.png, results, best, args.target, info)


def plot(path, results, best, target, info):
    """Test accuracy against seconds since import, one line per configuration."""
    plt = _common.pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"bpfast": "tab:blue", "torch": "tab:orange"}
    best_rows = {id(r) for r in best.values()}
    for row in results:
        ts, accs = zip(*row["curve"])
        is_best = id(row) in best_rows
        ax.plot(ts, accs, marker="o", ms=3, color=colors[row["framework"]],
                lw=2.2 if is_best else 0.8, alpha=1.0 if is_best else 0.45,
                label=f"{row['label']} {row['dtype']}" + (" (best)" if is_best else ""))
    ax.axhline(target, color="gray", ls="--", lw=1)
    ax.set_xlabel("seconds since import (training + evaluation after each epoch)")
    ax.set_ylabel("MNIST test accuracy")
    low = min(acc for r in results for _, acc in r["curve"])
    ax.set_ylim(max(0.0, min(low, target) - 0.02), 1.0)
    ax.set_title(f"Time to {target:.0%} MNIST test accuracy, 784-100-10 ({info['cpu']})",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _common.save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
