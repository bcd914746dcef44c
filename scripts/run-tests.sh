#!/usr/bin/env bash
# The test suite, as `make test` runs it:
#   1. unit tests (no Asterisk),
#   2. integration tests on real Asterisk with the store on SQLite,
#   3. the tests marked ``postgres`` again with the store on PostgreSQL (a private server the
#      test session starts itself from Debian's postgresql package, which install.sh brings):
#      the store and database-outage tests, the platform, IVR, ACD, adoption and callback suites.
# pytest's exit 5 (no tests collected) is a failure here: a suite that runs nothing proves nothing.
# No test skips for want of an install: a missing dependency fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONFAULTHANDLER=1
status=0
run() {
    echo "== $*"
    "$PY" -m pytest -q -p no:cacheprovider "$@"
    rc=$?
    if [ $rc -ne 0 ]; then status=1; echo "== FAILED ($rc): $*"; fi
}
run tests/unit
CALLCONTROL_TEST_DB=sqlite run tests/integration
CALLCONTROL_TEST_DB=postgres run tests/store tests/integration -m postgres
exit $status
