"""Judging only what changed: one order's judgement (reconcile.judge), and Findings kept between passes, reporting
a discrepancy from memory, re-reading it at a slow cadence, and clearing it once a source says it is repaired."""

import pytest

from consistency_audit.findings import Findings
from consistency_audit.reconcile import (
    AuditState,
    Grace,
    Kind,
    Reread,
    Tracked,
    find_discrepancies,
    judge,
    row_checksum,
)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
GRACE = Grace(sink_lag=10, outcome_lag=20, deadline=30, pending_allowance=5, settle=3)


def ago(seconds: float, now: int = NOW) -> int:
    return now - int(seconds * 1000)


def lost_row(age: float) -> Tracked:
    """A CONFIRMED record, its stock request answered, and no row."""
    return Tracked(
        status="CONFIRMED",
        record_ms=ago(age),
        created_ms=ago(age),
        requested_ms=ago(age),
        outcome="CONFIRMED",
    )


def test_an_order_in_flight_is_read_every_pass_and_wakes_when_its_grace_runs_out() -> None:
    judgement = judge(lost_row(4), NOW, GRACE)
    assert judgement.kinds == () and judgement.reread == Reread.EVERY_PASS
    assert judgement.wake_ms == ago(4) + 10_000 + 1  # the sink's allowed lag ends: missing from then on


def test_an_order_past_its_grace_is_reported_and_read_again_only_slowly() -> None:
    judgement = judge(lost_row(11), NOW, GRACE)
    assert judgement.kinds == (Kind.MISSING_ROW,) and judgement.reread == Reread.SLOW
    assert judgement.wake_ms is None  # nothing changes by time alone any more


def test_an_order_every_source_agrees_on_settles_once_old_enough_and_wakes_for_it_before() -> None:
    young = Tracked("CONFIRMED", ago(1), ago(1), "CONFIRMED", ago(1), outcome="CONFIRMED")
    waiting = judge(young, NOW, GRACE)
    assert not waiting.settles and waiting.reread == Reread.NONE and waiting.wake_ms == ago(1) + 3000 + 1
    assert judge(young, waiting.wake_ms, GRACE).settles


def test_findings_report_a_discrepancy_from_memory_without_judging_the_others_again() -> None:
    ledger = AuditState(orders={f"ok-{n}": lost_row(60) for n in range(3)})
    for order in ledger.orders.values():
        order.row = "CONFIRMED"
    ledger.orders["lost"] = lost_row(60)
    ledger.orders["forged"] = Tracked(row="CONFIRMED", created_ms=ago(1))
    findings = Findings()
    ledger.touched.update(ledger.orders)
    assert findings.review(ledger, NOW, GRACE) == 3  # the three agreeing orders are folded
    assert ledger.touched == set()
    assert (ledger.settled_count, ledger.settled_by_status) == (3, {"CONFIRMED": 3})
    first = findings.discrepancies()
    assert first[Kind.MISSING_ROW] == ["lost"] and first[Kind.ROW_WITHOUT_RECORD] == ["forged"]

    # A later pass with nothing new: nothing judged, the same lists (not even sorted again).
    assert findings.review(ledger, NOW + 5000, GRACE) == 0
    again = findings.discrepancies()
    assert again == first and again[Kind.MISSING_ROW] is first[Kind.MISSING_ROW]
    assert find_discrepancies(ledger, [], NOW + 5000, GRACE) == {**again, Kind.STOCK_DRIFT: []}


def test_a_reported_order_is_reread_every_recheck_interval_a_budget_at_a_time_oldest_first() -> None:
    ledger = AuditState(orders={f"lost-{n}": lost_row(60) for n in range(5)})
    ledger.touched.update(ledger.orders)
    findings = Findings()
    findings.review(ledger, NOW, GRACE)
    assert findings.rereads(NOW + 1000, recheck_ms=30_000, budget=2) == []  # read at NOW: not due yet
    first = findings.rereads(NOW + 30_000, recheck_ms=30_000, budget=2)
    second = findings.rereads(NOW + 30_001, recheck_ms=30_000, budget=2)
    third = findings.rereads(NOW + 30_002, recheck_ms=30_000, budget=2)
    assert len(first) == len(second) == 2 and len(third) == 1
    assert sorted(first + second + third) == sorted(ledger.orders)
    assert findings.rereads(NOW + 30_003, recheck_ms=30_000, budget=2) == []  # all read again just now


def test_orders_in_flight_are_reread_every_pass() -> None:
    ledger = AuditState(orders={"new": lost_row(2), "old": lost_row(60)})
    ledger.touched.update(ledger.orders)
    findings = Findings()
    findings.review(ledger, NOW, GRACE)
    assert findings.rereads(NOW + 1, recheck_ms=30_000, budget=10) == ["new"]
    assert findings.rereads(NOW + 2, recheck_ms=30_000, budget=10) == ["new"]


def test_a_grace_running_out_is_judged_with_no_new_evidence() -> None:
    ledger = AuditState(orders={"late": lost_row(5)})
    ledger.touched.add("late")
    findings = Findings()
    findings.review(ledger, NOW, GRACE)
    assert findings.discrepancies()[Kind.MISSING_ROW] == []
    findings.review(ledger, NOW + 5001, GRACE)  # nothing touched; the timer set at NOW brings it back
    assert findings.discrepancies()[Kind.MISSING_ROW] == ["late"]
    assert findings.rereads(NOW + 5002, recheck_ms=30_000, budget=10) == []  # reported now: read slowly


def test_a_repaired_order_clears_and_settles_once_touched() -> None:
    ledger = AuditState(orders={"lost": lost_row(60)})
    ledger.touched.add("lost")
    findings = Findings()
    findings.review(ledger, NOW, GRACE)
    ledger.orders["lost"].row = "CONFIRMED"  # the row is back (read again by a pass)
    ledger.touched.add("lost")
    assert findings.review(ledger, NOW + 1000, GRACE) == 1
    assert findings.discrepancies()[Kind.MISSING_ROW] == [] and ledger.orders == {}
    assert (ledger.settled_count, ledger.settled_checksum) == (1, row_checksum("lost", "CONFIRMED"))
    assert findings.rereads(NOW + 60_000, recheck_ms=30_000, budget=10) == []


def test_another_window_judges_every_order_again() -> None:
    ledger = AuditState(orders={"old": lost_row(600), "new": lost_row(60)})
    ledger.touched.update(ledger.orders)
    findings = Findings()
    findings.review(ledger, NOW, GRACE)
    assert findings.discrepancies()[Kind.MISSING_ROW] == ["new", "old"]
    window = Grace(sink_lag=10, outcome_lag=20, deadline=30, pending_allowance=5, settle=3, since_ms=ago(300))
    findings.review(ledger, NOW, window)  # nothing touched, but judged with another window
    assert findings.discrepancies()[Kind.MISSING_ROW] == ["new"]


def test_dead_lettered_orders_are_kept_apart_and_cleared_when_a_later_record_lands() -> None:
    refused = Tracked("REJECTED", ago(60), ago(60), record_at="0:5", dead_letters=("0:5",))
    ledger = AuditState(orders={"refused": refused})
    ledger.touched.add("refused")
    findings = Findings()
    findings.review(ledger, NOW, GRACE)
    assert findings.dead_lettered() == ["refused"] and findings.discrepancies()[Kind.MISSING_ROW] == []
    refused.record_at, refused.record_ms, refused.row = "0:9", ago(1), "REJECTED"  # sent again, and it landed
    ledger.touched.add("refused")
    findings.review(ledger, NOW, GRACE)
    assert findings.dead_lettered() == []


def test_row_counts_add_folded_and_watched_rows_per_status() -> None:
    ledger = AuditState(settled_by_status={"CONFIRMED": 4, "REJECTED": 1})
    ledger.orders = {"a": Tracked(row="PENDING"), "b": Tracked(row="CONFIRMED"), "c": Tracked(status="PENDING")}
    assert ledger.row_counts() == {"CONFIRMED": 5, "REJECTED": 1, "PENDING": 1}
