"""Read your own writes: every instance answers as if it had taken every order itself.

The shared table shows an order once the JDBC sink has written it (about 100 ms after it was accepted, longer when
the sink is slow or stopped). Each instance therefore follows `orders` itself (read_committed, every partition,
no group) and keeps the orders whose latest record the table may not show yet. Reads merge that view with the
table; the view's record is never older than the table's row, so it wins.

- **Sync point** (etcd's ReadIndex, Kafka Streams' PositionBound): a read first asks the brokers for the end
  (high watermark) of every `orders` partition, then waits until the view has read up to it. Every record
  committed before the request arrived is then in the view or in the table. Not the last stable offset: a
  producer's commit returns once the coordinator has logged it, and the markers that move the last stable offset
  past its records may come a moment later; a read_committed reader passes the high watermark of the moment only
  once every transaction with records below it has ended. Concurrent reads share one ListOffsets request, always
  one sent after they arrived.
- **Eviction**: the sink's consumer group (`connect-orders-sink`) commits how far it has written; a record below
  that offset is in the table (or the sink refused it, and the table is the truth), so its entry leaves.
- **Caps**: at most `max_entries` orders (past it the oldest leave early, and reads say how many records the
  table does not show yet), and at most `sync_timeout` seconds of waiting. A read that could not be brought up to
  date answers anyway, with `X-Orders-Behind` saying how far behind it is.
- **Claims** (one Idempotency-Key, one order, on any instance): before publishing an order for a key, an instance
  writes a claim (order id, product, qty) to `order-claims` and reads that topic back up to it. The first claim of
  an order id on its partition wins, seen alike by every instance; a request whose body differs from it is a 422,
  and nothing of it is published.
"""

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Counter, Gauge, Histogram

from order_contract.connect_record import order_from_record_value
from order_contract.order import InvalidMessage, Order
from order_contract.topics import ORDER_CLAIMS_TOPIC, ORDERS_SINK_GROUP, ORDERS_TOPIC
from order_service.config import READ_SYNC_TIMEOUT_SECONDS, VIEW_MAX_ENTRIES
from servicekit.errors import DomainError
from servicekit.kafka import KafkaAccess
from servicekit.tasks import cancel_and_wait

log = logging.getLogger(__name__)

VIEW_ORDERS = Gauge("order_view_orders", "Orders this instance's view holds that the shared table may not show yet")
SYNC_SECONDS = Histogram(
    "order_read_sync_seconds",
    "From a read's arrival to the view holding every orders record committed before it",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5),
)
READS_BEHIND = Counter("order_reads_behind_total", "Reads answered before the view was up to date (X-Orders-Behind)")

POSITION_HEADER = "X-Order-Position"
BEHIND_HEADER = "X-Orders-Behind"


class InvalidPosition(DomainError):
    """400: a position no answer of this service carried."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{POSITION_HEADER}: {reason}", field=POSITION_HEADER)


@dataclass(frozen=True, slots=True)
class Position:
    """Where an order's record is on `orders`; clients see it as an opaque token."""

    partition: int
    offset: int

    def token(self) -> str:
        return base64.urlsafe_b64encode(f"o1:{self.partition}:{self.offset}".encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> "Position":
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            version, partition, offset = text.split(":")
            position = cls(int(partition), int(offset))
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise InvalidPosition("not a position this service gave out") from exc
        if version != "o1" or position.partition < 0 or position.offset < 0:
            raise InvalidPosition("not a position this service gave out")
        return position


@dataclass(frozen=True, slots=True)
class Freshness:
    """How up to date an answer is: `behind` committed records it may not reflect (0: all of them), None when the
    brokers could not say."""

    behind: int | None

    @property
    def header(self) -> str | None:
        if self.behind == 0:
            return None
        return "unknown" if self.behind is None else str(self.behind)


@dataclass(frozen=True, slots=True)
class Claim:
    """The first claim of an order id: the body it was made for, who made it, where, when (epoch ms)."""

    product_id: str
    qty: int
    instance: str
    partition: int
    offset: int
    timestamp_ms: int

    def same_body(self, product_id: str, qty: int) -> bool:
        return (self.product_id, self.qty) == (product_id, qty)


class _SyncPoints:
    """High watermarks, one request for all readers waiting at once; each reader gets an answer to a request
    sent after it arrived (a request in flight may predate it)."""

    def __init__(self, fetch: Callable[[], Awaitable[dict[TopicPartition, int]]]) -> None:
        self._fetch = fetch
        self._next: asyncio.Future[dict[TopicPartition, int]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def after_now(self) -> dict[TopicPartition, int]:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        joined = self._next
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._serve(), name="order-view-sync-points")
        return await asyncio.shield(joined)

    async def _serve(self) -> None:
        while self._next is not None:
            batch, self._next = self._next, None
            try:
                batch.set_result(await self._fetch())
            except Exception as exc:
                batch.set_exception(exc)
                batch.exception()  # retrieved: readers that gave up waiting leave no warning


@dataclass(slots=True)
class _Entry:
    order: Order
    offset: int


class OrderView:
    """This instance's view of `orders` beyond the table, and of `order-claims`."""

    EVICT_INTERVAL_SECONDS = 1.0

    def __init__(
        self,
        kafka: KafkaAccess,
        *,
        instance_id: str,
        max_entries: int = VIEW_MAX_ENTRIES,
        sync_timeout: float = READ_SYNC_TIMEOUT_SECONDS,
        claims_window_seconds: float = 3600.0,
    ) -> None:
        self._kafka = kafka
        self._instance_id = instance_id
        self.max_entries = max_entries
        self.sync_timeout = sync_timeout
        self._claims_window_ms = int(claims_window_seconds * 1000)
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._claims_producer: AIOKafkaProducer | None = None
        self._replacing: set[AIOKafkaProducer] = set()
        # Asks the brokers for high watermarks (read_uncommitted ListOffsets); it reads nothing.
        self._watermarks: AIOKafkaConsumer | None = None
        self._orders_partitions: list[TopicPartition] = []
        self._claims_partitions: list[TopicPartition] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._sync_points = _SyncPoints(self._high_watermarks)
        # Read positions (the next offset to read) per partition of both topics, after the last poll.
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Event()
        self._entries: dict[str, _Entry] = {}
        self._by_user: dict[str, set[str]] = {}
        # Per orders partition, (offset, order id) in the order read: what eviction walks.
        self._read_order: dict[int, deque[tuple[int, str]]] = {}
        # Per orders partition: the sink's committed offset, and the end of what the cap dropped early.
        self._sink_offsets: dict[int, int] = {}
        self._dropped_to: dict[int, int] = {}
        self._claims: OrderedDict[str, Claim] = OrderedDict()
        self.caught_up = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Returns once the consumer has its partitions; `caught_up` is set once the view has read to the end
        offsets of its start (main.py waits for it before the instance registers)."""
        options = self._kafka.client_options()
        self._admin = AIOKafkaAdminClient(**options)
        await self._admin.start()
        self._claims_producer = await self._new_claims_producer()
        self._watermarks = AIOKafkaConsumer(**options, group_id=None, isolation_level="read_uncommitted")
        await self._watermarks.start()
        # No group: subscribed, the consumer takes every partition of both topics itself and commits nothing.
        consumer = AIOKafkaConsumer(
            ORDERS_TOPIC,
            ORDER_CLAIMS_TOPIC,
            **self._kafka.consumer_options(),
            group_id=None,
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await consumer.start()
        self._consumer = consumer
        assigned = await self._assignment()
        self._orders_partitions = sorted(tp for tp in assigned if tp.topic == ORDERS_TOPIC)
        self._claims_partitions = sorted(tp for tp in assigned if tp.topic == ORDER_CLAIMS_TOPIC)
        # The watermark client's first answer waits for its metadata (~100 ms): here, not in the first read.
        await self._high_watermarks()
        # orders: from where the sink has written to (everything before is in the table); order-claims: the
        # window a claim decides in.
        since = int(time.time() * 1000) - self._claims_window_ms
        if await self._sink_offsets_at_start():
            for tp in self._orders_partitions:
                start_at = self._sink_offsets.get(tp.partition)
                if start_at is None:  # the sink has written nothing of it yet
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, start_at)
        else:
            await self._seek_to_time(self._orders_partitions, since)
        await self._seek_to_time(self._claims_partitions, since)
        ends = await consumer.end_offsets([*self._orders_partitions, *self._claims_partitions])
        self._tasks = [
            asyncio.create_task(self._follow_forever(ends), name="order-view"),
            asyncio.create_task(self._evict_forever(), name="order-view-eviction"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        for client in (self._consumer, self._watermarks, self._claims_producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()

    async def _replace_claims_producer(self, stuck: AIOKafkaProducer) -> None:
        try:
            self._claims_producer = await self._new_claims_producer()
        except Exception:
            log.exception("no new producer for order-claims yet; the next failed claim tries again")
            return
        finally:
            self._replacing.discard(stuck)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stuck.stop(), 30.0)

    async def _new_claims_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**self._kafka.client_options(), enable_idempotence=True, linger_ms=0)
        await producer.start()
        return producer

    async def _sink_offsets_at_start(self, attempts: int = 10) -> bool:
        """The sink's committed offsets, tried for ~10 s (a cluster just formed may have no group coordinator yet)."""
        for attempt in range(attempts):
            try:
                await self._refresh_sink_offsets()
                return True
            except Exception as exc:
                if attempt == attempts - 1:
                    log.warning(
                        "the sink's offsets (group %s) cannot be read (%s): the view starts from the claims window",
                        ORDERS_SINK_GROUP,
                        exc,
                    )
                    return False
                await asyncio.sleep(1.0)
        return False

    async def _seek_to_time(self, partitions: list[TopicPartition], since_ms: int) -> None:
        """Each partition from its first record at or after `since_ms` (its end when there is none)."""
        assert self._consumer is not None
        found = await self._consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for tp in partitions:
            at = found.get(tp)
            if at is None:
                await self._consumer.seek_to_end(tp)
            else:
                self._consumer.seek(tp, at.offset)

    async def _assignment(self) -> set[TopicPartition]:
        """The partitions of both topics, once the consumer has their metadata."""
        assert self._consumer is not None
        waited = 0.0
        while {tp.topic for tp in self._consumer.assignment()} != {ORDERS_TOPIC, ORDER_CLAIMS_TOPIC}:
            await asyncio.sleep(0.05)
            waited += 0.05
            if waited >= 10.0:
                log.warning("%s or %s has no partitions yet; waiting for them", ORDERS_TOPIC, ORDER_CLAIMS_TOPIC)
                waited = 0.0
        return set(self._consumer.assignment())

    # --- reading the topics ------------------------------------------------------------------------------------

    async def _follow_forever(self, start_ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, records in batches.items():
                    if tp.topic == ORDERS_TOPIC:
                        self._apply_orders(tp.partition, records)
                    else:
                        self._apply_claims(tp.partition, records)
                for tp in consumer.assignment():
                    self._positions[tp] = await consumer.position(tp)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The consumer retries the brokers itself; reads meanwhile answer with how far behind they are.
                log.exception("reading orders into the view failed; trying again")
                await asyncio.sleep(1.0)
                continue
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()
            if not self.caught_up.is_set() and self._reached(start_ends):
                self.caught_up.set()
                log.info("order view caught up", extra={"orders": len(self._entries), "claims": len(self._claims)})

    def _apply_orders(self, partition: int, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        read_order = self._read_order.setdefault(partition, deque())
        for record in records:
            try:
                order = order_from_record_value(record.value)
            except InvalidMessage:
                continue  # the sink dead-letters it; the auditor reports it
            self._entries[order.order_id] = _Entry(order, record.offset)
            self._by_user.setdefault(order.user_id, set()).add(order.order_id)
            read_order.append((record.offset, order.order_id))
        while len(self._entries) > self.max_entries:
            self._drop_oldest()
        VIEW_ORDERS.set(len(self._entries))

    def _apply_claims(self, partition: int, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                order_id, claim = _claim_from_record(partition, record)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("skipped a record on %s that is not a claim", ORDER_CLAIMS_TOPIC)
                continue
            self._claims.setdefault(order_id, claim)  # the first claim of an order id wins
        while len(self._claims) > self.max_entries:
            self._claims.popitem(last=False)

    def _drop_oldest(self) -> None:
        """Past the cap: the oldest entry of the longest partition leaves before the table shows it."""
        partition = max(self._read_order, key=lambda p: len(self._read_order[p]))
        offset, order_id = self._read_order[partition].popleft()
        self._forget(order_id, offset)
        self._dropped_to[partition] = max(self._dropped_to.get(partition, 0), offset + 1)

    def _forget(self, order_id: str, offset: int) -> None:
        entry = self._entries.get(order_id)
        if entry is None or entry.offset != offset:
            return  # a later record of the order holds the entry now
        del self._entries[order_id]
        users = self._by_user.get(entry.order.user_id)
        if users is not None:
            users.discard(order_id)
            if not users:
                del self._by_user[entry.order.user_id]

    async def _evict_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.EVICT_INTERVAL_SECONDS)
            if not self._waits_for_the_sink():
                # At rest: no group-coordinator lookup and offset fetch a second for a view with nothing to evict.
                self.evict()
                continue
            try:
                await self._refresh_sink_offsets()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # once per outage, not every second
                    log.warning("the sink's offsets cannot be read (%s); the view keeps its orders meanwhile", exc)
                failing = True
                continue
            if failing:
                log.info("the sink's offsets can be read again")
                failing = False
            self.evict()

    def _waits_for_the_sink(self) -> bool:
        """Whether the sink's progress matters here now: orders held until the table shows them, or orders the
        view dropped (when full) that the sink has not written yet as far as this view knows."""
        return any(self._read_order.values()) or any(
            end > self._sink_offsets.get(partition, 0) for partition, end in self._dropped_to.items()
        )

    def evict(self) -> None:
        """Entries whose record the sink has written (its committed offset is past it) leave; so do claims past
        their window."""
        for partition, read_order in self._read_order.items():
            written_to = self._sink_offsets.get(partition, 0)
            while read_order and read_order[0][0] < written_to:
                offset, order_id = read_order.popleft()
                self._forget(order_id, offset)
        VIEW_ORDERS.set(len(self._entries))
        oldest = int(time.time() * 1000) - self._claims_window_ms
        while self._claims and next(iter(self._claims.values())).timestamp_ms < oldest:
            self._claims.popitem(last=False)

    async def _refresh_sink_offsets(self) -> None:
        assert self._admin is not None
        committed = await self._admin.list_consumer_group_offsets(ORDERS_SINK_GROUP)
        for tp, meta in committed.items():
            if tp.topic == ORDERS_TOPIC and meta.offset >= 0:
                self._sink_offsets[tp.partition] = meta.offset

    def _reached(self, targets: dict[TopicPartition, int]) -> bool:
        return all(self._positions.get(tp, -1) >= end for tp, end in targets.items())

    def _behind(self, targets: dict[TopicPartition, int]) -> int:
        unread = sum(max(0, end - self._positions.get(tp, 0)) for tp, end in targets.items())
        dropped = sum(max(0, end - self._sink_offsets.get(p, 0)) for p, end in self._dropped_to.items())
        return unread + dropped

    # --- what reads and order intake ask -------------------------------------------------------------------------

    async def _high_watermarks(self) -> dict[TopicPartition, int]:
        assert self._watermarks is not None
        offsets: dict[TopicPartition, int] = await self._watermarks.end_offsets(self._orders_partitions)
        return offsets

    async def sync(self, position: Position | None = None) -> Freshness:
        """Wait (up to `sync_timeout`) until the view holds every `orders` record committed before this call, and
        `position` too. A position no record can have (no such partition, past the log's end) is InvalidPosition."""
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.sync_timeout
        try:
            async with asyncio.timeout(self.sync_timeout):  # a timer, not a task per read as wait_for makes
                targets = await self._sync_points.after_now()
        except Exception as exc:
            if position is not None:
                self._check(position, None)
            log.warning("no sync point for a read (%s); answering from what the view holds", exc)
            READS_BEHIND.inc()
            return Freshness(None)
        if position is not None:
            self._check(position, targets)
        freshness = await self._wait_for(targets, deadline)
        SYNC_SECONDS.observe(time.perf_counter() - started)
        return freshness

    def _check(self, position: Position, targets: dict[TopicPartition, int] | None) -> None:
        tp = TopicPartition(ORDERS_TOPIC, position.partition)
        if tp not in self._orders_partitions:
            raise InvalidPosition(f"orders has no partition {position.partition}")
        if targets is not None and position.offset >= targets[tp]:
            raise InvalidPosition("ahead of every committed order: not a position this service gave out")

    async def _wait_for(self, targets: dict[TopicPartition, int], deadline: float) -> Freshness:
        loop = asyncio.get_running_loop()
        while not self._reached(targets):
            if deadline <= loop.time():
                READS_BEHIND.inc()
                return Freshness(self._behind(targets))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._progress.wait()
        behind = self._behind({})
        if behind:
            READS_BEHIND.inc()
        return Freshness(behind)

    def order(self, order_id: str) -> Order | None:
        entry = self._entries.get(order_id)
        return entry.order if entry is not None else None

    def orders_of(self, user_id: str) -> list[Order]:
        return [self._entries[order_id].order for order_id in self._by_user.get(user_id, ())]

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, order_id: str, product_id: str, qty: int) -> tuple[Claim, bool]:
        """Claim `order_id` for this body; returns the order id's first claim once it is known, and whether it is
        this one."""
        if self._claims_producer is None:
            raise RuntimeError("the order view is not started")
        producer: AIOKafkaProducer = self._claims_producer
        value = orjson.dumps({"orderId": order_id, "productId": product_id, "qty": qty, "instance": self._instance_id})
        try:
            sent = await producer.send_and_wait(ORDER_CLAIMS_TOPIC, value, key=order_id.encode())
        except BaseException:
            # An idempotent producer can stay stuck after a broker blip (aiokafka #1017): it is replaced in the
            # background (stopping it flushes what it holds, which waits for the brokers), and this request answers
            # at once. Cancelled (the caller's bound ran out) counts too: the send may be what is stuck.
            if producer is self._claims_producer and producer not in self._replacing:
                self._replacing.add(producer)
                task = asyncio.create_task(self._replace_claims_producer(producer), name="order-claims-producer")
                self._tasks = [*(t for t in self._tasks if not t.done()), task]
            raise
        tp = TopicPartition(ORDER_CLAIMS_TOPIC, sent.partition)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.sync_timeout, 5.0)
        while self._positions.get(tp, -1) <= sent.offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{ORDER_CLAIMS_TOPIC} not read back within 5 s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        first = self._claims[order_id]
        return first, (first.partition, first.offset) == (sent.partition, sent.offset)

    async def wait_for_order(self, order_id: str, within: float) -> Order | None:
        """The order once a record of it is in the view (or None after `within` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (order := self.order(order_id)) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return order


def _claim_from_record(partition: int, record: ConsumerRecord[bytes, bytes]) -> tuple[str, Claim]:
    """The order id a record of `order-claims` claims, and its claim; a record that is no claim raises."""
    value = orjson.loads(record.value or b"")
    claim = Claim(
        str(value["productId"]), int(value["qty"]), str(value["instance"]), partition, record.offset, record.timestamp
    )
    return str(value["orderId"]), claim
