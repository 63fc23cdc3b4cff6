"""What an installed bpfast wheel must contain, and what it must not.

These checks read the installed distribution (its RECORD and metadata), so
they only make sense when bpfast was installed from a wheel, the way users get
it; in an editable or in-place development install they are skipped.  The
release pipeline runs them against the wheel it publishes (`.ci/wheel_check`
and cibuildwheel's test-command).
"""

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import platform
from pathlib import Path, PurePosixPath

import pytest

import bpfast

DIST = importlib.metadata.distribution("bpfast")
RECORD = [PurePosixPath(str(f)) for f in (DIST.files or ())]
PACKAGE_FILES = [f for f in RECORD if f.parts[0] == "bpfast"]
PACKAGE_DIR = Path(bpfast.__file__).resolve().parent


def _installed_from_wheel():
    """True when the imported bpfast is the package that this distribution installed."""
    init = PurePosixPath("bpfast", "__init__.py")
    return init in RECORD and Path(DIST.locate_file(init)).resolve() == PACKAGE_DIR / init.name


pytestmark = pytest.mark.skipif(
    not _installed_from_wheel(),
    reason=f"bpfast is not installed from a wheel here (imported from {PACKAGE_DIR})")

SOURCE_SUFFIXES = {".pyx", ".pxi", ".pxd", ".c", ".h", ".cpp"}
KERNEL_MODULES = ["bpfast._core"]
if platform.machine().lower() in ("x86_64", "amd64"):
    KERNEL_MODULES += ["bpfast._core_avx2", "bpfast._core_avx512"]


@pytest.mark.parametrize("name", KERNEL_MODULES)
def test_kernel_extension_is_compiled_module_in_the_wheel(name):
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"{name} is missing from the installed wheel"
    origin = Path(spec.origin)
    assert origin.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), origin
    assert origin.resolve().parent == PACKAGE_DIR
    assert PurePosixPath("bpfast", origin.name) in PACKAGE_FILES


def test_no_build_sources_installed():
    recorded = [str(f) for f in PACKAGE_FILES if f.suffix in SOURCE_SUFFIXES]
    on_disk = [str(p.relative_to(PACKAGE_DIR)) for p in PACKAGE_DIR.rglob("*")
               if p.suffix in SOURCE_SUFFIXES]
    assert recorded == [] and on_disk == []


def test_every_module_in_the_wheel_imports():
    """A module that fails to import (a missing file, a bad relative import) is caught here.

    Modules for optional integrations may need a library that is not installed;
    that, and only that, is accepted.
    """
    modules = sorted(".".join(f.with_suffix("").parts) for f in PACKAGE_FILES
                     if f.suffix == ".py" and f.name != "__main__.py")
    assert "bpfast.mlp" in modules
    for module in modules:
        name = module.removesuffix(".__init__")
        try:
            importlib.import_module(name)
        except ImportError as error:
            missing = _missing_module(error)
            assert missing and missing.split(".")[0] != "bpfast", (name, error)


def _missing_module(error):
    """Name of the module whose absence caused `error` (possibly re-raised), or None."""
    while error is not None:
        if isinstance(error, ModuleNotFoundError):
            return error.name
        error = error.__cause__ or error.__context__
    return None


def test_license_file_in_dist_info():
    licenses = [f for f in RECORD if f.parts[0].endswith(".dist-info") and f.name == "LICENSE"]
    assert licenses, "LICENSE is not in the wheel's .dist-info"
    text = Path(DIST.locate_file(licenses[0])).read_text(encoding="utf-8")
    assert text.startswith("BSD 3-Clause License")
    assert DIST.metadata["License-Expression"] == "BSD-3-Clause"
    assert "LICENSE" in DIST.metadata.get_all("License-File", [])


def test_metadata_declares_python_and_numpy():
    metadata = DIST.metadata
    assert metadata["Requires-Python"] == ">=3.10"
    classifiers = metadata.get_all("Classifier", [])
    assert "Programming Language :: Python :: 3 :: Only" in classifiers
    assert "Programming Language :: Python :: 3.10" in classifiers
    # the kernel declares freethreading_compatible (setup.py); tests/test_free_threading.py
    assert "Programming Language :: Python :: Free Threading :: 2 - Beta" in classifiers
    requirements = [r.split(";")[0].replace(" ", "") for r in DIST.requires or ()]
    assert any(r.startswith("numpy") for r in requirements), requirements


def test_command_line_entry_point():
    (script,) = [ep for ep in DIST.entry_points if ep.name == "bpfast"]
    assert script.group == "console_scripts"
    assert script.value == "bpfast.cli:main"
