#!/usr/bin/env bash
# make compose-up | compose-down | compose-test (README.md, "Containers"): docker-compose.yml's stack with Docker
# Compose where a Docker engine answers, else with podman-compose (pinned, in its own venv) and podman.
# Usage: compose.sh up|down|test|config [pytest args]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
LOGS=$ROOT/.stack/logs
TOOLS=$ROOT/.stack/tools
mkdir -p "$LOGS" "$TOOLS"
command=${1:?usage: compose.sh up|down|test|config}

say() { echo "==> $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }

# Nothing from the host goes into an image or the stack: Maven runs in the Kafka image's build, and the `secrets`
# one-shot makes every password (a .env's win). Only compose-test's host-side suite (tests/compose) needs .venv.
PYTHON=
if [ "$command" = test ]; then
  bash infra/install.sh --python
  PYTHON=.venv/bin/python
fi

if docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  export ENGINE=docker
  case $command in
    up) say "docker compose up (first build: several minutes)"; exec docker compose up --detach --build --wait ;;
    down) exec docker compose down ;;
  esac
  PYTHON=${PYTHON:-.venv/bin/python}
else
  export ENGINE=podman
  # Podman's settings for these containers (infra/containers/containers.conf says why each is there).
  export CONTAINERS_CONF=$ROOT/infra/containers/containers.conf
  # Debian's packages: podman, with runc (containers.conf picks it) and netavark with aardvark-dns (bridge networks
  # whose containers find each other by name; podman would otherwise settle for CNI plugins without DNS).
  missing=()
  if command -v dpkg >/dev/null 2>&1; then
    for pkg in podman debootstrap runc iptables netavark aardvark-dns; do
      dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "no Docker engine, and ${missing[*]} missing: install Docker, or sudo apt-get install ${missing[*]}"
    say "installing Debian packages: ${missing[*]} (log: $LOGS/install-containers.log)"
    { apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
      >"$LOGS/install-containers.log" 2>&1 || die "apt-get install failed; see $LOGS/install-containers.log"
  fi
  [ "$(id -u)" = 0 ] || die "the podman path runs rootful podman: run as root (or use a Docker engine)"

  # podman-compose, pinned with its hashes, in a venv of its own (it needs none of the stack's packages), made with
  # uv as infra/install.sh makes .venv.
  venv=$TOOLS/podman-compose
  lock=infra/containers/podman-compose.lock
  UV=$(command -v uv || echo "python3 -m uv")
  if [ "$(cat "$venv/.lock.sha256" 2>/dev/null)" != "$(sha256sum <"$lock")" ]; then
    say "installing podman-compose into $venv (log: $LOGS/install-podman-compose.log)"
    { rm -rf "$venv" && $UV venv -q "$venv" --python python3 \
        && $UV pip install --python "$venv/bin/python" --require-hashes -r "$lock"; } \
      >"$LOGS/install-podman-compose.log" 2>&1 || die "podman-compose failed to install; see $LOGS/install-podman-compose.log"
    sha256sum <"$lock" >"$venv/.lock.sha256"
  fi
  export COMPOSE_TOOL=$venv/bin/podman-compose
  # compose_stack.py needs only PyYAML, which podman-compose's venv has (.venv runs only tests/compose).
  PYTHON=$venv/bin/python

  if [ "$command" != down ]; then
    # No registry reachable is the case this path is for: the base image, made here from Debian's packages.
    export BASE_IMAGE=${BASE_IMAGE:-localhost/kafka-sync-base:bookworm}
    if [ "$BASE_IMAGE" = localhost/kafka-sync-base:bookworm ]; then
      bash infra/containers/base-image.sh "$BASE_IMAGE"
    elif ! podman image exists "$BASE_IMAGE"; then
      podman pull "$BASE_IMAGE"
    fi
    # The CA bundle this machine's TLS goes through (SSL_CERT_FILE), mounted into builds only.
    export HOST_CA_FILE=${HOST_CA_FILE:-${SSL_CERT_FILE:-}}
  fi
fi

exec "$PYTHON" infra/containers/compose_stack.py "$@"
