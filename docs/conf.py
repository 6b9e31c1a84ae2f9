"""Sphinx configuration of the entropy-mcmc documentation (`make docs`).

The notebooks (docs/notebooks links to ../notebooks) are executed by myst-nb at their own (CPU-scale) settings and
cached with jupyter-cache under build/, so an unchanged notebook is not run again (the cache keys on the notebook, not
on the package: after a change of the library, `make clean` or a new clone runs them afresh). EMCMC_DOCS_EXECUTE=off
builds without running them (make docs-fast, tests/test_docs_build.py). Warnings are errors (`sphinx-build -W`).
"""
import os
import shutil
import sys
from pathlib import Path

import entropy_mcmc

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))  # cli_reference.py: the argument parsers for sphinx-argparse

project = "entropy-mcmc"
author = "entropy-mcmc contributors"
release = version = entropy_mcmc.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
]
exclude_patterns = ["_build", "_templates", "figures", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
default_role = "py:obj"  # `name` in a docstring links to that object where it can, code text otherwise

# API reference: autosummary writes one page per object listed in api/*.rst (api/generated is not kept in git).
# Written afresh each build, so that a page of a renamed or removed object does not linger.
shutil.rmtree(DOCS / "api" / "generated", ignore_errors=True)
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = True  # the "Args:" sections of older docstrings
napoleon_use_rtype = False

# MyST and the notebooks.
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = os.environ.get("EMCMC_DOCS_EXECUTE", "cache")
nb_execution_cache_path = str(ROOT / "build" / "jupyter_cache")
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_merge_streams = True

html_theme = "pydata_sphinx_theme"
html_title = f"entropy-mcmc {version}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []
