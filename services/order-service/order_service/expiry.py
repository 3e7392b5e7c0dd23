"""Saga deadlines: an order nobody answered within ORDER_DEADLINE_SECONDS is settled as EXPIRED, exactly once.

The order-service instances share one consumer group on `orders` (read_committed), so each partition has one
owner. The owner keeps the partition's PENDING orders that have no outcome yet. Once an order is past its
deadline plus a grace, the owner asks for the partition's end offset, reads up to it (an answer committed before
that moment is then seen, and the order dropped), and publishes what is still unanswered, in ONE transaction:

- the order as EXPIRED on `orders` (same key, same partition: the sink writes it over the PENDING row);
- an expiry notice on `example-catalog-topic` (same key as the stock request, so after it on its partition):
  catalog-service takes back an answer it gave too late (README, "Saga deadlines");
- the group's offset for the partition: the oldest order still waiting, so a new owner sees it again.

Each partition has its own transactional id, taken by its owner when the partition is assigned: a former owner
still sending (a zombie after a rebalance) is fenced, its open transaction aborted, so no order is expired twice.
"""

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.stock_request import expiry_notice_value, stock_request_key
from order_contract.timestamps import now_ms
from order_contract.topics import ORDERS_TOPIC, STOCK_TOPIC
from order_service.expiry_rules import Deadline, WaitingOrders
from servicekit.kafka import KafkaAccess, committed_consumer, fresh_producer
from servicekit.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ORDERS_EXPIRED = Counter("orders_expired_total", "Orders this instance settled as EXPIRED (no answer in time)")
WAITING = Gauge("orders_awaiting_outcome", "PENDING orders without an outcome on this instance's orders partitions")

EXPIRY_GROUP = "order-service-expiry"
# How often an idle owner commits how far it has read (the oldest waiting order's offset).
COMMIT_INTERVAL_SECONDS = 5.0


@dataclass
class _Partition:
    """One owned partition of `orders`: its producer, and its PENDING orders without an outcome (expiry_rules)."""

    transactional_id: str
    producer: AIOKafkaProducer
    waiting: WaitingOrders = field(default_factory=WaitingOrders)
    # Set when an order there is overdue: the end offset to read up to before expiring, and when it was asked.
    barrier: tuple[int, dt.datetime] | None = None
    committed: int = -1


class OrderExpirer:
    def __init__(
        self, kafka: KafkaAccess, *, deadline_seconds: float, grace_seconds: float, transactional_prefix: str
    ) -> None:
        self.kafka = kafka
        self.deadline = Deadline(deadline_seconds, dt.timedelta(seconds=grace_seconds))
        self.transactional_prefix = transactional_prefix
        self._consumer: AIOKafkaConsumer | None = None
        self._owned: dict[TopicPartition, _Partition] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = committed_consumer(self.kafka, group_id=EXPIRY_GROUP)
        self._consumer.subscribe([ORDERS_TOPIC])
        await self._consumer.start()
        self._task = asyncio.create_task(self._run_forever(), name="order-expirer")
        self._task.add_done_callback(_report_end)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        if self._consumer is not None:
            await self._consumer.stop()
        await self._release(list(self._owned))

    def waiting(self) -> int:
        return sum(len(partition.waiting) for partition in self._owned.values())

    async def _follow_assignment(self) -> None:
        """Own exactly the partitions the group gives this consumer now. Read from the consumer between two steps
        of the loop (not in a rebalance callback, which can run while a transaction is in flight), and before the
        records just polled are read: a record of a partition not owned yet would be dropped and its offset passed."""
        assert self._consumer is not None
        assigned = set(self._consumer.assignment())
        lost = [tp for tp in self._owned if tp not in assigned]
        new = [tp for tp in assigned if tp not in self._owned]
        await self._release(lost)
        for tp in new:
            # Starting the producer fences the former owner's transactions on this partition, before anything
            # read from it here can lead to a decision.
            transactional_id = f"{self.transactional_prefix}{tp.topic}-{tp.partition}"
            self._owned[tp] = _Partition(transactional_id, await fresh_producer(self.kafka, transactional_id))
        if lost or new:
            owned = sorted(tp.partition for tp in self._owned)
            log.info("orders partitions owned for expiry", extra={"partitions": owned})

    async def _release(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            owned = self._owned.pop(tp, None)
            if owned is not None:
                await owned.producer.stop()
        WAITING.set(self.waiting())

    async def _run_forever(self) -> None:
        assert self._consumer is not None
        last_commit = asyncio.get_running_loop().time()
        while True:
            try:
                polled = await self._consumer.getmany(timeout_ms=500, max_records=2000)
                await self._follow_assignment()
                self._read(polled)
                await self._expire_overdue()
                if asyncio.get_running_loop().time() - last_commit >= COMMIT_INTERVAL_SECONDS:
                    await self._commit_read_positions()
                    last_commit = asyncio.get_running_loop().time()
                WAITING.set(self.waiting())
            except asyncio.CancelledError:
                raise
            except Exception:
                # Nothing is lost: the orders still waiting are read again from the committed offsets if need be.
                log.exception("expiry pass failed; trying again")
                await asyncio.sleep(1.0)

    def _read(self, polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Note the polled records in their partition's waiting orders (those of a partition not owned are skipped)."""
        for tp, records in polled.items():
            owned = self._owned.get(tp)
            if owned is not None:
                for record in records:
                    owned.waiting.read(record.value, record.offset)

    async def _expire_overdue(self) -> None:
        assert self._consumer is not None
        now = now_ms()
        for tp, owned in list(self._owned.items()):
            if owned.barrier is None:
                if owned.waiting.overdue(self.deadline, now):
                    # Read up to the end as of now: any answer committed before this moment is seen first.
                    end = (await self._consumer.end_offsets([tp]))[tp]
                    owned.barrier = (end, now)
                continue
            end, asked_at = owned.barrier
            if await self._consumer.position(tp) < end:
                continue
            overdue = owned.waiting.overdue(self.deadline, asked_at)
            owned.barrier = None
            if overdue and self._owned.get(tp) is owned:
                await self._publish_expired(tp, owned, overdue)

    async def _publish_expired(self, tp: TopicPartition, owned: _Partition, overdue: list[Order]) -> None:
        expiring = {order.order_id for order in overdue}
        commit_at = await self._restart_offset(tp, owned, settled=expiring)
        try:
            async with owned.producer.transaction():
                for order in overdue:
                    expired = order.with_status(OrderStatus.EXPIRED)
                    await owned.producer.send(ORDERS_TOPIC, order_record_value(expired), key=order_record_key(expired))
                    await owned.producer.send(STOCK_TOPIC, expiry_notice_value(expired), key=stock_request_key(expired))
                await owned.producer.send_offsets_to_transaction({tp: commit_at}, EXPIRY_GROUP)
        except Exception:
            # Fenced (the partition moved on) or the broker away: the owner, this one or the next, reads them again.
            log.exception("expiry not published; the partition's owner will try again", extra={"orders": len(overdue)})
            if self._owned.get(tp) is owned:  # still ours: a clean producer (a former one's would fence the owner)
                owned.producer = await fresh_producer(self.kafka, owned.transactional_id, owned.producer)
            return
        owned.waiting.settle(expiring)
        owned.committed = commit_at
        ORDERS_EXPIRED.inc(len(overdue))
        for order in overdue:
            log.info("order expired: no answer within its deadline", extra={"order_id": order.order_id})

    async def _restart_offset(
        self, tp: TopicPartition, owned: _Partition, settled: frozenset[str] | set[str] = frozenset()
    ) -> int:
        """Where a new owner of `tp` must start: the oldest order still waiting (but `settled`), or where this one
        has read to."""
        assert self._consumer is not None
        return owned.waiting.restart_offset(int(await self._consumer.position(tp)), settled)

    async def _commit_read_positions(self) -> None:
        assert self._consumer is not None
        offsets = {}
        for tp, owned in self._owned.items():
            commit_at = await self._restart_offset(tp, owned)
            if commit_at > owned.committed:
                offsets[tp] = commit_at
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.info("expiry read positions not committed (%s); next time", type(exc).__name__)
            return
        for tp, commit_at in offsets.items():
            if tp in self._owned:
                self._owned[tp].committed = commit_at


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the order expirer stopped", exc_info=task.exception())
