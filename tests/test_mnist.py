"""Real MNIST: the reader, and the tutorial networks reaching the tutorial accuracies.

MNIST is read once per session by the `mnist` fixture (conftest.py) from
``shared/data/mnist`` beside the checkout; every test here is skipped when
the files are absent.  Each training run takes a few seconds.
"""

import gzip
import shutil

import numpy as np
import pytest

import bpfast
from bpfast.datasets import load_mnist
from conftest import MNIST_FILES


def test_load_mnist_shapes_dtypes_and_ranges(mnist):
    X_train, y_train, X_test, y_test = mnist
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    grid = np.arange(256, dtype=np.float32) / np.float32(255.0)    # pixel k -> k / 255
    for X, y in ((X_train, y_train), (X_test, y_test)):
        assert X.dtype == np.float32 and y.dtype == np.int64
        assert X.min() == 0.0 and X.max() == 1.0
        assert np.array_equal(np.unique(y), np.arange(10))
        # every value is k/255 for an integer pixel k (checked on every 10th image)
        assert np.all(np.isin(np.unique(X[::10]), grid))
    # class frequencies are those of MNIST: about a tenth each
    assert np.all(np.abs(np.bincount(y_train) / 60000 - 0.1) < 0.02)


def test_load_mnist_reads_raw_idx_files(mnist_dir, mnist, tmp_path):
    """Un-gzipped copies of the four files load to exactly the same arrays."""
    for name in MNIST_FILES:
        src = mnist_dir / (name + ".gz")
        if not src.exists():                  # the shared copy is raw already
            src = mnist_dir / name
            shutil.copyfile(src, tmp_path / name)
            continue
        with gzip.open(src, "rb") as fin, open(tmp_path / name, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    assert not list(tmp_path.glob("*.gz"))
    for raw, ref in zip(load_mnist(tmp_path), mnist):
        assert raw.dtype == ref.dtype
        np.testing.assert_array_equal(raw, ref)
    # a str path works as well as a Path
    assert load_mnist(str(tmp_path))[1].shape == (60000,)


def test_load_mnist_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        load_mnist(tmp_path)                  # exists, but holds no IDX files


def test_tutorial_network_784_30_10_one_epoch(mnist, dtype):
    """Nielsen's network: sigmoid/sigmoid, quadratic loss, lr 3.0, batches of 10."""
    X_train, y_train, X_test, y_test = mnist
    net = bpfast.MLP([784, 30, 10], activation="sigmoid", output="sigmoid", loss="mse",
                     dtype=dtype, seed=0)
    hist = net.fit(X_train, y_train, epochs=1, lr=3.0, batch_size=10, seed=0,
                   validation_data=(X_test, y_test), progress=False)
    accuracy = net.evaluate(X_test, y_test)["accuracy"]
    assert accuracy >= 0.92
    assert hist.history[0]["val_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert float(np.mean(net.predict(X_test) == y_test)) == pytest.approx(accuracy, abs=1e-12)


def test_softmax_cross_entropy_784_100_10_two_epochs(mnist, dtype):
    X_train, y_train, X_test, y_test = mnist
    net = bpfast.MLP([784, 100, 10], activation="sigmoid", output="softmax",
                     loss="cross_entropy", dtype=dtype, seed=0)
    hist = net.fit(X_train, y_train, epochs=2, lr=0.5, batch_size=10, seed=0, progress=False)
    assert len(hist.history) == 2
    assert hist.history[1]["loss"] < hist.history[0]["loss"]
    assert net.evaluate(X_test, y_test)["accuracy"] >= 0.95
