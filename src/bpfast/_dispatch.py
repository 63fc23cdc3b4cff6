"""Pick the fastest build of the kernel this CPU can run, once, at import.

Wheels carry the kernel up to three times, one source compiled for different
instruction sets: `_core` (the platform's baseline), and on x86-64
`_core_avx2` (AVX2+FMA) and `_core_avx512` (AVX-512F/VL, 512-bit vectors).
The CPU's features come from NumPy, which also checks that the operating
system saves the wider registers.  A build is imported only on a CPU that can
run it: its module code may use its instructions from the first line.
BPFAST_KERNEL=baseline (or avx2, avx512) forces a build; asking for one the
CPU or the install lacks is an error rather than a silent fallback.
"""

import importlib
import os

from ._builds import BUILDS, runs_here

__all__ = ["BUILDS", "kernel", "kernel_name", "available_kernels", "load_kernel"]


def available_kernels():
    """Names of the kernel builds that are installed and runnable here, best last."""
    names = []
    for name, (module, _, _, _) in BUILDS.items():
        if runs_here(name):
            try:
                importlib.import_module(module)
            except ImportError:
                continue
            names.append(name)
    return names


def load_kernel(name):
    """The kernel module for a build name (a key of BUILDS)."""
    if name not in BUILDS:
        expected = ", ".join(map(repr, BUILDS))
        raise ValueError(f"BPFAST_KERNEL: expected one of {expected}, got {name!r}")
    if name not in available_kernels():
        raise ImportError(f"the {name!r} kernel build is not available on this CPU or install")
    return importlib.import_module(BUILDS[name][0])


kernel_name = os.environ.get("BPFAST_KERNEL", "").strip().lower() or available_kernels()[-1]
kernel = load_kernel(kernel_name)
