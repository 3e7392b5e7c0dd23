"""StockLedger against the real catalogdb: confirm, reject, at most once, never oversell."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service.config import CatalogSettings
from catalog_service.service import StockLedger, remove_product
from order_contract.order import Order, OrderStatus
from servicekit.database import make_engine, make_sessions

pytestmark = pytest.mark.stack


async def applied(ledger: StockLedger, order: Order) -> Order:
    """One order's outcome (the consumer hands the ledger a whole poll)."""
    (outcome,) = await ledger.apply_all([order])
    return outcome


NewProduct = Callable[..., Awaitable[str]]
StockOf = Callable[[str], Awaitable[int]]
PendingOrder = Callable[..., Order]


async def test_order_within_stock_is_confirmed_and_takes_the_stock(
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=10)

    outcome = await applied(StockLedger(sessions), pending_order(product_id, qty=3))

    assert outcome.status is OrderStatus.CONFIRMED
    assert await stock_of(product_id) == 7


async def test_order_larger_than_the_stock_is_rejected_and_stock_unchanged(
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=2)

    outcome = await applied(StockLedger(sessions), pending_order(product_id, qty=3))

    assert outcome.status is OrderStatus.REJECTED
    assert await stock_of(product_id) == 2


async def test_order_for_an_unknown_product_is_rejected(
    sessions: async_sessionmaker[AsyncSession], pending_order: PendingOrder
) -> None:
    missing_product = f"TEST-MISSING-{uuid.uuid4().hex[:8]}"
    try:
        outcome = await applied(StockLedger(sessions), pending_order(missing_product, qty=1))
    finally:
        await remove_product(sessions, missing_product)

    assert outcome.status is OrderStatus.REJECTED


async def test_a_repeated_order_gets_its_recorded_outcome_without_taking_stock_again(
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=5)
    order = pending_order(product_id, qty=4)
    ledger = StockLedger(sessions)

    first = await applied(ledger, order)
    again = await applied(ledger, order)

    assert first.status is again.status is OrderStatus.CONFIRMED
    assert again.created_at == first.created_at
    assert await stock_of(product_id) == 1


async def test_two_ledgers_racing_on_one_product_never_oversell(
    settings: CatalogSettings,
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=40)
    other_engine = make_engine(settings, settings.catalog_db)
    ledgers = [StockLedger(sessions), StockLedger(make_sessions(other_engine))]
    orders = [pending_order(product_id, qty=1) for _ in range(60)]
    try:
        # Every order is offered to both ledgers at once: racing on the stock row and on the ledger row.
        outcomes = await asyncio.gather(*(applied(ledger, order) for order in orders for ledger in ledgers))
    finally:
        await other_engine.dispose()

    by_order: dict[str, set[OrderStatus]] = {}
    for outcome in outcomes:
        by_order.setdefault(outcome.order_id, set()).add(outcome.status)
    assert all(len(statuses) == 1 for statuses in by_order.values())
    confirmed = [order_id for order_id, statuses in by_order.items() if statuses == {OrderStatus.CONFIRMED}]
    assert len(confirmed) == 40
    assert await stock_of(product_id) == 0
