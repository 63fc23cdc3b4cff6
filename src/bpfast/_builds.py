"""The kernel's builds: one table, read by setup.py (what to compile, how) and
by bpfast._dispatch (what this CPU runs).

Each build is the same Cython source (_core.pxi) compiled for one instruction
set.  name: (module, the NumPy CPU features it needs, GCC/Clang flags, MSVC
flags), from the most portable on; all but the baseline are x86-64 only.
-mprefer-vector-width=512: GCC and Clang otherwise favour 256-bit vectors
even where AVX-512 is enabled.  This module imports nothing at its top, so
that setup.py can read it before anything is built.
"""

BUILDS = {
    "baseline": ("bpfast._core", (), (), ()),
    "avx2": ("bpfast._core_avx2", ("AVX2", "FMA3"), ("-mavx2", "-mfma"), ("/arch:AVX2",)),
    "avx512": ("bpfast._core_avx512", ("AVX2", "FMA3", "AVX512F", "AVX512VL"),
               ("-mavx2", "-mfma", "-mavx512f", "-mavx512vl", "-mprefer-vector-width=512"),
               ("/arch:AVX512",)),
}


def cpu_features():
    """NumPy's table of this CPU's features (NumPy also checks that the OS
    saves the wider registers), imported on the first call."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return __cpu_features__


def runs_here(name):
    """Whether this CPU has every feature build `name` needs."""
    features = cpu_features()
    return all(features.get(feature) for feature in BUILDS[name][1])
