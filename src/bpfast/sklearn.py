"""scikit-learn estimators trained by bpfast: BPClassifier and BPRegressor.

They take the parameters of :class:`sklearn.neural_network.MLPClassifier` and
:class:`~sklearn.neural_network.MLPRegressor` where the meaning is the same, and
train a :class:`bpfast.MLP` (``net_``) with its compiled minibatch SGD, so they
fit in pipelines, grid searches and anything else that speaks scikit-learn::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from bpfast.sklearn import BPClassifier

    clf = make_pipeline(StandardScaler(),
                        BPClassifier(hidden_layer_sizes=(64,), batch_size=1,
                                     learning_rate_init=0.01, random_state=0))
    clf.fit(X_train, y_train).score(X_test, y_test)

How the parameters map onto bpfast (``solver="sgd"``, ``learning_rate="constant"``
in scikit-learn's terms; there is no Adam or L-BFGS here):

==========================  ====================================================
scikit-learn                bpfast
==========================  ====================================================
activation="logistic"       activation="sigmoid" (also "tanh", "relu",
                            "identity", and bpfast's "leaky_relu")
learning_rate_init          lr (constant)
momentum,                   momentum, nesterov.  scikit-learn's velocity update
nesterovs_momentum          ``v = m v - lr g`` equals torch's ``buf = m buf + g``
                            with ``v = -lr buf``, so the steps are the same.
batch_size="auto"           min(200, n_samples); larger values are clipped to
                            n_samples with a warning, as in scikit-learn.
alpha                       weight_decay = alpha / batch_size (see below)
random_state                seeds the network (``MLP(seed=...)``), the shuffling
                            and the early-stopping split
==========================  ====================================================

L2 penalty.  scikit-learn adds ``alpha / (2 n_b) * sum ||W||^2`` to the mean loss
of a minibatch of ``n_b`` samples, so every step adds ``(alpha / n_b) W`` to the
gradient, on the weights only.  bpfast's SGD adds ``weight_decay * p`` to the
gradient of every parameter (torch semantics).  We choose
``weight_decay = alpha / batch_size``: the weight steps are exactly
scikit-learn's (except on an epoch's last, smaller batch, where scikit-learn
divides by its own size), and the biases are decayed by the same factor, which
scikit-learn does not do.  ``loss_curve_`` therefore reports the objective
actually minimised: the epoch's mean data loss plus
``weight_decay / 2 * (sum ||W||^2 + sum ||b||^2)`` at the end of the epoch.
With ``alpha=0`` both libraries minimise the plain data loss.

Losses.  The classifier uses a softmax output with cross-entropy for more than
two classes and a single sigmoid output with binary cross-entropy for two,
exactly as MLPClassifier; ``loss="squared_error"`` trains the same outputs with
bpfast's ``mse`` instead.  The regressor uses an identity output and bpfast's
``mse`` (½·Σ_k (a_k - y_k)² per sample, mean over samples), whose gradient is
that of scikit-learn's ``squared_error``; for several outputs scikit-learn
additionally divides the *reported* loss (not its gradient) by the number of
outputs.

Convergence follows scikit-learn: training stops when the loss (or, with
``early_stopping``, the validation score) has not improved by ``tol`` for more
than ``n_iter_no_change`` consecutive epochs, and a ConvergenceWarning is issued
when ``max_iter`` epochs run out first.  Unlike scikit-learn, the momentum buffer
lives in the network and carries over to a ``warm_start`` fit.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import _validate
from .mlp import MLP

__all__ = ["BPClassifier", "BPRegressor"]

# scikit-learn's activation names -> bpfast's.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
               "relu": "relu", "leaky_relu": "leaky_relu"}
# scikit-learn's loss names -> bpfast's.
LOSSES = {"log_loss": "cross_entropy", "squared_error": "mse"}
# bpfast's output activation names -> scikit-learn's (out_activation_).
_SKLEARN_OUTPUTS = {"sigmoid": "logistic", "softmax": "softmax", "identity": "identity"}


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False; got {value!r}")
    return bool(value)


def _check_hidden_layer_sizes(sizes):
    """An int or a sequence of ints >= 1 -> tuple (an empty tuple means no hidden layer)."""
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, (bool, np.bool_)):
        sizes = (sizes,)
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"hidden_layer_sizes: expected an int or a sequence of ints such as "
                        f"(100,); got {sizes!r}")
    return tuple(_validate.check_int(f"hidden_layer_sizes[{k}]", n, minimum=1)
                 for k, n in enumerate(sizes))


class _BaseBP(BaseEstimator):
    """What the classifier and the regressor share: parameters, fit loop, stopping."""

    _losses = ()   # the loss names this estimator accepts

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, loss=None, dtype="float64", n_threads=1):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.loss = loss
        self.dtype = dtype
        self.n_threads = n_threads

    # ------------------------------------------------------------ parameters

    def _checked_params(self):
        """Every hyperparameter checked; raises before anything is changed."""
        v = _validate
        p = {
            "hidden_layer_sizes": _check_hidden_layer_sizes(self.hidden_layer_sizes),
            "activation": ACTIVATIONS[v.check_choice("activation", self.activation,
                                                     tuple(ACTIVATIONS))],
            "loss": LOSSES[v.check_choice("loss", self.loss, self._losses)],
            "alpha": v.check_real("alpha", self.alpha, nonnegative=True),
            "lr": v.check_real("learning_rate_init", self.learning_rate_init, positive=True),
            "max_iter": v.check_int("max_iter", self.max_iter, minimum=1),
            "shuffle": _check_bool("shuffle", self.shuffle),
            "tol": v.check_real("tol", self.tol, nonnegative=True),
            "warm_start": _check_bool("warm_start", self.warm_start),
            "momentum": v.check_real("momentum", self.momentum, nonnegative=True),
            "nesterov": _check_bool("nesterovs_momentum", self.nesterovs_momentum),
            "early_stopping": _check_bool("early_stopping", self.early_stopping),
            "validation_fraction": v.check_real("validation_fraction",
                                                self.validation_fraction, positive=True,
                                                below=1.0),
            "n_iter_no_change": v.check_int("n_iter_no_change", self.n_iter_no_change,
                                            minimum=1),
            "dtype": v.check_dtype(self.dtype),
            "n_threads": v.check_int("n_threads", self.n_threads, minimum=1, maximum=1024),
        }
        if p["momentum"] > 1:
            raise ValueError(f"momentum: expected a number in [0, 1]; got {p['momentum']}")
        if self.batch_size != "auto":
            p["batch_size"] = v.check_int("batch_size", self.batch_size, minimum=1)
        else:
            p["batch_size"] = "auto"
        if isinstance(self.verbose, (bool, np.bool_)):
            p["verbose"] = bool(self.verbose)
        else:
            p["verbose"] = v.check_int("verbose", self.verbose, minimum=0) > 0
        return p

    # ------------------------------------------------------------ hooks for the subclasses

    def _validate_xy(self, X, y, reset, dtype):
        raise NotImplementedError

    def _targets(self, y, dtype, first_pass, incremental, classes):
        """(targets for MLP.fit, n_outputs, bpfast output activation)."""
        raise NotImplementedError

    def _score_outputs(self, outputs, y):
        """The validation score of network outputs for targets y (higher is better)."""
        raise NotImplementedError

    # ------------------------------------------------------------ fitting

    def _fit(self, X, y, *, incremental, classes=None):
        p = self._checked_params()
        if incremental and p["early_stopping"]:
            raise ValueError("partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "net_")
        first_pass = not fitted or (not incremental and not p["warm_start"])
        dtype = p["dtype"] if first_pass else self.net_.dtype
        X, y = self._validate_xy(X, y, reset=first_pass, dtype=dtype)
        targets, n_outputs, output = self._targets(y, X.dtype, first_pass, incremental,
                                                   classes)
        rng = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], n_outputs, output, p, rng)
        X_val = y_val = None
        if p["early_stopping"]:
            X, X_val, targets, y_val = self._split(X, y, targets, p, rng)
        epochs = 1 if incremental else p["max_iter"]
        self._train(X, targets, X_val, y_val, epochs, incremental, p)
        return self

    def _initialize(self, n_features, n_outputs, output, p, rng):
        """A new network and fresh fit statistics (scikit-learn's attribute names)."""
        layers = [n_features, *p["hidden_layer_sizes"], n_outputs]
        seed = int(rng.randint(np.iinfo(np.int32).max))
        self.net_ = MLP(layers, activation=p["activation"], output=output, loss=p["loss"],
                        dtype=p["dtype"], seed=seed)
        self.n_layers_ = len(layers)
        self.n_outputs_ = n_outputs
        self.out_activation_ = _SKLEARN_OUTPUTS[output]
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if p["early_stopping"]:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            self._best_params = self._copy_params()
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _split(self, X, y, targets, p, rng):
        """The early-stopping hold-out, stratified for single-label classification."""
        stratify = y if isinstance(self, ClassifierMixin) else None
        X_train, X_val, t_train, _, _, y_val = train_test_split(
            X, targets, y, random_state=rng, test_size=p["validation_fraction"],
            stratify=stratify)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        return X_train, X_val, t_train, y_val

    def _train(self, X, targets, X_val, y_val, epochs, incremental, p):
        n = X.shape[0]
        if p["batch_size"] == "auto":
            batch_size = min(200, n)
        else:
            batch_size = p["batch_size"]
            if batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped", stacklevel=4)
                batch_size = n
        weight_decay = p["alpha"] / batch_size
        monitor = _EpochMonitor(self, n, weight_decay, X_val, y_val, p)
        self.n_iter_ = 0
        try:
            self.net_.fit(X, targets, epochs=epochs, lr=p["lr"], batch_size=batch_size,
                          shuffle=p["shuffle"], momentum=p["momentum"],
                          nesterov=p["nesterov"] and p["momentum"] > 0,
                          weight_decay=weight_decay, progress=False, callbacks=[monitor],
                          n_threads=p["n_threads"])
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        else:
            if not incremental and not monitor.stopped and self.n_iter_ == p["max_iter"]:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({p['max_iter']}) "
                              "reached and the optimization hasn't converged yet.",
                              ConvergenceWarning, stacklevel=4)
        if p["early_stopping"]:
            self._restore_params(self._best_params)

    def _update_no_improvement_count(self, X_val, y_val, tol, verbose):
        """scikit-learn's rule: count epochs that did not improve the best by tol."""
        if X_val is not None:
            score = self._score_outputs(self.net_.forward(X_val), y_val)
            self.validation_scores_.append(score)
            if verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._copy_params()
        else:
            loss = self.loss_curve_[-1]
            if loss > self.best_loss_ - tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, loss)

    def _copy_params(self):
        return [a.copy() for a in (*self.net_.weights, *self.net_.biases)]

    def _restore_params(self, saved):
        for view, value in zip((*self.net_.weights, *self.net_.biases), saved):
            view[...] = value

    # ------------------------------------------------------------ inference

    def _forward(self, X):
        """Validated X through the network: (n_samples, n_outputs) in the network's dtype."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.net_.dtype, order="C",
                          accept_sparse="csr")
        return self.net_.forward(X)

    @property
    def coefs_(self):
        """W[l] in scikit-learn's orientation, shape (n_in, n_out): writable views of ``net_``."""
        check_is_fitted(self)
        return [W.T for W in self.net_.weights]

    @property
    def intercepts_(self):
        """b[l], shape (n_out,): writable views of ``net_``'s parameters."""
        check_is_fitted(self)
        return list(self.net_.biases)

    def to_sklearn(self):
        """This fitted estimator as a fitted scikit-learn MLPClassifier / MLPRegressor.

        It predicts the same and converts with skl2onnx; the hidden activation
        "leaky_relu" has no scikit-learn equivalent (ValueError).  See
        :func:`bpfast.export.to_sklearn`.
        """
        from .export import to_sklearn
        return to_sklearn(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True      # CSR straight into the kernel
        tags.input_tags.allow_nan = False
        return tags


class _EpochMonitor:
    """MLP.fit callback: loss_curve_, verbose lines and scikit-learn's stopping rule."""

    def __init__(self, estimator, n_train, weight_decay, X_val, y_val, p):
        self.estimator = estimator
        self.n_train = n_train
        self.weight_decay = weight_decay
        self.X_val, self.y_val = X_val, y_val
        self.tol = p["tol"]
        self.n_iter_no_change = p["n_iter_no_change"]
        self.verbose = p["verbose"]
        self.stopped = False

    def _penalty(self):
        net = self.estimator.net_
        squares = sum(float(np.vdot(a, a)) for a in (*net.weights, *net.biases))
        return 0.5 * self.weight_decay * squares

    def __call__(self, epoch, logs):
        est = self.estimator
        loss = logs["loss"] + (self._penalty() if self.weight_decay else 0.0)
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        est._update_no_improvement_count(self.X_val, self.y_val, self.tol, self.verbose)
        if est._no_improvement_count > self.n_iter_no_change:
            what = ("Validation score" if self.X_val is not None else "Training loss")
            if self.verbose:
                print(f"{what} did not improve more than tol={self.tol:f} for "
                      f"{self.n_iter_no_change} consecutive epochs. Stopping.")
            self.stopped = True
            return False
        return True


class BPClassifier(ClassifierMixin, _BaseBP):
    """A multilayer perceptron classifier trained by bpfast's compiled SGD.

    A drop-in for ``sklearn.neural_network.MLPClassifier(solver="sgd")``: same
    parameter names and meanings (see the module docstring for the exact
    mapping), same fitted attributes, and any label type (strings too).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Units per hidden layer; ``()`` gives a network without hidden layer.
    activation : {"relu", "logistic", "tanh", "identity", "leaky_relu"}, default="relu"
        Hidden activation ("logistic" is bpfast's "sigmoid").
    alpha : float >= 0, default=1e-4
        L2 penalty; bpfast's ``weight_decay = alpha / batch_size``.
    batch_size : int or "auto", default="auto"
        Samples per SGD step; "auto" is ``min(200, n_samples)``.  1 is true
        per-sample SGD, which bpfast runs at compiled speed.
    learning_rate_init : float > 0, default=1e-3
        The (constant) learning rate.
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Visit the samples in a new random order every epoch.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights, the shuffling and the validation split.
    tol : float, default=1e-4
    verbose : bool or int, default=False
        Print the loss (and validation score) after every epoch.
    warm_start : bool, default=False
        ``fit`` continues from the current network instead of a new one.
    momentum : float in [0, 1], default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified), stop when its
        accuracy stops improving, and keep the best parameters.
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int, default=10
    loss : {"log_loss", "squared_error"}, default="log_loss"
        Cross-entropy (bpfast "cross_entropy") or bpfast's "mse" on the same
        softmax / sigmoid outputs.
    dtype : {"float64", "float32"}, default="float64"
        The network's precision; inputs are converted to it.
    n_threads : int, default=1
        Threads that share each minibatch (bpfast ``fit(n_threads=...)``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    net_ : bpfast.MLP
        The fitted network; its outputs are the probabilities of ``classes_``
        (one sigmoid output, the probability of ``classes_[1]``, for two classes).
    coefs_, intercepts_ : list of ndarray
        Per layer, shapes (n_in, n_out) and (n_out,): writable views of ``net_``.
    loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_,
    n_iter_, t_, n_layers_, n_outputs_, out_activation_, n_features_in_,
    feature_names_in_ : as in MLPClassifier.
    """

    _losses = tuple(LOSSES)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, loss="log_loss", dtype="float64", n_threads=1):
        super().__init__(
            hidden_layer_sizes, activation, alpha=alpha, batch_size=batch_size,
            learning_rate_init=learning_rate_init, max_iter=max_iter, shuffle=shuffle,
            random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
            momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, loss=loss, dtype=dtype, n_threads=n_threads)

    def fit(self, X, y):
        """Train on (X, y) for up to max_iter epochs; returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing from the current network; returns self.

        ``classes`` (every label of the whole data set) is required on the first
        call and optional afterwards; ``y`` need not contain all of them.
        """
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None and hasattr(self, "classes_"):
            if not np.array_equal(self.classes_, unique_labels(np.asarray(classes))):
                raise ValueError(f"`classes={classes!r}` is not the same as on the first call "
                                 f"to partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, incremental=True, classes=classes)

    def _validate_xy(self, X, y, reset, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, order="C",
                             accept_sparse="csr")
        check_classification_targets(y)
        return X, y

    def _targets(self, y, dtype, first_pass, incremental, classes):
        present = unique_labels(y)
        if first_pass:
            self.classes_ = unique_labels(np.asarray(classes) if classes is not None else y)
            if len(self.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes; "
                                 f"got 1 class: {self.classes_!r}")
        elif self.warm_start and not incremental and set(present) != set(self.classes_):
            raise ValueError("warm_start can only be used where `y` has the same classes as "
                             f"in the previous call to fit. Previously got {self.classes_}, "
                             f"`y` has {present}")
        if np.setdiff1d(present, self.classes_).size:
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {present}.")
        codes = np.searchsorted(self.classes_, y).astype(np.int64)
        n_classes = len(self.classes_)
        if n_classes == 2:
            return codes, 1, "sigmoid"
        return codes, n_classes, "softmax"

    def _score_outputs(self, outputs, y):
        return accuracy_score(y, self._labels(outputs))

    def _probabilities(self, outputs):
        if outputs.shape[1] == 1:
            p = outputs[:, 0]
            return np.column_stack([1 - p, p])
        return outputs

    def _labels(self, outputs):
        return self.classes_[np.argmax(self._probabilities(outputs), axis=1)]

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return self._probabilities(self._forward(X))

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def predict(self, X):
        """The most probable class of each sample."""
        return self._labels(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class BPRegressor(RegressorMixin, _BaseBP):
    """A multilayer perceptron regressor trained by bpfast's compiled SGD.

    A drop-in for ``sklearn.neural_network.MLPRegressor(solver="sgd")``: an
    identity output layer trained on the squared error (bpfast's ``mse``,
    ½·Σ_k (a_k − y_k)² per sample), one output per target column.  Parameters
    are those of :class:`BPClassifier`, except:

    loss : {"squared_error"}, default="squared_error"
        The only choice (scikit-learn's "poisson" is not available).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its R²
        stops improving, keeping the best parameters.

    Attributes are those of MLPRegressor, plus ``net_`` (the bpfast.MLP).
    """

    _losses = ("squared_error",)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, loss="squared_error", dtype="float64", n_threads=1):
        super().__init__(
            hidden_layer_sizes, activation, alpha=alpha, batch_size=batch_size,
            learning_rate_init=learning_rate_init, max_iter=max_iter, shuffle=shuffle,
            random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
            momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, loss=loss, dtype=dtype, n_threads=n_threads)

    def fit(self, X, y):
        """Train on (X, y) for up to max_iter epochs; returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing from the current network; returns self."""
        return self._fit(X, y, incremental=True)

    def _validate_xy(self, X, y, reset, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, order="C", accept_sparse="csr",
                             multi_output=True, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _targets(self, y, dtype, first_pass, incremental, classes):
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if not first_pass and n_outputs != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} target column(s) as in the "
                             f"previous fit; got {n_outputs}")
        rows = np.ascontiguousarray(y.reshape(len(y), n_outputs), dtype=dtype)
        return rows, n_outputs, "identity"

    def _score_outputs(self, outputs, y):
        return r2_score(y, self._values(outputs))

    def _values(self, outputs):
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs

    def predict(self, X):
        """Predicted targets: shape (n_samples,) for one target, else (n_samples, n_targets)."""
        return self._values(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
