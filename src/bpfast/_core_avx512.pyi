# The AVX-512 build of the kernel: the same interface as _core (see _core.pyi).
from ._core import *  # noqa: F403
from ._core import (  # noqa: F401
    __reduce_cython__, __setstate_cython__, __test__, _py_activation, _py_activation_f32,
    _py_derivative)
