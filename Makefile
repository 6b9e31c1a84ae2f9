VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test bench venv clean

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

bench: venv
	$(VENV)/bin/entropy-mcmc bench

clean:
	rm -rf $(VENV) build *.egg-info
