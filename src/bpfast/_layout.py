"""How a network's parameters are laid out in its one flat buffer.

`Layout` turns layer sizes and activation names into the integer `spec` the
kernel reads (see `_core.pxi`): W[l] is stored input-major ([j][i], shape
size[l] x size[l+1]) at `w_off[l]`, b[l] follows at `b_off[l]`.  The user sees
W[l] through the transposed view, shape (size[l+1], size[l]).
"""

import numpy as np

# Codes shared with the kernel's enums.
ACTIVATIONS = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4, "softmax": 5}
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax", "identity", "tanh", "relu")
LOSSES = {"mse": 0, "cross_entropy": 1}
SPEC_HEADER = 4


class Layout:
    """Offsets of every W[l], b[l] in params and of every layer in the scratch space."""

    def __init__(self, layers, activation, output, loss):
        self.layers = tuple(int(n) for n in layers)
        L = len(self.layers) - 1
        self.L = L
        sizes = self.layers
        self.w_off, self.b_off, self.u_off = [], [], []
        offset = units = 0
        for l in range(L):
            self.w_off.append(offset)
            offset += sizes[l] * sizes[l + 1]
            self.b_off.append(offset)
            offset += sizes[l + 1]
            self.u_off.append(units)
            units += sizes[l + 1]
        self.n_params = offset
        self.n_units = units
        acts = [ACTIVATIONS[activation]] * (L - 1) + [ACTIVATIONS[output]]
        self.spec = np.array(
            [L, LOSSES[loss], units, offset, *sizes, *self.w_off, *self.b_off, *self.u_off, *acts],
            dtype=np.intp,
        )
        self.spec.setflags(write=False)
        # z, a, delta of every layer, then one target vector.
        self.ws_len = 3 * units + sizes[-1]

    def weight_views(self, params):
        """W[l] as writable (size[l+1], size[l]) views of params."""
        s = self.layers
        return tuple(
            params[o:o + s[l] * s[l + 1]].reshape(s[l], s[l + 1]).T
            for l, o in enumerate(self.w_off)
        )

    def bias_views(self, params):
        """b[l] as writable (size[l+1],) views of params."""
        return tuple(params[o:o + self.layers[l + 1]] for l, o in enumerate(self.b_off))

    def units(self, ws, l):
        """Slices (z, a, delta) of layer l+1 in one scratch row `ws`."""
        n, o, u = self.layers[l + 1], self.u_off[l], self.n_units
        return ws[o:o + n], ws[u + o:u + o + n], ws[2 * u + o:2 * u + o + n]
