"""Shared helpers of the bpfast benchmarks: arguments, machine info, timing,
tables, JSON and PNG output, MNIST and the networks that are compared.

The scripts in bench/ are plain programs (``python bench/throughput.py``);
this module sits beside them and is imported as ``_common``.
"""

import argparse
import gc
import importlib.metadata
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
# The data sets live in shared/ beside the repository checkout.
DEFAULT_MNIST_DIR = Path(os.environ.get(
    "BPFAST_MNIST_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))

# OpenBLAS reads these at load time only: a peer that must run without them
# has to be started in a fresh process (see `without_openblas_overrides`).
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ---------------------------------------------------------------- arguments

def base_parser(description, *, quick_help="a small, fast run that exercises every code path"):
    """argparse with the options every benchmark takes."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every network initialisation and data order")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="OUT", type=Path, default=None,
                        help="write the results and the machine info as JSON to OUT")
    parser.add_argument("--png", metavar="OUT", type=Path, default=None,
                        help="write a chart of the results to OUT (needs matplotlib)")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both",
                        help="precision(s) to measure")
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR,
                        help="folder with the four MNIST IDX files (env BPFAST_MNIST_DIR)")
    return parser


def dtypes(args):
    """The dtype names selected by --dtype."""
    return ["float32", "float64"] if args.dtype == "both" else [args.dtype]


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text}")
    return value


# ---------------------------------------------------------------- machine

def _cpuinfo():
    """Model name and SIMD-relevant flags from /proc/cpuinfo (Linux), else platform."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.split()
    simd = ("sse", "ssse", "avx", "fma", "f16c", "amx", "neon", "asimd", "sve", "vsx")
    return model, sorted(f for f in flags if f.startswith(simd))


def _version(dist):
    """Installed version of a distribution, without importing it (None if absent)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def compiler_version(cc=None):
    """First line of `cc --version` (None when there is no compiler)."""
    cmd = shlex.split(cc or os.environ.get("CC", "cc"))
    try:
        out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.splitlines()[0] if out.returncode == 0 and out.stdout else None


def machine_info():
    """What the numbers depend on: CPU, cores, load, Python, library versions and builds."""
    import bpfast
    from bpfast import _dispatch

    model, flags = _cpuinfo()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    info = {
        "cpu": model,
        "cpu_flags": flags,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cores": affinity,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "bpfast": bpfast.__version__,
        "bpfast_kernel": _dispatch.kernel_name,
        "bpfast_kernels_available": _dispatch.available_kernels(),
        "torch": _version("torch"),
        "scikit-learn": _version("scikit-learn"),
        "numba": _version("numba"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "matplotlib": _version("matplotlib"),
        "cc": compiler_version(),
        "env": {k: os.environ[k] for k in (*OPENBLAS_OVERRIDES, "OMP_NUM_THREADS",
                                           "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                           "BPFAST_KERNEL", "XLA_FLAGS")
                if k in os.environ},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        from threadpoolctl import threadpool_info
        info["numpy_blas"] = [
            {k: pool.get(k) for k in ("internal_api", "version", "architecture",
                                      "threading_layer", "num_threads")}
            | {"library": os.path.basename(pool.get("filepath", ""))}
            for pool in threadpool_info() if pool.get("user_api") == "blas"]
    except ImportError:
        info["numpy_blas"] = "threadpoolctl not installed"
    return info


def print_machine(info, file=None):
    """A few lines about the machine, above a table."""
    blas = info.get("numpy_blas")
    if isinstance(blas, list) and blas:
        blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']}, "
                         f"{b['num_threads']} threads)" for b in blas)
    load = info.get("load_average")
    simd = [f for f in info["cpu_flags"] if f in ("avx2", "fma", "avx512f", "neon", "asimd")]
    lines = [
        f"CPU      {info['cpu']}  ({info['cpu_count']} logical cores"
        + (f", load {load[0]:.2f}" if load else "") + ")",
        f"SIMD     {' '.join(simd) or '-'}",
        f"Python   {info['python']}  NumPy {info['numpy']} (BLAS: {blas})",
        f"bpfast   {info['bpfast']}  kernel build: {info['bpfast_kernel']}",
        f"peers    torch {info['torch']}  scikit-learn {info['scikit-learn']}  "
        f"numba {info['numba']}  jax {info['jax']}",
        f"cc       {info['cc']}",
    ]
    print("\n".join(lines), file=file or sys.stdout)


# ---------------------------------------------------------------- environment

def openblas_overrides():
    """The OpenBLAS tuning variables set in this environment (name -> value)."""
    return {k: os.environ[k] for k in OPENBLAS_OVERRIDES if k in os.environ}


@contextmanager
def without_openblas_overrides():
    """Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (only if set) for the block.

    Yields the removed variables.  Only what is started inside the block (a
    subprocess, or an OpenBLAS loaded for the first time) sees the change; the
    caller records the yielded dict for peers measured in this process.
    """
    removed = openblas_overrides()
    for k in removed:
        del os.environ[k]
    try:
        yield removed
    finally:
        os.environ.update(removed)


# ---------------------------------------------------------------- timing

@dataclass
class Case:
    """One thing to time: `run()` does one epoch over `n_samples` samples.

    `setup()` (not timed) runs before every call of `run`, e.g. to restore the
    initial weights so that every repetition does the same work.
    """

    key: dict
    run: object
    n_samples: int
    setup: object = None
    times: list = field(default_factory=list)
    extra: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def samples_per_s(self):
        return self.n_samples / self.median if self.median > 0 else math.inf


def _timed(case):
    if case.setup is not None:
        case.setup()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        result = case.run()
        elapsed = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed, result


def measure(cases, reps, warmup=1):
    """Time every case `reps` times after `warmup` untimed calls; returns `cases`.

    The repetitions are interleaved (case A, B, C, A, B, C, ...), so a burst of
    load from another process on a shared machine hits all cases alike rather
    than one of them; each case reports the median of its repetitions.
    """
    for case in cases:
        for _ in range(warmup):
            _timed(case)
    for _ in range(reps):
        for case in cases:
            elapsed, result = _timed(case)
            case.times.append(elapsed)
            case.extra.append(result)
    return cases


# ---------------------------------------------------------------- output

def _cell(value, fmt):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return format(value, fmt)


def format_table(rows, columns):
    """A fixed-width text table.

    columns: (key, header, format) triples; text is left-aligned, numbers
    right-aligned; a missing value prints as "-".
    """
    cells = [[_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row.get(key), (int, float)) or row.get(key) is None
                   for row in rows) for key, _, _ in columns]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path, payload):
    """Write payload as indented JSON, atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, default=_json_default, allow_nan=True)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {path}")


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None (with a message) when missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the PNG chart")
        return None
    return plt


def bar_chart(path, panels, title, xlabel, log=True, ncols=2):
    """Horizontal grouped bars, one panel per group, saved as a PNG.

    panels: {panel title: {series name: {bar label: value}}}; every series of
    a panel is drawn side by side for each label (e.g. float32 and float64).
    Panels are laid out in a grid of `ncols` columns.
    """
    plt = pyplot()
    if plt is None:
        return
    panels = {k: v for k, v in panels.items() if any(v.values())}
    if not panels:
        print("nothing to plot: skipping the PNG chart")
        return
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    n_bars = max(len({lab for s in series.values() for lab in s}) for series in panels.values())
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(6.5 * ncols, nrows * (0.8 + 0.3 * n_bars)))
    for ax, (panel, series) in zip(axes.flat, panels.items()):
        labels = list(dict.fromkeys(lab for s in series.values() for lab in s))
        width = 0.8 / max(len(series), 1)
        for k, (name, values) in enumerate(series.items()):
            ys = [i - 0.4 + width * (k + 0.5) for i in range(len(labels))]
            ax.barh(ys, [values.get(lab) or 0 for lab in labels], height=width, label=name)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        if log:
            ax.set_xscale("log")
        ax.set_title(panel, fontsize=10, loc="left")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(axis="x", which="both", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    handles, names = axes.flat[0].get_legend_handles_labels()
    if len(names) > 1:   # one legend for all panels (the series are the same)
        fig.legend(handles, names, loc="upper right", fontsize=9, ncols=len(names))
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    save_figure(fig, path)
    plt.close(fig)


def save_figure(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


# ---------------------------------------------------------------- data

def load_mnist(mnist_dir):
    """MNIST as X_train, y_train, X_test, y_test (float32 in [0, 1], int64)."""
    from bpfast.datasets import load_mnist as _load

    mnist_dir = Path(mnist_dir)
    if not mnist_dir.is_dir():
        sys.exit(f"MNIST not found in {mnist_dir}: pass --mnist-dir or set BPFAST_MNIST_DIR")
    return _load(mnist_dir)


def describe_data(name, X, y=None):
    """One line of data statistics (shape, range, sparsity, classes)."""
    text = (f"{name}: X {X.shape[0]} x {X.shape[1]} {X.dtype}, range [{X.min():.3g}, "
            f"{X.max():.3g}], {np.mean(X == 0):.1%} zeros")
    if y is not None and y.ndim == 1:
        text += f", {len(np.unique(y))} classes"
    return text


@dataclass(frozen=True)
class NetConfig:
    """A benchmark network: layer sizes, activations, loss, learning rate, data."""

    key: str
    layers: tuple
    activation: str
    output: str
    loss: str
    lr: float
    data: str          # "mnist" or "random"

    @property
    def label(self):
        return (f"{self.key} {'-'.join(map(str, self.layers))} "
                f"{self.activation}/{self.output}/{self.loss}")

    @property
    def classification(self):
        return self.data == "mnist"


# The networks of the issue: N1 is the tutorials' network (Nielsen's
# network.py), N2 and N3 are the usual MNIST classifiers, N4 is an iris-sized
# regression net where per-call overheads dominate.  N2r is N2 with relu
# hidden units, the network of the Adam targets (bench/throughput.py
# --optimizers adam).
NETWORKS = {
    "N1": NetConfig("N1", (784, 30, 10), "sigmoid", "sigmoid", "mse", 0.5, "mnist"),
    "N2": NetConfig("N2", (784, 100, 10), "sigmoid", "softmax", "cross_entropy", 0.1, "mnist"),
    "N2r": NetConfig("N2r", (784, 100, 10), "relu", "softmax", "cross_entropy", 0.1, "mnist"),
    "N3": NetConfig("N3", (784, 256, 128, 10), "relu", "softmax", "cross_entropy", 0.01,
                    "mnist"),
    "N4": NetConfig("N4", (4, 8, 3), "tanh", "identity", "mse", 0.01, "random"),
}


@dataclass
class Data:
    """Training data in one dtype: X, class labels (or None), and target rows Y.

    Y is the one-hot encoding of the labels for classification, the real
    targets for regression; `targets` is what bpfast.fit is given.
    """

    X: np.ndarray
    labels: object
    Y: np.ndarray

    @property
    def targets(self):
        return self.labels if self.labels is not None else self.Y

    @property
    def n(self):
        return self.X.shape[0]

    def head(self, n):
        return Data(self.X[:n], None if self.labels is None else self.labels[:n], self.Y[:n])


def make_data(cfg, dtype, n, mnist, seed):
    """The first n samples for network cfg in dtype.

    mnist: (X_train, y_train) or None; the "random" data of N4 is standard
    normal inputs and targets, drawn from `seed`.
    """
    if cfg.data == "mnist":
        X_all, y_all = mnist
        X = np.ascontiguousarray(X_all[:n], dtype=dtype)
        labels = np.ascontiguousarray(y_all[:n], dtype=np.int64)
        Y = np.zeros((len(labels), cfg.layers[-1]), dtype=dtype)
        Y[np.arange(len(labels)), labels] = 1
        return Data(X, labels, Y)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, cfg.layers[0])).astype(dtype)
    Y = rng.standard_normal((n, cfg.layers[-1])).astype(dtype)
    return Data(X, None, Y)
