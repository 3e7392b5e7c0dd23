"""The consistency auditor over the running stack: consistent after real orders; each kind of damage done on purpose
(a row deleted, a status changed, a row forged, a stock request nobody answers, stock changed by SQL) named with
the right ids; consistent again once repaired. Everything broken here is repaired before the test ends.

The auditor judges only orders created since each test started (other suites leave deliberate damage behind:
the sink's poison records, records with no stock request), with short grace periods."""

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from consistency_audit import Auditor, AuditSettings, Kind, Verdict, audit_once
from order_contract.connect_record import order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import iso_ms
from order_contract.topics import ORDERS_TOPIC, STOCK_TOPIC
from servicekit.config import ServiceSettings
from servicekit.testing import DictConnection, database, eventually
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.e2e.orders_table import settled

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def module_auditor() -> AsyncIterator[Auditor]:
    """One auditor for the module (its first pass is a full one; later ones are incremental): short grace periods,
    the row checksum compared on every pass."""
    auditor = Auditor(
        AuditSettings(
            audit_sink_lag_seconds=5,
            audit_outcome_lag_seconds=5,
            audit_settle_seconds=1,
            audit_totals_every_seconds=0,
        )
    )
    yield auditor
    await auditor.close()


@pytest.fixture
def auditor(module_auditor: Auditor) -> Auditor:
    """Judging only the orders created from this test's start on."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    module_auditor.settings = module_auditor.settings.model_copy(update={"audit_since": since})
    return module_auditor


@pytest.fixture
def catalog_db(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[DictConnection]:
    connection = database(settings, stack_config.get("CATALOG_DB"))
    yield connection
    connection.close()


def found(verdict: Verdict) -> dict[Kind, list[str]]:
    return {kind: ids for kind, ids in verdict.discrepancies.items() if ids}


async def settled_orders(gateway: GatewayClient, db: DictConnection, product: str, count: int) -> dict[str, Any]:
    user = await gateway.sign_up("Audited")
    order_ids = [(await gateway.place_order(user, product, 1)).order_id for _ in range(count)]
    rows = await eventually(lambda: settled(db, order_ids), within=60, what="the orders settled in mydb.orders")
    assert rows is not None
    return rows


def execute(db: DictConnection, sql: str, *args: object) -> int:
    with db.cursor() as cursor:
        changed: int = cursor.execute(sql, args)
    db.commit()
    return changed


async def test_orders_placed_through_the_gateway_audit_consistent(
    gateway: GatewayClient, orders_db: DictConnection, fresh_products: dict[str, int], auditor: Auditor
) -> None:
    await settled_orders(gateway, orders_db, next(iter(fresh_products)), 5)

    await eventually(lambda: _consistent(auditor), within=180, what="a consistent pass", interval=1)
    once = await audit_once(auditor.settings)  # what `make chaos` calls: a full pass with readers of its own
    assert once.full and once.records_read > 0
    assert once.consistent, once.as_json()


async def test_each_kind_of_damage_is_named_with_its_ids_and_repairs_make_it_consistent_again(
    gateway: GatewayClient,
    orders_db: DictConnection,
    catalog_db: DictConnection,
    fresh_products: dict[str, int],
    stack_config: StackConfig,
    auditor: Auditor,
) -> None:
    product = next(iter(fresh_products))
    rows = await settled_orders(gateway, orders_db, product, 3)
    deleted, changed = sorted(rows)[:2]
    await eventually(lambda: _consistent(auditor), within=180, what="consistent before any damage", interval=1)
    quiet = await auditor.run()
    assert not quiet.full, quiet.reason  # nothing changed: an incremental pass, no fallback

    forged, unanswered = f"audit-forged-{uuid.uuid4().hex[:10]}", f"audit-lost-{uuid.uuid4().hex[:10]}"
    with orders_db.cursor() as cursor:
        cursor.execute("SELECT * FROM orders WHERE order_id = %s", (deleted,))
        deleted_row = cursor.fetchone()
    assert deleted_row is not None
    other_status = "REJECTED" if rows[changed]["status"] == "CONFIRMED" else "CONFIRMED"
    try:
        assert execute(orders_db, "DELETE FROM orders WHERE order_id = %s", deleted) == 1
        assert execute(orders_db, "UPDATE orders SET status = %s WHERE order_id = %s", other_status, changed) == 1
        execute(
            orders_db,
            "INSERT INTO orders (order_id, user_id, product_id, qty, unit_price, total_price, status, created_at)"
            " VALUES (%s, 'audit-test', %s, 1, 100, 100, 'CONFIRMED', UTC_TIMESTAMP(3))",
            forged,
            product,
        )
        assert execute(catalog_db, "UPDATE catalogs SET stock = stock - 2 WHERE product_id = %s", product) == 1
        # qty 0: catalog-service dead-letters it, so no outcome ever comes (what a record lost to the DLQ looks like)
        await _publish_stock_request(stack_config, unanswered, product)

        expected = {
            Kind.MISSING_ROW: [deleted],
            Kind.STATUS_BEHIND: [changed],
            Kind.ROW_WITHOUT_RECORD: [forged],
            Kind.STOCK_DRIFT: [product],
            Kind.UNANSWERED_REQUEST: [unanswered],
        }

        async def all_named() -> Verdict | None:
            verdict = await auditor.run()
            return verdict if found(verdict) == expected else None

        damaged = await eventually(all_named, within=180, what=f"the auditor names {expected}", interval=1)
        assert not damaged.consistent
    finally:
        execute(
            orders_db,
            "INSERT INTO orders (order_id, user_id, product_id, qty, unit_price, total_price, status, created_at)"
            " SELECT %s, %s, %s, %s, %s, %s, %s, %s FROM DUAL"
            " WHERE NOT EXISTS (SELECT 1 FROM orders WHERE order_id = %s)",
            *(deleted_row[c] for c in ("order_id", "user_id", "product_id", "qty", "unit_price", "total_price")),
            deleted_row["status"],
            deleted_row["created_at"],
            deleted,
        )
        execute(orders_db, "UPDATE orders SET status = %s WHERE order_id = %s", rows[changed]["status"], changed)
        execute(orders_db, "DELETE FROM orders WHERE order_id = %s", forged)
        execute(catalog_db, "UPDATE catalogs SET stock = stock + 2 WHERE product_id = %s", product)
        # An operator settles the dead-lettered request for good: REJECTED in the ledger, no stock taken.
        execute(
            catalog_db,
            "INSERT IGNORE INTO processed_orders (order_id, user_id, product_id, qty, unit_price, total_price, status,"
            " order_created_at) VALUES (%s, 'audit-test', %s, 0, 100, 0, 'REJECTED', UTC_TIMESTAMP(3))",
            unanswered,
            product,
        )

    verdict = await eventually(lambda: _consistent(auditor), within=60, what="consistent after repair", interval=1)
    assert verdict is not None


async def test_an_order_whose_record_the_sink_dead_lettered_is_reported_apart_not_as_a_missing_row(
    stack_config: StackConfig, orders_db: DictConnection, auditor: Auditor
) -> None:
    """A record the sink refuses (a total that is not qty x unit price) goes to orders-dlq; the order has no row by
    design, and the auditor says so instead of calling the row missing."""
    refused = f"audit-refused-{uuid.uuid4().hex[:10]}"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    order = Order(refused, "audit-test", "audit-product", 2, 100, 201, OrderStatus.REJECTED, now)
    await _publish(stack_config, ORDERS_TOPIC, order_record_value(order), refused)

    async def reported_apart() -> Verdict | None:
        verdict = await auditor.run()
        return verdict if refused in verdict.dead_lettered else None

    verdict = await eventually(reported_apart, within=120, what=f"{refused} reported as dead-lettered", interval=1)
    assert refused not in verdict.discrepancies[Kind.MISSING_ROW]
    assert verdict.consistent, verdict.as_json()
    assert verdict.as_json()["dead_lettered"] == {"count": 1, "ids": [refused]}
    with orders_db.cursor() as cursor:
        assert cursor.execute("SELECT 1 FROM orders WHERE order_id = %s", (refused,)) == 0


async def _consistent(auditor: Auditor) -> Verdict | None:
    verdict = await auditor.run()
    return verdict if verdict.consistent else None


async def _publish_stock_request(stack_config: StackConfig, order_id: str, product: str) -> None:
    request = {
        "orderId": order_id,
        "userId": "audit-test",
        "productId": product,
        "qty": 0,
        "unitPrice": 100,
        "totalPrice": 0,
        "createdAt": iso_ms(dt.datetime.now(dt.UTC)),
    }
    await _publish(stack_config, STOCK_TOPIC, orjson.dumps(request), product)


async def _publish(stack_config: StackConfig, topic: str, value: bytes, key: str) -> None:
    producer = AIOKafkaProducer(**stack_config.kafka_access.client_options())
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()
