"""A plain-NumPy multilayer perceptron, written from the math, as an oracle.

Everything here is float64 and batched: ``X`` has shape (n, n0), targets
``Y`` shape (n, nL), and W[l] has bpfast's public shape (n_{l+1}, n_l), so

    z[l+1] = a[l] @ W[l].T + b[l],   a[l+1] = f(z[l+1]),   a[0] = X.

The output layer's delta = ∂L/∂z is the chain rule written out in full,
delta = J_f(z)ᵀ · ∂L/∂a with J the Jacobian of the output activation, instead
of the simplified forms (``a − y`` for softmax + cross-entropy, sigmoid +
binary cross-entropy) that an optimised kernel uses; agreeing with this
reference therefore also checks those simplifications.  Hidden layers use
delta[l−1] = (delta[l] @ W[l]) ⊙ f'(z[l]).  Losses and gradients are means
over the samples, as in bpfast's contract.
"""

import numpy as np

LEAKY_SLOPE = 0.01


def sigmoid(z):
    """σ(z) = 1 / (1 + e^−z), written as ½(1 + tanh(z/2)) so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def activate(name, z):
    """a = f(z) for a batch z of shape (n, m)."""
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "identity":
        return np.array(z, dtype=np.float64, copy=True)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}")


def derivative(name, z):
    """f'(z) elementwise, for the activations that act elementwise."""
    if name == "sigmoid":
        s = sigmoid(z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY_SLOPE)
    if name == "identity":
        return np.ones_like(z, dtype=np.float64)
    raise ValueError(f"{name!r} is not an elementwise activation")


def jacobian(name, z):
    """∂a/∂z per sample: J[s, k, j] = ∂a_k/∂z_j, shape (n, m, m)."""
    m = z.shape[1]
    eye = np.eye(m)
    if name == "softmax":
        a = activate(name, z)
        return a[:, :, None] * (eye - a[:, None, :])      # a_k (δ_kj − a_j)
    return derivative(name, z)[:, :, None] * eye


def sample_losses(loss, output, z, Y):
    """Loss of every sample from the output layer's z, shape (n,)."""
    a = activate(output, z)
    if loss == "mse":
        return 0.5 * np.sum((a - Y) ** 2, axis=1)
    if loss != "cross_entropy":
        raise ValueError(f"unknown loss {loss!r}")
    if output == "softmax":
        # log softmax(z)_k = z_k − log Σ_j e^{z_j}
        m = z.max(axis=1, keepdims=True)
        log_a = z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))
        return -np.sum(Y * log_a, axis=1)
    if output == "sigmoid":
        log_a = -np.logaddexp(0.0, -z)              # log σ(z)
        log_1ma = -np.logaddexp(0.0, z)             # log(1 − σ(z))
        return -np.sum(Y * log_a + (1.0 - Y) * log_1ma, axis=1)
    raise ValueError(f"cross_entropy is undefined for output {output!r}")


def loss_gradient_wrt_output(loss, output, a, Y):
    """∂L/∂a for each sample (before averaging), shape (n, nL)."""
    if loss == "mse":
        return a - Y
    if output == "softmax":
        return -Y / a
    return -Y / a + (1.0 - Y) / (1.0 - a)             # binary cross-entropy


def as_target_rows(Y, n_out):
    """Integer labels -> one-hot rows (the 0/1 value itself when n_out == 1); rows pass."""
    Y = np.asarray(Y)
    if Y.ndim == 1 and Y.dtype.kind in "iu":
        if n_out == 1:
            return Y.astype(np.float64).reshape(-1, 1)
        return np.eye(n_out)[Y]
    return np.asarray(Y, dtype=np.float64).reshape(-1, n_out)


class ReferenceMLP:
    """A float64 MLP with explicit, unoptimised forward and backward passes."""

    def __init__(self, weights, biases, activation, output, loss):
        self.weights = [np.array(W, dtype=np.float64) for W in weights]
        self.biases = [np.array(b, dtype=np.float64) for b in biases]
        self.activation = activation
        self.output = output
        self.loss_name = loss

    @classmethod
    def like(cls, net, activation, output, loss):
        """A reference holding float64 copies of a bpfast network's parameters."""
        return cls(net.weights, net.biases, activation, output, loss)

    def _layer_activation(self, l):
        return self.output if l == len(self.weights) - 1 else self.activation

    def forward_all(self, X):
        """(z, a): z[l] is z of layer l+1, a[0] = X, a[l+1] = f(z[l])."""
        a = [np.atleast_2d(np.asarray(X, dtype=np.float64))]
        z = []
        for l, (W, b) in enumerate(zip(self.weights, self.biases)):
            z.append(a[-1] @ W.T + b)
            a.append(activate(self._layer_activation(l), z[-1]))
        return z, a

    def forward(self, X):
        return self.forward_all(X)[1][-1]

    def loss(self, X, Y):
        """Mean loss over the samples."""
        z, _ = self.forward_all(X)
        Y = as_target_rows(Y, self.weights[-1].shape[0])
        return float(np.mean(sample_losses(self.loss_name, self.output, z[-1], Y)))

    def gradients(self, X, Y):
        """(grad_w, grad_b): mean ∂L/∂W[l] and ∂L/∂b[l] over the samples."""
        z, a = self.forward_all(X)
        n = a[0].shape[0]
        Y = as_target_rows(Y, self.weights[-1].shape[0])
        dL_da = loss_gradient_wrt_output(self.loss_name, self.output, a[-1], Y)
        delta = np.einsum("skj,sk->sj", jacobian(self.output, z[-1]), dL_da)
        L = len(self.weights)
        grad_w, grad_b = [None] * L, [None] * L
        for l in range(L - 1, -1, -1):
            grad_w[l] = delta.T @ a[l] / n
            grad_b[l] = delta.sum(axis=0) / n
            if l > 0:
                delta = (delta @ self.weights[l]) * derivative(self.activation, z[l - 1])
        return grad_w, grad_b

    def pre_activations(self, X):
        """Every z of every layer, concatenated: to keep test points off relu kinks."""
        z, _ = self.forward_all(X)
        return np.concatenate([zl.ravel() for zl in z])
