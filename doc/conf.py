"""Sphinx configuration for msrplib's documentation."""

project = "msrplib"
author = "msrplib developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
intersphinx_mapping = {}
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
