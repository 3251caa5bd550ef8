# Two commands for a fresh machine (Python 3.10+):
#   make demo   set up .venv, run the demo and render the graph gallery into gallery/
#   make test   set up .venv (and the optional renderers) and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint lab notebooks system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[viz,test,tutorials,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tinygrad_mb.demo
	$(PY) -m viz gallery --out gallery

test: $(STAMP) system-deps
	$(PY) -m pytest

# The Graphviz `dot` program and headless Chromium, so the suite exercises both renderers
# and the HTML stepper; installed only where apt-get and root are available.
system-deps:
	bash scripts/install-system-deps.sh

bench: $(STAMP)
	$(PY) -m benchmarks

# ruff and mypy, then the line budget of the autograd core (scripts/line_budget.py prints the counts).
lint: $(STAMP)
	$(VENV)/bin/ruff check tinygrad_mb viz tests benchmarks tutorials scripts
	$(VENV)/bin/mypy tinygrad_mb viz
	$(PY) scripts/line_budget.py

# Open the tutorials in JupyterLab (installs it into .venv the first time).
lab: $(STAMP)
	$(PY) -m pip install --quiet -e ".[lab]"
	$(VENV)/bin/jupyter lab tutorials/

# Rewrite every tutorial notebook from its jupytext script.
notebooks: $(STAMP)
	$(PY) tutorials/sync_notebooks.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis gallery
