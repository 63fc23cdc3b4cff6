"""Model files: one .npz with the arrays and a JSON `meta` member, no pickle.

save() writes a temporary file in the target folder, flushes and fsyncs it,
then renames it over the target, so an interrupted save never destroys the
previous file.  load() checks the zip's member list and sizes before reading
anything, reads with allow_pickle=False, and validates every field and
every array against the metadata; any defect is a ModelFormatError.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
import zipfile
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

import numpy as np

from ._version import __version__
from .errors import ModelFormatError

if TYPE_CHECKING:
    from .mlp import MLP

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "bpfast.mlp"
FORMAT_VERSION = 1
_META_KEYS = {"format", "format_version", "bpfast_version", "layers", "activation",
              "output", "loss", "dtype"}
_MAX_META_BYTES = 1 << 16


def save(net: MLP, path: str | os.PathLike[str]) -> None:
    """Write `net` to exactly `path` (no suffix added), atomically."""
    path = os.fsdecode(os.fspath(path))
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
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta).encode("utf-8"))}
    with net._lock:     # copies of one consistent state, even while another thread trains
        for l, (W, b) in enumerate(zip(net.weights, net.biases)):
            arrays[f"W{l}"] = np.array(W, order="C")
            arrays[f"b{l}"] = np.array(b)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> None:
    """write(file) into a temporary file beside `path`, flushed and fsynced, then
    renamed onto `path`: an interrupted write never destroys the previous file.
    The file gets the mode open(path, "wb") would give, not mkstemp's 0600.
    Shared by save() and bpfast.export."""
    path = os.fsdecode(os.fspath(path))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bpfast-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if os.name == "posix":      # not mkstemp's 0600: what open(path, "wb") would give
                os.fchmod(f.fileno(), _file_mode(path))
            write(f)
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


def _file_mode(path):
    """The mode open(path, "wb") leaves: an existing file's own, else 0o666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    try:        # Linux states the umask here; reading it leaves it alone for other threads
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)     # elsewhere the only way to read it is to set it
    os.umask(umask)
    return 0o666 & ~umask


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


# NumPy parses a .npy header with ast.literal_eval, and CPython keeps the
# AST's recursion depth in interpreter-wide state (gh-106905): on 3.11 two
# threads loading at once failed, rarely, with "SystemError: AST constructor
# recursion depth mismatch" (tests/test_free_threading.py, 16 threads).  So
# the header reads take turns; they are a few hundred bytes each.
_HEADER_LOCK = threading.Lock()


def _read_member(path, zf, name, check):
    """Read member `name` after `check(shape, dtype)` approved its .npy header.

    The header is read and checked before any data, so a member that claims
    a huge or object (pickled) array is refused without reading it.
    """
    with zf.open(name + ".npy") as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise _bad(path, f"member {name!r} has unsupported .npy version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        with _HEADER_LOCK:
            shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise _bad(path, f"member {name!r} is an object array (pickle), refused")
        check(shape, dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise _bad(path, f"member {name!r} is truncated")
        order = "F" if fortran else "C"
        return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()


def _read_meta(path, zf):
    def check(shape, dtype):
        if not ((dtype.kind == "S" and shape == ()) or (dtype == np.uint8 and len(shape) == 1)):
            raise _bad(path, f"member 'meta' must hold UTF-8 JSON bytes, found {dtype} "
                             f"of shape {shape}")
        if dtype.itemsize * int(np.prod(shape)) > _MAX_META_BYTES:
            raise _bad(path, "member 'meta' is too large")

    text = _read_member(path, zf, "meta", check).tobytes()
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
    from .mlp import _memory_limit
    n_params = sum((a + 1) * b for a, b in zip(layers[:-1], layers[1:]))
    if n_params * np.dtype(meta["dtype"]).itemsize > _memory_limit():
        raise _bad(path, f"layers {layers} need more memory than this machine has")
    return meta


def _read_arrays(path, zf, meta):
    """W0.., b0.. checked against the metadata: names, shapes, dtype, finiteness."""
    layers, dtype = meta["layers"], np.dtype(meta["dtype"])
    L = len(layers) - 1
    shapes = {}
    for l in range(L):
        shapes[f"W{l}"] = (layers[l + 1], layers[l])
        shapes[f"b{l}"] = (layers[l + 1],)
    expected = {name + ".npy" for name in shapes} | {"meta.npy"}
    found = set(zf.namelist())
    if found != expected or len(zf.namelist()) != len(found):
        raise _bad(path, f"members differ: missing {sorted(expected - found)}, "
                         f"unknown or repeated {sorted(found - expected)}")
    arrays = {}
    for name, shape in shapes.items():
        def check(found_shape, found_dtype, name=name, shape=shape):
            if found_shape != shape or found_dtype != dtype:
                raise _bad(path, f"{name} should be {dtype} of shape {shape}, "
                                 f"found {found_dtype} of shape {found_shape}")
        arr = _read_member(path, zf, name, check)
        if not np.all(np.isfinite(arr)):
            raise _bad(path, f"{name} holds NaN or infinite values")
        arrays[name] = arr
    return arrays


def load(path: str | os.PathLike[str]) -> MLP:
    """Read a model written by MLP.save; never unpickles, validates everything.

    Raises FileNotFoundError for a missing path and ModelFormatError (a
    ValueError) for a file that is truncated, corrupted, of another format
    version, mismatched or hostile.
    """
    from .mlp import MLP

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    with open(path, "rb") as f:       # a folder or an unreadable file: OSError as usual
        try:
            with zipfile.ZipFile(f) as zf:
                if "meta.npy" not in zf.namelist():
                    raise _bad(path, "member 'meta' is missing")
                meta = _read_meta(path, zf)
                arrays = _read_arrays(path, zf, meta)
        except ModelFormatError:
            raise
        except Exception as exc:      # any parse failure of untrusted bytes is a format error
            raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    try:
        net = MLP(meta["layers"], meta["activation"], meta["output"], meta["loss"],
                  dtype=meta["dtype"])
    except (ValueError, TypeError) as exc:
        raise _bad(path, str(exc)) from None
    for l in range(len(meta["layers"]) - 1):
        net.weights[l][...] = arrays[f"W{l}"]
        net.biases[l][...] = arrays[f"b{l}"]
    return net
