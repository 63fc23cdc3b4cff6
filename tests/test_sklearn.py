"""bpfast.sklearn: scikit-learn's estimator checks, the drop-in's parameters and semantics,
pipelines, grid searches (joblib and dask), dask-ml's Incremental, persistence, out-of-core
training.  Step-by-step parity with scikit-learn: tests/test_sklearn_trajectory.py."""

import io
import pickle
import tracemalloc
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

pytest.importorskip("sklearn")

import joblib
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import bpfast
from bpfast.sklearn import BPClassifier, BPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


# ---------------------------------------------------------------- scikit-learn's own checks

# Small networks and few epochs keep the ~100 checks per estimator fast.  The
# learning rates are chosen so that plain SGD solves scikit-learn's toy problems
# (check_classifiers_train wants accuracy > 0.83, check_regressors_train R² > 0.5)
# and does not diverge on check_regressor_multioutput's unscaled targets
# (hence tanh hidden units for the regressors).
CHECKED_ESTIMATORS = [
    BPClassifier(hidden_layer_sizes=(20,), learning_rate_init=0.05, max_iter=50,
                 random_state=0),
    # True per-sample SGD in single precision, two hidden layers.
    BPClassifier(hidden_layer_sizes=(8, 8), activation="tanh", batch_size=1,
                 learning_rate_init=0.01, max_iter=20, dtype="float32", random_state=0),
    BPRegressor(hidden_layer_sizes=(20,), activation="tanh", learning_rate_init=0.01,
                max_iter=50, random_state=0),
    BPClassifier(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=100, random_state=0),
    BPRegressor(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=100, random_state=0),
    BPRegressor(hidden_layer_sizes=(20,), activation="tanh", batch_size=1,
                learning_rate_init=0.001, momentum=0.0, max_iter=20, dtype="float32",
                random_state=0),
]


def expected_failed_checks(estimator):
    if estimator.batch_size == 1:
        # With one sample per step a weight-2 sample is one step and its repetition
        # two: not equivalent for any minibatch solver (scikit-learn's own check runs
        # its MLPs with lbfgs or marks them failing for the same reason).
        return {"check_sample_weight_equivalence_on_dense_data":
                "minibatch steps: a weight is not a repetition",
                "check_sample_weight_equivalence_on_sparse_data":
                "minibatch steps: a weight is not a repetition",
                **({"check_regressor_multioutput":
                    "a float32 network predicts float32, the check wants float64"}
                   if isinstance(estimator, BPRegressor) and estimator.dtype == "float32"
                   else {})}
    if isinstance(estimator, BPRegressor) and estimator.dtype == "float32":
        # The check demands float64 multi-output predictions.  A float32 network
        # computes, and returns, float32 by design (dtype="float32" is the point
        # of choosing it); the default dtype="float64" passes this check.
        return {"check_regressor_multioutput":
                "a float32 network predicts float32, the check wants float64"}
    return {}


@parametrize_with_checks(CHECKED_ESTIMATORS, expected_failed_checks=expected_failed_checks,
                         xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- scikit-learn's semantics
# (the trajectories themselves: tests/test_sklearn_trajectory.py)

def test_every_mlp_parameter_with_the_same_default():
    for bp, sk in ((BPClassifier, MLPClassifier), (BPRegressor, MLPRegressor)):
        sk_params = sk().get_params()
        bp_params = bp().get_params()
        assert {k: bp_params[k] for k in sk_params} == sk_params
        assert set(bp_params) - set(sk_params) <= {"dtype", "n_threads", "loss"}
        bp(**sk_params)          # a drop-in: MLP's parameters are accepted as they are


def test_alpha_decays_the_weights_only():
    """One full-batch sgd step with alpha: weights as scikit-learn's, biases undecayed."""
    X, y = make_classification(n_samples=40, n_features=4, random_state=2)
    common = dict(solver="sgd", hidden_layer_sizes=(5,), activation="tanh", batch_size=40,
                  learning_rate_init=0.1, random_state=0, max_iter=1, alpha=0.5,
                  momentum=0.0)
    bp, bp0 = BPClassifier(**common).fit(X, y), BPClassifier(**{**common, "alpha": 0.0})
    bp0.fit(X, y)
    for b, b0 in zip(bp.intercepts_, bp0.intercepts_):
        assert_allclose(b, b0, rtol=1e-12)
    assert not np.allclose(bp.coefs_[0], bp0.coefs_[0])


def test_diverging_fit_raises_sklearns_value_error_and_restores():
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    est = BPRegressor(max_iter=3, random_state=0)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        est.fit(X, y)
    with pytest.raises(bpfast.DivergenceError):
        est.fit(X, y)
    assert all(np.isfinite(c).all() for c in est.coefs_)


def test_coefs_are_assignable_and_set_the_network(digits):
    X, y = digits
    est = BPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(X, y)
    new = [np.full_like(c, 0.01) for c in est.coefs_]
    est.coefs_ = new
    assert_array_equal(est.net_.weights[0], new[0].T)
    est.intercepts_[1] = np.zeros_like(est.intercepts_[1])
    assert not est.net_.biases[1].any()
    with pytest.raises(ValueError, match=r"coefs_\[0\]: expected shape"):
        est.coefs_ = [np.zeros((2, 2)), new[1]]
    assert_array_equal(est.net_.weights[0], new[0].T)     # refused: nothing changed


def test_partial_fit_is_absent_with_lbfgs():
    assert not hasattr(BPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(BPRegressor(solver="lbfgs"), "partial_fit")
    assert hasattr(BPRegressor(solver="sgd"), "partial_fit")


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_sparse_input_gives_the_dense_result(solver):
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 12)) * (rng.random((60, 12)) < 0.3)
    y = rng.integers(0, 3, size=60)
    kw = dict(solver=solver, hidden_layer_sizes=(7,), max_iter=5, random_state=0,
              batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = BPClassifier(**kw).fit(X, y)
        csr = BPClassifier(**kw).fit(sparse.csr_matrix(X), y)
    for a, b in zip(dense.coefs_ + dense.intercepts_, csr.coefs_ + csr.intercepts_):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(csr.predict_proba(sparse.csr_array(X)),
                               dense.predict_proba(X), rtol=1e-10)


def test_multilabel_predicts_the_indicator_matrix():
    from sklearn.datasets import make_multilabel_classification
    X, Y = make_multilabel_classification(n_samples=60, n_features=5, n_classes=3,
                                          random_state=0)
    est = BPClassifier(hidden_layer_sizes=(10,), max_iter=50, random_state=0).fit(X, Y)
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 3
    pred = est.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    assert est.predict_proba(X).shape == Y.shape
    model = est.to_sklearn()
    assert_array_equal(model.predict(X), pred)


# ---------------------------------------------------------------- fitted attributes

def test_coefs_and_intercepts_have_sklearn_shapes_and_are_views(digits):
    X, y = digits
    clf = BPClassifier(hidden_layer_sizes=(30, 20), max_iter=2, random_state=0).fit(X, y)
    assert [W.shape for W in clf.coefs_] == [(64, 30), (30, 20), (20, 10)]
    assert [b.shape for b in clf.intercepts_] == [(30,), (20,), (10,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 10 and clf.out_activation_ == "softmax"
    for W, W_net in zip(clf.coefs_, clf.net_.weights):
        assert_array_equal(W, W_net.T)
    before = clf.predict_proba(X[:5])
    clf.coefs_[-1][...] = 0.0           # as in scikit-learn, assigning into coefs_ counts
    clf.intercepts_[-1][...] = 0.0
    assert_allclose(clf.predict_proba(X[:5]), np.full((5, 10), 0.1))
    assert not np.allclose(before, 0.1)

    binary = BPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, y % 2)
    assert binary.coefs_[-1].shape == (4, 1) and binary.out_activation_ == "logistic"
    assert binary.predict_proba(X).shape == (len(X), 2)


def test_unfitted_estimator_has_no_coefs():
    with pytest.raises(NotFittedError):
        BPClassifier().coefs_
    assert not hasattr(BPRegressor(), "intercepts_")


def test_string_labels(digits):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"], dtype=object)
    clf = BPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.05, max_iter=30,
                       random_state=0).fit(X, names[y])
    assert list(clf.classes_) == sorted(names)
    predicted = clf.predict(X)
    assert predicted.dtype.kind in "OU" and set(predicted) <= set(names)
    assert clf.score(X, names[y]) > 0.95
    proba = clf.predict_proba(X[:3])
    assert_array_equal(clf.classes_[proba.argmax(axis=1)], predicted[:3])

    spam = np.where(y > 4, "spam", "ham")
    binary = BPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=30,
                          random_state=0).fit(X, spam)
    assert list(binary.classes_) == ["ham", "spam"] and binary.n_outputs_ == 1
    # The single sigmoid output is P(classes_[1]).
    assert_allclose(binary.predict_proba(X)[:, 1], binary.net_.forward(X)[:, 0])


def test_feature_names_in_with_a_dataframe(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X, columns=[f"pixel{k}" for k in range(64)])
    clf = BPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(frame, y)
    assert clf.n_features_in_ == 64
    assert_array_equal(clf.feature_names_in_, frame.columns)
    with pytest.warns(UserWarning, match="valid feature names"):
        assert_array_equal(clf.predict(X), clf.predict(frame))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"pixel0": "other"}))
    plain = BPRegressor(max_iter=2).fit(X, y.astype(float))
    assert plain.n_features_in_ == 64 and not hasattr(plain, "feature_names_in_")


def test_regressor_multi_output(digits):
    X, y = digits
    Y = np.column_stack([y / 9.0, (y % 2).astype(float), X[:, 20]])
    reg = BPRegressor(hidden_layer_sizes=(32,), activation="tanh", learning_rate_init=0.05,
                      max_iter=40, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (len(X), 3) and reg.n_outputs_ == 3
    assert reg.score(X, Y) > 0.8
    assert BPRegressor(max_iter=1).fit(X, y).predict(X).shape == (len(X),)


# ---------------------------------------------------------------- convergence and options

def test_stopping_rule_matches_sklearn():
    """With a huge tol no epoch counts as an improvement: both stop after the same epoch."""
    X, y = make_classification(n_samples=60, random_state=0)
    common = dict(hidden_layer_sizes=(4,), tol=1e9, n_iter_no_change=3, max_iter=50,
                  random_state=0)
    bp = BPClassifier(**common)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)    # stopping is not max_iter
        bp.fit(X, y)
    sk = MLPClassifier(solver="sgd", **common).fit(X, y)
    assert bp.n_iter_ == sk.n_iter_ == 5
    assert len(bp.loss_curve_) == 5 and bp.best_loss_ == min(bp.loss_curve_)


def test_convergence_warning_at_max_iter(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        clf = BPClassifier(hidden_layer_sizes=(8,), max_iter=3).fit(X, y)
    assert clf.n_iter_ == 3 and clf.t_ == 3 * len(X)


def test_early_stopping_keeps_the_best_epoch(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(16,), learning_rate_init=0.2, momentum=0.9,
                  early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                  max_iter=60, random_state=4)
    clf = BPClassifier(**params).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ < 60 and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(scores)
    best_epoch = int(np.argmax(scores)) + 1
    # Training is deterministic: stopping right after the best epoch gives the same network.
    short = BPClassifier(**{**params, "max_iter": best_epoch}).fit(X, y)
    for W, W_short in zip(clf.coefs_ + clf.intercepts_, short.coefs_ + short.intercepts_):
        assert_array_equal(W, W_short)
    with pytest.raises(ValueError, match="early_stopping"):
        clf.partial_fit(X, y)


def test_verbose_prints_like_sklearn(digits):
    X, y = digits
    out = io.StringIO()
    with redirect_stdout(out):
        BPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True).fit(X, y)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Iteration 1, loss = ") and lines[1].startswith("Iteration 2")


def test_batch_size_larger_than_the_data_is_clipped_with_a_warning():
    X, y = make_classification(n_samples=30, random_state=0)
    with pytest.warns(UserWarning, match="clipped"):
        BPClassifier(hidden_layer_sizes=(3,), batch_size=100, max_iter=1).fit(X, y)


def test_warm_start_continues_and_checks_classes(digits):
    X, y = digits
    clf = BPClassifier(hidden_layer_sizes=(8,), max_iter=2, warm_start=True,
                       random_state=0).fit(X, y)
    net = clf.net_
    clf.fit(X, y)
    assert clf.net_ is net and clf.t_ == 4 * len(X)
    with pytest.raises(ValueError, match="warm_start"):
        clf.fit(X[y < 5], y[y < 5])
    clf.set_params(warm_start=False).fit(X, y)
    assert clf.net_ is not net


@pytest.mark.parametrize("bad, match", [
    (dict(activation="sigmoid"), "activation"),           # bpfast's name; sklearn says logistic
    (dict(hidden_layer_sizes=(10, 0)), r"hidden_layer_sizes must be > 0"),
    (dict(solver="newton"), "solver"),
    (dict(learning_rate="cosine"), "learning_rate"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(beta_2=1.0), "beta_2"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(max_fun=0), "max_fun"),
    (dict(alpha=-1.0), "alpha"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(batch_size=0), "batch_size"),
    (dict(momentum=1.5), "momentum"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(loss="poisson"), "loss"),
    (dict(dtype="float16"), "dtype"),
    (dict(n_threads=0), "n_threads"),
])
def test_bad_parameters_raise_before_the_network_changes(bad, match, digits):
    X, y = digits
    clf = BPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, y)
    before = [W.copy() for W in clf.coefs_]
    with pytest.raises((ValueError, TypeError), match=match):
        clf.set_params(**bad).fit(X, y)
    for W, W0 in zip(clf.coefs_, before):
        assert_array_equal(W, W0)
    assert BPClassifier(**bad).get_params()[next(iter(bad))] == bad[next(iter(bad))]


def test_regressor_rejects_classifier_losses():
    with pytest.raises(ValueError, match="loss"):
        BPRegressor(loss="log_loss").fit([[0.0], [1.0]], [0.0, 1.0])


# ---------------------------------------------------------------- partial_fit

def test_partial_fit_needs_classes_on_the_first_call(digits):
    X, y = digits
    clf = BPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    classes = np.unique(y)
    clf.partial_fit(X[y < 5], y[y < 5], classes=classes)     # a chunk without 5..9
    assert_array_equal(clf.classes_, classes) and clf.n_outputs_ == 10
    for _ in range(10):
        clf.partial_fit(X, y)
    assert clf.score(X, y) > 0.9 and clf.n_iter_ == 1 and len(clf.loss_curve_) == 11
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X, y, classes=classes[:5])
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X[:10], np.full(10, 11))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :10], y)


def test_partial_fit_over_chunks_equals_one_epoch_of_fit():
    """Out-of-core training is exact: chunked partial_fit == fit over the whole array."""
    X, y = make_classification(n_samples=200, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)
    params = dict(hidden_layer_sizes=(6,), batch_size=10, shuffle=False, alpha=1e-3,
                  learning_rate_init=0.05, random_state=0)
    whole = BPClassifier(max_iter=1, **params).fit(X, y)
    chunked = BPClassifier(**params)
    for start in range(0, 200, 50):          # chunks are whole numbers of batches
        chunked.partial_fit(X[start:start + 50], y[start:start + 50], classes=[0, 1, 2])
    for W, W_chunked in zip(whole.coefs_ + whole.intercepts_,
                            chunked.coefs_ + chunked.intercepts_):
        assert_array_equal(W, W_chunked)


def test_partial_fit_on_a_memmap_holds_memory_at_one_chunk(tmp_path):
    """Training on a file 20 chunks long allocates O(chunk), never O(data set)."""
    n_samples, n_features, chunk = 100_000, 32, 5_000
    X_file = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32,
                                       shape=(n_samples, n_features))
    y_file = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.int64,
                                       shape=(n_samples,))
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(n_features, 3))
    for start in range(0, n_samples, chunk):         # written chunk by chunk, too
        block = rng.normal(size=(chunk, n_features)).astype(np.float32)
        X_file[start:start + chunk] = block
        y_file[start:start + chunk] = np.argmax(block @ direction, axis=1)
    X_file.flush(), y_file.flush()
    del X_file, y_file
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    y = np.load(tmp_path / "y.npy", mmap_mode="r")

    clf = BPClassifier(hidden_layer_sizes=(16,), batch_size=1, learning_rate_init=0.01,
                       momentum=0.0, random_state=0)
    chunk_bytes = chunk * n_features * np.dtype(np.float64).itemsize   # one converted chunk
    tracemalloc.start()
    try:
        for _ in range(2):                                           # two passes over the file
            for start in range(0, n_samples - chunk, chunk):          # last chunk held out
                clf.partial_fit(X[start:start + chunk], y[start:start + chunk],
                                classes=[0, 1, 2])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * chunk_bytes, f"peak {peak} B for chunks of {chunk_bytes} B"
    assert peak < X.nbytes / 5
    assert clf.score(X[-chunk:], y[-chunk:]) > 0.9
    assert clf.t_ == 2 * (n_samples - chunk)


# ---------------------------------------------------------------- composition and persistence

def test_pipeline_with_standard_scaler(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(),
                         BPClassifier(hidden_layer_sizes=(32,), solver="sgd", batch_size=1,
                                      learning_rate_init=0.01, momentum=0.0, max_iter=20,
                                      random_state=0))
    pipe.fit(X[:1400], y[:1400])
    assert pipe.score(X[1400:], y[1400:]) > 0.88
    assert pipe[-1].n_features_in_ == 64


def _grid_search(n_jobs, X, y):
    grid = {"hidden_layer_sizes": [(8,), (24,)], "learning_rate_init": [0.01, 0.1]}
    search = GridSearchCV(BPClassifier(max_iter=15, random_state=0), grid, cv=3,
                          n_jobs=n_jobs)
    return search.fit(X, y)


def test_grid_search_with_joblib_workers(digits):
    X, y = digits
    parallel = _grid_search(2, X, y)
    serial = _grid_search(1, X, y)
    assert_array_equal(parallel.cv_results_["mean_test_score"],
                       serial.cv_results_["mean_test_score"])
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_score_ > 0.85
    assert isinstance(parallel.best_estimator_.net_, bpfast.MLP)


def test_grid_search_on_a_dask_cluster(digits):
    distributed = pytest.importorskip("dask.distributed")
    X, y = digits
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            on_dask = _grid_search(-1, X, y)
    serial = _grid_search(1, X, y)
    assert_array_equal(on_dask.cv_results_["mean_test_score"],
                       serial.cv_results_["mean_test_score"])
    assert on_dask.best_params_ == serial.best_params_


def test_clone_pickle_and_joblib_round_trips(digits, tmp_path):
    X, y = digits
    clf = BPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "net_")

    restored = pickle.loads(pickle.dumps(clf))
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    for copy in (restored, loaded):
        assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
        assert_array_equal(copy.classes_, clf.classes_)
        assert copy.loss_curve_ == clf.loss_curve_
    # The copies carry the whole training state: continuing gives identical networks.
    for est in (clf, restored, loaded):
        est.partial_fit(X, y)
    for W, W1, W2 in zip(clf.coefs_, restored.coefs_, loaded.coefs_):
        assert_array_equal(W, W1) and assert_array_equal(W, W2)

    reg = BPRegressor(hidden_layer_sizes=(4,), max_iter=2).fit(X, y.astype(float))
    assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), reg.predict(X))


def test_dask_ml_incremental_streams_blocks_through_partial_fit():
    """dask-ml's Incremental: out-of-core partial_fit over the blocks of a Dask array
    (the synchronous scheduler keeps it fast and deterministic)."""
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = make_classification(n_samples=600, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)
    Xd, yd = da.from_array(X, chunks=(100, 8)), da.from_array(y, chunks=100)
    with dask.config.set(scheduler="synchronous"):
        inc = wrappers.Incremental(BPClassifier(hidden_layer_sizes=(16,), batch_size=20,
                                                learning_rate_init=0.01, random_state=0),
                                   scoring="accuracy", shuffle_blocks=False)
        for _ in range(5):
            inc.partial_fit(Xd, yd, classes=np.unique(y))
        est = inc.estimator_
        assert est.t_ == 5 * len(X) and est.n_iter_ == 1
        assert inc.score(Xd, yd) > 0.7
        # the same blocks in the same order through partial_fit by hand: the same network
        ref = BPClassifier(hidden_layer_sizes=(16,), batch_size=20, learning_rate_init=0.01,
                           random_state=0)
        for _ in range(5):
            for k in range(0, 600, 100):
                ref.partial_fit(X[k:k + 100], y[k:k + 100], classes=np.unique(y))
        for a, b in zip(est.coefs_, ref.coefs_):
            assert_allclose(a, b, rtol=1e-12)
