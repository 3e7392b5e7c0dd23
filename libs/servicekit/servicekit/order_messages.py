"""The two messages of an order: the Connect JSON record on `orders`, the stock request on the catalog topic.

Both services build and parse them here, so producer and consumer cannot drift apart.
"""

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson

ORDERS_TOPIC = "orders"
STOCK_TOPIC = "example-catalog-topic"
STOCK_DEAD_LETTER_TOPIC = "example-catalog-topic-dlq"

INT32_MAX = 2**31 - 1


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"


class InvalidMessage(ValueError):
    """A record we cannot turn into an order (it goes to a dead-letter topic)."""


@dataclass(frozen=True)
class Order:
    order_id: str
    user_id: str
    product_id: str
    qty: int
    unit_price: int
    total_price: int
    status: OrderStatus
    created_at: dt.datetime  # UTC, millisecond precision

    def with_status(self, status: OrderStatus) -> "Order":
        return replace(self, status=status)


def now_ms() -> dt.datetime:
    """The current UTC time truncated to milliseconds (what the Timestamp field and datetime(3) hold)."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Naive datetimes here (as read from DATETIME columns) are UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def epoch_ms(moment: dt.datetime) -> int:
    return round(as_utc(moment).timestamp() * 1000)


def from_epoch_ms(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC)


def iso_ms(moment: dt.datetime) -> str:
    """`2026-11-23T19:12:39.123Z`"""
    utc = as_utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# ---- orders topic: Kafka Connect JSON with schema (JsonConverter, schemas.enable=true) ----

# Named: an unnamed struct with a top-level `op` field would be taken for a Debezium envelope by the sink.
ORDER_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "name": "orders",
    "optional": False,
    "fields": [
        {"field": "order_id", "type": "string", "optional": False},
        {"field": "user_id", "type": "string", "optional": False},
        {"field": "product_id", "type": "string", "optional": False},
        {"field": "qty", "type": "int32", "optional": False},
        {"field": "unit_price", "type": "int32", "optional": False},
        {"field": "total_price", "type": "int32", "optional": False},
        {"field": "status", "type": "string", "optional": False},
        {
            "field": "created_at",
            "type": "int64",
            "optional": False,
            "name": "org.apache.kafka.connect.data.Timestamp",
            "version": 1,
        },
    ],
}


def order_record_key(order: Order) -> bytes:
    return order.order_id.encode()


def order_record_value(order: Order) -> bytes:
    payload = {
        "order_id": order.order_id,
        "user_id": order.user_id,
        "product_id": order.product_id,
        "qty": order.qty,
        "unit_price": order.unit_price,
        "total_price": order.total_price,
        "status": order.status.value,
        "created_at": epoch_ms(order.created_at),
    }
    return orjson.dumps({"schema": ORDER_SCHEMA, "payload": payload})


def order_from_record_value(value: bytes | None) -> Order:
    try:
        payload = orjson.loads(value or b"")["payload"]
        return _validated(
            Order(
                order_id=_text(payload["order_id"]),
                user_id=_text(payload["user_id"]),
                product_id=_text(payload["product_id"]),
                qty=_int32(payload["qty"]),
                unit_price=_int32(payload["unit_price"]),
                total_price=_int32(payload["total_price"]),
                status=OrderStatus(payload["status"]),
                created_at=from_epoch_ms(_int(payload["created_at"])),
            )
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise InvalidMessage(f"not an orders record: {exc}") from exc


# ---- stock request on the catalog topic: plain JSON, key = productId ----


def stock_request_key(order: Order) -> bytes:
    return order.product_id.encode()


def stock_request_value(order: Order) -> bytes:
    return orjson.dumps(
        {
            "orderId": order.order_id,
            "userId": order.user_id,
            "productId": order.product_id,
            "qty": order.qty,
            "unitPrice": order.unit_price,
            "totalPrice": order.total_price,
            "createdAt": iso_ms(order.created_at),
        }
    )


def order_from_stock_request(value: bytes | None) -> Order:
    """The PENDING order a stock request describes, or InvalidMessage."""
    try:
        body = orjson.loads(value or b"")
        if not isinstance(body, dict):
            raise TypeError("expected a JSON object")
        created_at = dt.datetime.fromisoformat(_text(body["createdAt"]))
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=dt.UTC)
        return _validated(
            Order(
                order_id=_text(body["orderId"]),
                user_id=_text(body["userId"]),
                product_id=_text(body["productId"]),
                qty=_int32(body["qty"]),
                unit_price=_int32(body["unitPrice"]),
                total_price=_int32(body["totalPrice"]),
                status=OrderStatus.PENDING,
                created_at=created_at,
            )
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidMessage(f"not a stock request: {exc}") from exc


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ValueError(f"expected a non-empty string of at most 64 characters, got {value!r}")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _int32(value: object) -> int:
    number = _int(value)
    if not 0 <= number <= INT32_MAX:
        raise ValueError(f"expected a non-negative int32, got {number}")
    return number


# MariaDB DATETIME's range: an order outside it could be taken from stock but never written to mydb.orders.
EARLIEST_CREATED_AT = dt.datetime(1000, 1, 1, tzinfo=dt.UTC)
LATEST_CREATED_AT = dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)


def _validated(order: Order) -> Order:
    if order.qty <= 0:
        raise ValueError(f"qty must be positive, got {order.qty}")
    if order.total_price != order.qty * order.unit_price:
        raise ValueError("totalPrice is not qty * unitPrice")
    created_at = as_utc(order.created_at)  # OverflowError near year 1 or 9999 with an offset
    if not EARLIEST_CREATED_AT <= created_at <= LATEST_CREATED_AT:
        raise ValueError(f"createdAt must be within 1000-01-01..9999-12-31, got {iso_ms(created_at)}")
    return order
