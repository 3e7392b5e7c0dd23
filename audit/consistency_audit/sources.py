"""What the auditor reads: the two topics and the sink's dead letters (read_committed, from remembered positions up
to the last stable offsets) and one database snapshot (mydb.orders, catalogdb's catalogs and processed_orders, one
REPEATABLE READ transaction, so the stock and the ledger are read as catalog-service committed them together)."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from sys import intern

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from consistency_audit.config import AuditSettings
from order_contract.timestamps import as_utc, epoch_ms
from servicekit.database import with_failover
from servicekit.kafka import KafkaAccess

# A status is one of a handful of words: every order's fields point at one copy of each (`intern`), not a string of
# their own per record and row (a full pass holds every order at once).
IN_BATCH = 1000  # ids per `IN (...)`: one statement stays small, a few thousand tracked orders take a few round trips
STREAM_BATCH = 20_000
# Between the rows and between the fields of a GROUP_CONCAT batch (ASCII's record and unit separators: no order id
# or status holds them; a batch that does not split cleanly is read again row by row).
RECORD_SEPARATOR, UNIT_SEPARATOR = "\x1e", "\x1f"


class SourceChanged(RuntimeError):
    """A topic went back (recreated or truncated): remembered positions mean nothing, a full pass is due."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """An order's row in catalog-service's ledger."""

    status: str
    product_id: str
    qty: int


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_id: str
    status: str
    created_ms: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class StockRecord:
    order_id: str
    expiry_notice: bool
    timestamp_ms: int


def parse_order_record(value: bytes | None, timestamp_ms: int) -> OrderRecord | None:
    """The fields the audit needs from an `orders` record (Connect JSON); None for what is no order (the sink
    dead-letters those; nothing to reconcile)."""
    try:
        # The payload alone: parsing the schema that precedes it in every record would double the cost.
        start = (value or b"").rfind(b'"payload":')
        payload = orjson.loads(value[start + 10 : -1]) if value and start > 0 else orjson.loads(value or b"")["payload"]
        status = intern(str(payload["status"]))
        return OrderRecord(str(payload["order_id"]), status, int(payload["created_at"]), timestamp_ms)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def parse_stock_record(value: bytes | None, timestamp_ms: int) -> StockRecord | None:
    """A stock request or an expiry notice (`"status":"EXPIRED"`); read leniently: a request catalog-service
    dead-letters (bad qty, say) still names its order, and still wants an outcome."""
    try:
        body = orjson.loads(value or b"")
        order_id = body["orderId"]
        if not isinstance(order_id, str) or not order_id:
            return None
        return StockRecord(order_id, body.get("status") == "EXPIRED", timestamp_ms)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def parse_dead_letter(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], orders_topic: str
) -> tuple[str, str] | None:
    """(order id, "partition:offset" of the refused record) of a dead letter of `orders_topic`, from the record
    itself and the origin Connect's error headers name (the Connect worker and launcher.sink_recovery both write
    them); None when either is missing (a record that is no order was never watched)."""
    origin = {name: raw for name, raw in headers if name.startswith("__connect.errors.")}
    topic, partition, offset = (origin.get(f"__connect.errors.{field}") for field in ("topic", "partition", "offset"))
    if topic != orders_topic.encode() or partition is None or offset is None:
        return None
    record = parse_order_record(value, 0)
    if record is None:
        return None
    try:
        return record.order_id, f"{int(partition)}:{int(offset)}"
    except ValueError:
        return None


class TopicScan:
    """One group-less consumer for the topics the auditor reads (assigned partitions, nothing committed), kept between
    passes."""

    def __init__(self, kafka: KafkaAccess, request_timeout_ms: int = 10_000) -> None:
        self._options = {
            **kafka.client_options(),
            "request_timeout_ms": request_timeout_ms,
            "isolation_level": "read_committed",
            "enable_auto_commit": False,
            "group_id": None,
            "max_partition_fetch_bytes": 8 * 1024 * 1024,
            "fetch_max_bytes": 64 * 1024 * 1024,
            # Reading stops at the last stable offset; past a final commit marker the broker would otherwise hold the
            # fetch for its default 500 ms, in every pass.
            "fetch_max_wait_ms": 20,
        }
        self._consumer: AIOKafkaConsumer | None = None
        # topic -> the latest first-record time among partitions read from a start retention moved up (offset > 0):
        # older records of that topic are gone, so an order older than this may have had records nobody can read.
        self.history_from_ms: dict[str, int] = {}

    async def start(self) -> None:
        await self.stop()
        self._consumer = AIOKafkaConsumer(**self._options)
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            try:
                await self._consumer.stop()
            except asyncio.CancelledError:
                # aiokafka's fetcher lets a fetch it cancels on close raise CancelledError (one that had timed out
                # and was backing off: seen under load); only a cancellation of this task itself goes on.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            except Exception:
                pass
        self._consumer = None

    async def read(
        self,
        topics: Sequence[str],
        positions: dict[str, dict[int, int]],
        on_record: Callable[[ConsumerRecord[bytes, bytes]], None],
        timeout_seconds: float = 600.0,
    ) -> int:
        """Every committed record from `positions` (beginning where none) up to the last stable offsets taken now,
        handed to `on_record`; `positions` moved to where reading stopped. Records."""
        if self._consumer is None:
            await self.start()
        consumer = self._consumer
        assert consumer is not None
        # Fresh metadata (partitions added since the last pass); a group-less consumer knows only assigned topics.
        await consumer._client.force_metadata_update()
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if {tp.topic for tp in parts} != set(topics):
            raise LookupError(f"the brokers name no partitions for {sorted(set(topics) - {tp.topic for tp in parts})}")
        consumer.assign(parts)
        try:
            return await self._read_assigned(consumer, parts, positions, on_record, timeout_seconds)
        finally:
            # Between passes nothing is assigned: an assigned partition is fetched again and again in the background
            # (every fetch_max_wait_ms, 20 ms, with nothing new: ~50 fetches a second to each broker), and what was
            # fetched past the end stays buffered (20 MB after a full pass, measured).
            consumer.unsubscribe()

    async def _read_assigned(
        self,
        consumer: AIOKafkaConsumer,
        parts: list[TopicPartition],
        positions: dict[str, dict[int, int]],
        on_record: Callable[[ConsumerRecord[bytes, bytes]], None],
        timeout_seconds: float,
    ) -> int:
        ends = await consumer.end_offsets(parts)  # read_committed: the last stable offsets
        begins = await consumer.beginning_offsets(parts)
        waiting = set()
        truncated: set[TopicPartition] = set()
        for tp in parts:
            start = positions.get(tp.topic, {}).get(tp.partition, begins[tp])
            if start > ends[tp] or start < begins[tp]:
                raise SourceChanged(f"{tp.topic}[{tp.partition}]: position {start} outside {begins[tp]}..{ends[tp]}")
            consumer.seek(tp, start)
            if start == begins[tp] > 0:
                truncated.add(tp)
            positions.setdefault(tp.topic, {})[tp.partition] = start
            if start < ends[tp]:
                waiting.add(tp)
        count = 0
        deadline = time.monotonic() + timeout_seconds
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {sorted(str(tp) for tp in waiting)} took over {timeout_seconds} s")
            # A few thousand at a time: the monitor's event loop keeps answering HTTP while a full pass reads.
            batches = await consumer.getmany(*waiting, timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                if tp in truncated and records:
                    truncated.discard(tp)
                    first = self.history_from_ms.get(tp.topic, 0)
                    self.history_from_ms[tp.topic] = max(first, records[0].timestamp)
                for record in records:
                    if record.offset < ends[tp]:
                        on_record(record)
                        count += 1
            for tp in list(waiting):
                position = await consumer.position(tp)
                positions[tp.topic][tp.partition] = min(position, ends[tp])
                if position >= ends[tp]:
                    waiting.discard(tp)
        return count


def _tables(settings: AuditSettings) -> tuple[Table, Table, Table]:
    metadata = MetaData()
    orders = Table(
        "orders",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("order_id", String(64)),
        Column("status", String(16)),
        Column("created_at", DATETIME(fsp=3)),
        schema=settings.orders_db,
    )
    catalogs = Table(
        "catalogs",
        metadata,
        Column("product_id", String(64), primary_key=True),
        Column("stock", Integer),
        Column("initial_stock", Integer),
        schema=settings.catalog_db,
    )
    processed = Table(
        "processed_orders",
        metadata,
        Column("order_id", String(64), primary_key=True),
        Column("product_id", String(64)),
        Column("qty", Integer),
        Column("status", String(16)),
        schema=settings.catalog_db,
    )
    return orders, catalogs, processed


def make_engine(settings: AuditSettings) -> AsyncEngine:
    # No default database: every table is named with its own (mydb.orders, catalogdb.*), all read in one snapshot.
    engine = create_async_engine(
        settings.database_url(None), pool_size=1, max_overflow=1, pool_pre_ping=True, isolation_level="REPEATABLE READ"
    )
    with_failover(engine.sync_engine, settings)  # DB_HOSTS: the node every service writes to
    return engine


class Snapshot:
    """Reads inside one transaction (`async with DatabaseReader.snapshot() as snap`): one consistent view."""

    def __init__(self, connection: AsyncConnection, tables: tuple[Table, Table, Table]) -> None:
        self._connection = connection
        self._orders, self._catalogs, self._processed = tables

    async def rows_after(self, last_id: int) -> AsyncIterator[tuple[int, list[tuple[str, str, int]]]]:
        """(highest id, [(order_id, status, created_at in epoch ms)]) of the rows with id > last_id, in batches.

        Each batch comes as ONE value the server concatenates (GROUP_CONCAT over a range of ids): decoding a
        protocol row per order costs a pure-Python driver more than the rest of a full pass (measured: 74k rows,
        1.6 s as batches, 6.5 s as rows)."""
        table = self._connection.dialect.identifier_preparer.format_table(self._orders)
        packed = text(
            "SELECT MAX(id), COUNT(*), GROUP_CONCAT(order_id, CHAR(31), status, CHAR(31),"
            " TIMESTAMPDIFF(MICROSECOND, '1970-01-01', created_at) DIV 1000 SEPARATOR :separator)"
            f" FROM (SELECT id, order_id, status, created_at FROM {table} WHERE id > :last"
            " ORDER BY id LIMIT :batch) AS chunk"
        )
        orders = self._orders
        while True:
            found = await self._connection.execute(
                packed, {"separator": RECORD_SEPARATOR, "last": last_id, "batch": STREAM_BATCH}
            )
            top, count, joined = found.one()
            if not count:
                return
            batch = _unpacked(joined, count)
            if batch is None:  # an order id holds a separator: this range row by row
                columns = (orders.c.id, orders.c.order_id, orders.c.status, orders.c.created_at)
                query = select(*columns).where(orders.c.id > last_id, orders.c.id <= top).order_by(orders.c.id)
                rows = (await self._connection.execute(query)).all()
                batch = [(order_id, intern(status), epoch_ms(as_utc(created))) for _, order_id, status, created in rows]
            yield int(top), batch
            last_id = int(top)

    async def rows_of(self, order_ids: Iterable[str]) -> dict[str, str]:
        """order id -> row status, for the ids that have a row."""
        orders = self._orders
        found: dict[str, str] = {}
        for batch in _batches(order_ids):
            result = await self._connection.execute(
                select(orders.c.order_id, orders.c.status).where(orders.c.order_id.in_(batch))
            )
            found.update((order_id, intern(status)) for order_id, status in result)
        return found

    async def outcomes_of(self, order_ids: Iterable[str]) -> dict[str, Outcome]:
        """order id -> its ledger row, for the ids catalog-service has settled."""
        processed = self._processed
        columns = (processed.c.order_id, processed.c.status, processed.c.product_id, processed.c.qty)
        found: dict[str, Outcome] = {}
        for batch in _batches(order_ids):
            result = await self._connection.execute(select(*columns).where(processed.c.order_id.in_(batch)))
            found.update(
                (order_id, Outcome(intern(status), product_id, qty)) for order_id, status, product_id, qty in result
            )
        return found

    async def all_outcomes(self) -> AsyncIterator[list[tuple[str, str]]]:
        """(order id, ledger status) of the whole ledger, in GROUP_CONCAT batches by order id (as rows_after)."""
        table = self._connection.dialect.identifier_preparer.format_table(self._processed)
        packed = text(
            "SELECT MAX(order_id), COUNT(*), GROUP_CONCAT(order_id, CHAR(31), status"
            f" SEPARATOR :separator) FROM (SELECT order_id, status FROM {table} WHERE order_id > :last"
            " ORDER BY order_id LIMIT :batch) AS chunk"
        )
        last = ""
        while True:
            result = await self._connection.execute(
                packed, {"separator": RECORD_SEPARATOR, "last": last, "batch": STREAM_BATCH}
            )
            top, count, joined = result.one()
            if not count:
                return
            items = [item.split(UNIT_SEPARATOR) for item in (joined or "").split(RECORD_SEPARATOR)]
            if len(items) != count or any(len(fields) != 2 for fields in items):
                processed = self._processed
                query = select(processed.c.order_id, processed.c.status).where(
                    processed.c.order_id > last, processed.c.order_id <= top
                )
                items = [[order_id, status] for order_id, status in await self._connection.execute(query)]
            yield [(fields[0], intern(fields[1])) for fields in items]
            last = top

    async def confirmed_qty(self, product_ids: Sequence[str] | None = None) -> dict[str, int]:
        """product id -> qty of its CONFIRMED ledger rows: of every product, or of the ones named."""
        processed = self._processed
        query = select(processed.c.product_id, func.sum(processed.c.qty)).where(processed.c.status == "CONFIRMED")
        if product_ids is not None:
            query = query.where(processed.c.product_id.in_(product_ids))
        result = await self._connection.execute(query.group_by(processed.c.product_id))
        return {product_id: int(qty) for product_id, qty in result}

    async def stock_levels(self) -> dict[str, tuple[int, int]]:
        """product id -> (initial stock, current stock)."""
        catalogs = self._catalogs
        result = await self._connection.execute(
            select(catalogs.c.product_id, catalogs.c.initial_stock, catalogs.c.stock)
        )
        return {product_id: (int(initial), int(current)) for product_id, initial, current in result}

    async def row_totals(self) -> tuple[int, int]:
        """(COUNT, XOR of CRC32("order_id:status")) over all of mydb.orders: one scan, nothing sent but two numbers."""
        orders = self._orders
        checksum = func.bit_xor(func.crc32(func.concat(orders.c.order_id, ":", orders.c.status)))
        result = await self._connection.execute(select(func.count(), func.coalesce(checksum, 0)))
        count, total = result.one()
        return int(count), int(total)


class DatabaseReader:
    def __init__(self, settings: AuditSettings) -> None:
        self._engine = make_engine(settings)
        self._tables = _tables(settings)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        async with self._engine.connect() as connection:
            # The snapshot starts here (not at the first SELECT) and covers every database on the server.
            # A batch of rows comes as one value (rows_after, all_outcomes).
            await connection.exec_driver_sql("SET SESSION group_concat_max_len = 67108864")
            await connection.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                yield Snapshot(connection, self._tables)
            finally:
                await connection.rollback()

    async def close(self) -> None:
        """Close the pooled connections (the reader stays usable: the next snapshot connects again)."""
        await self._engine.dispose()


def _unpacked(joined: str | None, count: int) -> list[tuple[str, str, int]] | None:
    """The rows of one GROUP_CONCAT batch; None when they do not split cleanly."""
    items = (joined or "").split(RECORD_SEPARATOR)
    if len(items) != count:
        return None
    rows = []
    for item in items:
        fields = item.split(UNIT_SEPARATOR)
        if len(fields) != 3:
            return None
        rows.append((fields[0], intern(fields[1]), int(fields[2])))
    return rows


def _batches(order_ids: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for order_id in order_ids:
        batch.append(order_id)
        if len(batch) == IN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
