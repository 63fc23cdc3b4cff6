"""The public API is annotated and the compiled kernel has a stub.

`.ci/run` type-checks with mypy and compares the stub with the compiled module
(mypy.stubtest); these checks need neither and run everywhere.
"""

import ast
import inspect
from pathlib import Path

import pytest

import bpfast
from bpfast import _core

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(bpfast.__file__).resolve().parent
ANNOTATED = ["_gradient_vector", "callbacks", "datasets", "errors", "export", "gradcheck", "io",
             "mlp", "optim", "plot", "trace"]


def _stub_names(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_the_package_says_it_is_typed():
    assert (PACKAGE / "py.typed").exists()
    for build in ("_core", "_core_avx2", "_core_avx512"):
        assert (PACKAGE / f"{build}.pyi").exists(), build


def test_the_stub_names_every_entry_point_of_the_kernel():
    runtime = {name for name, value in vars(_core).items()
               if (callable(value) or inspect.isclass(value)) and not name.startswith("__")
               and getattr(value, "__module__", "bpfast._core") == "bpfast._core"}
    assert {"train", "gradient", "evaluate", "all_finite", "OneSample"} <= runtime
    stub = _stub_names(PACKAGE / "_core.pyi")
    assert runtime <= stub, f"not in _core.pyi: {sorted(runtime - stub)}"
    assert {n for n in stub if not n.startswith("_")} <= set(vars(_core))   # constants too


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="no source tree")
def test_mypy_checks_the_annotated_modules():
    tomllib = pytest.importorskip("tomllib")      # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert "strict" not in config or not config["strict"]
    files = set(config["files"])
    for name in ANNOTATED:
        assert f"src/bpfast/{name}.py" in files, name
    assert "src/bpfast/_core.pyi" in files


@pytest.mark.parametrize("name", ANNOTATED)
def test_public_functions_are_annotated(name):
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body), name
    missing = []
    for scope in [tree] + [n for n in tree.body if isinstance(n, ast.ClassDef)
                           and not n.name.startswith("_")]:
        for node in scope.body:
            if not isinstance(node, ast.FunctionDef) or (
                    node.name.startswith("_") and node.name != "__init__"):
                continue
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            unannotated = [a.arg for a in args if a.annotation is None and a.arg not in ("self", "cls")]
            if unannotated or node.returns is None:
                missing.append(f"{getattr(scope, 'name', name)}.{node.name}")
    assert not missing, f"{name}.py: not annotated: {missing}"
