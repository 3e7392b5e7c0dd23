"""The saga's stock rules (catalog_service.stock_rules.decide), one test per rule, without a database: the ledger
and the stock in, what to write and publish out."""

import datetime as dt
import uuid
from dataclasses import replace

import pytest

from catalog_service.stock_rules import decide
from order_contract.order import Order, OrderStatus

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
DEADLINE = 30.0


def order(product_id: str = "P", qty: int = 1, status: OrderStatus = OrderStatus.PENDING, age: float = 1.0) -> Order:
    return Order(
        order_id=str(uuid.uuid4()),
        user_id="u",
        product_id=product_id,
        qty=qty,
        unit_price=100,
        total_price=100 * qty,
        status=status,
        created_at=NOW - dt.timedelta(seconds=age),
    )


def test_a_request_the_stock_allows_is_confirmed_and_takes_its_qty() -> None:
    request = order(qty=3)
    stock = {"P": 5}

    decided = decide([request], {}, stock, now=NOW, deadline_seconds=DEADLINE)

    assert [o.status for o in decided.to_publish] == [OrderStatus.CONFIRMED]
    assert decided.change == {"P": 3} and stock == {"P": 2}
    assert decided.fresh[request.order_id].status is OrderStatus.CONFIRMED


def test_a_request_larger_than_the_stock_is_rejected_and_takes_nothing() -> None:
    decided = decide([order(qty=6)], {}, {"P": 5}, now=NOW, deadline_seconds=DEADLINE)

    assert [o.status for o in decided.to_publish] == [OrderStatus.REJECTED]
    assert decided.change == {}


def test_a_request_for_an_unknown_product_is_rejected() -> None:
    decided = decide([order(product_id="GONE")], {}, {}, now=NOW, deadline_seconds=DEADLINE)

    assert [o.status for o in decided.to_publish] == [OrderStatus.REJECTED]


def test_requests_of_one_poll_share_the_stock_and_it_never_goes_below_zero() -> None:
    first, second, third = order(qty=2), order(qty=2), order(qty=1)
    stock = {"P": 3}

    decided = decide([first, second, third], {}, stock, now=NOW, deadline_seconds=DEADLINE)

    assert [o.status for o in decided.to_publish] == [
        OrderStatus.CONFIRMED,
        OrderStatus.REJECTED,
        OrderStatus.CONFIRMED,
    ]
    assert stock == {"P": 0} and decided.change == {"P": 3}


def test_a_redelivered_request_gets_its_recorded_answer_and_takes_nothing_again() -> None:
    request = order(qty=2)
    recorded = {request.order_id: request.with_status(OrderStatus.CONFIRMED)}

    decided = decide([request], recorded, {"P": 10}, now=NOW, deadline_seconds=DEADLINE)

    assert decided.to_publish == [recorded[request.order_id]]
    assert decided.change == {} and decided.fresh == {} and decided.redelivered == [request.order_id]


def test_a_redelivered_request_of_an_expired_order_publishes_nothing() -> None:
    request = order()
    recorded = {request.order_id: request.with_status(OrderStatus.EXPIRED)}

    decided = decide([request], recorded, {"P": 10}, now=NOW, deadline_seconds=DEADLINE)

    assert decided.to_publish == [] and decided.change == {}


def test_a_request_read_past_its_deadline_takes_nothing_and_is_left_to_the_expirer() -> None:
    late = order(age=DEADLINE + 1)

    decided = decide([late], {}, {"P": 10}, now=NOW, deadline_seconds=DEADLINE)

    assert decided.to_publish == [] and decided.change == {}
    assert decided.fresh[late.order_id].status is OrderStatus.EXPIRED


def test_an_expiry_notice_before_its_request_makes_the_request_take_nothing() -> None:
    request = order()
    notice = request.with_status(OrderStatus.EXPIRED)

    decided = decide([notice, request], {}, {"P": 10}, now=NOW, deadline_seconds=DEADLINE)

    assert decided.to_publish == [] and decided.change == {}


def test_an_expiry_notice_for_a_confirmed_order_gives_back_what_the_ledger_took() -> None:
    request = order(qty=2)
    recorded = {request.order_id: request.with_status(OrderStatus.CONFIRMED)}
    stock = {"P": 8}

    decided = decide([request.with_status(OrderStatus.EXPIRED)], recorded, stock, now=NOW, deadline_seconds=DEADLINE)

    assert stock == {"P": 10} and decided.change == {"P": -2}
    assert decided.to_publish == [request.with_status(OrderStatus.EXPIRED)]
    assert decided.expired_late == {request.order_id: OrderStatus.CONFIRMED} and decided.disagreeing == []


def test_an_expiry_notice_naming_another_product_and_qty_gives_back_the_ledgers_own() -> None:
    request = order(product_id="P", qty=2)
    recorded = {request.order_id: request.with_status(OrderStatus.CONFIRMED)}
    forged = replace(request, product_id="Q", qty=50, total_price=5000, status=OrderStatus.EXPIRED)
    stock = {"P": 8, "Q": 5}

    decided = decide([forged], recorded, stock, now=NOW, deadline_seconds=DEADLINE)

    assert stock == {"P": 10, "Q": 5} and decided.change == {"P": -2}
    assert decided.to_publish == [request.with_status(OrderStatus.EXPIRED)]
    assert decided.disagreeing == [(forged, request.with_status(OrderStatus.CONFIRMED))]


def test_an_expiry_notice_for_a_rejected_order_gives_back_nothing() -> None:
    request = order()
    recorded = {request.order_id: request.with_status(OrderStatus.REJECTED)}

    decided = decide([request.with_status(OrderStatus.EXPIRED)], recorded, {"P": 0}, now=NOW, deadline_seconds=DEADLINE)

    assert decided.change == {}
    assert [o.status for o in decided.to_publish] == [OrderStatus.EXPIRED]


def test_a_second_expiry_notice_gives_back_nothing_again() -> None:
    request = order(qty=2)
    recorded = {request.order_id: request.with_status(OrderStatus.CONFIRMED)}
    notice = request.with_status(OrderStatus.EXPIRED)

    decided = decide([notice, notice], recorded, {"P": 8}, now=NOW, deadline_seconds=DEADLINE)

    assert decided.change == {"P": -2} and len(decided.to_publish) == 1
