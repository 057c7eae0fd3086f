# Two commands matter: `make run` (the whole pipeline, set up on first use) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test slow lint unit bench chaos soak sandbox clean lock dist

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/relay dev

test: $(STAMP) lint
	$(BIN)/pytest -q -m "not slow" tests/unit tests/integration tests/chaos tests/browser

# Long suites kept out of `make test`: the 100,000-line import, ...
slow: $(STAMP)
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not slow" tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.footprint

chaos: $(STAMP)
	$(BIN)/pytest -q tests/chaos

soak: $(STAMP)
	$(BIN)/python -m bench.soak

sandbox: $(STAMP)
	$(BIN)/relay sandbox

# Refresh the constraints file from what is installed (after a deliberate upgrade).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

# The wheel and sdist into dist/ (the wheel is built from the sdist, so both carry the same files).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
