# Everything a fresh machine needs: `make demo` and `make test` install into .venv/ first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-all test-browser lint demo bench styles clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

# The gallery in a real headless Chromium (installed from Debian's packages when root may).
test-browser: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests/test_gallery.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP)
	rm -rf demo-out
	$(BIN)/batchtoon run samples --sandbox --style vintage-comic,2d,colorful-cartoon --out demo-out
	@echo
	@echo "The cartoons are in $(CURDIR)/demo-out (one file per photo and style);"
	@echo "open $(CURDIR)/demo-out/index.html to see them beside the photos."

bench: $(STAMP)
	$(BIN)/python -m benchmarks

styles: $(STAMP)
	$(BIN)/python scripts/style_grid.py samples/astronaut.png docs/styles.png

clean:
	rm -rf $(VENV) demo-out .mypy_cache .ruff_cache .pytest_cache
