"""The multilayer perceptron: parameters, forward pass, gradients, SGD."""

from __future__ import annotations

import functools
import os
import threading
from collections import namedtuple
from typing import TYPE_CHECKING

import numpy as np

from . import _dispatch, _validate, optim
from ._threads import WorkerChoice
from ._layout import HIDDEN_ACTIVATIONS, LOSS_OUTPUTS, LOSSES, OUTPUT_ACTIVATIONS, Layout
from .errors import DivergenceError

if TYPE_CHECKING:     # the types of the public signatures
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    from numpy.typing import ArrayLike, DTypeLike, NDArray

    from .callbacks import History
    from .optim import Optimizer, Schedule
    from .trace import Trace

__all__ = ["MLP"]

INITS = ("auto", "xavier", "he", "normal", "scaled_normal")

Backprop = namedtuple("Backprop", "weights biases z a delta y grad_w grad_b loss")
Backprop.__doc__ = """What `MLP._backprop` returns: lists per weight layer l (a has L + 1
entries, a[0] = x), each a fresh array; y the target vector of the last sample."""


_EMPTY_F64 = np.empty(0)      # an optional kernel output that is not written


def _memory_limit():
    """Bytes of physical memory (2**44 where the OS does not say).

    A network whose parameters exceed it is refused at construction, instead
    of a MemoryError half-way, an integer overflow in the layout, or the
    kernel's out-of-memory killer once an over-committed buffer is touched.
    """
    try:
        return min(2**44, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 2**44


def _init_layer(rng, init, n_in, n_out):
    """(W of shape (n_out, n_in), b of shape (n_out,)) in float64."""
    if init == "xavier":      # Glorot uniform
        limit = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-limit, limit, size=(n_out, n_in)), np.zeros(n_out)
    if init == "he":
        return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in)), np.zeros(n_out)
    if init == "scaled_normal":
        return rng.normal(0.0, np.sqrt(1.0 / n_in), size=(n_out, n_in)), rng.normal(size=n_out)
    return rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)   # "normal"


def _check_sample_weight(sample_weight, n, dtype):
    """None (unweighted: an empty array, as the kernel reads it) or n finite
    weights >= 0, not all zero, as a C-contiguous array of the network's dtype."""
    if sample_weight is None:
        return np.empty(0, dtype=dtype)
    try:
        w = np.asarray(sample_weight)
    except Exception as exc:
        raise TypeError(f"sample_weight: expected an array of {n} numbers; got "
                        f"{type(sample_weight).__name__}") from exc
    if w.dtype == bool or not (np.issubdtype(w.dtype, np.floating)
                               or np.issubdtype(w.dtype, np.integer)):
        raise TypeError(f"sample_weight: expected an array of {n} real numbers; got an "
                        f"array of dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},), one weight per sample; "
                         f"got shape {w.shape}")
    w = np.ascontiguousarray(w, dtype=dtype)
    if not np.isfinite(w).all():
        raise ValueError("sample_weight: expected finite weights; got NaN or inf")
    if (w < 0).any():
        raise ValueError(f"sample_weight: expected weights >= 0; got {w.min()}")
    if not (w > 0).any():
        raise ValueError("sample_weight: expected at least one weight > 0; got all zeros")
    return w


def _auto_init(activation):
    return "he" if activation in ("relu", "leaky_relu") else "xavier"


class MLP:
    """A multilayer perceptron trained by backpropagation and SGD.

    Parameters
    ----------
    layers : list of int
        Layer sizes including input and output, e.g. ``[784, 30, 10]``.
    activation : {"sigmoid", "tanh", "relu", "leaky_relu", "identity"}
        Activation of the hidden layers (leaky_relu has slope 0.01).
    output : {"sigmoid", "softmax", "identity", "tanh", "relu", "exp"}
        Activation of the output layer (``exp``: a = e^z, for counts and rates).
    loss : {"mse", "cross_entropy", "poisson"}
        ``mse`` is ½·Σ(a − y)² per sample; ``cross_entropy`` is −Σ y log a
        (softmax output) or the binary form (sigmoid output); ``poisson`` is
        the half Poisson deviance Σ_k [y log(y/a) − y + a] (0·log 0 = 0) and
        needs ``output="exp"`` (canonical link: δ = a − y) and targets ≥ 0.
        Every reported loss and gradient is the mean over samples (the
        weighted mean Σ w·l / Σ w where ``sample_weight`` is given).
    dtype : {"float32", "float64"}
    init : {"auto", "xavier", "he", "normal", "scaled_normal"}
        ``auto`` uses He for relu/leaky_relu layers and Glorot (Xavier)
        uniform otherwise, chosen per layer.
    seed : int or None
        Seeds the initialisation and the network's shuffling generator: same
        seed, same build, same machine -> bit-identical training.

    Notes
    -----
    Every method that takes ``X`` also takes a SciPy sparse matrix or array
    (CSR read in place; see the sparse-inputs guide).

    All parameters live in one contiguous buffer; ``weights[l]`` (shape
    ``(layers[l+1], layers[l])``) and ``biases[l]`` are writable views of it.
    A network may be shared between threads: calls that read or write its
    parameters hold the network's lock, so they run one after another.
    """

    def __init__(self, layers: Sequence[int], activation: str = "sigmoid", output: str = "sigmoid",
                 loss: str = "mse", dtype: DTypeLike = "float64", init: str = "auto",
                 seed: int | None = None) -> None:
        layers = _validate.check_layers(layers)
        _validate.check_choice("activation", activation, HIDDEN_ACTIVATIONS)
        _validate.check_choice("output", output, OUTPUT_ACTIVATIONS)
        _validate.check_choice("loss", loss, tuple(LOSSES))
        _validate.check_choice("init", init, INITS)
        dtype = _validate.check_dtype(dtype)
        needs = LOSS_OUTPUTS.get(loss)
        if needs is not None and output not in needs:
            raise ValueError(f"loss: {loss!r} needs output="
                             f"{' or '.join(repr(o) for o in needs)}; got output={output!r}")
        if seed is not None:
            seed = _validate.check_int("seed", seed, minimum=0)
        n_params = sum((n_in + 1) * n_out for n_in, n_out in zip(layers[:-1], layers[1:]))
        limit = _memory_limit()
        if n_params * dtype.itemsize > limit:
            raise ValueError(f"layers: expected a network whose {n_params} parameters fit in "
                             f"memory ({limit / 2**30:.0f} GiB); got layers={list(layers)}")
        for k, n in enumerate(layers):   # the kernel's nonzero-input lists are int32
            _validate.check_int(f"layers[{k}]", n, maximum=2**31 - 1)
        layout = Layout(layers, activation, output, loss)
        self._config = dict(layers=layers, activation=activation, output=output,
                            loss=loss, dtype=dtype.name)
        self._layout = layout
        self._dtype = dtype
        self._rng = np.random.default_rng(seed)
        params = _dispatch.kernel.aligned_zeros(layout.buffer_len, dtype)      # pads stay zero
        for l in range(len(layers) - 1):
            name = init
            if init == "auto":
                name = _auto_init(activation if l < len(layers) - 2 else output)
            W, b = _init_layer(self._rng, name, layers[l], layers[l + 1])
            layout.weight_views(params)[l][...] = W
            layout.bias_views(params)[l][...] = b
        self._set_params(params, _dispatch.kernel.aligned_zeros(layout.buffer_len, dtype))
        self.history = None

    def _set_params(self, params, velocity):
        self._params = params
        self._weights = self._layout.weight_views(params)
        self._biases = self._layout.bias_views(params)
        self._lock = threading.RLock()
        self._workspaces = {}
        # fit()'s SGD when no optimizer is given: its momentum buffer lives in
        # the network and carries over between fit calls.
        self._sgd = optim.SGD(lr=0.1)
        self._sgd._keep_buffer = True
        self._sgd._state = velocity.reshape(1, -1)
        self._sgd._bind(self)
        self._velocity = self._sgd._state[0]
        self._plain_sgd = optim.SGD(lr=0.1)     # sgd_step's: no state at all
        self.__dict__.pop("_one", None)          # the one-sample entry holds the old buffers
        self._worker_choice = WorkerChoice()     # fit's OS threads, as measured (_threads)

    # ------------------------------------------------------------ properties

    @property
    def layers(self) -> list[int]:
        """Layer sizes, input and output included."""
        return list(self._config["layers"])

    @property
    def activation(self) -> str:
        return self._config["activation"]

    @property
    def output(self) -> str:
        return self._config["output"]

    @property
    def loss_name(self) -> str:
        return self._config["loss"]

    @property
    def n_params(self) -> int:
        """Number of weights and biases."""
        return self._layout.n_params

    @property
    def dtype(self) -> np.dtype[Any]:
        """The parameters' dtype, np.float32 or np.float64."""
        return self._dtype

    @property
    def weights(self) -> tuple[NDArray[Any], ...]:
        """Tuple of writable views W[l] of shape (layers[l+1], layers[l])."""
        return self._weights

    @property
    def biases(self) -> tuple[NDArray[Any], ...]:
        """Tuple of writable views b[l] of shape (layers[l+1],)."""
        return self._biases

    def __repr__(self):
        c = self._config
        return (f"MLP(layers={list(c['layers'])}, activation={c['activation']!r}, "
                f"output={c['output']!r}, loss={c['loss']!r}, dtype={c['dtype']!r})")

    # ------------------------------------------------------------ pickling

    def __getstate__(self):
        with self._lock:
            return dict(config=self._config, params=self._params.copy(),
                        velocity=self._velocity.copy(), rng=self._rng.bit_generator.state,
                        history=self.history)

    def __setstate__(self, state):
        c = state["config"]
        self._config = dict(c)
        self._dtype = np.dtype(c["dtype"])
        self._layout = Layout(c["layers"], c["activation"], c["output"], c["loss"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        params = np.ascontiguousarray(state["params"], dtype=self._dtype)
        velocity = np.ascontiguousarray(state["velocity"], dtype=self._dtype)
        if params.shape != (self._layout.buffer_len,) or velocity.shape != params.shape:
            raise ValueError("MLP state: parameter buffer does not match its layers")
        copy = _dispatch.kernel.aligned_copy
        self._set_params(copy(params), copy(velocity))
        self.history = state.get("history")

    # ------------------------------------------------------------ internal interface
    # What the package's other modules (trace, gradcheck, io, callbacks, the
    # fit loop) use instead of the network's private members.

    def _parameters(self):
        """Fresh copies (weights, biases) of one consistent state, taken under the lock."""
        with self._lock:
            weights = [np.array(W, order="C") for W in self._weights]
            biases = [np.array(b) for b in self._biases]
        return weights, biases

    def _buffer_len(self):
        """Length of the flat parameter buffer (pads included)."""
        return self._layout.buffer_len

    def _zeros(self, rows):
        """A zeroed (rows, buffer length) array of the network's dtype: optimizer state."""
        return _dispatch.kernel.aligned_zeros((rows, self._layout.buffer_len), self._dtype)

    def _param_views(self, buffer):
        """[W[0], b[0], W[1], b[1], ...] as views of a buffer laid out like the
        parameters, in the shapes of `weights` and `biases` (torch's order)."""
        views = []
        for W, b in zip(self._layout.weight_views(buffer), self._layout.bias_views(buffer)):
            views += [W, b]
        return views

    def _finite(self):
        """True when no parameter is NaN or infinite."""
        return _dispatch.kernel.all_finite(self._params)

    def _workspace(self, n_threads):
        """The kernel's scratch for training on n_threads: (grad, ws, thread_stats),
        kept between calls (callers hold the lock)."""
        work = self._workspaces.get(n_threads)
        if work is None:
            # grad starts zeroed: the kernel leaves it so after every call, and
            # on sparse rows relies on it instead of clearing all of W[0].
            zeros = _dispatch.kernel.aligned_zeros
            work = (zeros((n_threads, self._layout.buffer_len), self._dtype),
                    self._scratch(n_threads), np.zeros((n_threads, 2)))
            self._workspaces[n_threads] = work
        return work

    def _train(self, X, targets, order, batch_size, opt, n_threads=1, sample_weight=None,
               batch_loss=None, batch_sq=None, hogwild=False, n_workers=0):
        """Run the training kernel: samples order[...] of X in minibatches of
        batch_size, each updated by `opt`.  Returns (loss sum, number correct).

        sample_weight: None or the checked weights of the rows of X (see
        `_check_sample_weight`); each batch is then averaged over its sum of
        weights and the loss sum is weighted.  batch_loss, batch_sq: None or
        float64 arrays of one entry per minibatch of this call, receiving each
        batch's loss sum and sum of ||W[l]||² before its update.

        The one call path from Python into the training kernel; callers hold
        the lock and have validated everything.
        """
        code, hyper, state, counters = opt._kernel_args(self)
        grad, ws, stats = self._workspace(n_threads)
        if sample_weight is None:
            sample_weight = np.empty(0, dtype=self._dtype)
        n_batches = -(-len(order) // batch_size)
        for name, out in (("batch_loss", batch_loss), ("batch_sq", batch_sq)):
            if out is not None and (out.dtype != np.float64 or out.shape != (n_batches,)
                                    or not out.flags.c_contiguous):
                raise ValueError(f"{name}: expected a float64 array of shape ({n_batches},)")
        if sample_weight.shape[0] not in (0, X.shape[0]):
            raise ValueError(f"sample_weight: expected {X.shape[0]} weights")
        return _dispatch.kernel.train(self._layout.spec, self._params, grad, ws, stats, X,
                                      targets.rows, targets.labels, order, batch_size,
                                      code, hyper, sample_weight,
                                      _EMPTY_F64 if batch_loss is None else batch_loss,
                                      _EMPTY_F64 if batch_sq is None else batch_sq,
                                      state, counters, hogwild=hogwild, n_workers=n_workers)

    def _snapshot(self, into=None):
        """An opaque copy of the parameters, for `_restore` (taken under the lock).

        into: an earlier snapshot of this network, overwritten instead of a new
        copy (fit takes one per epoch: for a wide first layer that is tens of
        MB, and a fresh buffer costs its page faults every time)."""
        with self._lock:
            if into is not None and into.shape == self._params.shape:
                np.copyto(into, self._params)
                return into
            return self._params.copy()

    def _restore(self, snapshot):
        """Put back the parameters of a `_snapshot` of this network."""
        with self._lock:
            self._params[...] = snapshot
            self._workspaces.clear()     # a diverged batch may leave NaN in the gradient scratch

    def _backprop(self, X, targets):
        """Everything backpropagation computes for the samples of X (boundary-checked).

        Returns a `Backprop` of fresh arrays: the parameters it used, and for
        the last sample of X its z, a, delta per layer and its target vector;
        the mean gradients and the mean loss over all samples.  The network is
        not changed.
        """
        layout = self._layout
        with self._lock:     # one consistent state, even while another thread trains
            grad, loss, ws = self._gradient(X, targets)
            weights, biases = self._parameters()
        z, a, delta = [], [_validate.dense_row(X, -1)], []
        for l in range(layout.L):
            z_l, a_l, d_l = layout.units(ws, l)
            z.append(z_l.copy())
            a.append(a_l.copy())
            delta.append(d_l.copy())
        y = layout.target(ws).copy() if targets.labels.size else targets.rows[-1].copy()
        grad_w = [np.array(W, order="C") for W in layout.weight_views(grad)]
        grad_b = [b.copy() for b in layout.bias_views(grad)]
        return Backprop(weights, biases, z, a, delta, y, grad_w, grad_b, loss)

    # ------------------------------------------------------------ data

    def _inputs(self, X, name="X"):
        return _validate.as_inputs(X, self._layout.layers[0], self._dtype, name)

    def _targets(self, Y, n, single, name="Y"):
        targets = _validate.as_targets(Y, n, self._layout.layers[-1], self._dtype, single,
                                       name)
        if self._config["loss"] == "poisson" and (targets.rows < 0).any():
            raise ValueError(f"{name}: the poisson loss needs targets >= 0; got "
                             f"{targets.rows.min()}")
        return targets

    def _data(self, X, Y, xname="X", yname="Y"):
        X, single = self._inputs(X, xname)
        one = _validate.single_target(X, single, Y)
        return X, self._targets(Y, X.shape[0], one, yname), single

    def _work_per_sample(self, X):
        """Multiply-adds per sample and pass for validated inputs X (sparse rows
        cost their entries, not n0): what sizes the fit loop's chunks."""
        return _validate.work_per_sample(X, self._layout)

    def _scratch(self, n_threads=1):
        """Kernel scratch space: z, a, delta and a target vector, one row per thread."""
        return _dispatch.kernel.aligned_zeros((n_threads, self._layout.ws_len), self._dtype)

    def _grad_buffer(self, n_threads=1):
        """A gradient buffer in the layout of the parameters, one row per thread."""
        return _dispatch.kernel.aligned_zeros((n_threads, self._layout.buffer_len), self._dtype)

    # ------------------------------------------------------------ inference

    @functools.cached_property
    def _one(self):
        """The kernel's one-sample entry for this network (see _one_sample.pxi).

        forward, predict, sgd_step and step try it first: it does the whole
        call for a finite (n0,) array of the network's dtype (and a plain
        label, target or lr), or declines having changed nothing, and the
        general path below then converts, checks, raises and rolls back.
        """
        return _dispatch.kernel.OneSample(self._layout.spec, self._params, self._layout.ws_len)

    def forward(self, X: ArrayLike) -> NDArray[Any]:
        """The output layer's activations: (n0,) -> (nL,), (n, n0) -> (n, nL).

        X may be a SciPy sparse matrix or array (read as CSR, never
        densified); it is two-dimensional, so a (1, n0) sparse row gives a
        (1, nL) batch, as a dense (1, n0) row does.
        """
        out = self._one.forward(X, self._lock)
        if out is not None:
            return out
        X, single = self._inputs(X)
        out = np.empty((X.shape[0], self._layout.layers[-1]), dtype=self._dtype)
        empty_rows = np.empty((0, self._layout.layers[-1]), dtype=self._dtype)
        with self._lock:
            _dispatch.kernel.evaluate(self._layout.spec, self._params, self._scratch()[0], X,
                                      empty_rows, _validate._EMPTY_LABELS, out)
        return out[0] if single else out

    def predict(self, X: ArrayLike) -> NDArray[np.int64] | int:
        """Class per sample: argmax of the outputs, or output >= 0.5 for one output."""
        k = self._one.predict(X, self._lock)
        if k is not None:
            return k
        out = self.forward(X)
        if out.shape[-1] == 1:
            classes = (out[..., 0] >= 0.5).astype(np.int64)
        else:
            classes = out.argmax(axis=-1).astype(np.int64)
        return int(classes) if classes.ndim == 0 else classes

    def _evaluate(self, X, targets):
        with self._lock:
            loss_sum, n_correct = _dispatch.kernel.evaluate(
                self._layout.spec, self._params, self._scratch()[0], X, targets.rows,
                targets.labels, np.empty((0, self._layout.layers[-1]), dtype=self._dtype))
        n = X.shape[0]
        result = {"loss": loss_sum / n}
        if targets.classification:
            result["accuracy"] = n_correct / n
        return result

    def loss(self, X: ArrayLike, Y: ArrayLike) -> float:
        """Mean loss over the samples, as a float."""
        X, targets, _ = self._data(X, Y)
        return self._evaluate(X, targets)["loss"]

    def evaluate(self, X: ArrayLike, Y: ArrayLike) -> dict[str, float]:
        """{"loss": mean loss, "accuracy": fraction correct (classification targets only)}."""
        X, targets, _ = self._data(X, Y)
        return self._evaluate(X, targets)

    # ------------------------------------------------------------ gradients

    def _gradient(self, X, targets, sample_weight=None):
        """Mean gradient as a flat buffer, the mean loss, and the scratch row.

        With checked `sample_weight`: the weighted means (sums over Σ w)."""
        grad = self._grad_buffer()[0]
        ws = self._scratch()[0]
        if sample_weight is None:
            sample_weight = np.empty(0, dtype=self._dtype)
        with self._lock:
            loss_sum, _ = _dispatch.kernel.gradient(self._layout.spec, self._params, grad, ws,
                                                    X, targets.rows, targets.labels,
                                                    sample_weight)
        n = float(sample_weight.sum()) if sample_weight.size else X.shape[0]
        if n != 1:
            grad /= n
        return grad, loss_sum / n, ws

    def _loss_gradient(self, X, Y, sample_weight=None):
        """(mean loss, grad_w list, grad_b list) in one pass over the data; no update.

        Weighted means with `sample_weight`.  What L-BFGS needs (the
        estimators' solver="lbfgs"): the objective and its gradient together.
        """
        X, targets, _ = self._data(X, Y)
        w = None if sample_weight is None else _check_sample_weight(sample_weight, X.shape[0],
                                                                    self._dtype)
        grad, loss, _ = self._gradient(X, targets, w)
        grad_w = [np.array(W, order="C") for W in self._layout.weight_views(grad)]
        grad_b = list(self._layout.bias_views(grad))
        return loss, grad_w, grad_b

    def gradients(self, X: ArrayLike,
                  Y: ArrayLike) -> tuple[list[NDArray[Any]], list[NDArray[Any]]]:
        """(grad_w, grad_b): lists of the mean dL/dW[l], dL/db[l]; no update."""
        X, targets, _ = self._data(X, Y)
        grad, _, _ = self._gradient(X, targets)
        grad_w = [np.array(W, order="C") for W in self._layout.weight_views(grad)]
        grad_b = list(self._layout.bias_views(grad))
        return grad_w, grad_b

    # ------------------------------------------------------------ training

    def sgd_step(self, X: ArrayLike, Y: ArrayLike, lr: float) -> float:
        """One in-place update p -= lr * (mean gradient over this batch).

        Returns the mean loss before the update.  Raises DivergenceError (and
        restores the parameters) when the loss or a parameter is not finite.
        """
        loss = self._one.sgd_step(X, Y, lr, self._lock)
        if loss is not None:
            return loss
        X, targets, _ = self._data(X, Y)
        lr = _validate.check_real("lr", lr, positive=True)
        with self._lock:
            self._plain_sgd._lr = lr
            return self._step(X, targets, self._plain_sgd, "sgd_step", f"lr={lr:g}")

    def step(self, X: ArrayLike, Y: ArrayLike, opt: Optimizer,
             sample_weight: ArrayLike | None = None) -> float:
        """One in-place update by optimizer `opt` with this batch's mean gradient.

        Returns the mean loss before the update.  With `sample_weight` (one
        weight >= 0 per sample, not all zero) the gradient and the loss are
        the weighted means Σ w·g / Σ w.  `opt` (a ``bpfast.optim``
        optimizer) makes its state on its first step and belongs to this
        network from then on.  Raises DivergenceError, with the parameters and
        the optimizer's state restored, when the loss or a parameter is not
        finite.
        """
        fast = getattr(opt, "_kernel_cache", None)      # an optimizer bound to a network
        if fast is not None and fast[0]() is self:
            loss = self._one.step(X, Y, fast[5], self._lock)
            if loss is not None:
                return loss
        X, targets, _ = self._data(X, Y)
        opt = optim.check_optimizer(opt)
        w = None if sample_weight is None else _check_sample_weight(sample_weight, X.shape[0],
                                                                    self._dtype)
        with self._lock:
            opt._bind(self)      # a network it does not belong to: ValueError, nothing changed
            return self._step(X, targets, opt, "step", f"{opt!r}", w)

    def _step(self, X, targets, opt, caller, setting, sample_weight=None):
        n = X.shape[0]
        # On sparse rows plain SGD and SparseAdam change only the entries they
        # touch: keep and check those, not every weight of the first layer.
        part = _validate.touched_entries(X, self._layout) if opt._row_sparse else None
        saved = self._params.copy() if part is None else self._params[part]
        saved_opt = opt._snapshot()
        loss_sum, _ = self._train(X, targets, np.arange(n, dtype=np.intp), n, opt,
                                  sample_weight=sample_weight)
        loss = loss_sum / (n if sample_weight is None else float(sample_weight.sum()))
        finite = self._finite() if part is None else _dispatch.kernel.all_finite(
            self._params[part])
        if not (np.isfinite(loss) and finite):
            if part is None:
                self._params[...] = saved
            else:
                self._params[part] = saved
            self._workspaces.clear()
            opt._restore(saved_opt)
            raise DivergenceError(
                f"{caller}: the loss or a parameter became NaN or infinite (loss {loss}) "
                f"with {setting}; the parameters were restored. Try a smaller lr.")
        return loss

    def fit(self, X: ArrayLike, Y: ArrayLike, epochs: int = 1, lr: float = 0.1,
            batch_size: int = 1, shuffle: bool = True, seed: int | None = None,
            momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None,
            progress: bool | None = None,
            callbacks: Iterable[Callable[[int, Mapping[str, Any]], bool]] = (),
            n_threads: int = 1, optimizer: Optimizer | None = None,
            schedule: Schedule | None = None, sample_weight: ArrayLike | None = None,
            hogwild: bool = False) -> History:
        """Train by minibatch gradient descent; returns a History (also ``net.history``).

        Without `optimizer`, the update is ``torch.optim.SGD`` exactly
        (dampening 0): ``g = grad + weight_decay * p`` (biases included),
        ``buf = momentum * buf + g``, ``g = g + momentum * buf`` if Nesterov
        else ``buf``, ``p -= lr * g``; its momentum buffer lives in the
        network and carries over between calls.  With `optimizer` (say
        ``optim.Adam(lr=1e-3)``) that optimizer makes every update, and
        `lr`, `momentum`, `nesterov`, `weight_decay` must be left at their
        defaults (they belong to the optimizer).

        Parameters
        ----------
        epochs : int >= 1
        lr : float > 0
        batch_size : int >= 1
            Samples per update; the last, smaller batch of an epoch is kept.
        shuffle : bool
            Visit the samples in a new random order each epoch.
        seed : int or None
            None draws the order from the network's own generator (seeded by
            ``MLP(seed=)``); an int uses a fresh generator seeded with it.
        momentum, nesterov, weight_decay : as torch.optim.SGD.
        validation_data : (X_val, Y_val) or None
            Evaluated after every epoch (``val_loss``, ``val_accuracy``).
        progress : None, True or False
            A progress bar (tqdm when installed, one line per epoch otherwise);
            None shows it only when stderr is a terminal.
        callbacks : sequence of callables ``cb(epoch, logs)``
            Called after every epoch; returning False stops training.
        n_threads : int >= 1
            Splits each minibatch across threads (deterministic for a given
            n_threads); batch_size 1 always runs on one thread.  How many OS
            threads run the n_threads slices follows the machine (short timed
            probes, none while other processes keep the CPUs busy); the result
            is the same bit for bit either way.
        optimizer : bpfast.optim.Optimizer or None
            The update rule (``optim.SGD``, ``Adam``, ``AdamW``, ``RMSprop``,
            ``Adagrad``, ``Rprop``); its state carries over between calls, so
            with ``shuffle=False`` two ``fit(epochs=1)`` equal one ``fit(epochs=2)``.
        schedule : bpfast.optim.Schedule or None
            Changes the optimizer's lr after every epoch (``StepLR``,
            ``ExponentialLR``, ``CosineAnnealingLR``, ``ReduceLROnPlateau``).
            Every history row has the ``lr`` its epoch used.
        sample_weight : array of shape (n,) or None
            One weight >= 0 per sample (not all zero): each sample's gradient and
            loss count w times, and every minibatch is averaged over the sum of its
            weights (a batch of zero weights takes a zero gradient).  History's
            ``loss`` is then the weighted mean Σ w·l / Σ w; ``accuracy`` stays the
            plain fraction of samples predicted correctly.
        hogwild : bool
            Per-sample SGD on `n_threads` threads at once, over the shared
            parameters and without locks (Hogwild!, as fastText and Vowpal
            Wabbit train): each thread takes its share of every chunk of
            samples.  Needs ``batch_size=1`` and plain SGD (no momentum, no
            weight decay).  **Not deterministic**: the result depends on how
            the threads interleave (a weight written by two threads at once
            may lose one of the two updates); the default, hogwild=False, is
            bit-reproducible.  Divergence checks and Ctrl-C work as usual.
            It pays on sparse rows, where two threads rarely write the same
            weights; on dense rows (MNIST) both write the same first-layer
            rows at almost every sample, the cache lines bounce between the
            cores and two threads are no faster than one.  As for
            `n_threads`, fit times both on short probes and keeps the faster
            (bench/threads.py measures it).

        Raises DivergenceError (parameters and optimizer state restored to
        the start of the epoch) when the loss or a parameter turns NaN or
        infinite.
        """
        from ._training import Fit
        return Fit(self, X, Y, epochs=epochs, lr=lr, batch_size=batch_size, shuffle=shuffle,
                   seed=seed, momentum=momentum, nesterov=nesterov,
                   weight_decay=weight_decay, validation_data=validation_data,
                   progress=progress, callbacks=callbacks, n_threads=n_threads,
                   optimizer=optimizer, schedule=schedule, sample_weight=sample_weight,
                   hogwild=hogwild).run()

    # ------------------------------------------------------------ teaching and files

    def trace(self, x: ArrayLike, y: ArrayLike, lr: float | None = None,
              lang: str = "en") -> Trace:
        """One sample step by step: z, a, delta, gradients, loss (see bpfast.trace.Trace).

        `x` may be a number for a network with one input, `y` for one output.
        With `lr`, also the parameters one SGD step would give (the network
        is not changed).  `lang` ("en" or "zh") is the language of
        ``print(tr)``; ``tr.plot()`` draws the step, ``tr.gradient_vector()``
        lists ∇L.
        """
        from .trace import trace
        return trace(self, x, y, lr, lang)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to one .npz file at exactly `path`, atomically."""
        from .io import save
        save(self, path)

    def _repr_html_(self):
        """A compact table for Jupyter (see bpfast._html)."""
        from ._html import mlp_html
        return mlp_html(self)
