# callcontrol: `make run` starts the demo call center, `make test` runs every test.
PYTHON ?= python3
CONFIG ?= config/callcontrol.yaml

.PHONY: install run stop bench test test-unit test-integration lint flows-check

install:
	@bash scripts/install.sh

run: install
	@bash scripts/run-demo.sh start

stop:
	@bash scripts/run-demo.sh stop

# Load benchmark (short run by default; knobs: BENCH_STEPS, BENCH_STEP_SECONDS, ... see bench/)
bench: install
	$(PYTHON) -m bench

lint: install
	$(PYTHON) -m ruff check callcontrol tests
	$(PYTHON) -m mypy callcontrol

flows-check: install
	callcontrol flows check --config $(CONFIG) ivr_flows/

test: install lint flows-check
	bash scripts/run-tests.sh
