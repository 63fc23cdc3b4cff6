"""Per-call cost of one sample: bpfast next to one NumPy call, PyTorch and Numba.

Reinforcement-learning and online-learning code calls a network one sample at
a time, and then what a call costs is the overhead around the kernel.  The
contract (docs/design.md, "One-sample latency") states it as ratios to one
small NumPy call measured in the same run: on a [4, 64, 64, 2] network with
the input already in the network's dtype, ``forward(x)`` and ``predict(x)``
at most 1.5x ``W @ x`` for a (64, 4) float64 W, ``sgd_step(x, y, lr)`` and
``step(x, y, opt)`` at most 3x, river's ``learn_one`` on a 4-feature dict at
most 5x.

Every call is timed in a loop of --calls calls; the loops of all the calls
are interleaved (A, B, C, A, B, C, ...) --reps times, so a burst of load from
another process hits them alike, and each reports the minimum over the
repetitions (the median too, in the JSON).  Peers: PyTorch's
``torch.no_grad()`` forward of the same ``nn.Sequential`` on a (4,) tensor
and its SGD step (zero_grad, forward, loss, backward, opt.step); Numba
``@njit`` functions doing the same forward and per-sample SGD step in loops.

    python bench/latency.py              # 2,000 calls x 15 repetitions per call
    python bench/latency.py --quick      # a smoke run (timings mean little)
    python bench/latency.py --json out.json
"""

import gc
import statistics
import time

import numpy as np

import bpfast
from _common import (base_parser, format_table, machine_info, positive_int, print_machine,
                     write_json)
from bpfast import optim

LAYERS = (4, 64, 64, 2)
ACTIVATION, OUTPUT, LOSS = "tanh", "softmax", "cross_entropy"
LR = 0.01
TARGETS = {"forward": 1.5, "predict": 1.5, "sgd_step": 3.0, "step SGD": 3.0,
           "river learn_one": 5.0}


# ---------------------------------------------------------------- the calls

def bpfast_calls(dtype, x64, label):
    net = bpfast.MLP(list(LAYERS), activation=ACTIVATION, output=OUTPUT, loss=LOSS,
                     dtype=dtype, seed=0)
    x = x64.astype(dtype)
    sgd, adam = optim.SGD(lr=LR), optim.Adam(lr=1e-3)
    return {
        "forward": lambda: net.forward(x),
        "predict": lambda: net.predict(x),
        "sgd_step": lambda: net.sgd_step(x, label, LR),
        "step SGD": lambda: net.step(x, label, sgd),
        "step Adam": lambda: net.step(x, label, adam),
    }


def river_calls(x64, label):
    from bpfast.river import BPClassifier
    model = BPClassifier(hidden_layer_sizes=LAYERS[1:-1], activation=ACTIVATION, lr=LR, seed=0)
    features = {name: float(v) for name, v in zip("abcd", x64)}
    model.learn_one(features, 0)
    model.learn_one(features, 1)        # both classes seen: the network has its final shape
    return {"river learn_one": lambda: model.learn_one(features, label),
            "river predict_one": lambda: model.predict_one(features)}


def torch_calls(x64, label):
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sizes = LAYERS
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]).double())
        if k < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)
    x = torch.from_numpy(x64.copy())
    y = torch.tensor(label)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.functional.cross_entropy

    def forward():
        with torch.no_grad():
            return torch.softmax(model(x), dim=0)

    def sgd_step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return {"torch forward": forward, "torch SGD step": sgd_step}


def numba_calls(x64, label):
    try:
        from numba import njit
    except ImportError:
        return {}
    rng = np.random.default_rng(0)
    Ws = [rng.uniform(-0.3, 0.3, size=(n_out, n_in))
          for n_in, n_out in zip(LAYERS[:-1], LAYERS[1:])]
    W0, W1, W2 = Ws
    b0, b1, b2 = (np.zeros(n) for n in LAYERS[1:])

    @njit(cache=False)
    def forward(x, W0, b0, W1, b1, W2, b2):
        h0 = np.tanh(W0 @ x + b0)
        h1 = np.tanh(W1 @ h0 + b1)
        z = W2 @ h1 + b2
        e = np.exp(z - z.max())
        return e / e.sum()

    @njit(cache=False)
    def sgd_step(x, label, lr, W0, b0, W1, b1, W2, b2):
        h0 = np.tanh(W0 @ x + b0)
        h1 = np.tanh(W1 @ h0 + b1)
        z = W2 @ h1 + b2
        e = np.exp(z - z.max())
        a = e / e.sum()
        loss = -np.log(a[label])
        d2 = a.copy()
        d2[label] -= 1.0
        d1 = (W2.T @ d2) * (1.0 - h1 * h1)
        d0 = (W1.T @ d1) * (1.0 - h0 * h0)
        W2 -= lr * np.outer(d2, h1)
        b2 -= lr * d2
        W1 -= lr * np.outer(d1, h0)
        b1 -= lr * d1
        W0 -= lr * np.outer(d0, x)
        b0 -= lr * d0
        return loss

    x = x64.copy()
    forward(x, W0, b0, W1, b1, W2, b2)                      # compile outside the timing
    sgd_step(x, label, LR, W0, b0, W1, b1, W2, b2)
    return {"numba forward": lambda: forward(x, W0, b0, W1, b1, W2, b2),
            "numba SGD step": lambda: sgd_step(x, label, LR, W0, b0, W1, b1, W2, b2)}


# ---------------------------------------------------------------- timing

def per_call_ns(call, n_calls):
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(n_calls):
            call()
        return (time.perf_counter_ns() - start) / n_calls
    finally:
        if gc_was_enabled:
            gc.enable()


def measure(calls, n_calls, reps):
    """{name: [ns per call of each repetition]}, the repetitions interleaved."""
    for call in calls.values():         # warm up: caches, first-use set-up
        per_call_ns(call, max(10, n_calls // 10))
    times = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            times[name].append(per_call_ns(call, n_calls))
    return times


def run(args):
    rng = np.random.default_rng(args.seed)
    x64 = rng.normal(size=LAYERS[0])
    W = rng.normal(size=(LAYERS[1], LAYERS[0]))
    label = 1
    calls = {"numpy W @ x": lambda: W @ x64}
    for dtype in ("float64", "float32"):
        calls |= {f"bpfast {name} ({dtype})": call
                  for name, call in bpfast_calls(dtype, x64, label).items()}
    calls |= {f"bpfast {name}": call for name, call in river_calls(x64, label).items()}
    calls |= torch_calls(x64, label)
    calls |= numba_calls(x64, label)
    times = measure(calls, args.calls, args.reps)
    base_best = min(times["numpy W @ x"])
    base_median = statistics.median(times["numpy W @ x"])
    rows = []
    for name, ns in times.items():
        short = name.removeprefix("bpfast ").split(" (")[0]
        target = TARGETS.get(short) if name.startswith("bpfast") else None
        best, median = min(ns), statistics.median(ns)
        rows.append(dict(call=name, us=best / 1e3, median_us=median / 1e3,
                         ratio=best / base_best, median_ratio=median / base_median,
                         target=target,
                         met=None if target is None else ("yes" if best / base_best <= target
                                                          else "no")))
    return rows


COLUMNS = [("call", "call", ""), ("us", "µs/call", ".2f"), ("ratio", "× W@x", ".2f"),
           ("median_ratio", "× (median)", ".2f"), ("target", "target ×", ".1f"),
           ("met", "met", "")]


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0],
                         quick_help="200 calls x 3 repetitions: a smoke run")
    parser.add_argument("--calls", type=positive_int, default=None,
                        help="calls per timed loop (default 2,000; 200 with --quick)")
    parser.add_argument("--reps", type=positive_int, default=None,
                        help="interleaved repetitions (default 15; 3 with --quick)")
    args = parser.parse_args(argv)
    args.calls = args.calls or (200 if args.quick else 2000)
    args.reps = args.reps or (3 if args.quick else 15)
    info = machine_info()
    print_machine(info)
    print(f"network  {list(LAYERS)} {ACTIVATION}/{OUTPUT}/{LOSS}; data: one sample x ~ "
          f"N(0, 1) of shape ({LAYERS[0]},), label 1, seed {args.seed}")
    print(f"timing   {args.calls} calls per loop, {args.reps} interleaved repetitions, "
          f"minimum per call (ratios to numpy W @ x of shape ({LAYERS[1]}, {LAYERS[0]}) "
          f"in this run)\n")
    rows = run(args)
    print(format_table(rows, COLUMNS))
    if args.json:
        write_json(args.json, dict(machine=info, layers=list(LAYERS), activation=ACTIVATION,
                                   output=OUTPUT, loss=LOSS, calls=args.calls, reps=args.reps,
                                   seed=args.seed, rows=rows))


if __name__ == "__main__":
    main()
