"""End-to-end fixtures: the running stack, reached through the gateway; test products of their own in catalogdb."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from launcher import services
from servicekit.config import ServiceSettings
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.e2e.catalog_rows import products_in_catalog

# The suite finds the stack through .env, or the environment where it differs: make compose-test runs it in a
# container on the compose network with DB_HOST, DISCOVERY_URL, ... naming containers, GATEWAY_URL the compose
# gateway and STACK_UNDER_TEST=compose. These tests stop native processes; tests/compose/test_compose_stack.py
# covers the same ground by killing and restarting containers.
NATIVE_ONLY = {
    "test_kill_order_instance_restart_connect_and_catalog_while_orders_flow_loses_and_duplicates_nothing": (
        "stops and restarts native processes; compose: test_compose_stack.py kills and restarts containers"
    ),
    "test_catalog_group_leaves_ok_when_catalog_service_stops_and_returns_to_ok_after_restart": (
        "stops and restarts the native catalog-service process"
    ),
    "test_orders_unanswered_past_the_deadline_expire_once_without_stock_and_late_answers_change_nothing": (
        "stops and restarts the native catalog-service processes"
    ),
    "test_a_key_is_rotated_without_restarting_anyone": (
        "runs the operator's rotate-key on the native key file and compares native pids; the compose runner has"
        " user-service's key volume read-only"
    ),
}
# Whole modules, by file name.
NATIVE_ONLY_MODULES = {
    "test_console.py": "opens the console in the host's chromium, on the host's loopback (the runner has no browser)",
    "test_metrics.py": (
        "asks Prometheus on the host's loopback; compose: tests/compose/test_compose_metrics.py runs these tests"
        " against the compose Prometheus from the host"
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("STACK_UNDER_TEST") != "compose":
        return
    for item in items:
        reason = NATIVE_ONLY.get(getattr(item, "originalname", item.name)) or NATIVE_ONLY_MODULES.get(item.path.name)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"native stack only: {reason}"))


@pytest.fixture
async def gateway(stack_config: StackConfig) -> AsyncIterator[GatewayClient]:
    url = os.environ.get("GATEWAY_URL") or f"http://127.0.0.1:{services.gateway_port(stack_config)}"
    async with GatewayClient(url) as client:
        yield client


@pytest.fixture
def fresh_products(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[dict[str, int]]:
    """Three products of this test alone, each with 5,000 in stock, so a long flow of orders neither empties
    the seed catalog (the demo's) nor depends on what earlier runs left. Yielded once every order-service instance
    prices them (the catalog-source connector brought them); removed afterwards."""
    products = {f"E2E-{uuid.uuid4().hex[:10]}": 5000 for _ in range(3)}
    with products_in_catalog(settings, stack_config, products, "End-to-end test product") as made:
        yield made
