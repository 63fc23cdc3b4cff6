"""How a network's parameters are laid out in its one flat buffer.

`Layout` turns layer sizes and activation names into the integer `spec` the
kernel reads (see `_core.pxi`): W[l] is stored input-major ([j][i], shape
size[l] x size[l+1]) at `w_off[l]`, b[l] follows at `b_off[l]`.  The user sees
W[l] through the transposed view, shape (size[l+1], size[l]).
"""

import numpy as np

# Codes shared with the kernel's enums.
ACTIVATIONS = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4, "softmax": 5,
               "exp": 6}
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax", "identity", "tanh", "relu", "exp")
LOSSES = {"mse": 0, "cross_entropy": 1, "poisson": 2}
# The output activation each loss requires (a loss not listed takes any).
LOSS_OUTPUTS = {"cross_entropy": ("softmax", "sigmoid"), "poisson": ("exp",)}
SPEC_HEADER = 6
# Samples whose gradients of W[0] a dense minibatch sums row by row at once
# (the kernel's "tiles", see accumulate in _core.pxi; at most its MAX_TILE).
TILE = 32


def padded(n, lanes=8):
    """n rounded up to a whole number of SIMD lanes."""
    return -(-n // lanes) * lanes


class Layout:
    """Offsets of every W[l], b[l] in params and of every layer in the scratch space.

    Rows are padded to `width[l]` (a multiple of 8, see the kernel's Memory
    layout note), so the buffer is a little longer than `n_params`, the
    number of real weights and biases.
    """

    def __init__(self, layers, activation, output, loss):
        self.layers = tuple(int(n) for n in layers)
        L = len(self.layers) - 1
        self.L = L
        sizes = self.layers
        self.width = [padded(n) for n in sizes[1:]]
        self.w_off, self.b_off, self.u_off = [], [], []
        offset = units = 0
        for l in range(L):
            self.w_off.append(offset)
            offset += sizes[l] * self.width[l]
            self.b_off.append(offset)
            offset += self.width[l]
            self.u_off.append(units)
            units += self.width[l]
        self.buffer_len = offset
        self.n_params = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.n_units = units
        acts = [ACTIVATIONS[activation]] * (L - 1) + [ACTIVATIONS[output]]
        # Per layer, a count and the indices of its nonzero inputs (int32).
        self.nz_off = list(np.cumsum([0] + [n + 1 for n in sizes[:-1]])[:-1])
        nz_len = sum(n + 1 for n in sizes[:-1])
        # z, a, delta of every layer, one target vector, then the nonzero
        # lists and one flag per row of W[0] (the rows a sparse batch
        # touches): int32s, which fit in as many float32 or float64 slots;
        # then, from a whole SIMD row on, the tiles: two sections of a tile's
        # partial z[1] or delta[0] per sample (tile after tile in turn, so
        # that threads start a tile while others finish the last), the rows
        # of W[0] a tile touches and a bit mask per row.
        tile_off = padded(3 * units + sizes[-1] + nz_len + sizes[0])
        # whole SIMD rows, so that every row of a (n_threads, ws_len) scratch
        # array starts aligned, as its first does (the kernel's aligned_zeros)
        self.ws_len = padded(tile_off + 2 * TILE * self.width[0] + 2 * sizes[0] + 1)
        self.spec = np.array(
            [L, LOSSES[loss], units, offset, TILE, tile_off, *sizes, *self.w_off, *self.b_off,
             *self.u_off, *acts, *self.width, *self.nz_off],
            dtype=np.intp,
        )
        self.spec.setflags(write=False)

    def weight_views(self, params):
        """W[l] as writable (size[l+1], size[l]) views of params (pads hidden)."""
        s, w = self.layers, self.width
        return tuple(
            params[o:o + s[l] * w[l]].reshape(s[l], w[l])[:, :s[l + 1]].T
            for l, o in enumerate(self.w_off)
        )

    def bias_views(self, params):
        """b[l] as writable (size[l+1],) views of params."""
        return tuple(params[o:o + self.layers[l + 1]] for l, o in enumerate(self.b_off))

    def real_entries(self):
        """Indices into the buffer of the n_params real weights and biases."""
        index = np.arange(self.buffer_len)
        return np.concatenate([np.concatenate([W.ravel(), b])
                               for W, b in zip(self.weight_views(index), self.bias_views(index))])

    def target(self, ws):
        """The target vector the kernel last used, in a scratch row `ws`."""
        start = 3 * self.n_units
        return ws[start:start + self.layers[-1]]

    def units(self, ws, l):
        """Slices (z, a, delta) of layer l+1 in one scratch row `ws` (pads hidden)."""
        n, o, u = self.layers[l + 1], self.u_off[l], self.n_units
        return ws[o:o + n], ws[u + o:u + o + n], ws[2 * u + o:2 * u + o + n]
