"""The catalog and its stock. Raises domain errors; api.py is the only place that knows HTTP."""

import asyncio
import logging

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service.models import CatalogRow, ProcessedOrder
from servicekit.errors import NotFound
from servicekit.order_messages import Order, OrderStatus, now_ms

log = logging.getLogger(__name__)

# MariaDB error codes worth retrying the whole transaction for: deadlock, lock wait timeout.
_RETRYABLE_MYSQL_ERRORS = {1213, 1205}


class ProductNotFound(NotFound):
    def __init__(self, product_id: str) -> None:
        super().__init__(f"unknown product {product_id!r}", field="productId")


async def list_catalogs(session: AsyncSession) -> list[CatalogRow]:
    return list(await session.scalars(select(CatalogRow).order_by(CatalogRow.product_id)))


async def get_catalog(session: AsyncSession, product_id: str) -> CatalogRow:
    row = await session.get(CatalogRow, product_id)
    if row is None:
        raise ProductNotFound(product_id)
    return row


async def add_product(
    sessions: async_sessionmaker[AsyncSession], product_id: str, name: str, stock: int, unit_price: int
) -> None:
    async with sessions.begin() as session:
        row = CatalogRow(product_id=product_id, product_name=name, stock=stock, unit_price=unit_price)
        row.created_at = now_ms().replace(tzinfo=None)
        session.add(row)


async def remove_product(sessions: async_sessionmaker[AsyncSession], product_id: str) -> None:
    """The product only: the ledger keeps its orders' outcomes for redeliveries still to come."""
    async with sessions.begin() as session:
        await session.execute(delete(CatalogRow).where(CatalogRow.product_id == product_id))


class StockLedger:
    """Applies stock requests: each order at most once, stock never below zero, the outcome remembered."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def apply(self, order: Order) -> Order:
        """The order as CONFIRMED (stock taken) or REJECTED (not enough stock, unknown product).

        A redelivered order gets the outcome recorded the first time, without touching stock again.
        """
        for attempt in range(5):
            try:
                return await self._apply_once(order)
            except IntegrityError:
                # Another consumer recorded this order between our read and our insert; its outcome stands.
                recorded = await self.recorded_outcome(order.order_id)
                if recorded is not None:
                    return recorded
                raise
            except DBAPIError as exc:
                code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
                if code not in _RETRYABLE_MYSQL_ERRORS or attempt == 4:
                    raise
                log.warning("stock transaction retried", extra={"order_id": order.order_id, "mysql_error": code})
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    async def _apply_once(self, order: Order) -> Order:
        async with self._sessions.begin() as session:
            recorded = await session.get(ProcessedOrder, order.order_id)
            if recorded is not None:
                log.info("redelivered order, outcome reused", extra={"order_id": order.order_id})
                return recorded.to_order()
            # Conditional decrement: the row lock serializes racing consumers, the WHERE refuses to oversell.
            taken = await session.execute(
                update(CatalogRow)
                .where(CatalogRow.product_id == order.product_id, CatalogRow.stock >= order.qty)
                .values(stock=CatalogRow.stock - order.qty)
            )
            status = OrderStatus.CONFIRMED if taken.rowcount == 1 else OrderStatus.REJECTED  # type: ignore[attr-defined]
            outcome = order.with_status(status)
            session.add(ProcessedOrder.recording(outcome))
        log.info(
            "stock request applied",
            extra={"order_id": order.order_id, "product_id": order.product_id, "qty": order.qty, "status": status},
        )
        return outcome

    async def recorded_outcome(self, order_id: str) -> Order | None:
        async with self._sessions() as session:
            recorded = await session.get(ProcessedOrder, order_id)
            return recorded.to_order() if recorded is not None else None
