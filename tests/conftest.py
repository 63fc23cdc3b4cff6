"""Shared fixtures and helpers of the bpfast test suite.

Tolerances follow the precision of the network's dtype (as in scikit-learn's
``assert_allclose`` conventions): about 1e-7 relative for float64 and 1e-4
for float32.  MNIST is read once per session from ``shared/data/mnist``
beside the repository checkout (or ``$BPFAST_MNIST_DIR``); tests that need it
are skipped when it is absent.
"""

import os
import threading
from pathlib import Path

import numpy as np
import pytest

# Hypothesis profiles for the property and fuzz tests: "ci" (the default) is
# small and derandomised; BPFAST_HYPOTHESIS_PROFILE=dev searches far longer.
HYPOTHESIS_PROFILE = os.environ.get("BPFAST_HYPOTHESIS_PROFILE", "ci")
try:
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True,
                              print_blob=True, suppress_health_check=_quiet)
    settings.register_profile("dev", max_examples=4000, deadline=None,
                              suppress_health_check=_quiet)

# Repository root is parents[1] of this file; the folder beside it holds `shared/`.
MNIST_DIR = Path(os.environ.get(
    "BPFAST_MNIST_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))

DTYPES = ("float32", "float64")
RTOL = {"float32": 1e-4, "float64": 1e-7}

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def mnist_available(folder=MNIST_DIR):
    """True when the four MNIST IDX files (raw or .gz) are in `folder`."""
    folder = Path(folder)
    return all((folder / name).exists() or (folder / (name + ".gz")).exists()
               for name in MNIST_FILES)


def params_snapshot(net):
    """Copies of every weight matrix then every bias vector of `net`.

    Compare two snapshots with `assert_same_params` to prove that a call did
    (or did not) touch the network, bit for bit.
    """
    return [np.array(W, copy=True) for W in net.weights] + \
        [np.array(b, copy=True) for b in net.biases]


def assert_same_params(before, after):
    """Two `params_snapshot` results are bit-identical (NaN-aware, dtype-aware)."""
    assert len(before) == len(after)
    for old, new in zip(before, after):
        assert old.dtype == new.dtype and old.shape == new.shape
        np.testing.assert_array_equal(old, new, strict=True)


@pytest.fixture(params=DTYPES)
def dtype(request):
    """The network dtype, as the string passed to MLP(dtype=...)."""
    return request.param


@pytest.fixture
def rtol(dtype):
    """Relative tolerance appropriate for results computed in `dtype`."""
    return RTOL[dtype]


@pytest.fixture(scope="session")
def mnist_dir():
    """Folder with the MNIST IDX files; skips the test when they are absent."""
    if not mnist_available():
        pytest.skip(f"MNIST not found in {MNIST_DIR} (set BPFAST_MNIST_DIR)")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """(X_train, y_train, X_test, y_test), loaded once per session.

    The arrays are made read-only so that no test can alter what the others see
    (bpfast must accept read-only inputs anyway).
    """
    from bpfast.datasets import load_mnist

    arrays = load_mnist(mnist_dir)
    for arr in arrays:
        arr.setflags(write=False)
    return arrays


JOIN_TIMEOUT = 120      # seconds; a thread still alive then is a deadlock


def run_threads(*jobs):
    """Run the callables in threads released together by a barrier; return
    their results in order.

    Re-raises the first exception a job raised; fails on a thread that does
    not finish (a deadlock).
    """
    start = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def worker(k):
        try:
            start.wait(JOIN_TIMEOUT)
            results[k] = jobs[k]()
        except BaseException as exc:            # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True)
               for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread did not finish: deadlock"
    if errors:
        raise errors[0]
    return results
