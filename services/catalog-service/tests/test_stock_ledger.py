"""StockLedger against the real catalogdb: confirm, reject, at most once, never oversell, expire."""

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service.config import CatalogSettings
from catalog_service.models import ProcessedOrder
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


# Saga deadlines: requests read too late, and expiry notices from order-service's expirer.


def past_deadline(order: Order, ledger: StockLedger) -> Order:
    """The same order, created so long ago that its deadline has passed."""
    return replace(order, created_at=order.created_at - dt.timedelta(seconds=ledger.deadline_seconds + 1))


async def test_a_request_read_after_its_deadline_takes_no_stock_publishes_nothing_and_is_recorded_expired(
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=5)
    ledger = StockLedger(sessions, deadline_seconds=30)
    late = past_deadline(pending_order(product_id, qty=2), ledger)

    assert await ledger.apply_all([late]) == []
    # Redelivered, or its expiry notice arriving: still nothing taken, nothing published.
    assert await ledger.apply_all([late, late.with_status(OrderStatus.EXPIRED)]) == []

    assert await stock_of(product_id) == 5
    assert await recorded_status(sessions, late.order_id) == "EXPIRED"


async def test_an_expiry_notice_after_a_confirmation_gives_the_stock_back_and_publishes_expired_once(
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=5)
    ledger = StockLedger(sessions)
    order = pending_order(product_id, qty=2)
    assert (await applied(ledger, order)).status is OrderStatus.CONFIRMED
    assert await stock_of(product_id) == 3

    notice = order.with_status(OrderStatus.EXPIRED)
    assert await ledger.apply_all([notice]) == [notice]
    # The notice redelivered: already expired, nothing more.
    assert await ledger.apply_all([notice, order]) == []

    assert await stock_of(product_id) == 5
    assert await recorded_status(sessions, order.order_id) == "EXPIRED"


async def test_an_expiry_notice_after_a_rejection_publishes_expired_and_leaves_stock(
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=1)
    ledger = StockLedger(sessions)
    order = pending_order(product_id, qty=2)
    assert (await applied(ledger, order)).status is OrderStatus.REJECTED

    notice = order.with_status(OrderStatus.EXPIRED)
    assert await ledger.apply_all([notice]) == [notice]

    assert await stock_of(product_id) == 1
    assert await recorded_status(sessions, order.order_id) == "EXPIRED"


async def test_an_expiry_notice_for_an_order_never_seen_is_recorded_and_its_late_request_takes_nothing(
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=5)
    ledger = StockLedger(sessions)
    order = pending_order(product_id, qty=2)

    assert await ledger.apply_all([order.with_status(OrderStatus.EXPIRED)]) == []
    # Its stock request, redelivered from before the notice (a rewind), within the deadline: still no stock.
    assert await ledger.apply_all([order]) == []

    assert await stock_of(product_id) == 5
    assert await recorded_status(sessions, order.order_id) == "EXPIRED"


def forged(order: Order, wrong: str, other_product: str) -> Order:
    """The order's expiry notice, lying about what was taken: a bigger qty, another product, or both."""
    qty = order.qty + 40 if wrong in ("qty", "both") else order.qty
    product_id = other_product if wrong in ("product", "both") else order.product_id
    return replace(
        order, product_id=product_id, qty=qty, total_price=qty * order.unit_price, status=OrderStatus.EXPIRED
    )


def mismatches() -> float:
    return REGISTRY.get_sample_value("expiry_notice_mismatches_total") or 0.0


@pytest.mark.parametrize("wrong", ["qty", "product", "both"])
async def test_an_expiry_notice_with_a_wrong_qty_or_product_gives_back_only_what_the_ledger_took(
    wrong: str,
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id, other_product = await new_product(stock=10), await new_product(stock=5)
    ledger = StockLedger(sessions)
    order = pending_order(product_id, qty=2)
    assert (await applied(ledger, order)).status is OrderStatus.CONFIRMED
    counted = mismatches()

    notice = forged(order, wrong, other_product)
    published = await ledger.apply_all([notice])
    # The forged notice again, and the true one: the ledger row is EXPIRED already, nothing more is given back.
    again = await ledger.apply_all([notice, order.with_status(OrderStatus.EXPIRED)])

    assert (await stock_of(product_id), await stock_of(other_product)) == (10, 5)
    # Published as the ledger knows the order: its own product and qty, now EXPIRED; once.
    assert published == [order.with_status(OrderStatus.EXPIRED)]
    assert again == []
    assert await recorded_status(sessions, order.order_id) == "EXPIRED"
    assert mismatches() == counted + 1  # the redelivered forgery meets an EXPIRED row: nothing to compare


async def test_a_forged_expiry_notice_for_a_rejected_order_changes_no_stock(
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id, other_product = await new_product(stock=1), await new_product(stock=5)
    ledger = StockLedger(sessions)
    order = pending_order(product_id, qty=2)
    assert (await applied(ledger, order)).status is OrderStatus.REJECTED

    published = await ledger.apply_all([forged(order, "both", other_product)])

    assert (await stock_of(product_id), await stock_of(other_product)) == (1, 5)
    assert published == [order.with_status(OrderStatus.EXPIRED)]


async def test_two_ledgers_racing_on_the_same_expiry_notices_give_each_order_back_once(
    settings: CatalogSettings,
    sessions: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    stock_of: StockOf,
    pending_order: PendingOrder,
) -> None:
    product_id = await new_product(stock=40)
    orders = [pending_order(product_id, qty=1) for _ in range(30)]
    assert {o.status for o in await StockLedger(sessions).apply_all(orders)} == {OrderStatus.CONFIRMED}
    other_engine = make_engine(settings, settings.catalog_db)
    ledgers = [StockLedger(sessions), StockLedger(make_sessions(other_engine))]
    try:
        # Each notice offered to both ledgers at once (a partition changing owner mid-poll, say).
        published = await asyncio.gather(
            *(ledger.apply_all([o.with_status(OrderStatus.EXPIRED)]) for o in orders for ledger in ledgers)
        )
    finally:
        await other_engine.dispose()

    assert await stock_of(product_id) == 40
    assert sorted(o.order_id for batch in published for o in batch) == sorted(o.order_id for o in orders)


async def recorded_status(sessions: async_sessionmaker[AsyncSession], order_id: str) -> str | None:
    async with sessions() as session:
        row = await session.get(ProcessedOrder, order_id)
        return row.status if row is not None else None
