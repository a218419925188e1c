# The two set-up commands (README): `make dev` runs the local stack, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: dev test lint bench system-deps

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

dev: $(VENV)/.installed
	$(VENV)/bin/admitd dev

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/ruff format --check server tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: system-deps $(VENV)/.installed lint
	$(PY) -m pytest

bench: system-deps $(VENV)/.installed
	$(PY) bench/run.py
