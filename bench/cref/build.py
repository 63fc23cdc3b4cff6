"""Compile the plain C reference loop (mlp_ref.c) and call it through ctypes.

The library is built with the system compiler as the issue specifies,
``cc -O3 -march=native -shared -fPIC``, once per precision (``-DMLP_FLOAT``
for float32), into ``bench/_cref/`` (git-ignored).  The file name carries a
hash of the source, the flags, the compiler's version and this CPU, so an
edit, another compiler or another machine (``-march=native`` code may not run
elsewhere) triggers a rebuild instead of loading a stale or illegal binary.

    >>> from cref import build
    >>> ref = build.load("float32")
    >>> loss_sum, n_correct = ref.train_epoch(spec, params, X, labels, order, lr=0.1)

`params` uses bpfast's flat layout (W[l] input-major, then b[l], rows padded
to `NetSpec.width` if given), so the same initial weights can be trained here
and with ``net.fit`` and the results compared.  `aligned_copy` puts them at a
64-byte boundary, as a C program would allocate its weights (`train_epoch`
accepts any C-contiguous buffer; its own scratch is always aligned).
"""

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).resolve().with_name("mlp_ref.c")
CACHE_DIR = Path(__file__).resolve().parents[1] / "_cref"
CFLAGS = ("-O3", "-march=native")
_LINK = ("-shared", "-fPIC")

# Activation and loss codes of bpfast's kernel (bpfast._layout.ACTIVATIONS and
# LOSSES); repeated here so the reference builds without bpfast, and checked
# against bpfast by `check_codes`.
ACTIVATIONS = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4, "softmax": 5,
               "exp": 6}
LOSSES = {"mse": 0, "cross_entropy": 1, "poisson": 2}

_DTYPES = {"float32": (np.float32, ctypes.c_float, ["-DMLP_FLOAT"]),
           "float64": (np.float64, ctypes.c_double, [])}


ALIGNMENT = 64   # bytes: a cache line, and whole AVX/AVX-512 vectors


def aligned_zeros(n, dtype):
    """A zeroed 1-D array of n elements whose data starts at a multiple of ALIGNMENT."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + n * dtype.itemsize].view(dtype)


def aligned_copy(a):
    """A copy of the 1-D array `a` at a multiple of ALIGNMENT."""
    out = aligned_zeros(a.shape[0], a.dtype)
    out[...] = a
    return out


class BuildError(RuntimeError):
    """The C reference could not be compiled or loaded."""


def compiler():
    """The C compiler command: $CC, else cc."""
    return shlex.split(os.environ.get("CC", "cc"))


def _cpu_signature():
    """What -march=native depends on: the CPU model and feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() + platform.machine()
    lines = [ln for ln in text.splitlines()
             if ln.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(sorted(set(lines)))


def _compiler_version(cc):
    try:
        out = subprocess.run([*cc, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"C compiler {shlex.join(cc)!r} not usable: {exc}") from None
    return out.stdout


def _flags(cflags):
    return tuple(shlex.split(cflags)) if isinstance(cflags, str) else tuple(cflags or CFLAGS)


def library_path(dtype, cflags=None):
    """Where the build for `dtype` is cached (the name changes with any input to the build)."""
    cc = compiler()
    _, _, defines = _DTYPES[dtype]
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), repr((cc, _flags(cflags), defines)).encode(),
                 _compiler_version(cc).encode(), _cpu_signature().encode()):
        key.update(part)
    tag = "f32" if dtype == "float32" else "f64"
    return CACHE_DIR / f"mlp_ref_{tag}-{key.hexdigest()[:16]}.so"


def build(dtype, cflags=None, force=False):
    """Compile mlp_ref.c for `dtype` unless a current build is cached; return its path.

    cflags: the optimisation flags (a string or a sequence), default
    ``-O3 -march=native``; ``-shared -fPIC`` are always added.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: expected 'float32' or 'float64'; got {dtype!r}")
    path = library_path(dtype, cflags)
    if path.exists() and not force:
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    _, _, defines = _DTYPES[dtype]
    # Compile to a temporary name, then rename: a concurrent run never loads half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=CACHE_DIR)
    os.close(fd)
    cmd = [*compiler(), *_flags(cflags), *_LINK, *defines, "-o", tmp, str(SOURCE), "-lm"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"compiling the C reference failed:\n$ {shlex.join(cmd)}\n"
                             f"{result.stderr}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def build_command(dtype, cflags=None):
    """The compile command, for the record (JSON output)."""
    _, _, defines = _DTYPES[dtype]
    return shlex.join([*compiler(), *_flags(cflags), *_LINK, *defines, "mlp_ref.c", "-lm"])


@dataclass(frozen=True)
class NetSpec:
    """A network in the reference's terms: sizes, activations, loss, row widths.

    width[l] is the row length of W[l] and b[l] (>= layers[l+1]); None means
    unpadded rows.
    """

    layers: tuple
    activation: str
    output: str
    loss: str
    width: tuple = None

    def arrays(self):
        L = len(self.layers) - 1
        size = np.array(self.layers, dtype=np.int64)
        width = np.array(self.width if self.width is not None else self.layers[1:],
                         dtype=np.int64)
        act = np.array([ACTIVATIONS[self.activation]] * (L - 1) + [ACTIVATIONS[self.output]],
                       dtype=np.int64)
        return L, size, width, act, LOSSES[self.loss]

    @property
    def widths(self):
        return tuple(self.width if self.width is not None else self.layers[1:])

    def pack(self, weights, biases, dtype):
        """The flat buffer for weights (each (out, in), as net.weights) and biases."""
        blocks = []
        for W, b, w in zip(weights, biases, self.widths):
            n_out, n_in = W.shape
            block = np.zeros((n_in + 1, w), dtype=dtype)   # W[l] rows, then b[l]
            block[:n_in, :n_out] = np.asarray(W).T
            block[n_in, :n_out] = b
            blocks.append(block.ravel())
        return np.concatenate(blocks)

    def unpack(self, params):
        """(weights, biases) copied out of a flat buffer, pads dropped."""
        weights, biases, offset = [], [], 0
        for n_in, n_out, w in zip(self.layers[:-1], self.layers[1:], self.widths):
            block = params[offset:offset + (n_in + 1) * w].reshape(n_in + 1, w)
            weights.append(block[:n_in, :n_out].T.copy())
            biases.append(block[n_in, :n_out].copy())
            offset += (n_in + 1) * w
        return weights, biases


class CReference:
    """The compiled per-sample SGD loop for one dtype."""

    def __init__(self, dtype, cflags=None):
        np_dtype, c_real, _ = _DTYPES[dtype]
        self.dtype = np.dtype(np_dtype)
        self.path = build(dtype, cflags)
        self.command = build_command(dtype, cflags)
        try:
            lib = ctypes.CDLL(str(self.path))
        except OSError as exc:
            raise BuildError(f"loading {self.path} failed: {exc}") from None
        i64 = ctypes.c_int64
        ptr = ctypes.c_void_p
        lib.mlp_ref_buffer_len.argtypes = [i64, ptr, ptr]
        lib.mlp_ref_buffer_len.restype = i64
        lib.mlp_ref_work_len.argtypes = [i64, ptr, ptr]
        lib.mlp_ref_work_len.restype = i64
        lib.mlp_ref_real_size.argtypes = []
        lib.mlp_ref_real_size.restype = i64
        lib.mlp_ref_train_epoch.argtypes = [i64, ptr, ptr, ptr, i64, ptr, ptr, ptr, ptr, ptr,
                                            i64, c_real, ctypes.c_int, ptr, ptr]
        lib.mlp_ref_train_epoch.restype = ctypes.c_int
        lib.mlp_ref_rows_floor.argtypes = [ptr, i64, ptr, ptr, i64]
        lib.mlp_ref_rows_floor.restype = None
        lib.mlp_ref_rows_pass.argtypes = [ptr, i64, ptr, ptr, ptr, i64, ctypes.c_int]
        lib.mlp_ref_rows_pass.restype = ctypes.c_int
        if lib.mlp_ref_real_size() != self.dtype.itemsize:
            raise BuildError(f"{self.path}: built for another precision than {dtype}")
        self._lib = lib

    def buffer_len(self, spec):
        """Length of the flat parameter buffer of `spec`."""
        L, size, width, _, _ = spec.arrays()
        n = int(self._lib.mlp_ref_buffer_len(L, size.ctypes.data, width.ctypes.data))
        if n < 0:
            raise ValueError(f"spec: at most 64 layers and width[l] >= layers[l+1]; got {spec}")
        return n

    def train_epoch(self, spec, params, X, targets, order, lr, skip_zeros=True):
        """Per-sample SGD over X[order] in place on `params`; returns (loss sum, n correct).

        targets: int class labels of shape (n,), or real targets of shape
        (n, layers[-1]).  Every array is checked here, because the C loop
        trusts its arguments.
        """
        L, size, width, act, loss = spec.arrays()
        n_in, n_out = spec.layers[0], spec.layers[-1]
        self._check(params, "params", (self.buffer_len(spec),))
        self._check(X, "X", (X.shape[0], n_in))
        targets = np.asarray(targets)
        if targets.dtype.kind in "iu":
            labels = np.ascontiguousarray(targets, dtype=np.int64)
            if labels.shape != (X.shape[0],) or (
                    labels.size and (labels.min() < 0 or labels.max() >= max(n_out, 2))):
                raise ValueError("targets: expected labels in range, one per row of X")
            labels_ptr, rows_ptr = labels.ctypes.data, None
        else:
            self._check(targets, "targets", (X.shape[0], n_out))
            labels_ptr, rows_ptr = None, targets.ctypes.data
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.ndim != 1 or (order.size and (order.min() < 0 or order.max() >= X.shape[0])):
            raise ValueError("order: expected a 1-D array of row indices of X")
        # Zeroed: the pads of delta must be zero (see mlp_ref.c).
        work = aligned_zeros(int(self._lib.mlp_ref_work_len(L, size.ctypes.data,
                                                            width.ctypes.data)), self.dtype)
        stats = np.zeros(2)
        self._lib.mlp_ref_train_epoch(
            L, size.ctypes.data, width.ctypes.data, act.ctypes.data, loss, params.ctypes.data,
            X.ctypes.data, rows_ptr, labels_ptr, order.ctypes.data, order.shape[0], lr,
            int(bool(skip_zeros)), work.ctypes.data, stats.ctypes.data)
        return float(stats[0]), int(stats[1])

    def rows_floor(self, W, X):
        """Seconds the C loop takes to read and write back one value per cache
        line of every row of W that the CSR rows of X list (see
        mlp_ref_rows_floor in mlp_ref.c): the memory floor of per-sample SGD."""
        indices, indptr = self._csr(W, X)
        start = time.perf_counter()
        self._lib.mlp_ref_rows_floor(W.ctypes.data, W.shape[1], indices.ctypes.data,
                                     indptr.ctypes.data, X.shape[0])
        return time.perf_counter() - start

    def rows_pass(self, W, X, prefetch):
        """Seconds the C loop takes for the first layer's row work of
        per-sample SGD on the CSR rows of X (see mlp_ref_rows_pass in
        mlp_ref.c), with or without the next sample's rows prefetched."""
        indices, indptr = self._csr(W, X)
        data = np.ascontiguousarray(X.data, dtype=self.dtype)
        if W.shape[1] > 1024:
            raise ValueError(f"W: at most 1024 columns; got {W.shape[1]}")
        start = time.perf_counter()
        self._lib.mlp_ref_rows_pass(W.ctypes.data, W.shape[1], indices.ctypes.data,
                                    indptr.ctypes.data, data.ctypes.data, X.shape[0],
                                    int(bool(prefetch)))
        return time.perf_counter() - start

    def _csr(self, W, X):
        """X's CSR arrays as int32, checked against W's rows (the C loops trust them)."""
        self._check(W, "W", W.shape if W.ndim == 2 else (-1, -1))
        indices = np.ascontiguousarray(X.indices, dtype=np.int32)
        indptr = np.ascontiguousarray(X.indptr, dtype=np.int32)
        if indices.size and (indices.min() < 0 or indices.max() >= W.shape[0]):
            raise ValueError(f"X: expected column indices below {W.shape[0]}")
        if indptr.shape != (X.shape[0] + 1,) or indptr[0] != 0 or indptr[-1] != indices.size:
            raise ValueError("X: inconsistent CSR arrays")
        return indices, indptr

    def _check(self, arr, name, shape):
        if not isinstance(arr, np.ndarray) or arr.dtype != self.dtype \
                or not arr.flags.c_contiguous or arr.shape != shape:
            got = (f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray)
                   else type(arr).__name__)
            raise ValueError(f"{name}: expected a C-contiguous {self.dtype} array of shape "
                             f"{shape}; got {got}")
        if name == "params" and not arr.flags.writeable:
            raise ValueError("params: expected a writable array")


_LOADED = {}


def load(dtype, cflags=None):
    """The C reference for `dtype` ("float32" or "float64"), built on first use."""
    key = (dtype, _flags(cflags))
    if key not in _LOADED:
        if shutil.which(compiler()[0]) is None:
            raise BuildError(f"no C compiler {compiler()[0]!r} on PATH (set CC)")
        _LOADED[key] = CReference(dtype, cflags)
    return _LOADED[key]


def check_codes():
    """Raise if bpfast's activation/loss codes differ from the ones compiled here."""
    from bpfast import _layout
    if _layout.ACTIVATIONS != ACTIVATIONS or _layout.LOSSES != LOSSES:
        raise BuildError("bpfast's activation/loss codes changed; update bench/cref/build.py "
                         "and mlp_ref.c")
