"""The two messages of an order: what the sink and catalog-service read is what order-service wrote."""

import datetime as dt

import orjson
import pytest

from order_contract.connect_record import order_from_record_value, order_record_key, order_record_value
from order_contract.order import InvalidMessage, Order, OrderStatus
from order_contract.stock_request import (
    expiry_notice_value,
    order_from_stock_request,
    stock_request_key,
    stock_request_value,
)
from order_contract.timestamps import epoch_ms

pytestmark = pytest.mark.unit

ORDER = Order(
    order_id="0b7f3f8e-3a47-4c1e-9a77-0a1f4c1b2d3e",
    user_id="user-1",
    product_id="CATALOG-001",
    qty=2,
    unit_price=1500,
    total_price=3000,
    status=OrderStatus.PENDING,
    created_at=dt.datetime(2026, 11, 23, 19, 12, 39, 123000, tzinfo=dt.UTC),
)


def test_the_orders_record_is_connect_json_with_a_named_schema_and_a_timestamp() -> None:
    envelope = orjson.loads(order_record_value(ORDER))

    assert order_record_key(ORDER) == ORDER.order_id.encode()
    assert envelope["schema"]["name"] == "orders"
    fields = {field["field"]: field for field in envelope["schema"]["fields"]}
    assert {name: field["type"] for name, field in fields.items()} == {
        "order_id": "string",
        "user_id": "string",
        "product_id": "string",
        "qty": "int32",
        "unit_price": "int32",
        "total_price": "int32",
        "status": "string",
        "created_at": "int64",
    }
    assert fields["created_at"]["name"] == "org.apache.kafka.connect.data.Timestamp"
    assert envelope["payload"]["created_at"] == 1795461159123
    assert envelope["payload"]["status"] == "PENDING"


def test_the_orders_record_reads_back_as_the_same_order() -> None:
    confirmed = ORDER.with_status(OrderStatus.CONFIRMED)

    assert order_from_record_value(order_record_value(confirmed)) == confirmed


def test_the_stock_request_is_camel_case_json_keyed_by_product_and_reads_back() -> None:
    body = orjson.loads(stock_request_value(ORDER))

    assert stock_request_key(ORDER) == b"CATALOG-001"
    assert body == {
        "orderId": ORDER.order_id,
        "userId": "user-1",
        "productId": "CATALOG-001",
        "qty": 2,
        "unitPrice": 1500,
        "totalPrice": 3000,
        "createdAt": "2026-11-23T19:12:39.123Z",
    }
    assert order_from_stock_request(stock_request_value(ORDER)) == ORDER


def test_an_expiry_notice_is_the_stock_request_with_status_expired_and_reads_back_expired() -> None:
    notice = orjson.loads(expiry_notice_value(ORDER))

    assert notice == {**orjson.loads(stock_request_value(ORDER)), "status": "EXPIRED"}
    assert order_from_stock_request(expiry_notice_value(ORDER)) == ORDER.with_status(OrderStatus.EXPIRED)


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        b'{"orderId": "x"}',
        stock_request_value(ORDER).replace(b'"qty":2', b'"qty":0'),
        stock_request_value(ORDER).replace(b'"qty":2', b'"qty":"2"'),
        stock_request_value(ORDER).replace(b'"totalPrice":3000', b'"totalPrice":1'),
        stock_request_value(ORDER).replace(b'"createdAt":"2026-11-23T19:12:39.123Z"', b'"createdAt":"yesterday"'),
        # Outside DATETIME's range, or past what a datetime can hold once made UTC:
        stock_request_value(ORDER).replace(b"2026-11-23T19:12:39.123Z", b"0001-01-01T00:00:00+05:00"),
        stock_request_value(ORDER).replace(b"2026-11-23T19:12:39.123Z", b"9999-12-31T23:59:59-05:00"),
        stock_request_value(ORDER).replace(b"2026-11-23T19:12:39.123Z", b"0999-12-31T23:59:59Z"),
        # Only an expiry notice carries a status, and only EXPIRED:
        expiry_notice_value(ORDER).replace(b'"EXPIRED"', b'"CONFIRMED"'),
        expiry_notice_value(ORDER).replace(b'"EXPIRED"', b'"SHIPPED"'),
    ],
)
def test_a_malformed_stock_request_is_an_invalid_message(value: bytes | None) -> None:
    with pytest.raises(InvalidMessage):
        order_from_stock_request(value)


def test_a_naive_time_as_read_from_a_datetime_column_is_utc_to_the_millisecond() -> None:
    """mydb.orders holds UTC as naive DATETIME(3) (the sink's use.time.zone=UTC); the console reads it so."""
    assert epoch_ms(dt.datetime(2026, 1, 1, 0, 0, 0, 500_000)) == 1767225600500
    one_hour_east = dt.timezone(dt.timedelta(hours=1))
    assert epoch_ms(dt.datetime(2026, 1, 1, 1, 0, 0, 500_000, tzinfo=one_hour_east)) == 1767225600500
