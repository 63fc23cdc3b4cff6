"""Model files: one .npz with the arrays and a JSON `meta` member, no pickle.

save() writes a temporary file in the target folder, flushes and fsyncs it,
then renames it over the target, so an interrupted save never destroys the
previous file.  load() checks the zip's member list and sizes before reading
anything, reads with allow_pickle=False, and validates every field and
every array against the metadata; any defect is a ModelFormatError.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from ._version import __version__
from .errors import ModelFormatError

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "bpfast.mlp"
FORMAT_VERSION = 1
_META_KEYS = {"format", "format_version", "bpfast_version", "layers", "activation",
              "output", "loss", "dtype"}
_MAX_META_BYTES = 1 << 16
_NPY_HEADER_SLACK = 1 << 12   # an .npy header is far smaller than this


def save(net, path):
    """Write `net` to exactly `path` (no suffix added), atomically."""
    path = os.fspath(path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bpfast_version": __version__,
        "layers": net.layers,
        "activation": net.activation,
        "output": net.output,
        "loss": net.loss_name,
        "dtype": net.dtype.name,
    }
    arrays = {"meta": np.array(json.dumps(meta).encode("utf-8"))}
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{l}"] = np.ascontiguousarray(W)
        arrays[f"b{l}"] = np.ascontiguousarray(b)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bpfast-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:         # Windows cannot open a folder; rename is durable there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _bad(path, what):
    return ModelFormatError(f"{path}: not a valid bpfast model file: {what}")


def _read_meta(path, npz):
    raw = npz["meta"]
    if raw.dtype.kind == "S" and raw.ndim == 0:
        text = raw.tobytes()
    elif raw.dtype == np.uint8 and raw.ndim == 1:
        text = raw.tobytes()
    else:
        raise _bad(path, f"member 'meta' must hold UTF-8 JSON bytes, found dtype {raw.dtype}")
    try:
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, f"member 'meta' is not UTF-8 JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _bad(path, "member 'meta' must be a JSON object")
    if meta.get("format") != FORMAT:
        raise _bad(path, f"format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise _bad(path, f"format_version {version!r} is not supported "
                         f"(this bpfast {__version__} reads version {FORMAT_VERSION})")
    if set(meta) != _META_KEYS:
        missing, extra = _META_KEYS - set(meta), set(meta) - _META_KEYS
        raise _bad(path, f"meta keys differ: missing {sorted(missing)}, unknown {sorted(extra)}")
    layers = meta["layers"]
    if (not isinstance(layers, list) or len(layers) < 2
            or not all(type(n) is int and 1 <= n <= 1 << 24 for n in layers)):
        raise _bad(path, f"layers must be a list of at least 2 positive sizes, got {layers!r}")
    for key in ("activation", "output", "loss", "dtype", "bpfast_version"):
        if not isinstance(meta[key], str):
            raise _bad(path, f"{key} must be a string, got {meta[key]!r}")
    if meta["dtype"] not in ("float32", "float64"):
        raise _bad(path, f"dtype must be 'float32' or 'float64', got {meta['dtype']!r}")
    return meta


def _check_members(path, zf, names):
    """Member names and sizes, from the zip directory, before reading data."""
    members = {info.filename: info for info in zf.infolist()}
    if "meta.npy" not in members:
        raise _bad(path, "member 'meta' is missing")
    if members["meta.npy"].file_size > _MAX_META_BYTES:
        raise _bad(path, "member 'meta' is too large")
    return members


def load(path):
    """Read a model written by MLP.save; never unpickles, validates everything.

    Raises FileNotFoundError for a missing path and ModelFormatError (a
    ValueError) for a file that is truncated, corrupted, of another format
    version, mismatched or hostile.
    """
    from .mlp import MLP

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            members = _check_members(path, zf, None)
            with np.load(path, allow_pickle=False) as npz:
                meta = _read_meta(path, npz)
                layers, dtype = meta["layers"], np.dtype(meta["dtype"])
                L = len(layers) - 1
                expected = {"meta"} | {f"W{l}" for l in range(L)} | {f"b{l}" for l in range(L)}
                found = {name[:-4] if name.endswith(".npy") else name for name in members}
                if found != expected:
                    raise _bad(path, f"members differ: missing {sorted(expected - found)}, "
                                     f"unknown {sorted(found - expected)}")
                shapes = {}
                for l in range(L):
                    shapes[f"W{l}"] = (layers[l + 1], layers[l])
                    shapes[f"b{l}"] = (layers[l + 1],)
                for name, shape in shapes.items():
                    limit = int(np.prod(shape)) * dtype.itemsize + _NPY_HEADER_SLACK
                    if members[name + ".npy"].file_size > limit:
                        raise _bad(path, f"member {name!r} is larger than shape {shape} allows")
                arrays = {}
                for name, shape in shapes.items():
                    arr = npz[name]
                    if arr.shape != shape or arr.dtype != dtype:
                        raise _bad(path, f"{name} should be {meta['dtype']} of shape {shape}, "
                                         f"found {arr.dtype} of shape {arr.shape}")
                    if not np.all(np.isfinite(arr)):
                        raise _bad(path, f"{name} holds NaN or infinite values")
                    arrays[name] = arr
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
            KeyError, TypeError, RuntimeError, NotImplementedError) as exc:
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    try:
        net = MLP(layers, meta["activation"], meta["output"], meta["loss"], dtype=dtype.name)
    except (ValueError, TypeError) as exc:
        raise _bad(path, str(exc)) from None
    for l in range(L):
        net.weights[l][...] = arrays[f"W{l}"]
        net.biases[l][...] = arrays[f"b{l}"]
    return net
