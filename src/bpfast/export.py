"""Hand a network to ONNX, PyTorch or scikit-learn, and take one back from PyTorch.

    >>> from bpfast import export
    >>> model = export.to_onnx(net, "net.onnx")      # onnx.ModelProto, also written to the file
    >>> seq = export.to_torch(net)                   # torch.nn.Sequential, same function
    >>> net2 = export.from_torch(seq)                # an MLP with the same weights
    >>> mlp = export.to_sklearn(bp_classifier)       # a fitted sklearn MLPClassifier

Each function imports its library only when called (``import bpfast.export``
imports neither onnx nor torch); a missing library is an ImportError that
names the extra to install: ``pip install "bpfast[onnx]"`` (onnx and
onnxruntime), ``"bpfast[torch]"`` or ``"bpfast[sklearn]"``.

The network is read through its public attributes only (``layers``,
``activation``, ``output``, ``loss_name``, ``dtype``, ``weights``, ``biases``),
with the conventions of ../shared/DESIGN.md: ``weights[l]`` has shape
``(layers[l+1], layers[l])`` and layer l computes ``z = W a + b``, which is
exactly the orientation of ONNX ``Gemm(transB=1)`` and of ``torch.nn.Linear``.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

import copy

import numpy as np

from ._layout import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .io import write_atomic

if TYPE_CHECKING:     # optional libraries: named for the reader, never imported here
    import onnx
    import torch
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from .mlp import MLP
    from .sklearn import BPClassifier, BPRegressor

__all__ = ["to_onnx", "to_torch", "from_torch", "to_sklearn",
           "INPUT_NAME", "OUTPUT_NAME", "OPSET"]

INPUT_NAME = "X"            # ONNX input: shape (batch, layers[0]), the net's dtype
OUTPUT_NAME = "output"      # ONNX output: shape (batch, layers[-1]), what net.forward returns
OPSET = 17                  # ONNX opset (Softmax over the last axis since opset 13)
_IR_VERSION = 8             # the IR version that goes with opset 17, read by older runtimes
LEAKY_SLOPE = 0.01          # bpfast's leaky_relu slope (the kernel's BPFAST_LEAKY_SLOPE)

# bpfast's hidden activation names -> scikit-learn's (leaky_relu has none).
_SKLEARN_HIDDEN = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu",
                   "identity": "identity"}


def _require(module, extra, caller):
    """Import `module` or raise an ImportError that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"bpfast.export.{caller} needs {module.split('.')[0]}, which is "
                          f"not installed: pip install \"bpfast[{extra}]\"") from exc


def _check_net(net, caller):
    from .mlp import MLP
    if not isinstance(net, MLP):
        raise TypeError(f"{caller}: net: expected a bpfast.MLP; got {type(net).__name__}")


def _parameters(net):
    """[(W, b, activation)] per layer: C-contiguous copies in the net's dtype."""
    L = len(net.layers) - 1
    acts = [net.activation] * (L - 1) + [net.output]
    return [(np.array(W, order="C"), np.array(b), a)
            for W, b, a in zip(net.weights, net.biases, acts)]


# ---------------------------------------------------------------- ONNX

def to_onnx(net: MLP, path: str | os.PathLike[str] | None = None) -> onnx.ModelProto:
    """The network as an ONNX model, written atomically to `path` when given.

    Parameters
    ----------
    net : bpfast.MLP
    path : str or os.PathLike, optional
        Where to write the serialised model (a temporary file in the same
        folder, then ``os.replace``: a reader never sees half a file).

    Returns
    -------
    onnx.ModelProto
        Opset 17, in the net's dtype (float32 or float64).  One input
        ``"X"`` of shape ``(batch, layers[0])`` and one output ``"output"``
        of shape ``(batch, layers[-1])``, equal to ``net.forward(X)``; the
        batch dimension is dynamic.  Every layer is ``Gemm(a, W, b,
        transB=1)`` followed by its activation (``Tanh``, ``Relu``,
        ``Softmax(axis=-1)``, nothing for identity; sigmoid and leaky_relu
        as below).

    Notes
    -----
    Two activations are not the single ONNX operator, so that the model
    computes what ``net.forward`` computes:

    - sigmoid is built from ``Exp`` as the kernel computes it (see
      ``_onnx_sigmoid``): onnxruntime's ``Sigmoid`` is accurate only in
      absolute terms and returns a saturated probability of 1e-13 with
      three correct digits.
    - leaky_relu is ``LeakyRelu(alpha=0.01)`` in float32; ONNX stores
      ``alpha`` as a float32, 0.01 rounded to 24 bits, so in float64 it is
      ``Max(z, z * 0.01)`` with a float64 constant, leaky_relu exactly.

    The layers, activations, loss and dtype are recorded in the model's
    ``metadata_props``.
    """
    _check_net(net, "to_onnx")
    onnx = _require("onnx", "onnx", "to_onnx")
    from onnx import helper, numpy_helper

    from ._version import __version__

    elem = helper.np_dtype_to_tensor_dtype(net.dtype)
    nodes, inits = [], []
    a = INPUT_NAME
    for l, (W, b, act) in enumerate(_parameters(net)):
        inits += [numpy_helper.from_array(W, f"W{l}"), numpy_helper.from_array(b, f"b{l}")]
        z = f"z{l + 1}"
        nodes.append(helper.make_node("Gemm", [a, f"W{l}", f"b{l}"], [z], transB=1,
                                      name=f"layer{l}"))
        a = _onnx_activation(act, z, f"a{l + 1}", nodes, inits, net.dtype)
    nodes.append(helper.make_node("Identity", [a], [OUTPUT_NAME]))
    batch = "batch"
    graph = helper.make_graph(
        nodes, "bpfast_mlp", [helper.make_tensor_value_info(INPUT_NAME, elem,
                                                            [batch, net.layers[0]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, [batch, net.layers[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="bpfast", producer_version=__version__,
                              doc_string=repr(net))
    model.ir_version = _IR_VERSION
    helper.set_model_props(model, {"layers": ",".join(map(str, net.layers)),
                                   "activation": net.activation, "output": net.output,
                                   "loss": net.loss_name, "dtype": net.dtype.name})
    onnx.checker.check_model(model)
    if path is not None:
        data = model.SerializeToString()
        write_atomic(path, lambda f: f.write(data))
    return model


def _onnx_activation(act, z, a, nodes, inits, dtype):
    """Append the nodes computing a = act(z); returns the name holding a."""
    from onnx import helper, numpy_helper
    simple = {"tanh": "Tanh", "relu": "Relu", "exp": "Exp"}
    if act == "identity":
        return z
    if act == "sigmoid":
        _onnx_sigmoid(z, a, nodes, inits, dtype)
    elif act in simple:
        nodes.append(helper.make_node(simple[act], [z], [a]))
    elif act == "softmax":
        nodes.append(helper.make_node("Softmax", [z], [a], axis=-1))
    elif act == "leaky_relu" and dtype == np.float32:
        nodes.append(helper.make_node("LeakyRelu", [z], [a], alpha=LEAKY_SLOPE))
    elif act == "leaky_relu":
        slope = "leaky_slope"
        if all(t.name != slope for t in inits):
            inits.append(numpy_helper.from_array(np.array(LEAKY_SLOPE, dtype), slope))
        nodes += [helper.make_node("Mul", [z, slope], [a + "_neg"]),
                  helper.make_node("Max", [z, a + "_neg"], [a])]
    else:   # pragma: no cover - MLP validates its names
        raise ValueError(f"activation: no ONNX form for {act!r}")
    return a


def _onnx_sigmoid(z, a, nodes, inits, dtype):
    """a = sigmoid(z) as the kernel computes it, with e = exp(-|z|) (never overflows):
    1 / (1 + e) where z >= 0, e / (1 + e) where z < 0.

    onnxruntime's Sigmoid is accurate only in absolute terms (about 1e-8 in
    float32, 1e-16 in float64), so a saturated output such as 1e-20 would lose
    every digit; this form keeps its relative precision, as net.forward does.
    """
    from onnx import helper, numpy_helper
    if all(t.name != "one" for t in inits):
        inits += [numpy_helper.from_array(np.array(1, dtype), "one"),
                  numpy_helper.from_array(np.array(0, dtype), "zero")]
    names = {k: f"{a}_{k}" for k in ("abs", "neg", "e", "den", "pos", "num")}
    nodes += [helper.make_node("Abs", [z], [names["abs"]]),
              helper.make_node("Neg", [names["abs"]], [names["neg"]]),
              helper.make_node("Exp", [names["neg"]], [names["e"]]),
              helper.make_node("Add", ["one", names["e"]], [names["den"]]),
              helper.make_node("GreaterOrEqual", [z, "zero"], [names["pos"]]),
              helper.make_node("Where", [names["pos"], "one", names["e"]], [names["num"]]),
              helper.make_node("Div", [names["num"], names["den"]], [a])]


# ---------------------------------------------------------------- PyTorch

def _torch_activations(nn):
    """bpfast name -> a factory of the torch module, one per name."""
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
            "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "identity": nn.Identity,
            "softmax": lambda: nn.Softmax(dim=-1)}


def to_torch(net: MLP, path: str | os.PathLike[str] | None = None) -> torch.nn.Sequential:
    """The network as a ``torch.nn.Sequential`` computing the same function.

    Parameters
    ----------
    net : bpfast.MLP
    path : str or os.PathLike, optional
        Also ``torch.save`` the module there (atomically).  Loading it back
        needs ``torch.load(path, weights_only=False)``, which unpickles: do
        so only for files you trust.

    Returns
    -------
    torch.nn.Sequential
        ``Linear, act, Linear, act, ..., Linear, out`` in the net's dtype:
        one activation module after every Linear (``Sigmoid``, ``Tanh``,
        ``ReLU``, ``LeakyReLU(0.01)``, ``Identity``; the output also
        ``Softmax(dim=-1)``), so Linear l is ``module[2 * l]``.  The
        parameters are copies; training one model does not change the other.
    """
    _check_net(net, "to_torch")
    torch = _require("torch", "torch", "to_torch")
    nn = torch.nn
    make = _torch_activations(nn)
    if net.output not in make:
        raise ValueError(f"to_torch: net: the output {net.output!r} has no torch.nn module; "
                         f"expected one of {sorted(make)}")
    dtype = getattr(torch, net.dtype.name)
    modules = []
    for W, b, act in _parameters(net):
        linear = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        modules += [linear, make[act]()]
    module = nn.Sequential(*modules)
    if path is not None:
        write_atomic(path, lambda f: torch.save(module, f))
    return module


def _torch_activation_name(m, nn):
    """bpfast's name for the activation module `m`, or None when `m` is not one."""
    kinds = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu",
             nn.LeakyReLU: "leaky_relu", nn.Identity: "identity", nn.Softmax: "softmax"}
    return kinds.get(type(m))


def _read_sequential(module, nn):
    """[[linear index, Linear, activation index or None, activation name or None]]."""
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch: module: expected a torch.nn.Sequential; "
                        f"got {type(module).__name__}")
    blocks = []
    n = len(module)
    for i, m in enumerate(module):
        where = f"module[{i}] ({m!r})"
        if type(m) is nn.Linear:
            if blocks and m.in_features != blocks[-1][1].out_features:
                raise ValueError(f"from_torch: {where}: expected in_features="
                                 f"{blocks[-1][1].out_features} (the out_features of "
                                 f"module[{blocks[-1][0]}]); got {m.in_features}")
            blocks.append([i, m, None, None])
            continue
        name = _torch_activation_name(m, nn)
        if name is None:
            raise ValueError(f"from_torch: {where}: not supported; expected Linear, ReLU, "
                             "LeakyReLU(0.01), Tanh, Sigmoid, Identity, and a final "
                             "Softmax(dim=-1)")
        if not blocks or blocks[-1][2] is not None:
            raise ValueError(f"from_torch: {where}: expected a Linear before each activation"
                             " (one activation per Linear)")
        if name == "leaky_relu" and m.negative_slope != LEAKY_SLOPE:
            raise ValueError(f"from_torch: {where}: bpfast's leaky_relu has slope "
                             f"{LEAKY_SLOPE}; got negative_slope={m.negative_slope}")
        if name == "softmax" and (i != n - 1 or m.dim not in (-1, 1)):
            raise ValueError(f"from_torch: {where}: Softmax is supported only as the last "
                             f"module and over the last dimension (dim=-1); got dim={m.dim} "
                             f"at position {i} of {n}")
        blocks[-1][2:] = [i, name]
    if not blocks:
        raise ValueError(f"from_torch: module: expected at least one Linear; got {module!r}")
    return blocks


def _hidden_activation(module, blocks):
    """The one hidden activation of `blocks` (None without hidden layer)."""
    hidden = first = None
    for i, _, j, name in blocks[:-1]:
        name = name or "identity"
        if hidden is None:
            hidden, first = name, i
        elif name != hidden:
            k = i if j is None else j     # the module that differs: its activation or Linear
            raise ValueError(
                f"from_torch: module[{k}] ({module[k]!r}): hidden activation {name!r} "
                f"differs from {hidden!r} after module[{first}]; a bpfast network has one "
                "hidden activation")
    return hidden


def from_torch(module: torch.nn.Sequential, *, loss: str | None = None,
               activation: str | None = None, seed: int | None = None) -> MLP:
    """A bpfast MLP with the weights and function of a ``torch.nn.Sequential``.

    Parameters
    ----------
    module : torch.nn.Sequential
        ``Linear`` layers, each followed by at most one activation: ``ReLU``,
        ``LeakyReLU(0.01)``, ``Tanh``, ``Sigmoid``, ``Identity`` (no module
        means identity), the same one after every hidden Linear; after the
        last Linear ``Sigmoid``, ``Tanh``, ``ReLU``, ``Identity`` (or none)
        or ``Softmax(dim=-1)`` (``dim=1``, the last dimension of a batch, is
        accepted too).  A ``Linear(bias=False)`` is accepted with a zero
        bias, which the MLP then has and trains.  The parameters must all be
        float32 or all float64: that is the MLP's dtype.
    loss : {"mse", "cross_entropy"}, optional
        The MLP's loss: by default "cross_entropy" after a Softmax (the
        usual classifier), "mse" otherwise.
    activation : str, optional
        The hidden activation for a module without hidden layer (only one
        Linear), which cannot tell; with hidden layers, it must match them.
    seed : int, optional
        ``MLP(seed=...)``: seeds the network's shuffling generator.

    Returns
    -------
    bpfast.MLP

    Raises
    ------
    ValueError
        For anything else (another module type, a nested container, another
        slope, mixed hidden activations, sizes that do not chain, a Softmax
        not last, mixed or other dtypes, non-finite parameters), naming the
        module by its index and repr.
    """
    torch = _require("torch", "torch", "from_torch")
    from .mlp import MLP

    blocks = _read_sequential(module, torch.nn)
    hidden = _hidden_activation(module, blocks)
    if hidden is not None and activation is not None and activation != hidden:
        raise ValueError(f"from_torch: activation: the module's hidden activation is "
                         f"{hidden!r}; got activation={activation!r}")
    hidden = hidden or activation or "sigmoid"
    if hidden not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"from_torch: activation: expected one of {HIDDEN_ACTIVATIONS}; "
                         f"got {hidden!r}")
    last = blocks[-1]
    output = last[3] or "identity"
    if output not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"from_torch: module[{last[2]}] ({module[last[2]]!r}): not "
                         f"supported as the output activation; expected one of "
                         f"{OUTPUT_ACTIVATIONS}")
    arrays: list[tuple[np.ndarray, np.ndarray]] = []
    dtype: np.dtype | None = None
    for i, linear, _, _ in blocks:
        W, b = _linear_arrays(i, linear, torch)
        if dtype is None:
            dtype = W.dtype
        elif W.dtype != dtype:
            raise ValueError(f"from_torch: module[{i}] ({linear!r}): parameters are "
                             f"{W.dtype.name}, module[{blocks[0][0]}]'s are {dtype.name}; "
                             "expected one dtype")
        arrays.append((W, b))
    layers = [blocks[0][1].in_features] + [linear.out_features for _, linear, _, _ in blocks]
    if loss is None:
        loss = "cross_entropy" if output == "softmax" else "mse"
    assert dtype is not None        # blocks is never empty
    net = MLP(layers, activation=hidden, output=output, loss=loss, dtype=dtype.name,
              seed=seed)
    for l, (W, b) in enumerate(arrays):
        net.weights[l][...] = W
        net.biases[l][...] = b
    return net


def _linear_arrays(i, linear, torch):
    """(W, b) of a Linear as NumPy copies; b zero when it has no bias."""
    where = f"module[{i}] ({linear!r})"
    weight = linear.weight.detach().cpu()
    if weight.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"from_torch: {where}: expected float32 or float64 parameters; "
                         f"got {weight.dtype}")
    W = weight.numpy().copy()
    if linear.bias is None:
        b = np.zeros(W.shape[0], W.dtype)
    elif linear.bias.dtype != weight.dtype:
        raise ValueError(f"from_torch: {where}: bias is {linear.bias.dtype}, weight is "
                         f"{weight.dtype}; expected one dtype")
    else:
        b = linear.bias.detach().cpu().numpy().copy()
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise ValueError(f"from_torch: {where}: expected finite parameters; got NaN or inf")
    return W, b


# ---------------------------------------------------------------- scikit-learn

def to_sklearn(estimator: BPClassifier | BPRegressor) -> MLPClassifier | MLPRegressor:
    """A fitted scikit-learn MLPClassifier / MLPRegressor equal to a fitted BP estimator.

    Parameters
    ----------
    estimator : bpfast.sklearn.BPClassifier or bpfast.sklearn.BPRegressor
        Fitted.

    Returns
    -------
    sklearn.neural_network.MLPClassifier or MLPRegressor
        Built with the estimator's hyperparameters that scikit-learn shares
        (``solver="sgd"``, ``learning_rate="constant"`` where the estimator
        has no such parameter: that is how it trains; bpfast-only ones such
        as ``dtype``, ``n_threads`` or the classifier's ``loss`` are
        dropped), and given every fitted attribute its ``predict`` and
        ``predict_proba`` read: ``coefs_`` (copies, shape (n_in, n_out), in
        the network's dtype), ``intercepts_``, ``n_layers_``, ``n_outputs_``,
        ``out_activation_``, ``n_features_in_`` (and ``feature_names_in_``),
        ``classes_`` and ``_label_binarizer`` for a classifier, and the fit
        statistics (``loss_``, ``loss_curve_``, ``best_loss_``, ``t_``,
        ``n_iter_``, validation scores).  It predicts what the estimator
        predicts, converts with skl2onnx and can continue with ``partial_fit``.

    Raises
    ------
    ValueError
        When the hidden activation is "leaky_relu": scikit-learn has none.
    """
    _require("sklearn", "sklearn", "to_sklearn")
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils.validation import check_is_fitted

    from .sklearn import BPClassifier, BPRegressor

    if not isinstance(estimator, (BPClassifier, BPRegressor)):
        raise TypeError(f"to_sklearn: estimator: expected a BPClassifier or BPRegressor; "
                        f"got {type(estimator).__name__}")
    check_is_fitted(estimator, "net_")
    net = estimator.net_
    if net.activation not in _SKLEARN_HIDDEN:
        raise ValueError(f"to_sklearn: estimator: the hidden activation {net.activation!r} "
                         f"has no scikit-learn equivalent; expected one of "
                         f"{tuple(_SKLEARN_HIDDEN)} (bpfast's 'sigmoid' is 'logistic')")
    classifier = isinstance(estimator, BPClassifier)
    cls = MLPClassifier if classifier else MLPRegressor
    names = cls().get_params()
    params = {k: v for k, v in estimator.get_params(deep=False).items() if k in names}
    params.update(hidden_layer_sizes=tuple(net.layers[1:-1]),
                  activation=_SKLEARN_HIDDEN[net.activation])
    model = cls(**params)
    model.coefs_ = [np.array(W.T, order="C") for W in net.weights]
    model.intercepts_ = [np.array(b) for b in net.biases]
    model._best_coefs = [c.copy() for c in model.coefs_]
    model._best_intercepts = [b.copy() for b in model.intercepts_]
    model.n_layers_ = len(net.layers)
    model.n_outputs_ = net.layers[-1]
    model.n_features_in_ = net.layers[0]
    for name in ("out_activation_", "feature_names_in_", "loss_", "best_loss_",
                 "best_validation_score_", "t_", "n_iter_", "_no_improvement_count"):
        if hasattr(estimator, name):
            setattr(model, name, getattr(estimator, name))
    for name in ("loss_curve_", "validation_scores_"):
        value = getattr(estimator, name, None)
        setattr(model, name, None if value is None else list(value))
    if classifier:
        model.classes_ = np.array(estimator.classes_)
        binarizer = getattr(estimator, "_label_binarizer", None)   # multilabel: fitted on y
        model._label_binarizer = (copy.deepcopy(binarizer) if binarizer is not None
                                  else LabelBinarizer().fit(model.classes_))
    return model
