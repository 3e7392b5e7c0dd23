"""Faults while orders flow: nothing accepted is lost, nothing is duplicated, stock does not drift."""

import asyncio
from typing import Any

import httpx
import pytest

from launcher import connect, services
from launcher.processes import Component, kill, stop
from servicekit.testing import DictConnection, eventually
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient, User
from tests.e2e.orders_table import settled, stock_drift

pytestmark = pytest.mark.stack


class Progress:
    """Order ids accepted so far, and a way to wait until there are enough of them."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self._changed = asyncio.Event()

    def add(self, order_id: str) -> None:
        self.accepted.append(order_id)
        self._changed.set()

    async def reached(self, count: int, flow: asyncio.Future[list[None]]) -> None:
        while len(self.accepted) < count and not flow.done():
            self._changed.clear()
            either: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._changed.wait()), flow]
            await asyncio.wait(either, timeout=60, return_when=asyncio.FIRST_COMPLETED)


async def place_until(
    gateway: GatewayClient, user: User, products: list[str], stop: asyncio.Event, progress: Progress
) -> None:
    """A careful client placing orders until told to stop: every order carries an Idempotency-Key and is
    retried until accepted."""
    n = 0
    while not stop.is_set():
        progress.add(await gateway.place_until_accepted(user, products[n % len(products)], 1))
        n += 1
        await asyncio.sleep(0.05)  # think time: a steady flow, not a flood


async def test_kill_order_instance_restart_connect_and_catalog_while_orders_flow_loses_and_duplicates_nothing(
    gateway: GatewayClient, orders_db: DictConnection, stack_config: StackConfig, fresh_products: dict[str, int]
) -> None:
    users = await asyncio.gather(*(gateway.sign_up(f"Steady Buyer {n}") for n in range(3)))
    progress, faults_done = Progress(), asyncio.Event()
    products = list(fresh_products)
    flow = asyncio.ensure_future(
        asyncio.gather(*(place_until(gateway, u, products, faults_done, progress) for u in users))
    )
    catalog = Component("catalog-service-1")
    try:
        await progress.reached(15, flow)
        await asyncio.to_thread(kill, Component("order-service-2"))

        await progress.reached(len(progress.accepted) + 15, flow)
        await asyncio.to_thread(stop, connect.component(stack_config))
        await asyncio.to_thread(connect.ensure_running, stack_config)

        await progress.reached(len(progress.accepted) + 15, flow)
        await asyncio.to_thread(stop, catalog)
        await asyncio.to_thread(services.restart_service, stack_config, catalog.name)
        await asyncio.to_thread(services.restart_service, stack_config, "order-service-2")
        await progress.reached(len(progress.accepted) + 15, flow)
        assert not flow.done(), "orders flowed through every fault"
    finally:
        faults_done.set()
        await flow
        # Whatever happened above, leave the stack whole for the next test.
        await asyncio.to_thread(connect.ensure_running, stack_config)
        for name in ("catalog-service-1", "order-service-2"):
            await asyncio.to_thread(services.restart_service, stack_config, name)

    accepted = progress.accepted
    assert len(accepted) == len(set(accepted)) >= 60
    rows = await eventually(
        lambda: settled(orders_db, accepted), within=120, what="every accepted order has one settled row"
    )
    assert {row["status"] for row in rows.values()} == {"CONFIRMED"}, "5,000 in stock: every order fits"

    async def stock_once_catalog_answers() -> dict[str, int] | None:
        try:
            return await gateway.stock()
        except httpx.HTTPStatusError:  # 503 until the gateway's registry copy has the restarted instance
            return None

    stock = await eventually(stock_once_catalog_answers, within=30, what="catalog-service answering again")
    drift = stock_drift(orders_db, fresh_products, stock)
    assert set(drift.values()) == {0}, f"stock moved by exactly the confirmed quantities: {drift}"
