"""scikit-learn estimators trained by bpfast: BPClassifier and BPRegressor.

A true drop-in for :class:`sklearn.neural_network.MLPClassifier` and
:class:`~sklearn.neural_network.MLPRegressor` (docs/design.md, "scikit-learn
estimators: a true drop-in"): every parameter of the installed scikit-learn with
the same default, every fitted attribute, and the same training, computed by
bpfast's compiled kernel::

    from bpfast.sklearn import BPClassifier
    clf = BPClassifier(hidden_layer_sizes=(64,), random_state=0)   # Adam, batch 200
    clf.fit(X_train, y_train).score(X_test, y_test)

What "the same" means.  With the same ``random_state`` a fit draws the initial
weights (scikit-learn's Glorot-uniform ``_init_coef``), the early-stopping split
and the shuffling exactly as scikit-learn does, and then makes scikit-learn's
updates: its Adam (``lr_t = lr·sqrt(1 − β2^t)/(1 − β1^t)``, ``p −= lr_t·m/(sqrt(v)
+ ε)``), its SGD in velocity form (``v = momentum·v − lr·g``, ``p += v``, or the
Nesterov step), its ``learning_rate`` schedules ("constant"; "invscaling"
``lr = learning_rate_init / (t_ + 1)^power_t`` after each epoch; "adaptive"
``lr /= 5`` when the loss stalls), its L2 penalty (``alpha·W / Σw_batch`` added to
the gradient of the weights only, ``alpha/2·Σ‖W‖² / Σw_batch`` to the batch loss)
and its ``loss_curve_`` (squared error averaged over outputs; batch losses weighted
by batch length).  From the same start a fit follows scikit-learn's to ~1e-12 in
float64 (tests/test_sklearn_trajectory.py); float32 input trains a float32 network,
as scikit-learn keeps float32.  ``solver="lbfgs"`` minimises the same objective
with ``scipy.optimize.minimize(method="L-BFGS-B")``, bpfast computing the loss and
the gradient.

Sparse ``X`` (any SciPy sparse matrix or array) is read by the kernel as CSR
rows, never densified.

Differences.  A fit whose parameters turn NaN or infinite raises scikit-learn's
ValueError (which is also a :class:`bpfast.DivergenceError`) and, unlike
scikit-learn, puts back the parameters the fit started from.  bpfast adds the
hidden activation "leaky_relu", ``dtype`` and ``n_threads`` (threads that share
each minibatch), and ``BPClassifier(loss="squared_error")``.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call, type_of_target,
                                      unique_labels)
from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                      validate_data)

from . import optim
from ._training import chunk_samples
from .errors import DivergenceError
from .mlp import MLP

__all__ = ["BPClassifier", "BPRegressor", "NonFiniteParametersError"]

# scikit-learn's activation names -> bpfast's.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
               "relu": "relu", "leaky_relu": "leaky_relu"}
# scikit-learn's loss names -> bpfast's.
LOSSES = {"log_loss": "cross_entropy", "squared_error": "mse", "poisson": "poisson"}
# bpfast's output activation names -> scikit-learn's (out_activation_).
_SKLEARN_OUTPUTS = {"sigmoid": "logistic", "softmax": "softmax", "identity": "identity",
                    "exp": "exp"}
_STOCHASTIC_SOLVERS = ("sgd", "adam")
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain "
               "large values and need to be preprocessed.")


class NonFiniteParametersError(DivergenceError, ValueError):
    """A fit produced NaN or infinite parameters: scikit-learn's ValueError, and a
    :class:`bpfast.DivergenceError`.  The parameters the fit started from are back."""


class _ParamList(list):
    """coefs_ / intercepts_: a list of writable views of the network whose item
    assignment (``clf.coefs_[0] = W``) writes into the network as well."""

    _name = "coefs_"

    def __setitem__(self, index, value):
        if not isinstance(index, numbers.Integral):
            raise TypeError(f"{self._name}: assign one layer at a time (an int index); got "
                            f"{index!r}")
        _assign(self._name, index, self[index], value)


def _assign(name, i, view, value):
    value = np.asarray(value)
    if value.shape != view.shape:
        raise ValueError(f"{name}[{i}]: expected shape {view.shape}; got {value.shape}")
    view[...] = value



def _shuffled(sample_idx, random_state):
    """``sklearn.utils.shuffle(sample_idx, random_state=random_state)``: the same
    draw (a shuffle of ``arange(n)``), hence the same epoch order, without that
    function's per-call parameter validation, which costs about 1 ms: an
    eighth of a digits epoch."""
    perm = np.arange(sample_idx.shape[0])
    random_state.shuffle(perm)
    return sample_idx[perm]

class _BaseBP(BaseEstimator):
    """What the classifier and the regressor share: parameters, solvers, stopping."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None,
                                                      closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None,
                                                      closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "dtype": [None, StrOptions({"float32", "float64"}), type, np.dtype],
        "n_threads": [Interval(numbers.Integral, 1, 1024, closed="both")],
    }

    def _set_params_(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)

    # ------------------------------------------------------------ fitted parameters

    def _net(self):
        net = self.__dict__.get("net_")
        if net is None:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet: "
                                 f"coefs_ and intercepts_ exist after fit")
        return net

    # Before a network exists, assigned coefs_/intercepts_ are kept as given (a plain
    # list, as scikit-learn keeps them) and become the network at the next fit, which
    # then continues from them as from a fitted state (scikit-learn's worked examples
    # and warm-start recipes do this).

    @property
    def coefs_(self) -> list[Any]:
        """W[l] in scikit-learn's orientation, shape (n_in, n_out): writable views of
        ``net_``'s parameters; assigning (``coefs_ = [...]`` or ``coefs_[l] = W``)
        sets the network's weights."""
        if "net_" not in self.__dict__ and "_pending_coefs_" in self.__dict__:
            return self._pending_coefs_
        out = _ParamList(W.T for W in self._net().weights)
        out._name = "coefs_"
        return out

    @coefs_.setter
    def coefs_(self, values: list[ArrayLike]) -> None:
        if "net_" not in self.__dict__:
            self._pending_coefs_ = list(values)
            return
        self._set_layers("coefs_", values, [W.T for W in self._net().weights])

    @property
    def intercepts_(self) -> list[Any]:
        """b[l], shape (n_out,): writable views of ``net_``'s parameters (assignable
        like ``coefs_``)."""
        if "net_" not in self.__dict__ and "_pending_intercepts_" in self.__dict__:
            return self._pending_intercepts_
        out = _ParamList(self._net().biases)
        out._name = "intercepts_"
        return out

    @intercepts_.setter
    def intercepts_(self, values: list[ArrayLike]) -> None:
        if "net_" not in self.__dict__:
            self._pending_intercepts_ = list(values)
            return
        self._set_layers("intercepts_", values, list(self._net().biases))

    def _network_from_assigned(self, n_features, n_outputs, dtype):
        """The network of coefs_/intercepts_ assigned before any fit (checked)."""
        coefs = [np.asarray(c, dtype=dtype) for c in self.__dict__.pop("_pending_coefs_")]
        intercepts = [np.asarray(b, dtype=dtype).reshape(-1)
                      for b in self.__dict__.pop("_pending_intercepts_", [])]
        units = [n_features] + [c.shape[1] if c.ndim == 2 else -1 for c in coefs]
        if (len(intercepts) != len(coefs) or units[-1] != n_outputs
                or any(c.shape != (a, b) for c, a, b in zip(coefs, units[:-1], units[1:]))
                or any(b.shape != (c.shape[1],) for b, c in zip(intercepts, coefs))):
            raise ValueError(f"coefs_, intercepts_: expected per layer arrays of shapes "
                             f"(n_in, n_out) and (n_out,) from {n_features} features to "
                             f"{n_outputs} outputs; got {[c.shape for c in coefs]} and "
                             f"{[b.shape for b in intercepts]}")
        net = MLP(units, activation=ACTIVATIONS[self.activation],
                  output=self._output_activation(), loss=self._bp_loss(),
                  dtype=np.dtype(dtype).name, seed=0)
        for W, b, c, i in zip(net.weights, net.biases, coefs, intercepts):
            W[...], b[...] = c.T, i
        self.net_ = net
        self.n_layers_ = len(units)
        self.n_outputs_ = n_outputs
        self.out_activation_ = _SKLEARN_OUTPUTS[net.output]
        for name, value in (("n_iter_", 0), ("t_", 0), ("loss_curve_", []),
                            ("best_loss_", np.inf), ("validation_scores_", None),
                            ("best_validation_score_", None), ("_no_improvement_count", 0)):
            if not hasattr(self, name):
                setattr(self, name, value)
        self._best_params = self._copy_params()

    @staticmethod
    def _set_layers(name, values, views):
        values = list(values)
        if len(values) != len(views):
            raise ValueError(f"{name}: expected {len(views)} arrays, one per layer; got "
                             f"{len(values)}")
        arrays = [np.asarray(v) for v in values]
        for i, (view, value) in enumerate(zip(views, arrays)):
            if value.shape != view.shape:
                raise ValueError(f"{name}[{i}]: expected shape {view.shape}; got "
                                 f"{value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{name}[{i}]: expected finite values")
        for view, value in zip(views, arrays):
            view[...] = value

    def _copy_params(self):
        """The whole parameter buffer (pads included: a non-finite step can reach them)."""
        return self.net_._snapshot()

    def _restore_params(self, saved):
        self.net_._restore(saved)

    # ------------------------------------------------------------ hooks for the subclasses

    def _validate_input(self, X, y, incremental, reset, dtype):
        raise NotImplementedError

    def _network_targets(self, y):
        """(targets for the network, bpfast output activation) from the 2-D y."""
        raise NotImplementedError

    def _score_outputs(self, outputs, y, sample_weight):
        """The validation score of network outputs (higher is better; NaN when not finite)."""
        raise NotImplementedError

    # ------------------------------------------------------------ fitting

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._validate_params()
        hidden = self.hidden_layer_sizes
        if not hasattr(hidden, "__iter__"):
            hidden = [hidden]
        hidden = list(hidden)
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        assigned = "net_" not in self.__dict__ and "_pending_coefs_" in self.__dict__
        first_pass = (("net_" not in self.__dict__ and not assigned)
                      or (not self.warm_start and not incremental))
        if first_pass:
            dtype = ((np.float64, np.float32) if self.dtype is None
                     else np.dtype(self.dtype).type)
            if dtype is not np.float32 and dtype is not np.float64 and self.dtype is not None:
                raise ValueError(f"dtype: expected None, 'float32' or 'float64'; got "
                                 f"{self.dtype!r}")
        elif assigned:
            dtype = (np.float64, np.float32)
        else:
            dtype = self.net_.dtype.type
        X, y = self._validate_input(X, y, incremental, reset=first_pass, dtype=dtype)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype,
                                                 ensure_non_negative=True)
            if not (sample_weight > 0).any():
                raise ValueError("sample_weight: expected at least one weight > 0; got all "
                                 "zeros")
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        n_outputs = y.shape[1]
        if not first_pass and assigned:
            self._network_from_assigned(X.shape[1], n_outputs, X.dtype)
        if not first_pass and n_outputs != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} output column(s) as in the "
                             f"previous fit; got {n_outputs}")
        layer_units = [X.shape[1], *hidden, n_outputs]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self.__dict__.pop("_pending_coefs_", None)
            self.__dict__.pop("_pending_intercepts_", None)
            self._initialize(y, layer_units, X.dtype)
        snapshot = self.net_._snapshot()
        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, incremental)
        else:
            self._fit_lbfgs(X, y, sample_weight)
        if not self.net_._finite():
            self.net_._restore(snapshot)
            raise NonFiniteParametersError(_NON_FINITE)
        return self

    def _initialize(self, y, layer_units, dtype):
        """A new network drawn as scikit-learn draws it, and fresh fit statistics."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        output = self._output_activation()
        loss = self._bp_loss()
        self.out_activation_ = _SKLEARN_OUTPUTS.get(output, output)
        net = MLP(layer_units, activation=ACTIVATIONS[self.activation], output=output,
                  loss=loss, dtype=np.dtype(dtype).name, seed=0)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for l in range(len(layer_units) - 1):     # scikit-learn's _init_coef, same draws
            fan_in, fan_out = layer_units[l], layer_units[l + 1]
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            net.weights[l][...] = coef.astype(dtype, copy=False).T
            net.biases[l][...] = intercept.astype(dtype, copy=False)
        self.net_ = net
        self._best_params = self._copy_params()
        self.__dict__.pop("_solver", None)
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _bp_loss(self):
        return LOSSES[self.loss]

    def _new_optimizer(self):
        """scikit-learn's optimizer for this solver, as a bpfast optimizer of its network.

        The L2 penalty alpha is bpfast's weight_decay on the weights only
        (bias_decay 0), scaled by the batch (mean_decay: alpha W / sum(w_batch)).
        """
        if self.solver == "adam":
            opt = optim.Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2),
                             eps=self.epsilon, weight_decay=self.alpha)
            opt._sklearn_eps = True
        else:
            opt = optim.SGD(lr=self.learning_rate_init, momentum=self.momentum,
                            nesterov=bool(self.nesterovs_momentum and self.momentum > 0),
                            weight_decay=self.alpha)
            opt._velocity_form = True
        opt._bias_decay, opt._mean_decay = 0.0, 1.0
        return opt

    def _split(self, X, y, sample_weight):
        """scikit-learn's early-stopping hold-out (stratified for binary classification)."""
        stratify = y if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        if sample_weight is None:
            X_train, X_val, y_train, y_val = train_test_split(
                X, y, random_state=self._random_state, test_size=self.validation_fraction,
                stratify=stratify)
            w_train = w_val = None
        else:
            X_train, X_val, y_train, y_val, w_train, w_val = train_test_split(
                X, y, sample_weight, random_state=self._random_state,
                test_size=self.validation_fraction, stratify=stratify)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        return X_train, X_val, y_train, y_val, w_train, w_val

    def _fit_stochastic(self, X, y, sample_weight, incremental):
        solver = self.__dict__.get("_solver")
        if not incremental or solver is None:
            solver = self._solver = self._new_optimizer()
        if self.early_stopping:
            X, X_val, y, y_val, sample_weight, w_val = self._split(X, y, sample_weight)
            y_val = self._validation_targets(y_val)
        else:
            X_val = y_val = w_val = None
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It "
                              "is going to be clipped", stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n))
        net = self.net_
        X_in, targets, _ = net._data(X, self._network_targets(y))
        w = None
        if sample_weight is not None:
            w = np.ascontiguousarray(sample_weight, dtype=net.dtype)
        sample_idx = np.arange(n, dtype=int)
        starts = np.array([s.start for s in gen_batches(n, batch_size)], dtype=np.intp)
        lengths = np.diff(np.append(starts, n)).astype(float)
        divide = self.n_outputs_ if self._bp_loss() == "mse" else 1
        step = chunk_samples(net.n_params, batch_size)
        threads = min(self.n_threads, batch_size)
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = _shuffled(sample_idx, self._random_state)
                order = np.ascontiguousarray(sample_idx, dtype=np.intp)
                batch_loss = np.empty(len(starts))
                batch_sq = np.empty(len(starts))
                with net._lock, np.errstate(all="ignore"):
                    for lo in range(0, n, step):
                        b0, b1 = lo // batch_size, -(-min(lo + step, n) // batch_size)
                        net._train(X_in, targets, order[lo:lo + step], batch_size, solver,
                                   threads, sample_weight=w, batch_loss=batch_loss[b0:b1],
                                   batch_sq=batch_sq[b0:b1])
                with np.errstate(all="ignore"):
                    sw_sum = lengths if w is None else np.add.reduceat(w[order], starts,
                                                                       dtype=float)
                    safe = np.where(sw_sum > 0, sw_sum, 1.0)
                    per_batch = (batch_loss / safe / divide
                                 + 0.5 * self.alpha * batch_sq / safe)
                    per_batch[sw_sum <= 0] = 0.0
                    loss = float(np.dot(per_batch, lengths) / n)
                self.n_iter_ += 1
                self.loss_ = loss
                self.t_ += n
                self.loss_curve_.append(loss)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, loss))
                self._update_no_improvement_count(X_val, y_val, w_val)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    solver.lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
                if self._no_improvement_count > self.n_iter_no_change:
                    what = ("Validation score" if self.early_stopping else "Training loss")
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if self._trigger_stopping(solver, msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter})"
                                  f" reached and the optimization hasn't converged yet.",
                                  ConvergenceWarning, stacklevel=3)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=3)
        if self.early_stopping:
            self._restore_params(self._best_params)

    def _trigger_stopping(self, solver, msg):
        """scikit-learn's rule: stop, or (sgd, adaptive) divide lr by 5 and go on."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if solver.lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        solver.lr = solver.lr / 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % solver.lr)
        return False

    def _update_no_improvement_count(self, X_val, y_val, w_val):
        if self.early_stopping:
            with np.errstate(all="ignore"):
                outputs = self.net_.forward(X_val)
            score = self._score_outputs(outputs, y_val, w_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._copy_params()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _lbfgs_objective(self, X, Y, sample_weight):
        """f(packed) -> (loss, gradient) of scikit-learn's `_loss_grad_lbfgs`, computed by
        the network: the mean (weighted) data loss + alpha/2·Σ‖W‖²/Σw and its gradient,
        parameters packed as scikit-learn packs them (coefs_ raveled, then intercepts_)."""
        net = self.net_
        shapes = [(W.shape[1], W.shape[0]) for W in net.weights]
        sizes = [a * b for a, b in shapes] + [b for _, b in shapes]
        bounds = np.cumsum([0] + sizes)
        L = len(shapes)
        sw_sum = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        divide = self.n_outputs_ if self._bp_loss() == "mse" else 1

        def unpack(packed):
            for l, (W, b) in enumerate(zip(net.weights, net.biases)):
                W[...] = packed[bounds[l]:bounds[l + 1]].reshape(shapes[l]).T
                b[...] = packed[bounds[L + l]:bounds[L + l + 1]]

        def objective(packed):
            unpack(packed)
            with np.errstate(all="ignore"):
                loss, grad_w, grad_b = net._loss_gradient(X, Y, sample_weight)
                squares = sum(float(np.vdot(W, W)) for W in net.weights)
                loss = loss / divide + 0.5 * self.alpha * squares / sw_sum
                grad = np.concatenate(
                    [(g + (self.alpha / sw_sum) * W).T.ravel()
                     for g, W in zip(grad_w, net.weights)] + [g.ravel() for g in grad_b])
            return loss, grad.astype(np.float64)

        def pack():
            return np.concatenate([W.T.ravel() for W in net.weights]
                                  + [b.ravel() for b in net.biases]).astype(np.float64)

        return objective, pack, unpack

    def _fit_lbfgs(self, X, y, sample_weight):
        import scipy.optimize
        from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
        from sklearn.utils.optimize import _check_optimize_result

        net = self.net_
        X_in, targets, _ = net._data(X, self._network_targets(y))
        Y = targets.labels if targets.labels.size else targets.rows
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=net.dtype)
        objective, pack, unpack = self._lbfgs_objective(X_in, Y, w)
        iprint = 1 if self.verbose is True or self.verbose >= 1 else -1
        result = scipy.optimize.minimize(
            objective, pack(), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                     **_get_additional_lbfgs_options_dict("iprint", iprint)})
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(result.fun)
        unpack(result.x)

    # ------------------------------------------------------------ inference

    def _forward(self, X):
        """Validated X through the network: (n_samples, n_outputs) in the network's dtype."""
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=self.net_.dtype, order="C",
                          accept_sparse="csr")
        return self.net_.forward(X)

    def to_sklearn(self) -> Any:
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


_PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Units per hidden layer.
    activation : {"relu", "logistic", "tanh", "identity", "leaky_relu"}, default="relu"
        Hidden activation ("logistic" is bpfast's "sigmoid"; "leaky_relu", slope
        0.01, is bpfast's addition).
    solver : {"adam", "sgd", "lbfgs"}, default="adam"
        scikit-learn's Adam, SGD with (Nesterov) momentum, or L-BFGS-B (scipy) on
        the whole data set.
    alpha : float >= 0, default=1e-4
        L2 penalty on the weights (not the biases), scikit-learn's: ``alpha·W / Σw``
        of the batch added to the gradient.
    batch_size : int or "auto", default="auto"
        Samples per update for adam and sgd; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        The sgd solver's schedule (see the module docstring); adam and lbfgs ignore it.
    learning_rate_init : float > 0, default=1e-3
    power_t : float >= 0, default=0.5
        The exponent of "invscaling".
    max_iter : int, default=200
        Epochs (adam, sgd) or iterations (lbfgs).
    shuffle : bool, default=True
        Visit the samples in a new random order every epoch (adam, sgd).
    random_state : int, RandomState or None, default=None
        The initial weights, the shuffling and the validation split, drawn as
        scikit-learn draws them.
    tol : float >= 0, default=1e-4
        Improvement below which an epoch counts as no improvement (adam, sgd);
        lbfgs's gtol.
    verbose : bool or int, default=False
        Print the loss (and validation score) after every epoch.
    warm_start : bool, default=False
        ``fit`` continues from the current parameters (with a new optimizer).
    momentum : float in [0, 1], default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when its score stops
        improving by ``tol``, and keep the best parameters.
    validation_fraction : float in [0, 1), default=0.1
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float > 0, default=1e-8
        Adam's ε (scikit-learn's placement, outside the bias correction).
    n_iter_no_change : int or np.inf, default=10
        Epochs without improvement before stopping (adam, sgd).
    max_fun : int, default=15000
        lbfgs's maximum number of loss evaluations.
    dtype : None, "float32" or "float64", default=None
        The network's precision; None keeps float32 input in float32 and trains
        everything else in float64, as scikit-learn does.
    n_threads : int in [1, 1024], default=1
        Threads that share each minibatch (bpfast ``fit(n_threads=...)``;
        deterministic for a given number)."""


class BPClassifier(ClassifierMixin, _BaseBP):
    __doc__ = """A multilayer perceptron classifier: scikit-learn's MLPClassifier, trained by
    bpfast's compiled kernel.

    Any label type (strings too), binary (one logistic output), multiclass (softmax)
    or multilabel-indicator ``y`` (one logistic output per label; ``predict``
    returns the 0/1 indicator matrix), all trained on the log-loss.
    """ + _PARAMETERS_DOC + """
    loss : {"log_loss", "squared_error"}, default="log_loss"
        bpfast's addition: "squared_error" trains the same outputs on ½·Σ(a − y)².

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    net_ : bpfast.MLP
        The fitted network; its outputs are the probabilities of ``classes_``.
    coefs_, intercepts_ : list of ndarray
        Per layer, shapes (n_in, n_out) and (n_out,): writable views of ``net_``.
    loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_,
    n_iter_, t_, n_layers_, n_outputs_, out_activation_, n_features_in_,
    feature_names_in_ : as in MLPClassifier.
    """

    _parameter_constraints = {**_BaseBP._parameter_constraints,
                              "loss": [StrOptions({"log_loss", "squared_error"})]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, loss="log_loss", dtype=None, n_threads=1):
        self._set_params_(**{k: v for k, v in locals().items()
                             if k not in ("self", "__class__")})

    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None) -> Any:
        """Train on (X, y) (labels or a multilabel indicator matrix); returns self.

        ``sample_weight`` (one weight >= 0 per sample) scales each sample's loss
        and gradient, as scikit-learn's.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> BPClassifier:
        """One epoch over (X, y), continuing from the current network; returns self.

        ``classes`` (every label of the whole data set) is required on the first
        call and optional afterwards; ``y`` need not contain all of them.  Only
        for the stochastic solvers (not "lbfgs"), as in scikit-learn.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, multi_output=True, dtype=dtype, order="C",
                             reset=reset, accept_sparse="csr")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _network_targets(self, y):
        if self._label_binarizer.y_type_ == "multiclass":
            return np.argmax(y, axis=1).astype(np.int64)     # labels: the kernel one-hots
        if y.shape[1] == 1:
            return y[:, 0].astype(np.int64)                  # binary 0/1 labels
        return y.astype(np.float64)                          # multilabel indicator rows

    def _validation_targets(self, y_val):
        return self._label_binarizer.inverse_transform(y_val)

    def _labels(self, outputs):
        if self.n_outputs_ == 1:
            outputs = outputs.ravel()
        return self._label_binarizer.inverse_transform(outputs)

    def _score_outputs(self, outputs, y, sample_weight):
        return float(accuracy_score(y, self._labels(outputs), sample_weight=sample_weight))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The most probable class of each sample (the 0/1 indicator matrix for
        multilabel ``y``)."""
        return self._labels(self._forward(X))

    def predict_proba(self, X: ArrayLike) -> NDArray[Any]:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            p = y_pred.ravel()
            return np.vstack([1 - p, p]).T
        return y_pred

    def predict_log_proba(self, X: ArrayLike) -> NDArray[Any]:
        """log(predict_proba(X))."""
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class BPRegressor(RegressorMixin, _BaseBP):
    __doc__ = """A multilayer perceptron regressor: scikit-learn's MLPRegressor, trained by
    bpfast's compiled kernel.

    One output per target column: identity outputs on the (half) squared error, or
    exp outputs on the half Poisson deviance with ``loss="poisson"`` (targets >= 0).

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
""" + _PARAMETERS_DOC.split("----------", 1)[1] + """

    Attributes are those of MLPRegressor, plus ``net_`` (the bpfast.MLP).
    """

    _parameter_constraints = {**_BaseBP._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dtype=None, n_threads=1):
        self._set_params_(**{k: v for k, v in locals().items()
                             if k not in ("self", "__class__")})

    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None) -> Any:
        """Train on (X, y); returns self.  ``sample_weight`` as scikit-learn's."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: ArrayLike, y: ArrayLike,
                    sample_weight: ArrayLike | None = None) -> BPRegressor:
        """One epoch over (X, y), continuing from the current network; returns self
        (stochastic solvers only)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=dtype,
                             order="C", reset=reset, accept_sparse="csr")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(f"y: the poisson loss needs targets >= 0; got {y.min()}")
        return X, y

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _network_targets(self, y):
        return y

    def _validation_targets(self, y_val):
        return y_val

    def _score_outputs(self, outputs, y, sample_weight):
        pred = outputs.ravel() if outputs.shape[1] == 1 else outputs
        if not np.isfinite(pred).all():
            return np.nan
        return float(r2_score(y, pred, sample_weight=sample_weight))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Predicted targets: shape (n_samples,) for one target, else (n_samples, n_targets)."""
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
