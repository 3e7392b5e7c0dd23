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
from enum import StrEnum

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
    dead_letter_of: str | None = None  # the `orders` record of this order the sink dead-lettered ("partition:offset")

    @property
    def last_record_dead_lettered(self) -> bool:
        return self.record_at is not None and self.record_at == self.dead_letter_of

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
            self.dead_letter_of,
        ]

    @classmethod
    def from_json(cls, values: list[object]) -> "Tracked":
        return cls(*values)  # type: ignore[arg-type]  # our own file, written by to_json


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

    def track(self, order_id: str) -> Tracked:
        found = self.orders.get(order_id)
        if found is None:
            found = self.orders[order_id] = Tracked()
        return found

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


def find_discrepancies(ledger: AuditState, stock: Iterable[Stock], now_ms: int, grace: Grace) -> dict[Kind, list[str]]:
    """Every discrepancy, by kind, with the order ids (product ids for drift), sorted. `now_ms` is the time of the
    database snapshot the rows and outcomes come from; records and requests were read after it."""
    found: dict[Kind, list[str]] = {kind: [] for kind in Kind}
    sink_ms, outcome_ms = grace.sink_lag * 1000, grace.outcome_lag * 1000
    overdue_ms = (grace.deadline + grace.pending_allowance) * 1000
    for order_id, order in ledger.orders.items():
        if not judged(order, grace):
            continue
        refused = order.last_record_dead_lettered  # the row cannot show that record: explained, reported apart
        if order.status is not None and order.row is None and now_ms - order.record_ms > sink_ms and not refused:
            found[Kind.MISSING_ROW].append(order_id)
        if order.row is not None and order.status is None and first_seen_ms(order) >= ledger.history_from_ms:
            found[Kind.ROW_WITHOUT_RECORD].append(order_id)
        if (
            order.row is not None
            and order.status is not None
            and order.row != order.status
            and now_ms - order.record_ms > sink_ms
            and not refused
        ):
            found[Kind.STATUS_BEHIND].append(order_id)
        if order.requested_ms is not None and order.outcome is None and now_ms - order.requested_ms > outcome_ms:
            found[Kind.UNANSWERED_REQUEST].append(order_id)
        if order.status == PENDING and now_ms - order.created_ms > overdue_ms:
            found[Kind.OVERDUE_PENDING].append(order_id)
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
    settle_ms = grace.settle * 1000
    done = []
    for order_id, order in ledger.orders.items():
        old_enough = now_ms - max(order.created_ms, order.record_ms, order.requested_ms or 0) > settle_ms
        if order.requested_ms is None:
            answered = True
        elif order.status is None:
            answered = order.outcome is not None
        else:
            answered = order.outcome == order.status  # the ledger settled it the way `orders` says
        if not (old_enough and answered):
            continue
        if order.status is not None and order.status != PENDING and order.row == order.status:
            ledger.settled_count += 1
            ledger.settled_checksum ^= row_checksum(order_id, order.status)
            done.append(order_id)
        elif order.status is None and order.row is None and (order.outcome is not None or order.requested_ms is None):
            done.append(order_id)  # an answered stock request alone, or a row gone again: nothing left to compare
        elif order.status is None and order.row is not None and first_seen_ms(order) < ledger.history_from_ms:
            ledger.settled_count += 1  # a row older than the retained records: nothing left to compare it with
            ledger.settled_checksum ^= row_checksum(order_id, order.row)
            done.append(order_id)
    for order_id in done:
        del ledger.orders[order_id]
    return len(done)
