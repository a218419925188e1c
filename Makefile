# The two set-up commands (README): `make dev` runs the local stack, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: dev test lint bench reliability soak fuzz-long system-deps node-deps

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,otel,uvloop,http]'
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

# The test IdP (tests/idp, panva's oidc-provider) and axe-core (tests/a11y, for the
# accessibility checks) from their committed lock files; without node/npm those tests
# skip themselves, so this is not an error.
node-deps:
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error; \
		npm ci --prefix tests/a11y --no-audit --no-fund --loglevel=error; \
	else \
		echo "node/npm missing: the IdP tests will be skipped" >&2; \
	fi

# `make dev REDIS_URL=redis://127.0.0.1:6379/0`: share session state (and the audit log)
# through that Redis; without it, the embedded in-memory store.
dev: $(VENV)/.installed
	$(VENV)/bin/admitd dev $(if $(REDIS_URL),--redis-url '$(REDIS_URL)')

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/ruff format --check server tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: system-deps node-deps $(VENV)/.installed lint
	$(PY) -m pytest

bench: system-deps $(VENV)/.installed
	$(PY) bench/run.py

# The full fault matrix (300 req/s, 30 s per fault) through the real Envoy; writes the table
# in RELIABILITY.md. `make test` runs the short size of the same faults (tests/reliability).
reliability: system-deps $(VENV)/.installed
	$(PY) -m tests.reliability.run_matrix

# The 10-minute soak (150 req/s through the real Envoy; distinct users, certificates, tokens):
# writes RELIABILITY.md's soak block. `make test` runs its one-minute size (tests/soak).
soak: system-deps $(VENV)/.installed
	$(PY) -m tests.soak.run_soak --csv bench/results/soak-rss.csv

# atheris on every parser of untrusted input for FUZZ_SECONDS each, then 1,000,000 mutated
# Checks through a running admitd (about 20 minutes here); `make test` runs short versions.
FUZZ_SECONDS ?= 300
fuzz-long: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[fuzz]'
	for target in fuzz/atheris_*.py; do \
		ADMITD_FUZZ_SECONDS=$(FUZZ_SECONDS) PYTHONPATH=. $(PY) $$target -timeout=1 || exit 1; \
	done
	ADMITD_FUZZ_COUNT=1000000 $(PY) -m pytest tests/fuzz/test_grpc_check_fuzz.py -q -s
