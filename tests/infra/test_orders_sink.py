"""The JDBC sink path: Connect JSON records on `orders` become exactly one row per order in mydb.orders."""

import asyncio
import random
import time
import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from launcher import connect, mariadb
from launcher.processes import kill, stop
from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import as_utc, now_ms
from order_contract.topics import ORDERS_TOPIC
from servicekit.config import ServiceSettings
from servicekit.kafka import KafkaAccess, transactional_producer
from servicekit.testing import DictConnection, database, eventually
from stack_description import connectors
from stack_description.settings import StackConfig

pytestmark = pytest.mark.stack

DEAD_LETTER_TOPIC = "orders-dlq"


# Settled by default: a PENDING order here has no stock request, so order-service's expirer would settle it EXPIRED
# after ORDER_DEADLINE_SECONDS and change the last value under the test (the sink alone is under test).
def make_order(run: str, number: int, status: OrderStatus = OrderStatus.REJECTED, qty: int = 1) -> Order:
    unit_price = 100 + number % 50
    return Order(
        order_id=f"sink-{run}-{number:06d}",
        user_id=f"user-{number % 17}",
        product_id=f"SINK-P{number % 3 + 1}",  # not a catalog product: the sink alone is under test
        qty=qty,
        unit_price=unit_price,
        total_price=qty * unit_price,
        status=status,
        created_at=now_ms(),
    )


async def publish(producer: AIOKafkaProducer, records: list[tuple[bytes, bytes]]) -> None:
    """Send a batch in one transaction, as order-service does."""
    async with producer.transaction():
        for key, value in records:
            await producer.send(ORDERS_TOPIC, key=key, value=value)


def rows_of_run(db: DictConnection, run: str) -> dict[str, dict[str, Any]]:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT order_id, user_id, product_id, qty, unit_price, total_price, status, created_at FROM orders"
            " WHERE order_id LIKE %s",
            (f"sink-{run}-%",),
        )
        return {row["order_id"]: row for row in cursor.fetchall()}


def row_of(order: Order) -> dict[str, Any]:
    """The row the sink should write: the record's payload, created_at as a UTC DATETIME(3)."""
    payload: dict[str, Any] = orjson.loads(order_record_value(order))["payload"]
    payload["created_at"] = as_utc(order.created_at).replace(tzinfo=None)
    return payload


def duplicate_count(db: DictConnection, run: str) -> int:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) AS n FROM (SELECT order_id FROM orders WHERE order_id LIKE %s"
            " GROUP BY order_id HAVING COUNT(*) > 1) AS twice",
            (f"sink-{run}-%",),
        )
        counted = cursor.fetchone()
    assert counted is not None
    n: int = counted["n"]
    return n


async def dead_letters_with_keys(kafka: KafkaAccess, keys: set[bytes], within: float) -> dict[bytes, dict[str, bytes]]:
    """Read the dead-letter topic from the start until every key in `keys` was seen; their headers by key."""
    found: dict[bytes, dict[str, bytes]] = {}
    consumer = AIOKafkaConsumer(
        DEAD_LETTER_TOPIC, **kafka.client_options(), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + within
        while set(found) != keys and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.key in keys:
                        found[record.key] = {name: value for name, value in record.headers}
    finally:
        await consumer.stop()
    return found


MALFORMED = {
    "not-json": b"this is not JSON at all",
    "no-schema": orjson.dumps({"order_id": "x", "qty": 1}),
    "wrong-type": orjson.dumps(
        {
            "schema": {
                "type": "struct",
                "name": "orders",
                "optional": False,
                "fields": [
                    {"field": "order_id", "type": "string", "optional": False},
                    {"field": "qty", "type": "int32", "optional": False},
                ],
            },
            "payload": {"order_id": "x", "qty": "many"},
        }
    ),
}


async def test_stream_with_resends_and_poison_records_leaves_one_row_per_order_with_last_values(
    stack_config: StackConfig, orders_db: DictConnection
) -> None:
    run = uuid.uuid4().hex[:10]
    kafka = stack_config.kafka_access
    orders = [make_order(run, n) for n in range(2000)]
    # 10% are sent again with other values; the sink must keep the last ones. Which, seeded by the run's id (in
    # every order id), so a failing run can be replayed.
    rng = random.Random(run)
    resent = [
        make_order(run, n, status=rng.choice([OrderStatus.CONFIRMED, OrderStatus.REJECTED]), qty=7)
        for n in rng.sample(range(2000), 200)
    ]
    poison_keys = {f"sink-{run}-bad-{name}".encode(): value for name, value in MALFORMED.items()}

    producer = transactional_producer(kafka, f"sink-test-{run}")
    await producer.start()
    try:
        records = [(order_record_key(o), order_record_value(o)) for o in orders]
        for start in range(0, len(records), 250):
            await publish(producer, records[start : start + 250])
        await publish(producer, list(poison_keys.items()))
        await publish(producer, [(order_record_key(o), order_record_value(o)) for o in resent])
    finally:
        await producer.stop()

    expected = {o.order_id: row_of(o) for o in orders}
    expected.update({o.order_id: row_of(o) for o in resent})
    await eventually(
        lambda: rows_of_run(orders_db, run) == expected,
        within=120,
        what="mydb.orders holds the last value of each order",
    )
    assert duplicate_count(orders_db, run) == 0

    dead = await dead_letters_with_keys(kafka, set(poison_keys), within=60)
    assert set(dead) == set(poison_keys), "every malformed record is on the dead-letter topic"
    for headers in dead.values():
        assert "__connect.errors.exception.class.name" in headers, "the error travels with the record"
    assert connect.connector_running(stack_config, connectors.SINK_CONNECTOR)


async def test_connect_worker_killed_mid_stream_still_leaves_exactly_one_row_per_order(
    stack_config: StackConfig, orders_db: DictConnection
) -> None:
    run = uuid.uuid4().hex[:10]
    kafka = stack_config.kafka_access
    orders = [make_order(run, n) for n in range(1500)]
    confirmed = [o.with_status(OrderStatus.CONFIRMED) for o in orders[::3]]
    stream = [(order_record_key(o), order_record_value(o)) for o in [*orders, *confirmed]]

    producer = transactional_producer(kafka, f"sink-test-{run}")
    await producer.start()
    try:
        third = len(stream) // 3
        await publish(producer, stream[:third])
        # The sink is mid-stream: some rows are written, the rest are not.
        await eventually(lambda: rows_of_run(orders_db, run), within=60, what="the sink started writing this run")
        await asyncio.to_thread(kill, connect.component(stack_config))
        for start in range(third, 2 * third, 200):
            await publish(producer, stream[start : start + 200])
        await asyncio.to_thread(connect.ensure_running, stack_config)
        for start in range(2 * third, len(stream), 200):
            await publish(producer, stream[start : start + 200])
    finally:
        await producer.stop()

    expected = {o.order_id: row_of(o) for o in orders}
    expected.update({o.order_id: row_of(o) for o in confirmed})
    await eventually(
        lambda: rows_of_run(orders_db, run) == expected, within=180, what="every order written once, last values"
    )
    assert duplicate_count(orders_db, run) == 0
    assert connect.connector_running(stack_config, connectors.SINK_CONNECTOR)


async def test_database_down_mid_stream_loses_nothing_and_the_sink_runs_again(
    stack_config: StackConfig, settings: ServiceSettings
) -> None:
    run = uuid.uuid4().hex[:10]
    orders = [make_order(run, n) for n in range(900)]
    records = [(order_record_key(o), order_record_value(o)) for o in orders]
    producer = transactional_producer(stack_config.kafka_access, f"sink-test-{run}")
    await producer.start()
    try:
        await publish(producer, records[:300])
        with database(settings, stack_config.get("ORDERS_DB")) as before_outage:
            await eventually(
                lambda: rows_of_run(before_outage, run), within=60, what="the sink started writing this run"
            )
        await asyncio.to_thread(stop, mariadb.component(stack_config))
        await publish(producer, records[300:600])
        # An outage longer than Debezium's default retries (5 x 1 s), which would have failed the task.
        await asyncio.sleep(12)
        await asyncio.to_thread(mariadb.up, stack_config)
        await publish(producer, records[600:])
    finally:
        await producer.stop()

    expected = {o.order_id: row_of(o) for o in orders}
    with database(settings, stack_config.get("ORDERS_DB")) as after_outage:
        await eventually(
            lambda: rows_of_run(after_outage, run) == expected,
            within=120,
            what="all 900 orders written after the outage",
        )
    # A write cut off by the outage fails its task (Debezium does not retry that); the watchdog restarts it.
    await eventually(
        lambda: connect.connector_running(stack_config, connectors.SINK_CONNECTOR),
        within=30,
        what="connector and tasks RUNNING",
    )


async def test_a_sink_task_failed_by_the_database_is_restarted_by_the_watchdog_and_catches_up(
    stack_config: StackConfig, settings: ServiceSettings
) -> None:
    run = uuid.uuid4().hex[:10]
    orders = [make_order(run, n) for n in range(30)]
    db = database(settings, stack_config.get("ORDERS_DB"))
    producer = transactional_producer(stack_config.kafka_access, f"sink-test-{run}")
    await producer.start()
    try:
        with db.cursor() as cursor:
            cursor.execute("RENAME TABLE orders TO orders_hidden_by_test")
        try:
            await publish(producer, [(order_record_key(o), order_record_value(o)) for o in orders])
            await eventually(
                lambda: not connect.connector_running(stack_config, connectors.SINK_CONNECTOR),
                within=60,
                what="a FAILED task",
            )
        finally:
            with db.cursor() as cursor:
                cursor.execute("RENAME TABLE orders_hidden_by_test TO orders")
    finally:
        await producer.stop()

    expected = {o.order_id: row_of(o) for o in orders}
    await eventually(lambda: rows_of_run(db, run) == expected, within=60, what="the restarted task wrote every order")
    await eventually(
        lambda: connect.connector_running(stack_config, connectors.SINK_CONNECTOR), within=30, what="all tasks RUNNING"
    )
    db.close()


def poisoned(order: Order, kind: str) -> bytes:
    """A record of `order` broken the way `kind` says (what OrderRecordGuard must send to orders-dlq)."""
    if kind == "not-json":
        return b"{not json"
    record = orjson.loads(order_record_value(order))
    fields, payload = record["schema"]["fields"], record["payload"]
    if kind == "extra-id":
        fields.append({"field": "id", "type": "int64", "optional": False})
        payload["id"] = 1
    elif kind == "extra-field":
        fields.append({"field": "coupon", "type": "string", "optional": True})
        payload["coupon"] = "FREE"
    elif kind == "year-10000":
        payload["created_at"] = 253_402_300_800_000  # 10000-01-01T00:00:00Z in epoch ms
    elif kind == "year-minus-1":
        payload["created_at"] = -62_198_755_200_000  # -0001-01-01T00:00:00Z
    elif kind == "wrong-total":
        payload["total_price"] = payload["total_price"] + 1
    elif kind == "wrong-status":
        payload["status"] = "SHIPPED"
    return orjson.dumps(record)


# Each kind, and what the reason on the dead letter names.
POISON_KINDS = {
    "extra-id": "fields must be exactly",
    "extra-field": "fields must be exactly",
    "year-10000": "created_at must be within",
    "year-minus-1": "created_at must be within",
    "wrong-total": "total_price must be qty x unit_price",
    "wrong-status": "status must be one of",
    "not-json": "Converting byte[] to Kafka Connect data failed",  # the converter, before the guard
}


async def test_each_poison_record_kind_goes_to_the_dlq_with_a_reason_and_the_next_record_lands(
    stack_config: StackConfig, orders_db: DictConnection
) -> None:
    run = uuid.uuid4().hex[:10]
    kafka = stack_config.kafka_access
    goods = {kind: make_order(run, number) for number, kind in enumerate(POISON_KINDS)}
    poison_keys = {kind: f"sink-{run}-poison-{kind}".encode() for kind in POISON_KINDS}
    producer = transactional_producer(kafka, f"sink-test-{run}")
    await producer.start()
    try:
        for kind, good in goods.items():
            await publish(producer, [(poison_keys[kind], poisoned(make_order(run, 900 + len(kind)), kind))])
            await publish(producer, [(order_record_key(good), order_record_value(good))])
    finally:
        await producer.stop()

    stopped: list[float] = []

    def all_good_rows_while_tasks_run() -> bool:
        if not connect.connector_running(stack_config, connectors.SINK_CONNECTOR):
            stopped.append(time.monotonic())
        return rows_of_run(orders_db, run) == {o.order_id: row_of(o) for o in goods.values()}

    await eventually(
        all_good_rows_while_tasks_run, within=90, what="every good record behind a poison one is in mydb.orders"
    )
    assert not stopped, "a sink task was not RUNNING while the poison records passed"
    dead = await dead_letters_with_keys(kafka, set(poison_keys.values()), within=60)
    for kind, reason in POISON_KINDS.items():
        headers = dead.get(poison_keys[kind])
        assert headers is not None, f"{kind} is not on {DEAD_LETTER_TOPIC}"
        message = headers.get("__connect.errors.exception.message", b"").decode()
        assert reason in message, f"{kind}: the reason says {message!r}"
    assert connect.connector_running(stack_config, connectors.SINK_CONNECTOR)


async def test_a_record_the_database_refuses_goes_to_the_dlq_and_its_partition_moves_on(
    stack_config: StackConfig, settings: ServiceSettings
) -> None:
    """The guard cannot know every rule of the table: here a CHECK constraint added for the test refuses one
    product. The sink fails on that record after each restart; the watchdog moves it to orders-dlq and the
    records behind it in the same partition land, once."""
    run = uuid.uuid4().hex[:10]
    refused_product = f"REFUSED-{run}"
    before, after = make_order(run, 1), make_order(run, 2)
    refused = Order(**{**make_order(run, 3).__dict__, "product_id": refused_product[:64]})
    db = database(settings, stack_config.get("ORDERS_DB"))
    constraint = f"refuse_{run}"
    with db.cursor() as cursor:
        cursor.execute(f"ALTER TABLE orders ADD CONSTRAINT {constraint} CHECK (product_id <> %s)", (refused_product,))
    producer = transactional_producer(stack_config.kafka_access, f"sink-test-{run}")
    await producer.start()
    try:
        async with producer.transaction():
            for order in (before, refused, after):  # one partition, in this order
                await producer.send(ORDERS_TOPIC, order_record_value(order), key=order_record_key(order), partition=0)
        expected = {o.order_id: row_of(o) for o in (before, after)}
        await eventually(
            lambda: rows_of_run(db, run) == expected, within=120, what="the records around the refused one are written"
        )
        dead = await dead_letters_with_keys(stack_config.kafka_access, {order_record_key(refused)}, within=30)
    finally:
        await producer.stop()
        with db.cursor() as cursor:
            cursor.execute(f"ALTER TABLE orders DROP CONSTRAINT {constraint}")
    headers = dead[order_record_key(refused)]
    assert constraint.encode() in headers["__connect.errors.exception.message"]
    assert headers["__connect.errors.topic"] == b"orders"
    assert duplicate_count(db, run) == 0
    await eventually(
        lambda: connect.connector_running(stack_config, connectors.SINK_CONNECTOR), within=30, what="all tasks RUNNING"
    )
    db.close()
