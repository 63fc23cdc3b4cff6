"""Data sets: the MNIST reader (IDX files, raw or gzipped)."""

from __future__ import annotations

import gzip
import os

import numpy as np
from numpy.typing import NDArray

__all__ = ["load_mnist", "read_idx"]

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# IDX type codes -> big-endian dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> NDArray[np.generic]:
    """Read one IDX file (raw or .gz) into a NumPy array of its stored shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: expected {expected} bytes for shape {shape}, "
                         f"found {len(data)}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(folder: str, name: str) -> str:
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    # Some mirrors name the files with a dot before idx (train-images.idx3-ubyte).
    alt = name.replace("-idx", ".idx")
    for candidate in (alt, alt + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"load_mnist: {name} (or {name}.gz) not found in {folder}")


def load_mnist(path: str | os.PathLike[str]) -> tuple[
        NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    """Load MNIST from a folder holding the four standard IDX files.

    Returns ``X_train, y_train, X_test, y_test``: X float32 in [0, 1] of
    shape (n, 784) (pixels / 255), y int64 digit labels.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"load_mnist: no such folder: {path}")
    arrays = [read_idx(_find(path, name)) for name in _MNIST_FILES]
    X_train, y_train, X_test, y_test = arrays
    for X, y, part in ((X_train, y_train, "train"), (X_test, y_test, "t10k")):
        if X.ndim != 3 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise ValueError(f"load_mnist: {part} images {X.shape} and labels {y.shape} "
                             f"do not match")

    def images(X: NDArray[np.generic]) -> NDArray[np.float32]:
        return (X.reshape(X.shape[0], -1).astype(np.float32) / np.float32(255.0))

    return (images(X_train), y_train.astype(np.int64),
            images(X_test), y_test.astype(np.int64))
