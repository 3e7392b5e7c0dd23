"""When MariaDB refuses a record OrderRecordGuard let through, the sink task fails on it again after every restart
and everything behind it in its partition waits. Debezium's JDBC sink 3.6.0 has no dead-letter path for write
errors (its put() does not use Connect's errant-record reporter; later Debezium versions add it), so the watchdog
does what the reporter would:

1. stop the connector (Connect's KIP-875 API), read its committed offsets;
2. replay each partition from there, upserting record by record with the sink's own database account, exactly as
   the sink would (the same rows, in the same order);
3. the first record the database refuses goes to `orders-dlq` with Connect's error headers, and the partition's
   offset moves past it; the connector resumes.

Only errors of the data itself (SQLSTATE classes 22 and 23: out of range, too long, constraint violated) count; a
missing table or a database that is away is not the record's fault and is only ever retried. At most
MAX_DEAD_LETTERS_PER_HOUR records are moved aside: past that the cause is not a record, and a person should look.
"""

import asyncio
import logging
import re
import time
from collections import deque
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import String, create_engine
from sqlalchemy.dialects.mysql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connect_watchdog.config import WatchdogSettings
from order_contract.connect_record import order_from_record_value
from order_contract.order import InvalidMessage
from order_contract.table import ORDERS_TABLE, OrderColumns
from order_contract.topics import ORDERS_DEAD_LETTER_TOPIC, ORDERS_TOPIC
from servicekit.database import with_failover
from servicekit.kafka import KafkaAccess

log = logging.getLogger("connect-watchdog")

# A task trace naming an error of the data (JDBC's classes for SQLSTATE 22xxx and 23xxx).
REFUSED_BY_DATABASE = re.compile(r"SQLIntegrityConstraintViolationException|SQLDataException")
# Failures of the same kind in a row before the watchdog looks for the record (a restart may fix a transient one).
FAILURES_BEFORE_RECOVERY = 3
MAX_DEAD_LETTERS_PER_HOUR = 10


class Base(DeclarativeBase):
    pass


class SinkRow(OrderColumns, Base):
    """mydb.orders as the sink writes it (order-service's Alembic history owns the table)."""

    __tablename__ = ORDERS_TABLE
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)


@dataclass(frozen=True)
class Refused:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


def is_data_error(sqlstate: str | None) -> bool:
    """SQLSTATE class 22 (data exception) or 23 (integrity constraint violation)."""
    return sqlstate is not None and sqlstate[:2] in ("22", "23")


def refused_by_database(trace: str) -> bool:
    return bool(REFUSED_BY_DATABASE.search(trace))


class SinkRecovery:
    """Counts a connector's data-error failures and, past the threshold, moves the refused record aside."""

    def __init__(self, settings: WatchdogSettings, http: httpx.Client, connector: str) -> None:
        self.settings = settings
        self.http = http
        self.connector = connector
        self.failures_in_a_row = 0
        self.dead_lettered: deque[float] = deque()
        self.clock = time.monotonic

    def task_failed(self, trace: str) -> bool:
        """Told of each FAILED task of the connector; True when it recovered a refused record."""
        if not refused_by_database(trace):
            self.failures_in_a_row = 0
            return False
        self.failures_in_a_row += 1
        if self.failures_in_a_row < FAILURES_BEFORE_RECOVERY:
            return False
        hour_ago = self.clock() - 3600
        while self.dead_lettered and self.dead_lettered[0] < hour_ago:
            self.dead_lettered.popleft()
        if len(self.dead_lettered) >= MAX_DEAD_LETTERS_PER_HOUR:
            log.error("%s keeps failing on refused records; not moving more aside this hour", self.connector)
            return False
        self.failures_in_a_row = 0
        return self.recover()

    def recover(self) -> bool:
        self._put("stop")
        self._wait_for_state("STOPPED")
        try:
            offsets = self._committed_offsets()
            refused = asyncio.run(self._replay(offsets))
            for record in refused:
                log.warning(
                    "orders-%d offset %d refused by the database, sent to %s: %s",
                    record.partition,
                    record.offset,
                    ORDERS_DEAD_LETTER_TOPIC,
                    record.reason,
                )
                self.dead_lettered.append(self.clock())
            if refused:
                moved = [self._offset_entry(r.partition, r.offset + 1) for r in refused]
                self.http.patch(f"/connectors/{self.connector}/offsets", json={"offsets": moved}).raise_for_status()
            return bool(refused)
        finally:
            self._put("resume")

    # ---- Connect's REST API ------------------------------------------------------------------------

    def _put(self, action: str) -> None:
        self.http.put(f"/connectors/{self.connector}/{action}").raise_for_status()

    def _wait_for_state(self, state: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = self.http.get(f"/connectors/{self.connector}/status").json()
            if status.get("connector", {}).get("state") == state and not status.get("tasks"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.connector} not {state} within 60 s")

    def _committed_offsets(self) -> dict[int, int]:
        answer = self.http.get(f"/connectors/{self.connector}/offsets").json()
        return {
            entry["partition"]["kafka_partition"]: entry["offset"]["kafka_offset"]
            for entry in answer.get("offsets", [])
            if entry["partition"].get("kafka_topic") == ORDERS_TOPIC
        }

    @staticmethod
    def _offset_entry(partition: int, offset: int) -> dict[str, object]:
        partition_id = {"kafka_topic": ORDERS_TOPIC, "kafka_partition": partition}
        return {"partition": partition_id, "offset": {"kafka_offset": offset}}

    # ---- replaying what the sink has not written ---------------------------------------------------

    async def _replay(self, committed: dict[int, int]) -> list[Refused]:
        """Upsert each partition's records after its committed offset until the end or a refused one."""
        kafka = self._kafka()
        consumer = AIOKafkaConsumer(
            **kafka.client_options(), isolation_level="read_committed", enable_auto_commit=False
        )
        await consumer.start()
        engine = self._sink_engine()
        refused: list[Refused] = []
        try:
            await consumer._client.force_metadata_update()  # it knows only subscribed topics otherwise
            partitions = [
                TopicPartition(ORDERS_TOPIC, p) for p in sorted(consumer.partitions_for_topic(ORDERS_TOPIC) or [])
            ]
            if not partitions:
                raise TimeoutError("no partitions of orders in the brokers' metadata")
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                if tp.partition in committed:
                    consumer.seek(tp, committed[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
                found = await self._replay_partition(consumer, engine, tp, ends[tp])
                if found is not None:
                    refused.append(found)
            if refused:
                await self._dead_letter(refused)
        finally:
            await consumer.stop()
            engine.dispose()
        return refused

    async def _replay_partition(
        self, consumer: AIOKafkaConsumer, engine: Engine, tp: TopicPartition, end: int
    ) -> Refused | None:
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
            for record in batch.get(tp, []):
                reason = self._upsert(engine, record.value)
                if reason is not None:
                    return Refused(tp.partition, record.offset, record.key, record.value, reason)
        return None

    @staticmethod
    def _upsert(engine: Engine, value: bytes | None) -> str | None:
        """Write the record as the sink would; why the database refused it, or None."""
        try:
            row = SinkRow.values_of(order_from_record_value(value))
        except InvalidMessage as exc:
            return str(exc)
        statement = insert(SinkRow).values(**row)
        statement = statement.on_duplicate_key_update({k: statement.inserted[k] for k in row if k != "order_id"})
        try:
            with engine.begin() as connection:
                connection.execute(statement)
        except DBAPIError as exc:
            # MariaDB reports a failed CHECK as error 4025, which PyMySQL raises as OperationalError: the
            # SQLSTATE it sends, not the Python class, says whether the record is at fault.
            if not is_data_error(getattr(exc.orig, "sqlstate", None)):
                raise
            return str(exc.orig)
        return None

    def _kafka(self) -> KafkaAccess:
        """The watchdog's own principal: read orders, write orders-dlq (infra/kafka/acls.txt), not `admin`."""
        return self.settings.kafka_access

    def _sink_engine(self) -> Engine:
        """The sink's own database account (DB_USER/DB_PASSWORD), synchronous, on the node the services and the sink
        write to: the first of DB_HOSTS that answers and is synced (one server: DB_HOST)."""
        # Strict, like the sink's session: a value the column cannot hold is an error, not a warning.
        strict = {"init_command": "SET SESSION sql_mode='STRICT_ALL_TABLES'"}
        database = self.settings.database
        engine = create_engine(
            database.database_url(self.settings.orders_db, driver="mysql+pymysql"), connect_args=strict
        )
        with_failover(engine, database)
        return engine

    async def _dead_letter(self, refused: list[Refused]) -> None:
        producer = AIOKafkaProducer(**self._kafka().client_options(), acks="all")
        await producer.start()
        try:
            for record in refused:
                headers = [
                    ("__connect.errors.topic", ORDERS_TOPIC.encode()),
                    ("__connect.errors.partition", str(record.partition).encode()),
                    ("__connect.errors.offset", str(record.offset).encode()),
                    ("__connect.errors.connector.name", self.connector.encode()),
                    ("__connect.errors.stage", b"TASK_PUT"),
                    ("__connect.errors.exception.class.name", b"java.sql.SQLException"),
                    ("__connect.errors.exception.message", record.reason.encode()[:2000]),
                ]
                await producer.send_and_wait(ORDERS_DEAD_LETTER_TOPIC, record.value, key=record.key, headers=headers)
        finally:
            await producer.stop()
