"""The kernel builds this CPU runs, side by side: the same fit on each, in one run.

bpfast carries its kernel compiled more than once (bpfast._dispatch): the
baseline build, on x86-64 an AVX2+FMA build and an AVX-512F/VL build, and
picks the widest the CPU runs.  A wider build is only worth carrying where it
is faster, so this script times one epoch of `fit` on every build the CPU
runs, the builds' repetitions interleaved in one process (the Python layer
looks the kernel up at each call, so switching `_dispatch.kernel` switches
every call), and reports samples/s and each build's ratio to the one before it
(avx2 / baseline, avx512 / avx2).

Networks N1-N3 of bench/throughput.py on MNIST, plain SGD at their learning
rates, batch sizes 1 (the fused per-sample path), 32 and 200 (the estimators'
default), float32 and float64, one thread, shuffled as throughput.py does.
Before timing, each build trains the same samples in order and must end with
the baseline's weights to rounding (FMA contraction and the order of a row's
lanes may differ; tests/test_dispatch.py checks the same more closely).

    python bench/kernel_builds.py --quick        # CI smoke run
    python bench/kernel_builds.py --nets N1 --dtype float32 --json out.json
    BPFAST_KERNEL=... has no effect here: every runnable build is timed.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

import bpfast  # noqa: E402
from bpfast import _dispatch  # noqa: E402

NETS = ("N1", "N2", "N3")
BATCH_SIZES = (1, 32, 200)
# Of the same-weights check, relative to max(1, max |w|), after one epoch.
TOLERANCE = {"float32": 1e-3, "float64": 1e-9}
COLUMNS = [("net", "net", ""), ("dtype", "dtype", ""), ("batch", "batch", "d"),
           ("build", "build", ""), ("samples_per_s", "samples/s", ",.0f"),
           ("ratio", "x previous build", ".2f"), ("spread", "max/min", ".2f"),
           ("max_rel_diff", "|w - w_baseline|", ".1e")]


def new_net(cfg, dtype, seed):
    return bpfast.MLP(list(cfg.layers), activation=cfg.activation, output=cfg.output,
                      loss=cfg.loss, dtype=dtype, seed=seed)


def use_build(name):
    """Make every bpfast call from now on run on the named kernel build."""
    _dispatch.kernel = _dispatch.load_kernel(name)
    _dispatch.kernel_name = name


def trained_weights(build, cfg, dtype, data, seed):
    """The weights and biases, flattened, after one in-order epoch on `build`."""
    use_build(build)
    net = new_net(cfg, dtype, seed)
    net.fit(data.X, data.targets, epochs=1, batch_size=32, shuffle=False, lr=cfg.lr,
            progress=False)
    net.fit(data.X[:200], data.targets[:200], epochs=1, batch_size=1, shuffle=False,
            lr=cfg.lr, progress=False)
    return np.concatenate([np.ravel(v) for v in (*net.weights, *net.biases)])


def build_case(build, cfg, dtype, data, batch, seed):
    holder = {}

    def setup():
        use_build(build)
        holder["net"] = new_net(cfg, dtype, seed)
        holder["rng"] = np.random.default_rng(seed)

    def run():
        use_build(build)
        holder["net"].fit(data.X, data.targets, epochs=1, batch_size=batch, lr=cfg.lr,
                          shuffle=True, seed=int(holder["rng"].integers(1 << 30)),
                          progress=False)

    return _common.Case(dict(build=build, batch=batch), run, data.n, setup=setup)


def run(args, builds, mnist):
    rows = []
    for key in args.nets:
        cfg = _common.NETWORKS[key]
        for dtype in _common.dtypes(args):
            data = _common.make_data(cfg, dtype, args.samples, mnist, args.seed)
            reference = trained_weights(builds[0], cfg, dtype, data, args.seed)
            scale = max(1.0, float(np.abs(reference).max()))
            diffs = {build: float(np.abs(trained_weights(build, cfg, dtype, data, args.seed)
                                         - reference).max()) / scale for build in builds}
            bad = {b: d for b, d in diffs.items() if not d <= TOLERANCE[dtype]}
            if bad:
                raise SystemExit(f"{key} {dtype}: builds disagree with {builds[0]}: {bad}")
            cases = [build_case(build, cfg, dtype, data, batch, args.seed)
                     for batch in args.batch_sizes for build in builds]
            _common.measure(cases, args.reps)
            for batch in args.batch_sizes:
                previous = None
                for case in (c for c in cases if c.key["batch"] == batch):
                    rate = case.samples_per_s
                    rows.append(dict(net=key, dtype=dtype, batch=batch,
                                     build=case.key["build"], samples_per_s=rate,
                                     ratio=None if previous is None else rate / previous,
                                     spread=max(case.times) / min(case.times),
                                     max_rel_diff=diffs[case.key["build"]]))
                    previous = rate
            print(_common.format_table(rows[-len(cases):], COLUMNS), flush=True)
            print()
    return rows


def main(argv=None):
    parser = _common.base_parser(__doc__.splitlines()[0],
                                 quick_help="N1 and N2, 300 samples, 2 repetitions: a smoke run")
    parser.add_argument("--nets", nargs="+", choices=sorted(_common.NETWORKS), default=None,
                        help=f"networks (default: {' '.join(NETS)})")
    parser.add_argument("--batch-sizes", nargs="+", type=_common.positive_int,
                        default=list(BATCH_SIZES))
    parser.add_argument("--samples", type=_common.positive_int, default=None,
                        help="MNIST training samples per epoch (default 10,000; 300 with --quick)")
    parser.add_argument("--reps", type=_common.positive_int, default=None,
                        help="interleaved repetitions, the median reported (default 7)")
    args = parser.parse_args(argv)
    args.nets = args.nets or (["N1", "N2"] if args.quick else list(NETS))
    args.samples = args.samples or (300 if args.quick else 10_000)
    args.reps = args.reps or (2 if args.quick else 7)
    info = _common.machine_info()
    _common.print_machine(info)
    builds = _dispatch.available_kernels()
    print(f"builds   {', '.join(builds)} (of {', '.join(_dispatch.BUILDS)}: the others need "
          f"CPU features this machine lacks, or are not installed)")
    print(f"timing   one epoch of {args.samples:,} samples, median of {args.reps} interleaved "
          f"repetitions, one thread\n")
    mnist = _common.load_mnist(args.mnist_dir)[:2]
    rows = run(args, builds, mnist)
    if args.json:
        _common.write_json(args.json, dict(machine=info, builds=builds, samples=args.samples,
                                           reps=args.reps, seed=args.seed, rows=rows))


if __name__ == "__main__":
    main()
