"""Optimizers and learning-rate schedules with torch.optim's semantics.

    >>> from bpfast import optim
    >>> opt = optim.Adam(lr=1e-3)
    >>> net.fit(X, y, optimizer=opt, schedule=optim.CosineAnnealingLR(T_max=10), epochs=10)
    >>> net.step(x_batch, y_batch, opt)          # one update, returns the loss before it

Each optimizer makes exactly the update of the ``torch.optim`` class of the
same name (single-tensor algorithm, ``maximize=False``) fed the same mean
gradients.  The update runs inside the compiled kernel at every batch size,
including 1: an optimizer only tells the kernel which rule to apply (a code),
with which hyperparameters (a small float64 array) and on which state (one
buffer of slots laid out like the parameters, plus a step count).

An optimizer holds its own state, made on its first step for a network (it
then belongs to that network: stepping another one is a ValueError).  ``lr``
is readable and writable; ``state_dict()`` / ``load_state_dict()`` use
torch's layout (``{"state": {i: {...}}, "param_groups": [{...}]}`` with the
parameters numbered W[0], b[0], W[1], b[1], ... and NumPy arrays of the
parameters' shapes); pickling keeps the state.

A schedule changes an optimizer's ``lr`` after every epoch of ``fit``, as
torch's ``scheduler.step()`` called once per epoch does; it counts its own
epochs across ``fit`` calls.

Adding a rule takes one class here (its hyperparameters, state slots and
checks) and one loop in the kernel's ``_update.pxi``.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from . import _dispatch, _validate

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "SparseAdam", "RMSprop", "Adagrad", "Rprop",
           "Adamax", "Schedule", "StepLR", "ExponentialLR", "CosineAnnealingLR",
           "ReduceLROnPlateau"]

# Rule codes shared with the kernel (_update.pxi, RULE_*).
_SGD, _ADAM, _RMSPROP, _ADAGRAD, _RPROP, _ADAMAX, _SPARSE_ADAM = range(7)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False; got {value!r}")
    return bool(value)


def _check_unit(name, value):
    """A number in [0, 1)."""
    value = _validate.check_real(name, value, nonnegative=True)
    if value >= 1:
        raise ValueError(f"{name}: expected a number in [0, 1); got {value}")
    return value


def _check_pair(name, value, check):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"{name}: expected a pair of numbers; got {value!r}")
    return tuple(check(f"{name}[{k}]", v) for k, v in enumerate(value))


class Optimizer:
    """Base class: hyperparameters, state and the binding to one network.

    A subclass sets ``_rule`` (the kernel's code), lists its hyperparameters
    in torch's order (``_hyperparameters``), the kernel's arguments
    (``_args``), its state slots in torch's names (``_slots``) and how a
    slot starts (``_initial``).
    """

    _rule: int | None = None
    # (network weakref, code, hyper, state, counters, the kernel's StepRule of
    # them) of the bound network
    _kernel_cache: tuple[Any, ...] | None = None

    def __init__(self, lr: float) -> None:
        self.lr = lr
        # weak reference to the network this optimizer steps
        self._net: weakref.ReferenceType[Any] | None = None
        self._state: np.ndarray | None = None   # (n_slots, buffer length) in the network's dtype
        self._counters = np.zeros(1)   # [step count]
        self._pending: dict[int, dict[str, Any]] | None = None   # a loaded state_dict's, for binding
        self._bias_decay = 1.0    # torch decays the biases as well as the weights
        # 1.0: weight_decay is multiplied by the batch scale 1/sum(w), as
        # scikit-learn's alpha (gradient + alpha W / n_batch); torch: 0.0
        self._mean_decay = 0.0

    # ---------------------------------------------------------- hyperparameters

    @property
    def lr(self) -> float:
        """The learning rate of the next step (a schedule changes it per epoch)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _validate.check_real("lr", value, positive=True)

    def _hyperparameters(self):
        """{name: value} in torch's param_group order."""
        raise NotImplementedError

    def _args(self):
        """The rule's own numbers, as the kernel reads them after lr, weight_decay."""
        raise NotImplementedError

    def _slots(self):
        """Names of the state buffers (torch's), in the kernel's slot order."""
        raise NotImplementedError

    def _initial(self, slot):
        """The value a slot starts at."""
        return 0.0

    def _written_slots(self):
        """How many state rows (the first ones) a step writes: all of them, unless
        a rule keeps a slot it does not use."""
        return len(self._slots())

    @property
    def _row_sparse(self):
        """True when a step on sparse rows changes only the rows of W[0] they
        touch (and the layers after): plain SGD and SparseAdam."""
        return False

    @property
    def _weight_decay(self):
        return self._hyperparameters().get("weight_decay", 0.0)

    def _hyper(self):
        """The kernel's hyperparameter array: lr, weight_decay, bias_decay, mean_decay, args
        (positions H_* in _update.pxi)."""
        return np.array([self._lr, self._weight_decay, self._bias_decay, self._mean_decay,
                         *self._args()], dtype=np.float64)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyperparameters().items())
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------- binding and state

    @property
    def steps(self) -> int:
        """Number of updates taken so far (minibatches)."""
        return int(self._counters[0])

    def _bound_net(self):
        return self._net() if self._net is not None else None

    def __setattr__(self, name: str, value: Any) -> None:
        # Whatever changes (lr, another hyperparameter, the state, the
        # binding) makes the kernel's arguments be built again.
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_kernel_cache", None)

    def _kernel_args(self, net):
        """(rule code, hyper, state, counters) for a step of `net`, binding on first use.

        Built once and kept (in ``_kernel_cache``, with the network they are
        for and the kernel's StepRule of them, checked once, which the
        network's one-sample step takes) until an attribute of the optimizer
        changes: a one-sample step then costs no array construction and no
        check of them.
        """
        self._bind(net)
        cache = self._kernel_cache
        if cache is None:
            hyper = self._hyper()
            hyper.setflags(write=False)
            args = (self._rule, hyper, self._state, self._counters)
            cache = (self._net, *args, _dispatch.kernel.StepRule(*args))
            object.__setattr__(self, "_kernel_cache", cache)
        return cache[1:5]

    def _net_lock(self):
        """The lock of the bound network, under which its steps write this state
        in place (a no-op before the first step)."""
        net = self._bound_net()
        return contextlib.nullcontext() if net is None else net._lock

    def _bind(self, net):
        bound = self._bound_net()
        if bound is net:
            return
        if bound is not None:
            raise ValueError(f"optimizer: this {type(self).__name__} already steps another "
                             f"network ({bound!r}); make one optimizer per network")
        slots = self._slots()
        if (self._state is not None and self._state.shape == (len(slots), net._buffer_len())
                and self._state.dtype == net.dtype and self._pending is None):
            self._net = weakref.ref(net)      # an unpickled optimizer meets its network
            return
        if self._state is not None and self._pending is None and self.steps > 0:
            raise ValueError(f"optimizer: this {type(self).__name__}'s state was made for "
                             f"another network layout or dtype; expected a network like the "
                             f"one it stepped, got {net!r}")
        state = net._zeros(len(slots))
        for k, slot in enumerate(slots):
            state[k] = self._initial(slot)     # pads too: their gradient is 0, so is their step
        counters = np.zeros(1)
        if self._pending is not None:
            counters[0] = self._apply_pending(net, state)
        self._state, self._counters, self._pending = state, counters, None
        self._net = weakref.ref(net)

    def _apply_pending(self, net, state):
        """Write a loaded state_dict's arrays into `state`; return its step count."""
        slots = self._slots()
        n_tensors = 2 * (len(net.layers) - 1)
        pending = self._pending
        if set(pending) != set(range(n_tensors)):
            raise ValueError(f"state_dict: expected state for parameters 0..{n_tensors - 1} "
                             f"of {net!r}; got {sorted(pending)}")
        for k, slot in enumerate(slots):
            views = net._param_views(state[k])
            for i, view in enumerate(views):
                entry = pending[i]
                if slot not in entry:
                    raise ValueError(f"state_dict: state[{i}] lacks {slot!r}; expected "
                                     f"the keys {list(slots)}")
                value = np.asarray(entry[slot])
                if value.shape != view.shape:
                    raise ValueError(f"state_dict: state[{i}][{slot!r}] has shape "
                                     f"{value.shape}; expected {view.shape}")
                view[...] = value
        return float(pending[0].get("step", 1.0))

    def _snapshot(self):
        """A copy of the state and lr, for `_restore` (DivergenceError, rejected calls):
        of the state, the rows a step writes (see `_written_slots`)."""
        state = None if self._state is None else self._state[:self._written_slots()].copy()
        return (state, self._counters.copy(), self._lr)

    def _restore(self, snapshot):
        state, counters, lr = snapshot
        if (state is not None and self._state is not None
                and state.shape[1:] == self._state.shape[1:]
                and state.shape[0] <= self._state.shape[0]):
            self._state[:state.shape[0]] = state
        else:
            self._state = state
        self._counters[...] = counters
        self._lr = lr

    def state_dict(self) -> dict[str, Any]:
        """The state in torch's layout, as plain numbers and fresh NumPy arrays.

        ``{"state": {i: {"step": t, slot: array, ...}}, "param_groups": [{...,
        "params": [0, 1, ...]}]}``; parameter i is W[0], b[0], W[1], b[1], ...
        in the shapes of ``net.weights`` and ``net.biases``.  Empty state
        before the first step.
        """
        with self._net_lock():     # one whole step's state, not a step half-written
            return self._state_dict()

    def _state_dict(self) -> dict[str, Any]:
        """state_dict's copy, taken under the network's lock."""
        net = self._bound_net()
        group = dict(self._hyperparameters())
        state: dict[int, dict[str, Any]] = {}
        if net is not None and self.steps > 0 and self._state is not None:
            slots = self._slots()
            per_slot = [net._param_views(self._state[k]) for k in range(len(slots))]
            for i in range(2 * (len(net.layers) - 1)):
                entry: dict[str, Any] = {"step": float(self._counters[0])}
                for k, slot in enumerate(slots):
                    entry[slot] = np.array(per_slot[k][i], order="C")
                state[i] = entry
            group["params"] = list(range(2 * (len(net.layers) - 1)))
        else:
            group["params"] = []
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters and state saved by `state_dict` (or torch's, as NumPy)."""
        if (not isinstance(state_dict, dict) or "param_groups" not in state_dict
                or "state" not in state_dict):
            raise TypeError(f"state_dict: expected a dict with 'state' and 'param_groups'; "
                            f"got {type(state_dict).__name__}")
        groups = state_dict["param_groups"]
        if not isinstance(groups, (list, tuple)) or len(groups) != 1:
            raise ValueError("state_dict: expected exactly one param group")
        names = self._hyperparameters()
        given = {k: v for k, v in groups[0].items() if k in names}
        fresh = type(self)(**{**names, **given})      # validates every hyperparameter
        state = state_dict["state"]
        if not isinstance(state, dict):
            raise TypeError("state_dict: 'state' must be a dict {parameter index: {...}}")
        pending = {int(k): dict(v) for k, v in state.items()} if state else None
        with self._net_lock():
            self._load(fresh, pending)

    def _load(self, fresh, pending):
        """load_state_dict's changes: the hyperparameters of `fresh`, the state `pending`."""
        net = self._bound_net()
        self.__dict__.update({k: v for k, v in fresh.__dict__.items()
                              if k == "_lr" or not k.startswith("_")})
        self._pending = pending
        if pending is None:
            self._state, self._counters = None, np.zeros(1)
        if net is not None:
            self._net = None
            try:
                self._bind(net)
            except ValueError:
                self._net = weakref.ref(net)
                raise

    def __getstate__(self) -> dict[str, Any]:
        with self._net_lock():   # copies of one whole step's state
            state = dict(self.__dict__)
            for name in ("_state", "_counters"):
                if state[name] is not None:
                    state[name] = state[name].copy()
        state["_net"] = None     # the binding is by identity, which pickling cannot keep
        state.pop("_kernel_cache", None)
        return state


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD.

    g = ∇L + weight_decay·p (biases too); with momentum, buf = g on the first
    step and momentum·buf + (1 − dampening)·g after; g = g + momentum·buf
    (Nesterov) or buf; p ← p − lr·g.
    """

    _rule = _SGD

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(lr)
        v = _validate
        self.momentum = v.check_real("momentum", momentum, nonnegative=True)
        self.dampening = v.check_real("dampening", dampening)
        self.weight_decay = v.check_real("weight_decay", weight_decay, nonnegative=True)
        self.nesterov = _check_bool("nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov: Nesterov momentum needs momentum > 0 and dampening 0; "
                             f"got momentum={self.momentum}, dampening={self.dampening}")
        self._keep_buffer = False
        # True: scikit-learn's velocity form (v = momentum v - lr g; p += v), which
        # differs from torch's buffer form only when lr changes between steps
        self._velocity_form = False

    def _hyperparameters(self):
        return dict(lr=self._lr, momentum=self.momentum, dampening=self.dampening,
                    weight_decay=self.weight_decay, nesterov=self.nesterov)

    def _args(self):
        return (self.momentum, self.dampening, float(self.nesterov), float(self._velocity_form))

    def _slots(self):
        return ("momentum_buffer",) if self.momentum != 0 or self._keep_buffer else ()

    def _written_slots(self):
        # the network's own SGD keeps its buffer at momentum 0, and never writes it then
        return 1 if self.momentum != 0 else 0

    @property
    def _row_sparse(self):
        return self.momentum == 0 and self.weight_decay == 0

    def _configure(self, lr, momentum, nesterov, weight_decay):
        """Set already-checked hyperparameters (the network's own SGD, per fit call)."""
        self._lr, self.momentum, self.nesterov, self.weight_decay = (
            lr, momentum, nesterov, weight_decay)


class Adam(Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam; weight_decay is added to the gradient."""

    _rule = _ADAM
    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(lr)
        self.betas = _check_pair("betas", betas, _check_unit)
        self.eps = _validate.check_real("eps", eps, nonnegative=True)
        self.weight_decay = _validate.check_real("weight_decay", weight_decay, nonnegative=True)
        self.amsgrad = _check_bool("amsgrad", amsgrad)
        # True: scikit-learn's AdamOptimizer (eps outside the bias correction:
        # p -= lr sqrt(1 - beta2^t) / (1 - beta1^t) m / (sqrt(v) + eps)); amsgrad ignored
        self._sklearn_eps = False

    def _hyperparameters(self):
        return dict(lr=self._lr, betas=self.betas, eps=self.eps,
                    weight_decay=self.weight_decay, amsgrad=self.amsgrad)

    def _args(self):
        return (*self.betas, self.eps, float(self.amsgrad), float(self._decoupled),
                float(self._sklearn_eps))

    def _slots(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter), as torch.optim.AdamW: p ← p·(1 − lr·weight_decay)
    before the Adam step (decoupled weight decay)."""

    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(lr, betas, eps, weight_decay, amsgrad)


class SparseAdam(Optimizer):
    """Lazy Adam for large sparse inputs, as torch.optim.SparseAdam on the first layer.

    The weights of the first layer, W[0], get torch's SparseAdam: only the
    rows of the inputs present in the batch (a nonzero value in that column,
    in any of its samples) update their moments and move, with the bias
    correction of the global step count t:
    m += (g − m)(1 − β1), v += (g² − v)(1 − β2),
    p −= lr·√(1 − β2^t)/(1 − β1^t) · m/(√v + eps).  Rows absent from a batch
    keep their parameters and moments.  Every other parameter (b[0] and the
    later layers, whose gradients are dense) gets torch.optim.Adam with the
    same lr, betas and eps.  So a step on sparse rows costs the batch's
    non-zeros times the first layer's width, not n0 times it, as an
    ``nn.EmbeddingBag(sparse=True)`` first layer stepped by SparseAdam with
    Adam for the rest does in torch.
    """

    _rule = _SPARSE_ADAM

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.betas = _check_pair("betas", betas, _check_unit)
        self.eps = _validate.check_real("eps", eps, positive=True)   # torch: 0 < eps

    def _hyperparameters(self):
        return dict(lr=self._lr, betas=self.betas, eps=self.eps)

    def _args(self):
        return (*self.betas, self.eps, 0.0, 0.0, 0.0)   # as Adam's: no amsgrad, no decoupling, torch's eps

    def _slots(self):
        return ("exp_avg", "exp_avg_sq")

    @property
    def _row_sparse(self):
        return True


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop (optionally centered, with momentum)."""

    _rule = _RMSPROP

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(lr)
        v = _validate
        self.alpha = v.check_real("alpha", alpha, nonnegative=True)
        self.eps = v.check_real("eps", eps, nonnegative=True)
        self.weight_decay = v.check_real("weight_decay", weight_decay, nonnegative=True)
        self.momentum = v.check_real("momentum", momentum, nonnegative=True)
        self.centered = _check_bool("centered", centered)

    def _hyperparameters(self):
        return dict(lr=self._lr, alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay,
                    momentum=self.momentum, centered=self.centered)

    def _args(self):
        return (self.alpha, self.eps, self.momentum, float(self.centered))

    def _slots(self):
        return (("square_avg",) + (("grad_avg",) if self.centered else ())
                + (("momentum_buffer",) if self.momentum > 0 else ()))


class Adagrad(Optimizer):
    """Adagrad, as torch.optim.Adagrad: lr / (1 + (t − 1)·lr_decay) · g / (√Σg² + eps)."""

    _rule = _ADAGRAD

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(lr)
        v = _validate
        self.lr_decay = v.check_real("lr_decay", lr_decay, nonnegative=True)
        self.weight_decay = v.check_real("weight_decay", weight_decay, nonnegative=True)
        self.initial_accumulator_value = v.check_real(
            "initial_accumulator_value", initial_accumulator_value, nonnegative=True)
        self.eps = v.check_real("eps", eps, nonnegative=True)

    def _hyperparameters(self):
        return dict(lr=self._lr, lr_decay=self.lr_decay, weight_decay=self.weight_decay,
                    initial_accumulator_value=self.initial_accumulator_value, eps=self.eps)

    def _args(self):
        return (self.lr_decay, self.eps)

    def _slots(self):
        return ("sum",)

    def _initial(self, slot):
        return self.initial_accumulator_value


class Rprop(Optimizer):
    """Resilient backpropagation, as torch.optim.Rprop (FANN's default rule).

    Each parameter's step size starts at lr, grows by etas[1] while its
    gradient keeps its sign and shrinks by etas[0] when it flips, within
    step_sizes; the parameter moves by its step size against the gradient's
    sign.  Changing lr after the first step has no effect (as in torch).
    """

    _rule = _RPROP

    def __init__(self, lr: float = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50.0)) -> None:
        super().__init__(lr)
        self.etas = _check_pair("etas", etas, lambda n, x: _validate.check_real(n, x, positive=True))
        if not self.etas[0] < 1 < self.etas[1]:
            raise ValueError(f"etas: expected 0 < etas[0] < 1 < etas[1]; got {self.etas}")
        self.step_sizes = _check_pair(
            "step_sizes", step_sizes, lambda n, x: _validate.check_real(n, x, nonnegative=True))
        if self.step_sizes[0] > self.step_sizes[1]:
            raise ValueError(f"step_sizes: expected (minimum, maximum) with minimum <= maximum; "
                             f"got {self.step_sizes}")

    def _hyperparameters(self):
        return dict(lr=self._lr, etas=self.etas, step_sizes=self.step_sizes)

    def _args(self):
        return (*self.etas, *self.step_sizes)

    def _slots(self):
        return ("prev", "step_size")

    def _initial(self, slot):
        return self._lr if slot == "step_size" else 0.0


class Adamax(Optimizer):
    """Adamax (Adam with the infinity norm), as torch.optim.Adamax.

    ``m += (1 − β₁)(g − m);  u = max(β₂·u, |g| + eps);  p ← p − lr/(1 − β₁ᵗ) · m/u``.
    """

    _rule = _ADAMAX

    def __init__(self, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.betas = _check_pair("betas", betas, _check_unit)
        self.eps = _validate.check_real("eps", eps, nonnegative=True)
        self.weight_decay = _validate.check_real("weight_decay", weight_decay, nonnegative=True)

    def _hyperparameters(self):
        return dict(lr=self._lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def _args(self):
        return (*self.betas, self.eps)

    def _slots(self):
        return ("exp_avg", "exp_inf")


# ====================================================================== schedules


class Schedule:
    """Base class: changes an optimizer's lr after every epoch of fit.

    The first fit that uses a schedule binds it to that fit's optimizer and
    takes the optimizer's lr as the base; afterwards it sets the lr of every
    epoch itself (also at the start of a later fit), counting its own epochs
    across fit calls, as torch's scheduler stepped once per epoch.
    """

    monitor: str | None = None

    def __init__(self) -> None:
        self.last_epoch = 0
        self.base_lr: float | None = None
        self._lr: float | None = None
        self._opt: Optimizer | None = None

    @property
    def lr(self) -> float | None:
        """The lr of the coming epoch (None before the first fit)."""
        return self._lr

    def _start(self, opt):
        """Called by fit before the first epoch."""
        if self._opt is None:
            self._opt, self.base_lr, self._lr = opt, opt.lr, opt.lr
        elif self._opt is not opt:
            raise ValueError(f"schedule: this {type(self).__name__} already drives another "
                             f"optimizer ({self._opt!r}); make one schedule per optimizer")
        opt._lr = self._lr

    def _end_epoch(self, logs):
        """Called by fit after every epoch with that epoch's history row."""
        self.last_epoch += 1
        self._lr = self._next_lr(logs)
        self._opt._lr = self._lr      # may reach 0 (cosine annealing to eta_min=0), as in torch

    def _next_lr(self, logs):
        raise NotImplementedError

    def check_keys(self, keys: Collection[str], name: str = "schedule") -> None:
        """Called by fit before training."""

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_opt"}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state.items() if k != "_opt"})

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_opt"] = None
        return state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()
                         if not k.startswith("_") and k not in ("last_epoch", "base_lr"))
        return f"{type(self).__name__}({args})"


class StepLR(Schedule):
    """lr × gamma every step_size epochs (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        super().__init__()
        self.step_size = _validate.check_int("step_size", step_size, minimum=1)
        self.gamma = _validate.check_real("gamma", gamma, positive=True)

    def _next_lr(self, logs):
        return self._lr * self.gamma if self.last_epoch % self.step_size == 0 else self._lr


class ExponentialLR(Schedule):
    """lr × gamma after every epoch (torch.optim.lr_scheduler.ExponentialLR)."""

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = _validate.check_real("gamma", gamma, positive=True)

    def _next_lr(self, logs):
        return self._lr * self.gamma


class CosineAnnealingLR(Schedule):
    """eta_min + (base_lr − eta_min)·(1 + cos(π·epoch / T_max)) / 2, in torch's
    recursive form (torch.optim.lr_scheduler.CosineAnnealingLR)."""

    def __init__(self, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__()
        self.T_max = _validate.check_int("T_max", T_max, minimum=1)
        self.eta_min = _validate.check_real("eta_min", eta_min, nonnegative=True)

    def _next_lr(self, logs):
        e, T, lo, lr = self.last_epoch, self.T_max, self.eta_min, self._lr
        if (e - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - lo) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) \
            * (lr - lo) + lo


class ReduceLROnPlateau(Schedule):
    """lr × factor when `monitor` has not improved for `patience` epochs
    (torch.optim.lr_scheduler.ReduceLROnPlateau, mode "min", relative threshold).

    ``monitor`` is a key of the history rows (``val_loss`` needs validation
    data).  After a reduction, ``cooldown`` epochs pass before bad epochs
    count again; the lr never goes below ``min_lr``.
    """

    _EPS = 1e-8     # torch's: smaller reductions are skipped

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a history key such as 'val_loss'; "
                            f"got {monitor!r}")
        self.monitor = monitor
        self.factor = _validate.check_real("factor", factor, positive=True)
        if self.factor >= 1:
            raise ValueError(f"factor: expected a number in (0, 1); got {self.factor}")
        self.patience = _validate.check_int("patience", patience, minimum=0)
        self.threshold = _validate.check_real("threshold", threshold, nonnegative=True)
        self.cooldown = _validate.check_int("cooldown", cooldown, minimum=0)
        self.min_lr = _validate.check_real("min_lr", min_lr, nonnegative=True)
        self.best = math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def check_keys(self, keys: Collection[str], name: str = "schedule") -> None:
        if self.monitor not in keys:
            raise ValueError(f"{name}: expected monitor to be one of the keys this fit "
                             f"reports, {sorted(keys)}; got {self.monitor!r} (val_* keys need "
                             f"validation_data)")

    def _next_lr(self, logs):
        current = float(logs[self.monitor])
        if current < self.best * (1 - self.threshold):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        lr = self._lr
        if self.num_bad_epochs > self.patience:
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > self._EPS:
                lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        return lr

    def __repr__(self) -> str:
        return (f"ReduceLROnPlateau(monitor={self.monitor!r}, factor={self.factor!r}, "
                f"patience={self.patience!r}, threshold={self.threshold!r}, "
                f"cooldown={self.cooldown!r}, min_lr={self.min_lr!r})")


# The names the command line (and anyone choosing by name) uses.
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
              "adagrad": Adagrad, "rprop": Rprop, "adamax": Adamax}


def check_optimizer(value: Any) -> Optimizer:
    """An Optimizer instance (fit's `optimizer=`)."""
    if not isinstance(value, Optimizer):
        raise TypeError(f"optimizer: expected a bpfast.optim optimizer such as "
                        f"optim.Adam(lr=1e-3); got {value!r} ({type(value).__name__})")
    return value


def check_schedule(value: Any) -> Schedule | None:
    """None or a Schedule instance (fit's `schedule=`)."""
    if value is not None and not isinstance(value, Schedule):
        raise TypeError(f"schedule: expected None or a bpfast.optim schedule such as "
                        f"optim.StepLR(10); got {value!r} ({type(value).__name__})")
    return value
