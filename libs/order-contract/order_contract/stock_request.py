"""The record on `example-catalog-topic`: a PENDING order asking for stock, as plain camelCase JSON; key =
product id, so one product's requests stay in order on one partition."""

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


def stock_request_value(order: Order) -> bytes:
    body: dict[str, object] = {wire: getattr(order, name) for name, wire in _NAMES.items()}
    body["createdAt"] = iso_ms(order.created_at)
    return orjson.dumps(body)


def order_from_stock_request(value: bytes | None) -> Order:
    """The PENDING order a stock request describes, or InvalidMessage."""
    try:
        body = orjson.loads(value or b"")
        if not isinstance(body, dict):
            raise TypeError("expected a JSON object")
        read: dict[str, Any] = {name: check(body[_NAMES[name]]) for name, check in _READERS.items()}
        created_at = from_iso(text(body["createdAt"]))
        return validated(Order(**read, status=OrderStatus.PENDING, created_at=created_at))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidMessage(f"not a stock request: {exc}") from exc
