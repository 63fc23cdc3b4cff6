"""`bpfast trace --lang zh` and `bpfast trace --plot F`."""

import pytest

from bpfast import cli

TUTORIAL_NUMBERS = ("0.5744", "0.6329", "0.01396", "-0.02230", "-0.002847", "0.6022")


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_trace_in_chinese(capsys):
    status, out, err = run(capsys, "trace", "--lang", "zh")
    assert status == 0 and err == ""
    for word in ("前向传播", "代价函数", "链式法则", "反向传播", "误差信号", "梯度", "学习率", "更新"):
        assert word in out
    for number in TUTORIAL_NUMBERS:
        assert number in out
    _, english, _ = run(capsys, "trace", "--lang", "en")
    assert len(out.splitlines()) == len(english.splitlines())
    assert english == run(capsys, "trace")[1]


def test_trace_with_an_unknown_language_is_a_usage_error(capsys):
    status, out, err = run(capsys, "trace", "--lang", "fr")
    assert status == 2 and out == ""
    assert err.startswith("bpfast: error: argument --lang") and len(err.splitlines()) == 1


def test_trace_plot_writes_the_picture(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "step.png"
    status, out, err = run(capsys, "trace", "--plot", path, "--lang", "zh")
    assert status == 0 and err == ""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.splitlines()[-1] == f"wrote {path}"
    assert "0.01396" in out


def test_trace_plot_into_a_missing_folder_fails_before_the_work(capsys, tmp_path):
    pytest.importorskip("matplotlib")     # without it, --plot fails for that first
    status, out, err = run(capsys, "trace", "--plot", tmp_path / "no" / "step.png")
    assert status == 2 and out == ""
    assert err.startswith("bpfast: error: --plot: no such folder")
