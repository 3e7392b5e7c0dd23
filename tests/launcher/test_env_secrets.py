"""`make up` never runs on a placeholder or short secret, writes .env owner-only, and fills only what it created."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stack_description.settings import (
    GENERATED_MARKER,
    MIN_SECRET_BYTES,
    PLACEHOLDER,
    REPO_ROOT,
    ensure_env_file,
    read_env_file,
    weak_secrets,
)


def launcher_with(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STACK_ENV_FILE": str(env_file)}
    return subprocess.run(
        [sys.executable, "-m", "launcher", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.unit
def test_placeholders_and_short_secrets_are_named_and_long_ones_pass() -> None:
    values = {"JWT_SECRET": PLACEHOLDER, "DB_PASSWORD": "short", "KAFKA_X_PASSWORD": "y" * 32, "DB_USER": "app"}

    problems = weak_secrets(values)

    assert len(problems) == 2
    assert "JWT_SECRET" in problems[0] and PLACEHOLDER in problems[0]
    assert "DB_PASSWORD" in problems[1] and "5 bytes" in problems[1]


@pytest.mark.unit
@pytest.mark.parametrize("character", ['"', "'", "\\", ";", " "])
def test_a_long_secret_that_sql_or_jaas_cannot_carry_is_named(character: str) -> None:
    """start-mariadb pastes passwords into SQL between single quotes, JAAS configs between double quotes."""
    problems = weak_secrets({"CDC_DB_PASSWORD": "x" * 20 + character + "y" * 20})

    assert len(problems) == 1 and "CDC_DB_PASSWORD" in problems[0]


@pytest.mark.unit
def test_a_new_env_is_owner_only_from_its_creation_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACK_ENV_FILE", str(tmp_path / ".env"))
    monkeypatch.setattr(Path, "chmod", lambda *_: pytest.fail("written readable by others first, then chmod'ed"))
    previous = os.umask(0)
    try:
        created = ensure_env_file()
    finally:
        os.umask(previous)

    assert created.stat().st_mode & 0o777 == 0o600


def test_make_up_with_a_copied_env_of_placeholders_starts_nothing_and_says_which_keys(tmp_path: Path) -> None:
    copied = tmp_path / ".env"
    copied.write_text((REPO_ROOT / ".env.example").read_text())
    copied.chmod(0o644)
    before = launcher_with(REPO_ROOT / ".env", "status").stdout

    answer = launcher_with(copied, "up")

    assert answer.returncode == 2
    assert "nothing was started" in answer.stderr
    assert "JWT_SECRET is the placeholder" in answer.stderr and "DB_PASSWORD is the placeholder" in answer.stderr
    assert "make up" in answer.stderr
    assert launcher_with(REPO_ROOT / ".env", "status").stdout == before
    # A copy is the user's file: its placeholders stay for the user to fix, but it is made owner-only.
    assert read_env_file(copied)["JWT_SECRET"] == PLACEHOLDER
    assert copied.stat().st_mode & 0o777 == 0o600


@pytest.mark.unit
def test_a_new_env_gets_random_secrets_and_mode_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_ENV_FILE", str(tmp_path / ".env"))

    created = ensure_env_file()

    values = read_env_file(created)
    secrets = {key: value for key, value in values.items() if key.endswith(("_PASSWORD", "_SECRET"))}
    assert {"JWT_SECRET", "DB_PASSWORD"} <= set(secrets)
    assert all(len(value) >= MIN_SECRET_BYTES for value in secrets.values())
    assert len(set(secrets.values())) == len(secrets)
    assert weak_secrets(values) == []
    assert created.stat().st_mode & 0o777 == 0o600
    assert created.read_text().startswith(GENERATED_MARKER)


@pytest.mark.unit
def test_an_older_env_gains_new_keys_and_a_generated_one_loses_its_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = tmp_path / ".env"
    older.write_text(f"{GENERATED_MARKER}\nJWT_SECRET={PLACEHOLDER}\nDB_PASSWORD={'p' * 40}\n")
    monkeypatch.setenv("STACK_ENV_FILE", str(older))

    values = read_env_file(ensure_env_file())

    assert values["DB_PASSWORD"] == "p" * 40
    assert values["JWT_SECRET"] != PLACEHOLDER and len(values["JWT_SECRET"]) >= MIN_SECRET_BYTES
    assert "ORDER_INSTANCES" in values
    assert weak_secrets(values) == []
