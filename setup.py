"""Build the Cython kernel.

Environment switches (all off by default; wheels use none of them, except
that the macOS wheels state BPFAST_NO_OPENMP=1, which macOS implies anyway):
  BPFAST_NATIVE=1       compile for this machine's CPU (-march=native)
  BPFAST_DEBUG_BUILD=1  Cython bounds/wraparound/initialisation checks and
                        -fsanitize=address,undefined, for the checked test run
  BPFAST_NO_OPENMP=1    build without OpenMP (fit(n_threads>1) then runs each
                        thread's share in turn: same results, no speed-up);
                        always the case on macOS, where Apple's clang has no runtime
  BPFAST_ANNOTATE=1     write Cython's annotated HTML next to the sources
"""

import os
import platform
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


NATIVE = _flag("BPFAST_NATIVE")
DEBUG = _flag("BPFAST_DEBUG_BUILD")
OPENMP = not _flag("BPFAST_NO_OPENMP")


# The x86-64 builds of the kernel beside the baseline `_core`: the compiler
# flags of each, GCC/Clang then MSVC (bpfast._dispatch picks one at import).
# -mprefer-vector-width=512: GCC and Clang otherwise favour 256-bit vectors
# even where AVX-512 is enabled.
X86_BUILDS = {
    "_core_avx2": (["-mavx2", "-mfma"], ["/arch:AVX2"]),
    "_core_avx512": (["-mavx2", "-mfma", "-mavx512f", "-mavx512vl",
                      "-mprefer-vector-width=512"], ["/arch:AVX512"]),
}


def _targets_x86_64():
    """True when the extension is compiled for x86-64 (the X86_BUILDS are built)."""
    archflags = os.environ.get("ARCHFLAGS", "")
    if "arm64" in archflags and "x86_64" not in archflags:
        return False
    return platform.machine().lower() in ("x86_64", "amd64")


class BuildExt(build_ext):
    """Per-compiler flags: optimisation, OpenMP, and the x86-64 builds' instruction sets."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        darwin = sys.platform == "darwin"
        for ext in self.extensions:
            cflags, ldflags = [], []
            gcc_isa, msvc_isa = X86_BUILDS.get(ext.name.rpartition(".")[2], ([], []))
            if msvc:
                cflags += ["/O2"]
                if OPENMP:
                    cflags += ["/openmp"]
                cflags += msvc_isa
            else:
                # No errno and no trapping: the kernel reads no errno and sets no
                # floating-point traps, and with traps possible GCC keeps a
                # comparison-and-select (exp's range clamps) as a branch, which
                # stops the activation loops from vectorising.
                cflags += ["-O3", "-fno-math-errno", "-fno-trapping-math"]
                if OPENMP and not darwin:
                    cflags += ["-fopenmp"]
                    ldflags += ["-fopenmp"]
                if NATIVE:
                    cflags += ["-march=native"]
                # after -march=native, which would switch off what this CPU lacks
                cflags += gcc_isa
                if DEBUG:
                    cflags += ["-O1", "-g", "-fno-omit-frame-pointer",
                               "-fsanitize=address,undefined"]
                    ldflags += ["-fsanitize=address,undefined"]
            ext.extra_compile_args = cflags + ext.extra_compile_args
            ext.extra_link_args = ldflags + ext.extra_link_args
        super().build_extensions()


def extensions():
    names = ["_core"]
    if _targets_x86_64():
        names += list(X86_BUILDS)
    common = dict(
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_25_API_VERSION")],
    )
    return [
        Extension(f"bpfast.{name}", [f"src/bpfast/{name}.pyx"], **common)
        for name in names
    ]


directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
    # Importing the kernel on a free-threaded CPython (3.13t, 3.14t) leaves the
    # GIL off: the kernel keeps no global state, a network's calls take its
    # lock, and tests/test_free_threading.py stresses both on such a build.
    "freethreading_compatible": True,
}

setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives=directives,
        annotate=_flag("BPFAST_ANNOTATE"),
    ),
    cmdclass={"build_ext": BuildExt},
)
