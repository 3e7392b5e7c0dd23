"""The Order: its fields (written here once), its statuses, and the rules every order on the wire obeys."""

import datetime as dt
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any, get_type_hints

from order_contract.timestamps import as_utc, iso_ms

INT32_MAX = 2**31 - 1
MAX_TEXT_LENGTH = 64  # every text field is a VARCHAR(64) in the tables
# What an order may ask for and a product may cost: the largest total (1e9) stays inside the int32 the orders
# schema declares.
MAX_QTY = 1_000
MAX_UNIT_PRICE = 1_000_000

# MariaDB DATETIME's range: an order outside it could be taken from stock but never written to mydb.orders.
EARLIEST_CREATED_AT = dt.datetime(1000, 1, 1, tzinfo=dt.UTC)
LATEST_CREATED_AT = dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    # No answer from catalog-service within the order's deadline: settled by order-service's expirer, no stock.
    EXPIRED = "EXPIRED"

    @property
    def settled(self) -> bool:
        return self is not OrderStatus.PENDING


# ORDER_DEADLINE_SECONDS: how long an order may stay PENDING before it is settled as EXPIRED.
DEFAULT_ORDER_DEADLINE_SECONDS = 30.0


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

    def deadline(self, seconds: float) -> dt.datetime:
        """When this order, still PENDING, is to be settled as EXPIRED."""
        return as_utc(self.created_at) + dt.timedelta(seconds=seconds)


ORDER_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(Order))
# Each field's Python type: the wire formats choose their encoding and their checks by it.
ORDER_FIELD_TYPES: dict[str, type] = {name: get_type_hints(Order)[name] for name in ORDER_FIELDS}


def field_values(order: Order) -> dict[str, Any]:
    """The order's values by field name, the status as its name; `created_at` stays a datetime for each format
    to write its own way."""
    values: dict[str, Any] = {name: getattr(order, name) for name in ORDER_FIELDS}
    values["status"] = order.status.value
    return values


def plain_values(order: Order) -> dict[str, Any]:
    """The order as JSON-ready values by field name: the status as its name, the time as ISO-8601 with `Z`."""
    values = field_values(order)
    values["created_at"] = iso_ms(order.created_at)
    return values


def text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"expected a non-empty string of at most {MAX_TEXT_LENGTH} characters, got {value!r}")
    return value


def integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def int32(value: object) -> int:
    number = integer(value)
    if not 0 <= number <= INT32_MAX:
        raise ValueError(f"expected a non-negative int32, got {number}")
    return number


def validated(order: Order) -> Order:
    """The order, if it obeys the rules no wire format can express; ValueError naming the broken one."""
    if order.qty <= 0:
        raise ValueError(f"qty must be positive, got {order.qty}")
    if order.total_price != order.qty * order.unit_price:
        raise ValueError("totalPrice is not qty * unitPrice")
    created_at = as_utc(order.created_at)  # OverflowError near year 1 or 9999 with an offset
    if not EARLIEST_CREATED_AT <= created_at <= LATEST_CREATED_AT:
        raise ValueError(f"createdAt must be within 1000-01-01..9999-12-31, got {iso_ms(created_at)}")
    return order
