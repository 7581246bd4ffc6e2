"""Sphinx configuration of the sktorch_mlp documentation site.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (the ``docs`` extra installs what
it needs). The build runs every ``examples/plot_*.py`` script for the gallery.
"""

import os

import sktorch_mlp

project = "sktorch_mlp"
author = "The sktorch_mlp developers"
copyright = "2026, The sktorch_mlp developers"
version = release = sktorch_mlp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "_static", "_templates"]

# The narrative pages are Markdown, read by MyST; "page.md#section" links need heading anchors.
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

# API reference: one page per public object, from its numpydoc docstring.
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc sections already give the types
# "fit()" rather than "TorchMLPRegressor.fit()" in the page outlines, which are narrow.
toc_object_entries_show_parents = "hide"
# The class template documents the methods itself; numpydoc's extra member table would also
# list scikit-learn's inherited methods, whose docstrings link into scikit-learn's own site.
numpydoc_show_class_members = False

# Links to other projects' docs need their inventories, fetched over the network: opt in with
# SKTORCH_MLP_DOCS_INTERSPHINX=1, so that the default build works (and passes -W) offline.
if os.environ.get("SKTORCH_MLP_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable", None),
        "mapie": ("https://mapie.readthedocs.io/en/stable", None),
    }

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    # "Examples using ..." sections on the API pages, and links from the code to the API pages.
    "doc_module": ("sktorch_mlp",),
    "reference_url": {"sktorch_mlp": None},
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
}

html_theme = "pydata_sphinx_theme"
html_title = f"sktorch_mlp {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 7,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"index": [], "benchmarks": []}
html_show_sourcelink = False
