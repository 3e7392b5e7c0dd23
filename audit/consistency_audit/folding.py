"""How each thing a pass reads changes the auditor's `AuditState`: a record of either topic, a dead letter, a row of
mydb.orders, a ledger row of catalog-service. Pure bookkeeping (state in, state out), tested alone in
tests/test_folding.py; auditor.py reads the sources and hands each item here."""

from consistency_audit.reconcile import CONFIRMED, PENDING, AuditState
from consistency_audit.sources import OrderRecord, Outcome, StockRecord


def fold_order_record(ledger: AuditState, record: OrderRecord, at: str, *, full: bool) -> bool:
    """The order's last committed record on `orders` (at "partition:offset"). True when an incremental pass meets a
    new settled record of an order it no longer watches (folded away): only a full pass can judge that order."""
    order = ledger.orders.get(record.order_id)
    unknown = order is None and not full and record.status != PENDING
    order = ledger.track(record.order_id)
    order.status, order.record_ms, order.created_ms = record.status, record.timestamp_ms, record.created_ms
    order.record_at = at
    return unknown


def fold_dead_letter(ledger: AuditState, order_id: str, at: str) -> None:
    """The sink refused the order's record at "partition:offset" (it is on orders-dlq)."""
    order = ledger.track(order_id)
    if at not in order.dead_letters:
        order.dead_letters += (at,)


def fold_stock_record(ledger: AuditState, record: StockRecord) -> None:
    """A stock request (its first one counts) or the expirer's notice."""
    order = ledger.track(record.order_id)
    if record.expiry_notice:
        order.expiry_notice = True
    elif order.requested_ms is None:
        order.requested_ms = record.timestamp_ms


def fold_row(ledger: AuditState, order_id: str, status: str, created_ms: int) -> None:
    """A row of mydb.orders read this pass."""
    order = ledger.track(order_id)
    order.row = status
    if not order.created_ms:
        order.created_ms = created_ms


def fold_outcome(ledger: AuditState, order_id: str, outcome: Outcome) -> None:
    """catalog-service's ledger row of a watched order, keeping the CONFIRMED qty per product exact: a change of
    status moves its qty in or out."""
    order = ledger.orders[order_id]
    if outcome.status == order.outcome:
        return
    was = outcome.qty if order.outcome == CONFIRMED else 0
    now = outcome.qty if outcome.status == CONFIRMED else 0
    ledger.confirmed[outcome.product_id] = ledger.confirmed.get(outcome.product_id, 0) + now - was
    order.outcome = outcome.status
    ledger.touched.add(order_id)
