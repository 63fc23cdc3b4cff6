"""River-style online learners trained by bpfast: BPClassifier and BPRegressor.

They follow river's protocol (``learn_one`` / ``predict_one`` /
``predict_proba_one`` on dicts of features, plus the mini-batch ``learn_many``
/ ``predict_many`` / ``predict_proba_many`` on pandas DataFrames) and train a
:class:`bpfast.MLP` by true per-sample SGD: every ``learn_one`` is one compiled
update, and ``learn_many`` runs the whole batch sample by sample in one call
(the same result as a ``learn_one`` loop, faster)::

    from river import datasets, evaluate, metrics, preprocessing
    from bpfast.river import BPClassifier

    model = preprocessing.StandardScaler() | BPClassifier(hidden_layer_sizes=(32,), seed=0)
    evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())

A stream may change shape as it goes, as river expects:

* Features are matched by name, never by position.  A feature seen for the
  first time gets a new input unit whose weights start at zero (so the
  network's function is unchanged until it learns from it); new features are
  ordered by name, which makes the network independent of dict order.  A
  feature missing from ``x`` (or ``None``, or NaN in a DataFrame) counts as 0;
  a feature the model has never learned from is ignored at prediction time.
* Classes: the softmax output has one unit per label seen, in order of first
  appearance (at least two units; the second waits for the second label).  A
  new label adds an output unit with zero weights and bias.
* Growing the network restarts the momentum buffer (with ``momentum > 0``).

Targets of the regressor, and features, are used as they are: scale them
(``preprocessing.StandardScaler() | model``) when they are large, as for any
SGD-trained model.  A diverging update raises ``bpfast.DivergenceError`` and
leaves the parameters as they were before it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from river import base

from . import _validate
from ._layout import HIDDEN_ACTIVATIONS
from .mlp import MLP

__all__ = ["BPClassifier", "BPRegressor"]



def _sorted_names(names):
    """Feature names in a fixed order, whatever order the dict had."""
    try:
        return sorted(names)
    except TypeError:                     # names of mixed types
        return sorted(names, key=lambda name: (type(name).__name__, repr(name)))


class _OnlineMLP(base.Base):
    """Feature bookkeeping, network growth and per-sample updates, shared."""

    # A sample holding at least 1/DENSE_FRACTION of the features seen reaches
    # the network as a dense vector, else as a sparse row (see _vector).
    DENSE_FRACTION = 4

    def __init__(self, hidden_layer_sizes=(32,), activation="tanh", lr=0.01, momentum=0.0,
                 nesterov=False, weight_decay=0.0, dtype="float64", seed=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.dtype = dtype
        self.seed = seed
        self._features = []       # input unit j <-> self._features[j]
        self._index = {}          # feature name -> input unit
        self._net = None

    # ------------------------------------------------------------ set-up

    def _checked(self):
        """The validated hyperparameters; raises before any network exists."""
        v = _validate
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral):
            hidden = (hidden,)
        hidden = tuple(v.check_int(f"hidden_layer_sizes[{k}]", n, minimum=1)
                       for k, n in enumerate(hidden))
        momentum = v.check_real("momentum", self.momentum, nonnegative=True)
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov: expected True or False; got {self.nesterov!r}")
        return dict(
            hidden=hidden,
            activation=v.check_choice("activation", self.activation, HIDDEN_ACTIVATIONS),
            lr=v.check_real("lr", self.lr, positive=True),
            momentum=momentum,
            nesterov=bool(self.nesterov) and momentum > 0,
            weight_decay=v.check_real("weight_decay", self.weight_decay, nonnegative=True),
            dtype=v.check_dtype(self.dtype),
            seed=None if self.seed is None else v.check_int("seed", self.seed, minimum=0),
        )

    def _build(self, n_out):
        """The first network, once features and outputs are known."""
        p = self._checked()
        self._p = p
        self._plain_sgd = p["momentum"] == 0 and p["weight_decay"] == 0
        self._net = MLP([len(self._features), *p["hidden"], n_out],
                        activation=p["activation"], output=self._output, loss=self._loss,
                        dtype=p["dtype"], seed=p["seed"])

    def _resize(self, n_out):
        """Grow the input and/or output layer; new units start with zero weights."""
        old = self._net
        layers = [len(self._features), *old.layers[1:-1], n_out]
        if layers == old.layers:
            return
        net = MLP(layers, activation=old.activation, output=old.output, loss=old.loss_name,
                  dtype=old.dtype)
        for new, kept in zip((*net.weights, *net.biases), (*old.weights, *old.biases)):
            new[...] = 0
            new[tuple(slice(0, n) for n in kept.shape)] = kept
        self._net = net

    def _prepare(self, names, n_out):
        """Register unseen feature names (a dict's keys or a set), then build or grow."""
        if not self._index.keys() >= names:
            new = [name for name in names if name not in self._index]
            for name in _sorted_names(new):
                self._index[name] = len(self._features)
                self._features.append(name)
        if not self._features:
            return False                  # nothing to learn from yet
        shape = (len(self._features), n_out)
        if self._net is None:
            self._build(n_out)
        elif self._shape != shape:
            self._resize(n_out)
        self._shape = shape
        return True

    # ------------------------------------------------------------ features

    def _vector(self, x):
        """x as the network's input: a list of n Python floats when x holds at
        least 1/DENSE_FRACTION of the features seen so far (the kernel reads
        such a list itself on the one-sample short way of sgd_step and
        forward: no NumPy array is made), else one sparse row of x's features
        (the rest are 0), so that a call costs x's features, not every
        feature seen.  The two give the same numbers: both add the features
        in column order."""
        index = self._index
        n = len(self._features)
        if len(x) == n and list(x) == self._features:    # every feature, in unit order
            try:
                return [*map(float, x.values())]
            except (TypeError, ValueError, OverflowError):
                pass         # a None (missing), or not a number: the loop below sorts it out
        dense = self.DENSE_FRACTION * len(x) >= n
        values = [0.0] * n if dense else []
        columns = []
        for name, value in x.items():
            j = index.get(name)
            if j is None or value is None:
                continue
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"x[{name!r}]: expected a number; got {value!r} "
                                f"({type(value).__name__})") from None
            if dense:
                values[j] = v
            else:
                columns.append(j)
                values.append(v)
        if dense:
            return values
        # in column order: the sums then do not depend on dict order
        order = sorted(range(len(columns)), key=columns.__getitem__)
        return _validate.SparseRows.row(np.array([columns[k] for k in order], dtype=np.int64),
                                        np.array([values[k] for k in order],
                                                 dtype=self._net.dtype), n)

    def _outputs(self, x):
        """The network's outputs for one sample x, as a 1-D array."""
        return np.reshape(self._net.forward(self._vector(x)), -1)

    def _matrix(self, X):
        """A DataFrame as input rows: columns by name, NaN (missing) as 0."""
        rows = np.zeros((len(X), len(self._features)), dtype=self._net.dtype)
        columns = [self._index.get(name) for name in X.columns]
        known = [k for k, j in enumerate(columns) if j is not None]
        if known:
            values = X.iloc[:, known].to_numpy(dtype=np.float64)
            rows[:, [columns[k] for k in known]] = np.where(np.isnan(values), 0.0, values)
        return rows

    # ------------------------------------------------------------ updates

    def _step(self, vec, target):
        """One SGD update on one sample."""
        p = self._p
        if self._plain_sgd:
            self._net.sgd_step(vec, target, p["lr"])
        else:
            if isinstance(vec, list):
                vec = [vec]                                 # one (1, n) row
            self._fit_rows(vec, np.asarray([target]))

    def _fit_rows(self, rows, targets):
        """Per-sample SGD over rows in order, in one compiled call."""
        p = self._p
        self._net.fit(rows, targets, epochs=1, lr=p["lr"], batch_size=1, shuffle=False,
                      momentum=p["momentum"], nesterov=p["nesterov"],
                      weight_decay=p["weight_decay"], progress=False)

    @property
    def net(self) -> MLP | None:
        """The bpfast.MLP being trained (None before the first sample)."""
        return self._net

    @property
    def feature_names(self) -> list[Any]:
        """Input features in the order of the network's input units."""
        return list(self._features)


class BPClassifier(_OnlineMLP, base.MiniBatchClassifier):
    """Online multilayer perceptron classifier: softmax output, cross-entropy, per-sample SGD.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int
        Units per hidden layer.
    activation : {"tanh", "relu", "sigmoid", "leaky_relu", "identity"}
        Hidden activation.
    lr : float
        Learning rate of every update.
    momentum, nesterov, weight_decay
        As ``bpfast.MLP.fit`` (torch.optim.SGD semantics); with the defaults
        (0, False, 0) every update is plain SGD.
    dtype : {"float64", "float32"}
    seed : int or None
        Seeds the initial weights.
    classes : tuple or None
        Labels known in advance (one output unit each, in this order); labels
        not listed are still added when they appear.

    Examples
    --------
    >>> from bpfast.river import BPClassifier
    >>> model = BPClassifier(hidden_layer_sizes=(4,), lr=0.1, seed=0)
    >>> for x, y in [({"a": 1.0, "b": 0.0}, "yes"), ({"a": 0.0, "b": 1.0}, "no")] * 50:
    ...     model.learn_one(x, y)
    >>> model.predict_one({"a": 1.0, "b": 0.0})
    'yes'
    """

    _output = "softmax"
    _loss = "cross_entropy"

    def __init__(self, hidden_layer_sizes=(32,), activation="tanh", lr=0.01, momentum=0.0,
                 nesterov=False, weight_decay=0.0, dtype="float64", seed=None, classes=None):
        super().__init__(hidden_layer_sizes, activation, lr, momentum, nesterov, weight_decay,
                         dtype, seed)
        self.classes = classes
        self._classes = []
        self._class_index = {}
        if classes is not None:
            for label in classes:
                self._add_class(label)

    @property
    def _multiclass(self):
        return True

    @property
    def classes_(self) -> list[Any]:
        """Labels seen (or given), in the order of the output units."""
        return list(self._classes)

    def _add_class(self, label):
        if label not in self._class_index:
            self._class_index[label] = len(self._classes)
            self._classes.append(label)

    def _n_outputs(self):
        return max(2, len(self._classes))

    def learn_one(self, x: dict[Any, float], y: Any) -> None:
        self._add_class(y)
        if self._prepare(x.keys(), self._n_outputs()):
            self._step(self._vector(x), self._class_index[y])

    def learn_many(self, X: Any, y: Any) -> None:
        """Per-sample SGD over the rows in order: the same as learn_one on each row."""
        labels = list(y)
        if not self._prepare(set(X.columns), self._n_outputs()):
            for label in labels:
                self._add_class(label)
            return
        rows = self._matrix(X)
        start = 0
        for i, label in enumerate(labels):
            if label in self._class_index:
                continue
            if len(self._classes) + 1 > self._net.layers[-1]:
                # The output layer grows here: train the rows before it first.
                self._fit_segment(rows, labels, start, i)
                start = i
                self._add_class(label)
                self._resize(self._n_outputs())
            else:
                self._add_class(label)
        self._fit_segment(rows, labels, start, len(labels))

    def _fit_segment(self, rows, labels, start, stop):
        if stop > start:
            codes = np.array([self._class_index[label] for label in labels[start:stop]],
                             dtype=np.int64)
            self._fit_rows(rows[start:stop], codes)

    def _probabilities(self, outputs):
        """Softmax outputs of the labels seen, renormalised in float64."""
        p = np.asarray(outputs, dtype=np.float64)[..., :len(self._classes)]
        return p / p.sum(axis=-1, keepdims=True)

    def predict_proba_one(self, x: dict[Any, float]) -> dict[Any, float]:
        if not self._classes or self._net is None:
            return {}
        if len(self._classes) == 1:
            return {self._classes[0]: 1.0}
        # as _probabilities, in Python floats: NumPy's reductions cost more
        # than the network's forward pass for one sample
        p = self._outputs(x)[:len(self._classes)].tolist()
        total = sum(p)
        return {label: v / total for label, v in zip(self._classes, p)}

    def predict_proba_many(self, X: Any) -> Any:
        import pandas as pd
        if not self._classes or self._net is None:
            return pd.DataFrame(index=X.index)
        if len(self._classes) == 1:
            return pd.DataFrame({self._classes[0]: 1.0}, index=X.index)
        p = self._probabilities(self._net.forward(self._matrix(X)))
        return pd.DataFrame(p, columns=self._classes, index=X.index)

    def predict_many(self, X: Any) -> Any:
        import pandas as pd
        proba = self.predict_proba_many(X)
        if proba.empty:
            return pd.Series([None] * len(X), index=X.index, dtype=object)
        return proba.idxmax(axis="columns")


class BPRegressor(_OnlineMLP, base.MiniBatchRegressor):
    """Online multilayer perceptron regressor: identity output, squared error, per-sample SGD.

    The loss is bpfast's ``mse``, ½·(ŷ − y)² per sample.  Parameters are those
    of :class:`BPClassifier` without ``classes``.  Before the first update the
    prediction is 0.0.

    Examples
    --------
    >>> from bpfast.river import BPRegressor
    >>> model = BPRegressor(hidden_layer_sizes=(8,), lr=0.05, seed=0)
    >>> for _ in range(200):
    ...     for t in (0.0, 0.5, 1.0):
    ...         model.learn_one({"t": t}, 2 * t - 1)
    >>> round(model.predict_one({"t": 0.5}), 1)
    0.0
    """

    _output = "identity"
    _loss = "mse"

    def __init__(self, hidden_layer_sizes=(32,), activation="tanh", lr=0.01, momentum=0.0,
                 nesterov=False, weight_decay=0.0, dtype="float64", seed=None):
        super().__init__(hidden_layer_sizes, activation, lr, momentum, nesterov, weight_decay,
                         dtype, seed)

    def learn_one(self, x: dict[Any, float], y: Any) -> None:
        target = float(y)
        if not math.isfinite(target):
            raise ValueError(f"y: expected a finite number; got {y!r}")
        if self._prepare(x.keys(), 1):
            self._step(self._vector(x), target)

    def learn_many(self, X: Any, y: Any) -> None:
        """Per-sample SGD over the rows in order: the same as learn_one on each row."""
        targets = np.asarray(y, dtype=np.float64).reshape(-1, 1)
        if self._prepare(set(X.columns), 1):
            self._fit_rows(self._matrix(X), targets)

    def predict_one(self, x: dict[Any, float]) -> float:
        if self._net is None:
            return 0.0
        return float(self._outputs(x)[0])

    def predict_many(self, X: Any) -> Any:
        import pandas as pd
        if self._net is None:
            return pd.Series(0.0, index=X.index)
        return pd.Series(self._net.forward(self._matrix(X))[:, 0], index=X.index)
