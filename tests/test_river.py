"""bpfast.river: river's estimator checks, and equality with an MLP trained sample by sample."""

import pickle

import numpy as np
import pytest

river = pytest.importorskip("river")

from numpy.testing import assert_allclose, assert_array_equal
from river import checks, datasets, evaluate, metrics, preprocessing

import bpfast
from bpfast.river import BPClassifier, BPRegressor

# ---------------------------------------------------------------- river's own checks

RIVER_MODELS = [
    BPClassifier(hidden_layer_sizes=(8,), seed=1),
    BPClassifier(hidden_layer_sizes=(8, 4), activation="relu", momentum=0.5, nesterov=True,
                 weight_decay=1e-4, dtype="float32", seed=1),
    BPRegressor(hidden_layer_sizes=(8,), seed=1),
]


def _river_checks():
    for model in RIVER_MODELS:
        seen = {}
        for check in checks.yield_checks(model):
            if check.__name__ in model._unit_test_skips():
                continue
            k = seen[check.__name__] = seen.get(check.__name__, -1) + 1
            # The same check runs once per data set (Phishing, ImageSegments, TrumpApproval).
            name = f"{type(model).__name__}-{model.dtype}-{check.__name__}-{k}"
            yield pytest.param(model, check, id=name)


@pytest.mark.parametrize("model, check", list(_river_checks()))
def test_river_checks(model, check):
    check(model.clone())


# ---------------------------------------------------------------- helpers

def _stream(n=300, n_features=5, n_classes=3, seed=0):
    """(X, y, dicts): the dicts' keys come in a different order every sample."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = np.argmax(X[:, :n_classes] + 0.3 * rng.normal(size=(n, n_classes)), axis=1)
    names = [f"f{j}" for j in range(n_features)]
    dicts = []
    for row in X:
        order = rng.permutation(n_features)
        dicts.append({names[j]: float(row[j]) for j in order})
    return X, y, dicts


def _params(net):
    return [a.copy() for a in (*net.weights, *net.biases)]


# ---------------------------------------------------------------- same as bpfast.MLP

@pytest.mark.parametrize("optimizer", [
    dict(),                                                    # plain SGD: MLP.sgd_step
    dict(momentum=0.9, nesterov=True, weight_decay=1e-3),     # MLP.fit, one sample per call
])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_classifier_matches_an_mlp_trained_sample_by_sample(optimizer, dtype):
    X, y, dicts = _stream()
    labels = ["b", "a", "c"]                     # output units in this given order
    model = BPClassifier(hidden_layer_sizes=(6,), lr=0.05, dtype=dtype, seed=7,
                         classes=tuple(labels), **optimizer)
    for x, code in zip(dicts, y):
        model.learn_one(x, labels[code])
    reference = bpfast.MLP([5, 6, 3], activation="tanh", output="softmax",
                           loss="cross_entropy", dtype=dtype, seed=7)
    reference.fit(X, y, epochs=1, lr=0.05, batch_size=1, shuffle=False, progress=False,
                  **optimizer)
    assert model.feature_names == ["f0", "f1", "f2", "f3", "f4"]
    assert model.classes_ == labels
    for p, p_ref in zip(_params(model.net), _params(reference)):
        assert_array_equal(p, p_ref)
    proba = model.predict_proba_one(dicts[0])
    expected = reference.forward(X[0]).astype(np.float64)
    assert_allclose([proba[c] for c in labels], expected / expected.sum(), rtol=1e-12)
    assert model.predict_one(dicts[0]) == labels[int(np.argmax(expected))]


def test_binary_classifier_learns_labels_in_order_of_appearance():
    X, y, dicts = _stream(n_classes=2)
    names = np.array([False, True])
    model = BPClassifier(hidden_layer_sizes=(4,), lr=0.1, seed=3)
    for x, code in zip(dicts, y):
        model.learn_one(x, names[code])
    first = names[y[0]]
    assert model.classes_ == [first, not first]
    codes = np.where(names[y] == first, 0, 1)      # unit 0 is the first label seen
    reference = bpfast.MLP([5, 4, 2], activation="tanh", output="softmax",
                           loss="cross_entropy", seed=3)
    reference.fit(X, codes, epochs=1, lr=0.1, batch_size=1, shuffle=False, progress=False)
    for p, p_ref in zip(_params(model.net), _params(reference)):
        assert_array_equal(p, p_ref)
    assert set(model.predict_proba_one(dicts[0])) == {False, True}


def test_regressor_matches_an_mlp_trained_sample_by_sample():
    X, _, dicts = _stream()
    target = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    model = BPRegressor(hidden_layer_sizes=(10, 5), activation="relu", lr=0.01, seed=11)
    for x, t in zip(dicts, target):
        model.learn_one(x, t)
    reference = bpfast.MLP([5, 10, 5, 1], activation="relu", output="identity", loss="mse",
                           seed=11)
    reference.fit(X, target, epochs=1, lr=0.01, batch_size=1, shuffle=False, progress=False)
    for p, p_ref in zip(_params(model.net), _params(reference)):
        assert_array_equal(p, p_ref)
    assert model.predict_one(dicts[5]) == pytest.approx(float(reference.forward(X[5])[0]),
                                                        rel=1e-12)


def test_learn_many_equals_learn_one_even_when_classes_appear_mid_batch():
    pd = pytest.importorskip("pandas")
    X, y, dicts = _stream(n=120, n_classes=3, seed=5)
    labels = np.array(["x", "y", "z"], dtype=object)
    y[:20] = 0                                    # "y" and "z" first appear inside batch 1
    one = BPClassifier(hidden_layer_sizes=(5,), lr=0.05, seed=2)
    many = one.clone()
    for x, code in zip(dicts, y):
        one.learn_one(x, labels[code])
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(5)])
    for start in range(0, 120, 40):
        many.learn_many(frame.iloc[start:start + 40], pd.Series(labels[y[start:start + 40]]))
    assert many.classes_ == one.classes_
    for p, p_many in zip(_params(one.net), _params(many.net)):
        assert_array_equal(p, p_many)
    proba = many.predict_proba_many(frame.iloc[:3])
    assert list(proba.columns) == one.classes_
    assert_allclose(proba.iloc[0].to_numpy(dtype=float),
                    [one.predict_proba_one(dicts[0])[c] for c in one.classes_], rtol=1e-12)
    assert list(many.predict_many(frame.iloc[:3])) == [one.predict_one(d) for d in dicts[:3]]


# ---------------------------------------------------------------- a changing stream

@pytest.mark.parametrize("optimizer", [dict(), dict(momentum=0.9)], ids=["sgd", "momentum"])
def test_dense_and_sparse_inputs_train_alike(monkeypatch, optimizer):
    """A sample reaches the network as a dense vector (the one-sample fast
    path) or, when it holds few of the known features, as a sparse row: the
    numbers are the same bit for bit."""
    rng = np.random.default_rng(5)
    names = list("abcdefgh")
    stream = [({k: float(v) for k, v in zip(names, rng.normal(size=8)) if rng.random() < 0.6},
               int(rng.integers(0, 3))) for _ in range(60)]
    models = []
    for fraction in (10**6, 0):                 # every sample dense, then every one sparse
        monkeypatch.setattr(BPClassifier, "DENSE_FRACTION", fraction)
        model = BPClassifier(hidden_layer_sizes=(6,), lr=0.1, seed=3, **optimizer)
        for x, y in stream:
            model.learn_one(x, y)
        models.append(model)
    dense, sparse = models
    for a, b in zip(dense.net.weights + dense.net.biases, sparse.net.weights + sparse.net.biases):
        assert_array_equal(a, b)
    x = stream[0][0]
    assert dense.predict_proba_one(x) == sparse.predict_proba_one(x)


def test_dict_order_does_not_matter():
    _, y, dicts = _stream(n=50)
    forward, backward = BPClassifier(seed=0), BPClassifier(seed=0)
    for x, label in zip(dicts, y):
        forward.learn_one(x, label)
        backward.learn_one(dict(reversed(list(x.items()))), label)
    for p, q in zip(_params(forward.net), _params(backward.net)):
        assert_array_equal(p, q)


def test_new_features_start_with_zero_weights_and_unknown_ones_are_ignored():
    model = BPRegressor(hidden_layer_sizes=(4,), lr=0.05, seed=0)
    for k in range(30):
        model.learn_one({"a": k / 30, "b": 1 - k / 30}, k / 30)
    known = {"a": 0.3, "b": 0.2}
    before = model.predict_one(known)
    assert model.predict_one({**known, "new": 123.0}) == before     # never learned from
    assert model.predict_one({"a": 0.3}) == model.predict_one({"a": 0.3, "b": 0.0})
    net = model.net
    model.learn_one({"c": 0.0, **known}, 0.5)      # "c" arrives with value 0: no gradient
    assert model.feature_names == ["a", "b", "c"] and model.net is not net
    assert_array_equal(model.net.weights[0][:, 2], 0.0)
    model.learn_one({**known, "c": 1.0}, 0.5)
    assert np.any(model.net.weights[0][:, 2] != 0.0)


def test_a_new_label_adds_an_output_unit():
    model = BPClassifier(hidden_layer_sizes=(3,), seed=0)
    assert model.predict_proba_one({"a": 1.0}) == {} and model.predict_one({"a": 1.0}) is None
    model.learn_one({"a": 1.0}, "cat")
    assert model.predict_proba_one({"a": 1.0}) == {"cat": 1.0}
    model.learn_one({"a": -1.0}, "dog")
    assert model.net.layers == [1, 3, 2]
    hidden_layer = _params(model.net)[0]
    model.learn_one({"a": 0.0}, "eel")
    assert model.net.layers == [1, 3, 3] and model.classes_ == ["cat", "dog", "eel"]
    proba = model.predict_proba_one({"a": 0.5})
    assert set(proba) == {"cat", "dog", "eel"} and sum(proba.values()) == pytest.approx(1.0)
    # Growth copies the trained layers; with a = 0 the hidden weights get no gradient.
    assert_array_equal(model.net.weights[0], hidden_layer)


def test_missing_values_and_bad_values():
    model = BPRegressor(seed=0)
    assert model.predict_one({"a": 1.0}) == 0.0
    model.learn_one({"a": 1.0, "b": None}, 2.0)          # None: missing, counts as 0
    with pytest.raises(TypeError, match=r"x\['a'\]"):
        model.learn_one({"a": "high"}, 1.0)
    with pytest.raises(ValueError, match="y"):
        model.learn_one({"a": 1.0}, float("nan"))
    with pytest.raises(ValueError, match="activation"):
        BPRegressor(activation="softmax").learn_one({"a": 1.0}, 1.0)


# ---------------------------------------------------------------- in practice

def test_progressive_validation_on_phishing():
    model = preprocessing.StandardScaler() | BPClassifier(hidden_layer_sizes=(16,), lr=0.05,
                                                         seed=0)
    accuracy = evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
    assert accuracy.get() > 0.85


def test_pickle_and_clone():
    _, y, dicts = _stream(n=40)
    model = BPClassifier(hidden_layer_sizes=(4,), seed=0)
    for x, label in zip(dicts, y):
        model.learn_one(x, label)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.predict_proba_one(dicts[0]) == model.predict_proba_one(dicts[0])
    fresh = model.clone()
    assert fresh.net is None and fresh._get_params() == model._get_params()
