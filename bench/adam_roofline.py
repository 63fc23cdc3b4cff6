"""What bounds per-sample Adam: the update's bytes and FLOPs against this core.

Per-sample Adam updates every parameter at every step: for n parameters (in
bpfast's padded layout) the kernel's update pass reads the summed gradient g
and zeroes it, and reads and writes p, m and v: 8 n words per step (7 n if g
were only read, 6 n if the gradient never went to memory).  Per parameter it
does 14 floating-point operations, one square root and two divisions among
them (see adam_rule in src/bpfast/_update.pxi).

For each network and dtype this script measures, on one thread:

  stream     NumPy `a += b` over two arrays that together are the size of the
             update's working set (p, g, m, v: 4 n words), i.e. the bandwidth of
             the cache level the update runs in; and over 64 MiB arrays (memory)
  update     the Adam update alone over n parameters, an @njit loop (LLVM,
             vectorised): the best a compiled update does on this core
  bpfast     fit(optimizer=optim.Adam(lr=1e-3), batch_size=1) and plain SGD at
             batch 1, microseconds per sample

and prints the update's share of a bpfast Adam step and the samples/s that
the update alone would allow.

    python bench/adam_roofline.py --json out.json
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

import bpfast  # noqa: E402
from bpfast import optim  # noqa: E402

FLOPS_PER_PARAM = 14
WORDS_PER_PARAM = 8       # g read and zeroed, p, m, v read and written
MEMORY_BYTES = 64 << 20


def parse_args(argv=None):
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", choices=sorted(_common.NETWORKS),
                        default=["N1", "N2r"])
    parser.add_argument("--samples", type=_common.positive_int, default=None,
                        help="samples per timed bpfast epoch (default 10000, --quick 500)")
    args = parser.parse_args(argv)
    args.samples = args.samples or (500 if args.quick else 10000)
    return args


def best_time(fn, min_seconds=0.2, reps=5):
    """Fastest of `reps` timings of fn() (each repeated to last min_seconds), per call."""
    fn()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start > min_seconds / reps:
            break
        calls *= 2
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def stream_bandwidth(n_words, dtype):
    """Bytes/s of `a += b` (read a and b, write a) over two arrays of n_words/2."""
    half = max(n_words // 2, 1)
    a, b = np.ones(half, dtype=dtype), np.full(half, 1e-9, dtype=dtype)

    def add():
        np.add(a, b, out=a)
    return 3 * half * a.itemsize / best_time(add)


def compiled_update():
    """An @njit Adam update over whole arrays (torch's formula, as the kernel)."""
    import numba

    @numba.njit(nogil=True, fastmath=False, error_model="numpy")
    def update(p, g, m, v, c):
        step_size, bc2, one_m_b1, b2, one_m_b2, eps = c[0], c[1], c[2], c[3], c[4], c[5]
        for i in range(p.shape[0]):
            gi = g[i] * c[6]
            g[i] = 0
            m_i = m[i] + one_m_b1 * (gi - m[i])
            v_i = b2 * v[i] + one_m_b2 * gi * gi
            m[i] = m_i
            v[i] = v_i
            p[i] -= step_size * (m_i / (np.sqrt(v_i) / bc2 + eps))
    return update


def update_time(update, n, dtype):
    rng = np.random.default_rng(0)
    p, m = rng.standard_normal(n).astype(dtype), np.zeros(n, dtype)
    v, g = np.zeros(n, dtype), np.zeros(n, dtype)
    c = np.array([1e-3 / 0.1, np.sqrt(0.001), 0.1, 0.999, 0.001, 1e-8, 1.0], dtype=dtype)

    def step():
        update(p, g, m, v, c)
    return best_time(step)


def fit_time(cfg, dtype, data, optimizer):
    def run():
        net = bpfast.MLP(list(cfg.layers), activation=cfg.activation, output=cfg.output,
                         loss=cfg.loss, dtype=dtype, seed=0)
        kwargs = dict(optimizer=optim.Adam(lr=1e-3)) if optimizer == "adam" else dict(lr=cfg.lr)
        start = time.perf_counter()
        net.fit(data.X, data.targets, epochs=1, batch_size=1, progress=False, **kwargs)
        return time.perf_counter() - start
    run()
    return min(run() for _ in range(3)) / data.n


def main(argv=None):
    args = parse_args(argv)
    info = _common.machine_info()
    _common.print_machine(info)
    X_train, y_train, _, _ = _common.load_mnist(args.mnist_dir)
    print(_common.describe_data("MNIST train", X_train[:args.samples], y_train[:args.samples]))
    update = compiled_update()
    rows = []
    for key in args.nets:
        cfg = _common.NETWORKS[key]
        for dtype in _common.dtypes(args):
            size = np.dtype(dtype).itemsize
            n = bpfast.MLP(list(cfg.layers), activation=cfg.activation, dtype=dtype)._buffer_len()
            data = _common.make_data(cfg, dtype, args.samples, (X_train, y_train), args.seed)
            bw = stream_bandwidth(4 * n, dtype)
            bw_mem = stream_bandwidth(MEMORY_BYTES // size, dtype)
            t_update = update_time(update, n, dtype)
            t_adam = fit_time(cfg, dtype, data, "adam")
            t_sgd = fit_time(cfg, dtype, data, "sgd")
            moved = WORDS_PER_PARAM * n * size
            rows.append(dict(
                net=key, dtype=dtype, n_params=n, working_set_kib=4 * n * size / 1024,
                bytes_per_step=moved, flops_per_step=FLOPS_PER_PARAM * n,
                stream_gb_s=bw / 1e9, memory_gb_s=bw_mem / 1e9,
                t_stream_us=moved / bw * 1e6, t_update_us=t_update * 1e6,
                update_gflop_s=FLOPS_PER_PARAM * n / t_update / 1e9,
                update_gb_s=moved / t_update / 1e9,
                bpfast_adam_us=t_adam * 1e6, bpfast_sgd_us=t_sgd * 1e6,
                update_share=min(t_update / t_adam, 1.0),
                update_bound_samples_s=1 / t_update))
            print(f"measured {key} {dtype}", flush=True)
    print()
    print(_common.format_table(rows, [
        ("net", "net", ""), ("dtype", "dtype", ""), ("n_params", "params", ",d"),
        ("working_set_kib", "p,g,m,v KiB", ".0f"), ("bytes_per_step", "bytes/step", ",d"),
        ("flops_per_step", "FLOP/step", ",d"), ("stream_gb_s", "a+=b GB/s", ".1f"),
        ("memory_gb_s", "mem GB/s", ".1f"), ("t_stream_us", "stream us", ".1f"),
        ("t_update_us", "update us", ".1f"), ("update_gflop_s", "upd GFLOP/s", ".2f"),
        ("update_gb_s", "upd GB/s", ".1f"), ("bpfast_adam_us", "bpfast Adam b1 us", ".1f"),
        ("bpfast_sgd_us", "bpfast SGD b1 us", ".1f"),
        ("update_bound_samples_s", "update-bound samples/s", ",.0f")]))
    print("\nstream us: bytes/step at the a+=b bandwidth of the working set's cache level; "
          "update us: the @njit update alone; its samples/s is the ceiling of per-sample Adam "
          "with the forward and backward passes free.")
    if args.json:
        _common.write_json(args.json, dict(benchmark="adam_roofline", args=vars(args),
                                           machine=info, rows=rows))


if __name__ == "__main__":
    main()
