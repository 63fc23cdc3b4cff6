"""The competitors of bpfast: one epoch of SGD (or Adam) on the same network and data.

Each peer is a factory ``make_<peer>(cfg, data, batch_size, seed)`` that
returns a `Trainer` (the peers of ``ADAM_PEERS`` also take ``optimizer="adam"``
and ``lr``): ``reset()`` builds fresh parameters (not timed) and
``epoch()`` trains one epoch over ``data`` in a new random order (timed).
`samples_per_s` times one trainer on its own; bench/throughput.py times many
trainers interleaved through ``_common.measure``.

A peer whose library is missing, or that cannot express a network, raises
`Unavailable` with the reason; the caller prints it as a "skipped" line.

Every peer runs on one thread: torch.set_num_threads(1), NumPy's BLAS limited
to one thread (threadpoolctl) while NumPy and scikit-learn peers run, XLA's
CPU backend without its thread pool; bpfast's n_threads=1 is the match.

Peers:
  torch            nn.Sequential + torch.optim.SGD or Adam, minibatches of any size
  numpy            vectorised minibatch SGD (X_b @ W, W stored [in][out])
  numpy_textbook   Nielsen's network.py loop, one sample at a time (W [out][in])
  sklearn          MLPClassifier/MLPRegressor(solver="sgd").partial_fit
  numba            an @njit per-sample loop, the same algorithm as bpfast (SGD or Adam)
  jax              jax.jit over lax.scan of per-sample jax.grad steps
  fann             libfann's incremental training (fann_train_epoch), via ctypes
"""

import ctypes
import ctypes.util
import os
import warnings
from contextlib import nullcontext

import numpy as np

import _common


class Unavailable(Exception):
    """This peer cannot run here (missing library, network it cannot express)."""


class Trainer:
    """reset() -> fresh parameters; epoch() -> one epoch of training."""

    def __init__(self, reset, epoch, note=""):
        self.reset = reset
        self.epoch = epoch
        self.note = note


def blas_single_thread():
    """Limit NumPy's BLAS to one thread for the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def samples_per_s(trainer, n_samples, reps=5, warmup=1):
    """Median samples/s of trainer.epoch() over `reps` timed epochs."""
    case = _common.Case({}, trainer.epoch, n_samples, setup=trainer.reset)
    _common.measure([case], reps, warmup)
    return case.samples_per_s


# ---------------------------------------------------------------- activations in NumPy

def _np_act(name, z):
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "identity":
        return z
    raise Unavailable(f"activation {name!r} not implemented in the NumPy peers")


def _np_act_prime(name, z, a):
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (z > 0).astype(z.dtype)
    return np.ones_like(z)


def _np_softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _init_weights(cfg, rng, dtype):
    """Glorot-uniform (He-normal for relu) weights [in][out] and zero biases, like bpfast."""
    Ws, bs = [], []
    L = len(cfg.layers) - 1
    for l in range(L):
        n_in, n_out = cfg.layers[l], cfg.layers[l + 1]
        act = cfg.activation if l < L - 1 else cfg.output
        if act == "relu":
            W = rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out))
        else:
            limit = np.sqrt(6 / (n_in + n_out))
            W = rng.uniform(-limit, limit, (n_in, n_out))
        Ws.append(np.ascontiguousarray(W, dtype=dtype))
        bs.append(np.zeros(n_out, dtype=dtype))
    return Ws, bs


# ---------------------------------------------------------------- PyTorch

def make_torch(cfg, data, batch_size, seed, optimizer="sgd", lr=None, initial=None,
               shuffle=True):
    """nn.Sequential + optim.SGD (momentum 0) or optim.Adam (torch's defaults
    but lr), torch.set_num_threads(1).

    The loss is bpfast's: ½·Σ(a − y)² per sample for mse, cross-entropy on the
    logits (F.cross_entropy, i.e. softmax + log-loss) for softmax outputs;
    both averaged over the minibatch.  lr defaults to cfg.lr.  initial:
    (weights, biases) to start from instead of torch's initialisation, in
    bpfast's shapes (W [out][in]); shuffle=False visits the samples in order
    (both to check the arithmetic against bpfast).  trainer.parameters()
    returns W[0], b[0], W[1], ... as NumPy arrays.
    """
    try:
        import torch
        import torch.nn.functional as F
        from torch import nn
    except ImportError:
        raise Unavailable("PyTorch is not installed") from None
    torch.set_num_threads(1)
    tdtype = getattr(torch, str(data.X.dtype))
    acts = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "identity": nn.Identity}
    X = torch.from_numpy(data.X)
    if cfg.loss == "cross_entropy" and cfg.output == "softmax":
        T = torch.from_numpy(data.labels)

        def loss_fn(out, t):
            return F.cross_entropy(out, t)
        final = nn.Identity
    elif cfg.loss == "mse" and cfg.output in acts:
        T = torch.from_numpy(data.Y)

        def loss_fn(out, t):
            return 0.5 * ((out - t) ** 2).sum(dim=1).mean()
        final = acts[cfg.output]
    else:
        raise Unavailable(f"no torch equivalent written for {cfg.output}/{cfg.loss}")
    if optimizer not in OPTIMIZERS:
        raise Unavailable(f"no torch optimizer written for {optimizer!r}")
    lr = cfg.lr if lr is None else lr
    state = {}
    n = X.shape[0]

    def reset():
        torch.manual_seed(seed)
        modules = []
        L = len(cfg.layers) - 1
        for l in range(L):
            modules.append(nn.Linear(cfg.layers[l], cfg.layers[l + 1], dtype=tdtype))
            modules.append(acts[cfg.activation]() if l < L - 1 else final())
        model = nn.Sequential(*modules)
        if initial is not None:
            with torch.no_grad():
                for layer, W, b in zip(model[::2], *initial):
                    layer.weight.copy_(torch.from_numpy(np.asarray(W)))
                    layer.bias.copy_(torch.from_numpy(np.asarray(b)))
        state["model"] = model
        if optimizer == "adam":
            state["opt"] = torch.optim.Adam(model.parameters(), lr=lr)
        else:
            state["opt"] = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0)
        state["gen"] = torch.Generator().manual_seed(seed)

    def epoch():
        model, opt = state["model"], state["opt"]
        if shuffle:
            perm = torch.randperm(n, generator=state["gen"])
            Xp, Tp = X[perm], T[perm]
        else:
            Xp, Tp = X, T
        for start in range(0, n, batch_size):
            xb, tb = Xp[start:start + batch_size], Tp[start:start + batch_size]
            loss = loss_fn(model(xb), tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def parameters():
        return [p.detach().numpy().copy() for p in state["model"].parameters()]

    reset()
    trainer = Trainer(reset, epoch)
    trainer.parameters = parameters
    return trainer


# ---------------------------------------------------------------- NumPy

def make_numpy_minibatch(cfg, data, batch_size, seed):
    """Vectorised minibatch SGD in NumPy: Z = A @ W + b with W stored [in][out].

    The mean gradient over the batch: dW = A_prevᵀ delta / m, db = Σ delta / m,
    delta_prev = (delta Wᵀ) ⊙ f'(Z_prev).  BLAS limited to one thread.
    """
    if cfg.output == "softmax" and cfg.loss != "cross_entropy":
        raise Unavailable("softmax with mse not written for the NumPy peer")
    dtype = data.X.dtype
    lr = dtype.type(cfg.lr)
    X, Y = data.X, data.Y
    n, L = X.shape[0], len(cfg.layers) - 1
    state = {}

    def reset():
        state["W"], state["b"] = _init_weights(cfg, np.random.default_rng(seed), dtype)
        state["rng"] = np.random.default_rng(seed)

    def output_delta(Z, A, T):
        if cfg.output == "softmax" or (cfg.output == "sigmoid" and cfg.loss == "cross_entropy") \
                or cfg.output == "identity":
            return A - T
        return (A - T) * _np_act_prime(cfg.output, Z, A)

    def epoch():
        W, b = state["W"], state["b"]
        perm = state["rng"].permutation(n)
        with blas_single_thread():
            for start in range(0, n, batch_size):
                idx = perm[start:start + batch_size]
                m = dtype.type(len(idx))
                As, Zs = [X[idx]], []
                for l in range(L):
                    Z = As[-1] @ W[l] + b[l]
                    Zs.append(Z)
                    if l < L - 1:
                        As.append(_np_act(cfg.activation, Z))
                    elif cfg.output == "softmax":
                        As.append(_np_softmax(Z, axis=1))
                    else:
                        As.append(_np_act(cfg.output, Z))
                delta = output_delta(Zs[-1], As[-1], Y[idx]) / m
                for l in range(L - 1, -1, -1):
                    grad_W = As[l].T @ delta
                    grad_b = delta.sum(axis=0)
                    if l > 0:
                        delta = (delta @ W[l].T) * _np_act_prime(cfg.activation, Zs[l - 1], As[l])
                    W[l] -= lr * grad_W
                    b[l] -= lr * grad_b

    reset()
    return Trainer(reset, epoch)


def make_numpy_textbook(cfg, data, batch_size, seed):
    """Nielsen's network.py run one sample at a time (mini_batch_size 1).

    Column vectors, weights [out][in] (drawn N(0, 1/n_in) as in network2.py,
    so the sigmoid units do not saturate), backprop() returning (nabla_b,
    nabla_w) per sample, then the update; generalised to this network's
    activations (delta = a − y for softmax + cross-entropy).
    """
    if batch_size != 1:
        raise Unavailable("the textbook loop is per sample (batch size 1) only")
    if cfg.output == "softmax" and cfg.loss != "cross_entropy":
        raise Unavailable("softmax with mse not written for the textbook peer")
    dtype = data.X.dtype
    lr = dtype.type(cfg.lr)
    sizes = cfg.layers
    L = len(sizes) - 1
    state = {}

    def reset():
        rng = np.random.default_rng(seed)
        state["biases"] = [rng.standard_normal((y, 1)).astype(dtype) for y in sizes[1:]]
        state["weights"] = [(rng.standard_normal((y, x)) / np.sqrt(x)).astype(dtype)
                            for x, y in zip(sizes[:-1], sizes[1:])]
        # network.py's data loader: a list of (x, y) column vectors.
        state["data"] = [(x.reshape(-1, 1), y.reshape(-1, 1)) for x, y in zip(data.X, data.Y)]
        state["rng"] = np.random.default_rng(seed)

    def backprop(x, y):
        biases, weights = state["biases"], state["weights"]
        nabla_b = [None] * L
        nabla_w = [None] * L
        activation = x
        activations = [x]
        zs = []
        for l, (b, w) in enumerate(zip(biases, weights)):
            z = np.dot(w, activation) + b
            zs.append(z)
            if l < L - 1:
                activation = _np_act(cfg.activation, z)
            elif cfg.output == "softmax":
                activation = _np_softmax(z, axis=0)
            else:
                activation = _np_act(cfg.output, z)
            activations.append(activation)
        delta = activations[-1] - y
        if cfg.output not in ("softmax", "identity") and cfg.loss == "mse":
            delta = delta * _np_act_prime(cfg.output, zs[-1], activations[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for k in range(2, L + 1):
            sp = _np_act_prime(cfg.activation, zs[-k], activations[-k])
            delta = np.dot(weights[-k + 1].transpose(), delta) * sp
            nabla_b[-k] = delta
            nabla_w[-k] = np.dot(delta, activations[-k - 1].transpose())
        return nabla_b, nabla_w

    def epoch():
        training_data = state["data"]
        order = state["rng"].permutation(len(training_data))
        with blas_single_thread():
            for i in order:
                x, y = training_data[i]
                nabla_b, nabla_w = backprop(x, y)
                state["weights"] = [w - lr * nw for w, nw in zip(state["weights"], nabla_w)]
                state["biases"] = [b - lr * nb for b, nb in zip(state["biases"], nabla_b)]

    reset()
    return Trainer(reset, epoch)


# ---------------------------------------------------------------- scikit-learn

_SK_ACT = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu", "identity": "identity"}


def make_sklearn(cfg, data, batch_size, seed):
    """MLPClassifier/MLPRegressor(solver="sgd"), one epoch per partial_fit call.

    Plain SGD as bpfast: momentum=0, alpha=0 (no L2), constant learning rate,
    shuffle=False (partial_fit visits the rows in order; we pass them
    permuted).  MLPClassifier has a softmax + log-loss output, MLPRegressor an
    identity + squared-error output; other output/loss pairs have no
    scikit-learn equivalent.
    """
    try:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError:
        raise Unavailable("scikit-learn is not installed") from None
    if cfg.activation not in _SK_ACT:
        raise Unavailable(f"scikit-learn has no {cfg.activation!r} activation")
    common = dict(hidden_layer_sizes=cfg.layers[1:-1], activation=_SK_ACT[cfg.activation],
                  solver="sgd", batch_size=batch_size, max_iter=1, momentum=0.0,
                  nesterovs_momentum=False, learning_rate="constant",
                  learning_rate_init=cfg.lr, alpha=0.0, shuffle=False, random_state=seed)
    if cfg.output == "softmax" and cfg.loss == "cross_entropy" and data.labels is not None:
        estimator, T, classes = MLPClassifier, data.labels, np.arange(cfg.layers[-1])
    elif cfg.output == "identity" and cfg.loss == "mse":
        estimator, T, classes = MLPRegressor, data.Y, None
    else:
        raise Unavailable(f"scikit-learn's MLPs have no {cfg.output}/{cfg.loss} output "
                          "(MLPClassifier: softmax/log-loss, MLPRegressor: identity/squared)")
    X = data.X
    state = {}

    def reset():
        model = estimator(**common)
        # The first partial_fit initialises the weights (for `classes`).
        kwargs = {"classes": classes} if classes is not None else {}
        with warnings.catch_warnings(), blas_single_thread():
            warnings.simplefilter("ignore")
            model.partial_fit(X[:batch_size], T[:batch_size], **kwargs)
        state["model"] = model
        state["rng"] = np.random.default_rng(seed)

    def epoch():
        perm = state["rng"].permutation(X.shape[0])
        with warnings.catch_warnings(), blas_single_thread():
            warnings.simplefilter("ignore")
            state["model"].partial_fit(X[perm], T[perm])

    reset()
    return Trainer(reset, epoch)


# ---------------------------------------------------------------- Numba

_ACT_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "softmax": 5}
_numba_epoch = None


def _compile_numba():
    """Build the @njit per-sample SGD and Adam loops (once per process); returns
    (sgd epoch, adam epoch)."""
    global _numba_epoch
    if _numba_epoch is not None:
        return _numba_epoch
    try:
        import numba
    except ImportError:
        raise Unavailable("numba is not installed (pip install numba)") from None
    import math

    # cache=True: compiled once per machine into __pycache__ (git-ignored).
    njit = numba.njit(nogil=True, cache=True, fastmath=False)

    @njit
    def act(code, z):
        if code == 1:
            if z >= 0:
                return 1 / (1 + math.exp(-z))
            e = math.exp(z)
            return e / (1 + e)
        if code == 2:
            return math.tanh(z)
        if code == 3:
            return z if z > 0 else 0.0
        return z

    @njit
    def act_prime(code, z, a):
        if code == 1:
            return a * (1 - a)
        if code == 2:
            return 1 - a * a
        if code == 3:
            return 1.0 if z > 0 else 0.0
        return 1.0

    @njit
    def forward(size, acts, w_off, b_off, u_off, params, x, z, a):
        """z = b, then z += a_j W[j, :] for every nonzero input a_j; a = f(z).

        Layer l+1's units are z[u_off[l]:], a[u_off[l]:] (flat layout, W [in][out]).
        """
        L = size.shape[0] - 1
        for l in range(L):
            n_in, n_out, uo = size[l], size[l + 1], u_off[l]
            W = params[w_off[l]:b_off[l]].reshape((n_in, n_out))
            b = params[b_off[l]:b_off[l] + n_out]
            a_prev = x if l == 0 else a[u_off[l - 1]:u_off[l - 1] + n_in]
            z_l = z[uo:uo + n_out]
            a_l = a[uo:uo + n_out]
            z_l[:] = b
            for j in range(n_in):
                a_j = a_prev[j]
                if a_j != 0:
                    W_j = W[j]
                    for i in range(n_out):
                        z_l[i] += a_j * W_j[i]
            if acts[l] == 5:
                e = np.exp(z_l - z_l.max())
                a_l[:] = e / e.sum()
            else:
                for i in range(n_out):
                    a_l[i] = act(acts[l], z_l[i])

    @njit
    def output_delta(size, acts, loss, u_off, y, z, a, delta):
        """a - y, times f'(z) for mse through sigmoid/tanh/relu."""
        L = size.shape[0] - 1
        uo, code = u_off[L - 1], acts[L - 1]
        for k in range(size[L]):
            d = a[uo + k] - y[k]
            if loss == 0 and code != 5 and code != 0:
                d *= act_prime(code, z[uo + k], a[uo + k])
            delta[uo + k] = d

    @njit
    def epoch(size, acts, loss, w_off, b_off, u_off, params, X, Y, order, lr, z, a, delta):
        """Per-sample SGD in place on params (bpfast's flat layout, W [in][out]).

        z, a, delta: the units of layers 1..L, layer l+1 at u_off[l].
        """
        L = size.shape[0] - 1
        for r in range(order.shape[0]):
            x = X[order[r]]
            y = Y[order[r]]
            forward(size, acts, w_off, b_off, u_off, params, x, z, a)
            output_delta(size, acts, loss, u_off, y, z, a, delta)
            # backward with the update fused: read W[j, :] for delta_prev, then update it
            for l in range(L - 1, -1, -1):
                n_in, n_out, uo = size[l], size[l + 1], u_off[l]
                W = params[w_off[l]:b_off[l]].reshape((n_in, n_out))
                b = params[b_off[l]:b_off[l] + n_out]
                d_l = delta[uo:uo + n_out]
                a_prev = x if l == 0 else a[u_off[l - 1]:u_off[l - 1] + n_in]
                b -= lr * d_l
                for j in range(n_in):
                    W_j = W[j]
                    if l > 0:
                        up = u_off[l - 1] + j
                        acc = d_l[0] * 0
                        for i in range(n_out):
                            acc += W_j[i] * d_l[i]
                        delta[up] = acc * act_prime(acts[l - 1], z[up], a[up])
                    a_j = a_prev[j]
                    if a_j != 0:
                        for i in range(n_out):
                            W_j[i] -= lr * (a_j * d_l[i])

    # error_model="numpy": a division by zero gives inf as in C instead of a
    # Python exception, whose check per element keeps LLVM from vectorising.
    @numba.njit(nogil=True, cache=True, fastmath=False, error_model="numpy")
    def adam_row(p, m, v, a_j, d, c):
        """torch's Adam on p[i], m[i], v[i] with the gradient g_i = a_j d_i.

        c = (step size lr / (1 - beta1^t), sqrt(1 - beta2^t), 1 - beta1,
        beta2, 1 - beta2, eps) in the parameters' dtype.
        """
        step_size, bc2, one_m_b1, b2, one_m_b2, eps = c[0], c[1], c[2], c[3], c[4], c[5]
        for i in range(p.shape[0]):
            g = a_j * d[i]
            m_i = m[i] + one_m_b1 * (g - m[i])
            v_i = b2 * v[i] + one_m_b2 * g * g
            m[i] = m_i
            v[i] = v_i
            p[i] -= step_size * (m_i / (np.sqrt(v_i) / bc2 + eps))

    @njit
    def adam_epoch(size, acts, loss, w_off, b_off, u_off, params, m, v, step, X, Y, order,
                   hyper, c, z, a, delta):
        """Per-sample Adam in place on params, m, v (the layout of params), from
        step count `step`; returns the new step count.

        hyper = (lr, beta1, beta2, eps) in float64; c: scratch of 7 in the
        parameters' dtype for the constants of each step (see adam_row; c[6]
        = 1, the "input" of a bias).  step is a float, as in the kernel.  The
        forward pass skips zero inputs; the update touches every parameter
        (a zero gradient still moves m, v and p), fused into the backward
        pass row by row after that row's W[j, :] has given delta_prev[j].
        """
        L = size.shape[0] - 1
        lr, beta1, beta2, eps = hyper[0], hyper[1], hyper[2], hyper[3]
        for r in range(order.shape[0]):
            x = X[order[r]]
            y = Y[order[r]]
            forward(size, acts, w_off, b_off, u_off, params, x, z, a)
            output_delta(size, acts, loss, u_off, y, z, a, delta)
            step += 1
            c[0] = lr / (1 - beta1 ** step)
            c[1] = math.sqrt(1 - beta2 ** step)
            c[2] = 1 - beta1
            c[3] = beta2
            c[4] = 1 - beta2
            c[5] = eps
            c[6] = 1
            for l in range(L - 1, -1, -1):
                n_in, n_out, uo = size[l], size[l + 1], u_off[l]
                d_l = delta[uo:uo + n_out]
                a_prev = x if l == 0 else a[u_off[l - 1]:u_off[l - 1] + n_in]
                lo, hi = b_off[l], b_off[l] + n_out
                adam_row(params[lo:hi], m[lo:hi], v[lo:hi], c[6], d_l, c)
                for j in range(n_in):
                    lo = w_off[l] + j * n_out
                    hi = lo + n_out
                    if l > 0:
                        W_j = params[lo:hi]
                        up = u_off[l - 1] + j
                        acc = d_l[0] * 0
                        for i in range(n_out):
                            acc += W_j[i] * d_l[i]
                        delta[up] = acc * act_prime(acts[l - 1], z[up], a[up])
                    adam_row(params[lo:hi], m[lo:hi], v[lo:hi], a_prev[j], d_l, c)
        return step

    _numba_epoch = (epoch, adam_epoch)
    return _numba_epoch


def _flat_layout(layers):
    """bpfast's flat layout: W[l] [in][out] then b[l]; offsets of params and units."""
    w_off, b_off, u_off = [], [], []
    offset = units = 0
    for l in range(len(layers) - 1):
        w_off.append(offset)
        offset += layers[l] * layers[l + 1]
        b_off.append(offset)
        offset += layers[l + 1]
        u_off.append(units)
        units += layers[l + 1]
    as_int = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    return as_int(w_off), as_int(b_off), as_int(u_off), offset, units


def _flat_params(cfg, seed, dtype):
    Ws, bs = _init_weights(cfg, np.random.default_rng(seed), dtype)
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(Ws, bs)])


# torch.optim.Adam's defaults (lr aside), as the Numba Adam loop uses them.
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
OPTIMIZERS = ("sgd", "adam")


def _numba_adam_args(dtype, lr):
    hyper = np.array([lr, *ADAM_BETAS, ADAM_EPS], dtype=np.float64)
    return hyper, np.zeros(7, dtype=dtype)


def numba_train_flat(cfg, params, X, Y, order, lr, optimizer="sgd"):
    """Run the Numba loop on given flat parameters (to check it against bpfast);
    Adam starts from a fresh state."""
    sgd_epoch, adam_epoch = _compile_numba()
    size, acts, loss, w_off, b_off, u_off, units = _numba_spec(cfg, X.dtype)
    if optimizer == "adam":
        m, v = np.zeros_like(params), np.zeros_like(params)
        adam_epoch(size, acts, loss, w_off, b_off, u_off, params, m, v, 0.0, X, Y, order,
                   *_numba_adam_args(X.dtype, lr), *units)
    else:
        sgd_epoch(size, acts, loss, w_off, b_off, u_off, params, X, Y, order,
                  X.dtype.type(lr), *units)


def _numba_spec(cfg, dtype):
    size = np.array(cfg.layers, dtype=np.int64)
    acts = np.array([_ACT_CODES[cfg.activation]] * (len(cfg.layers) - 2)
                    + [_ACT_CODES[cfg.output]], dtype=np.int64)
    loss = 0 if cfg.loss == "mse" else 1
    w_off, b_off, u_off, _, n_units = _flat_layout(cfg.layers)
    units = tuple(np.zeros(n_units, dtype=dtype) for _ in range(3))   # z, a, delta
    return size, acts, loss, w_off, b_off, u_off, units


def make_numba(cfg, data, batch_size, seed, optimizer="sgd", lr=None):
    """An @njit per-sample loop: bpfast's algorithm (axpy over W [in][out],
    zero inputs skipped, update fused into the backward pass) compiled by
    Numba/LLVM; the compile happens in the untimed warm-up.  optimizer "adam":
    the same passes with torch's Adam update of every parameter per sample
    (state kept across epochs, as a torch optimizer's is); lr defaults to cfg.lr."""
    if batch_size != 1:
        raise Unavailable("the Numba loop is per sample (batch size 1) only")
    if cfg.activation not in _ACT_CODES or cfg.output not in _ACT_CODES:
        raise Unavailable(f"activation {cfg.activation}/{cfg.output} not in the Numba loop")
    if cfg.output == "softmax" and cfg.loss != "cross_entropy":
        raise Unavailable("softmax with mse not written for the Numba loop")
    if optimizer not in OPTIMIZERS:
        raise Unavailable(f"no Numba loop written for {optimizer!r}")
    sgd_epoch, adam_epoch = _compile_numba()
    dtype = data.X.dtype
    size, acts, loss, w_off, b_off, u_off, units = _numba_spec(cfg, dtype)
    lr = cfg.lr if lr is None else lr
    hyper, consts = _numba_adam_args(dtype, lr)
    state = {}

    def reset():
        state["params"] = _flat_params(cfg, seed, dtype)
        state["m"] = np.zeros_like(state["params"])
        state["v"] = np.zeros_like(state["params"])
        state["step"] = 0.0
        state["rng"] = np.random.default_rng(seed)

    def epoch():
        order = state["rng"].permutation(data.n)
        if optimizer == "adam":
            state["step"] = adam_epoch(size, acts, loss, w_off, b_off, u_off, state["params"],
                                       state["m"], state["v"], state["step"], data.X, data.Y,
                                       order, hyper, consts, *units)
        else:
            sgd_epoch(size, acts, loss, w_off, b_off, u_off, state["params"], data.X, data.Y,
                      order, dtype.type(lr), *units)

    reset()
    return Trainer(reset, epoch)


# ---------------------------------------------------------------- JAX

def _import_jax():
    # One CPU thread for XLA, like every other peer (only if the user set nothing).
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
    except ImportError:
        raise Unavailable("jax is not installed (pip install jax jaxlib)") from None
    jax.config.update("jax_enable_x64", True)   # float64 peers; float32 arrays stay float32
    return jax


def make_jax(cfg, data, batch_size, seed):
    """jax.jit of lax.scan over the samples: per sample, jax.grad of the loss and
    p -= lr * g.  One compile per network and dtype, in the untimed warm-up."""
    if batch_size != 1:
        raise Unavailable("the JAX scan is per sample (batch size 1) only")
    jax = _import_jax()
    jnp = jax.numpy
    dtype = data.X.dtype
    acts = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
            "identity": lambda z: z}
    if cfg.activation not in acts:
        raise Unavailable(f"activation {cfg.activation!r} not in the JAX peer")
    L = len(cfg.layers) - 1
    lr = dtype.type(cfg.lr)

    def loss_fn(params, x, y):
        a = x
        for l, (W, b) in enumerate(params):
            z = a @ W + b
            if l < L - 1:
                a = acts[cfg.activation](z)
        if cfg.output == "softmax" and cfg.loss == "cross_entropy":
            return -jnp.sum(y * jax.nn.log_softmax(z))
        if cfg.loss == "mse" and cfg.output in acts:
            return 0.5 * jnp.sum((acts[cfg.output](z) - y) ** 2)
        raise Unavailable(f"no JAX loss written for {cfg.output}/{cfg.loss}")

    grad_fn = jax.grad(loss_fn)

    def step(params, xy):
        g = grad_fn(params, *xy)
        return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g), None

    @jax.jit
    def train(params, X, Y):
        return jax.lax.scan(step, params, (X, Y))[0]

    loss_fn(_jax_params(cfg, seed, dtype, jnp), jnp.asarray(data.X[0]),
            jnp.asarray(data.Y[0]))   # raises Unavailable early
    state = {}

    def reset():
        state["params"] = _jax_params(cfg, seed, dtype, jnp)
        state["rng"] = np.random.default_rng(seed)

    def epoch():
        perm = state["rng"].permutation(data.n)
        params = train(state["params"], jnp.asarray(data.X[perm]), jnp.asarray(data.Y[perm]))
        state["params"] = jax.block_until_ready(params)

    reset()
    return Trainer(reset, epoch)


def _jax_params(cfg, seed, dtype, jnp):
    Ws, bs = _init_weights(cfg, np.random.default_rng(seed), dtype)
    return [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(Ws, bs)]


# ---------------------------------------------------------------- FANN

class _FannTrainData(ctypes.Structure):
    # struct fann_train_data of FANN 2.x (fann_train.h).
    _fields_ = [("errno_f", ctypes.c_int), ("error_log", ctypes.c_void_p),
                ("errstr", ctypes.c_char_p), ("num_data", ctypes.c_uint),
                ("num_input", ctypes.c_uint), ("num_output", ctypes.c_uint),
                ("input", ctypes.POINTER(ctypes.c_void_p)),
                ("output", ctypes.POINTER(ctypes.c_void_p))]


# fann_activationfunc_enum (fann_data.h).
_FANN_LINEAR, _FANN_SIGMOID, _FANN_SIGMOID_SYMMETRIC, _FANN_LINEAR_PIECE = 0, 3, 5, 12
_fann_libs = {}


def _load_fann(dtype):
    name = "floatfann" if dtype == np.float32 else "doublefann"
    if name in _fann_libs:
        return _fann_libs[name]
    path = ctypes.util.find_library(name)
    if path is None:
        raise Unavailable(f"lib{name} not found (Debian/Ubuntu: apt-get install libfann-dev)")
    lib = ctypes.CDLL(path)
    real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    ptr, uint = ctypes.c_void_p, ctypes.c_uint
    lib.fann_create_standard_array.argtypes = [uint, ctypes.POINTER(uint)]
    lib.fann_create_standard_array.restype = ptr
    for fn in ("fann_set_activation_function_hidden", "fann_set_activation_function_output",
               "fann_set_training_algorithm", "fann_set_train_error_function"):
        getattr(lib, fn).argtypes = [ptr, ctypes.c_int]
        getattr(lib, fn).restype = None
    for fn in ("fann_set_activation_steepness_hidden", "fann_set_activation_steepness_output"):
        getattr(lib, fn).argtypes = [ptr, real]
        getattr(lib, fn).restype = None
    for fn in ("fann_set_learning_rate", "fann_set_learning_momentum"):
        getattr(lib, fn).argtypes = [ptr, ctypes.c_float]
        getattr(lib, fn).restype = None
    lib.fann_randomize_weights.argtypes = [ptr, real, real]
    lib.fann_randomize_weights.restype = None
    lib.fann_create_train.argtypes = [uint, uint, uint]
    lib.fann_create_train.restype = ctypes.POINTER(_FannTrainData)
    lib.fann_train_epoch.argtypes = [ptr, ctypes.POINTER(_FannTrainData)]
    lib.fann_train_epoch.restype = ctypes.c_float
    lib.fann_destroy.argtypes = [ptr]
    lib.fann_destroy.restype = None
    lib.fann_destroy_train.argtypes = [ctypes.POINTER(_FannTrainData)]
    lib.fann_destroy_train.restype = None
    _fann_libs[name] = lib
    return lib


def make_fann(cfg, data, batch_size, seed):
    """FANN's incremental (per-sample) backpropagation, fann_train_epoch, via ctypes.

    Sigmoid and tanh are FANN_SIGMOID (steepness 0.5 = 1/(1+e^-z)) and
    FANN_SIGMOID_SYMMETRIC (steepness 1 = tanh z), identity FANN_LINEAR; the
    error function is the plain linear one.  FANN 2.2 has neither softmax nor
    relu: for those networks the peer runs the nearest FANN network of the same
    size (sigmoid output + mse; bounded linear FANN_LINEAR_PIECE for relu) and
    says so in its note, so its speed compares, its arithmetic does not.
    """
    if batch_size != 1:
        raise Unavailable("FANN's incremental training is per sample (batch size 1) only")
    dtype = data.X.dtype.type
    lib = _load_fann(dtype)
    acts = {"sigmoid": (_FANN_SIGMOID, 0.5), "tanh": (_FANN_SIGMOID_SYMMETRIC, 1.0),
            "identity": (_FANN_LINEAR, 1.0), "relu": (_FANN_LINEAR_PIECE, 1.0)}
    approx = []
    hidden = acts[cfg.activation]
    if cfg.activation == "relu":
        approx.append("relu->linear_piece")
    if cfg.output in ("softmax",) or cfg.loss == "cross_entropy":
        output = acts["sigmoid"]
        approx.append(f"{cfg.output}/{cfg.loss}->sigmoid/mse")
    else:
        output = acts[cfg.output]
    sizes = (ctypes.c_uint * len(cfg.layers))(*cfg.layers)
    n, n_in, n_out = data.n, cfg.layers[0], cfg.layers[-1]
    state = {"ann": None, "train": None}

    def destroy():
        if state["ann"]:
            lib.fann_destroy(state["ann"])
        if state["train"]:
            lib.fann_destroy_train(state["train"])
        state["ann"] = state["train"] = None

    def fill_train(order):
        """Copy X[order], Y[order] into FANN's contiguous input/output blocks."""
        td = state["train"].contents
        # Keep the shuffled copies referenced until the copy into FANN is done.
        X_order, Y_order = data.X[order], data.Y[order]
        ctypes.memmove(td.input[0], X_order.ctypes.data, X_order.nbytes)
        ctypes.memmove(td.output[0], Y_order.ctypes.data, Y_order.nbytes)

    def reset():
        destroy()
        ann = lib.fann_create_standard_array(len(cfg.layers), sizes)
        if not ann:
            raise Unavailable("fann_create_standard_array failed")
        state["ann"] = ann
        lib.fann_set_activation_function_hidden(ann, hidden[0])
        lib.fann_set_activation_steepness_hidden(ann, hidden[1])
        lib.fann_set_activation_function_output(ann, output[0])
        lib.fann_set_activation_steepness_output(ann, output[1])
        lib.fann_set_training_algorithm(ann, 0)       # FANN_TRAIN_INCREMENTAL
        lib.fann_set_train_error_function(ann, 0)     # FANN_ERRORFUNC_LINEAR
        lib.fann_set_learning_rate(ann, cfg.lr)
        lib.fann_set_learning_momentum(ann, 0.0)
        limit = float(np.sqrt(6 / (n_in + cfg.layers[1])))
        lib.fann_randomize_weights(ann, -limit, limit)
        state["train"] = lib.fann_create_train(n, n_in, n_out)
        state["rng"] = np.random.default_rng(seed)

    def epoch():
        # Shuffle as the other peers do; FANN then walks its data in order.
        fill_train(state["rng"].permutation(n))
        lib.fann_train_epoch(state["ann"], state["train"])

    reset()
    trainer = Trainer(reset, epoch, note=("approx: " + ", ".join(approx)) if approx else "")
    trainer.close = destroy
    return trainer


# ---------------------------------------------------------------- registry

# name -> (factory, batch sizes measured, label)
PEERS = {
    "torch": (make_torch, (1, 10, 32, 128), "PyTorch"),
    "numpy": (make_numpy_minibatch, (10, 32, 128), "NumPy minibatch"),
    "numpy_textbook": (make_numpy_textbook, (1,), "NumPy textbook"),
    "sklearn": (make_sklearn, (1, 10, 32, 128), "scikit-learn"),
    "numba": (make_numba, (1,), "Numba"),
    "jax": (make_jax, (1,), "JAX scan"),
    "fann": (make_fann, (1,), "FANN"),
}

# Peers with an `optimizer` parameter ("adam") -> batch sizes measured with Adam.
ADAM_PEERS = {"torch": (1, 32, 128), "numba": (1,)}

# Peers that run Python code per sample: timed on fewer samples.
SLOW = {("torch", 1), ("numpy_textbook", 1), ("sklearn", 1)}


def is_slow(name, batch_size, cfg):
    """True for cases timed on the smaller sample count (--slow-samples): the
    per-sample Python loops, and FANN (no SIMD) on the MNIST-sized networks."""
    n_params = sum(a * b + b for a, b in zip(cfg.layers[:-1], cfg.layers[1:]))
    return (name, batch_size) in SLOW or (name == "fann" and n_params > 50_000)
