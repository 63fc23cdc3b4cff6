"""Sphinx configuration of bpfast's documentation.

Build (from the repository root, with ``pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The examples in ``examples/`` (sphinx-gallery) and the notebooks in
``docs/notebooks/`` (myst-nb) are executed at every build; their outputs are
never committed.
"""

import os
from pathlib import Path

import bpfast

# Notebooks run in a kernel of their own, in docs/notebooks/: let it import the
# bpfast this build documents (an installed one, or a source tree on a relative
# PYTHONPATH such as PYTHONPATH=src, which would not resolve from there).
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(bpfast.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))

project = "bpfast"
author = "The bpfast developers"
copyright = "the bpfast developers"
release = bpfast.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "sphinx_gallery.gen_gallery",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = [
    "_build",
    # sphinx-gallery writes a notebook beside every example it renders: those
    # are downloads, not pages.
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "**.ipynb_checkpoints",
]

# -- API reference -----------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# `name` in a docstring is code, as the docstrings use it.
default_role = "code"

intersphinx_mapping = {}     # no network at build time: references stay local

# -- Markdown and notebooks (myst-nb) ----------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "force"          # run every notebook at every build
nb_execution_timeout = 120
nb_execution_raise_on_error = True
nb_execution_show_tb = True

# -- Examples gallery (sphinx-gallery) ---------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "show_memory": False,
}

# -- HTML ----------------------------------------------------------------------
html_theme = "furo"
html_title = f"bpfast {release}"
html_static_path = []
pygments_style = "sphinx"


def _write_help_texts():
    """docs/_generated/COMMAND-help.txt: the command line's own --help, so the guide
    shows what the installed version prints (written at every build, not kept in git)."""
    import contextlib
    import io
    from pathlib import Path

    from bpfast import cli

    folder = Path(__file__).parent / "_generated"
    folder.mkdir(exist_ok=True)
    for command in ("train", "trace", "predict", "export"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            os.environ["COLUMNS"] = "90"
            cli.main([command, "--help"])
        (folder / f"{command}-help.txt").write_text(f"$ bpfast {command} --help\n" + out.getvalue())


_write_help_texts()
