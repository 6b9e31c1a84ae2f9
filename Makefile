VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-slow bench docs docs-fast venv clean

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/entropy-mcmc bench --demo

test: venv
	$(PY) -m pytest -q

# The long statistical runs (marked slow: compiled against eager draws, NUTS on posteriordb's reference draws when
# the database is beside the checkout); CI runs them after `make test`.
test-slow: venv
	$(PY) -m pytest -q -m slow

bench: venv
	$(VENV)/bin/entropy-mcmc bench

# The site in build/docs/html: notebooks executed (jupyter-cache under build/ keeps unchanged ones), warnings errors.
docs: venv
	TQDM_DISABLE=1 $(VENV)/bin/sphinx-build -W --keep-going -b html docs build/docs/html

# The same pages without running the notebooks (shown as stored): a quick check of the docstrings and links.
docs-fast: venv
	EMCMC_DOCS_EXECUTE=off $(VENV)/bin/sphinx-build -W --keep-going -b html docs build/docs/html-fast

clean:
	rm -rf $(VENV) build *.egg-info docs/api/generated
