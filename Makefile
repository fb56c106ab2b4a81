# Every target sets itself up: a local .venv, (re)installed when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOWER  := .venv-lower

.PHONY: test demo bench clean docs test-lower-bounds

$(STAMP): pyproject.toml frontoffice_async/_version.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The bench extra too: the bench smoke test runs every contender so none can rot.
	# The recipes extra: tests/test_recipes.py runs the FastAPI and OpenTelemetry recipes.
	$(BIN)/python -m pip install --quiet -e '.[dev,cli,bench,recipes]'
	@touch $(STAMP)

# pytest also builds the docs as `make docs` does, strictly: a warning (a broken link or
# anchor) fails it, and mkdocs' output shows only then (tests/test_docs.py).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

# The docs site, built strictly into site/; `make docs SERVE=1` serves it with live reload.
# mkdocs-material prints an end-of-life notice first: a print, not a logged warning, so it
# neither fails nor hides anything in the strict build. It is left visible rather than
# silenced with NO_MKDOCS_2_WARNING (pytest's build keeps all output unless it fails).
docs: $(STAMP)
ifdef SERVE
	$(BIN)/mkdocs serve --strict
else
	$(BIN)/mkdocs build --strict --site-dir site
	@echo "docs built: open site/index.html"
endif

# The test suite against the declared minimum of every runtime dependency
# (.ci/lower-bounds.txt), in a fresh venv of its own. No lint, docs build or bench smoke test.
test-lower-bounds:
	rm -rf $(LOWER)
	$(PYTHON) -m venv $(LOWER)
	$(LOWER)/bin/python -m pip install --quiet --upgrade pip
	$(LOWER)/bin/python -m pip install --quiet -c .ci/lower-bounds.txt -e '.[dev,recipes]'
	$(LOWER)/bin/python -m pip list --format=freeze | grep -i -E '^(aiohttp|attrs|cattrs|yarl|multidict)=='
	$(LOWER)/bin/pytest --ignore=tests/test_bench_smoke.py

demo: $(STAMP)
	$(BIN)/python -m frontoffice_async demo

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(LOWER) site .mypy_cache .ruff_cache
