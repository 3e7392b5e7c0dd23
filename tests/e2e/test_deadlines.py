"""Saga deadlines: an order nobody answers is settled EXPIRED after ORDER_DEADLINE_SECONDS, once, without stock;
catalog-service's answer arriving after that changes nothing."""

import asyncio
import time
from collections import Counter

import pytest

from launcher import services
from launcher.processes import Component, stop
from order_contract.connect_record import order_from_record_value
from order_contract.order import DEFAULT_ORDER_DEADLINE_SECONDS
from order_contract.topics import ORDERS_TOPIC
from servicekit.config import ServiceSettings
from servicekit.testing import DictConnection, TopicReader, database, eventually
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.e2e.orders_table import rows_by_id

pytestmark = pytest.mark.stack

# The expirer's grace after the deadline, its poll, the sink: well within this once the deadline has passed.
SETTLE_AFTER_DEADLINE = 30.0


def catalog_instances(stack_config: StackConfig) -> list[Component]:
    return [c for c in services.all_components(stack_config) if c.name.startswith("catalog-service-")]


def ledger_statuses(catalog_db: DictConnection, order_ids: list[str]) -> dict[str, str]:
    placeholders = ", ".join(["%s"] * len(order_ids))
    with catalog_db.cursor() as cursor:
        cursor.execute(f"SELECT order_id, status FROM processed_orders WHERE order_id IN ({placeholders})", order_ids)
        return {row["order_id"]: row["status"] for row in cursor.fetchall()}


async def test_orders_unanswered_past_the_deadline_expire_once_without_stock_and_late_answers_change_nothing(
    gateway: GatewayClient,
    orders_db: DictConnection,
    settings: ServiceSettings,
    stack_config: StackConfig,
    fresh_products: dict[str, int],
) -> None:
    deadline = float(stack_config.get("ORDER_DEADLINE_SECONDS") or DEFAULT_ORDER_DEADLINE_SECONDS)
    user = await gateway.sign_up("Patient Buyer")
    products = list(fresh_products)
    stock_before = {p: s for p, s in (await gateway.stock()).items() if p in fresh_products}
    catalogs = catalog_instances(stack_config)
    async with TopicReader(stack_config.kafka_access, ORDERS_TOPIC) as orders_topic:
        for catalog in catalogs:
            await asyncio.to_thread(stop, catalog)
        try:
            # Several orders, so that their partitions of `orders` belong to both order-service instances.
            placed_at = time.monotonic()
            placed = [await gateway.place_order(user, products[n % len(products)], 1 + n % 3) for n in range(9)]
            order_ids = [p.order["orderId"] for p in placed]

            def all_expired() -> dict[str, str] | None:
                rows = rows_by_id(orders_db, order_ids)
                statuses = {order_id: r[0]["status"] for order_id, r in rows.items() if len(r) == 1}
                return statuses if set(statuses.values()) == {"EXPIRED"} and len(statuses) == len(order_ids) else None

            await eventually(
                all_expired, within=deadline + SETTLE_AFTER_DEADLINE, interval=0.5, what="every order EXPIRED"
            )
            assert time.monotonic() - placed_at >= deadline - 1, "expired no earlier than the deadline"
        finally:
            for catalog in catalogs:
                await asyncio.to_thread(services.restart_service, stack_config, catalog.name)

        # catalog-service now reads the stock requests, after their deadline: recorded EXPIRED, no stock taken.
        catalog_db = database(settings, stack_config.get("CATALOG_DB"))
        try:
            await eventually(
                lambda: (
                    set(ledger_statuses(catalog_db, order_ids).values()) == {"EXPIRED"}
                    and len(ledger_statuses(catalog_db, order_ids)) == len(order_ids)
                ),
                within=60,
                what="catalog-service's ledger holding each late request as EXPIRED",
            )
        finally:
            catalog_db.close()
        stock_after = {p: s for p, s in (await gateway.stock()).items() if p in fresh_products}
        assert stock_after == stock_before, "an expired order never takes stock"
        assert {r[0]["status"] for r in rows_by_id(orders_db, order_ids).values()} == {"EXPIRED"}

        records = await orders_topic.read_to_end()
    statuses = Counter(
        (order.order_id, order.status.value)
        for order in (order_from_record_value(r.value) for r in records)
        if order.order_id in order_ids
    )
    for order_id in order_ids:
        assert statuses[(order_id, "PENDING")] == 1
        assert statuses[(order_id, "EXPIRED")] == 1, f"one EXPIRED record for {order_id}, whoever owned it"
        assert statuses[(order_id, "CONFIRMED")] == statuses[(order_id, "REJECTED")] == 0
