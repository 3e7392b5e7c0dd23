"""catalogdb: the products with their stock, and the ledger of orders already applied to it."""

import datetime as dt

from sqlalchemy import Integer, String, text
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from order_contract.table import OrderColumns


class Base(DeclarativeBase):
    pass


class CatalogRow(Base):
    __tablename__ = "catalogs"

    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_name: Mapped[str] = mapped_column(String(255))
    stock: Mapped[int] = mapped_column(Integer)
    # The stock the product started with (migration 0002): the database fills it from `stock` on insert, for rows
    # inserted by this model and by plain SQL alike; never changed after. The auditor's drift check reads it.
    initial_stock: Mapped[int] = mapped_column(Integer, server_default=text("(stock)"))
    unit_price: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DATETIME(fsp=3))


class ProcessedOrder(OrderColumns, Base):
    """The outcome of every order applied to the stock: a redelivered stock request gets this answer again."""

    __tablename__ = "processed_orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column("order_created_at", DATETIME(fsp=3))
