"""The auditor's bookkeeping (consistency_audit.folding), one rule a test: what each record, row and ledger row
read does to the AuditState."""

import pytest

from consistency_audit.folding import (
    fold_dead_letter,
    fold_order_record,
    fold_outcome,
    fold_row,
    fold_stock_record,
)
from consistency_audit.reconcile import AuditState
from consistency_audit.sources import OrderRecord, Outcome, StockRecord

pytestmark = pytest.mark.unit


def test_the_last_order_record_read_is_the_orders_status_and_where_it_is() -> None:
    ledger = AuditState()

    fold_order_record(ledger, OrderRecord("o1", "PENDING", 100, 110), "0:5", full=True)
    fold_order_record(ledger, OrderRecord("o1", "CONFIRMED", 100, 150), "0:9", full=True)

    order = ledger.orders["o1"]
    assert (order.status, order.record_ms, order.created_ms, order.record_at) == ("CONFIRMED", 150, 100, "0:9")


def test_a_settled_record_of_an_order_no_longer_watched_asks_for_a_full_pass() -> None:
    ledger = AuditState()

    assert fold_order_record(ledger, OrderRecord("gone", "CONFIRMED", 1, 2), "1:1", full=False)
    assert not fold_order_record(ledger, OrderRecord("new", "PENDING", 1, 2), "1:2", full=False)
    assert not fold_order_record(ledger, OrderRecord("seen", "CONFIRMED", 1, 2), "1:3", full=True)


def test_the_first_stock_request_counts_and_an_expiry_notice_is_remembered() -> None:
    ledger = AuditState()

    fold_stock_record(ledger, StockRecord("o1", expiry_notice=False, timestamp_ms=10))
    fold_stock_record(ledger, StockRecord("o1", expiry_notice=False, timestamp_ms=20))
    fold_stock_record(ledger, StockRecord("o1", expiry_notice=True, timestamp_ms=30))

    assert (ledger.orders["o1"].requested_ms, ledger.orders["o1"].expiry_notice) == (10, True)


def test_a_dead_letter_names_the_refused_record() -> None:
    ledger = AuditState()
    fold_order_record(ledger, OrderRecord("o1", "PENDING", 1, 2), "2:7", full=True)

    fold_dead_letter(ledger, "o1", "2:7")

    assert ledger.orders["o1"].last_record_dead_lettered


def test_a_row_keeps_the_created_at_its_record_gave() -> None:
    ledger = AuditState()
    fold_order_record(ledger, OrderRecord("o1", "PENDING", 100, 110), "0:1", full=True)

    fold_row(ledger, "o1", "PENDING", 999)
    fold_row(ledger, "row-only", "CONFIRMED", 555)

    assert (ledger.orders["o1"].row, ledger.orders["o1"].created_ms) == ("PENDING", 100)
    assert (ledger.orders["row-only"].row, ledger.orders["row-only"].created_ms) == ("CONFIRMED", 555)


def test_a_ledger_outcome_moves_its_qty_in_and_out_of_the_confirmed_total() -> None:
    ledger = AuditState(confirmed={"P": 5})
    ledger.track("o1")

    fold_outcome(ledger, "o1", Outcome("CONFIRMED", "P", 3))
    fold_outcome(ledger, "o1", Outcome("CONFIRMED", "P", 3))  # seen again: no change
    assert ledger.confirmed == {"P": 8}

    fold_outcome(ledger, "o1", Outcome("EXPIRED", "P", 3))  # taken back
    assert ledger.confirmed == {"P": 5} and ledger.orders["o1"].outcome == "EXPIRED"


@pytest.mark.parametrize("first", ["1:7", "2:3"])
def test_an_orders_records_on_two_partitions_read_in_either_order_are_dead_lettered_alike(first: str) -> None:
    """A mis-keyed producer (the sink tests' poison records) puts one order's records on two partitions, which a pass
    reads in no fixed order: when the sink refused both, the order is dead-lettered whichever was read last."""
    second = "2:3" if first == "1:7" else "1:7"
    ledger = AuditState()
    for at in (first, second):
        fold_order_record(ledger, OrderRecord("o1", "REJECTED", 100, 150), at, full=True)
    for at in (second, first):
        fold_dead_letter(ledger, "o1", at)

    assert ledger.orders["o1"].last_record_dead_lettered


def test_a_state_file_of_the_older_format_keeps_its_one_dead_lettered_position() -> None:
    from consistency_audit.reconcile import Tracked

    older = Tracked.from_json(["REJECTED", 150, 100, None, None, False, None, "0:5", "0:5"])
    assert older.dead_letters == ("0:5",) and older.last_record_dead_lettered
    assert Tracked.from_json(older.to_json()) == older
