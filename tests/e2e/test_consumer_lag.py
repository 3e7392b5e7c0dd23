"""The monitor rates catalog-service's consumer group the way Burrow would, through Burrow's own API: OK while it
keeps up, not OK within a bounded time once it stops while orders keep coming, OK again once it is back.

The orders go to one product per partition of the stock topic, so every partition the group reads gets fresh
commits: a partition idle since earlier tests could otherwise hold a tail of transaction markers (aborted
transactions leave more than one) that no consumer commits past until its next record, and be STOP on its own.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from launcher import services
from launcher.processes import Component, stop
from order_contract.topics import STOCK_TOPIC
from servicekit.config import ServiceSettings
from servicekit.testing import eventually
from stack_description.settings import StackConfig
from stack_monitor.config import MonitorSettings
from stack_support.api_client import GatewayClient, User
from tests.e2e.catalog_rows import products_in_catalog

pytestmark = pytest.mark.stack

GROUP = "catalog-service"
CATALOG = "catalog-service-1"


def stock_partition(product_id: str, partitions: int) -> int:
    """Where order-service's stock request for this product lands (keyed by product id, Kafka's partitioner)."""
    chosen: int = DefaultPartitioner()(product_id.encode(), list(range(partitions)), list(range(partitions)))
    return chosen


@pytest.fixture
def product_per_partition(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[list[str]]:
    """One product of this test's own per partition of the stock topic (5,000 in stock, removed afterwards),
    yielded once every order-service instance prices it."""
    partitions = stack_config.number("TOPIC_PARTITIONS")
    chosen: dict[int, str] = {}
    while len(chosen) < partitions:
        product_id = f"LAG-{uuid.uuid4().hex[:10]}"
        chosen.setdefault(stock_partition(product_id, partitions), product_id)
    products = dict.fromkeys(chosen.values(), 5000)
    with products_in_catalog(settings, stack_config, products, "Consumer lag test product"):
        yield list(products)


@pytest.fixture(scope="module")
def monitor_settings() -> MonitorSettings:
    return MonitorSettings()


@pytest.fixture
async def burrow(monitor_settings: MonitorSettings) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://127.0.0.1:{monitor_settings.port}/v3/kafka/{monitor_settings.monitor_cluster}"
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        yield client


async def group_lag(burrow: httpx.AsyncClient) -> dict[str, Any] | None:
    """The group's status with every partition, or None while the monitor does not know the group (404)."""
    response = await burrow.get(f"/consumer/{GROUP}/lag")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    status: dict[str, Any] = response.json()["status"]
    return status


async def place_orders(gateway: GatewayClient, user: User, products: list[str], done: asyncio.Event) -> int:
    """A steady flow of orders until `done`; each carries an Idempotency-Key and is retried until accepted."""
    placed = 0
    while not done.is_set():
        key = uuid.uuid4().hex
        while not done.is_set():
            try:
                response = await gateway.order(user, products[placed % len(products)], 1, 100, idempotency_key=key)
            except httpx.HTTPError:  # the connection failed: for a client the same as a 5xx
                response = None
            if response is not None and response.status_code == 201:
                placed += 1
                break
            assert response is None or response.status_code >= 500, response.text
            await asyncio.sleep(0.5)  # client back-off before retrying
        await asyncio.sleep(0.1)  # think time: a steady flow, not a flood
    return placed


async def test_catalog_group_leaves_ok_when_catalog_service_stops_and_returns_to_ok_after_restart(
    gateway: GatewayClient,
    burrow: httpx.AsyncClient,
    monitor_settings: MonitorSettings,
    stack_config: StackConfig,
    product_per_partition: list[str],
) -> None:
    poll, window = monitor_settings.monitor_poll_seconds, monitor_settings.monitor_window
    # Burrow's STOP: no commit for longer than the window spans ((window - 1) polls while orders flow), and the
    # log end no longer at the last commit in any of the last `window` polls; plus a poll of slack each side.
    leaves_ok_within = (window + 2) * poll + 15

    users = await asyncio.gather(*(gateway.sign_up(f"Lag Watcher {n}") for n in range(2)))
    done = asyncio.Event()
    flow_started_ms = int(time.time() * 1000)
    flow = asyncio.gather(*(place_orders(gateway, user, product_per_partition, done) for user in users))
    catalog = Component(CATALOG)
    try:

        async def ok_over_a_window_of_this_flow() -> dict[str, Any] | None:
            status = await group_lag(burrow)
            if status is None or status["status"] != "OK":
                return None
            on_stock_topic = [p for p in status["partitions"] if p["topic"] == STOCK_TOPIC]
            fresh = len(on_stock_topic) == stack_config.number("TOPIC_PARTITIONS") and all(
                p["start"]["timestamp"] >= flow_started_ms and p["complete"] == 1.0 for p in on_stock_topic
            )
            return status if fresh else None

        # Every window then spans this flow only, so how soon STOP shows does not depend on earlier runs.
        await eventually(
            ok_over_a_window_of_this_flow,
            within=(window + 4) * poll + 30,
            what=f"{GROUP} OK over a whole window of commits made during this flow, on every partition",
            interval=poll / 2,
        )

        await asyncio.to_thread(stop, catalog)
        stopped_at = time.monotonic()

        async def not_ok() -> dict[str, Any] | None:
            status = await group_lag(burrow)
            return status if status is not None and status["status"] != "OK" else None

        left = await eventually(
            not_ok, within=leaves_ok_within, what=f"{GROUP} not OK after catalog-service stopped", interval=1
        )
        left_after = time.monotonic() - stopped_at
        assert left["status"] == "ERR", left
        assert {p["status"] for p in left["partitions"]} & {"STOP", "STALL"}, left["partitions"]
        assert left["totallag"] > 0

        await asyncio.to_thread(services.restart_service, stack_config, CATALOG)
        restarted_at = time.monotonic()

        async def ok() -> dict[str, Any] | None:
            status = await group_lag(burrow)
            return status if status is not None and status["status"] == "OK" else None

        await eventually(ok, within=3 * poll + 30, what=f"{GROUP} OK again after the restart", interval=1)
        back_after = time.monotonic() - restarted_at
        print(
            f"\n{GROUP}: not OK {left_after:.1f} s after the stop (bound {leaves_ok_within:.0f} s), "
            f"OK {back_after:.1f} s after the restart"
        )
    finally:
        done.set()
        placed = await flow
        if not catalog.running():  # whatever failed above, leave the stack whole for the next test
            await asyncio.to_thread(services.restart_service, stack_config, CATALOG)
    assert sum(placed) > 0
