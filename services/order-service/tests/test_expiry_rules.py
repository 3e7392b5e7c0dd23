"""The expirer's rules, one by one, without Kafka (order_service.expiry_rules): which orders wait for an outcome,
which are overdue, and where the next owner of a partition starts. tests/e2e/test_deadlines.py runs the whole."""

import datetime as dt
import uuid

import pytest

from order_contract.connect_record import order_record_value
from order_contract.order import Order, OrderStatus
from order_service.expiry_rules import Deadline, WaitingOrders

pytestmark = pytest.mark.unit

TAKEN = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
DEADLINE = Deadline(30, dt.timedelta(seconds=2))


def order(taken: dt.datetime = TAKEN, status: OrderStatus = OrderStatus.PENDING) -> Order:
    return Order(str(uuid.uuid4()), "u1", "P", 1, 100, 100, status, taken)


def test_a_pending_order_waits_from_its_first_record_until_any_outcome() -> None:
    waiting = WaitingOrders()
    placed = order()

    waiting.read(order_record_value(placed), 10)
    waiting.read(order_record_value(placed), 12)  # redelivered by a retried transaction: the first offset holds

    assert len(waiting) == 1 and waiting.restart_offset(99) == 10
    waiting.read(order_record_value(placed.with_status(OrderStatus.CONFIRMED)), 13)
    assert len(waiting) == 0 and waiting.restart_offset(99) == 99


@pytest.mark.parametrize("outcome", [OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.EXPIRED])
def test_every_outcome_ends_the_wait(outcome: OrderStatus) -> None:
    waiting = WaitingOrders()
    placed = order()
    waiting.read(order_record_value(placed), 0)

    waiting.read(order_record_value(placed.with_status(outcome)), 1)

    assert waiting.overdue(DEADLINE, TAKEN + dt.timedelta(hours=1)) == []


def test_a_record_that_is_no_order_changes_nothing() -> None:
    waiting = WaitingOrders()
    waiting.read(order_record_value(order()), 0)

    for junk in (None, b"", b"not json", b'{"schema": {}, "payload": {"orderId": 1}}'):
        waiting.read(junk, 1)

    assert len(waiting) == 1 and waiting.restart_offset(5) == 0


def test_an_order_is_overdue_only_its_grace_after_its_deadline() -> None:
    waiting = WaitingOrders()
    early, late = order(TAKEN), order(TAKEN + dt.timedelta(seconds=10))
    waiting.read(order_record_value(early), 0)
    waiting.read(order_record_value(late), 1)

    just_before = TAKEN + dt.timedelta(seconds=31.999)
    at_grace = TAKEN + dt.timedelta(seconds=32)

    assert waiting.overdue(DEADLINE, just_before) == []
    assert waiting.overdue(DEADLINE, at_grace) == [early]
    assert waiting.overdue(DEADLINE, at_grace + dt.timedelta(seconds=10)) == [early, late]


def test_overdue_orders_are_found_whatever_was_read_settled_or_asked_between_two_looks() -> None:
    """overdue() remembers the earliest due time between calls; each step here would miss an order if that memory
    were wrong (later orders read first, the earliest settled, an outcome, the same moment asked twice)."""
    waiting = WaitingOrders()
    late, early, middle = order(TAKEN + dt.timedelta(seconds=20)), order(TAKEN), order(TAKEN + dt.timedelta(seconds=5))
    waiting.read(order_record_value(late), 0)
    assert waiting.overdue(DEADLINE, TAKEN + dt.timedelta(seconds=33)) == []
    waiting.read(order_record_value(early), 1)  # taken before `late`, read after it (another instance's order)
    assert waiting.overdue(DEADLINE, TAKEN + dt.timedelta(seconds=33)) == [early]
    assert waiting.overdue(DEADLINE, TAKEN + dt.timedelta(seconds=33)) == [early], "still waiting until settled"
    waiting.settle([early.order_id])
    assert waiting.overdue(DEADLINE, TAKEN + dt.timedelta(seconds=36)) == []
    waiting.read(order_record_value(middle), 2)
    assert waiting.overdue(DEADLINE, TAKEN + dt.timedelta(seconds=37)) == [middle]
    waiting.read(order_record_value(middle.with_status(OrderStatus.CONFIRMED)), 3)
    assert waiting.overdue(DEADLINE, TAKEN + dt.timedelta(seconds=52)) == [late]
    longer = Deadline(60, dt.timedelta(seconds=2))  # another rule: nothing remembered under the first applies
    assert waiting.overdue(longer, TAKEN + dt.timedelta(seconds=52)) == []
    assert waiting.overdue(longer, TAKEN + dt.timedelta(seconds=82)) == [late]


def test_the_next_owner_starts_at_the_oldest_order_still_waiting_once_the_expired_are_settled() -> None:
    waiting = WaitingOrders()
    first, second, third = order(), order(), order()
    for offset, placed in ((3, first), (5, second), (8, third)):
        waiting.read(order_record_value(placed), offset)

    assert waiting.restart_offset(20, settled={first.order_id}) == 5, "expiring `first` in this transaction"
    waiting.settle([first.order_id, second.order_id])
    assert waiting.restart_offset(20) == 8
    waiting.settle([third.order_id])
    assert waiting.restart_offset(20) == 20
