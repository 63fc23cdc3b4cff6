"""A trace as a list of steps, and the steps as text in a language.

`steps(tr)` describes one backpropagation step as `Step` records — a kind,
an indentation depth and fields (numbers and formulas already written out,
the same in every language); `render(steps, lang)` turns each record into one
line through the phrase table of `_phrases`.  English and Chinese are thus
two renderings of one description.

Notation in the text (the tutorials'): layers count from the input, l = 1…L;
layer l computes z⁽ˡ⁾ = W⁽ˡ⁾·a⁽ˡ⁻¹⁾ + b⁽ˡ⁾ and a⁽ˡ⁾ = f(z⁽ˡ⁾), a⁽⁰⁾ = x, and
δ⁽ˡ⁾ = ∂L/∂z⁽ˡ⁾; unit i of that layer is z⁽ˡ⁾ᵢ.  In the arrays, ``tr.a[l]``
is a⁽ˡ⁾ and ``tr.z[l-1]``, ``tr.delta[l-1]``, ``tr.weights[l-1]`` are z⁽ˡ⁾,
δ⁽ˡ⁾, W⁽ˡ⁾ (the weight layer from a[l-1] to a[l]).
"""

from collections import namedtuple

import numpy as np

from ._phrases import PHRASES, SUMMARY

__all__ = ["Step", "steps", "render"]

Step = namedtuple("Step", "kind depth fields")

# Arrays with more entries than this are summarised instead of printed.
MAX_SHOWN = 12
# Layers with at most this many inputs and outputs are also written out unit
# by unit, every formula with its numbers filled in.
MAX_SPELLED = 3

_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")

DERIVATIVE = {
    "sigmoid": "σ'(z) = a(1 − a)",
    "tanh": "tanh'(z) = 1 − a²",
    "relu": "relu'(z) = [z > 0]",
    "leaky_relu": "leaky_relu'(z) = [z > 0] + 0.01·[z ≤ 0]",
    "identity": "identity'(z) = 1",
}
LOSS_FORMULA = {
    "mse": "L = ½·Σₖ (aₖ − yₖ)²",
    ("cross_entropy", "softmax"): "L = −Σₖ yₖ·log aₖ",
    ("cross_entropy", "sigmoid"): "L = −Σₖ [yₖ·log aₖ + (1 − yₖ)·log(1 − aₖ)]",
}
RULES = dict(
    z_rule="z⁽ˡ⁾ = W⁽ˡ⁾·a⁽ˡ⁻¹⁾ + b⁽ˡ⁾",
    a_rule="a⁽ˡ⁾ = f(z⁽ˡ⁾)",
    delta_rule="δ⁽ˡ⁾ = ∂L/∂z⁽ˡ⁾",
    arrays=("tr.a[l] = a⁽ˡ⁾; tr.z[l-1], tr.delta[l-1], tr.weights[l-1], tr.grad_w[l-1] "
            "= z⁽ˡ⁾, δ⁽ˡ⁾, W⁽ˡ⁾, ∂L/∂W⁽ˡ⁾"),
)


def sup(l):
    """The layer superscript of the text: 1 -> ⁽¹⁾."""
    return f"⁽{str(l).translate(_SUP)}⁾"


def sub(*indices):
    """A unit subscript: (0,) -> ₀, (1, 0) -> ₁₀."""
    return "".join(str(i).translate(_SUB) for i in indices)


def num(v):
    """A number at 4 significant digits, trailing zeros kept (0.02230)."""
    return f"{float(v):#.4g}"


def paren(v):
    """A number for use inside a formula: negative ones in parentheses."""
    text = num(v)
    return f"({text})" if text.startswith("-") else text


class Arr:
    """An array as text: in full when short; shape, norm and largest entries when long."""

    def __init__(self, v):
        self.v = np.asarray(v)

    def render(self, lang):
        v = self.v
        if v.size <= MAX_SHOWN:
            if v.ndim == 2:
                return "[" + ", ".join("[" + ", ".join(num(e) for e in row) + "]"
                                       for row in v) + "]"
            return "[" + ", ".join(num(e) for e in v) + "]"
        top = np.argsort(np.abs(v).ravel())[::-1][:3]
        largest = ", ".join(
            f"{[int(i) for i in np.unravel_index(k, v.shape)] if v.ndim > 1 else int(k)}"
            f"={num(v.ravel()[k])}" for k in top)
        return SUMMARY[lang].format(shape=tuple(v.shape), norm=num(np.linalg.norm(v.ravel())),
                                    mean=num(v.mean()), largest=largest)


def _derivative_value(act, z, a):
    """f'(z) as the formula with numbers, for the spelled-out chain rule."""
    if act == "sigmoid":
        return f"{num(a)}·(1 − {num(a)})"
    if act == "tanh":
        return f"(1 − {paren(a)}²)"
    if act == "relu":
        return "1" if z > 0 else "0"
    if act == "leaky_relu":
        return "1" if z > 0 else "0.01"
    return "1"


def render(step_list, lang):
    """The text of `step_list` in `lang`: one line per step."""
    phrases = PHRASES[lang]
    lines = []
    for step in step_list:
        fields = {k: v.render(lang) if isinstance(v, Arr) else v
                  for k, v in step.fields.items()}
        line = phrases[step.kind].format(**fields)
        lines.append("   " * step.depth + line if line else "")
    return "\n".join(lines)


class _Builder:
    """Walks a Trace in the order a tutorial does and records each step."""

    def __init__(self, tr):
        self.tr = tr
        self.c = tr.config
        self.L = len(tr.z)
        self.out = []

    def add(self, kind, depth=0, **fields):
        self.out.append(Step(kind, depth, fields))

    def math(self, depth, text):
        self.add("math", depth, text=text)

    def act(self, k):
        """Activation of text layer k (1…L)."""
        return self.c["output"] if k == self.L else self.c["activation"]

    def spelled(self, k):
        tr = self.tr
        return len(tr.a[k - 1]) <= MAX_SPELLED and len(tr.z[k - 1]) <= MAX_SPELLED

    def build(self):
        tr, c, L = self.tr, self.c, self.L
        self.add("header", layers=list(c["layers"]), activation=c["activation"],
                 output=c["output"], loss=c["loss"])
        self.add("notation", L=L, **RULES)
        self.add("arrays", arrays=RULES["arrays"])
        self.add("blank")
        self.forward()
        self.add("blank")
        key = "mse" if c["loss"] == "mse" else (c["loss"], c["output"])
        self.add("loss", formula=LOSS_FORMULA[key])
        self.add("prediction", 1, s=sup(L), y_hat=Arr(tr.a[L]), y=Arr(tr.y))
        self.math(1, f"L = {num(tr.loss)}")
        self.add("blank")
        self.backward()
        if tr.lr is not None:
            self.add("blank")
            self.update()
        return self.out

    def forward(self):
        tr, L = self.tr, self.L
        self.add("forward", **RULES)
        self.add("input", 1, x=Arr(tr.a[0]))
        for k in range(1, L + 1):
            s, sp = sup(k), sup(k - 1)
            self.add("layer_output" if k == L else "layer_hidden", 1, l=k, act=self.act(k),
                     s=s, W=Arr(tr.weights[k - 1]), b=Arr(tr.biases[k - 1]))
            self.add("eq", 2, lhs=f"z{s} = W{s}·a{sp} + b{s}", value=Arr(tr.z[k - 1]))
            self.add("eq", 2, lhs=f"a{s} = {self.act(k)}(z{s})", value=Arr(tr.a[k]))
            if self.spelled(k):
                self.forward_units(k)

    def forward_units(self, k):
        tr, s = self.tr, sup(k)
        W, b, a_prev, z = tr.weights[k - 1], tr.biases[k - 1], tr.a[k - 1], tr.z[k - 1]
        for i in range(len(b)):
            terms = " + ".join(f"{paren(W[i, j])}·{paren(a_prev[j])}"
                               for j in range(len(a_prev)))
            if self.act(k) == "softmax":
                a_i = f"exp(z{s}{sub(i)}) / Σₖ exp(z{s}ₖ)"
            else:
                a_i = f"{self.act(k)}({num(z[i])})"
            self.math(3, f"z{s}{sub(i)} = {terms} + {paren(b[i])} = {num(z[i])};  "
                         f"a{s}{sub(i)} = {a_i} = {num(tr.a[k][i])}")

    def backward(self):
        tr, c, L = self.tr, self.c, self.L
        self.add("backward", delta_rule=RULES["delta_rule"])
        for k in range(L, 0, -1):
            s, sp = sup(k), sup(k - 1)
            if k < L:
                self.add("delta_hidden", 1, l=k, derivative=DERIVATIVE[self.act(k)],
                         rule=f"δ{s} = (W{sup(k + 1)}ᵀ·δ{sup(k + 1)}) ⊙ f'(z{s})")
            elif c["loss"] == "cross_entropy":
                self.add("delta_output_ce", 1, l=k, rule=f"δ{s} = a{s} − y")
            elif c["output"] == "softmax":
                self.add("delta_output_softmax", 1, l=k,
                         rule=f"δ{s} = J(z{s})ᵀ·(a{s} − y)", jacobian="J = diag(a) − a·aᵀ")
            else:
                self.add("delta_output", 1, l=k, rule=f"δ{s} = (a{s} − y) ⊙ f'(z{s})",
                         derivative=DERIVATIVE[c["output"]])
            self.add("eq", 2, lhs=f"δ{s}", value=Arr(tr.delta[k - 1]))
            if self.spelled(k):
                self.delta_units(k)
            self.add("grad_w", 2, rule=f"∂L/∂W{s} = δ{s}·a{sp}ᵀ", value=Arr(tr.grad_w[k - 1]))
            self.add("grad_b", 2, rule=f"∂L/∂b{s} = δ{s}", value=Arr(tr.grad_b[k - 1]))
            if self.spelled(k):
                for i in range(len(tr.z[k - 1])):
                    for j in range(len(tr.a[k - 1])):
                        self.math(3, f"∂L/∂W{s}{sub(i, j)} = δ{s}{sub(i)}·a{sp}{sub(j)} = "
                                     f"{paren(tr.delta[k - 1][i])}·{paren(tr.a[k - 1][j])} = "
                                     f"{num(tr.grad_w[k - 1][i, j])}")

    def delta_units(self, k):
        tr, c, L, s = self.tr, self.c, self.L, sup(k)
        z, a, delta = tr.z[k - 1], tr.a[k], tr.delta[k - 1]
        for i in range(len(delta)):
            u = sub(i)
            if k == L and c["loss"] == "cross_entropy":
                text = f"a{s}{u} − y{u} = {num(a[i])} − {num(tr.y[i])}"
            elif k == L and c["output"] == "softmax":
                continue        # the Jacobian product does not spell out per unit
            elif k == L:
                text = (f"(a{s}{u} − y{u})·f'(z{s}{u}) = ({num(a[i])} − {num(tr.y[i])})·"
                        f"{_derivative_value(c['output'], z[i], a[i])}")
            else:
                sn = sup(k + 1)
                W_next, delta_next = tr.weights[k], tr.delta[k]
                back = " + ".join(f"{paren(W_next[m, i])}·{paren(delta_next[m])}"
                                  for m in range(len(delta_next)))
                text = (f"(Σₖ W{sn}ₖ{u}·δ{sn}ₖ)·f'(z{s}{u}) = ({back})·"
                        f"{_derivative_value(self.act(k), z[i], a[i])}")
            self.math(3, f"δ{s}{u} = {text} = {num(delta[i])}")

    def update(self):
        tr, L = self.tr, self.L
        lr = num(tr.lr)
        self.add("update", lr=lr)
        for k in range(1, L + 1):
            s = sup(k)
            self.add("new_w", 1, s=s, W=Arr(tr.new_weights[k - 1]))
            self.add("new_b", 1, s=s, b=Arr(tr.new_biases[k - 1]))
            if self.spelled(k):
                W, b = tr.weights[k - 1], tr.biases[k - 1]
                gw, gb = tr.grad_w[k - 1], tr.grad_b[k - 1]
                for i in range(len(b)):
                    for j in range(W.shape[1]):
                        self.math(2, f"W{s}{sub(i, j)} = {num(W[i, j])} − {lr}·"
                                     f"{paren(gw[i, j])} = {num(tr.new_weights[k - 1][i, j])}")
                    self.math(2, f"b{s}{sub(i)} = {num(b[i])} − {lr}·{paren(gb[i])} = "
                                 f"{num(tr.new_biases[k - 1][i])}")


def steps(tr):
    """The list of `Step` records that explain the Trace `tr`, in reading order."""
    return _Builder(tr).build()
