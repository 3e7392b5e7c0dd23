"""Cluster mode (3 KRaft brokers at RF 3 / min.insync.replicas 2, 2 Connect workers, 2 catalog-service instances):
losing any one node loses nothing, and losing two stops writes cleanly. One cluster for the module; the scenarios
run in order, each leaving the cluster whole again."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from demo.gateway_client import GatewayClient, User
from launcher import connect, kafka
from launcher.side_stack import SideStack
from order_contract.topics import ORDERS_TOPIC, STOCK_TOPIC
from order_service.service import idempotent_order_id
from servicekit.testing import DictConnection, TopicReader, eventually
from tests.e2e.orders_table import SEED_STOCK, rows_of_user, settled, stock_drift
from tests.e2e.test_faults import Progress, place_until

pytestmark = pytest.mark.stack

ISR_DEADLINE_SECONDS = 60


@contextlib.asynccontextmanager
async def admin_of(cluster: SideStack) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**cluster.config.kafka_access.client_options(), request_timeout_ms=5000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partitions(cluster: SideStack, topics: list[str] | None = None) -> list[dict[str, Any]]:
    """Every partition of `topics` (all topics, the internal ones too, when None) with its leader and ISR."""
    async with admin_of(cluster) as admin:
        names = topics if topics is not None else await admin.list_topics()
        described = await admin.describe_topics(names)
    return [{"topic": t["topic"], **p} for t in described for p in t["partitions"]]


async def leader_of_most(cluster: SideStack, topic: str) -> int:
    leaders = [p["leader"] for p in await partitions(cluster, [topic])]
    return int(max(set(leaders), key=leaders.count))


async def in_every_isr(cluster: SideStack, node_id: int) -> bool | None:
    """True once `node_id` is in the ISR of every partition it holds a replica of (every topic)."""
    try:
        found = await partitions(cluster)
    except Exception:  # metadata while the node rejoins
        return None
    lagging = [p for p in found if node_id in p["replicas"] and node_id not in p["isr"]]
    return True if found and not lagging else None


def active_controller(cluster: SideStack) -> int | None:
    """The node whose JMX exporter says it leads the KRaft controller quorum."""
    leading = [
        node.node_id
        for node in cluster.config.kafka_nodes
        if (kafka.node_summary(node) or "").startswith("leads the controller quorum")
    ]
    return leading[0] if len(leading) == 1 else None


class OrderFlow:
    """Three careful clients placing orders (Idempotency-Key, retried after 5xx) until stopped."""

    def __init__(self, gateway: GatewayClient, buyers: list[User], products: list[str]) -> None:
        self.progress, self.stopped = Progress(), asyncio.Event()
        self._flow = asyncio.ensure_future(
            asyncio.gather(*(place_until(gateway, user, products, self.stopped, self.progress) for user in buyers))
        )

    async def reached(self, count: int) -> None:
        await self.progress.reached(count, self._flow)
        assert not self._flow.done(), f"the clients stopped early: {self._flow}"
        assert len(self.progress.accepted) >= count, f"only {len(self.progress.accepted)} of {count} accepted"

    async def more(self, count: int) -> None:
        await self.reached(len(self.progress.accepted) + count)

    async def stop(self) -> list[str]:
        self.stopped.set()
        await self._flow
        return self.progress.accepted


async def assert_settled_once(
    orders_db: DictConnection, buyers: list[User], accepted: list[str], statuses: set[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every accepted order has exactly one row, none PENDING, and the buyers have no row beyond them (a retry
    never made a second order)."""
    assert len(accepted) == len(set(accepted)), "an order id was accepted twice"
    rows = await eventually(
        lambda: settled(orders_db, accepted), within=120, what="every accepted order has one settled row"
    )
    theirs = {row["order_id"] for user in buyers for row in rows_of_user(orders_db, user.user_id)}
    assert theirs == set(accepted), f"rows without an accepted order: {sorted(theirs - set(accepted))[:5]}"
    if statuses is not None:
        assert {row["status"] for row in rows.values()} <= statuses
    return rows


async def assert_no_drift(gateway: GatewayClient, orders_db: DictConnection, products: dict[str, int]) -> None:
    async def stock() -> dict[str, int] | None:
        try:
            return await gateway.stock()
        except httpx.HTTPError:
            return None

    drift = stock_drift(orders_db, products, await eventually(stock, within=30, what="the catalog answering"))
    assert set(drift.values()) == {0}, f"stock moved by exactly the confirmed quantities: {drift}"


async def test_killing_the_broker_that_leads_most_orders_partitions_loses_and_duplicates_nothing(
    cluster: SideStack,
    gateway: GatewayClient,
    buyers: list[User],
    orders_db: DictConnection,
    fresh_products: dict[str, int],
) -> None:
    victim = await leader_of_most(cluster, ORDERS_TOPIC)
    flow = OrderFlow(gateway, buyers, list(fresh_products))
    try:
        await flow.reached(60)
        await asyncio.to_thread(cluster.kill, f"kafka-{victim}")
        await flow.more(90)
        await asyncio.to_thread(cluster.start, f"kafka-{victim}")
        restarted = time.monotonic()
        await flow.reached(300)
    finally:
        accepted = await flow.stop()
        await asyncio.to_thread(cluster.start, f"kafka-{victim}")

    await eventually(
        lambda: in_every_isr(cluster, victim),
        within=max(1.0, ISR_DEADLINE_SECONDS - (time.monotonic() - restarted)),
        what=f"kafka-{victim} back in every ISR within {ISR_DEADLINE_SECONDS} s of its restart",
    )
    await assert_settled_once(orders_db, buyers, accepted, {"CONFIRMED"})
    await assert_no_drift(gateway, orders_db, fresh_products)


async def test_killing_the_active_controller_elects_another_and_orders_keep_flowing(
    cluster: SideStack,
    gateway: GatewayClient,
    buyers: list[User],
    orders_db: DictConnection,
    fresh_products: dict[str, int],
) -> None:
    leader = await eventually(lambda: active_controller(cluster), within=30, what="one active KRaft controller")
    flow = OrderFlow(gateway, buyers, list(fresh_products))
    try:
        await flow.reached(20)
        await asyncio.to_thread(cluster.kill, f"kafka-{leader}")
        successor = await eventually(
            lambda: active_controller(cluster), within=30, what="another node elected controller"
        )
        assert successor != leader
        await flow.more(40)
    finally:
        accepted = await flow.stop()
        await asyncio.to_thread(cluster.start, f"kafka-{leader}")
    await eventually(lambda: in_every_isr(cluster, leader), within=ISR_DEADLINE_SECONDS, what="the old leader back")
    await assert_settled_once(orders_db, buyers, accepted, {"CONFIRMED"})
    await assert_no_drift(gateway, orders_db, fresh_products)


def sink_tasks_by_worker(cluster: SideStack) -> dict[str, list[str]] | None:
    """orders-sink's RUNNING tasks by the worker running them (host:port); None unless all run."""
    url = f"{connect.answering_url(cluster.config)}/connectors/{connect.SINK_CONNECTOR}/status"
    status = httpx.get(url, auth=connect.rest_auth(cluster.config), timeout=5).json()
    tasks = status.get("tasks", [])
    if not tasks or any(task["state"] != "RUNNING" for task in tasks):
        return None
    by_worker: dict[str, list[str]] = {}
    for task in tasks:
        by_worker.setdefault(task["worker_id"], []).append(str(task["id"]))
    return by_worker


async def test_killing_one_of_two_connect_workers_moves_its_sink_tasks_and_writes_each_order_once(
    cluster: SideStack,
    gateway: GatewayClient,
    buyers: list[User],
    orders_db: DictConnection,
    fresh_products: dict[str, int],
) -> None:
    before = await eventually(lambda: sink_tasks_by_worker(cluster), within=60, what="orders-sink running")
    busiest = max(before, key=lambda worker: len(before[worker]))
    victim = next(w for w in cluster.config.connect_workers if busiest.endswith(f":{w.port}"))
    flow = OrderFlow(gateway, buyers, list(fresh_products))
    try:
        await flow.reached(20)
        await asyncio.to_thread(cluster.kill, victim.name)

        def moved() -> dict[str, list[str]] | None:
            now = sink_tasks_by_worker(cluster)
            return now if now is not None and busiest not in now else None

        after = await eventually(moved, within=90, what=f"{victim.name}'s sink tasks running on the other worker")
        assert sum(len(tasks) for tasks in after.values()) == sum(len(tasks) for tasks in before.values())
        await flow.more(30)
    finally:
        accepted = await flow.stop()
        await asyncio.to_thread(cluster.start, victim.name)
    await assert_settled_once(orders_db, buyers, accepted, {"CONFIRMED"})


async def test_killing_one_of_two_catalog_instances_rebalances_and_takes_no_stock_twice(
    cluster: SideStack,
    gateway: GatewayClient,
    buyers: list[User],
    orders_db: DictConnection,
    catalog_db: DictConnection,
    scarce_product: dict[str, int],
) -> None:
    # The flow sells the product out, so later orders are REJECTED and "never below zero" is tested for real.
    product, stock = next(iter(scarce_product.items()))
    lowest = [stock]

    async def watch_stock(stop: asyncio.Event) -> None:
        while not stop.is_set():
            with catalog_db.cursor() as cursor:
                cursor.execute("SELECT stock FROM catalogs WHERE product_id = %s", (product,))
                row = cursor.fetchone()
            catalog_db.commit()  # a fresh snapshot next time (REPEATABLE READ)
            assert row is not None, f"{product} vanished"
            lowest[0] = min(lowest[0], row["stock"])
            await asyncio.sleep(0.2)

    flow = OrderFlow(gateway, buyers, [product])
    watching = asyncio.Event()
    watcher = asyncio.ensure_future(watch_stock(watching))
    try:
        await flow.reached(15)
        await asyncio.to_thread(cluster.kill, "catalog-service-1")
        await flow.more(45)
    finally:
        accepted = await flow.stop()
        await asyncio.to_thread(cluster.start, "catalog-service-1")
    rows = await assert_settled_once(orders_db, buyers, accepted, {"CONFIRMED", "REJECTED"})
    watching.set()
    await watcher
    confirmed = sum(row["qty"] for row in rows.values() if row["status"] == "CONFIRMED")
    assert confirmed == stock, f"the product sold out exactly once: {confirmed} of {stock} confirmed"
    assert lowest[0] >= 0, f"stock went below zero: {lowest[0]}"
    await assert_no_drift(gateway, orders_db, scarce_product)


async def test_two_of_three_brokers_down_fails_orders_fast_with_503_and_their_retries_succeed_after_return(
    cluster: SideStack, gateway: GatewayClient, buyers: list[User], orders_db: DictConnection
) -> None:
    buyer, product = buyers[0], "CATALOG-001"
    key = uuid.uuid4().hex
    order_id = idempotent_order_id(buyer.user_id, key)
    victims = [node.name for node in cluster.config.kafka_nodes[1:]]  # nodes 2 and 3; 1 stays
    kafka_access = cluster.config.kafka_access
    async with TopicReader(kafka_access, ORDERS_TOPIC) as orders, TopicReader(kafka_access, STOCK_TOPIC) as requests:
        try:
            for name in victims:
                await asyncio.to_thread(cluster.kill, name)
            started = time.monotonic()
            refused = await gateway.order(buyer, product, 1, idempotency_key=key)
            waited = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert waited < 15, f"the 503 took {waited:.1f} s (publish timeout 10 s)"
            assert rows_of_user(orders_db, buyer.user_id) == []
        finally:
            await asyncio.to_thread(cluster.start, *victims)

        async def retried() -> httpx.Response | None:
            """The client's retry of the refused order, with its Idempotency-Key, until accepted."""
            try:
                response = await gateway.order(buyer, product, 1, idempotency_key=key)
            except httpx.HTTPError:
                return None
            return response if response.status_code == 201 else None

        accepted = await eventually(retried, within=120, what="the retried order accepted", interval=0.5)
        assert accepted.json()["orderId"] == order_id, "the retry is the same order"

        def of_order(records: list[Any]) -> list[Any]:
            return [r for r in records if r.key is not None and order_id.encode() in (r.value or b"")]

        # Each topic holds, committed, exactly what the accepted retry wrote: the refused attempt left nothing.
        await orders.read_until(lambda rs: len(of_order(rs)) >= 2, within=60, what="the order and its outcome")
        await requests.read_until(lambda rs: len(of_order(rs)) >= 1, within=60, what="its stock request")
        assert len(of_order(requests.records)) == 1
        assert len(of_order(orders.records)) == 2  # PENDING from order-service, CONFIRMED from catalog-service
    # Accepted once, settled once. Whether CONFIRMED or EXPIRED depends on how soon catalog-service's consumer
    # group finds its coordinator again after the quorum came back (it can take longer than the order's deadline);
    # either way the stock moved by exactly what was confirmed.
    await assert_settled_once(orders_db, [buyer], [order_id], {"CONFIRMED", "EXPIRED"})
    await assert_no_drift(gateway, orders_db, {product: SEED_STOCK[product]})
    for node in cluster.config.kafka_nodes[1:]:
        await eventually(partial(in_every_isr, cluster, node.node_id), within=ISR_DEADLINE_SECONDS, what=node.name)
