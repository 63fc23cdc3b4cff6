"""Tiles: a dense minibatch sums W[0]'s gradient row by row for several samples
at once (accumulate and tile_outer in _core.pxi).  The sums keep their order,
so every result must be bit-identical to sample by sample (tile size 1), for
every tile size, batch size, target kind, weighting, optimizer and thread
count; the gradient itself is checked against PyTorch and finite differences
in test_gradients.py and test_gradcheck.py, which run with the default tiles.
"""

import numpy as np
import pytest

import bpfast
from bpfast import _layout, optim

TILES = (2, 3, 5, 16, 32, 40)   # 40: beyond the kernel's most (32), which it clamps to


def make_net(tile, monkeypatch, layers, dtype, **kw):
    monkeypatch.setattr(_layout, "TILE", tile)
    return bpfast.MLP(layers, dtype=dtype, seed=3, **kw)


def inputs(rng, n, n0, dtype):
    """Rows with about 60% zeros, one all-zero row and one without zeros (every
    column in the tile: the write-ahead slot of the row list is used)."""
    X = rng.standard_normal((n, n0))
    X[rng.random((n, n0)) < 0.6] = 0
    X[1] = 0
    X[2] = rng.uniform(0.5, 1.5, n0)
    return X.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tile", TILES)
def test_gradients_equal_sample_by_sample(tile, dtype, monkeypatch):
    rng = np.random.default_rng(0)
    X = inputs(rng, 37, 23, dtype)
    Y = rng.standard_normal((37, 3))
    kw = dict(activation="tanh", output="identity", loss="mse")
    ref = make_net(1, monkeypatch, [23, 19, 3], dtype, **kw).gradients(X, Y)
    got = make_net(tile, monkeypatch, [23, 19, 3], dtype, **kw).gradients(X, Y)
    for a, b in zip(ref[0] + ref[1], got[0] + got[1]):
        np.testing.assert_array_equal(a, b)
    assert np.any(ref[0][0] != 0)


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("batch_size", [2, 7, 32])
@pytest.mark.parametrize("case", ["sgd-labels", "adam-weighted", "momentum-threads"])
def test_training_equals_sample_by_sample(case, batch_size, tile, monkeypatch):
    rng = np.random.default_rng(1)
    X = inputs(rng, 101, 30, "float64")
    labels = rng.integers(0, 4, 101)
    kw = dict(activation="relu", output="softmax", loss="cross_entropy")

    def train(t):
        net = make_net(t, monkeypatch, [30, 16, 8, 4], "float64", **kw)
        fit = dict(epochs=2, batch_size=batch_size, seed=5)
        if case == "sgd-labels":
            fit.update(lr=0.05)
        elif case == "adam-weighted":
            fit.update(optimizer=optim.Adam(lr=1e-2),
                       sample_weight=rng.uniform(0, 2, 101).round(1))
        else:
            fit.update(lr=0.05, momentum=0.9, n_threads=2)
        history = net.fit(X, labels, **fit)
        return net, history

    state = rng.bit_generator.state
    ref, ref_history = train(1)
    rng.bit_generator.state = state
    got, history = train(tile)
    for a, b in zip(ref.weights + ref.biases, got.weights + got.biases):
        np.testing.assert_array_equal(a, b)
    assert [row["loss"] for row in history] == [row["loss"] for row in ref_history]
    assert not np.array_equal(ref.weights[0], make_net(1, monkeypatch, [30, 16, 8, 4],
                                                       "float64", **kw).weights[0])
