"""make up / make down as a user runs them: a second `up` is harmless, `down` leaves nothing of ours running."""

import subprocess
import sys
from pathlib import Path

import pytest

from launcher import connect, kafka, mariadb, services
from launcher.processes import Component, port_open, started_by_us
from stack_description.settings import REPO_ROOT, STACK_DIR, StackConfig

pytestmark = pytest.mark.stack


def launcher(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )


def components(config: StackConfig) -> list[Component]:
    infra = [mariadb.component(config), kafka.component(config), connect.component(config)]
    return [*infra, *services.all_components(config)]


def our_processes() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and started_by_us(int(p.name))]


def test_second_up_finds_everything_running_and_starts_nothing(stack_config: StackConfig) -> None:
    before = {c.name: c.pid() for c in components(stack_config)}
    assert all(before.values()), f"the stack should be fully up before this test: {before}"

    result = launcher("up")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "already running" in result.stdout
    assert {c.name: c.pid() for c in components(stack_config)} == before


def test_status_names_the_controller_quorum_leader_and_under_replicated_partitions() -> None:
    result = launcher("status")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "kafka node 1: leads the controller quorum, under-replicated partitions: 0" in result.stdout


def test_down_stops_every_process_it_started_and_up_brings_the_stack_back(stack_config: StackConfig) -> None:
    try:
        result = launcher("down")
        assert result.returncode == 0, result.stdout + result.stderr
        assert our_processes() == []
        fixed_ports = [c.port for c in components(stack_config) if c.port is not None]
        assert [port for port in fixed_ports if port_open(port)] == []
        status = launcher("status")
        assert status.returncode != 0 and " up " not in status.stdout
    finally:
        result = launcher("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(c.running() for c in components(stack_config))


def test_the_stacks_files_are_the_owners_alone() -> None:
    """Kafka's segments, MariaDB's files, logs and keys: nothing under .stack is reachable by another user."""
    launcher("up")
    assert STACK_DIR.stat().st_mode & 0o077 == 0, oct(STACK_DIR.stat().st_mode)
