# callcontrol: `make run` starts the demo call center, `make test` runs every test.
PYTHON ?= python3
CONFIG ?= config/callcontrol.yaml

.PHONY: install install-bench run stop bench soak faults test test-unit test-integration lint flows-check docs

install:
	@bash scripts/install.sh

run: install
	@bash scripts/run-demo.sh start

stop:
	@bash scripts/run-demo.sh stop

# The bench's extra (pyproject's optional-dependencies "bench": matplotlib, for the chart),
# installed when missing, without touching which checkout callcontrol is installed from.
install-bench: install
	@$(PYTHON) -c 'import matplotlib' 2>/dev/null || $(PYTHON) -m pip install -q \
	    --disable-pip-version-check $$($(PYTHON) -c 'import tomllib; \
	    print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))')

# Load benchmark (short run by default; knobs: BENCH_STEPS, BENCH_STEP_SECONDS, ... see
# bench/__main__.py). Writes bench/results/<UTC>.json and .png.
bench: install-bench
	$(PYTHON) -m bench

# Soak: SOAK_CPS calls/s (default 10) on the callcontrol side for SOAK_MINUTES (default 30);
# exits non-zero when a target is missed (see bench/soak.py).
soak: install-bench
	$(PYTHON) -m bench.soak

# Fault injection under load (short run by default; knobs: FAULTS_CPS, FAULTS_PHASE_SECONDS,
# FAULTS_LIST, ... see faults/)
faults: install
	$(PYTHON) -m faults

lint: install
	$(PYTHON) -m ruff check callcontrol callcontrol_testing tests bench faults
	$(PYTHON) -m mypy callcontrol callcontrol_testing bench faults
	lint-imports

# Regenerate the documents made from the code: docs/configuration.md (the typed config) and
# docs/openapi.json (the API document the daemon serves). Tests fail while they are stale.
docs:
	$(PYTHON) -m callcontrol.docsgen

flows-check: install
	$(PYTHON) -m callcontrol --config $(CONFIG) flows check ivr_flows/

test: install lint flows-check
	bash scripts/run-tests.sh
