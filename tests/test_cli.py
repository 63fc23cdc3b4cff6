"""The `bpfast` command line: train, trace, predict, and its error handling.

Most tests call bpfast.cli.main([...]) in-process and read stdout/stderr with
capsys; two run real processes (`python -m bpfast` and the installed
`bpfast` script) so that exit codes and the absence of tracebacks are
checked exactly as a user sees them.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bpfast
from bpfast import cli

# The worked example of the tutorials (1-1-1, x=0.5, y=0.8, lr=0.1):
# a1, a2, loss, dL/dW[1], dL/dW[0] and the updated W[1].
TUTORIAL_NUMBERS = ("0.5744", "0.6329", "0.01396", "-0.02230", "-0.002847", "0.6022")
# What the README states for the default run (digits, 64-32-10, 30 epochs):
# about 97% on the 450 held-out digits; asserted with a margin.
DIGITS_ACCURACY = 0.95
FINAL_LINE = re.compile(r"^test accuracy ([\d.]+)% \((\d+)/(\d+)\) after (\d+) epochs?, "
                        r"[\d.]+ s$", re.MULTILINE)


def run(capsys, *argv):
    """(exit status, stdout, stderr) of `bpfast argv...` run in this process."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def final_accuracy(out):
    """(accuracy, correct, total, epochs) from the last line of a train run."""
    match = FINAL_LINE.search(out)
    assert match, f"no final accuracy line in:\n{out}"
    percent, correct, total, epochs = match.groups()
    return float(percent) / 100, int(correct), int(total), int(epochs)


def assert_one_line_error(status, out, err, code=2):
    assert status == code
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bpfast: error: ")
    assert "Traceback" not in out + err


@pytest.fixture(scope="module")
def digits():
    """The first 20 digits, scaled as the CLI scales them, and their labels."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data = sklearn_datasets.load_digits()
    return data.data[:20] / 16.0, data.target[:20]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A digits model trained by `bpfast train --save` (5 epochs)."""
    pytest.importorskip("sklearn")
    path = tmp_path_factory.mktemp("model") / "digits.npz"
    assert cli.main(["train", "--epochs", "5", "--quiet", "--save", str(path)]) == 0
    return path


# ------------------------------------------------------------------ train

def test_default_run_reaches_the_stated_accuracy(capsys):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys)       # no arguments: `bpfast train` with the defaults
    assert status == 0 and err == ""
    accuracy, correct, total, epochs = final_accuracy(out)
    assert total == 450 and epochs == 30
    assert correct == round(accuracy * total)
    assert accuracy >= DIGITS_ACCURACY
    assert "1347 train / 450 test samples" in out
    assert "layers=[64, 32, 10]" in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 30
    assert epoch_lines[0].startswith("epoch  1/30  loss ")
    assert "test acc" in epoch_lines[-1]


def test_train_is_reproducible_for_a_seed(capsys):
    pytest.importorskip("sklearn")

    def accuracies(seed):
        status, out, _ = run(capsys, "--epochs", 3, "--seed", seed)
        assert status == 0
        return [line.split("(")[0] for line in out.splitlines() if line.startswith("epoch")]

    assert accuracies(1) == accuracies(1)
    assert accuracies(1) != accuracies(2)


def test_train_options_reach_the_network(capsys):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys, "--layers", "64,16,10", "--activation", "tanh",
                           "--output", "softmax", "--loss", "cross_entropy", "--lr", 0.1,
                           "--momentum", 0.5, "--batch-size", 20, "--dtype", "float32",
                           "--threads", 2, "--epochs", 4)
    assert status == 0, err
    assert ("MLP(layers=[64, 16, 10], activation='tanh', output='softmax', "
            "loss='cross_entropy', dtype='float32')") in out
    assert ("4 epochs, SGD(lr=0.1, momentum=0.5, dampening=0.0, weight_decay=0.0, "
            "nesterov=False), batch 20, seed 0") in out
    assert final_accuracy(out)[3] == 4


def test_optimizer_and_schedule_options(capsys):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys, "--optimizer", "adam", "--lr", 0.01, "--weight-decay",
                           0.001, "--schedule", "step", "--step-size", 2, "--gamma", 0.5,
                           "--epochs", 5, "--activation", "relu", "--output", "softmax",
                           "--loss", "cross_entropy")
    assert status == 0, err
    assert ("Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.001, "
            "amsgrad=False), schedule StepLR(step_size=2, gamma=0.5)") in out
    lrs = [line.split("  lr ")[1].split()[0] for line in out.splitlines()
           if line.startswith("epoch")]
    assert lrs == ["0.01", "0.01", "0.005", "0.005", "0.0025"]
    assert final_accuracy(out)[0] > 0.9


def test_optimizer_defaults_to_its_own_lr(capsys):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys, "--optimizer", "rmsprop", "--schedule", "cosine",
                           "--epochs", 2)
    assert status == 0, err
    assert "RMSprop(lr=0.01," in out and "CosineAnnealingLR(T_max=2" in out


@pytest.mark.parametrize("args,message", [
    (("--optimizer", "adam", "--momentum", "0.9"), "--momentum"),
    (("--optimizer", "rprop", "--weight-decay", "0.1"), "--weight-decay"),
    (("--schedule", "cosine", "--gamma", "0.5"), "--gamma"),
    (("--step-size", "3",), "--step-size"),
    (("--optimizer", "lbfgs"), "--optimizer"),
])
def test_bad_optimizer_options_are_usage_errors(capsys, args, message):
    status, out, err = run(capsys, *args)
    assert status == 2 and message in err and out == ""


def test_quiet_prints_only_the_result(capsys):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys, "--epochs", 2, "--quiet")
    assert status == 0 and err == ""
    assert out.splitlines() == [FINAL_LINE.search(out).group(0)]


def test_diverging_run_is_one_line_and_status_1(capsys):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys, "--activation", "relu", "--output", "identity",
                           "--lr", 100, "--quiet")
    assert_one_line_error(status, out, err, code=1)
    assert "smaller lr" in err


def test_a_run_at_chance_level_warns_about_the_learning_rate(capsys):
    pytest.importorskip("sklearn")
    # lr 1e6 saturates every sigmoid: 10% on 10 classes, yet nothing diverges.
    status, out, err = run(capsys, "--lr", "1e6", "--epochs", 2, "--quiet")
    assert status == 0
    accuracy = final_accuracy(out)[0]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpfast: warning: "), err
    assert f"{100 * accuracy:.2f}% is chance level for 10 classes" in err
    assert "saturated" in err and "too large" in err and "--lr 3" in err
    # Too small a step is at chance level too, but for the opposite reason.
    status, out, err = run(capsys, "--lr", "1e-4", "--epochs", 1, "--quiet")
    assert status == 0 and "chance level" in err and "too small" in err and "--epochs" in err
    status, out, err = run(capsys, "--lr", 50, "--output", "softmax", "--loss", "cross_entropy",
                           "--epochs", 2, "--quiet")
    assert status == 0 and "too large" in err and "--lr 0.1" in err


def test_a_run_that_learns_prints_no_warning(capsys):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys, "--epochs", 5, "--quiet")
    assert status == 0 and err == "" and final_accuracy(out)[0] > 0.5


def test_missing_sklearn_says_how_to_install(capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    status, out, err = run(capsys, "--epochs", 1)
    assert_one_line_error(status, out, err)
    assert "pip install scikit-learn" in err


# ------------------------------------------------------------------ MNIST

def test_mnist_subset_trains(capsys, mnist_dir):
    status, out, err = run(capsys, "train", "--data", "mnist", "--mnist-dir", mnist_dir,
                           "--epochs", 1, "--limit", 5000)
    assert status == 0, err
    assert "MNIST 28x28, 5000 train / 5000 test samples" in out
    assert "layers=[784, 30, 10]" in out       # the MNIST default layers
    accuracy, _, total, epochs = final_accuracy(out)
    assert (total, epochs) == (5000, 1)
    assert accuracy >= 0.75                     # about 0.84 after one epoch on 5000 digits


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_mnist_without_the_files_is_an_error(capsys, tmp_path, folder):
    (tmp_path / "empty").mkdir()
    status, out, err = run(capsys, "--data", "mnist", "--mnist-dir", tmp_path / folder)
    assert_one_line_error(status, out, err)
    assert "epoch" not in out


# ------------------------------------------------------------------ save, predict

def test_save_then_predict_round_trip(capsys, tmp_path, digits, dtype):
    X, _ = digits
    path = tmp_path / "model.npz"
    status, _, err = run(capsys, "--epochs", 3, "--dtype", dtype, "--quiet", "--save", path)
    assert status == 0, err
    net = bpfast.load(path)
    assert net.layers == [64, 32, 10] and net.dtype == np.dtype(dtype)

    np.save(tmp_path / "x.npy", X)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    np.savetxt(tmp_path / "one.txt", X[0])                  # one sample of shape (64,)
    status, out, err = run(capsys, "predict", "--model", path, tmp_path / "x.npy",
                           tmp_path / "x.csv", tmp_path / "one.txt")
    assert status == 0 and err == ""
    # Several inputs: each file's predictions come after a "# FILE" line.
    blocks = out.split("# ")[1:]
    assert [b.splitlines()[0] for b in blocks] == [str(tmp_path / n)
                                                   for n in ("x.npy", "x.csv", "one.txt")]
    printed = [[int(s) for s in b.splitlines()[1:]] for b in blocks]
    for labels, expected in zip(printed, [net.predict(X), net.predict(X), [net.predict(X[0])]]):
        np.testing.assert_array_equal(labels, expected)

    status, out, err = run(capsys, "predict", "--model", path, "--proba", tmp_path / "x.npy")
    assert status == 0 and err == ""
    printed = np.array([[float(v) for v in line.split()] for line in out.splitlines()])
    # Printed to 6 significant digits.
    np.testing.assert_allclose(printed, net.forward(X), rtol=1e-5, atol=1e-12)


def test_one_input_prints_no_file_heading(capsys, tmp_path, model_path, digits):
    X, _ = digits
    np.save(tmp_path / "x.npy", X)
    status, out, _ = run(capsys, "predict", "--model", model_path, tmp_path / "x.npy")
    assert status == 0 and "#" not in out and len(out.splitlines()) == len(X)


def _csv_with_header(path, X, header):
    with open(path, "w") as f:
        f.write(header + "\n")
        np.savetxt(f, X, delimiter=",")


def test_predict_skips_a_csv_header_row(capsys, tmp_path, model_path, digits):
    X, _ = digits
    expected = bpfast.load(model_path).predict(X)
    names = ",".join(f"pixel_{i}" for i in range(64))
    _csv_with_header(tmp_path / "named.csv", X, names)          # detected: not numbers
    _csv_with_header(tmp_path / "quoted.csv", X, ",".join(f'"p{i}"' for i in range(64)))
    for name in ("named.csv", "quoted.csv"):
        status, out, err = run(capsys, "predict", "--model", model_path, tmp_path / name)
        assert status == 0, err
        np.testing.assert_array_equal([int(s) for s in out.split()], expected)
    # A header of numbers cannot be told from data: --header says so.
    _csv_with_header(tmp_path / "numbered.csv", X, ",".join(str(i) for i in range(64)))
    status, out, _ = run(capsys, "predict", "--model", model_path, tmp_path / "numbered.csv")
    assert status == 0 and len(out.split()) == len(X) + 1
    status, out, _ = run(capsys, "predict", "--model", model_path, "--header",
                         tmp_path / "numbered.csv")
    assert status == 0
    np.testing.assert_array_equal([int(s) for s in out.split()], expected)
    # --no-header: the first row is data, so a row of names is an error.
    status, out, err = run(capsys, "predict", "--model", model_path, "--no-header",
                           tmp_path / "named.csv")
    assert_one_line_error(status, out, err)
    assert "named.csv" in err
    # A header and nothing else: no samples.
    (tmp_path / "only.csv").write_text(names + "\n")
    status, out, err = run(capsys, "predict", "--model", model_path, tmp_path / "only.csv")
    assert_one_line_error(status, out, err)
    assert "no samples" in err


def test_predicted_classes_are_mostly_right(capsys, tmp_path, model_path, digits):
    X, y = digits
    np.save(tmp_path / "x.npy", X)
    status, out, _ = run(capsys, "predict", "--model", model_path, tmp_path / "x.npy")
    assert status == 0
    assert np.mean(np.array(out.split(), dtype=int) == y) >= 0.9


# ------------------------------------------------------------------ trace

def test_trace_prints_the_worked_example(capsys):
    status, out, err = run(capsys, "trace")
    assert status == 0 and err == ""
    for number in TUTORIAL_NUMBERS:
        assert number in out
    assert "a⁽¹⁾ = sigmoid(z⁽¹⁾) = [0.5744]" in out
    assert "W⁽²⁾ = [[0.6022]]" in out


def test_trace_lr_changes_only_the_update(capsys):
    status, out, _ = run(capsys, "trace", "--lr", 0.2)
    assert status == 0
    assert "W⁽²⁾ = [[0.6045]]" in out           # 0.6 + 0.2 * 0.02230
    assert "L = 0.01396" in out


def test_trace_of_a_saved_model(capsys, tmp_path, model_path, digits):
    X, y = digits
    np.save(tmp_path / "x.npy", X[:3])
    status, out, err = run(capsys, "trace", "--model", model_path, "--input",
                           tmp_path / "x.npy", "--index", 1, "--target", y[1])
    assert status == 0 and err == ""
    net = bpfast.load(model_path)
    assert out == str(net.trace(X[1], int(y[1]))) + "\n"

    # A target vector instead of a label, and an update.
    target = ",".join(["0"] * 9 + ["1"])
    status, out, _ = run(capsys, "trace", "--model", model_path, "--input",
                         tmp_path / "x.npy", "--target", target, "--lr", 0.5)
    assert status == 0
    assert out == str(net.trace(X[0], np.eye(10)[9], lr=0.5)) + "\n"


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("argv", [
    ["--epochs", "0"],
    ["--epochs", "many"],
    ["--lr", "-1"],
    ["--lr", "nan"],
    ["--momentum", "-0.5"],
    ["--layers", "64,x,10"],
    ["--layers", "64"],
    ["--activation", "swish"],
    ["--dtype", "float16"],
    ["--data", "cifar"],
    ["--bogus"],
    ["frobnicate"],
    ["--data", "mnist"],                        # no --mnist-dir
    ["--save", "no/such/folder/model.npz"],
    ["trace", "--input", "x.npy"],              # --input needs --model
    ["trace", "--target", "0,a"],
    ["predict", "x.npy"],                       # --model is required
    ["predict", "--model", "no-such-model.npz", "x.npy"],
])
def test_bad_arguments_are_one_line_and_status_2(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert_one_line_error(status, out, err)


@pytest.mark.parametrize("argv", [
    ["--layers", "10,5,10"],                    # wrong input size for the digits
    ["--layers", "64,32,2"],                    # fewer outputs than classes
    ["--seed", "-3"],
    ["--output", "identity", "--loss", "cross_entropy"],
    ["--mnist-dir", "somewhere"],               # only with --data mnist
])
def test_arguments_that_do_not_fit_the_data_are_rejected(capsys, argv):
    pytest.importorskip("sklearn")
    status, out, err = run(capsys, *argv)
    assert_one_line_error(status, out, err)
    assert "epoch" not in out                   # rejected before any training


def _bad_input_files(tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((2, 65)))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "words.csv").write_text("a,b,c\n")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    (tmp_path / "empty.npy").write_bytes(b"")
    with open(tmp_path / "archive.npy", "wb") as f:         # an .npz archive named .npy
        np.savez(f, x=np.zeros(64))
    return ["wide.npy", "objects.npy", "empty.csv", "words.csv", "x.png", "missing.npy",
            "empty.npy", "archive.npy"]


def test_bad_files_are_one_line_and_status_2(capsys, tmp_path, model_path):
    for name in _bad_input_files(tmp_path):
        status, out, err = run(capsys, "predict", "--model", model_path, tmp_path / name)
        assert_one_line_error(status, out, err)
        assert name in err
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(model_path.read_bytes()[:200])
    np.save(tmp_path / "x.npy", np.zeros(64))
    for model in (corrupt, tmp_path / "x.npy", tmp_path):
        status, out, err = run(capsys, "predict", "--model", model, tmp_path / "x.npy")
        assert_one_line_error(status, out, err)


def test_bad_trace_requests(capsys, tmp_path, model_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 64)))
    base = ["trace", "--model", model_path, "--input", tmp_path / "x.npy"]
    for extra in (["--target", 3, "--index", 3],            # only 3 samples
                  ["--target", 10],                          # label out of range
                  ["--target", "0.5,0.5"],                   # wrong target length
                  []):                                       # no target
        status, out, err = run(capsys, *base, *extra)
        assert_one_line_error(status, out, err)


def test_help_and_version(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0 and "train" in out and "predict" in out
    status, out, _ = run(capsys, "train", "--help")
    assert status == 0 and "_weights" in out    # --plot states its second file
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.strip() == f"bpfast {bpfast.__version__}"


def test_help_shows_percent_signs_once(capsys):
    # argparse %-formats argument help but not descriptions: a literal "%%"
    # in a description reaches the user as "%%".
    for command in ("train", "trace", "predict"):
        status, out, _ = run(capsys, command, "--help")
        assert status == 0
        assert "%%" not in out, out
    _, out, _ = run(capsys, "train", "--help")
    assert "97% test accuracy" in " ".join(out.split())


# ------------------------------------------------------------------ plots

def test_plot_writes_curves_and_weights(capsys, tmp_path):
    pytest.importorskip("sklearn")
    image = pytest.importorskip("matplotlib.image")
    curves = tmp_path / "curves.png"
    status, out, err = run(capsys, "--epochs", 3, "--quiet", "--plot", curves)
    assert status == 0, err
    weights = tmp_path / "curves_weights.png"
    for path in (curves, weights):
        pixels = image.imread(path)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100
        assert pixels.std() > 0
    assert f"wrote {curves}, {weights}" in out


def test_plot_without_matplotlib_fails_before_training(capsys, monkeypatch, tmp_path):
    pytest.importorskip("sklearn")
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = run(capsys, "--plot", tmp_path / "c.png")
    assert_one_line_error(status, out, err)
    assert "bpfast[plot]" in err and "epoch" not in out


# ------------------------------------------------------------------ real processes

def _run_process(*command):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(command, capture_output=True, text=True, encoding="utf-8",
                          env=env, timeout=120)


def test_python_m_bpfast_trace():
    result = _run_process(sys.executable, "-m", "bpfast", "trace")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for number in TUTORIAL_NUMBERS:
        assert number in result.stdout

    result = _run_process(sys.executable, "-m", "bpfast", "train", "--epochs", "zero")
    assert result.returncode == 2
    assert result.stderr.startswith("bpfast: error: argument --epochs")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def _console_script():
    beside = Path(sys.executable).with_name("bpfast.exe" if os.name == "nt" else "bpfast")
    return str(beside) if beside.exists() else shutil.which("bpfast")


@pytest.mark.skipif(_console_script() is None, reason="the bpfast script is not installed")
def test_console_script():
    result = _run_process(_console_script(), "trace")
    assert result.returncode == 0, result.stderr
    assert all(number in result.stdout for number in TUTORIAL_NUMBERS)
    result = _run_process(_console_script(), "predict", "--model", "no-such-file.npz", "x.npy")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpfast: error: ")
    assert "no-such-file.npz" in lines[0]

