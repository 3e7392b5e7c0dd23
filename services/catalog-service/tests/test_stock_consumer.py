"""StockRequestConsumer on real Kafka (this run's own topics) and the real catalogdb."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service.config import CatalogSettings
from catalog_service.messaging import StockRequestConsumer
from catalog_service.service import StockLedger
from order_contract.connect_record import order_from_record_value
from order_contract.order import Order, OrderStatus
from order_contract.stock_request import expiry_notice_value, stock_request_key, stock_request_value
from servicekit.kafka import transactional_producer
from servicekit.testing import Record, TopicReader, eventually

pytestmark = pytest.mark.stack

NewProduct = Callable[..., Awaitable[str]]
StockOf = Callable[[str], Awaitable[int]]
PendingOrder = Callable[..., Order]
StartConsumer = Callable[..., Awaitable[StockRequestConsumer]]


def outcomes_of(records: list[Record]) -> dict[str, list[OrderStatus]]:
    found: dict[str, list[OrderStatus]] = {}
    for record in records:
        order = order_from_record_value(record.value)
        assert record.key == order.order_id.encode()
        found.setdefault(order.order_id, []).append(order.status)
    return found


async def send_stock_request(
    producer: AIOKafkaProducer, topic: str, order: Order, partition: int | None = None
) -> None:
    await producer.send_and_wait(topic, stock_request_value(order), key=stock_request_key(order), partition=partition)


async def test_ten_redeliveries_of_a_stock_message_are_applied_once(
    topics: CatalogSettings,
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=10)
    order = pending_order(product_id, qty=3)
    await start_consumer()
    async with TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes:
        for _ in range(10):
            await send_stock_request(producer, topics.stock_topic, order)

        records = await outcomes.read_until(
            lambda rs: len(outcomes_of(rs).get(order.order_id, [])) == 10, within=30, what="10 outcomes"
        )

    assert outcomes_of(records)[order.order_id] == [OrderStatus.CONFIRMED] * 10
    assert await stock_of(product_id) == 7


async def test_an_order_larger_than_the_stock_is_published_rejected_and_stock_unchanged(
    topics: CatalogSettings,
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=4)
    order = pending_order(product_id, qty=5)
    await start_consumer()
    async with TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes:
        await send_stock_request(producer, topics.stock_topic, order)
        records = await outcomes.read_until(lambda rs: order.order_id in outcomes_of(rs), within=30, what="the outcome")

    assert outcomes_of(records)[order.order_id] == [OrderStatus.REJECTED]
    published = order_from_record_value(records[-1].value)
    assert (published.qty, published.total_price, published.created_at) == (5, 500, order.created_at)
    assert await stock_of(product_id) == 4


async def test_two_consumers_racing_on_one_product_never_oversell(
    topics: CatalogSettings,
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=30)
    orders = [pending_order(product_id, qty=1) for _ in range(45)]
    group = f"{topics.consumer_group}-race-{uuid.uuid4().hex[:6]}"
    consumers = [await start_consumer(group=group, instance="a"), await start_consumer(group=group, instance="b")]
    await eventually(
        lambda: _both_assigned(consumers), within=30, what="both consumers to own partitions of the stock topic"
    )

    async with TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes:
        # Every order twice, on different partitions (so on different consumers): they race on the stock row
        # and on the ledger row. The key is not the product here on purpose: we want the partitions spread.
        sends = []
        for number, order in enumerate(orders):
            sends.append(send_stock_request(producer, topics.stock_topic, order, partition=number % 3))
            sends.append(send_stock_request(producer, topics.stock_topic, order, partition=(number + 1) % 3))
        await asyncio.gather(*sends)
        records = await outcomes.read_until(
            lambda rs: sum(len(s) for s in outcomes_of(rs).values()) >= 2 * len(orders),
            within=60,
            what="every order's outcome twice",
        )

    by_order = outcomes_of(records)
    assert all(len(set(statuses)) == 1 for statuses in by_order.values())  # both deliveries agree
    confirmed = [order_id for order_id, statuses in by_order.items() if statuses[0] is OrderStatus.CONFIRMED]
    assert len(confirmed) == 30
    assert await stock_of(product_id) == 0


async def _both_assigned(consumers: list[StockRequestConsumer]) -> bool:
    return all(consumer.assignment() for consumer in consumers)


def poison_values(kind: str, template: bytes) -> list[bytes]:
    """Stock requests catalog-service must dead-letter; `template` is a valid one to break."""
    if kind == "unparseable":
        return [b'{"orderId": "x", "qty": "lots"' + uuid.uuid4().hex.encode()]
    # Near year 1 or 9999 a date parses but cannot be made UTC or stored: poison, not a reason to retry forever.
    moment = template.split(b'"createdAt":"')[1].split(b'"')[0]
    return [template.replace(moment, date) for date in (b"0001-01-01T00:00:00+05:00", b"9999-12-31T23:59:59-05:00")]


@pytest.mark.parametrize("kind", ["unparseable", "dated-out-of-range"])
async def test_a_poison_stock_request_goes_to_the_dead_letter_topic_and_the_consumer_keeps_going(
    kind: str,
    topics: CatalogSettings,
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=5)
    order = pending_order(product_id, qty=1)
    poison = poison_values(kind, stock_request_value(pending_order(product_id, qty=1)))
    await start_consumer()
    async with (
        TopicReader(topics.kafka_access, topics.dead_letter_topic) as dead_letters,
        TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes,
    ):
        for value in poison:
            await producer.send_and_wait(topics.stock_topic, value, key=product_id.encode())
        await send_stock_request(producer, topics.stock_topic, order)

        dead = await dead_letters.read_until(
            lambda rs: all(any(r.value == value for r in rs) for value in poison), within=30, what="the dead letters"
        )
        records = await outcomes.read_until(
            lambda rs: order.order_id in outcomes_of(rs), within=30, what="the next order's outcome"
        )

    for value in poison:
        headers = dict(next(r for r in dead if r.value == value).headers)
        assert b"not a stock request" in headers["error.message"]
        assert headers["source.topic"] == topics.stock_topic.encode()
    assert outcomes_of(records)[order.order_id] == [OrderStatus.CONFIRMED]


async def test_an_expiry_notice_with_a_wrong_qty_or_product_changes_no_stock(
    topics: CatalogSettings,
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id, other_product = await new_product(stock=10), await new_product(stock=5)
    order = pending_order(product_id, qty=2)
    # The notice names the order but claims more stock, of another product.
    forgery = replace(order, product_id=other_product, qty=50, total_price=50 * order.unit_price)
    after = pending_order(other_product, qty=1)  # read after the forgeries: they are handled by then
    await start_consumer()
    async with (
        TopicReader(topics.kafka_access, topics.dead_letter_topic) as dead_letters,
        TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes,
    ):
        await send_stock_request(producer, topics.stock_topic, order)
        await outcomes.read_until(lambda rs: order.order_id in outcomes_of(rs), within=30, what="the confirmation")
        for _ in range(2):  # and redelivered
            await producer.send_and_wait(
                topics.stock_topic, expiry_notice_value(forgery), key=stock_request_key(forgery)
            )
        await send_stock_request(producer, topics.stock_topic, after)
        records = await outcomes.read_until(
            lambda rs: after.order_id in outcomes_of(rs), within=30, what="the outcome of the request after them"
        )
        dead = await dead_letters.read_to_end()

    assert (await stock_of(product_id), await stock_of(other_product)) == (10, 5 - 1)
    assert outcomes_of(records)[order.order_id] == [OrderStatus.CONFIRMED, OrderStatus.EXPIRED]
    expired = [order_from_record_value(r.value) for r in records if r.key == order.order_id.encode()][-1]
    assert (expired.product_id, expired.qty) == (product_id, 2)  # the ledger's, not the notice's
    assert dead == []  # well-formed: answered from the ledger, not dead-lettered


class LedgerFailingOn(StockLedger):
    """The real ledger, except that any poll holding `order_id` fails (a bug no retry can fix)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], order_id: str) -> None:
        super().__init__(sessions)
        self.order_id = order_id
        self.failures = 0

    async def apply_all(self, orders: list[Order]) -> list[Order]:
        if any(order.order_id == self.order_id for order in orders):
            self.failures += 1
            raise ValueError(f"cannot apply {self.order_id}")
        return await super().apply_all(orders)


async def test_a_request_that_keeps_failing_is_dead_lettered_and_its_neighbours_are_answered(
    topics: CatalogSettings,
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    pending_order: PendingOrder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    product_id = await new_product(stock=10)
    before, doomed, after = (pending_order(product_id, qty=1) for _ in range(3))
    ledger = LedgerFailingOn(sessions, doomed.order_id)
    async with (
        TopicReader(topics.kafka_access, topics.dead_letter_topic) as dead_letters,
        TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes,
    ):
        for order in (before, doomed, after):  # one partition (keyed by product), in this order
            await send_stock_request(producer, topics.stock_topic, order)
        await start_consumer(ledger=ledger)
        dead = await dead_letters.read_until(
            lambda rs: any(r.value == stock_request_value(doomed) for r in rs), within=60, what="the dead letter"
        )
        records = await outcomes.read_until(
            lambda rs: {before.order_id, after.order_id} <= set(outcomes_of(rs)), within=30, what="the neighbours"
        )

    headers = dict(next(r for r in dead if r.value == stock_request_value(doomed)).headers)
    assert headers["error.class"] == b"ValueError"
    assert doomed.order_id.encode() in headers["error.message"]
    answered = outcomes_of(records)
    assert answered[before.order_id] == answered[after.order_id] == [OrderStatus.CONFIRMED]
    assert doomed.order_id not in answered
    assert ledger.failures >= 3, "tried as a poll several times before it was narrowed down"


class LedgerRefusedByTheDatabaseOn(StockLedger):
    """The real ledger, except that MariaDB itself refuses any poll holding `order_id` with an error pymysql has no
    class for (4025, a CHECK constraint: OperationalError, like a lost connection), every time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], order_id: str) -> None:
        super().__init__(sessions)
        self.sessions = sessions
        self.order_id = order_id
        self.failures = 0

    async def apply_all(self, orders: list[Order]) -> list[Order]:
        if any(order.order_id == self.order_id for order in orders):
            self.failures += 1
            async with self.sessions() as session:
                await session.execute(
                    text("SIGNAL SQLSTATE '23000' SET MYSQL_ERRNO = 4025, MESSAGE_TEXT = 'CONSTRAINT `stock` failed'")
                )
        return await super().apply_all(orders)


async def test_a_request_the_database_keeps_refusing_is_dead_lettered_not_retried_forever(
    topics: CatalogSettings,
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    pending_order: PendingOrder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    product_id = await new_product(stock=10)
    before, doomed, after = (pending_order(product_id, qty=1) for _ in range(3))
    ledger = LedgerRefusedByTheDatabaseOn(sessions, doomed.order_id)
    async with (
        TopicReader(topics.kafka_access, topics.dead_letter_topic) as dead_letters,
        TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes,
    ):
        for order in (before, doomed, after):  # one partition (keyed by product), in this order
            await send_stock_request(producer, topics.stock_topic, order)
        consumer = await start_consumer(ledger=ledger)
        dead = await dead_letters.read_until(
            lambda rs: any(r.value == stock_request_value(doomed) for r in rs), within=60, what="the dead letter"
        )
        records = await outcomes.read_until(
            lambda rs: {before.order_id, after.order_id} <= set(outcomes_of(rs)), within=30, what="the neighbours"
        )

    headers = dict(next(r for r in dead if r.value == stock_request_value(doomed)).headers)
    assert headers["error.class"] == b"OperationalError"
    assert b"4025" in headers["error.message"]
    answered = outcomes_of(records)
    assert answered[before.order_id] == answered[after.order_id] == [OrderStatus.CONFIRMED]
    assert doomed.order_id not in answered
    assert consumer.assignment(), "the consumer keeps running"


async def test_an_order_applied_before_a_crash_is_republished_with_its_recorded_outcome(
    topics: CatalogSettings,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=6)
    order = pending_order(product_id, qty=2)
    # The database commit happened, then the process died before publishing the outcome and the offset.
    await StockLedger(sessions).apply_all([order])
    await start_consumer()
    async with TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes:
        await send_stock_request(producer, topics.stock_topic, order)
        records = await outcomes.read_until(lambda rs: order.order_id in outcomes_of(rs), within=30, what="the outcome")

    assert outcomes_of(records)[order.order_id] == [OrderStatus.CONFIRMED]
    assert await stock_of(product_id) == 4


async def test_a_restarted_consumer_resumes_after_its_committed_offsets(
    topics: CatalogSettings,
    producer: AIOKafkaProducer,
    start_consumer: StartConsumer,
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=10)
    first, second = pending_order(product_id, qty=1), pending_order(product_id, qty=2)
    group = f"{topics.consumer_group}-restart-{uuid.uuid4().hex[:6]}"
    async with TopicReader(topics.kafka_access, topics.outcome_topic) as outcomes:
        before = await start_consumer(group=group, instance="r")
        await send_stock_request(producer, topics.stock_topic, first)
        await outcomes.read_until(lambda rs: first.order_id in outcomes_of(rs), within=30, what="first outcome")
        await before.stop()

        await send_stock_request(producer, topics.stock_topic, second)
        await start_consumer(group=group, instance="r")
        records = await outcomes.read_until(
            lambda rs: second.order_id in outcomes_of(rs), within=30, what="second outcome"
        )

    # Resumed after the first order's committed offset: its outcome was published once, not again.
    assert outcomes_of(records)[first.order_id] == [OrderStatus.CONFIRMED]
    assert outcomes_of(records)[second.order_id] == [OrderStatus.CONFIRMED]
    assert await stock_of(product_id) == 7


async def test_an_idle_consumer_commits_its_position_past_the_transaction_markers(
    topics: CatalogSettings, start_consumer: StartConsumer, new_product: NewProduct, pending_order: PendingOrder
) -> None:
    """Stock requests come in transactions: the commit marker after the last one takes an offset but holds no
    record. Once idle, the group's committed offset reaches the end, so a lag monitor sees no lag left."""
    product_id = await new_product(stock=10)
    consumer = await start_consumer()
    sender = transactional_producer(topics.kafka_access, f"test-sender-{uuid.uuid4().hex[:8]}")
    await sender.start()
    try:
        async with sender.transaction():
            order = pending_order(product_id, qty=1)
            await sender.send(topics.stock_topic, stock_request_value(order), key=stock_request_key(order), partition=0)
    finally:
        await sender.stop()
    partition = TopicPartition(topics.stock_topic, 0)
    reader = AIOKafkaConsumer(**topics.kafka_access.client_options(), isolation_level="read_committed")
    admin = AIOKafkaAdminClient(**topics.kafka_access.client_options())
    await reader.start()
    await admin.start()
    try:
        end = (await reader.end_offsets([partition]))[partition]

        async def committed() -> int | None:
            offsets = await admin.list_consumer_group_offsets(consumer.group_id, partitions=[partition])
            found = offsets.get(partition)
            return found.offset if found is not None and found.offset == end else None

        assert end == 2  # the record and its transaction's commit marker
        assert await eventually(committed, within=20, what="the idle consumer's commit at the end offset") == end
    finally:
        await reader.stop()
        await admin.close()
