# Everything a fresh machine needs is installed by these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: demo test lint servers backends bench bench-deps screenshots clean bytecode

RUNTIME := $(VENV)/.runtime

# what the console itself needs: `make demo` installs only this, and says what it is doing
$(RUNTIME): pyproject.toml constraints.txt
	@echo "routedeck: installing the console's runtime dependencies into $(VENV) (once; the test tools come with make test)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check --progress-bar on -c constraints.txt -e .
	touch $(RUNTIME)

# the project's own bytecode, as pip writes it for every package it installs (an editable install gets none,
# and with PYTHONDONTWRITEBYTECODE set every start compiled the console's own modules from source: ~130 ms
# of CPU before the routes showed). Only what changed is compiled again; a stale file is never used (Python
# checks each source's mtime), so this only saves time
bytecode: $(RUNTIME)
	@$(BIN)/python -m compileall -q console adapters widgets

# the test tools and the official SDKs the tests compare against, on top of the runtime
$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: bytecode
	$(BIN)/routedeck demo $(ARGS)

lint: $(STAMP)
	$(BIN)/lint-imports

servers:
	bash scripts/install-servers.sh

# real Unleash (PostgreSQL) and Prometheus on 127.0.0.1 until Ctrl-C; prints what to type next
backends: $(STAMP)
	$(BIN)/python scripts/local-backends.py $(ARGS)

test: $(STAMP) lint servers
	ROUTEDECK_STRICT_TESTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m 'not comparator' $(ARGS)

# gbstats (the guardrail benchmark's comparator) is installed here only, never for the console or the tests.
# Its 0.8.0 metadata asks for numpy<2, which the console's numpy>=2 excludes; the benchmark checks the
# comparator's numbers against a hand computation before it runs, so it is installed without that pin.
bench-deps: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[bench]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps 'gbstats==0.8.0'

bench: $(STAMP) bench-deps bytecode
	$(BIN)/python benchmarks/dashboard.py
	ROUTEDECK_STRICT_TESTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m comparator tests/core/test_guardrail_benchmark.py
	$(BIN)/python benchmarks/guardrails.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/audit_screen.py
	$(BIN)/python benchmarks/featbit_stream.py
	$(BIN)/python benchmarks/history_tail.py

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache
