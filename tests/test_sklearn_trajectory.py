"""BPClassifier/BPRegressor follow scikit-learn's MLPClassifier/MLPRegressor step by step
(docs/design.md, "scikit-learn estimators: a true drop-in").

Both estimators get the same hyperparameters and the same random_state, so they draw the
same initial weights (asserted), the same early-stopping split and the same shuffles;
then coefs_, intercepts_, loss_curve_, n_iter_ and t_ must agree to 1e-7 in float64, for
every stochastic solver x learning_rate x task, with and without sample weights, over
fit, warm_start and partial_fit.  For lbfgs the objective (loss and gradient at the same
point) agrees to 1e-10 and the fit reaches the same loss within a few percent.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.neural_network import MLPClassifier, MLPRegressor

from bpfast.sklearn import BPClassifier, BPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TASKS = ("binary", "multiclass", "multilabel", "regression", "poisson")
RTOL, ATOL = 1e-7, 1e-10


def _data(task, n=53, seed=0):
    rng = np.random.default_rng(seed)
    if task == "multilabel":
        X, y = make_multilabel_classification(n_samples=n, n_features=4, n_classes=3,
                                              random_state=seed)
        return X / X.max(), y
    X, labels = make_classification(n_samples=n, n_features=4, n_informative=3,
                                    n_redundant=0, n_classes=2 if task == "binary" else 3,
                                    random_state=seed)
    if task == "regression":
        return X, np.column_stack([np.sin(X[:, 0]), X[:, 1] - 0.5 * X[:, 2]])
    if task == "poisson":
        return X, rng.poisson(np.exp(0.3 * X[:, 0] + 0.2)).astype(float)
    return X, labels


def _pair(task, **params):
    if task in ("regression", "poisson"):
        loss = "poisson" if task == "poisson" else "squared_error"
        return BPRegressor(loss=loss, **params), MLPRegressor(loss=loss, **params)
    return BPClassifier(**params), MLPClassifier(**params)


def _assert_same(bp, sk, rtol=RTOL, atol=ATOL):
    assert len(bp.coefs_) == len(sk.coefs_)
    for a, b in zip(bp.coefs_ + bp.intercepts_, sk.coefs_ + sk.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert_allclose(a, b, rtol=rtol, atol=atol)
    assert_allclose(bp.loss_curve_, sk.loss_curve_, rtol=rtol, atol=atol)
    assert bp.n_iter_ == sk.n_iter_ and bp.t_ == sk.t_
    assert bp.loss_ == pytest.approx(sk.loss_, rel=rtol, abs=atol)
    assert bp.out_activation_ == sk.out_activation_ and bp.n_outputs_ == sk.n_outputs_
    assert bp.n_layers_ == sk.n_layers_


def _weights(task, n):
    return np.random.default_rng(7).uniform(0.0, 3.0, size=n) if task else None


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("learning_rate", ["constant", "invscaling", "adaptive"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_fit_follows_sklearn(solver, learning_rate, task, weighted):
    X, y = _data(task)
    params = dict(solver=solver, learning_rate=learning_rate, hidden_layer_sizes=(5, 3),
                  activation="tanh", alpha=0.05, batch_size=16, learning_rate_init=0.05,
                  power_t=0.4, momentum=0.8, beta_1=0.8, beta_2=0.95, epsilon=1e-6,
                  max_iter=9, shuffle=False, random_state=0, tol=0.0,
                  n_iter_no_change=np.inf)
    if learning_rate == "adaptive":       # the loss "stalls" every other epoch: lr /= 5
        params.update(tol=1e9, n_iter_no_change=1)
    bp, sk = _pair(task, **params)
    w = _weights(weighted, len(X))
    bp.fit(X, y, sample_weight=w)
    sk.fit(X, y, sample_weight=w)
    _assert_same(bp, sk)
    # warm start: a new optimizer from the current parameters, as scikit-learn does
    for est in (bp, sk):
        est.set_params(warm_start=True, max_iter=3, shuffle=True).fit(X, y, sample_weight=w)
    _assert_same(bp, sk)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_carries_the_optimizer_and_counts_samples(solver, task):
    X, y = _data(task)
    params = dict(solver=solver, hidden_layer_sizes=(4,), activation="relu", alpha=0.01,
                  batch_size=10, learning_rate="invscaling", learning_rate_init=0.02,
                  random_state=1)
    bp, sk = _pair(task, **params)
    w = _weights(True, len(X))
    extra = {}
    if task in ("binary", "multiclass"):
        extra = {"classes": np.unique(y)}
    elif task == "multilabel":
        extra = {"classes": np.arange(y.shape[1])}
    for k in range(4):
        part = slice(0, 30) if k % 2 == 0 else slice(30, None)
        for est in (bp, sk):
            est.partial_fit(X[part], y[part], sample_weight=w[part], **extra)
    _assert_same(bp, sk)
    assert bp.t_ == 2 * len(X)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_early_stopping_and_shuffle_follow_sklearn(task):
    """The same split, the same shuffles, the same validation scores and best epoch."""
    X, y = _data(task, n=80)
    params = dict(hidden_layer_sizes=(6,), alpha=0.001, batch_size=8,
                  learning_rate_init=0.03, max_iter=12, shuffle=True, random_state=3,
                  early_stopping=True, validation_fraction=0.25, n_iter_no_change=3)
    bp, sk = _pair(task, **params)
    bp.fit(X, y)
    sk.fit(X, y)
    _assert_same(bp, sk)
    assert_allclose(bp.validation_scores_, sk.validation_scores_, rtol=1e-9)
    assert bp.best_validation_score_ == pytest.approx(sk.best_validation_score_, rel=1e-9)
    assert bp.best_loss_ is None and sk.best_loss_ is None


def test_float32_input_trains_float32_like_sklearn():
    X, y = _data("multiclass")
    X = X.astype(np.float32)
    params = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0, batch_size=16,
                  learning_rate_init=0.01)
    bp, sk = _pair("multiclass", **params)
    bp.fit(X, y)
    sk.fit(X, y)
    assert bp.net_.dtype == np.float32
    assert all(c.dtype == np.float32 for c in bp.coefs_ + bp.intercepts_)
    assert bp.predict_proba(X).dtype == np.float32
    _assert_same(bp, sk, rtol=1e-4, atol=1e-5)


def _sklearn_objective(sk, X, Y, w):
    """scikit-learn's own L-BFGS objective at its current parameters."""
    from sklearn.neural_network._multilayer_perceptron import _pack
    layer_units = [X.shape[1], *sk.hidden_layer_sizes, sk.n_outputs_]
    activations = [X] + [None] * (len(layer_units) - 1)
    deltas = [None] * (len(activations) - 1)
    coef_grads = [np.empty((a, b)) for a, b in zip(layer_units[:-1], layer_units[1:])]
    intercept_grads = [np.empty(b) for b in layer_units[1:]]
    sk._coef_indptr, sk._intercept_indptr, start = [], [], 0
    for i in range(len(layer_units) - 1):
        end = start + layer_units[i] * layer_units[i + 1]
        sk._coef_indptr.append((start, end, (layer_units[i], layer_units[i + 1])))
        start = end
    for i in range(len(layer_units) - 1):
        end = start + layer_units[i + 1]
        sk._intercept_indptr.append((start, end))
        start = end
    packed = _pack(sk.coefs_, sk.intercepts_)
    return sk._loss_grad_lbfgs(packed, X, Y, w, activations, deltas, coef_grads,
                               intercept_grads), packed


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("task", TASKS)
def test_lbfgs_minimises_sklearns_objective(task, weighted):
    X, y = _data(task)
    w = _weights(weighted, len(X))
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), activation="tanh", alpha=0.05,
                  random_state=0, max_iter=1)
    bp, sk = _pair(task, **params)
    bp.fit(X, y, sample_weight=w)
    sk.fit(X, y, sample_weight=w)
    # the same point, the same objective
    for dst, src in zip(sk.coefs_ + sk.intercepts_, bp.coefs_ + bp.intercepts_):
        dst[...] = src
    Y = sk._label_binarizer.transform(y).astype(bool) if hasattr(sk, "classes_") else y
    Y = Y.reshape(len(X), -1)
    (loss_sk, grad_sk), packed = _sklearn_objective(sk, X, Y, w)
    objective, pack, _ = bp._lbfgs_objective(
        X, bp._network_targets(Y), None if w is None else w.astype(float))
    assert_allclose(pack(), packed, rtol=0, atol=0)
    loss_bp, grad_bp = objective(packed)
    assert loss_bp == pytest.approx(loss_sk, rel=1e-10)
    assert_allclose(grad_bp, grad_sk, rtol=1e-10, atol=1e-12)
    # the whole fit: the same objective minimised, to a few percent
    for est in (bp, sk):
        est.set_params(max_iter=200, warm_start=False).fit(X, y, sample_weight=w)
    assert bp.loss_ == pytest.approx(sk.loss_, rel=0.05, abs=1e-3)
    assert not hasattr(bp, "loss_curve_") and not hasattr(sk, "loss_curve_")


def test_same_random_state_same_initial_weights_as_sklearn():
    X, y = _data("multiclass")
    for activation in ("logistic", "relu"):
        bp, sk = _pair("multiclass", hidden_layer_sizes=(7, 4), activation=activation,
                       random_state=5, max_iter=1, learning_rate_init=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bp.fit(X, y)
            sk.fit(X, y)
        _assert_same(bp, sk)
