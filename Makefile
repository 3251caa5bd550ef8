# Two commands for a fresh machine (Python 3.10+):
#   make demo   set up .venv, run the demo and render the graph gallery into gallery/
#   make test   set up .venv (and the optional renderers) and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint lab notebooks docs docs-serve mutate system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[viz,test,tutorials,distributed,docs,dev]"
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

# The documentation site, built from nothing into site/ (strict: a broken link or image fails it).
docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

# Serve the site at http://127.0.0.1:8000 while you edit it.
docs-serve: $(STAMP)
	$(PY) -m mkdocs serve

# Mutation testing, not part of `make test` or CI (hours on two cores): mutmut makes one small change to
# tinygrad_mb/ at a time and runs the tests that reach it (configured in [tool.mutmut], pyproject.toml).
# Results are kept in mutants/: a second run tests only mutants of changed functions, then retests the
# survivors not listed as equivalent in scripts/mutation_score.py, which prints the score (target 95%).
# Which tests reach which function is measured afresh every time (mutmut's incremental update misses
# functions added since the last run); after changing [tool.mutmut], delete mutants/.
# One module: make mutate MUTANTS='tinygrad_mb.tensor.*'
MUTANTS ?=
mutate: $(STAMP)
	rm -f mutants/mutmut-stats.json
	$(VENV)/bin/mutmut run $(MUTANTS)
	@survivors="$$($(PY) scripts/mutation_score.py --list-survivors)"; \
	if [ -n "$$survivors" ]; then echo "retesting the survivors"; $(VENV)/bin/mutmut run $$survivors; fi
	$(PY) scripts/mutation_score.py --fail-under 95

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis gallery site
