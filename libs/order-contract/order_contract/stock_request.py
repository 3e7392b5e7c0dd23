"""The records on `example-catalog-topic`, plain camelCase JSON, key = product id (one product's records stay in
order on one partition):

- a stock request: a PENDING order asking for stock; it carries every field but the status;
- an expiry notice: the same fields plus `"status": "EXPIRED"`, published by order-service's expirer together with
  the order's EXPIRED record. Being on the request's partition, after it, it tells catalog-service that the order
  was settled without it: an answer catalog-service gave too late is taken back (saga deadlines, README).
"""

from typing import Any

import orjson

from order_contract.order import (
    ORDER_FIELD_TYPES,
    ORDER_FIELDS,
    InvalidMessage,
    Order,
    OrderStatus,
    int32,
    text,
    validated,
)
from order_contract.timestamps import from_iso, iso_ms


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# A stock request carries every field but the status (it is always PENDING), by its camelCase name; each but the
# time is text or an int32, by its type in Order.
_NAMES = {name: camel(name) for name in ORDER_FIELDS if name != "status"}
_READERS = {name: text if ORDER_FIELD_TYPES[name] is str else int32 for name in _NAMES if name != "created_at"}


def stock_request_key(order: Order) -> bytes:
    return order.product_id.encode()


def _body(order: Order) -> dict[str, object]:
    body: dict[str, object] = {wire: getattr(order, name) for name, wire in _NAMES.items()}
    body["createdAt"] = iso_ms(order.created_at)
    return body


def stock_request_value(order: Order) -> bytes:
    return orjson.dumps(_body(order))


def expiry_notice_value(order: Order) -> bytes:
    return orjson.dumps({**_body(order), "status": OrderStatus.EXPIRED.value})


def order_from_stock_request(value: bytes | None) -> Order:
    """The order a record on the stock topic describes: PENDING for a stock request, EXPIRED for an expiry notice;
    InvalidMessage for anything else."""
    try:
        body = orjson.loads(value or b"")
        if not isinstance(body, dict):
            raise TypeError("expected a JSON object")
        read: dict[str, Any] = {name: check(body[_NAMES[name]]) for name, check in _READERS.items()}
        created_at = from_iso(text(body["createdAt"]))
        status = OrderStatus(body.get("status", OrderStatus.PENDING.value))
        if status not in (OrderStatus.PENDING, OrderStatus.EXPIRED):
            raise ValueError(f"a stock record's status is absent or EXPIRED, got {status}")
        return validated(Order(**read, status=status, created_at=created_at))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidMessage(f"not a stock request: {exc}") from exc
