#!/usr/bin/env bash
# make test, after infra/check.sh: start the stack if it isn't running, run every test suite, and stop what we
# started.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

started_here=0
if ! $PY -m launcher status >/dev/null 2>&1; then
  started_here=1
fi
$PY -m launcher up || { echo "ERROR: the stack did not start (see the component log named above)"; exit 1; }

echo "==> pytest"
if [ $# -eq 0 ]; then
  # Every suite but the discovery server's, which needs no stack: infra/check.sh ran it just before.
  $PY -m pytest --ignore=discovery/tests
else
  $PY -m pytest "$@"
fi
result=$?

# The bench tier: every benchmark that touches Kafka or MariaDB, --quick, on the benchmarks' own stack (ports 30000
# up), then make up's stack checked as it was found (tests/bench). Only in a whole run (no pytest arguments).
if [ $# -eq 0 ]; then
  echo "==> pytest tests/bench"
  $PY -m pytest tests/bench || result=1
fi

if [ "$started_here" = 1 ] && [ -z "${KEEP_STACK:-}" ]; then
  $PY -m launcher down
fi
exit $result
