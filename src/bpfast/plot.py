"""Pictures of training: learning curves and first-layer weights (needs matplotlib).

matplotlib is an optional dependency (``pip install "bpfast[plot]"``) and is
imported only when a function here is called.  Figures are drawn on a
``matplotlib.figure.Figure`` with the Agg canvas and written straight to a
file, so plotting never touches pyplot's global state or the user's
interactive backend.
"""

import math
import os

import numpy as np

__all__ = ["learning_curves", "weight_grid"]


def _figure(**kwargs):
    """A new Figure on the Agg (file-writing) canvas; a clear error without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError('bpfast.plot needs matplotlib: pip install "bpfast[plot]"') from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _file_format(path):
    """The format the suffix of `path` names ("png" without one), as savefig infers it.

    An unsupported suffix is a ValueError listing the supported ones; call
    this before drawing (or training) to fail early.
    """
    suffix = os.path.splitext(os.fsdecode(os.fspath(path)))[1].lower().lstrip(".")
    if not suffix:
        return "png"
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise ImportError('bpfast.plot needs matplotlib: pip install "bpfast[plot]"') from exc
    supported = FigureCanvasBase.get_supported_filetypes()
    if suffix not in supported:
        raise ValueError(f"path: cannot write a .{suffix} file; the suffix must be one of "
                         f"{', '.join('.' + s for s in sorted(supported))} (or none, for PNG); "
                         f"got {os.fsdecode(os.fspath(path))!r}")
    return suffix


def _rows(history):
    """The per-epoch dicts of a History, its .history list, or a list of dicts."""
    rows = getattr(history, "history", history)
    try:
        rows = list(rows)
    except TypeError:
        raise TypeError(f"history: expected a bpfast History or a list of per-epoch dicts; "
                        f"got {type(history).__name__}") from None
    if not rows:
        raise ValueError("history: no epochs to plot (empty history)")
    if not all(isinstance(row, dict) for row in rows):
        raise TypeError("history: expected per-epoch dicts such as {'loss': ..., "
                        "'accuracy': ...}")
    if not any("loss" in row for row in rows):
        raise ValueError(f"history: no 'loss' key in the epochs; got keys {sorted(rows[0])}")
    return rows


def _curve(rows, key):
    """(epochs, values) of the epochs that recorded `key`; epochs count from 1."""
    points = [(epoch, row[key]) for epoch, row in enumerate(rows, start=1) if key in row]
    return [p[0] for p in points], [p[1] for p in points]


def learning_curves(history, path, val_label="validation"):
    """Plot loss and accuracy per epoch, train and validation, to a file at `path`.

    `history` is what ``net.fit`` returns (a History), its ``.history`` list,
    or any list of per-epoch dicts with ``loss`` and optionally ``accuracy``,
    ``val_loss``, ``val_accuracy``.  The accuracy panel is drawn only when
    the history has accuracy (classification targets).  `val_label` names
    the held-out data in the legend (the CLI passes "test").
    The suffix of `path` names the format (.png, .svg, .pdf, .jpg, ...: what
    matplotlib writes; none means PNG); any other suffix is a ValueError,
    raised before drawing.  Returns `path`.
    """
    rows = _rows(history)
    _file_format(path)
    panels = [("loss", "mean loss")]
    if any("accuracy" in row or "val_accuracy" in row for row in rows):
        panels.append(("accuracy", "accuracy"))
    fig = _figure(figsize=(5.0 * len(panels), 4.0), dpi=100, layout="constrained")
    from matplotlib.ticker import MaxNLocator
    for i, (key, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for name, label, style in ((key, "train", "o-"), ("val_" + key, val_label, "s-")):
            epochs, values = _curve(rows, name)
            if epochs:
                ax.plot(epochs, values, style, markersize=3, label=f"{label} (last {values[-1]:.4g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel} per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.savefig(os.fspath(path), format=_file_format(path))
    return path


def _image_shape(n_inputs, image_shape):
    if image_shape is None:
        side = math.isqrt(n_inputs)
        if side * side != n_inputs:
            raise ValueError(f"image_shape: {n_inputs} inputs are not a square image; "
                             f"pass image_shape=(rows, cols)")
        return side, side
    rows, cols = (int(s) for s in image_shape)
    if rows < 1 or cols < 1 or rows * cols != n_inputs:
        raise ValueError(f"image_shape: expected (rows, cols) with rows * cols = {n_inputs} "
                         f"inputs; got {tuple(image_shape)}")
    return rows, cols


def weight_grid(net_or_W, path, image_shape=None):
    """Draw each hidden unit's incoming weights as an image, all on one colour scale.

    `net_or_W` is an MLP (its first layer, ``net.weights[0]``, is drawn) or
    a weight matrix of shape (hidden units, inputs).  Every row becomes one
    tile of `image_shape` pixels (default: the square image of the inputs,
    8x8 for 64 inputs, 28x28 for 784).  The colour scale is symmetric about
    zero and shared by all tiles, so red and blue mean the same weight
    everywhere.  The suffix of `path` names the format, as in
    `learning_curves`.  Returns `path`.
    """
    _file_format(path)
    W = net_or_W.weights[0] if hasattr(net_or_W, "weights") else net_or_W
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.size == 0:
        raise ValueError(f"net_or_W: expected an MLP or a non-empty 2-D weight matrix "
                         f"(hidden units, inputs); got shape {W.shape}")
    if not np.all(np.isfinite(W)):
        raise ValueError("net_or_W: the weights contain NaN or infinity")
    n_units, n_inputs = W.shape
    rows, cols = _image_shape(n_inputs, image_shape)
    grid_cols = math.ceil(math.sqrt(n_units))
    grid_rows = math.ceil(n_units / grid_cols)
    # One mosaic with a one-pixel NaN gap between tiles: a single image is
    # drawn much faster than one Axes per unit, and NaN shows as background.
    mosaic = np.full((grid_rows * (rows + 1) - 1, grid_cols * (cols + 1) - 1), np.nan)
    for unit in range(n_units):
        r, c = divmod(unit, grid_cols)
        top, left = r * (rows + 1), c * (cols + 1)
        mosaic[top:top + rows, left:left + cols] = W[unit].reshape(rows, cols)
    limit = float(np.abs(W).max()) or 1.0
    # About 600 screen pixels for the longer side, and at least 2 per weight.
    dpi = 100
    zoom = max(2, math.ceil(600 / max(mosaic.shape)))
    height, width = (max(2.5, n * zoom / dpi) for n in mosaic.shape)
    fig = _figure(figsize=(width + 1.5, height + 0.5), dpi=dpi, layout="constrained")
    from matplotlib import colormaps
    cmap = colormaps["RdBu_r"].with_extremes(bad="white")   # gaps between tiles
    ax = fig.add_subplot()
    image = ax.imshow(mosaic, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"first-layer weights: {n_units} units of {rows}x{cols} inputs")
    fig.colorbar(image, ax=ax, shrink=0.8, label="weight")
    fig.savefig(os.fspath(path), format=_file_format(path))
    return path
