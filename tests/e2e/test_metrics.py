"""Metrics collected for real: Prometheus finds every service instance through discovery (eureka_sd_configs),
scrapes each one's /metrics, and a query sees the orders a test placed."""

import asyncio
from typing import Any

import httpx
import pytest

from launcher import prometheus, services
from servicekit.testing import eventually
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient

pytestmark = pytest.mark.stack

APPS_WITH_METRICS = ("USER-SERVICE", "CATALOG-SERVICE", "ORDER-SERVICE", "MONITOR", "GATEWAY")


def targets(config: StackConfig) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus.SERVER.url(config)}/api/v1/targets", params={"state": "active"}, timeout=5).json()
    found: list[dict[str, Any]] = answer["data"]["activeTargets"]
    return found


def query(config: StackConfig, promql: str) -> float | None:
    answer = httpx.get(f"{prometheus.SERVER.url(config)}/api/v1/query", params={"query": promql}, timeout=5).json()
    results = answer["data"]["result"]
    return float(results[0]["value"][1]) if results else None


def present(config: StackConfig, promql: str) -> list[float] | None:
    """[value] once the query has a result (a list, so that a value of 0 counts as found)."""
    value = query(config, promql)
    return None if value is None else [value]


async def test_prometheus_scrapes_every_registered_instance_found_through_discovery(stack_config: StackConfig) -> None:
    registered = {
        (app, str(instance["instanceId"]))
        for app in APPS_WITH_METRICS
        for instance in services.registered_instances(stack_config, app)
        if instance.get("status") == "UP"
    }
    assert {app for app, _ in registered} == set(APPS_WITH_METRICS)

    def all_up() -> set[tuple[str, str]] | None:
        up = {
            (t["labels"].get("app"), t["labels"].get("instance")) for t in targets(stack_config) if t["health"] == "up"
        }
        return up if registered <= up else None

    up = await eventually(all_up, within=30, what=f"every instance in {sorted(registered)} scraped and up")
    assert {("DISCOVERY", "discovery"), ("KAFKA", "kafka-1"), ("CONNECT", "connect-1")} <= up


async def test_the_broker_and_the_connect_worker_export_their_jmx_metrics(stack_config: StackConfig) -> None:
    """Through the JMX exporter agent: the sink's tasks by state, and the broker's view of its replicas."""
    running = 'sum(kafka_connect_connector_tasks{connector="orders-sink", state="running"})'
    failed = 'sum(kafka_connect_connector_tasks{connector="orders-sink", state="failed"})'

    # A fault of an earlier test (compose's writer-node kill) may leave a task restarting, and each worker is scraped
    # every 15 s: the sum is waited for until it says all three run.
    await eventually(
        lambda: present(stack_config, running) == [3] or None, within=60, what="orders-sink's 3 tasks scraped running"
    )
    assert query(stack_config, failed) == 0
    assert query(stack_config, "sum(kafka_server_under_replicated_partitions)") == 0


async def test_a_query_for_orders_published_counts_the_orders_the_test_placed(
    stack_config: StackConfig, gateway: GatewayClient, fresh_products: dict[str, int]
) -> None:
    product = next(iter(fresh_products))
    total = 'sum(orders_published_total{app="ORDER-SERVICE"})'
    # Both instances scraped since their last start: the sum is a baseline to count from (0 on a fresh stack).
    (before,) = await eventually(lambda: present(stack_config, total), within=30, what="orders_published_total scraped")
    user = await gateway.sign_up("Counted Buyer")

    await asyncio.gather(*(gateway.place_order(user, product, 1) for _ in range(12)))

    async def counted() -> float | None:
        now = query(stack_config, total)
        return now if now is not None and now - before >= 12 else None

    after = await eventually(counted, within=30, what="12 more orders published in Prometheus")
    assert after - before >= 12
    # The gateway counted them by route, status and the instance that answered.
    routed = 'sum(gateway_requests_total{route="order-service-user", status="201", upstream=~"order-service-.+"})'
    assert await eventually(lambda: present(stack_config, routed), within=30, what="the gateway's order answers")
    # The broker counted them too (and the stock requests, on their topic).
    written = 'sum(kafka_server_messages_in_total{topic=~"orders|example-catalog-topic"})'
    assert await eventually(lambda: present(stack_config, written), within=30, what="messages in by topic")
