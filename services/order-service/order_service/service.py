"""Placing and listing orders, and the catalog-service client they check products with. Raises domain errors;
api.py turns them into HTTP answers."""

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from urllib.parse import quote

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from order_service.messaging import PublishFailed
from order_service.models import OrderRow
from order_service.schemas import OrderRequest
from order_service.sinks import OrderSink
from servicekit.discovery import InstanceSource, RoundRobin
from servicekit.errors import Conflict, InvalidInput, Unavailable

log = logging.getLogger(__name__)

CATALOG_APP = "CATALOG-SERVICE"


class UnknownProduct(InvalidInput):
    def __init__(self, product_id: str) -> None:
        super().__init__(f"productId: unknown product {product_id!r}", field="productId")


class CatalogUnavailable(Unavailable):
    def __init__(self, reason: str) -> None:
        super().__init__(f"catalog-service unavailable: {reason}")


class OrderNotAccepted(Unavailable):
    def __init__(self, reason: str) -> None:
        super().__init__(f"the order could not be published: {reason}")


class IdempotencyKeyReused(Conflict):
    def __init__(self) -> None:
        super().__init__("Idempotency-Key was already used for a different order", field="Idempotency-Key")


def idempotent_order_id(user_id: str, idempotency_key: str) -> str:
    """The same key from the same user always names the same order."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"order:{user_id}:{idempotency_key}"))


class CatalogClient:
    """Does a product exist? Asks catalog-service (round robin, short timeout) and caches the answer briefly."""

    MAX_CACHED = 10_000
    STALE_GRACE_SECONDS = 300.0

    def __init__(
        self,
        registry: InstanceSource,
        http: httpx.AsyncClient,
        *,
        known_ttl: float = 10.0,
        unknown_ttl: float = 1.0,
    ) -> None:
        self._registry = registry
        self._round_robin = RoundRobin()
        self._http = http
        self._known_ttl = known_ttl
        self._unknown_ttl = unknown_ttl
        self._answers: dict[str, tuple[bool, float]] = {}
        self._lookups: dict[str, asyncio.Future[bool]] = {}

    async def require(self, product_id: str) -> None:
        cached = self._answers.get(product_id)
        if cached is not None and cached[1] > time.monotonic():
            exists = cached[0]
        else:
            # One question per product at a time: a burst of orders for it waits for the same answer.
            lookup = self._lookups.get(product_id)
            if lookup is None:
                lookup = asyncio.ensure_future(self._ask_and_remember(product_id))
                self._lookups[product_id] = lookup
                lookup.add_done_callback(lambda _: self._lookups.pop(product_id, None))
            exists = await asyncio.shield(lookup)
        if not exists:
            raise UnknownProduct(product_id)

    async def _ask_and_remember(self, product_id: str) -> bool:
        try:
            exists = await self._ask(product_id)
        except CatalogUnavailable:
            # A product catalog-service confirmed before stays orderable while it is away (a restart):
            # the stock check downstream still decides. A product never seen gets the 503.
            known = self._answers.get(product_id)
            if known is not None and known[0] and known[1] + self.STALE_GRACE_SECONDS > time.monotonic():
                log.warning("catalog-service unreachable; product known from before", extra={"product_id": product_id})
                return True
            raise
        if len(self._answers) >= self.MAX_CACHED:
            self._answers.clear()
        ttl = self._known_ttl if exists else self._unknown_ttl
        self._answers[product_id] = (exists, time.monotonic() + ttl)
        return exists

    async def _ask(self, product_id: str) -> bool:
        instances = self._round_robin.in_turn(CATALOG_APP, self._registry.instances(CATALOG_APP))
        if not instances:
            raise CatalogUnavailable("no instance registered")
        failure = "no answer"
        # Try up to three instances, starting at the next in turn, before giving up.
        for instance in instances[:3]:
            base_url = instance.base_url
            try:
                response = await self._http.get(f"{base_url}/catalogs/{quote(product_id, safe='')}")
            except httpx.HTTPError as exc:
                failure = f"{base_url}: {type(exc).__name__}"
                continue
            if response.status_code == 200:
                return True
            if response.status_code == 404:
                return False
            failure = f"{base_url}: HTTP {response.status_code}"
        raise CatalogUnavailable(failure)


class OrderIntake:
    """Takes orders: checks the product, hands the PENDING order to the sink (sinks.py), answers retries with the
    same order. Orders are read back from `sessions`: the shared table the JDBC sink fills (ORDER_STORE=kafka),
    or this instance's own database (ORDER_STORE=local)."""

    RECENT_KEYED_ORDERS = 10_000

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: CatalogClient,
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
        await self._catalog.require(request.product_id)
        order = Order(
            order_id=order_id,
            user_id=user_id,
            product_id=request.product_id,
            qty=request.qty,
            unit_price=request.unit_price,
            total_price=request.qty * request.unit_price,
            status=OrderStatus.PENDING,
            created_at=now_ms(),
        )
        try:
            await self._sink.publish(order)
        except PublishFailed as exc:
            log.warning("order not published", extra={"order_id": order_id, "reason": str(exc)})
            raise OrderNotAccepted(str(exc)) from exc
        log.info("order published", extra={"order_id": order_id})
        return order

    async def _stored(self, order_id: str) -> Order | None:
        async with self._sessions() as session:
            row = await session.scalar(select(OrderRow).where(OrderRow.order_id == order_id))
            return row.to_order() if row is not None else None

    async def orders_of(self, user_id: str) -> list[Order]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(OrderRow).where(OrderRow.user_id == user_id).order_by(OrderRow.created_at, OrderRow.id)
            )
            return [row.to_order() for row in rows]


def _same_request(order: Order, request: OrderRequest) -> Order:
    if (order.product_id, order.qty, order.unit_price) != (request.product_id, request.qty, request.unit_price):
        raise IdempotencyKeyReused
    return order
