# Type stub of the compiled kernel (_core.pyx, which includes _core.pxi,
# _update.pxi and _one_sample.pxi); _core_avx2 has the same interface.
#
# The kernel trusts its arguments: bpfast.mlp checks every shape, dtype and
# index before a call (see the header of _core.pxi).  "Floating" arrays are all
# float32 or all float64 within one call (Cython's fused type `floating`), and
# every array is C-contiguous.  Arguments marked IN are read, OUT written,
# IN/OUT both; the rest is scratch.

from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

_F = TypeVar("_F", np.float32, np.float64)
_Spec = NDArray[np.intp]            # bpfast._layout.Layout.spec: the network, as ints

class _Lock(Protocol):
    def acquire(self) -> Any: ...
    def release(self) -> Any: ...

def train(
    spec: _Spec,                    # IN
    params: NDArray[_F],            # IN/OUT, the flat parameter buffer
    grad: NDArray[_F],              # scratch, (n_threads, buffer length)
    ws: NDArray[_F],                # scratch, (n_threads, ws length)
    thread_stats: NDArray[np.float64],   # scratch, (n_threads, 2)
    X: Any,                         # IN, (n, n0) rows, or CSR rows (bpfast._validate.SparseRows)
    Y: NDArray[_F],                 # IN, (n, nL), or (0, nL) with labels
    labels: NDArray[np.int64],      # IN, (n,), or (0,) with Y
    order: NDArray[np.intp],        # IN, the samples in training order
    batch_size: int,
    rule_code: int,                 # bpfast.optim's rule (_update.pxi, RULE_*)
    hyper: NDArray[np.float64],     # IN, lr, weight_decay, bias_decay, mean_decay, the rule's own
    sample_weight: NDArray[_F],     # IN, (n,) or (0,): unweighted
    batch_loss: NDArray[np.float64],  # OUT, per-minibatch loss sums, or (0,)
    batch_sq: NDArray[np.float64],  # OUT, per-minibatch sum of ||W||² before the update, or (0,)
    state: NDArray[_F],             # IN/OUT, (n_slots, buffer length)
    counters: NDArray[np.float64],  # IN/OUT, [step count]
    hogwild: bool = ...,            # per-sample SGD on the rows of ws at once, without locks
    n_workers: int = ...,           # OS threads for the slices (0: one per slice)
) -> tuple[float, float]:
    """Train in place on order[0], order[1], ... in minibatches.

    Returns (sum of the per-sample losses, number of labels predicted correctly).
    """

def gradient(
    spec: _Spec,                    # IN
    params: NDArray[_F],            # IN
    grad: NDArray[_F],              # OUT, sum over the samples of dL/dparams
    ws: NDArray[_F],                # OUT, z, a and delta of the last sample
    X: Any,                         # IN, dense or CSR rows
    Y: NDArray[_F],                 # IN
    labels: NDArray[np.int64],      # IN
    sample_weight: NDArray[_F],     # IN, (n,) or (0,): unweighted
) -> tuple[float, float]:
    """grad = the sum over the samples of dL/dparams; returns (loss sum, number correct)."""

def evaluate(
    spec: _Spec,                    # IN
    params: NDArray[_F],            # IN
    ws: NDArray[_F],                # scratch
    X: Any,                         # IN, dense or CSR rows
    Y: NDArray[_F],                 # IN, no rows: no targets
    labels: NDArray[np.int64],      # IN, empty: no labels
    out: NDArray[_F],               # OUT, (n, nL) a[L] per sample, or no rows
) -> tuple[float, float]:
    """Forward every sample; returns (loss sum, number correct) when given targets."""

def all_finite(v: NDArray[np.float32] | NDArray[np.float64]) -> bool:
    """True when no entry of the 1-D array v is NaN or infinite."""

# The kernel's buffers (_buffers.pxi): zeroed, starting on ALIGN bytes.
ALIGN: int

def aligned_zeros(shape: int | tuple[int, ...], dtype: Any) -> NDArray[Any]:
    """A zeroed C-contiguous array whose first entry starts at an ALIGN-byte boundary."""
def aligned_copy(a: NDArray[_F]) -> NDArray[_F]:
    """A copy of array a in a buffer of aligned_zeros."""

@disjoint_base
class _AlignedBlock:
    """One allocation, the base object of the array made on it."""

@disjoint_base      # a cdef class: no multiple inheritance with another
class OneSample:
    """The one-sample entry of one network: forward, predict, one update.

    Every method returns None, having changed nothing, when its arguments
    are not for the short way (the general path of bpfast.mlp then runs).
    """

    def __new__(cls, spec: _Spec, params: NDArray[np.float32] | NDArray[np.float64],
                ws_len: int) -> OneSample: ...   # Cython's __cinit__
    def forward(self, x: object, lock: _Lock) -> NDArray[Any] | None:
        """a[L] for one sample x as a fresh (nL,) array, or None."""
    def predict(self, x: object, lock: _Lock) -> int | None:
        """The class of one sample x, or None."""
    def sgd_step(self, x: object, y: object, lr: object, lock: _Lock) -> float | None:
        """One plain SGD step on one sample; the loss before it, or None."""
    def step(self, x: object, y: object, rule: object, lock: _Lock) -> float | None:
        """One step of an optimizer's rule (a StepRule) on one sample; the loss
        before it, or None."""

@disjoint_base
class StepRule:
    """An optimizer's rule as OneSample.step takes it, checked once.

    usable is False for what the short way leaves to the general path.
    """

    usable: bool
    def __new__(cls, rule_code: int,
                hyper: NDArray[np.float64],          # IN, kept: the rule reads it
                state: NDArray[np.float32] | NDArray[np.float64],   # IN/OUT, (n_slots, n)
                counters: NDArray[np.float64],       # IN/OUT, [step count]
                ) -> StepRule: ...   # Cython's __cinit__

# For the tests of the cdef helpers (activation and derivative codes of
# bpfast._layout.ACTIVATIONS).
def _py_activation(code: int, z: float) -> float: ...
def _py_activation_f32(code: int, z: float) -> float: ...
def _py_derivative(code: int, z: float, a: float) -> float: ...

# Generated by Cython.
__test__: dict[str, str]
__reduce_cython__: Any
__setstate_cython__: Any
