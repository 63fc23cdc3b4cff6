"""Check a network's analytic gradients against central finite differences."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from .mlp import MLP

__all__ = ["gradcheck"]

# Entries smaller than this fraction of the largest gradient are judged by their
# absolute error on that scale (see gradcheck's Notes).
SCALE_FLOOR = 1e-3


def _twin(net, dtype, weights, biases):
    """A network like `net` in `dtype`, holding the given parameters."""
    from .mlp import MLP
    twin = MLP(net.layers, net.activation, net.output, net.loss_name, dtype=dtype)
    for dst, src in zip(twin.weights + twin.biases, weights + biases):
        dst[...] = src
    return twin


def _flat(grad_w, grad_b):
    """W[0] row-major, b[0], W[1], b[1], ... as one float64 vector."""
    return np.concatenate([np.concatenate([np.ravel(gw), np.ravel(gb)])
                           for gw, gb in zip(grad_w, grad_b)]).astype(np.float64)


def gradcheck(net: MLP, X: ArrayLike, Y: ArrayLike, eps: float | None = None, *,
              floor: float | Literal["relative"] = 1e-8) -> float:
    """Max relative error of ``net.gradients(X, Y)`` against central differences.

    Parameters
    ----------
    net : bpfast.MLP
    X, Y : inputs and targets, as for ``net.gradients``.
    eps : float in (0, 1), default 1e-5
        Step of the central difference ĝ = (L(p + eps) − L(p − eps)) / (2·eps).
    floor : float > 0 or "relative", default 1e-8
        The smallest denominator s of the relative error (the contract's
        1e-8 by default).  "relative" uses ``s = max(1e-8, 1e-3·max_k |ĝ_k|)``:
        entries below 1/1000 of the largest gradient are judged by their
        absolute error on that scale, which is what to use on a trained
        network (see Notes).

    Returns
    -------
    float
        max over all parameters of ``|g − ĝ| / max(|g|, |ĝ|, s)``, with the
        floor s of `floor`.  About 1e-7 (float64) or 1e-5 (float32) for
        correct gradients of a fresh network; a wrong one gives 1e-2 or more.

    Notes
    -----
    g is the network's own ``gradients`` in its own dtype; ĝ is taken on a
    float64 copy of it (for a float32 network too), so the reference is as
    exact as the method allows.  The parameters are read once, under the
    network's lock; the network is not changed.

    Why the floor is relative to the largest gradient: in a trained network
    many gradients are tiny (a saturated sigmoid unit gives ``|g| ≈ 1e-9`` next
    to a largest entry of 1e-2).  Their absolute error is set by rounding in
    the sums that produce every entry — about 1e-7 of the largest terms in
    float32, and ≈ 1e-16·L/eps in the central difference — so the error
    *relative to themselves* measures only rounding: on a 784-30-10 network
    after one epoch of MNIST, the bare 1e-8 floor reported 3e-2 (float32) and
    1e-4 (float64) for correct gradients.  With ``floor="relative"`` entries
    below 1/1000 of the largest are judged by their absolute error on that
    scale (as ``numpy.allclose`` uses an ``atol``); the same network then
    checks at 3e-5 and 7e-8.  When the largest gradient is under 1e-5 the
    relative floor is the plain 1e-8.
    """
    from ._validate import check_real
    from .mlp import MLP

    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a bpfast.MLP; got {type(net).__name__}")
    eps = 1e-5 if eps is None else check_real("eps", eps, positive=True, below=1.0)
    if not (isinstance(floor, str) and floor == "relative"):
        floor = check_real("floor", floor, positive=True) if not isinstance(floor, str) else None
        if floor is None:
            raise ValueError("floor: expected a number > 0 or 'relative'")
    rows, targets, _ = net._data(X, Y)               # validates X and Y, names them
    Y = targets.labels if targets.labels.size else targets.rows
    weights, biases = net._parameters()              # one consistent state, under the lock
    # g on a copy in the network's dtype: the same kernel and rounding as
    # net.gradients, but immune to another thread training `net` meanwhile.
    same = _twin(net, net.dtype, weights, biases)
    analytic = _flat(*same.gradients(rows, Y))

    ref = _twin(net, np.float64, weights, biases)
    X64 = rows.astype(np.float64)     # dense or sparse rows alike
    Y64 = Y if targets.labels.size else np.asarray(Y, dtype=np.float64)
    numeric = np.empty_like(analytic)
    r = 0
    for W, b in zip(ref.weights, ref.biases):
        for p in (W, b):
            for index in np.ndindex(p.shape):
                value = p[index]
                p[index] = value + eps
                up = ref.loss(X64, Y64)
                p[index] = value - eps
                down = ref.loss(X64, Y64)
                p[index] = value
                numeric[r] = (up - down) / (2 * eps)
                r += 1
    if floor == "relative":
        floor = max(1e-8, SCALE_FLOOR * float(np.max(np.abs(numeric))))
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    return float(np.max(np.abs(analytic - numeric) / scale))
