"""Check a network's analytic gradients against central finite differences."""

import numpy as np

from . import _dispatch

__all__ = ["gradcheck"]


def gradcheck(net, X, Y, eps=None):
    """Max relative error of ``net.gradients(X, Y)`` against central differences.

    For every parameter p: ĝ = (L(p + eps) − L(p − eps)) / (2·eps), with the
    loss L taken in float64 on a copy of the network (a float32 network's
    numeric gradient is taken on a float64 copy of itself), so the reference
    is as exact as the method allows.  Returns the maximum over parameters of
    |g − ĝ| / max(|g|, |ĝ|, 1e-8).  eps defaults to 1e-5.  The network is
    not changed.
    """
    from ._validate import check_real
    from .mlp import MLP

    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a bpfast.MLP; got {type(net).__name__}")
    eps = 1e-5 if eps is None else check_real("eps", eps, positive=True, below=1.0)
    with net._lock:     # the gradients and the copy below see the same parameters
        grad_w, grad_b = net.gradients(X, Y)          # validates X and Y
        params = net._params.copy()
    layout = net._layout
    # The same order as layout.real_entries(): W[0] row-major, b[0], W[1], ...
    analytic = np.concatenate([np.concatenate([gw.ravel(), gb])
                               for gw, gb in zip(grad_w, grad_b)]).astype(np.float64)

    ref = MLP(net.layers, net.activation, net.output, net.loss_name, dtype="float64")
    ref._params[...] = params
    X64, targets, _ = ref._data(X, Y)
    params = ref._params
    ws = ref._scratch()[0]
    no_out = np.empty((0, net.layers[-1]))
    n = X64.shape[0]

    def loss():
        total, _ = _dispatch.kernel.evaluate(layout.spec, params, ws, X64, targets.rows,
                                             targets.labels, no_out)
        return total / n

    numeric = np.empty_like(analytic)
    for r, k in enumerate(layout.real_entries()):
        p = params[k]
        params[k] = p + eps
        up = loss()
        params[k] = p - eps
        down = loss()
        params[k] = p
        numeric[r] = (up - down) / (2 * eps)
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-8)
    return float(np.max(np.abs(analytic - numeric) / scale))
