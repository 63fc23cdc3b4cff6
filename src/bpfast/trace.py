"""One sample, step by step: the numbers of backpropagation, explained.

`net.trace(x, y, lr)` runs the training kernel on one sample and keeps what
it computed: z, a and delta of every layer, the gradients and the loss (and,
with lr, the parameters one SGD step would give, computed by the same fused
kernel update on a copy).  Printing the Trace walks through it in the order
a tutorial does: forward pass, loss, backward pass by the chain rule, update.
"""

import numpy as np

from . import _dispatch, _validate

__all__ = ["Trace", "trace"]

# Arrays with more entries than this are summarised instead of printed.
_MAX_SHOWN = 12
# Layers with at most this many inputs and outputs are also written out unit
# by unit, every formula with its numbers filled in.
_MAX_SPELLED = 3
_DERIVATIVE = {
    "sigmoid": "σ'(z) = a(1 − a)",
    "tanh": "tanh'(z) = 1 − a²",
    "relu": "relu'(z) = [z > 0]",
    "leaky_relu": "leaky_relu'(z) = 1 if z > 0 else 0.01",
    "identity": "identity'(z) = 1",
}
_LOSS_FORMULA = {
    "mse": "L = ½·Σ_k (a_k − y_k)²",
    ("cross_entropy", "softmax"): "L = −Σ_k y_k·log a_k",
    ("cross_entropy", "sigmoid"): "L = −Σ_k [y_k·log a_k + (1 − y_k)·log(1 − a_k)]",
}


def _num(v):
    """A number at 4 significant digits, trailing zeros kept (0.02230)."""
    return f"{float(v):#.4g}"


def _paren(v):
    """A number for use inside a formula: negative ones in parentheses."""
    text = _num(v)
    return f"({text})" if text.startswith("-") else text


def _derivative_value(act, z, a):
    """f'(z) as the formula with numbers, for the spelled-out chain rule."""
    if act == "sigmoid":
        return f"{_num(a)}·(1 − {_num(a)})"
    if act == "tanh":
        return f"(1 − {_paren(a)}²)"
    if act == "relu":
        return "1" if z > 0 else "0"
    if act == "leaky_relu":
        return "1" if z > 0 else "0.01"
    return "1"


def _arr(v):
    """A short array in full; a long one as shape, norm and largest entries."""
    v = np.asarray(v)
    if v.size <= _MAX_SHOWN:
        if v.ndim == 2:
            return "[" + ", ".join("[" + ", ".join(_num(e) for e in row) + "]" for row in v) + "]"
        return "[" + ", ".join(_num(e) for e in v) + "]"
    flat = np.abs(v).ravel()
    top = np.argsort(flat)[::-1][:3]
    largest = ", ".join(
        f"{[int(i) for i in np.unravel_index(k, v.shape)] if v.ndim > 1 else int(k)}"
        f"={_num(v.ravel()[k])}"
        for k in top)
    return (f"<shape {v.shape}, norm {_num(np.linalg.norm(v.ravel()))}, "
            f"mean {_num(v.mean())}, largest |entries| {largest}>")


class Trace:
    """What backpropagation computed for one sample.

    Attributes (index l is the weight layer from a[l] to a[l+1]):
    ``a`` (L+1 arrays, a[0] = x), ``z``, ``delta`` (= ∂L/∂z), ``grad_w``
    (shape of W[l]), ``grad_b`` (L arrays each), ``loss``, ``y`` (the target
    vector), and with ``lr`` the updated ``new_weights``/``new_biases``.
    """

    def __init__(self, config, weights, biases, x, y, z, a, delta, grad_w, grad_b, loss,
                 lr=None, new_weights=None, new_biases=None):
        self.config = config
        self.weights, self.biases = weights, biases
        self.x, self.y = x, y
        self.z, self.a, self.delta = z, a, delta
        self.grad_w, self.grad_b = grad_w, grad_b
        self.loss = loss
        self.lr = lr
        self.new_weights, self.new_biases = new_weights, new_biases

    def __repr__(self):
        return f"<bpfast.Trace of one sample, loss {self.loss:.6g}; print() it to read it>"

    def __str__(self):
        return "\n".join(self._lines())

    def _act(self, l):
        L = len(self.z)
        return self.config["output"] if l == L - 1 else self.config["activation"]

    def _lines(self):
        c = self.config
        L = len(self.z)
        yield (f"Backpropagation, one sample: layers {list(c['layers'])}, hidden "
               f"{c['activation']}, output {c['output']}, loss {c['loss']}")
        yield ""
        yield "1. Forward pass: z[l+1] = W[l]·a[l] + b[l], a[l+1] = f(z[l+1])"
        yield f"   a[0] = x = {_arr(self.a[0])}"
        for l in range(L):
            name = f"layer {l + 1}" + (" (output)" if l == L - 1 else "")
            yield f"   {name}: W[{l}] = {_arr(self.weights[l])}, b[{l}] = {_arr(self.biases[l])}"
            yield f"      z[{l + 1}] = W[{l}]·a[{l}] + b[{l}] = {_arr(self.z[l])}"
            yield f"      a[{l + 1}] = {self._act(l)}(z[{l + 1}]) = {_arr(self.a[l + 1])}"
            if self._spelled(l):
                yield from self._forward_units(l)
        yield ""
        key = "mse" if c["loss"] == "mse" else (c["loss"], c["output"])
        yield f"2. Loss: {_LOSS_FORMULA[key]}"
        yield f"   prediction ŷ = a[{L}] = {_arr(self.a[L])}, target y = {_arr(self.y)}"
        yield f"   L = {_num(self.loss)}"
        yield ""
        yield "3. Backward pass (chain rule), δ[l] = ∂L/∂z[l+1]:"
        for l in range(L - 1, -1, -1):
            if l == L - 1:
                yield f"   output: {self._output_rule()}"
            else:
                act = self._act(l)
                yield (f"   layer {l + 1}: δ[{l}] = (W[{l + 1}]ᵀ·δ[{l + 1}]) ⊙ f'(z[{l + 1}]), "
                       f"{_DERIVATIVE[act]}")
            yield f"      δ[{l}] = {_arr(self.delta[l])}"
            if self._spelled(l):
                yield from self._delta_units(l)
            yield f"      ∂L/∂W[{l}] = δ[{l}]·a[{l}]ᵀ = {_arr(self.grad_w[l])}"
            yield f"      ∂L/∂b[{l}] = δ[{l}] = {_arr(self.grad_b[l])}"
            if self._spelled(l):
                for i in range(len(self.z[l])):
                    for j in range(len(self.a[l])):
                        yield (f"        ∂L/∂W[{l}]_{i}{j} = δ_{i}·a_{j} = "
                               f"{_paren(self.delta[l][i])}·{_paren(self.a[l][j])} = "
                               f"{_num(self.grad_w[l][i, j])}")
        if self.lr is not None:
            yield ""
            yield f"4. Update with lr = {_num(self.lr)}: W ← W − lr·∂L/∂W, b ← b − lr·∂L/∂b"
            for l in range(L):
                yield f"   W[{l}] = {_arr(self.new_weights[l])}"
                yield f"   b[{l}] = {_arr(self.new_biases[l])}"
                if self._spelled(l):
                    yield from self._update_units(l)

    def _spelled(self, l):
        return len(self.a[l]) <= _MAX_SPELLED and len(self.z[l]) <= _MAX_SPELLED

    def _forward_units(self, l):
        W, b, a_prev = self.weights[l], self.biases[l], self.a[l]
        for i in range(len(b)):
            terms = " + ".join(f"{_paren(W[i, j])}·{_paren(a_prev[j])}"
                               for j in range(len(a_prev)))
            if self._act(l) == "softmax":
                a_i = f"exp(z_{i}) / Σ_k exp(z_k)"
            else:
                a_i = f"{self._act(l)}({_num(self.z[l][i])})"
            yield (f"        z_{i} = {terms} + {_paren(b[i])} = {_num(self.z[l][i])};  "
                   f"a_{i} = {a_i} = {_num(self.a[l + 1][i])}")

    def _delta_units(self, l):
        c, L = self.config, len(self.z)
        z, a, delta = self.z[l], self.a[l + 1], self.delta[l]
        for i in range(len(delta)):
            if l == L - 1 and c["loss"] == "cross_entropy":
                text = f"a_{i} − y_{i} = {_num(a[i])} − {_num(self.y[i])}"
            elif l == L - 1 and c["output"] == "softmax":
                continue        # the Jacobian product does not spell out per unit
            elif l == L - 1:
                text = (f"(a_{i} − y_{i})·f'(z_{i}) = ({_num(a[i])} − {_num(self.y[i])})·"
                        f"{_derivative_value(c['output'], z[i], a[i])}")
            else:
                W_next, delta_next = self.weights[l + 1], self.delta[l + 1]
                back = " + ".join(f"{_paren(W_next[k, i])}·{_paren(delta_next[k])}"
                                  for k in range(len(delta_next)))
                text = (f"(Σ_k W[{l + 1}]_k{i}·δ[{l + 1}]_k)·f'(z_{i}) = ({back})·"
                        f"{_derivative_value(self._act(l), z[i], a[i])}")
            yield f"        δ_{i} = {text} = {_num(delta[i])}"

    def _update_units(self, l):
        lr = _num(self.lr)
        W, b = self.weights[l], self.biases[l]
        for i in range(len(b)):
            for j in range(W.shape[1]):
                yield (f"     W_{i}{j} = {_num(W[i, j])} − {lr}·{_paren(self.grad_w[l][i, j])} = "
                       f"{_num(self.new_weights[l][i, j])}")
            yield (f"     b_{i} = {_num(b[i])} − {lr}·{_paren(self.grad_b[l][i])} = "
                   f"{_num(self.new_biases[l][i])}")

    def _output_rule(self):
        c, L = self.config, len(self.z)
        if c["loss"] == "cross_entropy":
            return (f"δ[{L - 1}] = a[{L}] − y  (softmax or sigmoid with cross-entropy: "
                    f"the f'(z) factor cancels)")
        if c["output"] == "softmax":
            return f"δ[{L - 1}] = J_softmax(z[{L}])ᵀ·(a[{L}] − y),  J = diag(a) − a·aᵀ"
        return f"δ[{L - 1}] = (a[{L}] − y) ⊙ f'(z[{L}]),  {_DERIVATIVE[c['output']]}"


def trace(net, x, y, lr=None):
    """Run one sample through the training kernel and keep every number."""
    X, targets, _ = net._data(x, y, "x", "y")
    if X.shape[0] != 1:
        raise ValueError(f"x: expected one sample of shape ({net.layers[0]},); "
                         f"got {X.shape[0]} samples")
    if lr is not None:
        lr = _validate.check_real("lr", lr, positive=True)
    layout = net._layout
    with net._lock:     # one consistent state, even while another thread trains
        grad, loss, ws = net._gradient(X, targets)
        params = net._params.copy()
    L = layout.L
    z, a, delta = [], [X[0].copy()], []
    for l in range(L):
        z_l, a_l, d_l = layout.units(ws, l)
        z.append(z_l.copy())
        a.append(a_l.copy())
        delta.append(d_l.copy())
    y_vec = layout.target(ws).copy() if targets.labels.size else targets.rows[0].copy()
    grad_w = [np.array(W, order="C") for W in layout.weight_views(grad)]
    grad_b = [b.copy() for b in layout.bias_views(grad)]
    weights = [np.array(W, order="C") for W in layout.weight_views(params)]
    biases = [b.copy() for b in layout.bias_views(params)]
    new_w = new_b = None
    if lr is not None:
        hyper = np.array([lr, 0.0, 1.0, 0.0, 0.0, 0.0])     # plain SGD
        _dispatch.kernel.train(layout.spec, params, net._grad_buffer(), net._scratch(),
                               np.zeros((1, 2)), X, targets.rows, targets.labels,
                               np.zeros(1, dtype=np.intp), 1, 0, hyper,
                               np.zeros((0, params.shape[0]), dtype=params.dtype), np.zeros(1))
        new_w = [np.array(W, order="C") for W in layout.weight_views(params)]
        new_b = [b.copy() for b in layout.bias_views(params)]
    config = dict(net._config)
    return Trace(config, weights, biases, a[0], y_vec, z, a, delta, grad_w, grad_b, loss,
                 lr, new_w, new_b)
