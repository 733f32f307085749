"""Sphinx configuration for numoptim's documentation.

Build (warnings are errors)::

    pip install ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference comes from the docstrings (Google style, through napoleon); the
guide, the torch page, the benchmarks and the C++ page include the README's sections,
so the two never drift apart.
"""

project = "numoptim"
author = "the numoptim developers"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = "numoptim"
