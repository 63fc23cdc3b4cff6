"""Training throughput of bpfast against a plain C loop and the other libraries.

Samples per second of one epoch, for two optimizers (--optimizers).  SGD on
four networks:

  N1  784-30-10      sigmoid/sigmoid/mse             MNIST (the tutorials' network)
  N2  784-100-10     sigmoid/softmax/cross_entropy   MNIST
  N3  784-256-128-10 relu/softmax/cross_entropy      MNIST
  N4  4-8-3          tanh/identity/mse               random data (call overheads dominate)

bpfast's fit at batch sizes 1, 10, 32, 128 in float32 and float64, with
n_threads 1 and (batch >= 32) 2; the C reference loop (bench/cref/mlp_ref.c,
a plain per-sample loop written independently of the kernel, compiled with
-O3 -march=native, with and without skipping zero inputs); and the peers
of bench/peers.py.  Every case is timed after a warm-up epoch as the median of
--reps epochs, the cases of one network and dtype interleaved; each repetition
starts from the same initial weights.  Prints a table and the ratios the issue
asks for, and writes JSON (with the machine) and a PNG chart on request.

Adam (lr 1e-3, torch's betas and eps) on N1 and

  N2r 784-100-10     relu/softmax/cross_entropy      MNIST

bpfast's fit(optimizer=optim.Adam(lr=1e-3)) at batch sizes 1, 32, 128 on one
thread, torch.optim.Adam on the peer's torch network at the same batch sizes
(one thread), and a Numba per-sample Adam loop (peers.py).  --nets applies to
both optimizers.

Before timing, the C reference, the Numba loops (SGD and Adam), torch's Adam
and bpfast train the same small problem and must end with the same weights
(to rounding): the comparison is of the same arithmetic.

    python bench/throughput.py --quick                  # CI smoke run, < 90 s
    python bench/throughput.py --nets N1 N4 --json out.json --png out.png
    python bench/throughput.py --optimizers adam --dtype float32
"""

import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import peers  # noqa: E402
from cref import build as cref_build  # noqa: E402

import bpfast  # noqa: E402
from bpfast import optim  # noqa: E402

IMPL_LABELS = {
    "bpfast": "bpfast",
    "cref": "C loop (no skip)",
    "cref_skip": "C loop, zero skip",
    **{name: label for name, (_, _, label) in peers.PEERS.items()},
}

# The ratios of the issue: (title, numerator, denominator, targets, dtypes the
# target applies to).  A selector is (implementation, batch size or "best",
# n_threads); "best" is the fastest batch size <= 128 on one thread.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}   # of the same-weights check
B1 = 1
RATIOS = [
    ("bpfast b1 / C loop (no skip)", ("bpfast", B1, 1), ("cref", B1, 1),
     dict.fromkeys(("N1", "N2", "N3", "N4"), 0.8), ("float32", "float64")),
    ("bpfast b1 / C loop, zero skip", ("bpfast", B1, 1), ("cref_skip", B1, 1),
     dict.fromkeys(("N1", "N2", "N3", "N4"), 0.8), ("float32", "float64")),
    ("bpfast b1 / torch b1", ("bpfast", B1, 1), ("torch", B1, 1),
     {"N1": 50, "N2": 20, "N3": 8, "N4": 500}, ("float32", "float64")),
    ("bpfast best / torch best", ("bpfast", "best", 1), ("torch", "best", 1),
     dict.fromkeys(("N1", "N2", "N3"), 1.0), ("float32",)),
    ("bpfast best / numpy best", ("bpfast", "best", 1), ("numpy", "best", 1),
     dict.fromkeys(("N1", "N2", "N3"), 1.0), ("float32",)),
    ("bpfast b1 / numpy textbook", ("bpfast", B1, 1), ("numpy_textbook", B1, 1),
     {"N1": 8, "N2": 8, "N3": 8, "N4": 30}, ("float32", "float64")),
    ("bpfast b1 / FANN", ("bpfast", B1, 1), ("fann", B1, 1),
     dict.fromkeys(("N1", "N2", "N3", "N4"), 2.5), ("float32", "float64")),
    ("bpfast b1 / numba", ("bpfast", B1, 1), ("numba", B1, 1), {}, ()),
    ("bpfast b1 / jax", ("bpfast", B1, 1), ("jax", B1, 1), {}, ()),
    ("bpfast best / sklearn best", ("bpfast", "best", 1), ("sklearn", "best", 1), {}, ()),
]
# The Adam ratios (bpfast's and the peers' Adam rows only); N2r is the
# issue's "N2" of the Adam targets (784-100-10 relu/softmax/CE).
ADAM_RATIOS = [
    ("bpfast adam b1 / torch adam b1", ("bpfast", B1, 1), ("torch", B1, 1),
     {"N1": 30}, ("float32",)),
    ("bpfast adam b32 / torch adam b32", ("bpfast", 32, 1), ("torch", 32, 1),
     {"N2r": 1.5}, ("float32",)),
    ("bpfast adam b128 / torch adam b128", ("bpfast", 128, 1), ("torch", 128, 1),
     {"N2r": 1.5}, ("float32",)),
    ("bpfast adam b1 / numba adam b1", ("bpfast", B1, 1), ("numba", B1, 1), {}, ()),
]
ADAM_LR = 1e-3
ADAM_BATCH_SIZES = (1, 32, 128)
DEFAULT_NETS = {"sgd": ("N1", "N2", "N3", "N4"), "adam": ("N1", "N2r")}
# --quick: Adam on N2r only (its relu/softmax path; N1's is SGD's), to stay < 90 s.
QUICK_NETS = {"sgd": DEFAULT_NETS["sgd"], "adam": ("N2r",)}
# Ratios across dtypes or thread counts of bpfast itself.
DTYPE_RATIOS = [("float32 / float64, bpfast b1", ("bpfast", B1, 1), 1.4),
                ("float32 / float64, bpfast best", ("bpfast", "best", 1), 1.4)]
THREAD_RATIOS = [(f"n_threads 2 / 1, bpfast b{b}", b, {"N2": 1.6, "N3": 1.6})
                 for b in (32, 128)]


def parse_args(argv=None):
    parser = _common.base_parser(
        __doc__.splitlines()[0],
        quick_help="a subset that runs in < 90 s and exercises every code path (CI)")
    parser.add_argument("--optimizers", nargs="+", choices=peers.OPTIMIZERS,
                        default=list(peers.OPTIMIZERS),
                        help="sgd: every batch size, the C loop and every peer; adam: bpfast, "
                             "torch and Numba at batch 1, 32, 128")
    parser.add_argument("--nets", nargs="+", choices=sorted(_common.NETWORKS), default=None,
                        help="networks (default: " + "; ".join(
                            f"{o}: {' '.join(n)}" for o, n in DEFAULT_NETS.items())
                        + "; --quick: Adam on N2r only)")
    parser.add_argument("--batch-sizes", nargs="+", type=_common.positive_int,
                        default=[1, 10, 32, 128], help="bpfast's batch sizes")
    parser.add_argument("--samples", type=_common.positive_int, default=None,
                        help="samples per timed epoch (default 20000, --quick 500)")
    parser.add_argument("--slow-samples", type=_common.positive_int, default=None,
                        help="samples per timed epoch for peers that run Python code per "
                             "sample (torch b1, NumPy textbook, sklearn b1) and FANN on "
                             "N2/N3 (default 2000, --quick 50)")
    parser.add_argument("--reps", type=_common.positive_int, default=None,
                        help="timed epochs per case, median reported (default 5, --quick 3)")
    parser.add_argument("--peers", nargs="*", choices=sorted(peers.PEERS),
                        default=list(peers.PEERS),
                        help="peers to measure (none: just bpfast and the C loop)")
    parser.add_argument("--no-cref", action="store_true", help="skip the C reference")
    parser.add_argument("--cref-cflags", default=" ".join(cref_build.CFLAGS),
                        help="optimisation flags of the C reference")
    parser.add_argument("--cref-plain", action="store_true",
                        help="run the C loop on unpadded rows even where bpfast pads them")
    args = parser.parse_args(argv)
    quick = args.quick
    args.samples = args.samples or (500 if quick else 20000)
    args.slow_samples = min(args.slow_samples or (50 if quick else 2000), args.samples)
    args.reps = args.reps or (3 if quick else 5)
    return args


# ---------------------------------------------------------------- bpfast and the C loop

def new_net(cfg, dtype, seed):
    return bpfast.MLP(list(cfg.layers), activation=cfg.activation, output=cfg.output,
                      loss=cfg.loss, dtype=dtype, seed=seed)


def bpfast_row_widths(cfg):
    """The row widths of bpfast's parameter layout (rows may be padded to whole
    SIMD registers), read from the network's layout; None when unpadded."""
    widths = getattr(new_net(cfg, "float64", 0)._layout, "width", None)
    if widths is None or tuple(widths) == tuple(cfg.layers[1:]):
        return None
    return tuple(int(w) for w in widths)


def cref_spec(cfg, widths=None):
    return cref_build.NetSpec(cfg.layers, cfg.activation, cfg.output, cfg.loss, widths)


def fit_kwargs(cfg, optimizer):
    """fit's arguments for one optimizer: plain SGD at cfg.lr (fit's own
    optimizer, the fused path at batch 1), or a fresh optim.Adam(lr=ADAM_LR)."""
    if optimizer == "adam":
        return dict(optimizer=optim.Adam(lr=ADAM_LR))
    return dict(lr=cfg.lr)


def bpfast_case(cfg, dtype, data, batch, threads, seed, optimizer="sgd"):
    holder = {}

    def setup():
        holder["net"] = new_net(cfg, dtype, seed)
        holder["kwargs"] = fit_kwargs(cfg, optimizer)

    def run():
        hist = holder["net"].fit(data.X, data.targets, epochs=1, batch_size=batch,
                                 shuffle=True, n_threads=threads, progress=False,
                                 **holder["kwargs"])
        return hist.history[0]["samples_per_s"]

    key = dict(impl="bpfast", optimizer=optimizer, batch=batch, threads=threads)
    return _common.Case(key, run, data.n, setup=setup)


def cref_case(ref, spec, cfg, dtype, data, skip_zeros, seed):
    net = new_net(cfg, dtype, seed)
    initial = spec.pack(net.weights, net.biases, dtype)   # bpfast's initial weights
    holder = {}

    def setup():
        holder["params"] = cref_build.aligned_copy(initial)   # at a 64-byte boundary, as C would
        holder["rng"] = np.random.default_rng(seed)

    def run():
        order = holder["rng"].permutation(data.n)
        ref.train_epoch(spec, holder["params"], data.X, data.targets, order, cfg.lr,
                        skip_zeros=skip_zeros)

    key = dict(impl="cref_skip" if skip_zeros else "cref", optimizer="sgd", batch=1, threads=1)
    return _common.Case(key, run, data.n, setup=setup)


def _compare(got, net):
    """max |w - w_bpfast| / max(1, max |w_bpfast|) and bit-identity; got: the
    weights then the biases of every layer, in bpfast's shapes."""
    got = np.concatenate([np.ravel(v) for v in got])
    expected = np.concatenate([np.ravel(v) for v in (*net.weights, *net.biases)])
    scale = max(1.0, float(np.abs(expected).max()))
    return float(np.abs(got - expected).max()) / scale, bool(np.array_equal(got, expected))


def same_weights_as_bpfast(train, spec, cfg, dtype, data, seed, optimizer="sgd"):
    """Train bpfast (batch 1, samples in order) and `train(params, order)` (on
    bpfast's initial weights packed by `spec`) on the same samples.

    Returns max |w - w_bpfast| / max(1, max |w_bpfast|) over all weights and
    biases, and whether they are bit-identical (they may differ by rounding:
    the C loop, for one, scales the update as (lr * a_i) * delta where bpfast
    writes -lr * (a_i * delta), and either build may fuse a multiply-add that
    the other does not).
    """
    net = new_net(cfg, dtype, seed)
    params = spec.pack(net.weights, net.biases, dtype)
    net.fit(data.X, data.targets, epochs=1, batch_size=1, shuffle=False, progress=False,
            **fit_kwargs(cfg, optimizer))
    train(params, np.arange(data.n))
    weights, biases = spec.unpack(params)
    return _compare((*weights, *biases), net)


def torch_same_weights(cfg, dtype, data, seed, batch):
    """bpfast's Adam and torch.optim.Adam from bpfast's initial weights, samples
    in order at one batch size; the comparison of `same_weights_as_bpfast`."""
    net = new_net(cfg, dtype, seed)
    trainer = peers.make_torch(cfg, data, batch, seed, optimizer="adam", lr=ADAM_LR,
                               initial=(net.weights, net.biases), shuffle=False)
    net.fit(data.X, data.targets, epochs=1, batch_size=batch, shuffle=False, progress=False,
            **fit_kwargs(cfg, "adam"))
    trainer.epoch()
    params = trainer.parameters()
    return _compare((*params[::2], *params[1::2]), net)


def verify_adam(cfg, dtype, data, seed, with_numba, with_torch):
    """Check the Numba Adam loop (batch 1) and torch.optim.Adam (batch 1 and 32)
    against bpfast's Adam; a list of result dicts."""
    results = []

    def add(name, worst, identical):
        results.append(dict(impl=name, optimizer="adam", net=cfg.key, dtype=dtype,
                            n_samples=data.n, max_rel_diff=worst, bit_identical=identical,
                            ok=worst <= TOLERANCE[dtype]))
    if with_numba:
        add("Numba Adam loop b1", *same_weights_as_bpfast(
            lambda params, order: peers.numba_train_flat(cfg, params, data.X, data.Y, order,
                                                         ADAM_LR, optimizer="adam"),
            cref_spec(cfg), cfg, dtype, data, seed, optimizer="adam"))
    if with_torch:
        for batch in (1, 32):
            try:
                add(f"torch.optim.Adam b{batch}",
                    *torch_same_weights(cfg, dtype, data, seed, batch))
            except peers.Unavailable:
                pass   # reported as skipped when its cases are built
    return results


def verify(refs, widths, cfg, dtype, data, seed, with_numba):
    """Check the C loop (both variants) and the Numba peer against bpfast; a
    list of result dicts."""
    checks = []
    if dtype in refs:
        spec = cref_spec(cfg, widths)
        for skip in (False, True):
            train = partial(refs[dtype].train_epoch, spec, X=data.X, targets=data.targets,
                            lr=cfg.lr, skip_zeros=skip)
            checks.append((IMPL_LABELS["cref_skip" if skip else "cref"], spec,
                           lambda params, order, train=train: train(params=params,
                                                                    order=order)))
    if with_numba:
        checks.append(("Numba loop", cref_spec(cfg), lambda params, order: peers.numba_train_flat(
            cfg, params, data.X, data.Y, order, cfg.lr)))
    results = []
    for name, spec, train in checks:
        worst, identical = same_weights_as_bpfast(train, spec, cfg, dtype, data, seed)
        results.append(dict(impl=name, optimizer="sgd", net=cfg.key, dtype=dtype,
                            n_samples=data.n,
                            max_rel_diff=worst, bit_identical=identical,
                            ok=worst <= TOLERANCE[dtype]))
    return results


# ---------------------------------------------------------------- ratios

def rate(rows, net, dtype, impl, batch, threads=1, optimizer="sgd"):
    """samples/s of one configuration; batch "best" = fastest batch <= 128."""
    found = [r["samples_per_s"] for r in rows
             if r["net"] == net and r["dtype"] == dtype and r["impl"] == impl
             and r["threads"] == threads and r.get("optimizer", "sgd") == optimizer
             and (r["batch"] <= 128 if batch == "best" else r["batch"] == batch)]
    return max(found) if found else None


def _ratio_row(title, net, dtype, num, den, target, target_applies):
    value = num / den if num is not None and den else None
    applies = target is not None and target_applies
    verdict = ""
    if applies and value is not None:
        verdict = "met" if value >= target else "BELOW"
    return dict(ratio=title, net=net, dtype=dtype, value=value,
                target=target if applies else None, verdict=verdict)


def compute_ratios(rows, nets, dtype_names):
    out = []
    for optimizer, table in (("sgd", RATIOS), ("adam", ADAM_RATIOS)):
        for title, num_sel, den_sel, targets, target_dtypes in table:
            for net in nets:
                for dtype in dtype_names:
                    num = rate(rows, net, dtype, *num_sel, optimizer=optimizer)
                    den = rate(rows, net, dtype, *den_sel, optimizer=optimizer)
                    if num is None or den is None:
                        continue
                    out.append(_ratio_row(title, net, dtype, num, den, targets.get(net),
                                          dtype in target_dtypes))
    if set(dtype_names) == {"float32", "float64"}:
        for title, sel, target in DTYPE_RATIOS:
            for net in nets:
                num, den = rate(rows, net, "float32", *sel), rate(rows, net, "float64", *sel)
                if num is not None and den is not None:
                    out.append(_ratio_row(title, net, "f32/f64", num, den, target, True))
    for title, batch, targets in THREAD_RATIOS:
        for net in nets:
            for dtype in dtype_names:
                num = rate(rows, net, dtype, "bpfast", batch, 2)
                den = rate(rows, net, dtype, "bpfast", batch, 1)
                if num is not None and den is not None:
                    out.append(_ratio_row(title, net, dtype, num, den, targets.get(net), True))
    return out


# ---------------------------------------------------------------- main

def case_label(row):
    adam = " Adam" if row.get("optimizer") == "adam" else ""
    label = f"{IMPL_LABELS[row['impl']]}{adam} b{row['batch']}"
    return label + (f" x{row['threads']} threads" if row["threads"] > 1 else "")


class Skipped(list):
    """The "skipped: ..." lines, each printed once."""

    def add(self, what, reason):
        line = f"skipped: {what}: {reason}"
        if line not in self:
            self.append(line)
            print(line)


def load_references(args, dtype_names, skipped):
    """The C loop per dtype ({} when disabled or not buildable) and whether the
    Numba loop compiles."""
    refs = {}
    if not args.no_cref and "sgd" in args.optimizers:   # the C loop is SGD only
        try:
            cref_build.check_codes()
            refs = {dtype: cref_build.load(dtype, args.cref_cflags) for dtype in dtype_names}
        except cref_build.BuildError as exc:
            skipped.add("C reference", str(exc).strip())
    with_numba = "numba" in args.peers
    if with_numba:
        try:
            peers._compile_numba()
        except peers.Unavailable as exc:
            skipped.add("Numba", str(exc))
            with_numba = False
    return refs, with_numba


def check_same_arithmetic(args, nets, dtype_names, mnist, refs, widths, with_numba):
    """Print and return the same-weights checks; exit if a loop disagrees with bpfast."""
    verification = []
    for optimizer, cfgs in nets.items():
        for cfg in cfgs:
            for dtype in dtype_names:
                small = _common.make_data(cfg, dtype, 300, mnist, args.seed)
                if optimizer == "adam":
                    verification += verify_adam(cfg, dtype, small, args.seed, with_numba,
                                                "torch" in args.peers)
                else:
                    verification += verify(refs, widths[cfg.key], cfg, dtype, small,
                                           args.seed, with_numba)
    if verification:
        print("Same arithmetic? One epoch of 300 samples, batch 1 (torch's Adam also 32), "
              "from bpfast's initial weights, samples in order; "
              "max |w - w_bpfast| / max(1, max |w_bpfast|):")
        print(_common.format_table(verification, [
            ("impl", "loop", ""), ("optimizer", "optimizer", ""), ("net", "net", ""),
            ("dtype", "dtype", ""),
            ("max_rel_diff", "max rel diff", ".2g"), ("bit_identical", "bit-identical", ""),
            ("ok", "ok", "")]))
        print()
    bad = [v for v in verification if not v["ok"]]
    if bad:
        sys.exit(f"{bad[0]['impl']} and bpfast disagree beyond {TOLERANCE[bad[0]['dtype']]:g} "
                 f"on {bad[0]['net']} {bad[0]['dtype']}: the loop no longer computes what "
                 "src/bpfast/_core.pxi computes")
    return verification


def adam_cases(args, cfg, dtype, data, slow_data, skipped):
    """bpfast, torch and the Numba loop with Adam (lr ADAM_LR), one thread."""
    cases = [bpfast_case(cfg, dtype, data, batch, 1, args.seed, optimizer="adam")
             for batch in ADAM_BATCH_SIZES]
    for name, batch_sizes in peers.ADAM_PEERS.items():
        if name not in args.peers:
            continue
        factory, _, label = peers.PEERS[name]
        for batch in batch_sizes:
            d = slow_data if peers.is_slow(name, batch, cfg) else data
            try:
                trainer = factory(cfg, d, batch, args.seed, optimizer="adam", lr=ADAM_LR)
            except peers.Unavailable as exc:
                skipped.add(f"{label} Adam on {cfg.key}", str(exc))
                continue
            key = dict(impl=name, optimizer="adam", batch=batch, threads=1,
                       note=trainer.note or None)
            cases.append(_common.Case(key, trainer.epoch, d.n, setup=trainer.reset))
    return cases


def time_group(args, cfg, dtype, mnist, refs, widths, skipped, optimizer="sgd"):
    """Time every case of one network, dtype and optimizer, interleaved; one row
    per case."""
    data = _common.make_data(cfg, dtype, args.samples, mnist, args.seed)
    slow_data = data.head(args.slow_samples)
    cases, closers = [], []
    if optimizer == "adam":
        cases = adam_cases(args, cfg, dtype, data, slow_data, skipped)
    for batch in args.batch_sizes if optimizer == "sgd" else ():
        for threads in (1, 2) if batch >= 32 else (1,):
            cases.append(bpfast_case(cfg, dtype, data, batch, threads, args.seed))
    if dtype in refs and optimizer == "sgd":
        for skip_zeros in (False, True):
            cases.append(cref_case(refs[dtype], cref_spec(cfg, widths[cfg.key]), cfg, dtype,
                                   data, skip_zeros, args.seed))
    for name in args.peers if optimizer == "sgd" else ():
        factory, batch_sizes, label = peers.PEERS[name]
        for batch in batch_sizes:
            d = slow_data if peers.is_slow(name, batch, cfg) else data
            try:
                trainer = factory(cfg, d, batch, args.seed)
            except peers.Unavailable as exc:
                skipped.add(f"{label} on {cfg.key}", str(exc))
                continue
            key = dict(impl=name, optimizer="sgd", batch=batch, threads=1,
                       note=trainer.note or None)
            cases.append(_common.Case(key, trainer.epoch, d.n, setup=trainer.reset))
            if hasattr(trainer, "close"):
                closers.append(trainer.close)
    print(f"timing {cfg.label} {dtype} {optimizer}: {len(cases)} cases ...", flush=True)
    try:
        _common.measure(cases, args.reps, warmup=1)
    finally:
        for close in closers:
            close()
    rows = []
    for case in cases:
        row = dict(net=cfg.key, layers=list(cfg.layers), activation=cfg.activation,
                   output=cfg.output, loss=cfg.loss,
                   lr=ADAM_LR if optimizer == "adam" else cfg.lr, dtype=dtype, **case.key,
                   n_samples=case.n_samples, samples_per_s=case.samples_per_s,
                   us_per_sample=1e6 / case.samples_per_s, times_s=list(case.times))
        row["label"] = case_label(row)
        if case.key["impl"] == "bpfast":
            # fit's own clock: the epoch loop without argument checks.
            row["fit_loop_samples_per_s"] = float(np.median(case.extra))
        rows.append(row)
    return rows


def main(argv=None):
    args = parse_args(argv)
    info = _common.machine_info()
    _common.print_machine(info)
    overrides = _common.openblas_overrides()
    if overrides:
        print(f"note: {overrides} are set; NumPy's OpenBLAS was loaded with them, so the "
              "in-process NumPy/scikit-learn peers ran with them (recorded in the JSON)")
    # optimizer -> the networks it is timed on
    default = QUICK_NETS if args.quick else DEFAULT_NETS
    nets = {opt: [_common.NETWORKS[k] for k in (args.nets or default[opt])]
            for opt in args.optimizers}
    all_nets = list({cfg.key: cfg for cfgs in nets.values() for cfg in cfgs}.values())
    dtype_names = _common.dtypes(args)
    mnist = None
    if any(cfg.data == "mnist" for cfg in all_nets):
        X_train, y_train, _, _ = _common.load_mnist(args.mnist_dir)
        mnist = (X_train, y_train)
        print(_common.describe_data("MNIST train", X_train[:args.samples],
                                    y_train[:args.samples]))
    print(f"{args.samples} samples per timed epoch ({args.slow_samples} for per-sample "
          f"Python loops), median of {args.reps} after 1 warm-up\n")

    skipped = Skipped()
    refs, with_numba = load_references(args, dtype_names, skipped)
    # The C loop runs on bpfast's layout (padded rows included) unless --cref-plain.
    widths = {cfg.key: None if args.cref_plain else bpfast_row_widths(cfg) for cfg in all_nets}
    verification = check_same_arithmetic(args, nets, dtype_names, mnist, refs, widths,
                                          with_numba)
    rows = []
    for optimizer, cfgs in nets.items():
        for cfg in cfgs:
            for dtype in dtype_names:
                rows += time_group(args, cfg, dtype, mnist, refs, widths, skipped, optimizer)

    print()
    print(_common.format_table(rows, [
        ("net", "net", ""), ("dtype", "dtype", ""), ("label", "implementation", ""),
        ("n_samples", "samples", "d"), ("samples_per_s", "samples/s", ",.0f"),
        ("us_per_sample", "us/sample", ".2f"), ("note", "note", "")]))
    ratios = compute_ratios(rows, [cfg.key for cfg in all_nets], dtype_names)
    print()
    print(_common.format_table(ratios, [
        ("ratio", "ratio", ""), ("net", "net", ""), ("dtype", "dtype", ""),
        ("value", "value", ".2f"), ("target", "target", "g"), ("verdict", "", "")]))
    if skipped:
        print("\n" + "\n".join(skipped))

    if args.json:
        _common.write_json(args.json, dict(
            benchmark="throughput", args=vars(args), machine=info,
            openblas_overrides=overrides,
            cref=dict(commands={d: r.command for d, r in refs.items()},
                      row_widths=widths, verification=verification),
            rows=rows, ratios=ratios, skipped=list(skipped)))
    if args.png:
        panels = {cfg.label: {} for cfg in all_nets}
        for row in rows:
            panel = panels[_common.NETWORKS[row["net"]].label]
            panel.setdefault(row["dtype"], {})[row["label"]] = row["samples_per_s"]
        _common.bar_chart(args.png, panels,
                          f"Training throughput, one epoch of SGD or Adam ({info['cpu']})",
                          "samples per second (log scale)")


if __name__ == "__main__":
    main()
