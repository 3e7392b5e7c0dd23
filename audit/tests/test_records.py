"""What the auditor takes from each record: the order records' payload, stock requests read leniently (a request
catalog-service dead-letters still names its order), expiry notices told apart, anything else skipped."""

import orjson
import pytest

from consistency_audit.sources import parse_dead_letter, parse_order_record, parse_stock_record
from order_contract.connect_record import order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.stock_request import expiry_notice_value, stock_request_value
from order_contract.timestamps import from_epoch_ms

pytestmark = pytest.mark.unit

ORDER = Order("order-1", "user-1", "P1", 2, 50, 100, OrderStatus.CONFIRMED, from_epoch_ms(1_796_000_000_123))


def test_an_orders_record_gives_id_status_and_created_at() -> None:
    record = parse_order_record(order_record_value(ORDER), 7)
    assert record is not None
    assert (record.order_id, record.status, record.created_ms, record.timestamp_ms) == (
        "order-1",
        "CONFIRMED",
        1_796_000_000_123,
        7,
    )


@pytest.mark.parametrize("value", [None, b"", b"not json", b'{"schema":{},"payload":null}', b'{"payload":{"x":1}}'])
def test_what_is_no_order_record_is_skipped(value: bytes | None) -> None:
    assert parse_order_record(value, 1) is None


def test_a_stock_request_and_an_expiry_notice_are_told_apart() -> None:
    request = parse_stock_record(stock_request_value(ORDER), 5)
    notice = parse_stock_record(expiry_notice_value(ORDER), 6)
    assert request is not None and notice is not None
    assert (request.order_id, request.expiry_notice, notice.order_id, notice.expiry_notice) == (
        "order-1",
        False,
        "order-1",
        True,
    )


def test_a_request_catalog_service_would_dead_letter_still_names_its_order() -> None:
    bad = orjson.dumps({"orderId": "lost-1", "productId": "P1", "qty": 0})
    record = parse_stock_record(bad, 5)
    assert record is not None and record.order_id == "lost-1" and not record.expiry_notice


@pytest.mark.parametrize("value", [None, b"junk", b"[1,2]", b'{"orderId": 5}', b'{"orderId": ""}', b'{"qty": 1}'])
def test_a_stock_record_without_an_order_id_is_skipped(value: bytes | None) -> None:
    assert parse_stock_record(value, 1) is None


def origin(topic: str = "orders", partition: str = "2", offset: str = "41") -> list[tuple[str, bytes]]:
    """The headers Connect (and launcher.sink_recovery) put on a dead letter, naming the refused record."""
    return [
        ("__connect.errors.topic", topic.encode()),
        ("__connect.errors.partition", partition.encode()),
        ("__connect.errors.offset", offset.encode()),
        ("__connect.errors.exception.message", b"CHECK constraint failed"),
    ]


def test_a_dead_letter_names_its_order_and_where_the_refused_record_was() -> None:
    assert parse_dead_letter(order_record_value(ORDER), origin(), "orders") == ("order-1", "2:41")


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (b"not json", origin()),  # no order: never watched
        (order_record_value(ORDER), []),  # no origin headers
        (order_record_value(ORDER), origin(topic="other")),
        (order_record_value(ORDER), origin(offset="x")),
    ],
)
def test_a_dead_letter_without_an_order_or_an_origin_is_skipped(value: bytes, headers: list[tuple[str, bytes]]) -> None:
    assert parse_dead_letter(value, headers, "orders") is None
