"""Progress of `fit`: a bar while an epoch runs, one readable line after it.

Where the bar comes from:

- a terminal (or ``progress=True`` anywhere but a notebook): ``tqdm``'s text bar;
- a Jupyter notebook with ipywidgets: ``tqdm.notebook``'s widget;
- a Jupyter notebook without ipywidgets: the text bar again.  ``tqdm.auto``
  would pick the widget there and warn "IProgress not found"; the text bar
  renders fine in a notebook's output cell, so it is chosen without a warning;
- no tqdm: no bar, only the epoch lines.

The epoch lines read like ``epoch 3/10  loss 0.2345  accuracy 0.9312
val_loss 0.2511  val_accuracy 0.9270  lr 0.1  3.2 s  934,100 samples/s``.
"""

import importlib.util
import sys

__all__ = ["progress_bar", "epoch_line"]


def _seconds(s):
    """A duration for a person: 0.0021 s, 0.35 s, 3.2 s, 42 s."""
    if s >= 10:
        return f"{s:.0f} s"
    if s >= 1:
        return f"{s:.1f} s"
    return f"{s:.2g} s"


def _number(key, value):
    """One history value as text; losses keep 4 significant digits."""
    if key.endswith("accuracy"):
        return f"{value:.4f}"
    return f"{value:.4g}"


def epoch_line(epoch, epochs, logs):
    """The line printed after an epoch, from its history row `logs`.

    Every key of the row appears, in the row's order, as ``key value``;
    ``seconds`` and ``samples_per_s`` come last as ``3.2 s  934,100 samples/s``.
    """
    width = len(str(epochs))
    parts = [f"epoch {epoch + 1:>{width}}/{epochs}"]
    parts += [f"{key} {_number(key, value)}" for key, value in logs.items()
              if key not in ("seconds", "samples_per_s")]
    if "seconds" in logs:
        parts.append(_seconds(logs["seconds"]))
    if "samples_per_s" in logs:
        rate = logs["samples_per_s"]
        parts.append(f"{rate:,.0f} samples/s" if rate != float("inf") else "inf samples/s")
    return "  ".join(parts)


def _in_notebook():
    """True inside a Jupyter kernel (IPython's ZMQ shell), False in a terminal or script."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except AttributeError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _has_widgets():
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):
        return False


def _tqdm_class():
    """The tqdm class that renders here without a warning, or None without tqdm."""
    try:
        if _in_notebook() and _has_widgets():
            from tqdm.notebook import tqdm
        else:
            from tqdm.std import tqdm
    except ImportError:
        return None
    return tqdm


class progress_bar:
    """tqdm when available and wanted; one plain line per epoch otherwise.

    Parameters
    ----------
    progress : None, True or False
        None shows progress only when stderr is a terminal.
    total : int
        Samples the whole fit will train on (the bar's length).
    """

    def __init__(self, progress, total):
        show = sys.stderr is not None and sys.stderr.isatty() if progress is None else progress
        self.show = bool(show)
        self.bar = None
        if self.show:
            tqdm = _tqdm_class()
            if tqdm is not None:
                self.bar = tqdm(total=total, unit="samples", unit_scale=True,
                                file=sys.stderr, dynamic_ncols=True, leave=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def update(self, n, loss, accuracy):
        """`n` more samples trained; the running loss and accuracy (None: regression)."""
        if self.bar is not None:
            post = {"loss": f"{loss:.4g}"}
            if accuracy is not None:
                post["accuracy"] = f"{accuracy:.4f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(n)

    def epoch_done(self, epoch, epochs, logs):
        """Print the epoch's line (above the bar when there is one)."""
        if not self.show:
            return
        line = epoch_line(epoch, epochs, logs)
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)
