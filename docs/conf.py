"""Sphinx configuration for graphmutual.

Build modes (environment variables):

``GRAPHMUTUAL_DOCS_FAST=1``
    do not execute the tutorials (sphinx-gallery ``plot_gallery = False``): their code is
    shown without output. Everything else (API, CLI reference, benchmark tables, the
    Concepts figures) is still built.
``GRAPHMUTUAL_DOCS_INTERSPHINX=1``
    link to the PyTorch / PyG / Python / NumPy docs through intersphinx. Off by default
    because fetching the inventories needs the internet and a failed fetch is a warning
    (which ``-W`` turns into an error); offline builds simply render those names as code.
``GRAPHMUTUAL_DATA``
    dataset root for the tutorials that need real data (ogbg-molbace, Last.fm). When unset,
    ``shared/datasets`` next to (or above) the repository is used if present; otherwise those
    tutorials print a note and skip training.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))  # for _ext

import graphmutual  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

FAST = os.environ.get("GRAPHMUTUAL_DOCS_FAST", "0") not in ("", "0")
INTERSPHINX = os.environ.get("GRAPHMUTUAL_DOCS_INTERSPHINX", "0") not in ("", "0")

# -- project -----------------------------------------------------------------------------
project = "graphmutual"
author = "graphmutual developers"
copyright = "graphmutual developers, MIT licence"
release = graphmutual.__version__
version = ".".join(release.split(".")[:2])

# -- extensions --------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
    "_ext.generated_pages",
]
if INTERSPHINX:
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "torch_geometric": ("https://pytorch-geometric.readthedocs.io/en/latest", None),
        "numpy": ("https://numpy.org/doc/stable", None),
    }
    intersphinx_timeout = 10

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "tutorials/README.rst", "**/GALLERY_HEADER.rst",
                    "tutorials_gen/*.ipynb", "tutorials_gen/*.py", "tutorials_gen/*.zip",
                    "tutorials_gen/*.md5", "tutorials_gen/*.json"]
templates_path = ["_templates"]
default_role = "code"

# -- autodoc / napoleon / typehints --------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"  # sphinx-autodoc-typehints moves hints into the body
autodoc_inherit_docstrings = False  # PyG base classes' docstrings are not ours to check
autoclass_content = "both"
autosummary_generate = False  # the API pages are written by hand (one per public module)
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields, not duplicate attribute entries
typehints_fully_qualified = False
always_document_param_types = False
typehints_document_rtype = True
typehints_use_signature = False
typehints_defaults = "comma"

# -- MyST (the benchmark tables are Markdown files in benchmarks/results/) -----------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- warnings ------------------------------------------------------------------------------
suppress_warnings = [
    # relative links between the result files point at files outside the docs tree
    "myst.xref_missing",
    # result files may jump heading levels; they are included as they are
    "myst.header",
]

# -- sphinx-gallery ------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["tutorials"],
    "gallery_dirs": ["tutorials_gen"],
    "filename_pattern": r"/tutorial_",  # execute every tutorial
    "ignore_pattern": r"/_",  # helpers such as tutorials/_data.py are not pages
    "within_subsection_order": "FileNameSortKey",
    "plot_gallery": "False" if FAST else "True",
    "abort_on_example_error": True,
    # re-run every tutorial on every build, not only the edited ones: a change to
    # graphmutual itself must be able to break a tutorial page
    "run_stale_examples": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "write_computation_times": True,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "capture_repr": ("_repr_html_", "__repr__"),
    "image_scrapers": ("matplotlib",),
}

# -- matplotlib plot directive (Concepts figures) -----------------------------------------
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.autolayout": True}

# -- copy button ---------------------------------------------------------------------------
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# -- HTML ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"graphmutual {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "source_repository": "",
    "navigation_with_keys": True,
}
