"""Pick the fastest build of the kernel this CPU can run, once, at import.

Wheels carry the kernel twice: `_core` (the platform's baseline instruction
set) and, on x86-64, `_core_avx2` (AVX2+FMA).  The CPU's features come from
NumPy.  BPFAST_KERNEL=baseline (or avx2) forces a build; asking for one the
CPU or the install lacks is an error rather than a silent fallback.
"""

import importlib
import os

__all__ = ["kernel", "kernel_name", "available_kernels", "load_kernel"]


def _cpu_features():
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return __cpu_features__


def available_kernels():
    """Names of the kernel builds that are installed and runnable here, best last."""
    names = ["baseline"]
    features = _cpu_features()
    if features.get("AVX2") and features.get("FMA3"):
        try:
            importlib.import_module("bpfast._core_avx2")
            names.append("avx2")
        except ImportError:
            pass
    return names


def load_kernel(name):
    """The kernel module for a build name ("baseline" or "avx2")."""
    if name not in ("baseline", "avx2"):
        raise ValueError(f"BPFAST_KERNEL: expected 'baseline' or 'avx2', got {name!r}")
    if name not in available_kernels():
        raise ImportError(f"the {name!r} kernel build is not available on this CPU or install")
    return importlib.import_module("bpfast._core" if name == "baseline" else "bpfast._core_avx2")


kernel_name = os.environ.get("BPFAST_KERNEL", "").strip().lower() or available_kernels()[-1]
kernel = load_kernel(kernel_name)
