"""OrderPublisher with the real Kafka: how long a request may wait for the transaction carrying its order."""

import asyncio
import uuid
from dataclasses import replace

import pytest

from order_contract.connect_record import order_from_record_value
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from order_contract.topics import ORDERS_TOPIC
from order_service.config import OrderSettings
from order_service.messaging import OrderPublisher, PublishFailed
from servicekit.kafka import fresh_producer
from servicekit.testing import TopicReader

pytestmark = pytest.mark.stack

COMMIT_TIMEOUT = 0.3
ORDERS = 600


async def test_orders_not_committed_in_time_fail_promptly_and_those_still_queued_are_never_published(
    settings: OrderSettings,
) -> None:
    # One lane, one order per transaction: the queue backs up far beyond what commits within the timeout.
    run = uuid.uuid4().hex[:8]
    publisher = OrderPublisher(
        settings.kafka_access,
        f"order-test-expiry-{run}",
        lanes=1,
        max_batch=1,
        commit_timeout=COMMIT_TIMEOUT,
    )
    orders = [
        Order(
            f"expiry-{run}-{n}",
            f"user-expiry-{run}",
            f"NO-SUCH-PRODUCT-{run}",
            1,
            100,
            100,
            OrderStatus.PENDING,
            now_ms(),
        )
        for n in range(ORDERS)
    ]
    loop = asyncio.get_running_loop()

    async def publish(order: Order) -> tuple[str, bool, float]:
        started = loop.time()
        try:
            await publisher.publish(order)
            return order.order_id, True, loop.time() - started
        except PublishFailed:
            return order.order_id, False, loop.time() - started

    await publisher.start()
    try:
        async with TopicReader(settings.kafka_access, ORDERS_TOPIC) as reader:
            outcomes = await asyncio.gather(*(publish(order) for order in orders))
            # The lane runs one transaction at a time: once a last order commits, the one left open has ended.
            last = replace(orders[0], order_id=f"expiry-{run}-last")
            await publisher.publish(last)
            # Its commit markers may still be on their way to the partitions: read until it is visible, then to
            # the end (every earlier transaction of the lane was complete before it began).
            await reader.read_until(
                lambda records: any(r.value and last.order_id.encode() in r.value for r in records),
                within=15,
                what=f"{last.order_id} visible to read_committed readers",
            )
            records = await reader.read_to_end()
    finally:
        await publisher.stop()

    committed = {order_from_record_value(r.value).order_id for r in records if r.value and run.encode() in r.value}
    succeeded = {order_id for order_id, ok, _ in outcomes if ok}
    failed = {order_id for order_id, ok, _ in outcomes if not ok}
    slowest = max(seconds for _, _, seconds in outcomes)

    assert succeeded and failed, f"{len(succeeded)} committed in time, {len(failed)} failed"
    assert slowest < COMMIT_TIMEOUT + 1.0, f"a publish took {slowest:.2f} s with a {COMMIT_TIMEOUT} s timeout"
    assert succeeded <= committed
    assert publisher.expired_orders == len(failed)
    # A failed order was still queued (never sent) or in the transaction open when its expiry pass ran, which is
    # aborted; only one whose commit request was out for a whole further timeout may still commit: one per pass.
    assert 1 <= publisher.expiry_passes <= 3, "the orders were queued together, so their deadlines pass together"
    assert len(failed & committed) <= publisher.expiry_passes, f"{len(failed & committed)} failed orders published"
    assert publisher.committed_orders == len(committed)


async def test_an_order_whose_transaction_kafka_refuses_goes_again_in_a_fresh_one_and_is_published_once(
    settings: OrderSettings,
) -> None:
    """A producer fenced before its first transaction (as when the coordinator times a transaction out, or a
    restarted instance takes over its id): the order still gets its 201, and is on `orders` exactly once."""
    run = uuid.uuid4().hex[:8]
    publisher = OrderPublisher(settings.kafka_access, f"order-test-fenced-{run}", lanes=1, commit_timeout=10.0)
    order = Order(
        f"fenced-{run}", f"user-fenced-{run}", f"NO-SUCH-PRODUCT-{run}", 1, 100, 100, OrderStatus.PENDING, now_ms()
    )
    await publisher.start()
    try:
        async with TopicReader(settings.kafka_access, ORDERS_TOPIC) as reader:
            # Another producer with the lane's transactional id: the publisher's producer is fenced from now on.
            usurper = await fresh_producer(settings.kafka_access, publisher.transactional_ids[0])
            await usurper.stop()

            position = await publisher.publish(order)

            await reader.read_until(
                lambda records: any(r.value and order.order_id.encode() in r.value for r in records),
                within=15,
                what=f"{order.order_id} visible to read_committed readers",
            )
            records = await reader.read_to_end()
    finally:
        await publisher.stop()

    # catalog-service answers on `orders` too (REJECTED: no such product): only the PENDING records are the publisher's.
    placed = [
        r
        for r in records
        if r.value
        and order.order_id.encode() in r.value
        and order_from_record_value(r.value).status is OrderStatus.PENDING
    ]
    assert [(r.partition, r.offset) for r in placed] == [(position.partition, position.offset)]
    assert publisher.committed_orders == 1
