"""Consuming stock requests and publishing their outcomes, exactly once per order as far as anyone can see.

Per poll: the stock requests are applied in one DB transaction (StockLedger); then ONE Kafka transaction
carries the outcomes to `orders`, unparseable records to the dead-letter topic, and the consumer offsets.
Offsets are thus committed only after the database commit; a crash in between redelivers the records and the
ledger answers them with the recorded outcome.

Errors are sorted: the database or the broker away (infrastructure) is retried without end, since every record
would fail the same; anything else failing the same poll MAX_POLL_ATTEMPTS times in a row is narrowed down record
by record, and the record that still fails goes to the dead-letter topic with the reason, so the partition moves on.
A database error counts as infrastructure by its MariaDB error number (connection, server, lock and capacity
errors), not by the driver's class: pymysql raises OperationalError for a lost connection and for every server
error it has no class for, such as a CHECK constraint (4025), which a retry never fixes (security review N15).
"""

import asyncio
import contextlib
import logging
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from catalog_service.service import StockLedger
from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import InvalidMessage, Order
from order_contract.stock_request import order_from_stock_request
from servicekit import tracing
from servicekit.kafka import KafkaAccess, committed_consumer, ensure_topics, fresh_producer
from servicekit.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SAGA_OUTCOMES = Counter("saga_outcomes_total", "Order outcomes published on orders, by status", ["status"])
DEAD_LETTERS = Counter("dead_letters_total", "Records sent to a dead-letter topic, by topic", ["topic"])

Record: TypeAlias = ConsumerRecord[bytes, bytes]

# Failures that say nothing about the records: wait for the database or the broker to come back.
INFRASTRUCTURE_ERRORS = (InterfaceError, DisconnectionError, PoolTimeoutError, KafkaError, OSError, TimeoutError)
# MariaDB's error numbers that say nothing about the records either: the server away, full, shutting down, not
# ready (a Galera node outside the primary component: 1047), refusing our account, or a lock given up (retried).
# Every client-side number (2000-2999: connection lost, server gone) counts too.
INFRASTRUCTURE_DB_ERRNOS = frozenset(
    {
        1040,  # too many connections
        1043,  # bad handshake
        1044,  # access denied to the database
        1045,  # access denied for the account
        1047,  # Galera: WSREP has not yet prepared node for application use
        1053,  # server shutdown in progress
        1129,  # host blocked
        1130,  # host not allowed
        1152,  # aborted connection
        1158,  # network read error
        1159,  # network read timeout
        1160,  # network write error
        1161,  # network write timeout
        1180,  # error during COMMIT
        1203,  # max user connections
        1205,  # lock wait timeout
        1213,  # deadlock
        1226,  # user resource exceeded
        1290,  # read-only (--read-only and the like)
        1317,  # query interrupted
        1614,  # XA deadlock
        1637,  # too many active concurrent transactions
        1836,  # read-only mode
        1927,  # connection killed
        1969,  # statement timeout
        4031,  # disconnected by the server for inactivity
    }
)
# Consecutive failures of a poll for another reason before its records are tried one by one.
MAX_POLL_ATTEMPTS = 3


def is_infrastructure_error(exc: BaseException) -> bool:
    if isinstance(exc, INFRASTRUCTURE_ERRORS):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # SQLAlchemy's dialect saw a disconnect
        return True
    errno = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    if not isinstance(errno, int):
        return False
    return 2000 <= errno < 3000 or errno in INFRASTRUCTURE_DB_ERRNOS


class StockRequestConsumer:
    def __init__(
        self,
        ledger: StockLedger,
        *,
        kafka: KafkaAccess,
        transactional_id: str,
        group_id: str,
        stock_topic: str,
        outcome_topic: str,
        dead_letter_topic: str,
        topic_partitions: int = 3,
        max_records: int = 500,
    ) -> None:
        self.ledger = ledger
        self.kafka = kafka
        self.transactional_id = transactional_id
        self.group_id = group_id
        self.stock_topic = stock_topic
        self.outcome_topic = outcome_topic
        self.dead_letter_topic = dead_letter_topic
        self.topic_partitions = topic_partitions
        self.max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed_polls = 0
        # What this consumer last committed per partition (in a transaction or when idle), learnt lazily.
        self._committed: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        await ensure_topics(self.kafka, [self.stock_topic, self.dead_letter_topic], self.topic_partitions)
        self._producer = await fresh_producer(self.kafka, self.transactional_id)
        self._consumer = committed_consumer(self.kafka, self.stock_topic, group_id=self.group_id)
        await self._consumer.start()
        self._task = asyncio.create_task(self._consume_forever(), name="stock-request-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def _consume_forever(self) -> None:
        assert self._consumer is not None
        backoff = 0.2
        while True:
            polled: dict[TopicPartition, list[Record]] = {}
            try:
                polled = await self._consumer.getmany(timeout_ms=1000, max_records=self.max_records)
                if polled and self._failed_polls >= MAX_POLL_ATTEMPTS:
                    await self._handle_one_by_one(polled)
                elif polled:
                    await self._handle(polled)
                else:
                    await self._commit_idle_positions()
                self._failed_polls = 0
                backoff = 0.2
            except Exception as exc:
                # Nothing is lost: offsets are committed only with the outcomes, so the records come again.
                if not is_infrastructure_error(exc) and polled:
                    self._failed_polls += 1
                log.exception(
                    "stock requests not handled; they will be read again",
                    extra={"failed_polls": self._failed_polls, "infrastructure": is_infrastructure_error(exc)},
                )
                self._rewind(polled)
                self._producer = await fresh_producer(self.kafka, self.transactional_id, self._producer)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _commit_idle_positions(self) -> None:
        """With nothing to read, commit each partition's position where it is ahead of the last commit.

        The offsets committed with the outcomes stop at the last record handled; the transaction markers after it
        take offsets too but hold no record. A lag monitor reading committed offsets would see those markers as
        lag that never shrinks (Burrow: STOP). The position has moved past them, and everything before it has
        been handled (a failed poll seeks back), so committing it loses nothing."""
        assert self._consumer is not None
        ahead: dict[TopicPartition, int] = {}
        for tp in self._consumer.assignment():
            position = await self._consumer.position(tp)
            if tp not in self._committed:
                self._committed[tp] = await self._consumer.committed(tp) or 0
            if position > self._committed[tp]:
                ahead[tp] = position
        if not ahead:
            return
        try:
            await self._consumer.commit(ahead)
        except (KafkaError, IllegalStateError) as exc:
            # A rebalance took partitions meanwhile, or the coordinator moved: learn again at the next idle poll.
            log.info("idle positions not committed (%s); trying again when idle", type(exc).__name__)
            self._committed.clear()
            return
        self._committed.update(ahead)

    async def _handle_one_by_one(self, polled: dict[TopicPartition, list[Record]]) -> None:
        """After repeated failures: each record on its own; one that still fails (not for infrastructure)
        is dead-lettered with the reason, in a transaction that also moves its partition past it."""
        for tp, records in polled.items():
            for record in records:
                try:
                    await self._handle({tp: [record]})
                except Exception as exc:
                    if is_infrastructure_error(exc):
                        raise
                    log.exception("stock request failed on its own; dead-lettered", extra=_where(record))
                    self._producer = await fresh_producer(self.kafka, self.transactional_id, self._producer)
                    await self._dead_letter(tp, record, exc)

    async def _dead_letter(self, tp: TopicPartition, record: Record, error: Exception) -> None:
        assert self._producer is not None
        async with self._producer.transaction():
            await self._producer.send(
                self.dead_letter_topic, record.value, key=record.key, headers=_error_headers(record, error)
            )
            await self._producer.send_offsets_to_transaction({tp: record.offset + 1}, self.group_id)
        self._committed[tp] = record.offset + 1
        DEAD_LETTERS.labels(self.dead_letter_topic).inc()

    async def _handle(self, polled: dict[TopicPartition, list[Record]]) -> None:
        """One poll: parse the stock requests, apply them to the ledger, publish the outcomes in one transaction."""
        assert self._producer is not None
        producer = self._producer
        requests, dead_letters = _parse(polled)
        offsets = {tp: records[-1].offset + 1 for tp, records in polled.items()}
        with tracing.KafkaSpans() as spans:
            for record, order in requests:
                spans.process(record, group=self.group_id, name=order.order_id)
            orders = [order for _, order in requests]
            outcomes = await self.ledger.apply_all(orders) if orders else []
            await self._publish(producer, outcomes, dead_letters, offsets, spans)
        self._committed.update(offsets)
        for outcome in outcomes:
            SAGA_OUTCOMES.labels(outcome.status.value).inc()
        if dead_letters:
            DEAD_LETTERS.labels(self.dead_letter_topic).inc(len(dead_letters))
        # Each order was logged with its outcome when applied; here one line per transaction.
        log.info("outcomes published", extra={"outcomes": len(outcomes), "dead_letters": len(dead_letters)})

    async def _publish(
        self,
        producer: AIOKafkaProducer,
        outcomes: list[Order],
        dead_letters: list[tuple[Record, InvalidMessage]],
        offsets: dict[TopicPartition, int],
        spans: tracing.KafkaSpans,
    ) -> None:
        """ONE Kafka transaction: the outcomes (each record's "send" span a child of its request's "process"
        span), the dead letters and the offsets."""
        async with producer.transaction():
            for outcome in outcomes:
                key = order_record_key(outcome)
                headers = spans.send(self.outcome_topic, key, spans.processing(outcome.order_id))
                await producer.send(self.outcome_topic, order_record_value(outcome), key=key, headers=headers)
            for record, error in dead_letters:
                await producer.send(
                    self.dead_letter_topic, record.value, key=record.key, headers=_error_headers(record, error)
                )
            await producer.send_offsets_to_transaction(offsets, self.group_id)

    def _rewind(self, polled: dict[TopicPartition, list[Record]]) -> None:
        assert self._consumer is not None
        for tp, records in polled.items():
            # A partition lost to a rebalance meanwhile is read again by its new owner.
            with contextlib.suppress(IllegalStateError, AssertionError):
                self._consumer.seek(tp, records[0].offset)


def _parse(
    polled: dict[TopicPartition, list[Record]],
) -> tuple[list[tuple[Record, Order]], list[tuple[Record, InvalidMessage]]]:
    """The poll's stock requests (each with its record), and the records that are none, for the dead-letter topic."""
    requests: list[tuple[Record, Order]] = []
    dead_letters: list[tuple[Record, InvalidMessage]] = []
    for records in polled.values():
        for record in records:
            try:
                requests.append((record, order_from_stock_request(record.value)))
            except InvalidMessage as exc:
                log.warning("unparseable stock request sent to the dead-letter topic", extra=_where(record))
                dead_letters.append((record, exc))
    return requests, dead_letters


def _where(record: Record) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def _error_headers(record: Record, error: Exception) -> list[tuple[str, bytes]]:
    return [
        ("error.message", str(error).encode()[:1000]),
        ("error.class", type(error).__name__.encode()),
        ("source.topic", record.topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
    ]
