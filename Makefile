# callcontrol: `make run` starts the demo call center, `make test` runs every test.
PYTHON ?= python3
CONFIG ?= config/callcontrol.yaml

.PHONY: install run stop bench faults test test-unit test-integration lint flows-check docs

install:
	@bash scripts/install.sh

run: install
	@bash scripts/run-demo.sh start

stop:
	@bash scripts/run-demo.sh stop

# Load benchmark (short run by default; knobs: BENCH_STEPS, BENCH_STEP_SECONDS, ... see bench/)
bench: install
	$(PYTHON) -m bench

# Fault injection under load (short run by default; knobs: FAULTS_CPS, FAULTS_PHASE_SECONDS,
# FAULTS_LIST, ... see faults/)
faults: install
	$(PYTHON) -m faults

lint: install
	$(PYTHON) -m ruff check callcontrol tests bench faults
	$(PYTHON) -m mypy callcontrol bench faults

# Regenerate the documents made from the code: docs/configuration.md (the typed config) and
# docs/openapi.json (the API document the daemon serves). Tests fail while they are stale.
docs:
	$(PYTHON) -m callcontrol.docsgen

flows-check: install
	$(PYTHON) -m callcontrol --config $(CONFIG) flows check ivr_flows/

test: install lint flows-check
	bash scripts/run-tests.sh
