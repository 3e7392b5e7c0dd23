"""Prometheus in the compose stack, asked from the host on its published port (make compose-test sets
PROMETHEUS_PORT and DISCOVERY_URL to the published ones): the native stack's metrics tests run here unchanged, so
both stacks are held to the same checks, plus the JVMs the compose file runs, each one scraped through its JMX
exporter agent."""

import os
from pathlib import Path

import pytest
import yaml

from servicekit.testing import eventually
from stack_description.settings import StackConfig
from tests.e2e.test_metrics import (
    targets,
    test_a_query_for_orders_published_counts_the_orders_the_test_placed,
    test_prometheus_scrapes_every_registered_instance_found_through_discovery,
    test_the_broker_and_the_connect_worker_export_their_jmx_metrics,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("STACK_UNDER_TEST") != "compose", reason="needs the compose stack: make compose-test"
)

# Collected here too (fixtures from tests/compose/conftest.py: the compose gateway, products of the test's own).
__all__ = [
    "test_a_query_for_orders_published_counts_the_orders_the_test_placed",
    "test_prometheus_scrapes_every_registered_instance_found_through_discovery",
    "test_the_broker_and_the_connect_worker_export_their_jmx_metrics",
]

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def jvms_of_the_compose_file() -> set[tuple[str, str]]:
    """(app, instance) of every broker and Connect worker docker-compose.yml starts, numbered in file order as
    start-prometheus labels them."""
    commands = [service.get("command") for service in yaml.safe_load(COMPOSE_FILE.read_text())["services"].values()]
    brokers = sum(command == ["start-broker"] for command in commands)
    workers = sum(command == ["start-worker"] for command in commands)
    assert brokers and workers
    return {("KAFKA", f"kafka-{n}") for n in range(1, brokers + 1)} | {
        ("CONNECT", f"connect-{n}") for n in range(1, workers + 1)
    }


async def test_every_broker_and_connect_worker_of_the_compose_file_is_scraped_and_up(
    stack_config: StackConfig,
) -> None:
    expected = jvms_of_the_compose_file()

    def jvm_targets() -> dict[tuple[str, str], str] | None:
        found = {
            (t["labels"]["app"], t["labels"]["instance"]): t["health"]
            for t in targets(stack_config)
            if t["labels"].get("app") in ("KAFKA", "CONNECT")
        }
        return found if set(found) == expected and set(found.values()) == {"up"} else None

    await eventually(jvm_targets, within=30, what=f"exactly {sorted(expected)} scraped, all up")
