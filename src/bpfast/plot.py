"""Pictures of training: learning curves and first-layer weights (needs matplotlib).

matplotlib is an optional dependency (``pip install "bpfast[plot]"``) and is
imported only when a function here is called.  Figures are drawn on a
``matplotlib.figure.Figure`` with the Agg canvas and written straight to a
file, so plotting never touches pyplot's global state or the user's
interactive backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .callbacks import History
    from .mlp import MLP
    from .trace import Trace

# A file to write (str or os.PathLike); the functions return the one given.
Path = TypeVar("Path", str, "os.PathLike[str]")

__all__ = ["learning_curves", "weight_grid", "trace_step"]


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


def learning_curves(history: History | Iterable[Mapping[str, Any]], path: Path,
                    val_label: str = "validation") -> Path:
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


def weight_grid(net_or_W: MLP | ArrayLike, path: Path,
                image_shape: tuple[int, int] | None = None) -> Path:
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


# ------------------------------------------------------------------ one step of a trace

# At most this many units are drawn per layer (the largest |δ|, or |a| for the input).
MAX_UNITS = 12
# At most this many weights are drawn per layer (the largest |∂L/∂w| among drawn units).
MAX_WEIGHTS = 36
INCREASE, DECREASE = "tab:blue", "tab:red"


def _drawn_units(tr, k):
    """Indices of the units of layer k (0 = input) to draw, in order, at most MAX_UNITS."""
    n = len(tr.a[k])
    if n <= MAX_UNITS:
        return np.arange(n)
    key = np.abs(tr.a[0]) if k == 0 else np.abs(tr.delta[k - 1])
    return np.sort(np.argsort(-key, kind="stable")[:MAX_UNITS])


def _drawn_weights(g, rows, cols):
    """(i, j) pairs of weights between drawn units, the MAX_WEIGHTS largest |g| if too many."""
    sub = np.abs(g[np.ix_(rows, cols)]).ravel()
    order = np.argsort(-sub, kind="stable")[:MAX_WEIGHTS]
    return [(rows[r // len(cols)], cols[r % len(cols)]) for r in order]


def trace_step(tr: Trace, path: str | os.PathLike[str] | None = None,
               ax: Axes | None = None) -> Figure | Axes:
    """Draw the network of one backpropagation step, each weight by the update it gets.

    Units are circles labelled with their activation a (and error signal
    δ = ∂L/∂z); each weight is a line whose colour and width show its
    update −lr·∂L/∂w: blue where the step increases the weight, red where it
    decreases it, wider for a larger change.  With ``tr.lr`` None the picture
    uses lr = 1, i.e. shows −∂L/∂w, and the colour bar says so.  Large
    layers are summarised: at most 12 units per layer (largest ``|δ|``; largest
    ``|a|`` for the input) and at most 36 weights per layer (largest ``|∂L/∂w|``),
    with a note of what is left out.

    Why a negative gradient is drawn as an increase: gradient descent moves
    each weight by −lr·∂L/∂w.  Where ∂L/∂w < 0 the loss falls as w grows,
    so the step *raises* w.  A tutorial that marks a negative gradient with a
    red ↓ "decrease this weight" has the direction backwards; bpfast draws
    the update itself, so its colour is the direction the weight really moves.

    Parameters
    ----------
    tr : bpfast.trace.Trace
    path : str or path-like, optional
        Also write the picture here, in the format its suffix names (.png,
        .svg, .pdf, …).
    ax : matplotlib Axes, optional
        Draw into this Axes (and its figure's colour bar) instead of a new Figure.

    Returns
    -------
    The new matplotlib Figure, or `ax` when one was given.
    """
    fig = None
    if ax is None:
        sizes = [min(len(a), MAX_UNITS) for a in tr.a]
        fig = _figure(figsize=(2.6 * len(tr.a) + 1.0, max(4.5, 0.5 * max(sizes) + 2.8)),
                      dpi=100, layout="constrained")
        ax = fig.add_subplot()
    _draw_step(tr, ax)
    if path is not None:
        figure: Any = ax.figure     # a Figure, or the SubFigure the Axes is in
        figure.savefig(os.fspath(path))
    return ax if fig is None else fig


def _draw_step(tr, ax):
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import FuncNorm, LinearSegmentedColormap

    L = len(tr.z)
    lr = 1.0 if tr.lr is None else float(tr.lr)
    units = [_drawn_units(tr, k) for k in range(L + 1)]
    ys = [np.linspace(1, -1, len(u)) * min(1.0, 0.09 * len(u)) if len(u) > 1 else np.zeros(1)
          for u in units]
    pos = [dict(zip(u.tolist(), y.tolist())) for u, y in zip(units, ys)]
    edges = [_drawn_weights(np.asarray(tr.grad_w[l], dtype=np.float64), units[l + 1], units[l])
             for l in range(L)]
    updates = [np.array([-lr * float(tr.grad_w[l][i, j]) for i, j in edges[l]])
               for l in range(L)]
    top = max([float(np.abs(u).max()) for u in updates if u.size] + [1e-300])
    cmap = LinearSegmentedColormap.from_list(
        "update", [colormaps["tab10"](3), (0.85, 0.85, 0.85), colormaps["tab10"](0)])
    # Colour depth ∝ sqrt(|update|), so that a small increase is still visibly blue.
    norm = FuncNorm((lambda u: np.sign(u) * np.sqrt(np.abs(u)),
                     lambda c: np.sign(c) * np.square(c)), vmin=-top, vmax=top)
    notes = []
    for l in range(L):
        for (i, j), u in zip(edges[l], updates[l]):
            ax.plot([l, l + 1], [pos[l][j], pos[l + 1][i]], color=cmap(norm(u)),
                    linewidth=0.3 + 3.2 * abs(u) / top, solid_capstyle="round", zorder=1)
            if len(edges[l]) <= 4:      # a tiny network: write the update on the line
                ax.annotate(f"{u:+.3g}", (l + 0.5, (pos[l][j] + pos[l + 1][i]) / 2),
                            xytext=(0, 4), textcoords="offset points", ha="center",
                            fontsize=7, color=cmap(norm(u)), zorder=2)
        n_all = tr.grad_w[l].size
        if len(edges[l]) < n_all:
            notes.append(f"W[{l}]: {len(edges[l])} of {n_all:,} weights drawn "
                         f"(largest |∂L/∂w|)")
    for k in range(L + 1):
        n = len(tr.a[k])
        for i in units[k]:
            ax.scatter([k], [pos[k][i]], s=260, color="white", edgecolors="black", zorder=3)
            label = f"a={float(tr.a[k][i]):.3g}"
            if k > 0:
                label += f"\nδ={float(tr.delta[k - 1][i]):.3g}"
            ax.annotate(label, (k, pos[k][i]), xytext=(11, 0), textcoords="offset points",
                        va="center", ha="left", fontsize=7, zorder=4,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
            ax.annotate(str(i), (k, pos[k][i]), ha="center", va="center", fontsize=6, zorder=4)
        name = "input" if k == 0 else "output" if k == L else "hidden"
        caption = f"layer {k}: {name}, {n:,} unit{'s' if n > 1 else ''}"
        if len(units[k]) < n:
            caption += f"\n{len(units[k])} drawn (largest |{'a' if k == 0 else 'δ'}|)"
        ax.text(k, -1.22, caption, ha="center", va="top", fontsize=8)
    ax.set_xlim(-0.4, L + 0.75)
    ax.set_ylim(-1.6 if notes else -1.45, 1.3)
    ax.set_axis_off()
    loss = f"one backpropagation step: loss L = {tr.loss:.4g}"
    ax.set_title(loss + ("" if tr.lr is not None else "  (no lr given: lr = 1)"), fontsize=10)
    if notes:
        ax.text(0.5, -1.5, "; ".join(notes), ha="center", va="top", fontsize=7.5,
                color="0.3")
    from matplotlib.lines import Line2D
    ax.legend(handles=[Line2D([], [], color=cmap(1.0), lw=3, label="increases the weight"),
                       Line2D([], [], color=cmap(0.0), lw=3, label="decreases the weight")],
              loc="upper right", fontsize=8, frameon=False,
              title="update −lr·∂L/∂w", title_fontsize=8)
    bar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.6,
                             aspect=40, orientation="horizontal", location="bottom", pad=0.02)
    lr_text = f"lr = {lr:g}" if tr.lr is not None else "lr = 1: no lr given, so −∂L/∂w"
    bar.set_label(f"update −lr·∂L/∂w ({lr_text}): > 0 (blue) increases the weight, "
                  f"< 0 (red) decreases it; line width ∝ |update|", fontsize=8)
    ticks = [-top, -top / 4, 0.0, top / 4, top]
    bar.set_ticks(ticks, labels=[f"{t:+.2g}" if t else "0" for t in ticks])
    bar.ax.tick_params(labelsize=7)
