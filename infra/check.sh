#!/usr/bin/env bash
# make check (and the first step of make test): what needs no stack. `check.sh lint` stops after the types.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.venv/bin

echo "==> ruff"
$VENV/ruff check . && $VENV/ruff format --check . || exit 1

echo "==> mypy (strict, pydantic plugin)"
# The projects are the `-e ./folder` lines of requirements.in: their packages (each folder's own, tests aside) and the
# demo in one run, then the tools; each tests folder on its own (several are a package named `tests`).
packages=(-p demo)
test_dirs=()
for project in $(sed -n 's|^-e \./\([^[ ]*\).*|\1|p' requirements.in); do
  for init in "$project"/*/__init__.py; do
    package=$(basename "$(dirname "$init")")
    [ -f "$init" ] && [ "$package" != tests ] && packages+=(-p "$package")
  done
  [ -d "$project/tests" ] && test_dirs+=("$project/tests")
done
$VENV/mypy "${packages[@]}" && $VENV/mypy bench chaos infra/containers || { echo "ERROR: mypy found errors (above)"; exit 1; }
for tests in "${test_dirs[@]}" tests; do
  $VENV/mypy "$tests" || { echo "ERROR: mypy found errors in $tests (above)"; exit 1; }
done
[ "${1:-}" = lint ] && exit 0

echo "==> requirements.lock matches constraints.txt and the pyproject files"
# The resolver starts from the lock itself (infra/lock.sh), so only a change of our inputs can move a pin; the
# pins are compared, not the hashes (a wheel uploaded later for a pinned version is no change of ours).
fresh=$(mktemp) discovery_log=$(mktemp)
trap 'rm -f "$fresh" "$discovery_log"' EXIT
pins() { grep -E '^[A-Za-z0-9._-]+==' "$1" | sed 's/ .*//'; }
if bash infra/lock.sh "$fresh" 2>/dev/null; then
  diff <(pins requirements.lock) <(pins "$fresh") >/dev/null \
    || { echo "ERROR: requirements.lock is behind its inputs: run make lock"; diff <(pins requirements.lock) <(pins "$fresh"); exit 1; }
else
  echo "    (skipped: the package index cannot be reached)"
fi

echo "==> Prometheus rules (promtool check rules, promtool test rules)"
if command -v promtool >/dev/null 2>&1; then
  promtool check rules infra/prometheus/rules.yml >/dev/null || { echo "ERROR: infra/prometheus/rules.yml"; exit 1; }
  (cd infra/prometheus && promtool test rules rules_test.yml) || { echo "ERROR: infra/prometheus/rules_test.yml"; exit 1; }
else
  echo "    (skipped: promtool is not installed; make up installs Debian's prometheus, and make test runs this step)"
fi

echo "==> unit tests (pure logic, no stack), and beside them the discovery server's suite"
# The discovery server's suite needs no stack either (its servers on free ports, only .venv): it runs beside the unit
# tests, its output after theirs; infra/run-tests.sh leaves it out of make test's stack run, which follows this. The
# gateway's suite (~75 s of its own processes) would take make check past a minute: make test runs it.
$VENV/python -m pytest -q -p no:cacheprovider -m "not unit" discovery/tests >"$discovery_log" 2>&1 &
discovery=$!
$VENV/python -m pytest -q -m unit
unit=$?
wait "$discovery"
discovery_result=$?
echo "==> the discovery server's suite"
cat "$discovery_log"
[ "$unit" = 0 ] && [ "$discovery_result" = 0 ]
