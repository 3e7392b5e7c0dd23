"""An order as table columns: the one mapping between `Order` and a row, for every table that stores orders
(the shared mydb.orders the JDBC sink writes, catalog-service's `processed_orders` ledger)."""

import datetime as dt
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.orm import Mapped, mapped_column

from order_contract.order import MAX_TEXT_LENGTH, ORDER_FIELDS, Order, OrderStatus, field_values
from order_contract.timestamps import as_utc

ORDERS_TABLE = "orders"  # mydb.orders: the connector's collection.name.format


class OrderColumns:
    """Mixin for a mapped class that also declares `order_id` (its key differs per table)."""

    order_id: Mapped[str]
    user_id: Mapped[str] = mapped_column(String(MAX_TEXT_LENGTH))
    product_id: Mapped[str] = mapped_column(String(MAX_TEXT_LENGTH))
    qty: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    total_price: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    # DATETIME(3) in UTC, as the JDBC sink writes it (use.time.zone=UTC).
    created_at: Mapped[dt.datetime] = mapped_column(DATETIME(fsp=3))

    def to_order(self) -> Order:
        values: dict[str, Any] = {name: getattr(self, name) for name in ORDER_FIELDS}
        values["status"] = OrderStatus(self.status)
        values["created_at"] = as_utc(self.created_at)
        return Order(**values)

    @staticmethod
    def values_of(order: Order) -> dict[str, Any]:
        """The row for `order`, keyed by attribute name (also what an ORM bulk insert takes)."""
        values = field_values(order)
        values["created_at"] = as_utc(order.created_at).replace(tzinfo=None)
        return values
