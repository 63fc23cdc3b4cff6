"""fit(progress=...): a bar or per-epoch lines on stderr when wanted, silence otherwise."""

import copy
import importlib
import io
import sys

import numpy as np
import pytest

import bpfast

EPOCHS = 3


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    return bpfast.MLP([3, 4, 2], "tanh", "softmax", "cross_entropy", seed=0), X, y


@pytest.fixture
def without_tqdm(monkeypatch):
    """Make `import tqdm` (and tqdm.auto) fail as if tqdm were not installed."""
    for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError):
        importlib.import_module("tqdm.auto")


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def _epoch_lines(text):
    return [line for line in text.splitlines() if "loss" in line and "epoch" in line.lower()]


def test_progress_true_shows_a_bar_and_epoch_summaries_on_stderr(problem, capsys):
    pytest.importorskip("tqdm")
    net, X, y = problem
    hist = net.fit(X, y, epochs=EPOCHS, lr=0.5, progress=True)
    out, err = capsys.readouterr()
    assert out == ""                                  # progress never goes to stdout
    assert err.strip()
    # One summary per epoch, with that epoch's loss.
    lines = _epoch_lines(err)
    assert len(lines) == EPOCHS, err
    for line, row in zip(lines, hist.history):
        assert f"{row['loss']:.4g}" in line
    # The bar counts the samples it trained on.
    assert str(EPOCHS * len(X)) in err, err


def test_progress_true_without_tqdm_prints_one_plain_line_per_epoch(problem, capsys,
                                                                    without_tqdm):
    net, X, y = problem
    hist = net.fit(X, y, epochs=EPOCHS, lr=0.5, progress=True,
                   validation_data=(X[:10], y[:10]))
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == EPOCHS, err
    for k, (line, row) in enumerate(zip(lines, hist.history), start=1):
        assert str(k) in line and str(EPOCHS) in line
        assert f"{row['loss']:.4g}" in line
        assert f"{row['val_loss']:.4g}" in line
    assert "\r" not in err                            # plain lines, not a redrawn bar


def test_progress_false_is_silent(problem, capfd):
    net, X, y = problem
    net.fit(X, y, epochs=EPOCHS, lr=0.5, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_false_is_silent_on_a_terminal(problem, monkeypatch):
    net, X, y = problem
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    net.fit(X, y, epochs=EPOCHS, lr=0.5, progress=False)
    assert terminal.getvalue() == ""


def test_progress_none_is_silent_when_stderr_is_not_a_terminal(problem, capfd):
    net, X, y = problem
    assert not sys.stderr.isatty()                    # captured by pytest
    net.fit(X, y, epochs=EPOCHS, lr=0.5)              # progress=None is the default
    net.fit(X, y, epochs=EPOCHS, lr=0.5, progress=None)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("tqdm_installed", [True, False])
def test_progress_none_shows_progress_on_a_terminal(problem, monkeypatch, request,
                                                    tqdm_installed):
    if tqdm_installed:
        pytest.importorskip("tqdm")
    else:
        request.getfixturevalue("without_tqdm")
    net, X, y = problem
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    net.fit(X, y, epochs=EPOCHS, lr=0.5, progress=None)
    assert len(_epoch_lines(terminal.getvalue())) == EPOCHS, terminal.getvalue()


def test_progress_none_with_no_stderr_at_all(problem, monkeypatch):
    """pythonw and some services run with sys.stderr = None: training still works."""
    net, X, y = problem
    monkeypatch.setattr(sys, "stderr", None)
    hist = net.fit(X, y, epochs=2, lr=0.5)
    assert len(hist.history) == 2


def test_progress_does_not_change_the_training(problem, without_tqdm, capsys):
    net, X, y = problem
    quiet, loud = copy.deepcopy(net), copy.deepcopy(net)
    quiet.fit(X, y, epochs=2, lr=0.5, seed=1, progress=False)
    loud.fit(X, y, epochs=2, lr=0.5, seed=1, progress=True)
    np.testing.assert_array_equal(quiet._params, loud._params)


@pytest.mark.parametrize("progress", [1, 0, "yes", "auto"])
def test_bad_progress_is_a_type_error(problem, progress):
    net, X, y = problem
    params = net._params.copy()
    with pytest.raises(TypeError, match="progress"):
        net.fit(X, y, epochs=1, lr=0.5, progress=progress)
    np.testing.assert_array_equal(net._params, params)


# ----------------------------------------------------------------- readable lines


def test_epoch_line_reads_like_a_sentence():
    from bpfast._progress import epoch_line
    logs = {"loss": 0.23451234, "accuracy": 0.93121, "val_loss": 0.25111, "val_accuracy": 0.927,
            "lr": 0.1, "seconds": 3.2149, "samples_per_s": 934100.4}
    line = epoch_line(2, 10, logs)
    assert line == ("epoch  3/10  loss 0.2345  accuracy 0.9312  val_loss 0.2511  "
                    "val_accuracy 0.9270  lr 0.1  3.2 s  934,100 samples/s")
    assert "e+" not in line
    short = epoch_line(0, 1, {"loss": 0.01396, "seconds": 0.00213, "samples_per_s": 1e7})
    assert short == "epoch 1/1  loss 0.01396  0.0021 s  10,000,000 samples/s"


def test_fit_prints_the_readable_line(problem, capsys, without_tqdm):
    net, X, y = problem
    hist = net.fit(X, y, epochs=1, lr=0.5, progress=True)
    err = capsys.readouterr().err
    row = hist.history[0]
    assert f"accuracy {row['accuracy']:.4f}" in err
    assert f"{row['samples_per_s']:,.0f} samples/s" in err
    assert "samples_per_s" not in err and "seconds" not in err


# ----------------------------------------------------------------- notebooks


class ZMQInteractiveShell:
    """Stands for the shell IPython runs inside a Jupyter kernel."""


def _fake_notebook(monkeypatch):
    ipython = pytest.importorskip("IPython")
    monkeypatch.setattr(ipython, "get_ipython", lambda: ZMQInteractiveShell(), raising=False)


def test_a_notebook_without_ipywidgets_gets_the_text_bar_and_no_warning(problem, monkeypatch,
                                                                        capsys):
    pytest.importorskip("tqdm")
    import warnings

    from bpfast import _progress
    _fake_notebook(monkeypatch)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)      # not installed
    assert _progress._in_notebook()
    import tqdm.std
    assert _progress._tqdm_class() is tqdm.std.tqdm
    net, X, y = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # TqdmWarning would raise
        net.fit(X, y, epochs=EPOCHS, lr=0.5, progress=True)
    err = capsys.readouterr().err
    assert len(_epoch_lines(err)) == EPOCHS


def test_a_notebook_with_ipywidgets_gets_the_widget(monkeypatch):
    pytest.importorskip("tqdm")
    pytest.importorskip("ipywidgets")
    from bpfast import _progress
    _fake_notebook(monkeypatch)
    import tqdm.notebook
    assert _progress._tqdm_class() is tqdm.notebook.tqdm


def test_outside_a_notebook_the_text_bar_is_used():
    pytest.importorskip("tqdm")
    import tqdm.std

    from bpfast import _progress
    assert not _progress._in_notebook()
    assert _progress._tqdm_class() is tqdm.std.tqdm
