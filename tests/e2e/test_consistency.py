"""The mission, end to end through the gateway: several order-service instances, one consistent database."""

import asyncio
import uuid

import pytest

from servicekit.testing import DictConnection, eventually
from stack_support.api_client import GatewayClient
from tests.e2e.orders_table import SEED_PRICE, SEED_STOCK, settled, stock_drift

pytestmark = pytest.mark.stack

PRODUCTS = list(SEED_STOCK)


async def test_concurrent_orders_reach_one_table_through_several_instances_and_every_instance_agrees(
    gateway: GatewayClient, orders_db: DictConnection
) -> None:
    users = await asyncio.gather(*(gateway.sign_up(f"Buyer {n}") for n in range(4)))
    stock_before = await gateway.stock()

    placed = await asyncio.gather(
        *(
            gateway.place_order(user, PRODUCTS[n % 3], 1, SEED_PRICE[PRODUCTS[n % 3]])
            for user in users
            for n in range(6)
        )
    )

    assert {p.order["status"] for p in placed} == {"PENDING"}
    assert len({p.instance_id for p in placed}) >= 2, "round robin spreads orders over the instances"
    order_ids = [p.order_id for p in placed]
    rows = await eventually(lambda: settled(orders_db, order_ids), within=60, what="one settled row per accepted order")
    assert {r["status"] for r in rows.values()} <= {"CONFIRMED", "REJECTED"}

    for user in users:
        answers: dict[str, list[str]] = {}
        for _ in range(4):
            orders, instance = await gateway.orders_of(user)
            answers.setdefault(instance, sorted(o["orderId"] + o["status"] for o in orders))
        assert len(answers) >= 2, "both instances were asked"
        assert len({tuple(a) for a in answers.values()}) == 1, f"instances disagree: {answers}"

    stock_after = await gateway.stock()
    for product in PRODUCTS:
        confirmed = sum(1 for r in rows.values() if r["product_id"] == product and r["status"] == "CONFIRMED")
        assert stock_before[product] - stock_after[product] == confirmed
    assert set(stock_drift(orders_db, SEED_STOCK, stock_after).values()) == {0}


async def test_order_larger_than_the_stock_is_rejected_and_leaves_the_stock_alone(
    gateway: GatewayClient, orders_db: DictConnection
) -> None:
    user = await gateway.sign_up("Big Spender")
    product = "CATALOG-003"
    before = (await gateway.stock())[product]

    placed = await gateway.place_order(user, product, before + 1, SEED_PRICE[product])

    rows = await eventually(lambda: settled(orders_db, [placed.order_id]), within=60, what="the order settles")
    assert rows[placed.order_id]["status"] == "REJECTED"
    assert (await gateway.stock())[product] == before


async def test_client_retrying_with_one_idempotency_key_gets_one_order_and_one_decrement(
    gateway: GatewayClient, orders_db: DictConnection
) -> None:
    user = await gateway.sign_up("Retrying Client")
    key = uuid.uuid4().hex
    product = "CATALOG-002"
    before = (await gateway.stock())[product]

    first = await gateway.place_order(user, product, 1, SEED_PRICE[product], idempotency_key=key)
    rows = await eventually(lambda: settled(orders_db, [first.order_id]), within=60, what="the order settles")
    retries = [await gateway.place_order(user, product, 1, SEED_PRICE[product], idempotency_key=key) for _ in range(4)]

    assert {r.order_id for r in retries} == {first.order_id}
    orders, _ = await gateway.orders_of(user)
    assert [o["orderId"] for o in orders] == [first.order_id]
    expected_taken = 1 if rows[first.order_id]["status"] == "CONFIRMED" else 0
    assert (await gateway.stock())[product] == before - expected_taken
