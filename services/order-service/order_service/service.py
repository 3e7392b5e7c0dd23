"""Placing and listing orders, priced from the catalog read model (catalog.py). Raises domain errors; api.py
turns them into HTTP answers."""

import asyncio
import base64
import datetime as dt
import heapq
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_contract.catalog_change import CatalogProduct
from order_contract.order import MAX_TEXT_LENGTH, Order, OrderStatus
from order_contract.timestamps import as_utc, now_ms
from order_service.messaging import PublishFailed
from order_service.models import OrderRow
from order_service.schemas import OrderRequest
from order_service.sinks import OrderSink
from order_service.view import Claim, Freshness, OrderView, Position
from servicekit.errors import Conflict, InvalidInput, NotFound, Unavailable

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


class IdempotencyKeyReused(InvalidInput):
    """422: the key names an order with another body (the IETF Idempotency-Key draft's "key reused")."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"Idempotency-Key: already used for order {order_id} with another productId or qty",
            field="Idempotency-Key",
        )


class UnknownOrder(NotFound):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order {order_id} for this user")


def idempotent_order_id(user_id: str, idempotency_key: str) -> str:
    """The same key from the same user always names the same order."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"order:{user_id}:{idempotency_key}"))


@dataclass(frozen=True)
class Placed:
    """An accepted order and where its record is on `orders` (None: answered from what was already known, or the
    local store)."""

    order: Order
    position: Position | None


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_cursor: str | None
    freshness: Freshness


# Where an order sorts in a user's list, newest first: (created_at as the table holds it, order id). The view's
# record and the row give an order the same key, so an order keeps its place while the sink writes it.
OrderKey = tuple[dt.datetime, str]


class InvalidCursor(InvalidInput):
    def __init__(self) -> None:
        super().__init__("cursor: not a cursor this service gave out", field="cursor")


def order_key(order: Order) -> OrderKey:
    return as_utc(order.created_at).replace(tzinfo=None), order.order_id


def _cursor(key: OrderKey) -> str:
    """Where the next page starts: after this order in key order, opaque to clients."""
    created_at, order_id = key
    position = f"{created_at.strftime('%Y%m%d%H%M%S%f')}.{order_id}"
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def _position(cursor: str) -> OrderKey:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, order_id = text.split(".", 1)
        if not 0 < len(order_id) <= MAX_TEXT_LENGTH:
            raise ValueError(order_id)
        return dt.datetime.strptime(moment, "%Y%m%d%H%M%S%f"), order_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor from exc


def view_orders(rows: list[Order], held_before: list[Order], held_after: list[Order]) -> list[Order]:
    """The view's orders a page merges with `rows`, the table read between the two looks at the view.

    What the view holds after the table was read is each order's latest record, never older than its row. An order
    it held before but not after left because the sink wrote its row meanwhile, and the table, read before that
    write became visible, may not show it: then the record held before is the only one, and it stays."""
    known = {order.order_id for order in rows} | {order.order_id for order in held_after}
    return held_after + [order for order in held_before if order.order_id not in known]


def merge_page(
    rows: list[Order], pending: list[Order], *, after: OrderKey | None, limit: int
) -> tuple[list[Order], OrderKey | None]:
    """One page of a user's orders, newest first, and the key the next page starts after (None: the last page).

    `rows` are the table's first `limit + 1` orders after `after`, newest first; `pending` are the view's orders of
    the user, each the order's latest record (newer than its row, if it has one). An order the table does not show
    yet takes the place its row will take; one past the last row read belongs to a later page."""
    merged = {order.order_id: (order_key(order), order) for order in rows}
    floor = order_key(rows[-1]) if len(rows) > limit else None  # rows past this one were not read
    candidates = []
    for order in pending:
        if order.order_id in merged:
            merged[order.order_id] = (merged[order.order_id][0], order)
            continue
        key = order_key(order)
        if (after is None or key < after) and (floor is None or key > floor):
            candidates.append((key, order))
    # A user with thousands of orders the table does not show yet: only the newest can be on this page.
    for key, order in heapq.nlargest(limit + 1, candidates, key=lambda candidate: candidate[0]):
        merged[order.order_id] = (key, order)
    ranked = sorted(merged.values(), key=lambda item: item[0], reverse=True)
    page = ranked[:limit]
    return [order for _, order in page], (page[-1][0] if len(ranked) > limit else None)


class Catalog(Protocol):
    """Where products and their prices are looked up (CatalogReadModel; a test may pass a dict-like stand-in)."""

    def get(self, product_id: str) -> CatalogProduct | None: ...


class OrderIntake:
    """Takes orders: prices them from the catalog, hands the PENDING order to the sink (sinks.py), answers retries
    with the same order. Orders are read back from `sessions`: the shared table the JDBC sink fills (ORDER_STORE=kafka),
    merged with this instance's view of `orders` (view.py: what the table does not show yet), or this instance's own
    database (ORDER_STORE=local, no view)."""

    RECENT_KEYED_ORDERS = 10_000

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        sink: OrderSink,
        view: OrderView | None = None,
        *,
        claim_wait_seconds: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._sink = sink
        self._view = view
        # How long a request whose body another instance claimed first waits for that order to be published.
        self._claim_wait_seconds = claim_wait_seconds
        # Keyed orders this instance answered lately, kept only without a view (the local store).
        self._recent: OrderedDict[str, Order] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[Placed]] = {}

    async def place(self, user_id: str, request: OrderRequest, idempotency_key: str | None) -> Placed:
        if idempotency_key is None:
            return await self._place_new(str(uuid.uuid4()), user_id, request)
        order_id = idempotent_order_id(user_id, idempotency_key)
        in_flight = self._in_flight.get(order_id)
        if in_flight is not None:
            placed = await asyncio.shield(in_flight)
            return Placed(_same_request(placed.order, request), placed.position)
        waiter: asyncio.Future[Placed] = asyncio.get_running_loop().create_future()
        self._in_flight[order_id] = waiter
        try:
            placed = await self._place_keyed(order_id, user_id, request)
            waiter.set_result(placed)
        except asyncio.CancelledError:
            waiter.cancel()
            raise
        except Exception as exc:
            waiter.set_exception(exc)
            waiter.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._in_flight[order_id]
        if self._view is None:  # with a view, the view and the table know every committed order
            self._recent[order_id] = placed.order
            if len(self._recent) > self.RECENT_KEYED_ORDERS:
                self._recent.popitem(last=False)
        return placed

    async def _place_keyed(self, order_id: str, user_id: str, request: OrderRequest) -> Placed:
        """One key, one order, on any instance: the first claim of the order id decides which body is the order
        (view.py); an order already committed answers a retry with the same body and refuses another."""
        if self._view is None:
            existing = await self._stored(order_id) or self._recent.get(order_id)
        else:
            try:
                # Bounded like publishing: a claim the brokers cannot take now is a 503 the client retries.
                claim, mine = await asyncio.wait_for(
                    self._view.claim(order_id, request.product_id, request.qty), self._claim_wait_seconds
                )
            except Exception as exc:
                ORDERS_REFUSED.labels("not_claimed").inc()
                raise OrderNotAccepted(f"the Idempotency-Key could not be claimed: {exc}") from exc
            if mine:
                # Nobody claimed this order id within the claims window: only an older order can exist, in the table.
                existing = await self._stored(order_id)
            else:
                existing = await self._claimed_before(order_id, claim, request)
        if existing is not None:
            # A retry never publishes again, so it cannot take an order back from CONFIRMED to PENDING.
            log.info("idempotent retry answered", extra={"order_id": order_id})
            return Placed(_same_request(existing, request), None)
        return await self._place_new(order_id, user_id, request)

    async def _claimed_before(self, order_id: str, claim: Claim, request: OrderRequest) -> Order | None:
        """Another request claimed the order id first (a retry, or one racing this one). Its order, once every record
        committed before now is read; else a different body is refused, and the same body waits for that request's
        order (None: it was not published in time, so this request publishes the same record)."""
        assert self._view is not None
        await self._view.sync()
        existing = await self._current(order_id)
        if existing is not None:
            return existing
        if not claim.same_body(request.product_id, request.qty):
            ORDERS_REFUSED.labels("key_reused").inc()
            raise IdempotencyKeyReused(order_id)
        waited = claim.timestamp_ms / 1000 + self._claim_wait_seconds - time.time()
        return await self._view.wait_for_order(order_id, max(0.0, waited)) or await self._current(order_id)

    async def _place_new(self, order_id: str, user_id: str, request: OrderRequest) -> Placed:
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
            position = await self._sink.publish(order)
        except PublishFailed as exc:
            ORDERS_REFUSED.labels("not_published").inc()
            log.warning("order not published", extra={"order_id": order_id, "reason": str(exc)})
            raise OrderNotAccepted(str(exc)) from exc
        ORDERS_ACCEPTED.inc()
        log.info("order published", extra={"order_id": order_id})
        return Placed(order, position)

    async def _current(self, order_id: str) -> Order | None:
        """The order's latest status: the view's record (never older than the row), else the table's row."""
        known = self._view.order(order_id) if self._view is not None else None
        return known or await self._stored(order_id)

    async def _stored(self, order_id: str) -> Order | None:
        async with self._sessions() as session:
            row = await session.scalar(select(OrderRow).where(OrderRow.order_id == order_id))
            return row.to_order() if row is not None else None

    async def _sync(self, position: Position | None) -> Freshness:
        if self._view is None:
            return Freshness(0)
        return await self._view.sync(position)

    async def order_of(
        self, user_id: str, order_id: str, *, position: Position | None = None
    ) -> tuple[Order, Freshness]:
        """One of the user's orders, with its current status (read your own writes, as orders_of)."""
        freshness = await self._sync(position)
        order = await self._current(order_id)
        if order is None or order.user_id != user_id:
            raise UnknownOrder(order_id)
        return order, freshness

    async def orders_of(
        self, user_id: str, *, limit: int, cursor: str | None = None, position: Position | None = None
    ) -> OrderPage:
        """A page of the user's orders, newest first, and the cursor of the next page (None: this is the last).
        Every order committed before the call is there with its latest status: the table merged with the view."""
        after = _position(cursor) if cursor is not None else None
        freshness = await self._sync(position)
        query = select(OrderRow).where(OrderRow.user_id == user_id)
        if after is not None:
            created_at, order_id = after
            query = query.where(
                or_(
                    OrderRow.created_at < created_at,
                    and_(OrderRow.created_at == created_at, OrderRow.order_id < order_id),
                )
            )
        query = query.order_by(OrderRow.created_at.desc(), OrderRow.order_id.desc()).limit(limit + 1)
        held_before = self._view.orders_of(user_id) if self._view is not None else []
        async with self._sessions() as session:
            rows = [row.to_order() for row in await session.scalars(query)]
        held_after = self._view.orders_of(user_id) if self._view is not None else []
        orders, next_key = merge_page(rows, view_orders(rows, held_before, held_after), after=after, limit=limit)
        return OrderPage(orders, _cursor(next_key) if next_key is not None else None, freshness)


def _same_request(order: Order, request: OrderRequest) -> Order:
    """A retry names the same product and quantity; a price, when it states one, is the one the order got."""
    if (order.product_id, order.qty) != (request.product_id, request.qty) or request.unit_price not in (
        None,
        order.unit_price,
    ):
        raise IdempotencyKeyReused(order.order_id)
    return order
