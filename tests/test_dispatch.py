"""Every installed build of the kernel computes the same network.

A wheel carries the kernel more than once (bpfast._dispatch): `_core`, compiled
for the platform's baseline instruction set, and on x86-64 `_core_avx2`
(-mavx2 -mfma) and `_core_avx512` (AVX-512F/VL, 512-bit vectors), the best one
the CPU runs picked at import time.  The builds share one source, so they must
agree to rounding: the wider builds may contract a*b + c into one fused
multiply-add (one rounding instead of two) and sum a row in another order of
lanes, and nothing else may differ.  These tests force each build in turn and compare
forward pass, loss, gradients and a short fit against the baseline; they also
check the BPFAST_KERNEL switch in a fresh interpreter and that the version has
a single source.
"""

import contextlib
import importlib.metadata
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

import bpfast
from bpfast import _builds, _dispatch

KERNELS = _dispatch.available_kernels()
OTHER_KERNELS = [name for name in KERNELS if name != "baseline"]
ONLY_BASELINE = pytest.mark.skipif(
    not OTHER_KERNELS,
    reason=f"only the baseline kernel build runs here (available: {KERNELS})")

# FMA contraction changes the last bit of single operations; cancellation in
# gradient sums can amplify that by a few orders of magnitude on small entries,
# hence a tolerance scaled by the largest entry as well as a relative one.
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}

# (hidden activation, output, loss): every activation, every loss, and each
# output/loss pair that takes its own branch in the kernel.
NETWORKS = [
    ("sigmoid", "sigmoid", "mse"),
    ("tanh", "softmax", "cross_entropy"),
    ("relu", "sigmoid", "cross_entropy"),
    ("leaky_relu", "identity", "mse"),
    ("identity", "tanh", "mse"),
]
LAYERS = [13, 17, 11, 4]


class RecordingKernel:
    """Stands in for a kernel module and remembers which entry points ran."""

    def __init__(self, module):
        self.module = module
        self.calls = set()

    def __getattr__(self, name):
        attribute = getattr(self.module, name)
        if callable(attribute):
            self.calls.add(name)
        return attribute


@contextlib.contextmanager
def kernel_build(name):
    """Make every bpfast call in the block run on the named kernel build.

    The Python layer looks up `bpfast._dispatch.kernel` at each call; the
    recording stand-in proves the calls really reached the forced build.
    """
    recording = RecordingKernel(_dispatch.load_kernel(name))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_dispatch, "kernel", recording)
        patch.setattr(_dispatch, "kernel_name", name)
        yield recording
    assert recording.calls, f"no bpfast call reached the {name!r} kernel build"


def assert_close(actual, expected, dtype, what):
    """Equal within the dtype's tolerance, relative and scaled by the largest entry."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    tol = TOLERANCE[dtype]
    scale = float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240607)
    X = rng.normal(size=(64, LAYERS[0]))
    labels = rng.integers(0, LAYERS[-1], size=64)
    targets = rng.uniform(0.1, 0.9, size=(64, LAYERS[-1]))
    return X, labels, targets


def run_network(build, dtype, activation, output, loss, data):
    """Forward pass, loss, gradients and a short fit of one seeded network."""
    X, labels, targets = data
    Y = labels if loss == "cross_entropy" and output == "softmax" else targets
    with kernel_build(build) as recording:
        net = bpfast.MLP(LAYERS, activation=activation, output=output, loss=loss,
                         dtype=dtype, seed=7)
        result = {
            "forward": net.forward(X),
            "loss": np.array(net.loss(X, Y)),
            "gradients": net.gradients(X, Y),
        }
        history = net.fit(X, Y, epochs=3, lr=0.05, batch_size=8, shuffle=True, seed=1,
                          momentum=0.9, nesterov=True, weight_decay=1e-3,
                          progress=False, n_threads=2)
        result["fit_loss"] = np.array([row["loss"] for row in history.history])
        result["weights"] = [np.array(W) for W in net.weights]
        result["biases"] = [np.array(b) for b in net.biases]
    assert {"evaluate", "gradient", "train"} <= recording.calls
    return result


def test_available_kernels_lists_baseline_first():
    assert KERNELS[0] == "baseline"
    assert set(KERNELS) <= set(_dispatch.BUILDS)
    assert KERNELS == [name for name in _dispatch.BUILDS if name in KERNELS]   # best last
    assert len(set(KERNELS)) == len(KERNELS)
    assert _dispatch.kernel_name in KERNELS


def test_default_is_best_available_unless_forced():
    forced = os.environ.get("BPFAST_KERNEL", "").strip().lower()
    assert _dispatch.kernel_name == (forced or KERNELS[-1])
    assert _dispatch.kernel is _dispatch.load_kernel(_dispatch.kernel_name)


@pytest.mark.parametrize("name", KERNELS)
def test_load_kernel_returns_distinct_module_per_build(name):
    module = _dispatch.load_kernel(name)
    expected = {"baseline": "bpfast._core", "avx2": "bpfast._core_avx2",
                "avx512": "bpfast._core_avx512"}[name]
    assert module.__name__ == expected
    for entry_point in ("train", "gradient", "evaluate", "all_finite"):
        assert callable(getattr(module, entry_point))


def test_load_kernel_rejects_unknown_name():
    with pytest.raises(ValueError,
                       match=r"expected one of 'baseline', 'avx2', 'avx512', got 'sse9'"):
        _dispatch.load_kernel("sse9")


@pytest.mark.parametrize("name", [name for name in _dispatch.BUILDS if name not in KERNELS]
                         or [pytest.param(None, marks=pytest.mark.skip(
                             reason="every kernel build runs on this CPU"))])
def test_load_kernel_refuses_build_that_cannot_run_here(name):
    with pytest.raises(ImportError, match=f"the '{name}' kernel build is not available"):
        _dispatch.load_kernel(name)


@pytest.mark.parametrize("name", [name for name in _dispatch.BUILDS if name not in KERNELS]
                         or [pytest.param(None, marks=pytest.mark.skip(
                             reason="every kernel build runs on this CPU"))])
def test_env_forcing_a_build_this_cpu_lacks_fails_import_clearly(name):
    """Never a silent fallback, and never an import of code the CPU cannot run
    (an AVX-512 build's import alone is an illegal instruction elsewhere)."""
    child = run_python("import bpfast", name)
    assert child.returncode == 1, (child.returncode, child.stderr)
    last_line = child.stderr.strip().splitlines()[-1]
    assert last_line == f"ImportError: the '{name}' kernel build is not available on this CPU or install"


def test_a_build_is_imported_only_where_the_cpu_has_its_features(monkeypatch):
    """available_kernels reads NumPy's CPU features before it imports a build."""
    imported = []
    monkeypatch.setattr(_dispatch, "importlib", types.SimpleNamespace(import_module=imported.append))
    monkeypatch.setattr(_builds, "cpu_features", lambda: {"AVX2": True, "FMA3": True})
    assert _dispatch.available_kernels() == ["baseline", "avx2"]
    assert imported == ["bpfast._core", "bpfast._core_avx2"]
    imported.clear()
    monkeypatch.setattr(_builds, "cpu_features", lambda: {
        "AVX2": True, "FMA3": True, "AVX512F": True, "AVX512VL": False})
    assert _dispatch.available_kernels() == ["baseline", "avx2"]
    assert imported == ["bpfast._core", "bpfast._core_avx2"]


@ONLY_BASELINE
@pytest.mark.parametrize("build", OTHER_KERNELS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation, output, loss", NETWORKS)
def test_builds_agree(build, dtype, activation, output, loss, data):
    expected = run_network("baseline", dtype, activation, output, loss, data)
    actual = run_network(build, dtype, activation, output, loss, data)
    for key in ("forward", "loss", "fit_loss"):
        assert_close(actual[key], expected[key], dtype, f"{key} ({build} vs baseline)")
    for part, (got, want) in zip(("grad_w", "grad_b"), zip(actual["gradients"],
                                                           expected["gradients"])):
        for layer, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, dtype, f"{part}[{layer}] ({build} vs baseline)")
    for part in ("weights", "biases"):
        for layer, (g, w) in enumerate(zip(actual[part], expected[part])):
            assert_close(g, w, dtype, f"{part}[{layer}] after fit ({build} vs baseline)")


def run_python(code, kernel):
    """Run `code` in a fresh, isolated interpreter with BPFAST_KERNEL=kernel.

    -I keeps the current directory (a source checkout, perhaps) off sys.path,
    so the child imports the same installed bpfast as this process.
    """
    env = {k: v for k, v in os.environ.items() if k != "BPFAST_KERNEL"}
    if kernel is not None:
        env["BPFAST_KERNEL"] = kernel
    return subprocess.run([sys.executable, "-I", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)


REPORT = "from bpfast import _dispatch; print(_dispatch.kernel_name, _dispatch.kernel.__name__)"


@pytest.mark.parametrize("value", ["baseline", " Baseline "])
def test_env_selects_baseline(value):
    child = run_python(REPORT, value)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["baseline", "bpfast._core"]


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.skipif(name not in KERNELS,
                                                reason=f"the {name} build does not run here"))
    for name in ("avx2", "avx512")])
def test_env_selects_a_wider_build(name):
    child = run_python(REPORT, name)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == [name, _dispatch.BUILDS[name][0]]


@pytest.mark.parametrize("kernel", [None, ""])
def test_env_unset_or_empty_selects_best(kernel):
    child = run_python(REPORT, kernel)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split()[0] == KERNELS[-1]


def test_env_invalid_value_fails_import_clearly():
    child = run_python("import bpfast", "sse9")
    assert child.returncode != 0
    last_line = child.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ValueError")
    assert "BPFAST_KERNEL" in last_line
    assert "'baseline', 'avx2', 'avx512'" in last_line
    assert "'sse9'" in last_line


def test_version_has_one_source():
    assert bpfast.__version__ == importlib.metadata.version("bpfast")


def test_every_build_of_the_table_has_its_source_and_stub():
    """bpfast._builds is the one table of builds (setup.py compiles from it,
    the dispatch loads from it): each entry names a module with its .pyx
    (in a source tree) and its stub."""
    package = pathlib.Path(_dispatch.__file__).parent
    for name, (module, features, gcc_flags, msvc_flags) in _dispatch.BUILDS.items():
        stem = module.rpartition(".")[2]
        assert module.startswith("bpfast._core") and (package / f"{stem}.pyi").exists(), name
        if (package / "_core.pxi").exists():
            assert (package / f"{stem}.pyx").exists(), name
        assert (name == "baseline") == (not features and not gcc_flags and not msvc_flags)

