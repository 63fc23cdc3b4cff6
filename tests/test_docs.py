"""The documentation covers the whole public API and is built the way the README says.

These checks read files only (fast, no Sphinx needed); `.ci/run` builds the
documentation itself with warnings as errors.  A public module without a page
fails here with the page to add: ``docs/api/NAME.rst`` holding

    ``bpfast.NAME``
    ===============

    .. automodule:: bpfast.NAME

which the API index picks up by itself (its toctree is a glob).
"""

import re
from pathlib import Path

import pytest

import bpfast

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGE = Path(bpfast.__file__).resolve().parent
# Modules whose public names are documented as bpfast.NAME (they are re-exported
# there), and the command line, which has its own guide.
DOCUMENTED_AT_THE_TOP = {"mlp", "callbacks", "errors", "gradcheck", "cli"}

pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason="no docs/ beside the tests")


def _pages():
    return sorted(p for p in DOCS.rglob("*") if p.suffix in (".md", ".rst")
                  and "_build" not in p.parts and "auto_examples" not in p.parts)


def _public_modules():
    return sorted(p.stem for p in PACKAGE.glob("*.py")
                  if not p.stem.startswith("_") and p.stem not in DOCUMENTED_AT_THE_TOP)


def test_every_public_module_has_an_api_page():
    assert _public_modules(), PACKAGE
    for name in _public_modules():
        page = DOCS / "api" / f"{name}.rst"
        assert page.exists(), (f"bpfast.{name} is public but has no page: add {page.relative_to(ROOT)} "
                               f"(see this test's docstring)")
        assert re.search(rf"^\.\. automodule:: bpfast\.{name}\s*$", page.read_text(), re.M), page


def test_every_top_level_name_is_documented():
    text = (DOCS / "api" / "bpfast.rst").read_text()
    for name in bpfast.__all__:
        if name == "__version__":
            assert ".. data:: __version__" in text
        elif name == "datasets":
            assert (DOCS / "api" / "datasets.rst").exists()
        else:
            assert re.search(rf"^\.\. auto(class|function|exception):: {name}\s*$", text, re.M), \
                f"bpfast.{name} is not in docs/api/bpfast.rst"


def test_the_api_index_picks_up_every_page():
    index = (DOCS / "api" / "index.rst").read_text()
    assert ":glob:" in index and re.search(r"^\s+\*\s*$", index, re.M)


def test_the_readme_build_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = re.search(r'pip install "\.\[docs\]" && (python -m sphinx [^\n]+)', readme)
    assert command, "the README's Documentation section has no build command"
    assert command.group(1).strip() in ci.splitlines()
    assert "-W --keep-going" in command.group(1)


def test_no_placeholders_in_the_pages():
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for word in ("TODO", "TBD", "FIXME", "Lorem", "coming soon"):
            assert word not in text, f"{page.relative_to(ROOT)} says {word!r}"


def test_the_contract_page_is_in_the_docs():
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    assert text.startswith("(design)=\n# The contract")
    for section in ("### Public API", "### Errors", "### Precise semantics", "## Version 0.2"):
        assert section in text


def test_generated_files_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in ("docs/_build/", "docs/auto_examples/", "docs/sg_execution_times.rst"):
        assert entry in ignored
