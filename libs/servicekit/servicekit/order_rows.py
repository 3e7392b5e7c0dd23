"""An order as table columns: the one mapping between `Order` and a row, for every table that stores orders
(order-service's shared `orders`, catalog-service's `processed_orders` ledger)."""

import datetime as dt
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.orm import Mapped, mapped_column

from servicekit.order_messages import Order, OrderStatus, as_utc


class OrderColumns:
    """Mixin for a mapped class that also declares `order_id` (its key differs per table)."""

    order_id: Mapped[str]
    user_id: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str] = mapped_column(String(64))
    qty: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    total_price: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    # DATETIME(3) in UTC, as the JDBC sink writes it (use.time.zone=UTC).
    created_at: Mapped[dt.datetime] = mapped_column(DATETIME(fsp=3))

    def to_order(self) -> Order:
        return Order(
            order_id=self.order_id,
            user_id=self.user_id,
            product_id=self.product_id,
            qty=self.qty,
            unit_price=self.unit_price,
            total_price=self.total_price,
            status=OrderStatus(self.status),
            created_at=as_utc(self.created_at),
        )

    @staticmethod
    def values_of(order: Order) -> dict[str, Any]:
        """The row for `order`, keyed by attribute name (also what an ORM bulk insert takes)."""
        return {
            "order_id": order.order_id,
            "user_id": order.user_id,
            "product_id": order.product_id,
            "qty": order.qty,
            "unit_price": order.unit_price,
            "total_price": order.total_price,
            "status": order.status.value,
            "created_at": as_utc(order.created_at).replace(tzinfo=None),
        }
