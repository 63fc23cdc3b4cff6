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


def as_inputs(X, n_in, dtype, name="X"):
    """X as an (n, n_in) C-contiguous array of dtype, and whether it was one sample."""
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
