"""Placing and listing orders, priced from the catalog read model (catalog.py). Raises domain errors; api.py
turns them into HTTP answers."""

import asyncio
import base64
import datetime as dt
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_contract.catalog_change import CatalogProduct
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from order_service.messaging import PublishFailed
from order_service.models import OrderRow
from order_service.schemas import OrderRequest
from order_service.sinks import OrderSink
from servicekit.errors import Conflict, InvalidInput, Unavailable

log = logging.getLogger(__name__)

ORDERS_ACCEPTED = Counter("orders_accepted_total", "Orders answered 201 as new (retries answered again not counted)")
ORDERS_REFUSED = Counter("orders_refused_total", "Orders refused before publishing, by reason", ["reason"])


class UnknownProduct(InvalidInput):
    def __init__(self, product_id: str) -> None:
        super().__init__(f"productId: unknown product {product_id!r}", field="productId")


class PriceChanged(Conflict):
    """The client stated a unit price that is not the catalog's: nothing is published, the answer names the
    current price so the client can confirm it."""

    def __init__(self, product: CatalogProduct, stated: int) -> None:
        super().__init__(
            f"unitPrice: {product.product_id} costs {product.unit_price} now, not {stated}",
            field="unitPrice",
            extra={"unitPrice": product.unit_price},
        )


class OrderNotAccepted(Unavailable):
    def __init__(self, reason: str) -> None:
        super().__init__(f"the order could not be published: {reason}")


class IdempotencyKeyReused(Conflict):
    def __init__(self) -> None:
        super().__init__("Idempotency-Key was already used for a different order", field="Idempotency-Key")


def idempotent_order_id(user_id: str, idempotency_key: str) -> str:
    """The same key from the same user always names the same order."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"order:{user_id}:{idempotency_key}"))


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_cursor: str | None


class InvalidCursor(InvalidInput):
    def __init__(self) -> None:
        super().__init__("cursor: not a cursor this service gave out", field="cursor")


def _cursor(row: OrderRow) -> str:
    """Where the next page starts: after this row in (created_at, id) order, opaque to clients."""
    position = f"{row.created_at.strftime('%Y%m%d%H%M%S%f')}.{row.id}"
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def _position(cursor: str) -> tuple[dt.datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, row_id = text.split(".")
        return dt.datetime.strptime(moment, "%Y%m%d%H%M%S%f"), int(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor from exc


class Catalog(Protocol):
    """Where products and their prices are looked up (CatalogReadModel; a test may pass a dict-like stand-in)."""

    def get(self, product_id: str) -> CatalogProduct | None: ...


class OrderIntake:
    """Takes orders: prices them from the catalog, hands the PENDING order to the sink (sinks.py), answers retries
    with the same order. Orders are read back from `sessions`: the shared table the JDBC sink fills (ORDER_STORE=kafka),
    or this instance's own database (ORDER_STORE=local)."""

    RECENT_KEYED_ORDERS = 10_000

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        sink: OrderSink,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._sink = sink
        # Keyed orders this instance answered lately: retries get the same answer before the sink has run.
        self._recent: OrderedDict[str, Order] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[Order]] = {}

    async def place(self, user_id: str, request: OrderRequest, idempotency_key: str | None) -> Order:
        if idempotency_key is None:
            return await self._place_new(str(uuid.uuid4()), user_id, request)
        order_id = idempotent_order_id(user_id, idempotency_key)
        in_flight = self._in_flight.get(order_id)
        if in_flight is not None:
            return _same_request(await asyncio.shield(in_flight), request)
        # The shared table first (it has the current status); this instance's memory covers the sink's lag.
        existing = await self._stored(order_id) or self._recent.get(order_id)
        if existing is not None:
            # A retry never publishes again, so it cannot take an order back from CONFIRMED to PENDING.
            log.info("idempotent retry answered", extra={"order_id": order_id})
            return _same_request(existing, request)
        waiter: asyncio.Future[Order] = asyncio.get_running_loop().create_future()
        self._in_flight[order_id] = waiter
        try:
            order = await self._place_new(order_id, user_id, request)
            waiter.set_result(order)
        except asyncio.CancelledError:
            waiter.cancel()
            raise
        except Exception as exc:
            waiter.set_exception(exc)
            waiter.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._in_flight[order_id]
        self._recent[order_id] = order
        if len(self._recent) > self.RECENT_KEYED_ORDERS:
            self._recent.popitem(last=False)
        return order

    async def _place_new(self, order_id: str, user_id: str, request: OrderRequest) -> Order:
        product = self._catalog.get(request.product_id)
        if product is None:
            ORDERS_REFUSED.labels("unknown_product").inc()
            raise UnknownProduct(request.product_id)
        if request.unit_price is not None and request.unit_price != product.unit_price:
            ORDERS_REFUSED.labels("price_changed").inc()
            raise PriceChanged(product, request.unit_price)
        order = Order(
            order_id=order_id,
            user_id=user_id,
            product_id=request.product_id,
            qty=request.qty,
            unit_price=product.unit_price,
            total_price=request.qty * product.unit_price,
            status=OrderStatus.PENDING,
            created_at=now_ms(),
        )
        try:
            await self._sink.publish(order)
        except PublishFailed as exc:
            ORDERS_REFUSED.labels("not_published").inc()
            log.warning("order not published", extra={"order_id": order_id, "reason": str(exc)})
            raise OrderNotAccepted(str(exc)) from exc
        ORDERS_ACCEPTED.inc()
        log.info("order published", extra={"order_id": order_id})
        return order

    async def _stored(self, order_id: str) -> Order | None:
        async with self._sessions() as session:
            row = await session.scalar(select(OrderRow).where(OrderRow.order_id == order_id))
            return row.to_order() if row is not None else None

    async def orders_of(self, user_id: str, *, limit: int, cursor: str | None = None) -> OrderPage:
        """A page of the user's orders, newest first, and the cursor of the next page (None: this is the last)."""
        query = select(OrderRow).where(OrderRow.user_id == user_id)
        if cursor is not None:
            created_at, row_id = _position(cursor)
            query = query.where(
                or_(
                    OrderRow.created_at < created_at,
                    and_(OrderRow.created_at == created_at, OrderRow.id < row_id),
                )
            )
        query = query.order_by(OrderRow.created_at.desc(), OrderRow.id.desc()).limit(limit + 1)
        async with self._sessions() as session:
            rows = list(await session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _cursor(rows[-1]) if more else None
        return OrderPage([row.to_order() for row in rows], next_cursor)


def _same_request(order: Order, request: OrderRequest) -> Order:
    """A retry names the same product and quantity; a price, when it states one, is the one the order got."""
    if (order.product_id, order.qty) != (request.product_id, request.qty) or request.unit_price not in (
        None,
        order.unit_price,
    ):
        raise IdempotencyKeyReused
    return order
