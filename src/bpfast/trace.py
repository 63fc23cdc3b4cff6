"""One sample, step by step: the numbers of backpropagation, explained.

`net.trace(x, y, lr, lang)` runs backpropagation on one sample and keeps
what it computed: z, a and delta of every layer, the gradients and the loss
(and, with lr, the parameters one SGD step would give).  The Trace explains
itself as text in English or Chinese (`print(tr)`, `tr.text("zh")`), as a
picture (`tr.plot()`), as the gradient vector (`tr.gradient_vector()`) and as
HTML in a notebook.  The text is rendered from one list of steps
(`tr.steps()`, see `bpfast._explain`), so both languages carry the same
numbers line for line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _validate
from ._phrases import LANGS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._explain import Step
    from ._gradient_vector import GradientVector
    from .mlp import MLP

# One array per layer (a: L + 1 of them, from a[0] = x; the others: L).
Arrays = list[NDArray[Any]]

__all__ = ["Trace", "trace"]


class Trace:
    """What backpropagation computed for one sample.

    Attributes
    ----------
    a : list of L + 1 arrays
        Activations, ``a[0] = x``.
    z, delta : lists of L arrays
        Index l is the weight layer from ``a[l]`` to ``a[l+1]``;
        ``delta[l] = ∂L/∂z[l]``.
    grad_w, grad_b : lists of L arrays
        ∂L/∂W[l] (shape of W[l]) and ∂L/∂b[l].
    weights, biases : lists of L arrays
        The parameters the step used (copies).
    loss : float
    y : ndarray
        The target vector (a label becomes its one-hot row).
    lr : float or None
        With lr, ``new_weights``/``new_biases`` hold W − lr·∂L/∂W, b − lr·∂L/∂b.
    lang : {"en", "zh"}
        The language of ``str(tr)``.
    config : dict
        layers, activation, output, loss and dtype of the network.

    Notes
    -----
    The printed text numbers layers as the tutorials do, from the input:
    layer l computes z⁽ˡ⁾ = W⁽ˡ⁾·a⁽ˡ⁻¹⁾ + b⁽ˡ⁾, a⁽ˡ⁾ = f(z⁽ˡ⁾), δ⁽ˡ⁾ = ∂L/∂z⁽ˡ⁾,
    so z, a and δ of one layer carry one index.  In the arrays that is
    ``a[l]``, ``z[l-1]``, ``delta[l-1]``, ``weights[l-1]``.
    """

    def __init__(self, config: dict[str, Any], weights: Arrays, biases: Arrays,
                 x: NDArray[Any], y: NDArray[Any], z: Arrays, a: Arrays, delta: Arrays,
                 grad_w: Arrays, grad_b: Arrays, loss: float, lr: float | None = None,
                 new_weights: Arrays | None = None, new_biases: Arrays | None = None,
                 lang: str = "en") -> None:
        self.config = config
        self.weights, self.biases = weights, biases
        self.x, self.y = x, y
        self.z, self.a, self.delta = z, a, delta
        self.grad_w, self.grad_b = grad_w, grad_b
        self.loss = loss
        self.lr = lr
        self.new_weights, self.new_biases = new_weights, new_biases
        self.lang = lang

    def __repr__(self) -> str:
        from ._explain import num
        lr = "" if self.lr is None else f", lr {num(self.lr)}"
        return (f"<bpfast.Trace of one sample: layers {list(self.config['layers'])}, "
                f"loss {num(self.loss)}{lr}; print() it for every step, "
                f".plot() for a picture, .gradient_vector() for ∇L>")

    def __str__(self) -> str:
        return self.text()

    def steps(self) -> list[Step]:
        """The steps of the explanation (`bpfast._explain.Step` records), in reading order.

        Language-neutral: every text of this trace is these steps rendered
        through one language's phrases, one line per step.
        """
        from ._explain import steps
        return steps(self)

    def text(self, lang: str | None = None) -> str:
        """The explanation in `lang` ("en" or "zh"; default: the trace's own `lang`)."""
        from ._explain import render
        lang = self.lang if lang is None else _validate.check_choice("lang", lang, LANGS)
        return render(self.steps(), lang)

    def gradient_vector(self) -> GradientVector:
        """∇L over all parameters as one flat, named vector (a `GradientVector`).

        Order and names: ``W[0][i, j]`` row by row, then ``b[0][i]``, then
        ``W[1]``, ``b[1]``, …, with l, i, j as in ``tr.grad_w[l][i, j]``.
        """
        from ._gradient_vector import GradientVector
        return GradientVector.from_layers(self.grad_w, self.grad_b)

    def plot(self, path: str | os.PathLike[str] | None = None,
             ax: Axes | None = None) -> Figure | Axes:
        """Draw the network of this step: units with a and δ, weights by their update.

        See `bpfast.plot.trace_step`, which this calls; returns the Figure
        (or `ax` when given) and writes `path` when given.
        """
        from .plot import trace_step
        return trace_step(self, path=path, ax=ax)

    def _repr_html_(self) -> str:
        from ._html import trace_html
        return trace_html(self)


def _one_sample(x: ArrayLike, n_in: int) -> ArrayLike:
    """A bare number stands for the one input of a network with one input."""
    if n_in == 1 and np.ndim(x) == 0:
        return np.reshape(np.asarray(x), (1,))
    return x


def trace(net: MLP, x: ArrayLike, y: ArrayLike, lr: float | None = None,
          lang: str = "en") -> Trace:
    """Backpropagation on one sample, every number kept (see `Trace`).

    Parameters
    ----------
    net : bpfast.MLP
    x : array of shape (n0,), or a number when n0 == 1
    y : int label, target of shape (nL,), or a number when nL == 1
    lr : float > 0 or None
        Also compute the parameters one SGD step with this learning rate
        gives (W − lr·∂L/∂W, in the network's dtype).  The network is never
        changed.
    lang : {"en", "zh"}
        Language of the printed explanation.
    """
    lang = _validate.check_choice("lang", lang, LANGS)
    X, targets, _ = net._data(_one_sample(x, net.layers[0]), y, "x", "y")
    if X.shape[0] != 1:
        raise ValueError(f"x: expected one sample of shape ({net.layers[0]},); "
                         f"got {X.shape[0]} samples")
    if lr is not None:
        lr = _validate.check_real("lr", lr, positive=True)
    bp = net._backprop(X, targets)
    new_w = new_b = None
    if lr is not None:      # the kernel's SGD step, p − lr·g in the network's dtype
        with np.errstate(over="ignore", invalid="ignore"):   # a huge lr overflows, as there
            step = np.dtype(net.dtype).type(lr)
            new_w = [W - step * g for W, g in zip(bp.weights, bp.grad_w)]
            new_b = [b - step * g for b, g in zip(bp.biases, bp.grad_b)]
    config = dict(layers=net.layers, activation=net.activation, output=net.output,
                  loss=net.loss_name, dtype=np.dtype(net.dtype).name)
    return Trace(config, bp.weights, bp.biases, bp.a[0], bp.y, bp.z, bp.a, bp.delta,
                 bp.grad_w, bp.grad_b, float(bp.loss), lr, new_w, new_b, lang)
