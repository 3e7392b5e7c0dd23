"""One audit pass, full or incremental, and the verdict it comes to.

Every pass opens one database snapshot first (REPEATABLE READ, all databases), then reads both topics up to their
last stable offsets taken after it, then reads the database. So every row and ledger row the snapshot holds has its
record read (the sink and catalog-service write only after a record is committed), and "row without a record" needs
no grace; records newer than the snapshot wait out the allowed lags like any record in flight.

A full pass reads everything: both topics from their beginning, all of mydb.orders and the ledger, the CONFIRMED
qty of every product, and compares order by order. It finds every discrepancy there is.

An incremental pass starts from what the last pass remembered (`AuditState`: topic positions per partition, the last
row id seen, the orders still watched, the count and checksum of the rows of the orders folded away, the CONFIRMED
qty per product) and reads only what changed: the records written since (per partition), rows with a higher id,
the rows and ledger outcomes (`IN` batches) of the watched orders in flight or with a new record, and of a slice of
the ones already reported (findings.py, which also judges only the orders that changed), the catalog (one row per
product), and, at most every AUDIT_TOTALS_EVERY_SECONDS, two numbers over mydb.orders computed in the database
(COUNT and a XOR of CRC32("order_id:status"): one scan of the table, nothing sent but the two numbers).

What an incremental pass catches by itself: everything about orders written since it last looked (missing rows,
rows behind, unanswered requests, overdue PENDING), rows inserted by hand (a new id), and stock drift (every product,
every pass: a product whose stock disagrees with the qty we know of is summed again from the ledger). What it cannot
see order by order: a row of an order it no longer watches that was deleted, updated or inserted again, a record
published again for such an order, or a ledger row changed by hand without the stock. The first two change the row
count or checksum (or bring a record for an order no longer watched) and make it run a full pass at once, which
names the orders; the row checksum is compared every AUDIT_TOTALS_EVERY_SECONDS, so that is how late it may be. A
hand-made ledger change, or a row change that keeps both count and CRC32 XOR (about one in four billion), is seen
only by the next full pass (`--full`, or the monitor's every AUDIT_FULL_EVERY_SECONDS).
"""

import contextlib
import ctypes
import datetime as dt
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord
from sqlalchemy.exc import OperationalError

from consistency_audit.config import AuditSettings
from consistency_audit.findings import Findings
from consistency_audit.folding import (
    fold_dead_letter,
    fold_order_record,
    fold_outcome,
    fold_row,
    fold_stock_record,
)
from consistency_audit.reconcile import AuditState, Kind, Stock
from consistency_audit.sources import (
    DatabaseReader,
    Snapshot,
    SourceChanged,
    TopicScan,
    parse_dead_letter,
    parse_order_record,
    parse_stock_record,
)

log = logging.getLogger(__name__)

TABLE_DEFINITION_CHANGED = 1412
SNAPSHOT_ATTEMPTS = 3


@dataclass(frozen=True)
class Verdict:
    """The outcome of one pass."""

    discrepancies: dict[Kind, list[str]]
    full: bool  # a full pass (asked for, first of its process, or fallen back to)
    reason: str  # why it was full or incremental
    started_at: dt.datetime
    duration_seconds: float
    records_read: int
    rows_read: int
    watched: int  # orders still watched after the pass
    settled: int = 0  # orders folded this pass
    timings: dict[str, float] = field(default_factory=dict)
    # Orders whose last record the sink refused (on orders-dlq): explained, so not discrepancies.
    dead_lettered: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not any(self.discrepancies.values())

    def counts(self) -> dict[str, int]:
        return {kind.value: len(ids) for kind, ids in self.discrepancies.items()}

    def as_json(self, ids_shown: int = 50) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "verdict": "consistent" if self.consistent else "inconsistent",
            "counts": self.counts(),
            "ids": {kind.value: ids[:ids_shown] for kind, ids in self.discrepancies.items() if ids},
            "full": self.full,
            "reason": self.reason,
            "started_at": self.started_at.isoformat(timespec="milliseconds"),
            "duration_seconds": round(self.duration_seconds, 4),
            "records_read": self.records_read,
            "rows_read": self.rows_read,
            "watched": self.watched,
            "dead_lettered": {"count": len(self.dead_lettered), "ids": self.dead_lettered[:ids_shown]},
            "timings": {step: round(seconds, 4) for step, seconds in self.timings.items()},
        }


def _return_freed_memory() -> None:
    """Give the C heap's free pages back to the system after a full pass: it held every order at once, and most of
    that is free again but stays resident (measured in the monitor: 232 MB resident after a pass over 217,000
    orders, 174 MB after this). glibc only; elsewhere nothing happens."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _error_code(exc: OperationalError) -> object:
    return getattr(exc.orig, "args", (None,))[0]


class FullPassNeeded(Exception):
    pass


class _Laps:
    """Seconds per step of a pass (the verdict's timings)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._mark = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = now - self._mark
        self._mark = now


class Auditor:
    """Keeps its readers and its `AuditState` between passes; `await auditor.run()` is one pass."""

    def __init__(self, settings: AuditSettings, ledger: AuditState | None = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.findings = Findings()  # what `ledger`'s orders amount to, judged as they change
        self._topics = TopicScan(settings.kafka_access)
        self._database = DatabaseReader(settings)

    async def close(self) -> None:
        await self._topics.stop()
        await self._database.close()

    async def run(self, *, full: bool = False) -> Verdict:
        started = time.perf_counter()
        started_at = dt.datetime.now(dt.UTC)
        reason = "asked for" if full else "incremental"
        if self.ledger is None:
            full, reason = True, "nothing remembered yet"
        if not full:
            assert self.ledger is not None
            try:
                return await self._pass(
                    self.ledger, self.findings, full=False, reason=reason, started=started, started_at=started_at
                )
            except (FullPassNeeded, SourceChanged) as exc:
                reason = f"fell back to a full pass: {exc}"
            except OperationalError as exc:
                if _error_code(exc) != TABLE_DEFINITION_CHANGED:
                    raise
                reason = "fell back to a full pass: a table changed under the snapshot (a migration ran)"
            log.info("audit falls back to a full pass", extra={"reason": reason})
        for attempt in range(SNAPSHOT_ATTEMPTS):
            ledger, findings = AuditState(), Findings()
            try:
                verdict = await self._pass(
                    ledger, findings, full=True, reason=reason, started=started, started_at=started_at
                )
            except OperationalError as exc:
                # MariaDB error 1412: a table was altered after the snapshot began (a migration): a fresh snapshot.
                if _error_code(exc) != TABLE_DEFINITION_CHANGED or attempt == SNAPSHOT_ATTEMPTS - 1:
                    raise
                continue
            self.ledger, self.findings = ledger, findings
            # What a full pass held is not needed again: a dict keeps the table it grew to (every order ever read),
            # and the database connection its read buffer (20 MB after the GROUP_CONCAT batches, measured).
            ledger.orders = dict(ledger.orders)
            await self._database.close()
            _return_freed_memory()
            return verdict
        raise AssertionError("unreachable")

    async def _pass(
        self,
        ledger: AuditState,
        findings: Findings,
        *,
        full: bool,
        reason: str,
        started: float,
        started_at: dt.datetime,
    ) -> Verdict:
        settings = self.settings
        laps = _Laps()
        async with self._database.snapshot() as snapshot:
            snapshot_ms = int(time.time() * 1000)
            records = await self._read_topics(ledger, full=full)
            laps("topics")
            fresh, rows_read = await self._read_new_rows(snapshot, ledger, full=full)
            laps("new_rows")
            if full:
                await self._read_everything_else(snapshot, ledger)
                laps("outcomes")
            else:
                rows_read += await self._read_what_moved(snapshot, ledger, findings, fresh, snapshot_ms, laps)
                rows_read += await self._check_totals(snapshot, ledger, snapshot_ms, laps)
            stock = await self._stock(snapshot, ledger)
            laps("stock")

        settled = findings.review(ledger, snapshot_ms, settings.grace)
        discrepancies = findings.discrepancies()
        discrepancies[Kind.STOCK_DRIFT] = [product.product_id for product in stock if product.drift != 0]
        if full:
            ledger.totals_checked_ms = snapshot_ms
        laps("reconcile")
        return Verdict(
            discrepancies=discrepancies,
            full=full,
            reason=reason,
            started_at=started_at,
            duration_seconds=time.perf_counter() - started,
            records_read=records,
            rows_read=rows_read,
            watched=len(ledger.orders),
            settled=settled,
            timings=laps.timings,
            dead_lettered=findings.dead_lettered(),
        )

    async def _read_topics(self, ledger: AuditState, *, full: bool) -> int:
        """The three topics up to offsets taken after the snapshot began: every record behind a row or a ledger row
        the snapshot holds is read (the sink and catalog-service write only after a record is committed)."""
        settings = self.settings
        unknown: list[str] = []

        def on_record(kafka_record: ConsumerRecord[bytes, bytes]) -> None:
            topic, value = kafka_record.topic, kafka_record.value
            if topic == settings.orders_topic:
                record = parse_order_record(value, kafka_record.timestamp)
                at = f"{kafka_record.partition}:{kafka_record.offset}"
                if record is not None and fold_order_record(ledger, record, at, full=full):
                    unknown.append(record.order_id)
            elif topic == settings.orders_dead_letter_topic:
                refused = parse_dead_letter(value, kafka_record.headers, settings.orders_topic)
                if refused is not None:
                    fold_dead_letter(ledger, *refused)
            else:
                request = parse_stock_record(value, kafka_record.timestamp)
                if request is not None:
                    fold_stock_record(ledger, request)

        topics = [settings.orders_topic, settings.stock_topic, settings.orders_dead_letter_topic]
        records = await self._topics.read(topics, ledger.positions, on_record)
        if full:
            ledger.history_from_ms = self._topics.history_from_ms.get(settings.orders_topic, 0)
        if unknown:
            raise FullPassNeeded(f"new records for {len(unknown)} orders no longer watched")
        return records

    @staticmethod
    async def _read_new_rows(snapshot: Snapshot, ledger: AuditState, *, full: bool) -> tuple[set[str], int]:
        """Rows with an id above the last one seen: (their order ids, how many). A full pass starts from a ledger
        with no row at all, so it keeps no such set (its ids would outlive the batches: 15 MB at 217,000 rows)."""
        fresh: set[str] = set()
        rows_read = 0
        async for top_id, batch in snapshot.rows_after(ledger.last_row_id):
            for order_id, status, created_ms in batch:
                fold_row(ledger, order_id, status, created_ms)
                if not full:
                    fresh.add(order_id)
            ledger.last_row_id = top_id
            rows_read += len(batch)
        return fresh, rows_read

    @staticmethod
    async def _read_everything_else(snapshot: Snapshot, ledger: AuditState) -> None:
        """A full pass (on a fresh ledger, so an order without a row read has none): every ledger outcome, batch by
        batch into the orders it knows, and the CONFIRMED qty of every product."""
        async for batch in snapshot.all_outcomes():
            for order_id, status in batch:
                order = ledger.orders.get(order_id)
                if order is not None:
                    order.outcome = status
        ledger.touched.update(ledger.orders)
        ledger.confirmed = await snapshot.confirmed_qty()

    async def _read_what_moved(
        self,
        snapshot: Snapshot,
        ledger: AuditState,
        findings: Findings,
        fresh: set[str],
        now_ms: int,
        laps: "_Laps",
    ) -> int:
        """An incremental pass: the rows not yet showing their last record's status (a row that shows it changes
        only behind our back, which the row count and checksum catch), and the ledger outcomes still to come or
        to change, of the orders in flight, the orders a record came for this pass, and a slice of the reported
        ones (findings.rereads). Returns the rows read."""
        settings = self.settings
        recheck_ms = settings.audit_recheck_seconds * 1000
        candidates = {*findings.rereads(now_ms, recheck_ms, settings.audit_recheck_batch), *ledger.touched}
        orders = ledger.orders
        stale = [i for i in candidates if i not in fresh and (o := orders.get(i)) is not None and o.row != o.status]
        rows = await _reread_rows(snapshot, ledger, stale)
        laps("watched_rows")
        waiting = [
            order_id
            for order_id in candidates
            if (order := orders.get(order_id)) is not None
            and order.requested_ms is not None
            and (order.outcome is None or order.outcome != order.status)
        ]
        for order_id, outcome in (await snapshot.outcomes_of(waiting)).items():
            fold_outcome(ledger, order_id, outcome)
        laps("outcomes")
        return rows

    async def _check_totals(self, snapshot: Snapshot, ledger: AuditState, snapshot_ms: int, laps: "_Laps") -> int:
        """At most every AUDIT_TOTALS_EVERY_SECONDS: mydb.orders' row count and checksum against what the ledger
        expects. A difference: first the rows of every watched order that disagrees are read again (a reported
        row repaired, the sink catching up after its grace); if that does not explain it, rows changed behind the
        auditor's back (a full pass names them). Returns the rows read."""
        if snapshot_ms - ledger.totals_checked_ms < self.settings.audit_totals_every_seconds * 1000:
            return 0
        totals, expected = await snapshot.row_totals(), ledger.expected_rows()
        laps("row_totals")
        rows = 0
        if totals != expected:
            stale = [order_id for order_id, order in ledger.orders.items() if order.row != order.status]
            rows = await _reread_rows(snapshot, ledger, stale)
            expected = ledger.expected_rows()
            laps("reported_rows")
        if totals != expected:
            raise FullPassNeeded(
                f"mydb.orders has {totals[0]} rows (checksum {totals[1]}), expected {expected[0]} "
                f"({expected[1]}): rows changed behind the auditor's back"
            )
        ledger.totals_checked_ms = snapshot_ms
        return rows

    @staticmethod
    async def _stock(snapshot: Snapshot, ledger: AuditState) -> list[Stock]:
        """Every product's stock against the CONFIRMED qty we know of; a product that disagrees is summed again
        from the ledger (its rows may not all be ours: e.g. catalog-service's own tests write to it)."""
        levels = await snapshot.stock_levels()
        differ = [p for p, (initial, current) in levels.items() if initial - current != ledger.confirmed.get(p, 0)]
        if differ:
            exact = await snapshot.confirmed_qty(differ)
            for product_id in differ:
                ledger.confirmed[product_id] = exact.get(product_id, 0)
        return [Stock(p, initial, current, ledger.confirmed.get(p, 0)) for p, (initial, current) in levels.items()]


async def _reread_rows(snapshot: Snapshot, ledger: AuditState, order_ids: list[str]) -> int:
    """The rows of `order_ids` as the snapshot has them (None: no row); an order whose row changed is touched."""
    found = await snapshot.rows_of(order_ids)
    for order_id in order_ids:
        order = ledger.orders[order_id]
        row = found.get(order_id)
        if row != order.row:
            order.row = row
            ledger.touched.add(order_id)
    return len(found)


async def audit_once(settings: AuditSettings) -> Verdict:
    """One full pass with readers of its own (tests, `make chaos`); `Auditor` keeps its state between passes."""
    auditor = Auditor(settings)
    try:
        return await auditor.run(full=True)
    finally:
        await auditor.close()
