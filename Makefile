# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PG_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: demo test test-sqlite test-postgres install lint bench clean

$(STAMP): pyproject.toml scripts/install-bfcl-eval
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so pip takes the CPU wheel rather than a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# BFCL's own checker, the oracle the tests cross-check against (--no-deps: see the script)
	VENV=$(VENV) ./scripts/install-bfcl-eval
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) manage.py demo

# The whole suite on the embedded default (SQLite), then again on the local PostgreSQL
# when one is reachable (CI always has it) for everything that is not model training.
test: $(STAMP)
	./scripts/run-tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy ftops review registry

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
