# The two commands the README promises, plus the checks CI runs.
# Every target bootstraps its own virtualenv, so a fresh clone needs nothing but python3 >= 3.10.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The main job: generate a real image on the built-in sandbox (no account needed; drop --sandbox and set KIE_API_KEY for Kie.ai).
demo: $(STAMP)
	$(BIN)/kie generate nano-banana-pro --sandbox --prompt "a lighthouse on a cliff at dawn, watercolour" -o kie-output

## The whole test suite (PostgreSQL tests run when KIE_TEST_POSTGRES_URL is set).
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check kie tests benchmarks
	$(BIN)/ruff format --check kie tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

check: test lint typecheck

clean:
	rm -rf $(VENV) kie-output .pytest_cache .mypy_cache .ruff_cache
