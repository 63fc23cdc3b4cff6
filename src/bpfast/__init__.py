"""bpfast: backpropagation for multilayer perceptrons, with a compiled Cython core.

    >>> import bpfast
    >>> net = bpfast.MLP([784, 30, 10], seed=0)
    >>> net.fit(X_train, y_train, epochs=1, lr=3.0, batch_size=10)   # doctest: +SKIP

The public contract is the MLP class and the functions below; the kernel
(bpfast._core) is an implementation detail.
"""

from . import datasets
from ._version import __version__
from .callbacks import EarlyStopping, History
from .errors import DivergenceError, ModelFormatError
from .gradcheck import gradcheck
from .io import load
from .mlp import MLP

__all__ = [
    "MLP",
    "load",
    "gradcheck",
    "datasets",
    "DivergenceError",
    "ModelFormatError",
    "EarlyStopping",
    "History",
    "__version__",
]
