"""The reconciliation itself, as pure functions over what the sources read (no Kafka, no database here).

The auditor keeps one `AuditState` of what it knows between passes:

- `orders`: the orders it is still watching ("tracked"), each with what every source last said of it: the last
  committed record on `orders` (status, created_at, record time), the row in mydb.orders as of the last database
  snapshot, whether a stock request (and an expiry notice) was read on the stock topic, and the outcome in
  catalog-service's ledger;
- `settled_count`/`settled_checksum`: every order it stopped watching, folded into the count and the XOR of
  CRC32("order_id:status") of their rows. An order is folded once its record is final, its row shows that status,
  its stock request (if any) has an outcome, and it is older than `settle_seconds`. The database computes the same
  two numbers over all of mydb.orders in one statement; tracked rows + folded rows must equal them, or rows
  changed behind the auditor's back (deleted, updated, inserted by hand) and it falls back to a full pass.

An order whose last record the sink refused (on `orders-dlq`, with the reason in Connect's error headers) has no
row, or a row showing an earlier record, by design: it is reported apart as dead-lettered, not as a discrepancy
(the OrdersDeadLettered alert and the record's headers are how an operator takes it up), and watched for good.
"""

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from order_contract.order import OrderStatus

PENDING = OrderStatus.PENDING.value
CONFIRMED = OrderStatus.CONFIRMED.value


class Kind(StrEnum):
    """What can be wrong, in the order of the issue's list."""

    MISSING_ROW = "missing_row"  # a committed record on `orders`, no row after the sink's allowed lag
    ROW_WITHOUT_RECORD = "row_without_record"  # a row in mydb.orders no committed record stands for
    STATUS_BEHIND = "status_behind"  # the row's status is not the topic's last status, after the allowed lag
    UNANSWERED_REQUEST = "unanswered_stock_request"  # a stock request with no outcome in the ledger
    STOCK_DRIFT = "stock_drift"  # initial - current stock differs from the CONFIRMED qty (product ids)
    OVERDUE_PENDING = "overdue_pending"  # PENDING past ORDER_DEADLINE_SECONDS + the allowance


KIND_TEXT = {
    Kind.MISSING_ROW: "order accepted (record on orders) but no row in mydb.orders",
    Kind.ROW_WITHOUT_RECORD: "row in mydb.orders without a committed record",
    Kind.STATUS_BEHIND: "row status behind the topic's last status",
    Kind.UNANSWERED_REQUEST: "stock request without an outcome in catalog-service's ledger",
    Kind.STOCK_DRIFT: "stock drift: initial - current stock != CONFIRMED qty in the ledger",
    Kind.OVERDUE_PENDING: "order PENDING past its deadline",
}
DEAD_LETTERED_TEXT = "the sink refused the order's last record; it is on orders-dlq with the reason in its headers"


@dataclass(frozen=True)
class Grace:
    """How long each source may lag before a difference counts (seconds)."""

    sink_lag: float = 30.0  # record on `orders` -> row in mydb.orders
    outcome_lag: float = 60.0  # stock request -> outcome in the ledger
    deadline: float = 30.0  # ORDER_DEADLINE_SECONDS
    pending_allowance: float = 30.0  # the expirer's grace and poll period, plus the sink
    settle: float = 10.0  # an order that agrees everywhere is folded once this old
    since_ms: int = 0  # judge only orders created at or after this time (epoch ms; 0: all of them)


@dataclass(slots=True)
class Tracked:
    """One order as each source last showed it; None: that source has nothing (yet)."""

    status: str | None = None  # last committed record on `orders`
    record_ms: int = 0  # that record's timestamp
    created_ms: int = 0  # the order's created_at
    row: str | None = None  # mydb.orders status at the last snapshot
    requested_ms: int | None = None  # stock request's record timestamp
    expiry_notice: bool = False  # the expirer's notice was read (evidence the order was settled without an answer)
    outcome: str | None = None  # catalog-service's ledger status
    record_at: str | None = None  # where the last committed record on `orders` is ("partition:offset")
    # The `orders` records of this order the sink dead-lettered ("partition:offset"). All of them, not the last one
    # read: records of one order on two partitions (only a mis-keyed producer makes them) are read in either order.
    dead_letters: tuple[str, ...] = ()

    @property
    def last_record_dead_lettered(self) -> bool:
        return self.record_at is not None and self.record_at in self.dead_letters

    def to_json(self) -> list[object]:
        return [
            self.status,
            self.record_ms,
            self.created_ms,
            self.row,
            self.requested_ms,
            self.expiry_notice,
            self.outcome,
            self.record_at,
            list(self.dead_letters),
        ]

    @classmethod
    def from_json(cls, values: list[object]) -> "Tracked":
        # Our own file, written by to_json; an older one held one position or None where the list is.
        *fields, held = values
        positions = [held] if isinstance(held, str) else held if isinstance(held, list) else []
        return cls(*fields[:8], tuple(str(at) for at in positions))  # type: ignore[arg-type, call-arg]


@dataclass
class AuditState:
    """What the auditor remembers between passes (see the module docstring)."""

    positions: dict[str, dict[int, int]] = field(default_factory=dict)  # topic -> partition -> next offset
    last_row_id: int = 0
    orders: dict[str, Tracked] = field(default_factory=dict)
    settled_count: int = 0
    settled_checksum: int = 0
    # product id -> qty of the CONFIRMED ledger rows seen (exact after a full pass, then kept up to date from the
    # ledger rows of the watched orders; checked against the stock, and read again for a product that disagrees)
    confirmed: dict[str, int] = field(default_factory=dict)
    totals_checked_ms: int = 0  # when the row count and checksum were last compared
    # Records on `orders` older than this are gone (retention): a row of an older order may have had its record.
    history_from_ms: int = 0
    # Orders some source said something new of since they were last judged (findings.py judges only these, and
    # the ones whose grace ran out); not saved: a state read back is judged whole once.
    touched: set[str] = field(default_factory=set, compare=False, repr=False)
    # Rows of the folded orders per status (the console's counts; not saved: only the monitor shows them).
    settled_by_status: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def track(self, order_id: str) -> Tracked:
        found = self.orders.get(order_id)
        if found is None:
            found = self.orders[order_id] = Tracked()
        self.touched.add(order_id)
        return found

    def fold(self, order_id: str) -> None:
        """Stop watching `order_id`: its row, if any, goes into the folded count and checksum."""
        order = self.orders.pop(order_id)
        self.touched.discard(order_id)
        if order.row is not None:
            self.settled_count += 1
            self.settled_checksum ^= row_checksum(order_id, order.row)
            self.settled_by_status[order.row] = self.settled_by_status.get(order.row, 0) + 1

    def row_counts(self) -> dict[str, int]:
        """Rows of mydb.orders per status as the auditor knows them (folded and watched)."""
        counts = dict(self.settled_by_status)
        for order in self.orders.values():
            if order.row is not None:
                counts[order.row] = counts.get(order.row, 0) + 1
        return counts

    def expected_rows(self) -> tuple[int, int]:
        """(count, checksum) mydb.orders must have if no row changed behind our back."""
        count, checksum = self.settled_count, self.settled_checksum
        for order_id, order in self.orders.items():
            if order.row is not None:
                count += 1
                checksum ^= row_checksum(order_id, order.row)
        return count, checksum

    def to_json(self) -> dict[str, object]:
        return {
            "positions": {topic: {str(p): o for p, o in parts.items()} for topic, parts in self.positions.items()},
            "last_row_id": self.last_row_id,
            "settled_count": self.settled_count,
            "settled_checksum": self.settled_checksum,
            "confirmed": self.confirmed,
            "totals_checked_ms": self.totals_checked_ms,
            "history_from_ms": self.history_from_ms,
            "orders": {order_id: order.to_json() for order_id, order in self.orders.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "AuditState":
        positions: Mapping[str, Mapping[str, int]] = data["positions"]  # type: ignore[assignment]  # our own file
        orders: Mapping[str, list[object]] = data["orders"]  # type: ignore[assignment]
        return cls(
            positions={topic: {int(p): int(o) for p, o in parts.items()} for topic, parts in positions.items()},
            last_row_id=int(data["last_row_id"]),  # type: ignore[call-overload]
            orders={order_id: Tracked.from_json(values) for order_id, values in orders.items()},
            settled_count=int(data["settled_count"]),  # type: ignore[call-overload]
            settled_checksum=int(data["settled_checksum"]),  # type: ignore[call-overload]
            confirmed=dict(data["confirmed"]),  # type: ignore[call-overload]
            totals_checked_ms=int(data["totals_checked_ms"]),  # type: ignore[call-overload]
            history_from_ms=int(data["history_from_ms"]),  # type: ignore[call-overload]
        )


def row_checksum(order_id: str, status: str) -> int:
    """CRC32 of "order_id:status": the same number MariaDB's CRC32(CONCAT(order_id, ':', status)) gives."""
    return zlib.crc32(f"{order_id}:{status}".encode())


@dataclass(frozen=True)
class Stock:
    """One product's stock as catalogdb has it, and what its CONFIRMED ledger rows took."""

    product_id: str
    initial: int
    current: int
    confirmed: int

    @property
    def drift(self) -> int:
        return (self.initial - self.current) - self.confirmed


def first_seen_ms(order: Tracked) -> int:
    """When the order first showed up: its created_at, or an earlier record time (a record may carry any time)."""
    return min((moment for moment in (order.created_ms, order.record_ms, order.requested_ms) if moment), default=0)


def judged(order: Tracked, grace: Grace) -> bool:
    """Whether `order` falls in the judged window (AUDIT_SINCE; all orders when unset)."""
    return not grace.since_ms or first_seen_ms(order) >= grace.since_ms


class Reread(IntEnum):
    """When an incremental pass reads a watched order's row and ledger outcome again."""

    NONE = 0  # both agree with its last record: only a new record (or the row checksum) says more
    EVERY_PASS = 1  # in flight: the sink or catalog-service should catch up any moment
    SLOW = 2  # past its grace, so already reported: read again every AUDIT_RECHECK_SECONDS, a slice per pass


@dataclass(frozen=True, slots=True)
class Judgement:
    """What one watched order amounts to at one moment."""

    kinds: tuple[Kind, ...] = ()
    refused: bool = False  # its last record was dead-lettered (in the judged window): reported apart
    settles: bool = False  # every source agrees and it is old enough: fold it
    reread: Reread = Reread.NONE
    wake_ms: int | None = None  # the next moment this judgement changes by time alone (a grace running out)


def judge(order: Tracked, now_ms: int, grace: Grace, history_from_ms: int = 0) -> Judgement:
    """One order's discrepancies, whether it settles, when to read it again, and when to judge it again if no
    source says anything new of it. `now_ms` is the time of the database snapshot its row and outcome come from."""
    sink_ms, outcome_ms = grace.sink_lag * 1000, grace.outcome_lag * 1000
    status, row, requested_ms = order.status, order.row, order.requested_ms
    row_off = row != status  # no row, a row behind, or a row without a record
    waiting = requested_ms is not None and (order.outcome is None or order.outcome != status)
    # When each grace runs out ("past" is strictly after it); a judgement changes by time alone only then.
    sink_due = order.record_ms + sink_ms
    outcome_due = (requested_ms or 0) + outcome_ms
    wakes: list[float] = []
    kinds: list[Kind] = []
    refused = False
    if judged(order, grace):
        refused = order.last_record_dead_lettered  # the row cannot show that record: explained, reported apart
        if status is not None and row_off and not refused:
            if now_ms > sink_due:
                kinds.append(Kind.MISSING_ROW if row is None else Kind.STATUS_BEHIND)
            else:
                wakes.append(sink_due)
        if row is not None and status is None and first_seen_ms(order) >= history_from_ms:
            kinds.append(Kind.ROW_WITHOUT_RECORD)
        if requested_ms is not None and order.outcome is None:
            if now_ms > outcome_due:
                kinds.append(Kind.UNANSWERED_REQUEST)
            else:
                wakes.append(outcome_due)
        if status == PENDING:
            overdue_due = order.created_ms + (grace.deadline + grace.pending_allowance) * 1000
            if now_ms > overdue_due:
                kinds.append(Kind.OVERDUE_PENDING)
            else:
                wakes.append(overdue_due)

    if requested_ms is None:
        answered = True
    elif status is None:
        answered = order.outcome is not None
    else:
        answered = order.outcome == status  # the ledger settled it the way `orders` says
    if answered and (
        (status is not None and status != PENDING and row == status)
        or (status is None and row is None and (order.outcome is not None or requested_ms is None))
        or (status is None and row is not None and first_seen_ms(order) < history_from_ms)  # its record is gone
    ):
        settle_due = max(order.created_ms, order.record_ms, requested_ms or 0) + grace.settle * 1000
        if now_ms > settle_due:
            return SETTLES
        wakes.append(settle_due)

    reread = Reread.NONE
    if row_off or waiting:
        in_flight = (row_off and status is not None and now_ms <= sink_due) or (waiting and now_ms <= outcome_due)
        if in_flight:
            reread = Reread.EVERY_PASS
            wakes.append(sink_due if row_off and status is not None and now_ms <= sink_due else outcome_due)
        else:
            reread = Reread.SLOW
    wake_ms = int(min(wakes)) + 1 if wakes else None
    found = tuple(kinds)
    return Judgement(_KIND_TUPLES.setdefault(found, found), refused, False, reread, wake_ms)


SETTLES = Judgement(settles=True)
# One tuple per combination of kinds, shared by every order that has it (findings.py keeps one per reported order).
_KIND_TUPLES: dict[tuple[Kind, ...], tuple[Kind, ...]] = {}


def find_discrepancies(ledger: AuditState, stock: Iterable[Stock], now_ms: int, grace: Grace) -> dict[Kind, list[str]]:
    """Every discrepancy, by kind, with the order ids (product ids for drift), sorted: every watched order judged
    (findings.py keeps the same between passes, judging only what changed)."""
    found: dict[Kind, list[str]] = {kind: [] for kind in Kind}
    for order_id, order in ledger.orders.items():
        for kind in judge(order, now_ms, grace, ledger.history_from_ms).kinds:
            found[kind].append(order_id)
    found[Kind.STOCK_DRIFT] = [product.product_id for product in stock if product.drift != 0]
    return {kind: sorted(ids) for kind, ids in found.items()}


def dead_lettered(ledger: AuditState, grace: Grace) -> list[str]:
    """The orders whose last record the sink refused (in the judged window), sorted."""
    return sorted(
        order_id
        for order_id, order in ledger.orders.items()
        if order.last_record_dead_lettered and judged(order, grace)
    )


def settle(ledger: AuditState, now_ms: int, grace: Grace) -> int:
    """Stop watching the orders every source agrees on (folded into the row count and checksum); how many."""
    done = [i for i, order in ledger.orders.items() if judge(order, now_ms, grace, ledger.history_from_ms).settles]
    for order_id in done:
        ledger.fold(order_id)
    return len(done)
