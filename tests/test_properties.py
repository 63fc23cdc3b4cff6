"""Property tests: no input crashes bpfast, corrupts a network or gives garbage.

Hypothesis draws the arguments of every public entry point that takes data or
files -- ``MLP(...)``, ``forward``, ``predict``, ``loss``, ``evaluate``,
``gradients``, ``sgd_step``, ``fit``, ``trace``, ``gradcheck``, ``save`` and
``load`` -- from random layer specs and names, shapes, dtypes (bool, int,
float16/32/64, complex, object, str, datetime, structured), layouts (strided,
Fortran, reversed, zero-stride, byte-swapped, read-only, zero-size), NaN and
infinity, huge and tiny values.  What is checked is docs/design.md's "Errors"
contract:

* the outcome is a result or a ValueError/TypeError -- never another
  exception, a crash or a hang.  ``DivergenceError`` (a FloatingPointError)
  is the documented outcome of a training call (fit, sgd_step) whose loss
  overflows, and is accepted from those two only, with the parameters restored;
* a rejected call leaves the network bit-identical: parameters, momentum
  buffer and shuffling generator;
* inputs are never written, read-only inputs work, and the layout or encoding
  of the same values never changes a result (bit for bit);
* results agree with the plain-NumPy oracle in ``tests/reference.py``;
* every bpfast.optim rule, with any valid hyperparameters, makes torch.optim's
  update (written out in NumPy below, as an oracle independent of torch), and
  fit/step with any optimizer, batch size, thread count and schedule give a
  finite result or a clear error that changed neither the network nor the
  optimizer's state.

The profile "ci" (registered here and used by default) keeps the file to
seconds; ``BPFAST_HYPOTHESIS_PROFILE=dev`` explores a hundred times more.
"""

import copy
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import bpfast  # noqa: E402
from conftest import HYPOTHESIS_PROFILE, RTOL  # noqa: E402
from reference import ReferenceMLP  # noqa: E402

PROFILE = settings.get_profile(HYPOTHESIS_PROFILE)   # registered in conftest.py

HIDDEN = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
OUTPUTS = ("sigmoid", "softmax", "identity", "tanh", "relu")
INITS = ("auto", "xavier", "he", "normal", "scaled_normal")
DTYPES = ("float32", "float64")
DATA_ENTRY_POINTS = ("forward", "predict", "loss", "evaluate", "gradients", "sgd_step",
                     "fit", "trace", "gradcheck")
TRAINING = ("sgd_step", "fit")
INPUT_ONLY = ("forward", "predict")          # these take no targets
# Exactly representable in float16, float32 and float64: conversions are exact.
GRID = tuple(k / 4 for k in range(-8, 9))
EXTREMES = (0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, -1e-300, 1e-40,
            1e-30, 1.0, -1.0, 65504.0, 1e30, -1e30, 3.4028234663852886e38, 1e39, -1e39,
            1e150, -1e150, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308)


# ---------------------------------------------------------------- helpers

def state_of(net):
    """Everything a call could change: parameters, momentum buffer, generator."""
    return (net._params.dtype.str, net._params.tobytes(), net._velocity.tobytes(),
            repr(net._rng.bit_generator.state))


def copy_input(value):
    """A deep copy of an argument, to prove later that the call did not write it."""
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


def assert_unchanged_input(before, after):
    """Arrays and (nested) lists are compared; other objects are opaque or immutable."""
    if isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray)
        assert before.dtype == after.dtype and before.shape == after.shape
        if before.dtype.kind in "fc":
            np.testing.assert_array_equal(before, after)      # NaN == NaN here
        elif before.dtype.kind != "O":
            assert before.tobytes() == after.tobytes()
    elif isinstance(before, list):
        assert repr(before) == repr(after)


def make_net(spec):
    return bpfast.MLP(**spec)


def reference_of(net):
    return ReferenceMLP.like(net, net.activation, net.output, net.loss_name)


def expected_target_rows(Y, n_samples, n_out):
    """The float64 target rows that valid targets Y stand for."""
    Y = np.asarray(Y)
    if Y.dtype.kind in "biu" and Y.ndim <= 1:
        labels = Y.reshape(-1).astype(np.int64)
        return labels.reshape(-1, 1).astype(np.float64) if n_out == 1 else np.eye(n_out)[labels]
    return np.asarray(Y, dtype=np.float64).reshape(n_samples, n_out)


def invoke(net, entry, X, Y, **kw):
    """Call one public entry point and return what it returned.

    Training entry points run on the network itself (callers pass a copy when
    they need the original).  Nothing else happens here, so that an exception
    seen by the caller is always bpfast's.
    """
    if entry == "forward":
        return net.forward(X)
    if entry == "predict":
        return net.predict(X)
    if entry == "loss":
        return net.loss(X, Y)
    if entry == "evaluate":
        return net.evaluate(X, Y)
    if entry == "gradients":
        return net.gradients(X, Y)
    if entry == "sgd_step":
        return net.sgd_step(X, Y, kw.get("lr", 0.1))
    if entry == "fit":
        return net.fit(X, Y, epochs=kw.get("epochs", 2), lr=kw.get("lr", 0.1),
                       batch_size=kw.get("batch_size", 2), shuffle=True, seed=0,
                       momentum=kw.get("momentum", 0.5), progress=False)
    if entry == "trace":
        tr = net.trace(X, Y, lr=kw.get("lr", 0.5))
        return tr, str(tr), repr(tr)
    if entry == "gradcheck":
        return bpfast.gradcheck(net, X, Y, eps=kw.get("eps", 1e-5))
    raise AssertionError(entry)


def as_list(net, entry, raw):
    """A successful call's result as a list of arrays and scalars, for comparisons
    bit for bit between calls with different encodings of the same data."""
    if entry == "predict":
        return [np.asarray(raw)]
    if entry == "evaluate":
        return [np.array(sorted(raw)), np.array([raw[k] for k in sorted(raw)])]
    if entry == "gradients":
        return list(raw[0]) + list(raw[1])
    if entry == "sgd_step":
        return [raw, net._params.copy()]
    if entry == "fit":
        return [np.array(raw["loss"]), np.array(raw["accuracy"]), net._params.copy(),
                net._velocity.copy()]
    if entry == "trace":
        tr, text, _ = raw
        new = (tr.new_weights or []) + (tr.new_biases or [])
        return [tr.loss, text, *tr.z, *tr.a, *tr.delta, *tr.grad_w, *tr.grad_b, *new]
    return [raw]


def for_entry(entry, X, Y):
    """trace() takes one sample: the first of a batch (kept as a batch of one)."""
    if entry == "trace" and np.ndim(X) == 2:
        return X[:1], Y[:1]
    return X, Y


def assert_same_results(expected, actual):
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        e, a = np.asarray(e), np.asarray(a)
        assert e.dtype == a.dtype and e.shape == a.shape, (e, a)
        np.testing.assert_array_equal(a, e, strict=True)


def check_result_form(net, entry, X, result):
    """Types, shapes, dtypes and value ranges any successful call must have."""
    single = np.asarray(X).ndim == 1
    n_out = net.layers[-1]
    if entry == "forward":
        (out,) = result
        assert isinstance(out, np.ndarray) and out.dtype == net.dtype
        assert out.shape == ((n_out,) if single else (np.asarray(X).shape[0], n_out))
        assert not np.shares_memory(out, net._params)
        finite = out[np.isfinite(out)]
        if net.output in ("sigmoid", "softmax"):
            assert np.all((finite >= 0) & (finite <= 1))
        elif net.output == "tanh":
            assert np.all((finite >= -1) & (finite <= 1))
        elif net.output == "relu":
            assert np.all(finite >= 0)
    elif entry == "predict":
        (classes,) = result
        assert classes.dtype == np.int64
        assert np.all((classes >= 0) & (classes < max(n_out, 2)))
    elif entry in ("loss", "sgd_step"):
        assert isinstance(result[0], float)
    elif entry == "gradients":
        shapes = [W.shape for W in net.weights] + [b.shape for b in net.biases]
        assert [g.shape for g in result] == shapes
        for g in result:
            assert g.dtype == net.dtype and not np.shares_memory(g, net._params)
    elif entry == "gradcheck":
        assert isinstance(result[0], float)


ALLOWED = (ValueError, TypeError)


def call_and_check(net, entry, X, Y, **kw):
    """Run one call and check the contract whatever happens.

    Returns the result list, or the exception it raised (an allowed one).
    """
    before = state_of(net)
    inputs = (copy_input(X), copy_input(Y))
    try:
        raw = invoke(net, entry, X, Y, **kw)
    except ALLOWED as exc:
        assert state_of(net) == before, f"{entry} raised {exc!r} but changed the network"
        assert str(exc)
        outcome = exc
    except bpfast.DivergenceError as exc:
        assert entry in TRAINING, f"{entry} raised {exc!r}"
        if entry == "sgd_step" or kw.get("epochs", 2) == 1:
            assert state_of(net)[:3] == before[:3], "parameters were not restored"
        assert bpfast._dispatch.kernel.all_finite(net._params)
        outcome = exc
    else:
        if entry not in TRAINING:
            assert state_of(net) == before, f"{entry} changed the network"
        result = as_list(net, entry, raw)
        check_result_form(net, entry, X, result)
        if entry == "trace":
            assert "Backpropagation" in raw[1] and "Trace" in raw[2]
        outcome = result
    assert_unchanged_input(inputs[0], X)
    assert_unchanged_input(inputs[1], Y)
    return outcome


# ---------------------------------------------------------------- strategies

@st.composite
def net_specs(draw, max_width=5, max_depth=3, dtypes=DTYPES, hidden=HIDDEN, outputs=OUTPUTS):
    layers = draw(st.lists(st.integers(1, max_width), min_size=2, max_size=max_depth + 1))
    output = draw(st.sampled_from(outputs))
    losses = ["mse", "cross_entropy"] if output in ("softmax", "sigmoid") else ["mse"]
    return dict(layers=layers, activation=draw(st.sampled_from(hidden)), output=output,
                loss=draw(st.sampled_from(losses)), dtype=draw(st.sampled_from(dtypes)),
                init=draw(st.sampled_from(INITS)), seed=draw(st.integers(0, 2**32 - 1)))


@st.composite
def valid_targets(draw, n, n_out, loss, single=False):
    """Targets in every accepted form: labels, rows, one-hot rows, float vectors."""
    kinds = ["labels", "rows"] + (["vector"] if n_out == 1 else [])
    kind = draw(st.sampled_from(kinds))
    low = 0.0 if loss == "cross_entropy" else -2.0
    values = [g for g in GRID if g >= low and (loss == "mse" or g <= 1)]
    if kind == "labels":
        labels = np.array(draw(st.lists(st.integers(0, max(n_out, 2) - 1), min_size=n,
                                        max_size=n)), dtype=np.int64)
        return labels[0] if single else labels
    if kind == "vector":
        vec = np.array(draw(st.lists(st.sampled_from(values), min_size=n, max_size=n)))
        return vec[0] if single else vec
    rows = np.array(draw(st.lists(st.sampled_from(values), min_size=n * n_out,
                                  max_size=n * n_out))).reshape(n, n_out)
    return rows[0] if single else rows


@st.composite
def problems(draw, max_samples=6, **spec_kw):
    """(spec, X, Y): a network spec and valid data for it, one sample or a batch."""
    spec = draw(net_specs(**spec_kw))
    n0, n_out = spec["layers"][0], spec["layers"][-1]
    single = draw(st.booleans())
    n = 1 if single else draw(st.integers(1, max_samples))
    X = np.array(draw(st.lists(st.sampled_from(GRID), min_size=n * n0, max_size=n * n0)))
    X = X.reshape(n0) if single else X.reshape(n, n0)
    Y = draw(valid_targets(n, n_out, spec["loss"], single=single))
    return spec, X, Y


def encodings(values, net_dtype):
    """The same numbers in every layout and dtype bpfast must accept, read-only included."""
    values = np.asarray(values)
    kept = net_dtype if values.dtype.kind == "f" else np.int64      # labels stay integers
    out = {"reference": np.array(values, dtype=kept, order="C")}
    if values.dtype.kind == "f":
        for dt in (np.float16, np.float32, np.float64):
            out[np.dtype(dt).name] = values.astype(dt)
    else:
        for dt in (np.int8, np.uint8, np.int32, np.int64, np.uint64):
            out[np.dtype(dt).name] = values.astype(dt)
        if values.size and values.min() >= 0 and values.max() <= 1:
            out["bool"] = values.astype(bool)
    base = values if values.dtype.kind != "f" else values.astype(net_dtype)
    if base.ndim:
        out["list"] = base.tolist()
        out["fortran"] = np.asfortranarray(base)
        big = np.zeros(tuple(3 * s for s in base.shape), dtype=base.dtype)
        view = big[tuple(slice(None, None, 3) for _ in base.shape)]
        view[...] = base
        out["strided"] = view
        out["reversed"] = np.flip(np.flip(base).copy())
        out["byteswapped"] = base.astype(base.dtype.newbyteorder())
        if base.ndim == 2 and base.shape[0] > 0 and np.all(base == base[:1]):
            out["zero-stride"] = np.broadcast_to(base[0], base.shape)
    else:
        out["python scalar"] = base.item()
    readonly = base.copy()
    readonly.setflags(write=False)
    out["read-only"] = readonly
    ro_strided = out.get("strided", base.copy())
    if isinstance(ro_strided, np.ndarray):
        ro_strided = ro_strided.view()
        ro_strided.setflags(write=False)
        out["read-only strided"] = ro_strided
    return out


# ---------------------------------------------------------------- valid data


@PROFILE
@given(problem=problems(), entry=st.sampled_from(DATA_ENTRY_POINTS), data=st.data())
def test_every_layout_and_encoding_gives_the_same_result(problem, entry, data):
    """Layout, dtype (exact conversions), read-only: bit-identical results, inputs unwritten."""
    spec, X, Y = problem
    X, Y = for_entry(entry, X, Y)
    net = make_net(spec)
    kw = {}
    if entry == "fit":
        kw = dict(batch_size=data.draw(st.integers(1, 4)),
                  momentum=data.draw(st.sampled_from([0.0, 0.9])))
    if entry in TRAINING:
        expected = call_and_check(copy.deepcopy(net), entry, X, Y, **kw)
    else:
        expected = call_and_check(net, entry, X, Y, **kw)
    assert not isinstance(expected, Exception), f"valid data rejected: {expected!r}"
    x_forms = encodings(X, net.dtype)
    y_forms = encodings(Y, net.dtype)
    for name in sorted(x_forms):
        x_form = x_forms[name]
        y_form = y_forms.get(name, y_forms["read-only"])
        target = copy.deepcopy(net) if entry in TRAINING else net
        result = call_and_check(target, entry, x_form, y_form, **kw)
        assert not isinstance(result, Exception), f"{name} input rejected: {result!r}"
        assert_same_results(expected, result)
    for name in sorted(y_forms):
        target = copy.deepcopy(net) if entry in TRAINING else net
        result = call_and_check(target, entry, x_forms["read-only"], y_forms[name], **kw)
        assert not isinstance(result, Exception), f"{name} targets rejected: {result!r}"
        assert_same_results(expected, result)
    if X.ndim == 2:     # zero strides: every row is the first (np.broadcast_to, read-only)
        broadcast = np.broadcast_to(X[:1], X.shape)
        target = copy.deepcopy(net) if entry in TRAINING else net
        copied = call_and_check(target, entry, np.array(broadcast), Y, **kw)
        target = copy.deepcopy(net) if entry in TRAINING else net
        assert_same_results(copied, call_and_check(target, entry, broadcast, Y, **kw))


def _off_relu_kinks(net, X):
    """False when some pre-activation is so close to (but not at) a relu kink that
    float32 and float64 could disagree on its side."""
    if "relu" not in (net.activation, net.output) and "leaky_relu" != net.activation:
        return True
    z = reference_of(net).pre_activations(np.atleast_2d(X))
    scale = 1.0 + np.max(np.abs(z))
    return not np.any((z != 0) & (np.abs(z) < 1e-5 * scale))


@PROFILE
@given(problem=problems())
def test_results_agree_with_the_numpy_reference(problem):
    """forward, predict, loss, evaluate, gradients, trace against tests/reference.py."""
    spec, X, Y = problem
    net = make_net(spec)
    ref = reference_of(net)
    assume(_off_relu_kinks(net, X))
    tol = RTOL[spec["dtype"]]
    X2 = np.atleast_2d(X)
    n, n_out = X2.shape[0], spec["layers"][-1]
    rows = expected_target_rows(Y, n, n_out)
    Y2 = rows

    def close(actual, expected):
        expected = np.asarray(expected, dtype=np.float64)
        scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
        np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected,
                                   rtol=tol, atol=tol * scale)

    out = net.forward(X)
    close(out, ref.forward(X2)[0] if np.ndim(X) == 1 else ref.forward(X2))
    ref_loss = ref.loss(X2, Y2)
    close(net.loss(X, Y), ref_loss)
    result = net.evaluate(X, Y)
    close(result["loss"], ref_loss)
    classification = np.asarray(Y).dtype.kind in "iu" or np.all(
        (rows == 0) | (rows == 1)) and (n_out == 1 or np.all(rows.sum(axis=1) == 1))
    assert ("accuracy" in result) == bool(classification)
    if "accuracy" in result:
        predicted = np.atleast_1d(net.predict(X))
        truth = rows[:, 0] if n_out == 1 else rows.argmax(axis=1)
        assert result["accuracy"] == np.mean(predicted == truth)
    ref_w, ref_b = ref.gradients(X2, Y2)
    assume(all(np.all(np.isfinite(g)) for g in ref_w + ref_b))   # oracle's -y/a overflow
    grad_w, grad_b = net.gradients(X, Y)
    for g, r in zip(grad_w + grad_b, ref_w + ref_b):
        close(g, r)
    if n == 1:
        tr = net.trace(X2[0], Y if np.ndim(X) == 1 else np.asarray(Y)[0])
        close(tr.loss, ref_loss)
        for g, r in zip(tr.grad_w + tr.grad_b, grad_w + grad_b):
            np.testing.assert_array_equal(g, r, strict=True)
        np.testing.assert_array_equal(tr.a[-1], np.atleast_2d(out)[0], strict=True)


@PROFILE
@given(problem=problems(), lr=st.sampled_from([1e-3, 0.1, 1.0]))
def test_sgd_step_and_fit_follow_the_gradient(problem, lr):
    """sgd_step: p -= lr * gradients(), returns the loss before; one full-batch
    fit epoch without shuffling is the same step, bit for bit."""
    spec, X, Y = problem
    net = make_net(spec)
    tol = RTOL[spec["dtype"]]
    loss_before = net.loss(X, Y)
    grad_w, grad_b = net.gradients(X, Y)
    stepped = copy.deepcopy(net)
    try:
        loss = stepped.sgd_step(X, Y, lr)
    except bpfast.DivergenceError:
        assert state_of(stepped) == state_of(net)
        return
    assert loss == loss_before
    for new, old, g in zip(stepped.weights + stepped.biases, net.weights + net.biases,
                           grad_w + grad_b):
        expected = old.astype(np.float64) - lr * g.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(new, expected, rtol=tol, atol=tol * scale)
    fitted = copy.deepcopy(net)
    n = np.atleast_2d(X).shape[0]
    hist = fitted.fit(X, Y, epochs=1, lr=lr, batch_size=n, shuffle=False, progress=False)
    assert hist["loss"] == [loss]
    np.testing.assert_array_equal(fitted._params, stepped._params, strict=True)


@PROFILE
@given(problem=problems(max_samples=3, dtypes=("float64",), hidden=("sigmoid", "tanh"),
                        outputs=("sigmoid", "softmax", "identity", "tanh")),
       eps=st.sampled_from([1e-6, 1e-5, 1e-4]))
def test_gradcheck_confirms_the_gradients_of_smooth_networks(problem, eps):
    spec, X, Y = problem
    assume(spec["init"] != "normal")          # N(0, 1) weights saturate: tiny gradients
    net = make_net(spec)
    before = state_of(net)
    error = bpfast.gradcheck(net, X, Y, eps=eps)
    assert isinstance(error, float) and 0.0 <= error < 1e-3
    assert state_of(net) == before


# ---------------------------------------------------------------- extreme values

@PROFILE
@given(problem=problems(), entry=st.sampled_from(DATA_ENTRY_POINTS), data=st.data())
def test_huge_and_tiny_values_give_a_result_or_a_clear_error(problem, entry, data):
    """Finite extremes (denormals, 1e300, float32/float16 limits) in X and real targets."""
    spec, X, Y = problem
    X, Y = for_entry(entry, X, Y)
    net = make_net(spec)
    extreme = st.sampled_from(EXTREMES)
    X = np.array(data.draw(st.lists(extreme, min_size=X.size, max_size=X.size))).reshape(
        X.shape)
    if np.asarray(Y).dtype.kind == "f" and spec["loss"] == "mse":
        Y = np.array(data.draw(st.lists(extreme, min_size=np.size(Y), max_size=np.size(Y)))
                     ).reshape(np.shape(Y))
    lr = data.draw(st.sampled_from([1e-300, 1e-3, 1.0, 1e30, 1e300]))
    outcome = call_and_check(net, entry, X, Y, lr=lr, epochs=1)
    if isinstance(outcome, (ValueError, TypeError)):
        # Only a finite value that overflows the network's dtype may be refused.
        f32_max = float(np.finfo(np.float32).max)
        too_big = np.max(np.abs(X)) > f32_max or (
            np.asarray(Y).dtype.kind == "f" and np.max(np.abs(Y)) > f32_max)
        assert spec["dtype"] == "float32" and too_big, outcome
        assert "after conversion to float32" in str(outcome)


# ---------------------------------------------------------------- invalid data

def _with_non_finite(arr, index, value):
    arr = np.array(arr, dtype=np.float64)
    arr.reshape(-1)[index % arr.size] = value
    return arr


@PROFILE
@given(problem=problems(), entry=st.sampled_from(DATA_ENTRY_POINTS), data=st.data())
def test_nan_and_infinity_are_rejected_before_anything_changes(problem, entry, data):
    spec, X, Y = problem
    X, Y = for_entry(entry, X, Y)
    net = make_net(spec)
    bad = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    index = data.draw(st.integers(0, 10**6))
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]))
    in_x = (data.draw(st.booleans()) or np.asarray(Y).dtype.kind != "f"
            or entry in INPUT_ONLY)
    if in_x:
        X = _with_non_finite(X, index, bad).astype(dtype)
    else:
        Y = _with_non_finite(Y, index, bad).astype(dtype)
    if data.draw(st.booleans()):
        for arr in (X, Y):
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)
    outcome = call_and_check(net, entry, X, Y)
    assert isinstance(outcome, ValueError), outcome
    assert str(outcome).startswith(("X:", "x:") if in_x else ("Y:", "y:")), outcome


@PROFILE
@given(problem=problems(), entry=st.sampled_from(DATA_ENTRY_POINTS),
       which=st.sampled_from(["X", "Y"]), data=st.data())
def test_values_that_are_not_real_numbers_are_rejected(problem, entry, which, data):
    """complex, object, str, bytes, datetime, structured arrays and non-arrays."""
    spec, X, Y = problem
    X, Y = for_entry(entry, X, Y)
    net = make_net(spec)
    if entry in INPUT_ONLY:
        which = "X"
    shape = np.shape(X if which == "X" else Y)
    bad = data.draw(st.sampled_from([
        np.zeros(shape, dtype=np.complex128), np.ones(shape, dtype=np.complex64),
        np.ones(shape, dtype=object), np.full(shape, "1", dtype="U1"),
        np.full(shape, b"1", dtype="S1"), np.zeros(shape, dtype="datetime64[s]"),
        np.zeros(shape, dtype="timedelta64[ms]"), np.zeros(shape, dtype=[("a", "f8")]),
        np.zeros(shape, dtype="V8"), None, "abc", b"abc", {"x": 1}, {1.0, 2.0}, object(),
        1j, [[1.0, 2.0], [1.0]], [None, 1.0], Fraction(1, 3),
    ]))
    if which == "X":
        X = bad
    else:
        Y = bad
    outcome = call_and_check(net, entry, X, Y)
    assert isinstance(outcome, (ValueError, TypeError)), outcome


@st.composite
def bad_shapes(draw, n, n0, n_out, which=None):
    """(which, shape): a shape no entry point may accept for X or for Y."""
    which = which or draw(st.sampled_from(["X", "Y"]))
    if which == "X":
        shape = draw(st.sampled_from([(), (0, n0), (n, n0 + 1), (n, n0, 1), (n0 + 1,),
                                      (1, 1, n0), (n, 0), (0,)]))
        return which, shape
    shape = draw(st.sampled_from([(n + 1,), (n + 1, n_out), (n, n_out + 1), (n, n_out, 1),
                                  (0,), (0, n_out), (n, 0)]))
    return which, shape


@PROFILE
@given(problem=problems(), entry=st.sampled_from(DATA_ENTRY_POINTS), data=st.data())
def test_wrong_shapes_and_labels_are_rejected(problem, entry, data):
    spec, X, Y = problem
    X, Y = for_entry(entry, X, Y)
    net = make_net(spec)
    n0, n_out = spec["layers"][0], spec["layers"][-1]
    X = np.atleast_2d(X)
    n = X.shape[0]
    Y = np.atleast_1d(Y)
    if Y.ndim == 1 and Y.dtype.kind == "f" and n_out > 1:    # one sample's target row
        Y = Y.reshape(1, n_out)
    kind = "shape" if entry in INPUT_ONLY else data.draw(st.sampled_from(["shape", "label"]))
    if kind == "shape":
        which, shape = data.draw(bad_shapes(n, n0, n_out))
        if entry in INPUT_ONLY:
            which, shape = "X", data.draw(bad_shapes(n, n0, n_out, which="X"))[1]
        dtype = data.draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
        bad = np.zeros(shape, dtype=dtype)
        if which == "X":
            X = bad
        else:
            Y = bad
    else:
        label = data.draw(st.sampled_from([-1, -(2**63), max(n_out, 2), 2**40, 2**64 - 1]))
        dtype = np.uint64 if label >= 2**63 else np.int64
        Y = np.zeros(n, dtype=dtype)
        Y[data.draw(st.integers(0, n - 1))] = label
        if data.draw(st.booleans()) and n_out > 1:         # or float labels
            Y = np.zeros(n, dtype=np.float64)
    outcome = call_and_check(net, entry, X, Y)
    assert isinstance(outcome, (ValueError, TypeError)), outcome


# ---------------------------------------------------------------- scalar arguments

# Anything a caller might pass where a number or flag is expected.
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-2**64, 2**64), st.sampled_from([10**400, -10**400]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.binary(max_size=2), st.complex_numbers(max_magnitude=1e3), st.fractions(max_denominator=9),
    st.decimals(allow_nan=True, places=2), st.sampled_from([
        np.float32(0.1), np.float16(np.inf), np.int8(-3), np.uint64(2**64 - 1), np.bool_(True),
        np.array(0.1), np.array([0.1, 0.2]), [0.1], (0.1,), object(), np.longdouble("1e400"),
    ]))


def _small_ints(low, high):
    return st.one_of(st.integers(low, high), JUNK.filter(
        lambda v: not (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                       and v > high)))


@PROFILE
@given(problem=problems(), data=st.data())
def test_fit_arguments_give_a_result_or_a_clear_error(problem, data):
    spec, X, Y = problem
    net = make_net(spec)
    kw = dict(
        epochs=data.draw(_small_ints(-1, 2)),
        lr=data.draw(st.one_of(st.floats(1e-6, 10.0), JUNK)),
        batch_size=data.draw(st.one_of(st.integers(-1, 10), JUNK)),
        shuffle=data.draw(st.one_of(st.booleans(), JUNK)),
        seed=data.draw(st.one_of(st.none(), st.integers(0, 2**70), JUNK)),
        momentum=data.draw(st.one_of(st.sampled_from([0.0, 0.5, 0.99]), JUNK)),
        nesterov=data.draw(st.one_of(st.booleans(), JUNK)),
        weight_decay=data.draw(st.one_of(st.sampled_from([0.0, 1e-3]), JUNK)),
        validation_data=data.draw(st.one_of(st.none(), st.just((X, Y)), st.tuples(JUNK, JUNK),
                                            JUNK)),
        progress=data.draw(st.one_of(st.just(False), JUNK)),
        callbacks=data.draw(st.one_of(st.just(()), st.just([lambda epoch, logs: None]),
                                      st.just(lambda epoch, logs: False), JUNK)),
        n_threads=data.draw(st.one_of(st.integers(-1, 4), _small_ints(1, 1024))),
    )
    before = state_of(net)
    try:
        hist = net.fit(X, Y, **kw)
    except ALLOWED as exc:
        assert state_of(net) == before, f"fit raised {exc!r} but changed the network"
        return
    except bpfast.DivergenceError:
        assert bpfast._dispatch.kernel.all_finite(net._params)
        return
    assert 1 <= len(hist) <= kw["epochs"]
    assert net.history is hist
    assert bpfast._dispatch.kernel.all_finite(net._params)


@PROFILE
@given(problem=problems(max_samples=3), entry=st.sampled_from(["sgd_step", "trace", "gradcheck"]),
       value=st.one_of(st.floats(1e-8, 1e-2), JUNK))
def test_step_sizes_give_a_result_or_a_clear_error(problem, entry, value):
    """sgd_step(lr=), trace(lr=), gradcheck(eps=) with any value."""
    spec, X, Y = problem
    X, Y = for_entry(entry, X, Y)
    net = make_net(spec)
    outcome = call_and_check(net, entry, X, Y, lr=value, eps=value)
    if entry == "gradcheck" and not isinstance(outcome, Exception):
        assert 0.0 <= outcome[0] <= 2.0 or np.isnan(outcome[0])


# ---------------------------------------------------------------- construction

# Layer sizes: small, invalid, or so large that no machine holds the network
# (2**37 neighbours already need 2**41 bytes; 2**40 neighbours overflow int64).
SIZE = st.one_of(st.integers(-3, 6), st.sampled_from([True, False, 2.0, "3", None, np.int64(2),
                                                      np.uint8(3), np.float64(2.0), [2]]))
HUGE = st.one_of(st.integers(2**37, 2**70), st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30]))


@st.composite
def layer_lists(draw):
    sizes = draw(st.lists(SIZE, min_size=0, max_size=5))
    for _ in range(draw(st.integers(0, 2)) if sizes else 0):
        sizes[draw(st.integers(0, len(sizes) - 1))] = draw(HUGE)
    container = draw(st.sampled_from([list, tuple, np.array, iter]))
    if container is np.array:
        try:
            return np.array(sizes)
        except (ValueError, TypeError):
            return sizes
    return container(sizes)


NAME = st.one_of(st.sampled_from(HIDDEN + OUTPUTS + ("mse", "cross_entropy") + INITS),
                 st.text(max_size=12), JUNK)
DTYPE_ARG = st.one_of(
    st.sampled_from(["float32", "float64", "f4", "f8", "d", "float", np.float32, np.float64,
                     np.dtype("float32"), np.dtype(">f8"), "float16", "int64", "complex128",
                     np.int32, float, int, "f8,f8", "(2)f8", "O", "U3", "M8[s]", "f8,,f8",
                     ",", "i4,,", "(1,", "[", {"names": 1}, [("a",)]]),
    st.text(max_size=8), JUNK)


@settings(PROFILE, max_examples=PROFILE.max_examples * 4)
@given(layers=st.one_of(layer_lists(), JUNK), activation=NAME, output=NAME, loss=NAME,
       init=NAME, dtype=DTYPE_ARG, seed=st.one_of(st.none(), st.integers(-5, 2**80), JUNK))
@example(layers=[3, 4, 2], activation="tanh", output="softmax", loss="cross_entropy",
         init="he", dtype="float32", seed=0)
@example(layers=[1, 2**40, 1], activation="relu", output="identity", loss="mse",
         init="auto", dtype="float64", seed=None)
@example(layers=[2**40, 2**40], activation="relu", output="identity", loss="mse",
         init="auto", dtype="float64", seed=None)
@example(layers=[2, 2], activation="relu", output="identity", loss="mse",
         init="auto", dtype="f8,,f8", seed=None)
def test_construction_gives_a_network_or_a_clear_error(layers, activation, output, loss, init,
                                                       dtype, seed):
    try:
        net = bpfast.MLP(layers, activation=activation, output=output, loss=loss,
                         dtype=dtype, init=init, seed=seed)
    except ALLOWED as exc:
        assert str(exc)
        return
    sizes = net.layers
    assert len(sizes) >= 2 and all(type(n) is int and n >= 1 for n in sizes)
    assert net.n_params == sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    assert net.dtype in (np.float32, np.float64)
    assert (net.activation, net.output, net.loss_name) == (activation, output, loss)
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        assert W.shape == (sizes[l + 1], sizes[l]) and b.shape == (sizes[l + 1],)
        assert W.dtype == net.dtype and W.flags.writeable and np.shares_memory(W, net._params)
        assert np.all(np.isfinite(W)) and np.all(np.isfinite(b))
    x = np.zeros(sizes[0])
    assert net.forward(x).shape == (sizes[-1],)


# ---------------------------------------------------------------- files

FILE_NAME = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"),
    min_size=1, max_size=24).filter(
        lambda s: s not in (".", "..") and len(s.encode("utf-8")) < 200)


@PROFILE
@given(spec=net_specs(max_width=6), name=FILE_NAME,
       path_type=st.sampled_from([str, Path]), steps=st.integers(0, 2))
def test_save_then_load_gives_back_the_same_network(spec, name, path_type, steps):
    net = make_net(spec)
    rng = np.random.default_rng(spec["seed"])
    for _ in range(steps):
        X = rng.normal(size=(4, spec["layers"][0]))
        net.sgd_step(X, rng.integers(0, max(spec["layers"][-1], 2), size=4), 0.1)
    before = state_of(net)
    with tempfile.TemporaryDirectory() as folder:
        path = path_type(os.path.join(folder, name))
        net.save(path)
        assert os.listdir(folder) == [name]              # exactly that path, no temp left
        loaded = bpfast.load(path)
    assert state_of(net) == before
    assert loaded.layers == net.layers and loaded.dtype == net.dtype
    assert (loaded.activation, loaded.output, loaded.loss_name) == \
        (net.activation, net.output, net.loss_name)
    np.testing.assert_array_equal(loaded._params, net._params, strict=True)
    x = rng.normal(size=spec["layers"][0])
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x), strict=True)


@PROFILE
@given(path=st.one_of(JUNK, FILE_NAME, st.sampled_from(["", ".", "nowhere/x.npz", "a\0b"])),
       content=st.one_of(st.none(), st.binary(max_size=64),
                         st.sampled_from([b"PK\x05\x06" + b"\0" * 18, b"\x93NUMPY"])))
def test_load_of_any_path_is_a_network_or_a_clear_error(path, content):
    """Junk, missing, empty, folder and garbage paths: TypeError, OSError
    (FileNotFoundError for a missing path) or ModelFormatError -- nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        if isinstance(path, str) and "\0" not in path:
            path = os.path.join(folder, path)
            if content is not None and not os.path.exists(path) \
                    and os.path.isdir(os.path.dirname(path)):
                Path(path).write_bytes(content)
        try:
            bpfast.load(path)
        except (TypeError, OSError, bpfast.ModelFormatError):
            pass                # OSError: missing (FileNotFoundError), a folder, unreadable
        except ValueError as exc:              # only for a path with a NUL character
            assert "\0" in os.fsdecode(path) if isinstance(path, (str, bytes)) else False, exc


# ---------------------------------------------------------------- regressions

@pytest.mark.parametrize("layers", [[2**40, 2**40], [2**62, 2], [1, 2**32, 2**32, 1]])
def test_layers_beyond_the_address_space_are_a_value_error(layers):
    """Once an OverflowError from building the layout's intp array."""
    with pytest.raises(ValueError, match="layers"):
        bpfast.MLP(layers)


@pytest.mark.parametrize("entry", ["fit", "sgd_step", "trace", "gradcheck"])
def test_a_huge_integer_learning_rate_is_a_value_error(entry):
    """Once an OverflowError from float(10**400) in check_real."""
    net = bpfast.MLP([2, 2], seed=0)
    X, Y = np.ones((1, 2)), np.array([1])
    before = state_of(net)
    with pytest.raises(ValueError, match="lr|eps"):
        if entry == "fit":
            net.fit(X, Y, lr=10**400, progress=False)
        else:
            invoke(net, entry, X, Y, lr=10**400, eps=10**400)
    assert state_of(net) == before


@pytest.mark.parametrize("dtype", ["f8,,f8", ",", "i4,,"])
def test_a_dtype_string_numpy_cannot_parse_is_a_value_error(dtype):
    """Once a SyntaxError from np.dtype()."""
    with pytest.raises(ValueError, match="dtype"):
        bpfast.MLP([2, 2], dtype=dtype)


def test_save_and_load_accept_a_bytes_path(tmp_path):
    net = bpfast.MLP([2, 3, 1], seed=0)
    path = os.fsencode(tmp_path / "model.npz")
    net.save(path)
    np.testing.assert_array_equal(bpfast.load(path)._params, net._params, strict=True)


# ---------------------------------------------------------------- optimizers

from bpfast import optim  # noqa: E402

# Valid hyperparameters of every optimizer, drawn per rule.
OPTIMIZER_ARGS = {
    optim.SGD: dict(momentum=st.sampled_from([0.0, 0.5, 0.9]),
                    dampening=st.sampled_from([0.0, 0.3]),
                    weight_decay=st.sampled_from([0.0, 0.01])),
    optim.Adam: dict(betas=st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.0)]),
                     eps=st.sampled_from([1e-8, 1e-3]), weight_decay=st.sampled_from([0.0, 0.1]),
                     amsgrad=st.booleans()),
    optim.AdamW: dict(weight_decay=st.sampled_from([0.0, 0.01, 0.5]), amsgrad=st.booleans()),
    optim.RMSprop: dict(alpha=st.sampled_from([0.0, 0.9, 0.99]), momentum=st.sampled_from([0.0, 0.5]),
                        centered=st.booleans(), weight_decay=st.sampled_from([0.0, 0.01])),
    optim.Adagrad: dict(lr_decay=st.sampled_from([0.0, 0.1]),
                        initial_accumulator_value=st.sampled_from([0.0, 0.5]),
                        weight_decay=st.sampled_from([0.0, 0.01])),
    optim.Adamax: dict(betas=st.sampled_from([(0.9, 0.999), (0.0, 0.5)]),
                       eps=st.sampled_from([1e-8, 1e-2]), weight_decay=st.sampled_from([0.0, 0.1])),
    optim.Rprop: dict(etas=st.sampled_from([(0.5, 1.2), (0.1, 3.0)]),
                      step_sizes=st.sampled_from([(1e-6, 50.0), (0.0, 1e-3)])),
}


@st.composite
def optimizers(draw):
    cls = draw(st.sampled_from(list(OPTIMIZER_ARGS)))
    kw = {k: draw(v) for k, v in OPTIMIZER_ARGS[cls].items()}
    if cls is optim.SGD and kw["momentum"] > 0 and kw["dampening"] == 0:
        kw["nesterov"] = draw(st.booleans())
    kw["lr"] = draw(st.sampled_from([1e-3, 0.1, 1.0]))
    return cls(**kw)


def optimizer_state(opt):
    import pickle
    return pickle.dumps((opt.state_dict()["state"], opt.steps, opt.lr))


def numpy_step(opt, state, params, grads, t):
    """torch.optim's single-tensor update of one parameter array, in float64 NumPy:
    the oracle the kernel's rules are held to (independent of torch and of bpfast)."""
    h = opt._hyperparameters()
    p, g = params.astype(np.float64), grads.astype(np.float64)
    wd = h.get("weight_decay", 0.0)
    if isinstance(opt, optim.Adam):
        (b1, b2), eps = h["betas"], h["eps"]
        if isinstance(opt, optim.AdamW):
            p = p * (1 - h["lr"] * wd)
        else:
            g = g + wd * p
        m = state.get("m", 0 * p) + (1 - b1) * (g - state.get("m", 0 * p))
        v = b2 * state.get("v", 0 * p) + (1 - b2) * g * g
        state.update(m=m, v=v)
        if h["amsgrad"]:
            v = np.maximum(state.get("vmax", 0 * p), v)
            state["vmax"] = v
        return p - h["lr"] / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    if isinstance(opt, optim.Adamax):
        g = g + wd * p
        (b1, b2), eps = h["betas"], h["eps"]
        m = state.get("m", 0 * p) + (1 - b1) * (g - state.get("m", 0 * p))
        u = np.maximum(b2 * state.get("u", 0 * p), np.abs(g) + eps)
        state.update(m=m, u=u)
        return p - h["lr"] / (1 - b1 ** t) * m / u
    if isinstance(opt, optim.SGD):
        g = g + wd * p
        if h["momentum"]:
            buf = g if t == 1 else h["momentum"] * state["buf"] + (1 - h["dampening"]) * g
            state["buf"] = buf
            g = g + h["momentum"] * buf if h["nesterov"] else buf
        return p - h["lr"] * g
    if isinstance(opt, optim.RMSprop):
        g = g + wd * p
        a = h["alpha"]
        sq = a * state.get("sq", 0 * p) + (1 - a) * g * g
        state["sq"] = sq
        if h["centered"]:
            ga = state.get("ga", 0 * p) + (1 - a) * (g - state.get("ga", 0 * p))
            state["ga"] = ga
            avg = np.sqrt(sq - ga * ga) + h["eps"]
        else:
            avg = np.sqrt(sq) + h["eps"]
        if h["momentum"] > 0:
            state["buf"] = h["momentum"] * state.get("buf", 0 * p) + g / avg
            return p - h["lr"] * state["buf"]
        return p - h["lr"] * g / avg
    if isinstance(opt, optim.Adagrad):
        g = g + wd * p
        acc = state.get("sum", 0 * p + h["initial_accumulator_value"]) + g * g
        state["sum"] = acc
        return p - h["lr"] / (1 + (t - 1) * h["lr_decay"]) * g / (np.sqrt(acc) + h["eps"])
    (eta_minus, eta_plus), (lo, hi) = h["etas"], h["step_sizes"]       # Rprop
    prev, step = state.get("prev", 0 * p), state.get("step", 0 * p + h["lr"])
    product = g * prev
    step = np.clip(step * np.where(product > 0, eta_plus, np.where(product < 0, eta_minus, 1)),
                   lo, hi)
    g = np.where(product < 0, 0, g)
    state.update(prev=g, step=step)
    return p - np.sign(g) * step


@PROFILE
@given(problem=problems(max_samples=5), opt=optimizers(), steps=st.integers(1, 3))
def test_every_rule_is_its_algorithm(problem, opt, steps):
    """Steps of every optimizer equal torch's formulas applied in NumPy to gradients()."""
    spec, X, Y = problem
    net = make_net(spec)
    params = [np.array(p, dtype=np.float64) for p in net._param_views(net._params)]
    states = [{} for _ in params]
    for t in range(1, steps + 1):
        grad_w, grad_b = net.gradients(X, Y)
        grads = [g for pair in zip(grad_w, grad_b) for g in pair]
        expected = [numpy_step(opt, s, p, g, t) for s, p, g in zip(states, params, grads)]
        try:
            net.step(X, Y, opt)
        except bpfast.DivergenceError:
            assert bpfast._dispatch.kernel.all_finite(net._params)
            return
        params = [np.array(p, dtype=np.float64) for p in net._param_views(net._params)]
        rtol, atol = (1e-4, 1e-5) if spec["dtype"] == "float32" else (1e-9, 1e-12)
        for got, want in zip(params, expected):
            assert np.all(np.isfinite(got))
            # rounding near a sign change of Rprop's product can flip a branch; keep to
            # values the formulas determine
            if not isinstance(opt, optim.Rprop) or spec["dtype"] == "float64":
                np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1, np.abs(want).max()))
        params = expected if spec["dtype"] == "float64" else params


@PROFILE
@given(problem=problems(), opt=optimizers(), data=st.data())
def test_optimizer_fits_give_a_result_or_a_clear_error(problem, opt, data):
    """fit and step with any optimizer, batch size and thread count: a finite result,
    a clear error that changed neither the network nor the optimizer, or a divergence
    that restored a finite state."""
    spec, X, Y = problem
    net = make_net(spec)
    entry = data.draw(st.sampled_from(["fit", "step"]))
    kw = dict(batch_size=data.draw(st.one_of(st.integers(1, 7), JUNK)),
              n_threads=data.draw(st.one_of(st.integers(1, 3), JUNK)),
              epochs=data.draw(st.integers(1, 2)), shuffle=data.draw(st.booleans()),
              progress=False, optimizer=opt,
              schedule=data.draw(st.sampled_from([None, optim.StepLR(1, 0.5),
                                                  optim.CosineAnnealingLR(2)])))
    bad_xy = data.draw(st.sampled_from([None, "nan", "shape"]))
    Xc = X.astype(np.float64)
    if bad_xy == "nan":
        Xc = Xc.copy()
        Xc.flat[0] = np.nan
    elif bad_xy == "shape":
        Xc = Xc.reshape(-1)[:-1] if Xc.size > 1 else np.zeros(Xc.size + 1)
    before, opt_before = state_of(net), optimizer_state(opt)
    try:
        if entry == "fit":
            net.fit(Xc, Y, **kw)
        else:
            net.step(Xc, Y, opt)
    except ALLOWED as exc:
        assert state_of(net) == before, f"{entry} raised {exc!r} but changed the network"
        assert optimizer_state(opt) == opt_before, f"{entry} raised {exc!r} but changed {opt!r}"
        return
    except bpfast.DivergenceError:
        assert bpfast._dispatch.kernel.all_finite(net._params)
        return
    assert bad_xy is None
    assert bpfast._dispatch.kernel.all_finite(net._params)


# ---------------------------------------------------------------- sparse inputs
# docs/design.md, "Sparse inputs": any valid CSR structure (duplicates, unsorted
# columns, empty rows, int32 or int64 indices, matrix or array class) gives the
# result of its dense form; any corrupted one (indices out of range, indptr
# wrong, lengths that disagree, NaN) is a ValueError that changes nothing --
# and never an out-of-bounds read (the checked build runs these tests).

@st.composite
def csr_structures(draw, n0, max_samples=6):
    """(data, indices, indptr, shape, index dtype, class) of a valid CSR matrix."""
    n = draw(st.integers(1, max_samples))
    lengths = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    nnz = sum(lengths)
    indices = draw(st.lists(st.integers(0, n0 - 1), min_size=nnz, max_size=nnz))
    data = draw(st.lists(st.sampled_from(GRID), min_size=nnz, max_size=nnz))
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    cls = draw(st.sampled_from(["csr_matrix", "csr_array"]))
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(index_dtype)
    return (np.array(data, dtype=np.float64), np.array(indices, dtype=index_dtype), indptr,
            (n, n0), cls)


def canonical(structure):
    """The same matrix's structure with sorted columns and duplicates summed."""
    data, indices, indptr, shape, cls = structure
    dense = build_csr(structure).toarray()
    rows, cols = np.nonzero(dense)
    ptr = np.searchsorted(rows, np.arange(shape[0] + 1)).astype(indptr.dtype)
    return dense[rows, cols], cols.astype(indices.dtype), ptr, shape, cls


def build_csr(structure):
    """A SciPy CSR matrix holding exactly these arrays (SciPy's checks bypassed)."""
    import scipy.sparse as sp
    data, indices, indptr, shape, cls = structure
    X = getattr(sp, cls)((np.zeros(0), np.zeros(0, dtype=np.int32),
                          np.zeros(shape[0] + 1, dtype=np.int32)), shape=shape)
    X.data, X.indices, X.indptr = data, indices, indptr
    return X


SPARSE_ENTRY_POINTS = ("forward", "predict", "loss", "evaluate", "gradients", "sgd_step",
                       "fit", "gradcheck")


@PROFILE
@given(spec=net_specs(), entry=st.sampled_from(SPARSE_ENTRY_POINTS), data=st.data())
def test_valid_sparse_structures_give_the_dense_result(spec, entry, data):
    pytest.importorskip("scipy.sparse")
    n0, n_out = spec["layers"][0], spec["layers"][-1]
    structure = data.draw(csr_structures(n0))
    kinks = {spec["activation"], spec["output"]} & {"relu", "leaky_relu"}
    if kinks or entry not in ("forward", "loss", "gradients", "sgd_step"):
        # Argmax (predict, accuracy) and relu's kink at 0 may go the other way
        # when the terms of a sum come in another order (duplicates that
        # cancel, say): for these, rows in column order without duplicates,
        # which give the dense result bit for bit.
        structure = canonical(structure)
    X = build_csr(structure)
    Y = data.draw(valid_targets(X.shape[0], n_out, spec["loss"]))
    dense = X.toarray()
    sparse_net, dense_net = make_net(spec), make_net(spec)
    outcomes = []
    for net, X_in in ((sparse_net, X), (dense_net, dense)):
        try:
            outcomes.append(as_list(net, entry, invoke(net, entry, X_in, Y, epochs=1)))
        except bpfast.DivergenceError as exc:
            outcomes.append(type(exc))
    if outcomes[1] is bpfast.DivergenceError:
        assert outcomes[0] is bpfast.DivergenceError
        return
    tol = 1e-5 if spec["dtype"] == "float32" else 1e-12
    if entry == "gradcheck":
        return          # a float32 gradcheck is only as exact as float32 allows
    for a, b in zip(*outcomes):
        if np.asarray(a).dtype.kind not in "biuf":        # evaluate's key names
            assert np.array_equal(a, b)
            continue
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64),
                                   np.asarray(b, dtype=np.float64), rtol=tol, atol=tol)
    assert np.array_equal(X.indices, structure[1]) and np.array_equal(X.data, structure[0])


@PROFILE
@given(spec=net_specs(), entry=st.sampled_from(SPARSE_ENTRY_POINTS), data=st.data())
def test_corrupted_sparse_structures_are_rejected_before_anything_changes(spec, entry, data):
    pytest.importorskip("scipy.sparse")
    n0, n_out = spec["layers"][0], spec["layers"][-1]
    data_, indices, indptr, shape, cls = data.draw(csr_structures(n0))
    kind = data.draw(st.sampled_from(["index", "indptr", "lengths", "nan", "shape"]))
    big = st.integers(-2**40, 2**40) if indices.dtype == np.int64 else st.integers(-2**31,
                                                                                    2**31 - 1)
    if kind == "index" and indices.size:
        indices = indices.copy()
        indices[data.draw(st.integers(0, indices.size - 1))] = data.draw(big)
    elif kind == "indptr":
        indptr = indptr.copy()
        indptr[data.draw(st.integers(0, indptr.size - 1))] = data.draw(big)
    elif kind == "lengths":
        which = data.draw(st.sampled_from(["data", "indices", "indptr"]))
        cut = data.draw(st.sampled_from([-1, 1]))
        arrays = {"data": data_, "indices": indices, "indptr": indptr}
        a = arrays[which]
        arrays[which] = a[:-1].copy() if cut < 0 and a.size else np.append(a, a[-1:] if a.size
                                                                           else [0]).astype(a.dtype)
        data_, indices, indptr = arrays["data"], arrays["indices"], arrays["indptr"]
    elif kind == "nan" and data_.size:
        data_ = data_.copy()
        data_[0] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "shape":
        shape = (shape[0], shape[1] + data.draw(st.sampled_from([-1, 1])))
        if shape[1] < 1:
            shape = (shape[0], 2)
    X = build_csr((data_, indices, indptr, shape, cls)) if kind != "shape" else None
    if X is None:
        X = build_csr((data_, indices, indptr, (shape[0], n0), cls))
        X._shape = shape
    n = shape[0]
    valid = (shape[1] == n0 and indptr.size == n + 1 and indptr[0] == 0
             and indptr[-1] == indices.size == data_.size and np.all(np.diff(indptr) >= 0)
             and np.all((indices >= 0) & (indices < n0)) and np.all(np.isfinite(data_)))
    net = make_net(spec)
    Y = data.draw(valid_targets(n, n_out, spec["loss"]))
    before = state_of(net)
    try:
        invoke(net, entry, X, Y, epochs=1)
    except ALLOWED as exc:
        assert state_of(net) == before, f"{entry} raised {exc!r} but changed the network"
        assert not valid or "Y" in str(exc), exc
        assert valid or str(exc).startswith("X: "), exc
        return
    except bpfast.DivergenceError:
        assert entry in TRAINING
    # only a corruption that left a valid structure (an index set to itself) gets here
    assert valid, f"{entry} accepted an invalid CSR structure"
