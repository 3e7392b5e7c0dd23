"""The shared `orders` table (mydb.orders): written by the Kafka Connect sink, read here."""

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.order_messages import Order
from servicekit.order_rows import OrderColumns


class Base(DeclarativeBase):
    pass


class OrderRow(OrderColumns, Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)

    @classmethod
    def from_order(cls, order: Order) -> "OrderRow":
        return cls(**cls.values_of(order))
