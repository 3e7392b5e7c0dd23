"""The catalog and its stock. Raises domain errors; api.py is the only place that knows HTTP."""

import asyncio
import logging

from prometheus_client import Counter
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service.models import CatalogRow, ProcessedOrder
from catalog_service.stock_rules import Decisions, decide, differences
from order_contract.order import DEFAULT_ORDER_DEADLINE_SECONDS, Order, OrderStatus
from order_contract.timestamps import now_ms
from servicekit.errors import Conflict, NotFound

log = logging.getLogger(__name__)

# MariaDB error codes worth retrying the whole transaction for: deadlock (also a Galera node's answer when another
# node's write wins certification or aborts ours), lock wait timeout.
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


class ProductExists(Conflict):
    def __init__(self, product_id: str) -> None:
        super().__init__(f"product {product_id!r} exists already", field="productId")


async def create_product(session: AsyncSession, product_id: str, name: str, stock: int, unit_price: int) -> CatalogRow:
    """Insert a product (409 when the id is taken). The catalog-source connector sees the commit in the binlog."""
    row = CatalogRow(product_id=product_id, product_name=name, stock=stock, unit_price=unit_price)
    row.created_at = now_ms().replace(tzinfo=None)
    session.add(row)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise ProductExists(product_id) from exc
    return row


async def change_product(
    session: AsyncSession, product_id: str, *, name: str | None = None, unit_price: int | None = None
) -> CatalogRow:
    """Rename and/or reprice a product; its stock stays as orders left it (only the named columns are written)."""
    row = await get_catalog(session, product_id)
    if name is not None:
        row.product_name = name
    if unit_price is not None:
        row.unit_price = unit_price
    await session.commit()
    return row


async def add_product(
    sessions: async_sessionmaker[AsyncSession], product_id: str, name: str, stock: int, unit_price: int
) -> None:
    """create_product with a session of its own (tests and benchmarks add their products so)."""
    async with sessions() as session:
        await create_product(session, product_id, name, stock, unit_price)


async def remove_product(sessions: async_sessionmaker[AsyncSession], product_id: str) -> None:
    """The product only: the ledger keeps its orders' outcomes for redeliveries still to come."""
    async with sessions.begin() as session:
        await session.execute(delete(CatalogRow).where(CatalogRow.product_id == product_id))


EXPIRY_NOTICE_MISMATCHES = Counter(
    "expiry_notice_mismatches_total",
    "Expiry notices that describe their order otherwise than the ledger row does (the row is what is given back)",
)


class LedgerRowChanged(Exception):
    """Another consumer settled a ledger row between our read and our write: the poll's transaction is retried."""


# Tries of one poll's transaction when it meets another consumer's row, a deadlock or a lock wait timeout.
MAX_ATTEMPTS = 5


class StockLedger:
    """Applies the stock topic's records: each order at most once, stock never below zero, the outcome remembered.

    Saga deadlines (README, "Saga deadlines"): an order still unanswered at its deadline is settled EXPIRED by
    order-service's expirer, which also puts an expiry notice behind the request on its partition. So a request
    read after its deadline takes no stock and is answered by nobody here (the expirer answers); a notice for an
    order answered here too late (a crash between this commit and the Kafka commit can delay the answer) takes
    the answer back: stock returned, ledger row EXPIRED, EXPIRED published again so that it is the last word.
    What is given back and published is the ledger row's product and qty, never the notice's (security review
    N3): a notice only names the order; one that disagrees with the row is logged and counted.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], deadline_seconds: float = DEFAULT_ORDER_DEADLINE_SECONDS
    ) -> None:
        self._sessions = sessions
        self.deadline_seconds = deadline_seconds

    async def apply_all(self, orders: list[Order]) -> list[Order]:
        """Applies stock requests (PENDING) and expiry notices (EXPIRED) in order, in ONE database transaction (one
        commit for a whole poll), and returns the records to publish on `orders`: CONFIRMED (stock taken) or
        REJECTED (not enough stock, unknown product) per request answered in time, the recorded answer again for a
        redelivered request, EXPIRED where a notice took an answer back. A redelivery never touches stock again."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._apply_together(orders)
            except (DBAPIError, LedgerRowChanged) as exc:
                # IntegrityError, LedgerRowChanged: another consumer recorded or settled one of these orders since
                # we looked; the retry reads its outcome. Deadlocks and lock wait timeouts: the retry usually goes
                # through.
                code = None
                if isinstance(exc, DBAPIError) and exc.orig is not None and exc.orig.args:
                    code = exc.orig.args[0]
                retryable = isinstance(exc, IntegrityError | LedgerRowChanged) or code in _RETRYABLE_MYSQL_ERRORS
                if not retryable or attempt == MAX_ATTEMPTS:
                    raise
                log.warning("stock transaction retried", extra={"orders": len(orders), "mysql_error": code})
                await asyncio.sleep(0.01 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def _apply_together(self, orders: list[Order]) -> list[Order]:
        """Read the ledger rows and the stock (rows locked), decide (stock_rules.decide), write what it says."""
        async with self._sessions.begin() as session:
            recorded = {
                row.order_id: row.to_order()
                for row in await session.scalars(
                    select(ProcessedOrder).where(ProcessedOrder.order_id.in_({o.order_id for o in orders}))
                )
            }
            # Lock the products' rows (in key order, so racing consumers queue instead of deadlocking) and
            # decide every order against the stock as it is now; racing consumers wait for our commit.
            stock = {
                product_id: left
                for product_id, left in await session.execute(
                    select(CatalogRow.product_id, CatalogRow.stock)
                    .where(CatalogRow.product_id.in_({o.product_id for o in (*orders, *recorded.values())}))
                    .order_by(CatalogRow.product_id)
                    .with_for_update()
                )
            }
            decisions = decide(orders, recorded, stock, now=now_ms(), deadline_seconds=self.deadline_seconds)
            for product_id, qty in decisions.change.items():
                if qty > 0:
                    await self._take_stock(session, product_id, qty)
                elif qty < 0:
                    await self._give_back_stock(session, product_id, -qty)
            if decisions.fresh:
                await session.execute(
                    insert(ProcessedOrder), [ProcessedOrder.values_of(o) for o in decisions.fresh.values()]
                )
            for order_id, answered in decisions.expired_late.items():
                # Only from the status we read: a consumer that settled it meanwhile must not have it given back twice.
                settled = await session.execute(
                    update(ProcessedOrder)
                    .where(ProcessedOrder.order_id == order_id, ProcessedOrder.status == answered.value)
                    .values(status=OrderStatus.EXPIRED.value)
                )
                if settled.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's Result is a CursorResult
                    raise LedgerRowChanged(f"ledger row of {order_id} is no longer {answered.value}")
        self._report(decisions, recorded)
        return decisions.to_publish

    @staticmethod
    def _report(decisions: Decisions, recorded: dict[str, Order]) -> None:
        """After the commit: the logs and counts of what the poll did."""
        for order_id in decisions.redelivered:
            log.info("redelivered order, outcome reused", extra={"order_id": order_id})
        fresh, expired_late, disagreeing = decisions.fresh, decisions.expired_late, decisions.disagreeing
        for outcome in fresh.values():
            log.info(
                "stock request applied",
                extra={"order_id": outcome.order_id, "product_id": outcome.product_id, "status": outcome.status},
            )
        for order_id, answered in expired_late.items():
            taken_back = recorded[order_id]
            log.warning(
                "answered after its deadline: taken back, now EXPIRED",
                extra={
                    "order_id": order_id,
                    "product_id": taken_back.product_id,
                    "qty": taken_back.qty,
                    "answered": answered,
                },
            )
        for notice, row in disagreeing:
            EXPIRY_NOTICE_MISMATCHES.inc()
            log.warning(
                "expiry notice disagrees with the ledger; the ledger row was taken back",
                extra={
                    "order_id": notice.order_id,
                    "fields": differences(notice, row),
                    "notice_product_id": notice.product_id,
                    "notice_qty": notice.qty,
                    "ledger_product_id": row.product_id,
                    "ledger_qty": row.qty,
                },
            )

    @staticmethod
    async def _give_back_stock(session: AsyncSession, product_id: str, qty: int) -> None:
        await session.execute(
            update(CatalogRow).where(CatalogRow.product_id == product_id).values(stock=CatalogRow.stock + qty)
        )

    @staticmethod
    async def _take_stock(session: AsyncSession, product_id: str, qty: int) -> None:
        # Conditional decrement: with the row locked it always matches; the WHERE still refuses to oversell.
        taken = await session.execute(
            update(CatalogRow)
            .where(CatalogRow.product_id == product_id, CatalogRow.stock >= qty)
            .values(stock=CatalogRow.stock - qty)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise RuntimeError(f"stock of {product_id} changed under a row lock")
