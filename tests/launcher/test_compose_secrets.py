"""The compose stack's `secrets` one-shot (infra/containers/compose_secrets.py), run as compose runs it, on a folder
of volumes: every secret made with nothing given, a .env's secret wins, a weak one stops everything, a second run
keeps them, and each component's files are only its own, never readable by others."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from infra.containers.compose_secrets import COMPONENT_SECRETS, OPERATOR, SECRETS_GID, secret_keys
from stack_description.settings import MIN_SECRET_BYTES, PLACEHOLDER, REPO_ROOT

pytestmark = pytest.mark.unit

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the one-shot runs as root: it gives its files to a group")


def run(root: Path, **given: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in secret_keys()}
    return subprocess.run(
        [sys.executable, "-m", "infra.containers.compose_secrets", str(root)],
        env={**environment, **given},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def files(root: Path, component: str) -> dict[str, str]:
    return {path.name: path.read_text() for path in (root / component).iterdir()}


@needs_root
def test_with_nothing_given_every_secret_is_made_once_and_each_component_gets_only_its_own(tmp_path: Path) -> None:
    made = run(tmp_path)

    assert made.returncode == 0, made.stderr
    operator = files(tmp_path, OPERATOR)
    assert sorted(operator) == sorted(secret_keys())
    assert all(len(value.encode()) >= MIN_SECRET_BYTES for value in operator.values())
    assert len(set(operator.values())) == len(operator), "every secret is its own"
    for component, wanted in COMPONENT_SECRETS.items():
        assert files(tmp_path, component) == {name: operator[key] for name, key in wanted.items()}, component
    assert files(tmp_path, "order-service")["DB_PASSWORD"] == operator["ORDER_SERVICE_DB_PASSWORD"]
    assert "DB_PASSWORD" not in files(tmp_path, "connect"), "the operator's account is the operator's"
    for path in tmp_path.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert path.stat().st_gid == SECRETS_GID, path
        assert mode & 0o007 == 0, f"{path} is {oct(mode)}: readable by others"
        if path.is_file():
            assert mode == 0o440, path
    for secret in operator.values():
        assert secret not in made.stdout + made.stderr, "a secret was printed"

    again = run(tmp_path)

    assert again.returncode == 0, again.stderr
    assert files(tmp_path, OPERATOR) == operator, "a second up keeps every secret"


@needs_root
def test_a_dot_envs_secret_wins_and_reaches_every_component_that_uses_it(tmp_path: Path) -> None:
    assert run(tmp_path).returncode == 0
    chosen = "a-secret-the-user-chose-0123456789-abcdefgh"

    result = run(tmp_path, ORDERS_SINK_DB_PASSWORD=chosen)

    assert result.returncode == 0, result.stderr
    assert files(tmp_path, OPERATOR)["ORDERS_SINK_DB_PASSWORD"] == chosen
    assert files(tmp_path, "mariadb")["ORDERS_SINK_DB_PASSWORD"] == chosen
    assert files(tmp_path, "connect")["SINK_DB_PASSWORD"] == chosen


@pytest.mark.parametrize("weak", [PLACEHOLDER, "short-secret"])
def test_a_placeholder_or_short_secret_is_refused_and_nothing_is_written(tmp_path: Path, weak: str) -> None:
    result = run(tmp_path, DISCOVERY_PASSWORD=weak, CDC_DB_PASSWORD="")

    assert result.returncode == 1
    assert "DISCOVERY_PASSWORD" in result.stderr and "CDC_DB_PASSWORD" not in result.stderr
    assert list(tmp_path.iterdir()) == []
