"""Resources: repeated calls do not grow memory; impossible networks fail early.

A leak per call -- a scratch buffer, an input copy, a memoryview the kernel
never releases, a file handle -- shows up as steady growth over hundreds of
calls.  Two meters watch for it after a warm-up: tracemalloc (every Python
and NumPy allocation) and the resident set size (everything, C included).
The bounds are generous against allocator noise yet far below what leaking
one input or parameter buffer per iteration would add.

A network far too large for this machine must fail at construction with a
clear ValueError or MemoryError, before anything is allocated -- not later
with a crash, or the kernel's out-of-memory killer.
"""

import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import bpfast

LAYERS = [256, 128, 10]                     # ~34k parameters, ~270 KiB in float64
N_SAMPLES = 32
WARMUP = 20


def rss_bytes():
    """Current resident set size, or None where /proc is not available."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture
def workload(tmp_path):
    """One iteration of everything a long-running training service does."""
    rng = np.random.default_rng(0)
    X = rng.random((N_SAMPLES, LAYERS[0]))
    X.setflags(write=False)
    y = rng.integers(0, LAYERS[-1], size=N_SAMPLES)
    X_nan = X.copy()
    X_nan[3, 7] = np.nan
    net = bpfast.MLP(LAYERS, activation="relu", output="softmax", loss="cross_entropy",
                     seed=0)
    path = tmp_path / "model.npz"

    def iteration():
        nonlocal net
        net.fit(X, y, epochs=1, lr=0.01, batch_size=8, momentum=0.9, progress=False)
        net.forward(X)
        net.predict(X[0])
        net.evaluate(X, y)
        net.gradients(X[:4], y[:4])
        net.sgd_step(X[:4], y[:4], 0.01)
        net.trace(X[0], y[0], lr=0.01)
        with pytest.raises(ValueError):           # a rejected call must not leak either
            net.loss(X_nan, y)
        net.save(path)
        net = bpfast.load(path)

    per_iteration = X.nbytes          # a leaked input copy per iteration, the smallest leak
    return iteration, per_iteration, lambda: net


def test_repeated_calls_do_not_grow_python_memory(workload):
    iteration, leak_unit, _ = workload
    iterations = 150
    for _ in range(WARMUP):
        iteration()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(WARMUP // 2):
            iteration()
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(iterations):
            iteration()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = after - before
    # Measured: ~10 KiB of noise.  One leaked input copy per iteration would be
    # iterations * leak_unit (~9 MiB); the bound catches ~2 KiB per iteration.
    assert growth < 256 * 1024, \
        f"traced memory grew by {growth / 1024:.0f} KiB over {iterations} iterations"


def _under_asan():
    return "asan" in os.environ.get("LD_PRELOAD", "")


@pytest.mark.skipif(rss_bytes() is None, reason="needs /proc/self/statm")
@pytest.mark.skipif(_under_asan(), reason="AddressSanitizer keeps freed memory in quarantine")
def test_repeated_calls_do_not_grow_resident_memory(workload):
    iteration, leak_unit, current_net = workload
    iterations = 250
    for _ in range(WARMUP):
        iteration()
    gc.collect()
    before = rss_bytes()
    for _ in range(iterations):
        iteration()
    gc.collect()
    growth = rss_bytes() - before
    params_bytes = current_net()._params.nbytes
    # Leaking one parameter-sized buffer per iteration would add ~65 MiB,
    # one input copy ~16 MiB; allocator noise measured well under 1 MiB.
    assert growth < 8 * 2**20, \
        f"resident memory grew by {growth / 2**20:.1f} MiB over {iterations} iterations " \
        f"(parameters {params_bytes / 1024:.0f} KiB, inputs {leak_unit / 1024:.0f} KiB)"


def test_repeated_construction_does_not_grow_memory():
    """Networks built and dropped (as a hyper-parameter search does) are freed."""
    def build():
        net = bpfast.MLP(LAYERS, seed=1)
        net.forward(np.zeros(LAYERS[0]))

    for _ in range(WARMUP):
        build()
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(200):
            build()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 256 * 1024


# ---------------------------------------------------------------- too large

@pytest.mark.parametrize("layers", [
    [10**6, 10**6, 10**6],          # 2e12 parameters: 16 TB in float64
    [10**5, 10**5, 10**5],          # 160 GB
    [2**40, 2**40],                 # beyond any address space
    [784] + [2**31] * 3 + [10],
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_network_far_too_large_fails_at_construction(layers, dtype):
    before = rss_bytes()
    with pytest.raises((ValueError, MemoryError), match="layers|memory|allocate") as info:
        bpfast.MLP(layers, dtype=dtype)
    assert "memory" in str(info.value).lower()
    if before is not None:
        assert rss_bytes() - before < 64 * 2**20, "memory was allocated before the refusal"


def test_a_network_larger_than_physical_memory_is_refused():
    """Refused even where the OS would over-commit the buffer (and later kill us)."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        pytest.skip("the OS does not report its physical memory")
    width = int(np.sqrt(2 * physical / 8)) + 1          # W alone is twice the memory
    with pytest.raises((ValueError, MemoryError), match="memory"):
        bpfast.MLP([width, width], dtype="float64")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
@pytest.mark.skipif(_under_asan(), reason="AddressSanitizer reserves more address space "
                                          "than the limit allows")
def test_running_out_of_address_space_is_a_memory_error_not_a_crash():
    """In a child process allowed 1 GiB of address space beyond what it maps
    already (a free-threaded CPython reserves over 1 GB at start): a 1.6 GB
    network (under this machine's memory, so bpfast's own check lets it pass)
    fails with MemoryError; the process goes on and trains a small network."""
    code = textwrap.dedent("""
        import os, resource, numpy as np, numpy.random, bpfast
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**30, mapped + 2**30))
        try:
            bpfast.MLP([20000, 10000, 10], dtype="float64")
        except MemoryError as exc:
            print("MemoryError", exc)
        except ValueError as exc:
            print("ValueError", exc)
        else:
            print("constructed")
        net = bpfast.MLP([4, 8, 2], seed=0)
        net.fit(np.eye(4), [0, 1, 0, 1], epochs=3, progress=False)
        print("still alive", net.evaluate(np.eye(4), [0, 1, 0, 1])["accuracy"])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(("MemoryError", "ValueError")), proc.stdout
    assert lines[-1].startswith("still alive"), proc.stdout
