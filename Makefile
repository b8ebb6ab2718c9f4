# Everything a fresh machine needs: each target installs what it uses into .venv/ first.
# `make install` (and `make demo`) take the tool's own dependencies only; `make dev` (and
# `make test`, `make lint`, ...) add the test and lint tools on top.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP     := $(VENV)/.installed-dev

.PHONY: install dev test test-all test-browser lint demo bench styles dist clean

install: $(RUNTIME_STAMP)

dev: $(DEV_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(RUNTIME_STAMP) $(DEV_STAMP)

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(DEV_STAMP)
	$(BIN)/python -m pytest -q

# The gallery in a real headless Chromium (installed from Debian's packages when root may).
test-browser: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m slow tests/test_gallery.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(RUNTIME_STAMP)
	rm -rf demo-out
	$(BIN)/batchtoon run samples --sandbox --style vintage-comic,2d,colorful-cartoon --out demo-out
	@echo
	@echo "The cartoons are in $(CURDIR)/demo-out (one file per photo and style);"
	@echo "open $(CURDIR)/demo-out/index.html to see them beside the photos."
	@echo "batchtoon itself is $(CURDIR)/$(BIN)/batchtoon (to put it on your PATH: pipx install .)"

bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks

styles: $(DEV_STAMP)
	$(BIN)/python scripts/style_grid.py samples/astronaut.png docs/styles.png

# A wheel and an sdist in dist/, built in an isolated environment as any installer would.
dist: $(DEV_STAMP)
	rm -rf dist build
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) demo-out dist build .mypy_cache .ruff_cache .pytest_cache
