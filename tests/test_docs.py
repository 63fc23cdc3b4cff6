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
    assert command.group(1).strip() in [line.strip() for line in ci.splitlines()]
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


# ------------------------------------------------------------ the tutorial, in two languages

TUTORIAL = DOCS / "tutorial" / "backprop.md"
TUTORIAL_ZH = DOCS / "tutorial" / "backprop.zh.md"
# The words of the Chinese tutorials (docs/design.md, "Teaching: two languages and a picture").
CHINESE_WORDS = ("前向传播", "代价函数", "链式法则", "反向传播", "误差信号 δ", "梯度", "学习率", "更新",
                 "权重", "偏置")


def _code_cells(path):
    """The source of every {code-cell} of a MyST markdown notebook, in order."""
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", text, re.S | re.M)


def _toctrees(text):
    """(caption, [entries]) of every toctree directive of a MyST page, in order."""
    trees = []
    for body in re.findall(r"^```\{toctree\}\n(.*?)^```\s*$", text, re.S | re.M):
        caption = re.search(r"^:caption:\s*(.+)$", body, re.M)
        entries = [line.strip() for line in body.splitlines()
                   if line.strip() and not line.startswith(":")]
        trees.append((caption.group(1).strip() if caption else None, entries))
    return trees


def test_the_tutorial_pages_are_executed_notebooks():
    for page in (TUTORIAL, TUTORIAL_ZH):
        assert page.exists(), f"{page.relative_to(ROOT)} is missing"
        text = page.read_text(encoding="utf-8")
        front = re.match(r"^---\n(.*?)\n---\n", text, re.S)
        assert front, f"{page.name}: no front matter (myst-nb would not execute it)"
        assert "format_name: myst" in front.group(1) and "kernelspec:" in front.group(1)
        assert re.search(r"^\s+name: python3$", front.group(1), re.M)
        assert len(_code_cells(page)) >= 10, page.name


def test_the_tutorial_is_in_the_learn_toctree_between_start_and_the_guide():
    trees = _toctrees((DOCS / "index.md").read_text(encoding="utf-8"))
    captions = [caption for caption, _ in trees]
    learn = [i for i, caption in enumerate(captions) if caption and caption.startswith("Learn")]
    assert len(learn) == 1, captions
    i = learn[0]
    assert captions[i - 1] == "Start" and captions[i + 1] == "User guide", captions
    assert "学习" in captions[i]
    assert trees[i][1] == ["tutorial/backprop", "tutorial/backprop.zh"]


def test_the_two_tutorials_run_the_same_code():
    en, zh = _code_cells(TUTORIAL), _code_cells(TUTORIAL_ZH)
    assert len(en) == len(zh), "the two tutorials have different numbers of code cells"
    traces = 0
    for k, (a, b) in enumerate(zip(en, zh)):
        traces += b.count('lang="zh"')
        assert 'lang="zh"' not in a and "lang=" not in b.replace('lang="zh"', ""), k
        assert a == b.replace(', lang="zh"', ""), (
            f"code cell {k} differs between backprop.md and backprop.zh.md "
            f"(only lang=\"zh\" may): keep the two pages in step")
    assert traces >= 2                      # every trace of the Chinese page prints Chinese
    assert all("print(" in cell for cell in en if ".trace(" in cell)


def test_the_tutorial_shows_what_it_promises():
    code = "\n".join(_code_cells(TUTORIAL))
    for call in ("net.trace(0.5, 0.8, lr=0.1)", "tr.plot()", "mnist_tr.plot()",
                 ".gradient_vector()", "bpfast.gradcheck(", "load_mnist(", "load_digits("):
        assert call in code, call
    text = TUTORIAL.read_text(encoding="utf-8")
    assert "$$" in text and r"\delta^{(2)}" in text and "{doc}`backprop.zh`" in text
    assert "{doc}`backprop`" in TUTORIAL_ZH.read_text(encoding="utf-8")


def test_the_chinese_tutorial_uses_the_tutorials_words():
    text = TUTORIAL_ZH.read_text(encoding="utf-8")
    prose = re.sub(r"^```\{code-cell\}.*?^```\s*$", "", text, flags=re.S | re.M)
    for word in CHINESE_WORDS:
        assert word in prose, f"backprop.zh.md does not say {word}"
    # Written in Chinese, not an English page with a few words swapped.
    han = len(re.findall(r"[\u4e00-\u9fff]", prose))
    latin = len(re.findall(r"\b[A-Za-z]{4,}\b", re.sub(r"`[^`]*`|\$[^$]*\$", "", prose)))
    assert han > 1500 and latin < han / 10, (han, latin)


def test_the_guides_link_the_tutorial():
    for page in ("getting_started.md", "guide/cli.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        assert re.search(r"\{doc\}`[^`]*tutorial/backprop`", text), f"{page} does not link the tutorial"
