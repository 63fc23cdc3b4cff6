"""The competitors of bpfast: one epoch of SGD on the same network and data.

Each peer is a factory ``make_<peer>(cfg, data, batch_size, seed)`` that
returns a `Trainer`: ``reset()`` builds fresh parameters (not timed) and
``epoch()`` trains one epoch over ``data`` in a new random order (timed).
`samples_per_s` times one trainer on its own; bench/throughput.py times many
trainers interleaved through ``_common.measure``.

A peer whose library is missing, or that cannot express a network, raises
`Unavailable` with the reason; the caller prints it as a "skipped" line.

Every peer runs on one thread: torch.set_num_threads(1), NumPy's BLAS limited
to one thread (threadpoolctl) while NumPy and scikit-learn peers run, XLA's
CPU backend without its thread pool; bpfast's n_threads=1 is the match.

Peers:
  torch            nn.Sequential + torch.optim.SGD, minibatches of any size
  numpy            vectorised minibatch SGD (X_b @ W, W stored [in][out])
  numpy_textbook   Nielsen's network.py loop, one sample at a time (W [out][in])
  sklearn          MLPClassifier/MLPRegressor(solver="sgd").partial_fit
  numba            an @njit per-sample loop, the same algorithm as bpfast
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

def make_torch(cfg, data, batch_size, seed):
    """nn.Sequential + optim.SGD (momentum 0), torch.set_num_threads(1).

    The loss is bpfast's: ½·Σ(a − y)² per sample for mse, cross-entropy on the
    logits (F.cross_entropy, i.e. softmax + log-loss) for softmax outputs;
    both averaged over the minibatch.
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
        state["model"] = model
        state["opt"] = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.0)
        state["gen"] = torch.Generator().manual_seed(seed)

    def epoch():
        model, opt = state["model"], state["opt"]
        perm = torch.randperm(n, generator=state["gen"])
        Xp, Tp = X[perm], T[perm]
        for start in range(0, n, batch_size):
            xb, tb = Xp[start:start + batch_size], Tp[start:start + batch_size]
            loss = loss_fn(model(xb), tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    reset()
    return Trainer(reset, epoch)


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
    """Build the @njit per-sample SGD loop (once per process)."""
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
    def epoch(size, acts, loss, w_off, b_off, u_off, params, X, Y, order, lr, z, a, delta):
        """Per-sample SGD in place on params (bpfast's flat layout, W [in][out]).

        z, a, delta: the units of layers 1..L, layer l+1 at u_off[l].
        """
        L = size.shape[0] - 1
        for r in range(order.shape[0]):
            x = X[order[r]]
            y = Y[order[r]]
            # forward: z = b, then z += a_j W[j, :] for every nonzero input a_j
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
            # output delta: a - y, times f'(z) for mse through sigmoid/tanh/relu
            uo, code = u_off[L - 1], acts[L - 1]
            for k in range(size[L]):
                d = a[uo + k] - y[k]
                if loss == 0 and code != 5 and code != 0:
                    d *= act_prime(code, z[uo + k], a[uo + k])
                delta[uo + k] = d
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

    _numba_epoch = epoch
    return epoch


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


def numba_train_flat(cfg, params, X, Y, order, lr):
    """Run the Numba loop on given flat parameters (to check it against bpfast)."""
    epoch_fn = _compile_numba()
    size, acts, loss, w_off, b_off, u_off, units = _numba_spec(cfg, X.dtype)
    epoch_fn(size, acts, loss, w_off, b_off, u_off, params, X, Y, order, X.dtype.type(lr),
             *units)


def _numba_spec(cfg, dtype):
    size = np.array(cfg.layers, dtype=np.int64)
    acts = np.array([_ACT_CODES[cfg.activation]] * (len(cfg.layers) - 2)
                    + [_ACT_CODES[cfg.output]], dtype=np.int64)
    loss = 0 if cfg.loss == "mse" else 1
    w_off, b_off, u_off, _, n_units = _flat_layout(cfg.layers)
    units = tuple(np.zeros(n_units, dtype=dtype) for _ in range(3))   # z, a, delta
    return size, acts, loss, w_off, b_off, u_off, units


def make_numba(cfg, data, batch_size, seed):
    """An @njit per-sample loop: bpfast's algorithm (axpy over W [in][out],
    zero inputs skipped, update fused into the backward pass) compiled by
    Numba/LLVM; the compile happens in the untimed warm-up."""
    if batch_size != 1:
        raise Unavailable("the Numba loop is per sample (batch size 1) only")
    if cfg.activation not in _ACT_CODES or cfg.output not in _ACT_CODES:
        raise Unavailable(f"activation {cfg.activation}/{cfg.output} not in the Numba loop")
    if cfg.output == "softmax" and cfg.loss != "cross_entropy":
        raise Unavailable("softmax with mse not written for the Numba loop")
    epoch_fn = _compile_numba()
    dtype = data.X.dtype
    size, acts, loss, w_off, b_off, u_off, units = _numba_spec(cfg, dtype)
    lr = dtype.type(cfg.lr)
    state = {}

    def reset():
        state["params"] = _flat_params(cfg, seed, dtype)
        state["rng"] = np.random.default_rng(seed)

    def epoch():
        order = state["rng"].permutation(data.n)
        epoch_fn(size, acts, loss, w_off, b_off, u_off, state["params"], data.X, data.Y,
                 order, lr, *units)

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

# Peers that run Python code per sample: timed on fewer samples.
SLOW = {("torch", 1), ("numpy_textbook", 1), ("sklearn", 1)}


def is_slow(name, batch_size, cfg):
    """True for cases timed on the smaller sample count (--slow-samples): the
    per-sample Python loops, and FANN (no SIMD) on the MNIST-sized networks."""
    n_params = sum(a * b + b for a, b in zip(cfg.layers[:-1], cfg.layers[1:]))
    return (name, batch_size) in SLOW or (name == "fann" and n_params > 50_000)
