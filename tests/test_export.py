"""bpfast.export: ONNX, PyTorch and scikit-learn give the function net.forward computes.

Every exporter is checked on every hidden activation x output x dtype with 1-3
hidden layers, on a network trained a few steps (weights not at their init)
and on inputs large enough to saturate sigmoid/tanh/softmax and to give
negative z to relu/leaky_relu.

Tolerances (``assert_same_function``): rtol 1e-5 (float32) and 1e-9 (float64)
-- 1e-12 for PyTorch in float64 -- relative to each output for sigmoid and
softmax, whose outputs are positive and whose relative error is that of z,
so a saturated probability of 1e-20 must keep its digits; relative to the
largest output for identity, tanh and relu, where z itself can cancel to
near zero and its last bits depend on the order of the sums.  Values below the
smallest normal number (subnormals, which runtimes may flush to zero) are
held to that absolute bound only.
"""

import os
import subprocess
import sys
import warnings
from functools import lru_cache

import numpy as np
import pytest

import bpfast
from bpfast import cli, export
from bpfast._layout import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS

RTOL = {"float32": 1e-5, "float64": 1e-9}
TORCH_RTOL = {"float32": 1e-5, "float64": 1e-12}
N_IN, N_HIDDEN, N_OUT = 5, 7, 4
# float32 carries ~7 digits: an input scale of 30 gives |z| in the hundreds, where
# any two float32 sums already differ by ~3e-5 in z; 5 still saturates sigmoid.
INPUT_SCALE = {"float32": 5.0, "float64": 30.0}
# ... and the last layer, once trained, is scaled so that sigmoid and softmax outputs
# saturate to 1e-40 and below in float64; float32's are down to 1e-12 without it.
OUTPUT_GAIN = {"float32": 1.0, "float64": 8.0}
CASES = [(a, o, d, h) for d in ("float32", "float64") for a in HIDDEN_ACTIVATIONS
         for o in OUTPUT_ACTIVATIONS if o != "exp" for h in (1, 2, 3)]
# "exp" (the poisson loss's output) overflows at these input scales; ONNX has it
# (Exp), torch.nn has no module for it (to_torch refuses it).
WORST = {}      # (exporter, dtype) -> largest error seen, printed with -s
SMALLEST = {}   # dtype -> smallest sigmoid/softmax output compared


@lru_cache(maxsize=None)
def trained(activation, output, dtype, n_hidden):
    """A network trained for 2 epochs, its last layer then scaled (callers must not change it)."""
    loss = "cross_entropy" if output == "softmax" else "mse"
    layers = [N_IN] + [N_HIDDEN] * n_hidden + [N_OUT]
    net = bpfast.MLP(layers, activation=activation, output=output, loss=loss, dtype=dtype,
                     seed=3)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(64, N_IN))
    net.fit(X, rng.integers(0, N_OUT, 64), epochs=2, lr=0.05, batch_size=8, progress=False)
    net.weights[-1][...] *= OUTPUT_GAIN[dtype]
    net.biases[-1][...] *= OUTPUT_GAIN[dtype]
    return net


def inputs(dtype, n=200, seed=5):
    return (np.random.default_rng(seed).normal(size=(n, N_IN)) * INPUT_SCALE[dtype]).astype(dtype)


def assert_same_function(got, ref, output, rtol, key=None):
    """got == ref to `rtol` as the module docstring says; records the error under key."""
    assert got.dtype == ref.dtype and got.shape == ref.shape
    tiny = np.finfo(ref.dtype).tiny
    scale = np.abs(ref) if output in ("sigmoid", "softmax") else np.abs(ref).max()
    err = np.abs(got.astype(np.float64) - ref)
    rel = np.where(err <= tiny, 0.0, err / np.maximum(scale, tiny))
    if key is not None:
        WORST[key] = max(WORST.get(key, 0.0), float(rel.max()))
    assert rel.max() <= rtol, f"max relative error {rel.max():.3g} > {rtol:g}"


def teardown_module():
    for key, value in sorted(WORST.items()):
        print(f"\nlargest relative error {key}: {value:.3g}", end="")
    for key, value in sorted(SMALLEST.items()):
        print(f"\nsmallest sigmoid/softmax output ({key}): {value:.3g}", end="")


# ---------------------------------------------------------------- optional imports

def test_import_loads_no_optional_library():
    code = ("import sys, bpfast.export\n"
            "optional = ('onnx', 'onnxruntime', 'torch', 'sklearn', 'skl2onnx')\n"
            "loaded = [m for m in optional if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("call, library, extra", [
    (lambda: export.to_onnx(bpfast.MLP([2, 1])), "onnx", "onnx"),
    (lambda: export.to_torch(bpfast.MLP([2, 1])), "torch", "torch"),
    (lambda: export.from_torch(None), "torch", "torch"),
])
def test_missing_library_names_the_extra(monkeypatch, call, library, extra):
    monkeypatch.setitem(sys.modules, library, None)     # makes `import library` fail
    with pytest.raises(ImportError, match=rf'pip install "bpfast\[{extra}\]"'):
        call()


def test_not_a_network_is_a_type_error():
    pytest.importorskip("onnx")
    with pytest.raises(TypeError, match="net: expected a bpfast.MLP"):
        export.to_onnx("net.npz")


# ---------------------------------------------------------------- ONNX

@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def run_onnx(ort, model, X):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run([export.OUTPUT_NAME], {export.INPUT_NAME: X})[0]


@pytest.mark.parametrize("activation, output, dtype, n_hidden", CASES)
def test_onnx_computes_forward(ort, activation, output, dtype, n_hidden):
    net = trained(activation, output, dtype, n_hidden)
    X = inputs(dtype)
    ref = net.forward(X)
    if output in ("sigmoid", "softmax"):    # the inputs do saturate
        SMALLEST[dtype] = min(SMALLEST.get(dtype, 1.0), float(ref.min()))
    assert_same_function(run_onnx(ort, export.to_onnx(net), X), ref, output, RTOL[dtype],
                         key=("onnx", dtype))


def test_onnx_model_signature(ort, dtype):
    import onnx
    net = trained("relu", "softmax", dtype, 2)
    model = export.to_onnx(net)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == export.OPSET
    (x,), (y,) = model.graph.input, model.graph.output
    assert (x.name, y.name) == ("X", "output")
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    for value, width in ((x, N_IN), (y, N_OUT)):
        assert value.type.tensor_type.elem_type == elem
        batch, features = value.type.tensor_type.shape.dim
        assert batch.dim_param and not batch.HasField("dim_value")
        assert features.dim_value == width
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"layers": "5,7,7,4", "activation": "relu", "output": "softmax",
                     "loss": "cross_entropy", "dtype": dtype}
    for n in (1, 37):   # the batch dimension is dynamic
        X = inputs(dtype, n)
        assert run_onnx(ort, model, X).shape == (n, N_OUT)


@pytest.mark.parametrize("dtype", ("float32", "float64"))
def test_onnx_leaky_relu_slope_is_exactly_0_01(ort, dtype):
    """Identity weights: the output is leaky_relu(x) itself, 0.01 * x bit for bit."""
    net = bpfast.MLP([3, 3, 3], activation="leaky_relu", output="identity", dtype=dtype)
    for W, b in zip(net.weights, net.biases):
        W[...], b[...] = np.eye(3), 0
    X = np.array([[-1.0, -3.7, 2.5], [-1e6, 7.0, -0.3]], dtype=dtype)
    ref = net.forward(X)
    np.testing.assert_array_equal(ref, np.where(X > 0, X, np.asarray(0.01, dtype) * X))
    np.testing.assert_array_equal(run_onnx(ort, export.to_onnx(net), X), ref, strict=True)


def test_onnx_written_atomically(ort, tmp_path, monkeypatch):
    import onnx
    net = trained("tanh", "sigmoid", "float64", 1)
    path = tmp_path / "net.onnx"
    path.write_bytes(b"old")
    model = export.to_onnx(net, path)
    assert onnx.load(str(path)) == model
    assert os.listdir(tmp_path) == ["net.onnx"]

    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        export.to_onnx(trained("relu", "identity", "float64", 1), str(path))
    assert onnx.load(str(path)) == model        # the old file is intact, no temp file left
    assert os.listdir(tmp_path) == ["net.onnx"]


# ---------------------------------------------------------------- PyTorch

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def run_torch(torch, module, X):
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("activation, output, dtype, n_hidden", CASES)
def test_torch_computes_forward_and_round_trips(torch, activation, output, dtype, n_hidden):
    nn = torch.nn
    net = trained(activation, output, dtype, n_hidden)
    module = export.to_torch(net)
    kinds = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "identity": nn.Identity,
             "leaky_relu": nn.LeakyReLU, "softmax": nn.Softmax}
    expected = [nn.Linear, kinds[activation]] * n_hidden + [nn.Linear, kinds[output]]
    assert [type(m) for m in module] == expected
    assert all(p.dtype == getattr(torch, dtype) for p in module.parameters())
    for m in module:
        if isinstance(m, nn.LeakyReLU):
            assert m.negative_slope == 0.01
        if isinstance(m, nn.Softmax):
            assert m.dim == -1
    X = inputs(dtype)
    assert_same_function(run_torch(torch, module, X), net.forward(X), output,
                         TORCH_RTOL[dtype], key=("torch", dtype))

    back = export.from_torch(module)
    assert repr(back) == repr(net)
    for a, b in zip((*back.weights, *back.biases), (*net.weights, *net.biases)):
        np.testing.assert_array_equal(a, b, strict=True)
    again = export.to_torch(back).state_dict()
    for key, value in module.state_dict().items():
        assert torch.equal(again[key], value)


def test_to_torch_copies_and_saves(torch, tmp_path):
    net = trained("relu", "softmax", "float64", 2)
    module = export.to_torch(net, tmp_path / "net.pt")
    with torch.no_grad():
        module[0].weight.zero_()
    assert np.abs(net.weights[0]).max() > 0        # a copy, not a view
    loaded = torch.load(tmp_path / "net.pt", weights_only=False)
    X = inputs("float64")
    assert_same_function(run_torch(torch, loaded, X), net.forward(X), "softmax", 1e-12)
    assert os.listdir(tmp_path) == ["net.pt"]


def test_from_torch_plain_module(torch):
    """Omitted activations are identity; bias=False is a zero bias; Softmax(dim=1) works."""
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3, bias=False),
                           nn.Softmax(dim=1)).double()
    net = export.from_torch(module)
    assert repr(net) == ("MLP(layers=[4, 6, 5, 3], activation='identity', output='softmax', "
                         "loss='cross_entropy', dtype='float64')")
    np.testing.assert_array_equal(net.biases[2], 0)
    X = inputs("float64")[:, :4]
    assert_same_function(run_torch(torch, module, X), net.forward(X), "softmax", 1e-12)
    canonical = export.to_torch(net)
    assert [type(m) for m in canonical] == [nn.Linear, nn.Identity] * 2 + [nn.Linear, nn.Softmax]
    old = list(module.state_dict().values())    # the same tensors, in order, then a zero bias
    new = list(canonical.state_dict().values())
    assert len(new) == len(old) + 1 and torch.equal(new[-1], torch.zeros(3, dtype=torch.float64))
    assert all(torch.equal(a, b) for a, b in zip(old, new))


def test_from_torch_float32_and_relu_inplace(torch):
    nn = torch.nn
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 2), nn.Sigmoid())
    net = export.from_torch(module)
    assert net.dtype == np.float32 and (net.activation, net.output) == ("relu", "sigmoid")
    assert net.loss_name == "mse"
    X = inputs("float32")[:, :3]
    assert_same_function(run_torch(torch, module, X), net.forward(X), "sigmoid", 1e-5)


def test_from_torch_loss_activation_and_seed(torch):
    nn = torch.nn
    module = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    assert export.from_torch(module).loss_name == "mse"
    net = export.from_torch(module, loss="cross_entropy", activation="tanh", seed=1)
    assert (net.loss_name, net.activation, net.layers) == ("cross_entropy", "tanh", [3, 1])
    assert export.from_torch(nn.Sequential(nn.Linear(3, 2), nn.Softmax(-1)),
                             loss="mse").loss_name == "mse"
    with pytest.raises(ValueError, match="loss"):
        export.from_torch(nn.Sequential(nn.Linear(3, 2)), loss="cross_entropy")
    with pytest.raises(ValueError, match="activation: the module's hidden activation is 'relu'"):
        export.from_torch(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)),
                          activation="tanh")
    with pytest.raises(ValueError, match="activation: expected one of"):
        export.from_torch(module, activation="softmax")


BAD_MODULES = [
    # (builder, index of the module the message names, what it says)
    (lambda nn: [nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 2)], 1, "not supported"),
    (lambda nn: [nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.Linear(4, 2)], 1, "slope"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)], 3,
     "hidden activation 'tanh' differs from 'relu'"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 2)], 2,
     "hidden activation 'identity' differs"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2)], 2, "expected in_features=4"),
    (lambda nn: [nn.Sequential(nn.Linear(3, 4)), nn.Linear(4, 2)], 0, "not supported"),
    (lambda nn: [nn.Linear(3, 4), nn.Softmax(-1), nn.Linear(4, 2)], 1, "only as the last"),
    (lambda nn: [nn.Linear(3, 4), nn.Softmax(dim=0)], 1, "over the last dimension"),
    (lambda nn: [nn.Linear(3, 4), nn.Softmax()], 1, "dim=None"),
    (lambda nn: [nn.Linear(3, 4), nn.LogSoftmax(-1)], 1, "not supported"),
    (lambda nn: [nn.ReLU(), nn.Linear(3, 4)], 0, "expected a Linear before"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 2)], 2,
     "one activation per Linear"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.LeakyReLU(0.01)], 3,
     "output activation"),
    (lambda nn: [nn.Linear(3, 4).half()], 0, "float32 or float64"),
    (lambda nn: [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2).double()], 2, "expected one dtype"),
    (lambda nn: [nn.Linear(3, 4), nn.Linear(4, 2, bias=False).requires_grad_(False)
                 .apply(lambda m: m.weight.fill_(float("nan")))], 1, "finite"),
]


@pytest.mark.parametrize("build, index, message", BAD_MODULES)
def test_from_torch_refuses_what_bpfast_cannot_compute(torch, build, index, message):
    module = torch.nn.Sequential(*build(torch.nn))
    with pytest.raises(ValueError) as info:
        export.from_torch(module)
    text = str(info.value)
    assert message in text
    assert f"module[{index}] ({module[index]!r})" in text


def test_from_torch_refuses_no_sequential_and_no_linear(torch):
    nn = torch.nn
    with pytest.raises(TypeError, match="module: expected a torch.nn.Sequential; got Linear"):
        export.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="expected at least one Linear"):
        export.from_torch(nn.Sequential())


# ---------------------------------------------------------------- scikit-learn

@pytest.fixture(scope="module")
def sk_data():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 4)) * 3
    y3 = np.array(["a", "b", "c"])[(X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)]
    return X, y3


def fitted(kind, activation, dtype, X, y):
    from bpfast.sklearn import BPClassifier, BPRegressor
    cls = BPClassifier if kind == "classifier" else BPRegressor
    est = cls(hidden_layer_sizes=(6, 5), activation=activation, max_iter=8, random_state=0,
              learning_rate_init=0.02, dtype=dtype, batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # ConvergenceWarning after 8 epochs
        return est.fit(X, y)


@pytest.mark.parametrize("activation", ("logistic", "tanh", "relu", "identity"))
@pytest.mark.parametrize("n_classes", (2, 3))
def test_to_sklearn_classifier_predicts_the_same(sk_data, dtype, activation, n_classes):
    from sklearn.neural_network import MLPClassifier
    X, y = sk_data
    y = y if n_classes == 3 else np.where(y == "a", "a", "other")
    est = fitted("classifier", activation, dtype, X, y)
    model = est.to_sklearn()
    assert type(model) is MLPClassifier
    assert (model.activation, model.solver, model.learning_rate) == (activation, est.solver,
                                                                      est.learning_rate)
    assert model.hidden_layer_sizes == (6, 5) and model.batch_size == 16
    assert model.out_activation_ == ("softmax" if n_classes == 3 else "logistic")
    for name in ("n_layers_", "n_outputs_", "n_features_in_", "n_iter_", "t_", "loss_",
                 "best_loss_", "loss_curve_"):
        assert getattr(model, name) == getattr(est, name), name
    np.testing.assert_array_equal(model.classes_, est.classes_)
    assert all(c.dtype == np.dtype(dtype) for c in (*model.coefs_, *model.intercepts_))
    Xd = X.astype(dtype)
    np.testing.assert_array_equal(model.predict(Xd), est.predict(Xd))
    got, ref = model.predict_proba(Xd), est.predict_proba(Xd)
    if n_classes == 2:      # 1 - p cancels where p is near 1, in both: held to rtol * 1
        assert_same_function(got[:, 0], ref[:, 0], "identity", RTOL[dtype])
        got, ref = got[:, 1:], ref[:, 1:]
    assert_same_function(got, ref, "softmax", RTOL[dtype], key=("sklearn", dtype))
    model.partial_fit(Xd, y)        # consistent enough to go on training in scikit-learn
    assert model.n_iter_ == 1 and model.t_ == est.t_ + len(y)    # sklearn's counting


@pytest.mark.parametrize("n_targets", (1, 2))
def test_to_sklearn_regressor_predicts_the_same(sk_data, dtype, n_targets):
    from sklearn.neural_network import MLPRegressor
    X, _ = sk_data
    y = X[:, 0] * X[:, 1] if n_targets == 1 else np.column_stack([X[:, 0] * X[:, 1], X[:, 2]])
    est = fitted("regressor", "tanh", dtype, X, y)
    model = est.to_sklearn()
    assert type(model) is MLPRegressor and model.out_activation_ == "identity"
    Xd = X.astype(dtype)
    got, ref = model.predict(Xd), est.predict(Xd)
    assert got.shape == ref.shape == y.shape
    assert_same_function(got, ref, "identity", RTOL[dtype], key=("sklearn", dtype))


def test_to_sklearn_refuses_leaky_relu_and_unfitted(sk_data):
    from sklearn.exceptions import NotFittedError

    from bpfast.sklearn import BPClassifier
    X, y = sk_data
    with pytest.raises(ValueError, match="'leaky_relu' has no scikit-learn equivalent"):
        fitted("classifier", "leaky_relu", "float64", X, y).to_sklearn()
    with pytest.raises(NotFittedError):
        BPClassifier().to_sklearn()
    with pytest.raises(TypeError, match="estimator: expected a BPClassifier or BPRegressor"):
        export.to_sklearn(bpfast.MLP([2, 1]))


@pytest.mark.parametrize("kind", ("classifier", "regressor"))
def test_to_sklearn_converts_with_skl2onnx(sk_data, ort, dtype, kind):
    skl2onnx = pytest.importorskip("skl2onnx")
    X, y = sk_data
    est = fitted(kind, "relu", dtype, X, y if kind == "classifier" else X[:, 0] * X[:, 1])
    Xd = X.astype(dtype)
    options = {"zipmap": False} if kind == "classifier" else None
    model = skl2onnx.to_onnx(est.to_sklearn(), Xd[:1], options=options)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: Xd})
    if kind == "classifier":
        np.testing.assert_array_equal(outputs[0], est.predict(Xd))
        assert_same_function(outputs[1], est.predict_proba(Xd), "softmax", RTOL[dtype])
    else:
        assert_same_function(outputs[0][:, 0], est.predict(Xd), "identity", RTOL[dtype])


# ---------------------------------------------------------------- command line

def test_cli_export_onnx_and_torch(ort, torch, tmp_path, capsys):
    net = trained("sigmoid", "softmax", "float32", 2)
    net.save(tmp_path / "net.npz")
    X = inputs("float32")
    assert cli.main(["export", str(tmp_path / "net.npz"), str(tmp_path / "net.onnx")]) == 0
    assert "net.onnx" in capsys.readouterr().out
    import onnx
    got = run_onnx(ort, onnx.load(str(tmp_path / "net.onnx")), X)
    assert_same_function(got, net.forward(X), "softmax", RTOL["float32"])
    assert cli.main(["export", str(tmp_path / "net.npz"), str(tmp_path / "net.pt")]) == 0
    module = torch.load(tmp_path / "net.pt", weights_only=False)
    assert_same_function(run_torch(torch, module, X), net.forward(X), "softmax", 1e-5)


@pytest.mark.parametrize("target, message", [
    ("net.h5", "OUTPUT: expected a file name ending in .onnx or .pt"),
    ("missing/net.onnx", "OUTPUT: no such folder"),
])
def test_cli_export_bad_output(tmp_path, capsys, target, message):
    bpfast.MLP([2, 1]).save(tmp_path / "net.npz")
    status = cli.main(["export", str(tmp_path / "net.npz"), str(tmp_path / target)])
    out, err = capsys.readouterr()
    assert status == 2 and err.count("\n") == 1 and message in err
    assert err.startswith("bpfast: error: ") and "Traceback" not in out + err


def test_cli_export_missing_library(tmp_path, capsys, monkeypatch):
    bpfast.MLP([2, 1]).save(tmp_path / "net.npz")
    monkeypatch.setitem(sys.modules, "onnx", None)
    status = cli.main(["export", str(tmp_path / "net.npz"), str(tmp_path / "net.onnx")])
    err = capsys.readouterr().err
    assert status == 2 and 'pip install "bpfast[onnx]"' in err and err.count("\n") == 1
    assert not (tmp_path / "net.onnx").exists()
