#!/usr/bin/env bash
# Installs what the stack and its tests need, only what is missing: Debian packages (when root),
# the Python virtualenv with every project of this repo, and the Kafka/Connect jars from Maven.
# Safe to run again: each step is skipped when its inputs have not changed.
# `install.sh --python`: only the virtualenv (make check needs nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
python_only=0
if [ "${1:-}" = --python ]; then python_only=1; shift; fi
ROOT=$PWD
STAMPS=$ROOT/.stack/install
LOGS=$ROOT/.stack/logs
mkdir -p "$STAMPS" "$LOGS"

say() { echo "==> $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }

# --- Debian packages -----------------------------------------------------------------------------
missing=()
if [ "$python_only" = 0 ]; then
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# Collects the services' /metrics (found through discovery); promtool checks its rules in make check.
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
for pkg in "$@"; do  # extra packages a caller needs (make bench asks for wrk and nginx)
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# The browser the console's test drives headless (Playwright with the system chromium; it downloads none).
# Only tests need it: without root, its absence is a warning, not a stop.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    missing+=(chromium)
  else
    echo "WARNING: chromium is missing, so tests/e2e/test_console.py will fail: sudo apt-get install chromium" >&2
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    case " ${missing[*]} " in *" chromium "*) say "chromium is about 100 MB: the first install takes a few minutes" ;; esac
    say "installing Debian packages: ${missing[*]} (log: $LOGS/install-apt.log)"
    {
      apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    } >"$LOGS/install-apt.log" 2>&1 || die "apt-get install failed; see $LOGS/install-apt.log"
  else
    die "missing Debian packages: ${missing[*]}. Install them (sudo apt-get install ${missing[*]}) and retry."
  fi
fi
fi

# --- Python: one virtualenv with every project of the repo -----------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 (3.11+) is required"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 must be 3.11 or newer"
if ! command -v uv >/dev/null 2>&1; then
  say "installing uv (Python package installer)"
  python3 -m pip install -q --disable-pip-version-check uv==0.13.8 >"$LOGS/install-uv.log" 2>&1 \
    || die "pip install uv failed; see $LOGS/install-uv.log"
fi
UV=$(command -v uv || echo "python3 -m uv")
[ -x .venv/bin/python ] || { say "creating .venv"; $UV venv -q .venv --python python3; }

# The repo's own projects are the `-e ./folder` lines of requirements.in (listed there once).
mapfile -t project_dirs < <(sed -n 's|^-e \./\([^[ ]*\).*|\1|p' requirements.in)
projects=()
for dir in "${project_dirs[@]}"; do projects+=(-e "$dir"); done
python_inputs=$(cat requirements.lock requirements.in "${project_dirs[@]/%//pyproject.toml}" 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/python" 2>/dev/null)" != "$python_inputs" ]; then
  say "installing Python dependencies into .venv (log: $LOGS/install-python.log)"
  # Every third-party package from the lock, each checked against its hashes; then the repo's own projects,
  # editable and without resolving anything again.
  { $UV pip install --python .venv/bin/python --require-hashes -r requirements.lock \
      && $UV pip install --python .venv/bin/python --no-deps "${projects[@]}"; } \
    >"$LOGS/install-python.log" 2>&1 || die "Python dependencies failed to install; see $LOGS/install-python.log"
  echo "$python_inputs" >"$STAMPS/python"
fi

[ "$python_only" = 1 ] && { say "install: .venv ready"; exit 0; }

# --- Kafka, Kafka Connect and the Debezium JDBC sink and MariaDB source, from Maven Central ------------------------------
maven_inputs=$(find infra/pom.xml infra/src -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/maven" 2>/dev/null)" != "$maven_inputs" ] || [ ! -d infra/target/kafka/lib ] \
   || [ ! -d infra/target/connect-plugins/debezium-connector-jdbc ] \
   || [ ! -d infra/target/connect-plugins/debezium-connector-mariadb ]; then
  say "fetching Kafka and Connect jars with Maven (first time: a few minutes; log: $LOGS/install-maven.log)"
  rm -rf infra/target
  mvn -B -f infra/pom.xml package >"$LOGS/install-maven.log" 2>&1 \
    || die "Maven could not fetch the Kafka/Connect jars; see $LOGS/install-maven.log"
  echo "$maven_inputs" >"$STAMPS/maven"
fi
say "install: everything present"
