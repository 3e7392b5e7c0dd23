"""The reconciliation on hand-made inputs: each discrepancy kind, its grace period, and when an order is folded."""

import zlib

import pytest

from consistency_audit.reconcile import (
    AuditState,
    Grace,
    Kind,
    Stock,
    Tracked,
    dead_lettered,
    find_discrepancies,
    row_checksum,
    settle,
)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
GRACE = Grace(sink_lag=10, outcome_lag=20, deadline=30, pending_allowance=5, settle=3)


def ago(seconds: float) -> int:
    return NOW - int(seconds * 1000)


def settled_order(status: str = "CONFIRMED", age: float = 60) -> Tracked:
    return Tracked(
        status=status, record_ms=ago(age), created_ms=ago(age), row=status, requested_ms=ago(age), outcome=status
    )


def found(orders: dict[str, Tracked], stock: list[Stock] | None = None, grace: Grace = GRACE) -> dict[Kind, list[str]]:
    return {
        kind: ids for kind, ids in find_discrepancies(AuditState(orders=orders), stock or [], NOW, grace).items() if ids
    }


def test_orders_every_source_agrees_on_are_consistent() -> None:
    assert found({"a": settled_order(), "b": settled_order("REJECTED"), "c": settled_order("EXPIRED")}) == {}


def test_a_record_without_a_row_is_missing_only_after_the_sinks_allowed_lag() -> None:
    late = Tracked(status="PENDING", record_ms=ago(11), created_ms=ago(11), requested_ms=ago(11), outcome="CONFIRMED")
    in_flight = Tracked(status="PENDING", record_ms=ago(9), created_ms=ago(9), requested_ms=ago(9))
    assert found({"late": late, "in-flight": in_flight}) == {Kind.MISSING_ROW: ["late"]}


def test_a_row_without_any_record_is_named_at_once() -> None:
    assert found({"forged": Tracked(row="CONFIRMED", created_ms=ago(1))}) == {Kind.ROW_WITHOUT_RECORD: ["forged"]}


def test_a_row_older_than_the_retained_history_is_not_called_recordless() -> None:
    old, new = Tracked(row="CONFIRMED", created_ms=ago(100)), Tracked(row="CONFIRMED", created_ms=ago(1))
    ledger = AuditState(orders={"old": old, "new": new}, history_from_ms=ago(50))  # retention removed older records
    found = find_discrepancies(ledger, [], NOW, GRACE)
    assert {kind: ids for kind, ids in found.items() if ids} == {Kind.ROW_WITHOUT_RECORD: ["new"]}
    assert settle(ledger, NOW, GRACE) == 1 and list(ledger.orders) == ["new"]  # the old row is folded, not watched
    assert (ledger.settled_count, ledger.settled_checksum) == (1, row_checksum("old", "CONFIRMED"))


def test_a_row_behind_the_last_record_is_named_after_the_allowed_lag() -> None:
    behind = settled_order()
    behind.row = "PENDING"
    catching_up = Tracked(status="CONFIRMED", record_ms=ago(2), created_ms=ago(3), row="PENDING", requested_ms=ago(3))
    catching_up.outcome = "CONFIRMED"
    assert found({"behind": behind, "catching-up": catching_up}) == {Kind.STATUS_BEHIND: ["behind"]}


def test_a_row_changed_to_another_final_status_is_behind_the_topic() -> None:
    changed = settled_order("CONFIRMED")
    changed.row = "REJECTED"
    assert found({"x": changed}) == {Kind.STATUS_BEHIND: ["x"]}


def test_a_stock_request_without_an_outcome_is_named_after_the_outcome_lag() -> None:
    lost = Tracked(requested_ms=ago(21))
    waiting = Tracked(requested_ms=ago(19))
    assert found({"lost": lost, "waiting": waiting}) == {Kind.UNANSWERED_REQUEST: ["lost"]}


def test_pending_is_overdue_after_the_deadline_plus_the_allowance() -> None:
    overdue = Tracked(status="PENDING", record_ms=ago(36), created_ms=ago(36), row="PENDING", requested_ms=ago(36))
    overdue.outcome = "EXPIRED"
    young = Tracked(status="PENDING", record_ms=ago(34), created_ms=ago(34), row="PENDING", requested_ms=ago(34))
    young.outcome = "CONFIRMED"
    assert found({"overdue": overdue, "young": young}) == {Kind.OVERDUE_PENDING: ["overdue"]}


def test_stock_drifts_when_taken_stock_differs_from_the_confirmed_qty() -> None:
    stock = [Stock("P1", 100, 90, 10), Stock("P2", 100, 89, 10), Stock("P3", 5, 5, 0)]
    assert found({}, stock) == {Kind.STOCK_DRIFT: ["P2"]}


def test_the_window_leaves_older_orders_unjudged() -> None:
    old = Tracked(status="PENDING", record_ms=ago(600), created_ms=ago(600), requested_ms=ago(600))
    new = Tracked(status="PENDING", record_ms=ago(100), created_ms=ago(100), requested_ms=ago(100))
    window = Grace(sink_lag=10, outcome_lag=20, deadline=30, pending_allowance=5, since_ms=ago(300))
    assert found({"old": old, "new": new}, grace=window) == {
        Kind.MISSING_ROW: ["new"],
        Kind.UNANSWERED_REQUEST: ["new"],
        Kind.OVERDUE_PENDING: ["new"],
    }


def test_the_window_goes_by_the_earliest_evidence_not_a_far_future_created_at() -> None:
    future = Tracked(status="PENDING", record_ms=ago(600), created_ms=NOW + 10**12, requested_ms=None)
    window = Grace(sink_lag=10, since_ms=ago(300))
    assert found({"future": future}, grace=window) == {}


def test_agreeing_orders_are_folded_into_the_row_checksum_and_the_rest_stay_watched() -> None:
    young = settled_order(age=1)
    pending = Tracked(status="PENDING", record_ms=ago(60), created_ms=ago(60), row="PENDING", requested_ms=ago(60))
    ledger_disagrees = settled_order()
    ledger_disagrees.outcome = "CONFIRMED"
    ledger_disagrees.status = ledger_disagrees.row = "EXPIRED"  # stock not given back yet
    answered_alone = Tracked(requested_ms=ago(60), outcome="REJECTED")
    ledger = AuditState(
        orders={
            "done": settled_order(),
            "young": young,
            "pending": pending,
            "ledger-disagrees": ledger_disagrees,
            "answered-alone": answered_alone,
        }
    )
    assert settle(ledger, NOW, GRACE) == 2
    assert sorted(ledger.orders) == ["ledger-disagrees", "pending", "young"]
    assert (ledger.settled_count, ledger.settled_checksum) == (1, row_checksum("done", "CONFIRMED"))


def test_expected_rows_count_folded_and_watched_rows() -> None:
    ledger = AuditState(settled_count=5, settled_checksum=1234)
    ledger.orders = {"a": Tracked(row="PENDING"), "b": Tracked(status="PENDING")}
    assert ledger.expected_rows() == (6, 1234 ^ row_checksum("a", "PENDING"))


def test_the_row_checksum_is_mariadbs_crc32_of_id_colon_status() -> None:
    # SELECT CRC32('order-1:CONFIRMED') in MariaDB
    assert row_checksum("order-1", "CONFIRMED") == zlib.crc32(b"order-1:CONFIRMED")


def test_the_ledger_survives_its_json_form() -> None:
    ledger = AuditState(
        positions={"orders": {0: 5, 1: 7}},
        last_row_id=9,
        orders={"a": settled_order()},
        settled_count=3,
        settled_checksum=77,
        confirmed={"P1": 4},
        totals_checked_ms=NOW,
        history_from_ms=ago(9),
    )
    assert AuditState.from_json(ledger.to_json()) == ledger


def test_an_order_whose_last_record_was_dead_lettered_is_reported_apart_and_watched() -> None:
    """No row (its only record refused) or a row showing an earlier record: explained by orders-dlq, not missing or
    behind; a later record of the order that lands makes it an ordinary order again."""
    never_landed = Tracked(
        status="REJECTED", record_ms=ago(60), created_ms=ago(60), record_at="0:5", dead_letters=("0:5",)
    )
    outcome_refused = settled_order("CONFIRMED")
    outcome_refused.row, outcome_refused.record_at, outcome_refused.dead_letters = "PENDING", "1:9", ("1:9",)
    refused_then_sent_again = settled_order("CONFIRMED")
    refused_then_sent_again.record_at, refused_then_sent_again.dead_letters = "1:12", ("1:9",)
    refused_then_lost = Tracked(status="REJECTED", record_ms=ago(60), created_ms=ago(60), record_at="2:3")
    refused_then_lost.dead_letters = ("2:1",)  # an earlier record was refused; the last one has no row: missing
    orders = {
        "never-landed": never_landed,
        "outcome-refused": outcome_refused,
        "sent-again": refused_then_sent_again,
        "lost": refused_then_lost,
    }
    assert found(orders) == {Kind.MISSING_ROW: ["lost"]}
    ledger = AuditState(orders=orders)
    assert dead_lettered(ledger, GRACE) == ["never-landed", "outcome-refused"]
    assert dead_lettered(ledger, Grace(since_ms=ago(30))) == []  # outside the judged window
    settle(ledger, NOW, GRACE)
    assert {"never-landed", "outcome-refused"} <= set(ledger.orders)  # never folded: no row shows their record
    assert AuditState.from_json(ledger.to_json()).orders["never-landed"] == never_landed
