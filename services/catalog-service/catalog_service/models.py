"""catalogdb: the products with their stock, and the ledger of orders already applied to it."""

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.order_messages import Order, OrderStatus, as_utc


class Base(DeclarativeBase):
    pass


class CatalogRow(Base):
    __tablename__ = "catalogs"

    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_name: Mapped[str] = mapped_column(String(255))
    stock: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DATETIME(fsp=3))


class ProcessedOrder(Base):
    __tablename__ = "processed_orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str] = mapped_column(String(64))
    qty: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    total_price: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    order_created_at: Mapped[dt.datetime] = mapped_column(DATETIME(fsp=3))

    def to_order(self) -> Order:
        return Order(
            order_id=self.order_id,
            user_id=self.user_id,
            product_id=self.product_id,
            qty=self.qty,
            unit_price=self.unit_price,
            total_price=self.total_price,
            status=OrderStatus(self.status),
            created_at=as_utc(self.order_created_at),
        )

    @staticmethod
    def values_of(outcome: Order) -> dict[str, object]:
        """The row recording `outcome`, for a bulk insert."""
        return {
            "order_id": outcome.order_id,
            "user_id": outcome.user_id,
            "product_id": outcome.product_id,
            "qty": outcome.qty,
            "unit_price": outcome.unit_price,
            "total_price": outcome.total_price,
            "status": outcome.status.value,
            "order_created_at": as_utc(outcome.created_at).replace(tzinfo=None),
        }
