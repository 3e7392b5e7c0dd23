"""Faults on the change-data-capture path: Connect killed mid-stream, an order-service instance restarted, MariaDB
restarted. No committed change of catalogdb.catalogs is lost, and every instance ends at the last one."""

import asyncio
import time
from typing import Any

import httpx
import pytest

from launcher import connect, mariadb, services
from launcher.processes import Component, kill, stop
from order_contract.catalog_change import CatalogProduct, InvalidCatalogChange, parse_catalog_change
from order_contract.topics import CATALOG_CHANGES_TOPIC
from servicekit.config import ServiceSettings
from servicekit.testing import Record, TopicReader, database, eventually, eventually_blocking
from servicekit.tokens import SigningKey
from stack_description import connectors
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from stack_support.catalog_views import ORDER_APP
from tests.cdc.catalog_stack import (
    CHANGE_DEADLINE_SECONDS,
    SEED_PRODUCTS,
    TestProducts,
    order_instances,
    priced_on_every_instance,
    read_models,
    settled_rows,
    user_with_token,
)

pytestmark = pytest.mark.stack

# Long enough for a worker JVM to start and a connector to resume on this 2-core machine, short enough to fail.
RECOVERY_SECONDS = 120
# The connector's binlog client finds a restarted server on a keep-alive tick (connect.keep.alive.interval.ms,
# 2 s in infra/connect/catalog-source.json; Debezium's default of 60 s took up to 2 minutes): ample margin.
BINLOG_RESUME_SECONDS = 30


class PriceUpdates:
    """Applies price updates by SQL, one commit each, round robin over some products, in a thread; counts them."""

    def __init__(self, products: TestProducts, product_ids: list[str], updates: int, pause: float) -> None:
        self.products, self.product_ids, self.updates, self.pause = products, product_ids, updates, pause
        self.applied = 0
        self.last: dict[str, int] = {}

    def price(self, number: int) -> int:
        return 5000 + number  # every update a new price, the last the highest

    def run(self) -> None:
        for number in range(self.updates):
            product_id = self.product_ids[number % len(self.product_ids)]
            self.products.set_price(product_id, self.price(number))
            self.last[product_id] = self.price(number)
            self.applied = number + 1
            time.sleep(self.pause)  # a pace, not a wait: the updates span a few seconds, so a kill lands among them


def any_instance_saw_an_update(config: StackConfig, updates: PriceUpdates) -> bool:
    return any(
        change["productId"] in updates.product_ids and (change["unitPrice"] or 0) >= updates.price(0)
        for model in read_models(config).values()
        for change in model["recent"]
    )


async def test_connect_killed_during_200_price_updates_every_instance_ends_at_the_last_price(
    stack_config: StackConfig, products: TestProducts
) -> None:
    product_ids = [products.add(unit_price=100) for _ in range(4)]
    await priced_on_every_instance(
        stack_config, dict.fromkeys(product_ids, 100), within=30, what="the four new products"
    )
    updates = PriceUpdates(products, product_ids, updates=200, pause=0.01)
    worker = connect.component(stack_config)
    flow = asyncio.ensure_future(asyncio.to_thread(updates.run))

    async def mid_stream() -> bool:
        return flow.done() or await asyncio.to_thread(any_instance_saw_an_update, stack_config, updates)

    try:
        # The connector is mid-stream: some updates have reached the instances, most are still to come.
        await eventually(mid_stream, within=30, what="the first updates reach an instance", interval=0.02)
        await asyncio.to_thread(kill, worker)
        killed_after = updates.applied
        await flow
        assert 0 < killed_after < updates.updates, f"the worker was killed after update {killed_after} of 200"
        await asyncio.to_thread(connect.ensure_running, stack_config)
    finally:
        await flow
        await asyncio.to_thread(connect.ensure_running, stack_config)

    await priced_on_every_instance(
        stack_config, dict(updates.last), within=RECOVERY_SECONDS, what=f"the last of 200 prices {updates.last}"
    )
    assert connect.connector_running(stack_config, connectors.SOURCE_CONNECTOR)


def first_sight(config: StackConfig, instance_id: str, since_ms: int, within: float) -> dict[str, Any]:
    """The instance's GET /catalog-view, fetched the moment discovery first lists it UP (registered after
    `since_ms`, so not a predecessor's lease)."""

    def view_once_up() -> dict[str, Any] | None:
        for instance in services.registered_instances(config, ORDER_APP):
            if (
                instance.get("instanceId") == instance_id
                and instance.get("status") == "UP"
                and int(instance.get("lastUpdatedTimestamp", 0)) >= since_ms
            ):
                port = instance.get("port", {})
                number = port.get("$") if isinstance(port, dict) else port
                view: dict[str, Any] = httpx.get(f"http://127.0.0.1:{number}/catalog-view", timeout=2).json()
                return view
        return None

    return eventually_blocking(view_once_up, within=within, what=f"{instance_id} UP in discovery", interval=0.02)


async def test_a_restarted_order_instance_has_read_the_whole_catalog_before_it_registers(
    stack_config: StackConfig, products: TestProducts
) -> None:
    repriced, kept, deleted = (products.add(unit_price=200) for _ in range(3))
    await priced_on_every_instance(
        stack_config, {repriced: 200, kept: 200, deleted: 200}, within=30, what="the three new products"
    )
    name = f"order-service-{order_instances(stack_config)}"
    instance = Component(name)
    try:
        await asyncio.to_thread(stop, instance)
        # Changed while it is down: it can only learn them from the compacted topic. One partition, binlog order:
        # once the others price the last change, every earlier one is on the topic too.
        products.remove(deleted)
        products.set_price(repriced, 260)
        added = products.add(unit_price=270)
        expected: dict[str, int | None] = {repriced: 260, kept: 200, added: 270}
        await priced_on_every_instance(
            stack_config,
            expected,
            within=30,
            what="(all but the stopped one) the changes made while one was down",
            instances=order_instances(stack_config) - 1,
        )
        expected.update(products.prices(list(SEED_PRODUCTS)))

        since_ms = int(time.time() * 1000)
        restarting = asyncio.ensure_future(asyncio.to_thread(services.restart_service, stack_config, name))
        view = await asyncio.to_thread(first_sight, stack_config, name, since_ms, 90)
        await restarting
    finally:
        await asyncio.to_thread(services.restart_service, stack_config, name)

    assert view["caughtUp"] is True, "registered before it had read catalog-changes to the end"
    prices = {product["productId"]: product["unitPrice"] for product in view["products"]}
    assert {product_id: prices.get(product_id) for product_id in expected} == expected
    assert deleted not in prices, f"{deleted}, deleted while it was down, is still priced at {prices.get(deleted)}"


async def test_mariadb_restarted_loses_no_change_and_every_component_recovers(
    stack_config: StackConfig,
    products: TestProducts,
    gateway: GatewayClient,
    settings: ServiceSettings,
    signing_key: SigningKey,
) -> None:
    before, after, gone = (products.add(unit_price=300) for _ in range(3))
    await priced_on_every_instance(
        stack_config, {before: 300, after: 300, gone: 300}, within=30, what="the three new products"
    )
    server = mariadb.component(stack_config)
    async with TopicReader(stack_config.kafka_access, CATALOG_CHANGES_TOPIC) as changes:
        try:
            # Right before the server goes: committed, but maybe not yet read from the binlog by the connector.
            products.set_price(before, 310)
            products.remove(gone)
            await asyncio.to_thread(stop, server)
            await asyncio.to_thread(mariadb.up, stack_config)
            # Right after it is back.
            products.set_price(before, 320)
            products.set_price(after, 330)
            added = products.add(unit_price=340)
        finally:
            if not server.running():
                await asyncio.to_thread(mariadb.up, stack_config)

        expected: dict[str, int | None] = {before: 320, after: 330, added: 340}
        await priced_on_every_instance(stack_config, expected, within=BINLOG_RESUME_SECONDS, what=f"{expected}")
        records = await changes.read_to_end()
    # At least once: after a restart a change may come twice, but none may be missing.
    prices = [row.unit_price if row else None for key, row in map(parsed, records) if key == before]
    assert 310 in prices and prices[-1] == 320, f"{before} went through {prices} on catalog-changes"
    await eventually(
        lambda: all(connect.connector_running(stack_config, name) for name in connectors.CONNECTORS),
        within=60,
        what="both connectors RUNNING",
    )

    # The sink, catalog-service, order-service and user-service reconnected: an order placed now is written,
    # confirmed against the stock and listed; a new user can sign up and log in.
    user = user_with_token(signing_key, "after-db-restart")
    placed = await gateway.http.post(
        f"/order-service/{user.user_id}/orders", json={"productId": after, "qty": 1}, headers=user.auth
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["orderId"]
    with database(settings, stack_config.get("ORDERS_DB")) as orders_db:  # opened after the restart
        rows = await eventually(
            lambda: settled_rows(orders_db, user.user_id, {order_id}), within=60, what="the order settles"
        )
    assert rows[order_id]["status"] == "CONFIRMED"
    listed = await gateway.http.get(f"/order-service/{user.user_id}/orders", headers=user.auth)
    assert [order["orderId"] for order in listed.json()] == [order_id]
    await gateway.sign_up("After The Restart")

    # The product deleted right before the restart is gone too.
    assert [key for key, row in map(parsed, records) if key == gone and row is None], f"no tombstone for {gone}"
    await priced_on_every_instance(stack_config, {gone: None}, within=CHANGE_DEADLINE_SECONDS, what=f"no {gone}")


def parsed(record: Record) -> tuple[str | None, CatalogProduct | None]:
    """(product id, row) of a catalog-changes record; (None, None) when it is not a catalog row."""
    try:
        return parse_catalog_change(record.key, record.value)
    except InvalidCatalogChange:
        return None, None
