#!/usr/bin/env bash
# make lock: compile requirements.in (every project of the repo and the dev tools) with constraints.txt into
# requirements.lock: every package .venv holds, transitive ones included, each with its hashes. The repo's own
# projects are left out (make up installs them editable). Run it after changing constraints.txt or a
# pyproject.toml's dependencies; `make check` fails while the lock is behind.
# The lock in place is the resolver's preference: uv keeps every pin it still satisfies, so an upstream release
# changes nothing until someone asks for it (`make lock UPGRADE=1`, or an input that needs another version).
# `lock.sh OUT` writes a copy to OUT instead (make check compares it with the lock).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-requirements.lock}
[ "$out" = requirements.lock ] || cp requirements.lock "$out"
upgrade=()
[ -n "${UPGRADE:-}" ] && upgrade=(--upgrade)
own=()
# The repo's own projects: the `-e ./folder` lines of requirements.in.
for dir in $(sed -n 's|^-e \./\([^[ ]*\).*|\1|p' requirements.in); do
  own+=(--no-emit-package "$(sed -n 's/^name = "\(.*\)"$/\1/p' "$dir/pyproject.toml")")
done
uv pip compile -q "${upgrade[@]}" --python-version 3.11 --generate-hashes --no-header "${own[@]}" \
  requirements.in -c constraints.txt -o "$out"
