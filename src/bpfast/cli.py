"""The ``bpfast`` command: train, trace, predict and export from the terminal.

    bpfast                       # = bpfast train: digits 8x8, layers 64,32,10, 30 epochs
    bpfast train --data mnist --mnist-dir shared/data/mnist --save net.npz --plot curves.png
    bpfast train --optimizer adam --lr 1e-3 --schedule cosine
    bpfast trace                 # the tutorial's 1-1-1 network, one backpropagation step
    bpfast predict --model net.npz samples.npy
    bpfast export net.npz net.onnx   # or net.pt: the torch.nn.Sequential (bpfast.export)

Only the public API (MLP, load, datasets, optim, plot) and the one table of
activation and loss names (bpfast._layout) are used here.  Every bad
argument or file ends in one line ``bpfast: error: ...`` on stderr and exit
status 2; a diverging run ends in one line and exit status 1.
"""

import argparse
import importlib.util
import os
import sys
import time
import warnings

import numpy as np

from . import MLP, DivergenceError, __version__, datasets, load, optim
from ._layout import HIDDEN_ACTIVATIONS, LOSSES, OUTPUT_ACTIVATIONS

__all__ = ["main"]

SGD_LR = 3.0        # --lr's default for the default SGD: the tutorials' sigmoid/mse network
SCHEDULES = ("none", "step", "exponential", "cosine", "plateau")
DEFAULT_LAYERS = {"digits": [64, 32, 10], "mnist": [784, 30, 10]}
N_CLASSES = 10      # both data sets are images of the digits 0-9
# The held-out quarter of scikit-learn's 1797 digits; fixed so that runs with
# different --seed values are scored on the same test samples.
DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED = 0.25, 0
TUTORIAL = dict(x=0.5, y=0.8, w1=0.4, b1=0.1, w2=0.6, b2=0.2, lr=0.1)


class UsageError(Exception):
    """A bad command line; main() prints it as one line and returns 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------- argument types

def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _real(minimum, strict):
    """An argparse type: a finite real number > minimum (>= minimum unless strict)."""
    relation = ">" if strict else ">="

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > minimum if strict else value >= minimum) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a finite number {relation} {minimum:g}; "
                                             f"got {text!r}")
        return value
    return parse


def _layer_sizes(text):
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected at least two comma-separated positive sizes such as 64,32,10; got {text!r}")
    return sizes


def _target(text):
    """An integer class label ("3"), or a target vector of reals ("0.8" or "0,1,0")."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return np.array([float(s) for s in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a class label (3) or comma-separated reals (0.8 or 0,1,0); "
            f"got {text!r}") from None


def _build_parser():
    parser = _Parser(prog="bpfast", description="Train, inspect and use multilayer "
                     "perceptrons trained by backpropagation (bpfast).")
    parser.add_argument("--version", action="version", version=f"bpfast {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train and evaluate a network (the default command)",
        description="Train an MLP by SGD and report the test accuracy. With the defaults "
        "(scikit-learn's 8x8 digits, layers 64,32,10, sigmoid/mse, lr 3, batch 10, 30 epochs) "
        "it reaches about 97% test accuracy in well under a second of training.")
    train.add_argument("--data", choices=("digits", "mnist"), default="digits",
                       help="digits: scikit-learn's bundled 8x8 digits (no download; 3/4 "
                       "train, 1/4 test); mnist: the IDX files in --mnist-dir (default: digits)")
    train.add_argument("--mnist-dir", metavar="DIR",
                       help="folder with the four MNIST IDX files (raw or .gz)")
    train.add_argument("--limit", type=_positive_int, metavar="N",
                       help="use only the first N training and N test samples")
    train.add_argument("--layers", type=_layer_sizes, metavar="N0,N1,...",
                       help="layer sizes including input and output "
                       "(default: 64,32,10 for digits, 784,30,10 for mnist)")
    train.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="sigmoid",
                       help="hidden activation (default: sigmoid)")
    train.add_argument("--output", choices=OUTPUT_ACTIVATIONS, default="sigmoid",
                       help="output activation (default: sigmoid)")
    train.add_argument("--loss", choices=tuple(LOSSES), default="mse",
                       help="loss (default: mse); cross_entropy needs output softmax or sigmoid")
    train.add_argument("--epochs", type=_positive_int, default=30, help="(default: 30)")
    train.add_argument("--optimizer", choices=tuple(optim.OPTIMIZERS), default="sgd",
                       help="update rule, as the torch.optim class of that name, with its "
                       "defaults (default: sgd)")
    train.add_argument("--lr", type=_real(0, strict=True), default=None,
                       help=f"learning rate (default: {SGD_LR:g} for sgd, for sigmoid/mse; "
                       "try 0.1 with softmax/cross_entropy or relu; the optimizer's own "
                       "default otherwise, e.g. 0.001 for adam)")
    train.add_argument("--momentum", type=_real(0, strict=False), default=None,
                       help="momentum of sgd or rmsprop (default: 0)")
    train.add_argument("--weight-decay", type=_real(0, strict=False), default=None,
                       help="L2 weight decay, as torch.optim's weight_decay (default: the "
                       "optimizer's: 0, or 0.01 for adamw)")
    train.add_argument("--schedule", choices=SCHEDULES, default="none",
                       help="learning-rate schedule, stepped after every epoch: step (x gamma "
                       "every --step-size epochs), exponential (x gamma every epoch), cosine "
                       "(annealed to 0 over --epochs), plateau (x 0.1 when the test loss has "
                       "not improved for 5 epochs) (default: none)")
    train.add_argument("--gamma", type=_real(0, strict=True), default=None,
                       help="factor of the step and exponential schedules (default: 0.1 for "
                       "step, 0.9 for exponential)")
    train.add_argument("--step-size", type=_positive_int, default=None,
                       help="epochs between two steps of the step schedule (default: a third "
                       "of --epochs)")
    train.add_argument("--batch-size", type=_positive_int, default=10, help="(default: 10)")
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="(default: float64)")
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the initial weights and the shuffling (default: 0)")
    train.add_argument("--threads", type=_positive_int, default=1,
                       help="threads per minibatch (default: 1)")
    train.add_argument("--save", metavar="MODEL.npz", help="write the trained network here")
    train.add_argument("--plot", metavar="CURVES.png",
                       help="write the learning curves here (needs matplotlib; the suffix "
                       "names the format: .png, .svg, .pdf, .jpg, ...); for image "
                       "data (8x8 digits, 28x28 MNIST) also the first-layer weights beside "
                       "it, e.g. curves.png -> curves_weights.png")
    train.add_argument("-q", "--quiet", action="store_true",
                       help="print only the final test accuracy")

    trace = commands.add_parser(
        "trace", help="print one backpropagation step, number by number",
        description="Without options: the tutorial's 1-1-1 network (sigmoid/sigmoid, mse; "
        "x=0.5, y=0.8, w1=0.4, b1=0.1, w2=0.6, b2=0.2, lr=0.1). With --model, --input and "
        "--target: one sample through a saved network.")
    trace.add_argument("--model", metavar="MODEL.npz", help="a network written by --save")
    trace.add_argument("--input", metavar="FILE",
                       help="samples, .npy or .csv/.txt, shape (n, n0) or (n0,)")
    trace.add_argument("--index", type=int, default=0, help="which row of --input (default: 0)")
    trace.add_argument("--target", type=_target, metavar="T",
                       help="class label (3) or target values (0.8 or 0,1,0)")
    trace.add_argument("--lr", type=_real(0, strict=True),
                       help="also show the updated parameters for this learning rate "
                       "(default: 0.1 for the tutorial, none for a model)")
    trace.add_argument("--lang", choices=("en", "zh"), default="en",
                       help="language of the explanation: en (English) or zh (中文) "
                       "(default: en)")
    trace.add_argument("--plot", metavar="STEP.png",
                       help="also draw the step here (needs matplotlib; the suffix names the "
                       "format: .png, .svg, .pdf): units with a and δ, every weight coloured "
                       "by its update")

    predict = commands.add_parser(
        "predict", help="classify samples with a saved network",
        description="Print one predicted class per sample and line (or, with --proba, "
        "the output activations). With several INPUT files, each file's lines follow a "
        "heading line '# FILE' (a comment for numpy.loadtxt and most CSV readers); with one "
        "file there is no heading. A .csv/.txt file whose first row does not parse as "
        "numbers has a header row, which is skipped.")
    predict.add_argument("--model", metavar="MODEL.npz", required=True)
    predict.add_argument("inputs", nargs="+", metavar="INPUT",
                         help=".npy or .csv/.txt file of shape (n, n0) or (n0,)")
    predict.add_argument("--proba", action="store_true",
                         help="print the output layer's activations instead of classes")
    predict.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                         help="the first row of each .csv/.txt file is a header to skip "
                         "(--header) or data (--no-header); default: a header when it does "
                         "not parse as numbers")

    export = commands.add_parser(
        "export", help="write a saved network as an ONNX or PyTorch model",
        description="Convert a network written by --save. OUTPUT.onnx: an ONNX model (input "
        "'X', output 'output', dynamic batch; needs bpfast[onnx]). OUTPUT.pt: torch.save of the "
        "equivalent torch.nn.Sequential (needs bpfast[torch]; load it with "
        "torch.load(path, weights_only=False), trusted files only).")
    export.add_argument("model", metavar="MODEL.npz", help="a network written by --save")
    export.add_argument("output", metavar="OUTPUT", help="the file to write: .onnx or .pt")
    return parser


# ---------------------------------------------------------------- data

def _first_row_is_text(path, delimiter):
    """Whether the first row of a text file (comments and blank lines aside) is not numbers."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                try:
                    [float(v) for v in line.split(delimiter)]
                except ValueError:
                    return True
                return False
    return False


def load_samples(path, header=None):
    """An array from a .npy file (never unpickled) or a .csv/.txt text file.

    `header` (text files): True skips the first row, False reads it as data,
    None skips it when it does not parse as numbers (a row of column names).
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".csv", ".txt"):
        raise ValueError(f"{path}: expected a .npy, .csv or .txt file")
    try:
        if ext == ".npy":
            X = np.load(path, allow_pickle=False)
        else:
            delimiter = "," if ext == ".csv" else None
            if header is None:
                header = _first_row_is_text(path, delimiter)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")     # "input contained no data": checked below
                X = np.loadtxt(path, delimiter=delimiter, ndmin=1, skiprows=int(header))
    except (ValueError, EOFError) as exc:
        raise ValueError(f"{path}: {exc or 'truncated file'}") from None
    if not isinstance(X, np.ndarray):           # np.load opened an .npz archive
        X.close()
        raise ValueError(f"{path}: expected one array (.npy), not an archive")
    if X.size == 0:
        raise ValueError(f"{path}: no samples in the file")
    return X


def _digits():
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise UsageError("the default data set needs scikit-learn: pip install scikit-learn "
                         "(or use --data mnist --mnist-dir DIR)") from None
    digits = load_digits()
    X = digits.data / 16.0      # pixel intensities 0..16 -> [0, 1]
    return train_test_split(X, digits.target, test_size=DIGITS_TEST_FRACTION,
                            random_state=DIGITS_SPLIT_SEED, stratify=digits.target)


def load_data(args):
    """(X_train, y_train, X_test, y_test, description) for --data."""
    if args.data == "mnist":
        if not args.mnist_dir:
            raise UsageError("--data mnist needs --mnist-dir DIR")
        X_train, y_train, X_test, y_test = datasets.load_mnist(args.mnist_dir)
        name = "MNIST 28x28"
    else:
        if args.mnist_dir:
            raise UsageError("--mnist-dir is only used with --data mnist")
        X_train, X_test, y_train, y_test = _digits()
        name = "scikit-learn digits 8x8"
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
        X_test, y_test = X_test[:args.limit], y_test[:args.limit]
    return X_train, y_train, X_test, y_test, name


def _check_layers(layers, n_inputs, n_classes, data):
    if layers[0] != n_inputs or layers[-1] != n_classes:
        raise UsageError(f"--layers: {data} has {n_inputs} inputs and {n_classes} classes, so "
                         f"the layers must start with {n_inputs} and end with {n_classes}; "
                         f"got {','.join(map(str, layers))}")


# ---------------------------------------------------------------- commands

def _epoch_printer(epochs):
    width = len(str(epochs))

    def show(epoch, logs):
        print(f"epoch {epoch + 1:{width}d}/{epochs}  loss {logs['loss']:.4f}  "
              f"acc {logs['accuracy']:.4f}  test loss {logs['val_loss']:.4f}  "
              f"test acc {logs['val_accuracy']:.4f}  lr {logs['lr']:.4g}  "
              f"({logs['seconds']:.3f} s)", flush=True)
    return show


def make_optimizer(args):
    """The bpfast.optim optimizer of --optimizer, --lr, --momentum, --weight-decay."""
    cls = optim.OPTIMIZERS[args.optimizer]
    kwargs = {}
    if args.lr is not None or cls is optim.SGD:
        kwargs["lr"] = SGD_LR if args.lr is None else args.lr
    if args.momentum is not None:
        if cls not in (optim.SGD, optim.RMSprop):
            raise UsageError(f"--momentum: only sgd and rmsprop have momentum; got "
                             f"--optimizer {args.optimizer}")
        kwargs["momentum"] = args.momentum
    if args.weight_decay is not None:
        if cls is optim.Rprop:
            raise UsageError("--weight-decay: rprop has no weight decay")
        kwargs["weight_decay"] = args.weight_decay
    return cls(**kwargs)


def make_schedule(args):
    """The bpfast.optim schedule of --schedule, --gamma, --step-size (None for none)."""
    if args.schedule != "step" and args.step_size is not None:
        raise UsageError(f"--step-size: only the step schedule has one; got --schedule "
                         f"{args.schedule}")
    if args.schedule not in ("step", "exponential") and args.gamma is not None:
        raise UsageError(f"--gamma: only the step and exponential schedules have one; got "
                         f"--schedule {args.schedule}")
    if args.schedule == "step":
        return optim.StepLR(args.step_size or max(1, args.epochs // 3),
                            gamma=0.1 if args.gamma is None else args.gamma)
    if args.schedule == "exponential":
        return optim.ExponentialLR(0.9 if args.gamma is None else args.gamma)
    if args.schedule == "cosine":
        return optim.CosineAnnealingLR(T_max=args.epochs)
    if args.schedule == "plateau":
        return optim.ReduceLROnPlateau(monitor="val_loss", patience=5)
    return None


def run_train(args):
    # Fail before training, not after, on an output that cannot be written.
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UsageError('--plot needs matplotlib: pip install "bpfast[plot]"')
    for option, path in (("--save", args.save), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):
            raise UsageError(f"{option}: no such folder: {folder}")
    if args.plot:
        from . import plot
        try:
            plot._file_format(args.plot)
        except ValueError as exc:
            raise UsageError(f"--plot: {str(exc).removeprefix('path: ')}") from None
    optimizer, schedule = make_optimizer(args), make_schedule(args)
    X_train, y_train, X_test, y_test, name = load_data(args)
    layers = args.layers or DEFAULT_LAYERS[args.data]
    _check_layers(layers, X_train.shape[1], N_CLASSES, name)
    net = MLP(layers, activation=args.activation, output=args.output, loss=args.loss,
              dtype=args.dtype, seed=args.seed)
    if not args.quiet:
        print(f"data: {name}, {len(X_train)} train / {len(X_test)} test samples")
        print(f"network: {net}, {net.n_params} parameters")
        print(f"training: {args.epochs} epochs, {optimizer!r}"
              f"{'' if schedule is None else f', schedule {schedule!r}'}, "
              f"batch {args.batch_size}, seed {args.seed}")
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, optimizer=optimizer,
                      schedule=schedule, batch_size=args.batch_size, seed=args.seed,
                      validation_data=(X_test, y_test), progress=False,
                      callbacks=() if args.quiet else (_epoch_printer(args.epochs),),
                      n_threads=args.threads)
    seconds = time.perf_counter() - start
    accuracy = history.history[-1]["val_accuracy"]
    print(f"test accuracy {100 * accuracy:.2f}% ({round(accuracy * len(X_test))}/"
          f"{len(X_test)}) after {len(history)} epoch{'s' * (len(history) != 1)}, {seconds:.2f} s")
    hint = _chance_level_hint(net, args, accuracy, X_test, history.history[0]["lr"])
    if hint:
        print(f"bpfast: warning: {hint}", file=sys.stderr)
    if args.save:
        net.save(args.save)
        print(f"saved the network to {args.save}")
    if args.plot:
        _plot(net, history, args.plot)
    return 0


def _chance_level_hint(net, args, accuracy, X_test, lr):
    """A hint when training ended at chance level (and did not diverge), else None.

    Saturated units (|z| > 15 for sigmoid/tanh, relu never positive) or outputs that
    no longer depend on the input mean steps far too large; otherwise too small or few.
    """
    if accuracy > 1.5 / N_CLASSES:
        return None
    z = X_test @ net.weights[0].T + net.biases[0]
    stuck = z <= 0 if args.activation in ("relu", "leaky_relu") else np.abs(z) > 15
    outputs = net.forward(X_test)
    saturated = (args.activation != "identity" and stuck.mean() > 0.5) \
        or float(np.ptp(outputs, axis=0).max()) < 1e-6
    if args.optimizer != "sgd":
        suggested = optim.OPTIMIZERS[args.optimizer]().lr
    else:
        suggested = SGD_LR if (args.output, args.loss) == ("sigmoid", "mse") else 0.1
    text = (f"test accuracy {100 * accuracy:.2f}% is chance level for {N_CLASSES} classes"
            + (" and the units are saturated" if saturated else "") + ": ")
    if saturated or lr > suggested:
        return text + f"the learning rate {lr:g} may be too large (try --lr {suggested:g})"
    return text + (f"the learning rate {lr:g} may be too small or the training too "
                   f"short (try --lr {suggested:g} or more --epochs)")


def _plot(net, history, path):
    try:
        from . import plot
        written = [plot.learning_curves(history, path, val_label="test")]
        if net.layers[0] in (64, 784):          # 8x8 digits or 28x28 MNIST images
            root, ext = os.path.splitext(path)
            written.append(plot.weight_grid(net, f"{root}_weights{ext or '.png'}"))
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    print("wrote " + ", ".join(map(str, written)))


def tutorial_network():
    """The 1-1-1 sigmoid/mse network of the worked example, and its sample."""
    t = TUTORIAL
    net = MLP([1, 1, 1], activation="sigmoid", output="sigmoid", loss="mse")
    net.weights[0][:], net.biases[0][:] = t["w1"], t["b1"]
    net.weights[1][:], net.biases[1][:] = t["w2"], t["b2"]
    return net, np.array([t["x"]]), np.array([t["y"]])


def _show_trace(tr, args):
    """Print the trace; with --plot also draw it."""
    print(tr)
    if args.plot:
        try:
            tr.plot(args.plot)
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        print(f"wrote {args.plot}")
    return 0


def run_trace(args):
    if args.plot:       # fail before the work, not after, on a picture that cannot be written
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError('--plot needs matplotlib: pip install "bpfast[plot]"')
        folder = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(folder):
            raise UsageError(f"--plot: no such folder: {folder}")
    if args.model is None:
        if args.input is not None or args.target is not None:
            raise UsageError("--input and --target need --model")
        net, x, y = tutorial_network()
        lr = TUTORIAL["lr"] if args.lr is None else args.lr
        return _show_trace(net.trace(x, y, lr, lang=args.lang), args)
    if args.input is None or args.target is None:
        raise UsageError("trace --model needs --input FILE and --target T")
    net = load(args.model)
    X = load_samples(args.input)
    if X.ndim == 2:
        if not -len(X) <= args.index < len(X):
            raise UsageError(f"--index: {args.input} has {len(X)} samples; got {args.index}")
        X = X[args.index]
    elif args.index != 0:
        raise UsageError(f"--index: {args.input} holds one sample; got {args.index}")
    return _show_trace(net.trace(X, args.target, args.lr, lang=args.lang), args)


def run_predict(args):
    net = load(args.model)
    for path in args.inputs:
        X = load_samples(path, header=args.header)
        try:
            out = net.forward(X) if args.proba else net.predict(X)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{path}: {exc}") from None
        if len(args.inputs) > 1:
            print(f"# {path}")
        if args.proba:
            for row in np.atleast_2d(out):
                print(" ".join(f"{v:.6g}" for v in row))
        else:
            for label in np.atleast_1d(out):
                print(int(label))
    return 0


EXPORTERS = {".onnx": "to_onnx", ".pt": "to_torch"}


def run_export(args):
    suffix = os.path.splitext(args.output)[1].lower()
    if suffix not in EXPORTERS:
        raise UsageError(f"OUTPUT: expected a file name ending in .onnx or .pt; "
                         f"got {args.output!r}")
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise UsageError(f"OUTPUT: no such folder: {folder}")
    net = load(args.model)
    from . import export
    try:
        getattr(export, EXPORTERS[suffix])(net, args.output)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {args.output}")
    return 0


def _oneline(exc):
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _silence_stdout():
    """After a closed pipe, point stdout at devnull so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # stdout is not a real file (pytest, IDE)
        pass


def main(argv=None):
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # `bpfast` and `bpfast --epochs 5` mean `bpfast train ...`.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "train")
    commands = {"train": run_train, "trace": run_trace, "predict": run_predict,
                "export": run_export}
    try:
        args = _build_parser().parse_args(argv)
        return commands[args.command](args)
    except SystemExit as exc:                   # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:                     # e.g. `bpfast trace | head`: stop quietly
        _silence_stdout()
        return 1
    except DivergenceError as exc:
        print(f"bpfast: error: {_oneline(exc)}", file=sys.stderr)
        return 1
    except (UsageError, ValueError, TypeError, OSError) as exc:
        print(f"bpfast: error: {_oneline(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bpfast: interrupted", file=sys.stderr)
        return 130
