"""The record on `orders`: Kafka Connect JSON with its schema (JsonConverter, schemas.enable=true), key = order id.

The JDBC sink turns the schema into column types and the payload into a row, so the schema follows `Order`'s
fields and types; OrderRecordGuard (infra/src) checks the same rules inside Connect.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson

from order_contract.order import (
    ORDER_FIELD_TYPES,
    InvalidMessage,
    Order,
    OrderStatus,
    field_values,
    int32,
    integer,
    text,
    validated,
)
from order_contract.timestamps import epoch_ms, from_epoch_ms

# The Connect schema type of each Python type an Order field has.
_CONNECT_TYPES: dict[type, dict[str, Any]] = {
    str: {"type": "string"},
    OrderStatus: {"type": "string"},
    int: {"type": "int32"},
    dt.datetime: {"type": "int64", "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
}
_STATUSES = {status.value: status for status in OrderStatus}


def _status(value: object) -> OrderStatus:
    found = _STATUSES.get(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"expected an order status, got {value!r}")
    return found


# How a payload value of that type is checked and read.
_READERS: dict[type, Callable[[object], object]] = {
    str: text,
    OrderStatus: _status,
    int: int32,
    dt.datetime: lambda value: from_epoch_ms(integer(value)),
}
# Each field's name and reader, in Order's field order (every consumer of `orders` reads each record with these).
_FIELD_READERS = tuple((name, _READERS[kind]) for name, kind in ORDER_FIELD_TYPES.items())

# Named: an unnamed struct with a top-level `op` field would be taken for a Debezium envelope by the sink.
ORDER_SCHEMA: dict[str, Any] = {
    "type": "struct",
    "name": "orders",
    "optional": False,
    "fields": [{"field": name, **_CONNECT_TYPES[kind], "optional": False} for name, kind in ORDER_FIELD_TYPES.items()],
}


def order_record_key(order: Order) -> bytes:
    return order.order_id.encode()


def order_record_value(order: Order) -> bytes:
    payload = field_values(order)
    payload["created_at"] = epoch_ms(order.created_at)
    return orjson.dumps({"schema": ORDER_SCHEMA, "payload": payload})


def order_from_record_value(value: bytes | None) -> Order:
    """The order an `orders` record holds, or InvalidMessage naming what is wrong with it."""
    try:
        payload = orjson.loads(value or b"")["payload"]
        read: list[Any] = [reader(payload[name]) for name, reader in _FIELD_READERS]
        return validated(Order(*read))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise InvalidMessage(f"not an orders record: {exc}") from exc
