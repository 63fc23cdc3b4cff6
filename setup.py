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
  BPFAST_BUILDS=...     which kernel builds to compile (src/bpfast/_builds.py):
                        names, comma-separated, or "runnable" for those this
                        CPU runs (the checked build); the baseline always
"""

import os
import platform
import runpy
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


# Every build of the kernel: module, CPU features, compiler flags (one table,
# which bpfast._dispatch reads too), and whether this CPU runs a build.
_builds = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "src", "bpfast",
                                      "_builds.py"))
BUILDS = _builds["BUILDS"]


def _targets_x86_64():
    """True when the extension is compiled for x86-64 (the wider builds are built)."""
    archflags = os.environ.get("ARCHFLAGS", "")
    if "arm64" in archflags and "x86_64" not in archflags:
        return False
    return platform.machine().lower() in ("x86_64", "amd64")


class BuildExt(build_ext):
    """Per-compiler flags: optimisation, OpenMP, and the x86-64 builds' instruction sets.

    The kernel builds compile independently (about half a minute each): they
    compile in parallel, one per core, unless ``-j``/``--parallel`` says otherwise.
    """

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = True  # distutils: os.cpu_count() workers

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        darwin = sys.platform == "darwin"
        for ext in self.extensions:
            cflags, ldflags = [], []
            _, _, gcc_isa, msvc_isa = next(b for b in BUILDS.values() if b[0] == ext.name)
            if msvc:
                cflags += ["/O2"]
                if OPENMP:
                    cflags += ["/openmp"]
                cflags += list(msvc_isa)
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
                cflags += list(gcc_isa)
                if DEBUG:
                    cflags += ["-O1", "-g", "-fno-omit-frame-pointer",
                               "-fsanitize=address,undefined"]
                    ldflags += ["-fsanitize=address,undefined"]
            ext.extra_compile_args = cflags + ext.extra_compile_args
            ext.extra_link_args = ldflags + ext.extra_link_args
        super().build_extensions()


def _wanted(name):
    """Whether BPFAST_BUILDS asks for build `name` (every build when unset)."""
    asked = os.environ.get("BPFAST_BUILDS", "").strip().lower()
    if name == "baseline" or not asked:
        return True
    if asked == "runnable":
        return _builds["runs_here"](name)
    return name in [part.strip() for part in asked.split(",")]


def extensions():
    names = [module.rpartition(".")[2] for name, (module, _, _, _) in BUILDS.items()
             if (name == "baseline" or _targets_x86_64()) and _wanted(name)]
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
