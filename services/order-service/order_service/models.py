"""The shared `orders` table (mydb.orders): written by the Kafka Connect sink, read here."""

import datetime as dt

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.order_messages import Order, OrderStatus, as_utc


class Base(DeclarativeBase):
    pass


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str] = mapped_column(String(64))
    qty: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    total_price: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
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

    @classmethod
    def from_order(cls, order: Order) -> "OrderRow":
        return cls(
            order_id=order.order_id,
            user_id=order.user_id,
            product_id=order.product_id,
            qty=order.qty,
            unit_price=order.unit_price,
            total_price=order.total_price,
            status=order.status.value,
            # The column is DATETIME(3) in UTC, like the sink writes it (use.time.zone=UTC).
            created_at=as_utc(order.created_at).replace(tzinfo=None),
        )
