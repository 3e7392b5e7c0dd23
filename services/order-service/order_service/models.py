"""The `orders` table: mydb.orders, written by the Kafka Connect sink (ORDER_STORE=kafka), or the instance's own
database, written by LocalOrderStore (ORDER_STORE=local). Read here either way."""

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from order_contract.order import Order
from order_contract.table import OrderColumns


class Base(DeclarativeBase):
    pass


class OrderRow(OrderColumns, Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)

    @classmethod
    def from_order(cls, order: Order) -> "OrderRow":
        return cls(**cls.values_of(order))
