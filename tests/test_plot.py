"""bpfast.plot: real PNGs of learning curves and first-layer weights.

Every figure is rendered to a file, read back with matplotlib.image.imread
and checked for a sensible size and real content (not a blank canvas).
"""

import sys

import numpy as np
import pytest

import bpfast

pytest.importorskip("matplotlib")
from matplotlib import colormaps            # noqa: E402
from matplotlib.image import imread         # noqa: E402

from bpfast import plot                     # noqa: E402


def read_png(path):
    """RGB pixels of a PNG written by bpfast.plot, checked to be a real picture."""
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert min(pixels.shape[:2]) >= 200
    rgb = pixels[..., :3]
    assert rgb.var() > 0
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) >= 10     # lines, text, colours
    return rgb


def count_near(rgb, colour, tol=0.02):
    """How many pixels have (about) this RGB colour."""
    return int(np.sum(np.all(np.abs(rgb - np.asarray(colour)[:3]) <= tol, axis=-1)))


@pytest.fixture(scope="module")
def trained():
    """A small classifier fitted with validation data: (net, History)."""
    rng = np.random.default_rng(0)
    X = rng.random((300, 16))
    y = (X[:, :8].sum(axis=1) > X[:, 8:].sum(axis=1)).astype(np.int64)
    net = bpfast.MLP([16, 9, 2], seed=0)
    history = net.fit(X[:200], y[:200], epochs=8, lr=1.0, batch_size=10, seed=0,
                      validation_data=(X[200:], y[200:]))
    return net, history


# ------------------------------------------------------------------ learning_curves

def test_learning_curves_accepts_history_list_and_dicts(tmp_path, trained):
    _, history = trained
    images = []
    for name, form in [("history", history), ("list", history.history),
                       ("dicts", [dict(row) for row in history.history])]:
        path = tmp_path / f"{name}.png"
        assert plot.learning_curves(form, path) == path
        images.append(read_png(path))
    height, width = images[0].shape[:2]
    assert width > 2 * height * 0.9                 # two panels side by side
    for image in images[1:]:
        np.testing.assert_array_equal(image, images[0])


def test_learning_curves_draws_both_series(tmp_path, trained):
    _, history = trained
    rgb = read_png(plot.learning_curves(history, tmp_path / "c.png", val_label="test"))
    # matplotlib's first two default line colours: train (blue), validation (orange).
    assert count_near(rgb, (0x1f / 255, 0x77 / 255, 0xb4 / 255)) > 100
    assert count_near(rgb, (0xff / 255, 0x7f / 255, 0x0e / 255)) > 100


def test_learning_curves_of_a_regression_has_one_panel(tmp_path):
    rows = [{"loss": 1.0 / (epoch + 1), "seconds": 0.1} for epoch in range(5)]
    rgb = read_png(plot.learning_curves(rows, tmp_path / "loss.png"))
    height, width = rgb.shape[:2]
    assert width < 1.5 * height                     # loss panel only


@pytest.mark.parametrize("history, error", [
    ([], ValueError),
    (bpfast.History(), ValueError),
    ([{"accuracy": 0.5}], ValueError),              # no loss
    ([1.0, 2.0], TypeError),
    (3.0, TypeError),
])
def test_learning_curves_rejects_bad_histories(tmp_path, history, error):
    with pytest.raises(error, match="history"):
        plot.learning_curves(history, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# ------------------------------------------------------------------ weight_grid

def test_weight_grid_of_a_network(tmp_path):
    net = bpfast.MLP([64, 12, 10], seed=0)
    path = tmp_path / "w.png"
    assert plot.weight_grid(net, path) == path      # 8x8 tiles inferred from 64 inputs
    read_png(path)


def test_weight_grid_of_mnist_sized_weights(tmp_path):
    W = np.random.default_rng(1).normal(size=(30, 784))
    read_png(plot.weight_grid(W, tmp_path / "mnist.png"))


def test_weight_grid_colour_scale_is_shared_and_symmetric(tmp_path):
    # Three 4x4 units: all +1, all -0.5, all 0.  On a scale symmetric about
    # zero, -0.5 is a quarter of the way up the colour map and no tile is the
    # colour of -1 (only the colour bar shows it); a min-max scale would paint
    # the -0.5 tile in the colour of the bottom of the map.
    W = np.repeat(np.array([[1.0], [-0.5], [0.0]]), 16, axis=1)
    rgb = read_png(plot.weight_grid(W, tmp_path / "scale.png"))
    cmap = colormaps["RdBu_r"]
    tile = rgb.shape[0] * rgb.shape[1] // 50        # a tile covers far more pixels than this
    assert count_near(rgb, cmap(1.0)) > tile        # the +1 tile
    assert count_near(rgb, cmap(0.25)) > tile       # the -0.5 tile
    assert count_near(rgb, cmap(0.5)) > tile        # the zero tile
    assert count_near(rgb, cmap(0.0)) < tile        # -1: colour bar only


def test_weight_grid_with_an_image_shape(tmp_path):
    W = np.random.default_rng(2).normal(size=(5, 60))
    read_png(plot.weight_grid(W, tmp_path / "rect.png", image_shape=(5, 12)))


@pytest.mark.parametrize("W, image_shape", [
    (np.zeros((4, 60)), None),                      # 60 inputs: not a square image
    (np.zeros((4, 60)), (7, 9)),                    # 63 != 60
    (np.zeros(16), None),                           # not 2-D
    (np.full((2, 16), np.nan), None),
])
def test_weight_grid_rejects_bad_weights(tmp_path, W, image_shape):
    with pytest.raises(ValueError):
        plot.weight_grid(W, tmp_path / "bad.png", image_shape=image_shape)
    assert not (tmp_path / "bad.png").exists()


# ------------------------------------------------------------------ without matplotlib

def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch, trained):
    net, history = trained
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"bpfast\[plot\]"):
        plot.learning_curves(history, tmp_path / "c.png")
    with pytest.raises(ImportError, match=r"bpfast\[plot\]"):
        plot.weight_grid(np.zeros((4, 16)), tmp_path / "w.png")


# ------------------------------------------------------------------ one trace step

def _texts(fig):
    """Every string drawn on the figure: texts, titles, legends and colour-bar labels."""
    from matplotlib.text import Text
    return [t.get_text() for t in fig.findobj(Text)]


def _worked_trace(lr=0.1):
    net = bpfast.MLP([1, 1, 1], "sigmoid", "sigmoid", "mse")
    net.weights[0][:], net.biases[0][:] = 0.4, 0.1
    net.weights[1][:], net.biases[1][:] = 0.6, 0.2
    return net.trace(0.5, 0.8, lr=lr)


def test_trace_plot_writes_the_format_its_suffix_names(tmp_path):
    from matplotlib.figure import Figure
    tr = _worked_trace()
    fig = tr.plot(tmp_path / "step.png")
    assert isinstance(fig, Figure)
    read_png(tmp_path / "step.png")
    tr.plot(tmp_path / "step.svg")
    assert (tmp_path / "step.svg").read_text().lstrip().startswith("<?xml")
    assert tr.plot() is not None and not (tmp_path / "none").exists()


def test_trace_plot_says_what_colour_means_and_shows_a_and_delta():
    tr = _worked_trace()
    texts = "\n".join(_texts(tr.plot()))
    assert "−lr·∂L/∂w" in texts
    assert "increases the weight" in texts and "decreases the weight" in texts
    assert "lr = 0.1" in texts
    assert "a=0.574" in texts and "δ=-0.0388" in texts and "δ=-0.00569" in texts
    # Without lr the picture uses lr = 1 and says so.
    assert "no lr given" in "\n".join(_texts(_worked_trace(lr=None).plot()))


def test_a_negative_gradient_is_drawn_in_the_increase_colour():
    """∂L/∂w < 0 means the step raises w: its line has the colour of 'increases'."""
    from matplotlib.colors import to_rgba
    tr = _worked_trace()
    assert tr.grad_w[0][0, 0] < 0 and tr.grad_w[1][0, 0] < 0
    fig = tr.plot()
    ax = fig.axes[0]
    legend = {t.get_text(): h.get_color() for t, h in
              zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    increase = np.array(to_rgba(legend["increases the weight"]))
    weights = [line for line in ax.get_lines() if len(line.get_xdata()) == 2]
    assert len(weights) == 2
    for line in weights:
        colour = np.array(to_rgba(line.get_color()))
        assert colour[2] > colour[0], colour                  # blue, not red
        assert np.argmax(colour[:3]) == np.argmax(increase[:3])
    # A network whose gradients are positive draws them in the other colour.
    net = bpfast.MLP([1, 1, 1], "sigmoid", "sigmoid", "mse")
    net.weights[0][:], net.weights[1][:] = 0.4, 0.6
    tr = net.trace(0.5, 0.0, lr=0.1)
    assert tr.grad_w[1][0, 0] > 0
    line = [ln for ln in tr.plot().axes[0].get_lines() if ln.get_xdata()[0] == 1][0]
    colour = to_rgba(line.get_color())
    assert colour[0] > colour[2]                              # red: decreases


def test_a_large_network_is_summarised_and_fast():
    import time
    net = bpfast.MLP([784, 30, 10], seed=0)
    tr = net.trace(np.random.default_rng(0).uniform(size=784), 3, lr=0.5)
    start = time.perf_counter()
    fig = tr.plot()
    fig.canvas.draw()
    assert time.perf_counter() - start < 10
    ax = fig.axes[0]
    weights = [line for line in ax.get_lines() if len(line.get_xdata()) == 2]
    assert len(weights) <= 2 * plot.MAX_WEIGHTS
    circles = sum(len(c.get_offsets()) for c in ax.collections)
    assert circles <= 3 * plot.MAX_UNITS
    texts = "\n".join(_texts(fig))
    assert "784 units" in texts and "12 drawn" in texts
    assert "of 23,520 weights drawn (largest |∂L/∂w|)" in texts


def test_trace_plot_into_given_axes_returns_them(tmp_path):
    fig = plot._figure()
    ax = fig.add_subplot()
    assert _worked_trace().plot(ax=ax) is ax
    assert _worked_trace().plot(tmp_path / "a.png", ax=ax) is ax
    read_png(tmp_path / "a.png")
