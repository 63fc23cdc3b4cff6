"""bpfast.plot and `bpfast train --plot` write the format the file name's suffix names.

A file called curves.svg must be an SVG, not PNG bytes under that name; a
suffix matplotlib cannot write is a ValueError that says which ones it can,
raised before anything is drawn (and, on the command line, before training).
"""

import importlib.util

import numpy as np
import pytest

import bpfast
from bpfast import cli

pytest.importorskip("matplotlib")
from bpfast import plot                     # noqa: E402

HISTORY = [{"loss": 0.5, "accuracy": 0.6}, {"loss": 0.3, "accuracy": 0.8}]
MAGIC = {
    ".png": b"\x89PNG\r\n\x1a\n",
    ".pdf": b"%PDF-",
    ".jpg": b"\xff\xd8\xff",
    ".jpeg": b"\xff\xd8\xff",
    ".eps": b"%!PS-Adobe",
}
HAS_PILLOW = importlib.util.find_spec("PIL") is not None


def assert_format(path, suffix):
    data = path.read_bytes()
    if suffix == ".svg":
        head = data[:400].lstrip()
        assert head.startswith(b"<?xml") and b"<svg" in data[:2000], data[:80]
    else:
        assert data.startswith(MAGIC[suffix]), data[:16]


SUFFIXES = [".png", ".svg", ".pdf", ".eps",
            pytest.param(".jpg", marks=pytest.mark.skipif(not HAS_PILLOW, reason="needs pillow")),
            pytest.param(".jpeg", marks=pytest.mark.skipif(not HAS_PILLOW, reason="needs pillow"))]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_learning_curves_write_the_suffix_format(tmp_path, suffix):
    path = tmp_path / f"hist{suffix}"
    assert plot.learning_curves(HISTORY, path) == path
    assert_format(path, suffix)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_weight_grid_writes_the_suffix_format(tmp_path, suffix):
    path = tmp_path / f"weights{suffix.upper()}"      # the suffix's case does not matter
    plot.weight_grid(bpfast.MLP([16, 4, 2], seed=0), path)
    assert_format(path, suffix)


def test_no_suffix_is_png(tmp_path):
    path = tmp_path / "curves"
    plot.learning_curves(HISTORY, path)
    assert_format(path, ".png")


@pytest.mark.parametrize("name", ["curves.xyz", "curves.npz", "curves.png.bak"])
def test_an_unsupported_suffix_is_a_clear_value_error(tmp_path, name):
    with pytest.raises(ValueError, match=r"path: .*suffix.*(png|svg)"):
        plot.learning_curves(HISTORY, tmp_path / name)
    with pytest.raises(ValueError, match="suffix"):
        plot.weight_grid(np.ones((4, 16)), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_cli_plot_writes_svg_and_its_weights_beside(capsys, tmp_path):
    pytest.importorskip("sklearn")
    status = cli.main(["--epochs", "2", "--quiet", "--plot", str(tmp_path / "curves.svg")])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert_format(tmp_path / "curves.svg", ".svg")
    assert_format(tmp_path / "curves_weights.svg", ".svg")


def test_cli_plot_with_an_unsupported_suffix_fails_before_training(capsys, tmp_path):
    pytest.importorskip("sklearn")
    status = cli.main(["--epochs", "2", "--plot", str(tmp_path / "curves.xyz")])
    out, err = capsys.readouterr()
    assert status == 2
    assert err.startswith("bpfast: error: --plot") and len(err.splitlines()) == 1, err
    assert "epoch" not in out
    assert list(tmp_path.iterdir()) == []
