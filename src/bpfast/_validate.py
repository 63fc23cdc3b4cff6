"""Checks at the Python boundary: everything the kernel trusts is proven here.

Every function names the argument, what was expected and what was given, and
returns arrays in exactly the dtype, shape and layout the kernel reads.  No
function here changes a network.
"""

import numbers
from collections import namedtuple

import numpy as np

from . import _dispatch

Targets = namedtuple("Targets", "rows labels classification")
Targets.__doc__ = """Training targets as the kernel reads them.

rows: (n, nL) real targets, or an empty (0, nL) array when labels are used.
labels: (n,) int64 class labels, or an empty (0,) array.
classification: True when accuracy is meaningful (labels or one-hot rows).
"""

_EMPTY_LABELS = np.empty(0, dtype=np.int64)
_EMPTY_LABELS.setflags(write=False)


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{value!r} ({type(value).__name__})"


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: expected one of {expected}; got {_describe(value)}")
    return value


def check_int(name, value, minimum=None, maximum=None):
    """An integer (not a bool) in [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer; got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}; got {value}")
    return value


def check_real(name, value, *, positive=False, nonnegative=False, below=None):
    """A finite real number (not a bool), optionally > 0, >= 0 or < below."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number; got {_describe(value)}")
    try:
        value = float(value)
    except OverflowError:
        value = float("inf") if value > 0 else float("-inf")
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number; got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name}: expected a number > 0; got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name}: expected a number >= 0; got {value}")
    if below is not None and value >= below:
        raise ValueError(f"{name}: expected a number < {below}; got {value}")
    return value


def check_dtype(dtype):
    """'float32' or 'float64' (or the NumPy equivalents) -> np.dtype."""
    try:
        dt = np.dtype(dtype)
    except Exception:       # NumPy raises TypeError, ValueError or SyntaxError
        dt = None
    if dtype is None or dt not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected 'float32' or 'float64'; got {_describe(dtype)}")
    return dt


def check_layers(layers):
    """A sequence of at least two positive integer layer sizes."""
    if (isinstance(layers, (str, bytes, set, frozenset, dict))
            or not hasattr(layers, "__len__") or not hasattr(layers, "__getitem__")):
        raise TypeError(f"layers: expected a list of layer sizes like [784, 30, 10]; "
                        f"got {_describe(layers)}")
    sizes = [check_int(f"layers[{k}]", n, minimum=1) for k, n in enumerate(layers)]
    if len(sizes) < 2:
        raise ValueError(f"layers: expected at least 2 sizes (input and output); got {sizes}")
    return tuple(sizes)


def _as_real_array(name, value):
    """np.asarray that rejects what cannot be a real number array, with a named error."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: expected a rectangular array of numbers; {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers (bool, int or float); "
                        f"got {_describe(arr)}")
    return arr


def _convert(name, arr, dtype):
    """C-contiguous copy in dtype only when needed, then a finiteness check."""
    if arr.dtype == dtype and arr.flags.c_contiguous:
        out = arr                           # the common case: no copy, no conversion
    else:
        with np.errstate(over="ignore"):    # overflow to inf is reported below
            out = np.ascontiguousarray(arr, dtype=dtype)
    if out.dtype.kind == "f" and not _dispatch.kernel.all_finite(out.reshape(-1)):
        where = "" if arr.dtype == dtype else f" after conversion to {dtype}"
        raise ValueError(f"{name}: expected finite values; got NaN or infinity{where}")
    return out


def is_sparse(X):
    """True for a SciPy sparse matrix or array (or SparseRows), without importing SciPy."""
    return isinstance(X, SparseRows) or type(X).__module__.startswith("scipy.sparse")


class SparseRows:
    """Validated CSR rows, as the kernel reads them (see `as_sparse_inputs`).

    data (n_in's dtype), indices and indptr (both int32 or both int64),
    C-contiguous, the structure checked in full.  Row s is the entries
    indptr[s]:indptr[s+1]; duplicate columns add up, unsorted ones are fine.
    """

    format = "csr"

    def __init__(self, data, indices, indptr, shape):
        self.data, self.indices, self.indptr = data, indices, indptr
        self.shape = shape

    @property
    def nnz(self):
        return self.data.shape[0]

    @classmethod
    def row(cls, indices, values, n_in):
        """One sample from its columns and values (arrays of equal length, checked
        by `as_inputs` like any sparse input): a cheap (1, n_in) input."""
        indptr = np.array([0, len(indices)], dtype=indices.dtype)
        return cls(values, indices, indptr, (1, n_in))

    def astype(self, dtype, copy=True):
        return SparseRows(self.data.astype(dtype, copy=copy), self.indices, self.indptr,
                          self.shape)

    def toarray(self):
        """The dense (n, n_in) float array (duplicates summed): for small data only."""
        out = np.zeros(self.shape, dtype=self.data.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices), self.data)
        return out

    def dense_row(self, s):
        """Sample s as a dense (n_in,) array."""
        s = range(self.shape[0])[s]
        lo, hi = self.indptr[s], self.indptr[s + 1]
        out = np.zeros(self.shape[1], dtype=self.data.dtype)
        np.add.at(out, self.indices[lo:hi], self.data[lo:hi])
        return out

    def __repr__(self):
        return f"<SparseRows {self.shape}, {self.nnz} stored entries, {self.data.dtype}>"


def _index_array(name, part, value):
    """A 1-D C-contiguous int32 or int64 array (other integer types become int64)."""
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected a CSR structure whose {part} is a 1-D integer "
                         f"array; got {_describe(arr)}")
    if arr.dtype not in (np.int32, np.int64) or not arr.flags.c_contiguous:
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name}: {part} holds values beyond int64")
        arr = np.ascontiguousarray(arr, dtype=arr.dtype if arr.dtype in (np.int32, np.int64)
                                   else np.int64)
    return arr


def as_sparse_inputs(X, n_in, dtype, name="X"):
    """A SciPy sparse X (any format; or SparseRows) of shape (n, n_in) as SparseRows.

    CSR is used as it is (no copy when its data already has dtype); any other
    format is converted to CSR once.  The structure is checked in one O(nnz)
    pass, whatever SciPy believes about it (a hand-built or corrupted
    matrix's arrays are read as they are): indptr of length n + 1, starting at
    0, never decreasing, ending at len(indices) == len(data); every index in
    [0, n_in); finite data.  Anything else is a ValueError naming `name`.
    """
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"{name}: expected a sparse matrix of shape (n_samples, {n_in}); "
                         f"got shape {shape}")
    n, n_cols = int(shape[0]), int(shape[1])
    if n_cols != n_in:
        raise ValueError(f"{name}: expected shape (n_samples, {n_in}); got shape {tuple(shape)}")
    if n == 0:
        raise ValueError(f"{name}: expected at least one sample; got shape {tuple(shape)}")
    if getattr(X, "format", None) != "csr":
        X = X.tocsr()                         # once: the kernel reads CSR rows only
    data = np.asarray(X.data)
    if data.ndim != 1 or data.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers (bool, int or float) as the sparse "
                        f"values; got {_describe(data)}")
    indices = _index_array(name, "indices", X.indices)
    indptr = _index_array(name, "indptr", X.indptr)
    if indices.dtype != indptr.dtype:         # the kernel reads both with one type
        indices = indices.astype(np.int64)
        indptr = indptr.astype(np.int64)
    nnz = indices.shape[0]
    if indptr.shape[0] != n + 1:
        raise ValueError(f"{name}: invalid CSR structure: expected indptr of length "
                         f"{n + 1} (n_samples + 1); got {indptr.shape[0]}")
    if indptr[0] != 0 or indptr[-1] != nnz or data.shape[0] != nnz:
        raise ValueError(f"{name}: invalid CSR structure: expected indptr[0] == 0 and "
                         f"indptr[-1] == len(indices) == len(data); got indptr[0] = "
                         f"{indptr[0]}, indptr[-1] = {indptr[-1]}, len(indices) = {nnz}, "
                         f"len(data) = {data.shape[0]}")
    if n > 1 and np.any(indptr[1:] < indptr[:-1]):
        raise ValueError(f"{name}: invalid CSR structure: indptr decreases (a row would "
                         f"have a negative number of entries)")
    if nnz <= 32:           # one sample of a few features (river): cheaper in Python
        out_of_range = any(not 0 <= j < n_in for j in indices.tolist())
    else:
        out_of_range = indices.min() < 0 or indices.max() >= n_in
    if out_of_range:
        bad = indices[(indices < 0) | (indices >= n_in)][0]
        raise ValueError(f"{name}: invalid CSR structure: expected column indices in "
                         f"[0, {n_in}); got {bad}")
    data = _convert(name, data, dtype)
    return SparseRows(data, indices, indptr, (n, n_in))


def dense_row(X, s):
    """Sample s of validated inputs (an array or SparseRows) as a dense 1-D array."""
    return X.dense_row(s) if isinstance(X, SparseRows) else np.array(X[s])


def touched_entries(X, layout):
    """For CSR rows, the indices into the parameter buffer that plain SGD or
    SparseAdam can change on them: the rows of W[0] of their nonzero columns
    and everything after W[0].  None for dense rows (anything may change)."""
    if not isinstance(X, SparseRows):
        return None
    width, start = layout.width[0], layout.b_off[0]
    if 8 * X.nnz * width > start:
        return None         # a good part of W[0]: copying it whole is cheaper
    rows = np.unique(X.indices[X.data != 0])
    first = (rows[:, None] * width + np.arange(width)).ravel() + layout.w_off[0]
    return np.concatenate([first, np.arange(start, layout.buffer_len)])


def work_per_sample(X, layout):
    """Multiply-adds a sample costs in one pass: all the weights for a dense
    row; for CSR rows the first layer only at their mean number of entries."""
    if not isinstance(X, SparseRows):
        return layout.n_params
    first = layout.layers[0] * layout.layers[1]
    per_row = X.nnz / X.shape[0]
    return max(1.0, layout.n_params - first + per_row * layout.width[0])


def single_target(X, single, Y):
    """Whether Y is read as the target of one sample: for one dense sample (n0,),
    and for a (1, n0) sparse row given a scalar or a (nL,) target (a (1,) or
    (1, nL) target is the batch form, which means the same)."""
    if single or not isinstance(X, SparseRows) or X.shape[0] != 1:
        return single
    return np.ndim(Y) == 0 or (np.ndim(Y) == 1 and np.shape(Y)[0] != 1)


def as_inputs(X, n_in, dtype, name="X"):
    """X as an (n, n_in) C-contiguous array of dtype (or SparseRows for sparse X),
    and whether it was one sample.

    A sparse X is always a batch: a (1, n_in) sparse row is one sample whose
    outputs are a (1, nL) batch; its target may be given as for one sample.
    """
    if is_sparse(X):
        return as_sparse_inputs(X, n_in, dtype, name), False
    arr = _as_real_array(name, X)
    if arr.ndim == 1 and arr.shape[0] == n_in:
        single = True
        arr = arr.reshape(1, n_in)
    elif arr.ndim == 2 and arr.shape[1] == n_in:
        single = False
    else:
        raise ValueError(f"{name}: expected shape (n_samples, {n_in}) or ({n_in},) for one "
                         f"sample; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample; got shape {arr.shape}")
    return _convert(name, arr, dtype), single


def _check_labels(name, labels, n_out):
    if labels.size and (labels.min() < 0 or labels.max() >= max(n_out, 2)):
        bad = labels[(labels < 0) | (labels >= max(n_out, 2))][0]
        if n_out == 1:
            raise ValueError(f"{name}: expected labels 0 or 1 for a network with one output; "
                             f"got {bad}")
        raise ValueError(f"{name}: expected labels in [0, {n_out}); got {bad}")
    return np.ascontiguousarray(labels, dtype=np.int64)


def _rows_as_labels(rows, n_out):
    """Labels when every row is one-hot (or 0/1 for one output), else None."""
    if not np.all((rows == 0) | (rows == 1)):
        return None
    if n_out == 1:
        return rows[:, 0].astype(np.int64)
    if not np.all(rows.sum(axis=1) == 1):
        return None
    return rows.argmax(axis=1).astype(np.int64)


def as_targets(Y, n_samples, n_out, dtype, single, name="Y"):
    """Targets for n_samples samples of a network with n_out outputs.

    Batch: integer labels (n,), real targets (n, n_out), or float (n,) when
    n_out == 1.  One sample: an int label, a target of shape (n_out,), or a
    number when n_out == 1.  One-hot rows become labels (same kernel result,
    and accuracy can be reported).
    """
    arr = _as_real_array(name, Y)
    integral = arr.dtype.kind in "biu"
    if single:
        if arr.ndim == 0 and (integral or n_out == 1):
            arr = arr.reshape(1)
            if not integral:
                arr = arr.reshape(1, 1)
        elif arr.ndim == 1 and arr.shape[0] == n_out:
            arr = arr.reshape(1, n_out)
        else:
            raise ValueError(f"{name}: expected an integer label or a target of shape "
                             f"({n_out},) for one sample; got {_describe(Y)}")
    if arr.ndim >= 1 and arr.shape[0] != n_samples:
        raise ValueError(f"{name}: expected {n_samples} targets, one per input sample; "
                         f"got shape {arr.shape}")
    if arr.ndim == 1 and integral:
        labels = _check_labels(name, arr, n_out)
        return Targets(np.empty((0, n_out), dtype=dtype), labels, True)
    if arr.ndim == 1 and n_out == 1:
        arr = arr.reshape(n_samples, 1)
    elif arr.ndim == 1:
        raise ValueError(f"{name}: expected integer class labels of shape ({n_samples},) or "
                         f"targets of shape ({n_samples}, {n_out}); got float labels "
                         f"of shape {arr.shape}")
    if arr.ndim != 2 or arr.shape[1] != n_out:
        raise ValueError(f"{name}: expected integer labels of shape ({n_samples},) or targets "
                         f"of shape ({n_samples}, {n_out}); got shape {arr.shape}")
    rows = _convert(name, arr, dtype)
    labels = _rows_as_labels(rows, n_out)
    if labels is not None:
        return Targets(np.empty((0, n_out), dtype=dtype), labels, True)
    return Targets(rows, _EMPTY_LABELS, False)


def check_callbacks(callbacks):
    if callbacks is None:
        return ()
    if callable(callbacks):
        callbacks = (callbacks,)
    try:
        callbacks = tuple(callbacks)
    except TypeError:
        raise TypeError(f"callbacks: expected a sequence of callables cb(epoch, logs); "
                        f"got {_describe(callbacks)}") from None
    for k, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{k}]: expected a callable cb(epoch, logs); "
                            f"got {_describe(cb)}")
    return callbacks


def check_progress(progress):
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress: expected None, True or False; got {_describe(progress)}")
    return progress
