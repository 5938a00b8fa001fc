# Two commands on a fresh machine: `make demo` and `make test`. Each creates its own venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-unit ui stop lint clean screenshots

# compileall: uv compiles only the packages it installs now; an older venv keeps the rest as
# source, and this image sets PYTHONDONTWRITEBYTECODE, so every CLI start would compile ~3,000
# modules again (~5 s of a one-day backfill's ~10 s). A file that does not compile (a vendored
# fixture) only stays as source.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $@

# The Spark engine's packages (the `spark` extra) for its test tier; `make demo` goes without.
# Java is Spark's runtime: Debian's, installed when the machine has none.
$(BIN)/.spark-installed: $(BIN)/.installed
	command -v java >/dev/null || apt-get install -y --no-install-recommends openjdk-17-jre-headless
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev,spark]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/feature-store demo

# Two workers, one test file each at a time (module fixtures stay in one process): the
# suite waits on real processes much of the time, so two cores carry two files.
test: install $(BIN)/.spark-installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 --dist loadfile

# The fast tier: no servers, no dbt or Dagster runs (under a minute on 2 cores).
test-unit: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -m "not integration"

ui: install
	$(BIN)/feature-store ui

# The README's pictures of the Dagster UI and dbt docs, from a fresh 14-day demo store.
screenshots: install
	command -v chromium >/dev/null || apt-get install -y chromium
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev,docs]'
	$(BIN)/python docs/screenshots.py

stop:
	$(BIN)/feature-store online-store stop

lint: install
	$(BIN)/ruff check .

clean: stop
	rm -rf .feature_store dbt_project/target
