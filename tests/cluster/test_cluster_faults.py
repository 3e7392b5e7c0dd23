"""Cluster mode (3 KRaft brokers at RF 3 / min.insync.replicas 2, 2 Connect workers, 2 catalog-service instances):
losing any one node loses nothing, and losing two stops writes cleanly. One cluster for the module; the scenarios
run in order, each leaving the cluster whole again."""

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from connect_watchdog.source_follower import configured_node
from consistency_audit import Auditor, AuditSettings, Verdict
from launcher import connect, kafka, prometheus, services
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from order_contract.topics import ORDERS_TOPIC, STOCK_TOPIC
from order_service.expiry import EXPIRY_GROUP
from order_service.messaging import OrderPublisher, PublishFailed
from order_service.service import idempotent_order_id
from servicekit.testing import DictConnection, TopicReader, database, eventually
from stack_description import connectors
from stack_support.api_client import GatewayClient, User
from stack_support.catalog_views import priced_everywhere
from stack_support.side_stack import SideStack
from tests.e2e.orders_table import SEED_STOCK, rows_by_id, rows_of_user, settled, stock_drift
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


class TimedProgress(Progress):
    """Progress that also notes when each order was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted_at: list[float] = []

    def add(self, order_id: str) -> None:
        self.accepted_at.append(time.monotonic())
        super().add(order_id)


class OrderFlow:
    """Three careful clients placing orders (Idempotency-Key, retried after 5xx) until stopped."""

    def __init__(self, gateway: GatewayClient, buyers: list[User], products: list[str]) -> None:
        self.progress, self.stopped = TimedProgress(), asyncio.Event()
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
    url = f"{connect.answering_url(cluster.config)}/connectors/{connectors.SINK_CONNECTOR}/status"
    status = httpx.get(url, auth=connectors.rest_auth(cluster.config), timeout=5).json()
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


async def monitor_saw_past(cluster: SideStack, record: Any) -> bool:
    """The monitor's lag view of catalog-service's group has its committed offset past `record`."""
    url = f"http://127.0.0.1:{services.monitor_port(cluster.config)}/v3/kafka/local/consumer/catalog-service/lag"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            status = (await client.get(url)).json()["status"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    ends = {(p["topic"], p["partition"]): p["end"]["offset"] for p in status["partitions"] if p.get("end")}
    return bool(ends.get((record.topic, record.partition), -1) > record.offset)


def status_of(record: Any) -> str:
    return str(json.loads(record.value)["payload"]["status"])


def described(records: list[Any]) -> str:
    """Each record on one line: where, when, and the status (orders) or the whole value (other topics)."""
    lines = []
    for r in records:
        try:
            payload = json.loads(r.value)
            what = payload["payload"]["status"] if "payload" in payload else payload
        except (ValueError, KeyError, TypeError):
            what = r.value
        lines.append(f"{r.topic}[{r.partition}]@{r.offset} ts={r.timestamp} {what}")
    return "\n".join(lines)


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
        returned = time.monotonic()  # the launcher waits until both nodes serve: the quorum is back

        async def retried() -> httpx.Response | None:
            """The client's retry of the refused order, with its Idempotency-Key, until accepted."""
            try:
                response = await gateway.order(buyer, product, 1, idempotency_key=key)
            except httpx.HTTPError:
                return None
            return response if response.status_code == 201 else None

        accepted = await eventually(retried, within=120, what="the retried order accepted", interval=0.5)
        accepted_after = time.monotonic() - returned
        assert accepted.json()["orderId"] == order_id, "the retry is the same order"

        def of_order(records: list[Any]) -> list[Any]:
            return [r for r in records if r.key is not None and order_id.encode() in (r.value or b"")]

        def answered(records: list[Any]) -> bool:
            return any(b'"PENDING"' not in r.value for r in of_order(records))

        await orders.read_until(answered, within=120, what="catalog-service's answer to the order")
        answer = next(r for r in of_order(orders.records) if status_of(r) != "PENDING")
        answered_after = time.monotonic() - returned

        async def read_past_answer(group: str) -> bool:
            """`group` committed an offset past the answer on its partition: it reads `orders` again."""
            async with admin_of(cluster) as admin:
                offsets = await admin.list_consumer_group_offsets(group)
            tp = TopicPartition(answer.topic, answer.partition)
            return tp in offsets and offsets[tp].offset > answer.offset

        await eventually(lambda: settled(orders_db, [order_id]), within=60, what="the sink wrote the answer")
        written_after = time.monotonic() - returned
        await eventually(partial(read_past_answer, EXPIRY_GROUP), within=60, what="the expirers read past the answer")
        expirers_after = time.monotonic() - returned
        await requests.read_until(lambda rs: bool(of_order(rs)), within=60, what="the order's stock request")
        request = of_order(requests.records)[0]
        await eventually(partial(monitor_saw_past, cluster, request), within=60, what="the monitor saw it answered")
        monitor_after = time.monotonic() - returned
        print(
            f"\nquorum back -> retry accepted {accepted_after:.1f} s, answered {answered_after:.1f} s,"
            f" row written {written_after:.1f} s, expirers past it {expirers_after:.1f} s,"
            f" monitor saw it {monitor_after:.1f} s"
        )
        # Each consumer group answers within 10 s of the order being accepted: the stock consumers (the answer),
        # the sink (the row), the expirers (their committed offset, moved at most every 5 s when idle), and the
        # monitor sees the stock consumers' commit (it polls every few seconds).
        for what, after in (
            ("answer", answered_after),
            ("row", written_after),
            ("expirers", expirers_after),
            ("monitor", monitor_after),
        ):
            assert after - accepted_after < 10, f"the {what} came {after - accepted_after:.1f} s after acceptance"
        # Accepted once, settled once; then each topic holds, committed, exactly what the accepted retry wrote
        # (the refused attempt left nothing): PENDING from order-service, CONFIRMED from catalog-service.
        await assert_settled_once(orders_db, [buyer], [order_id])
        await orders.read_to_end()
        await requests.read_to_end()
        assert [status_of(r) for r in of_order(orders.records)] == ["PENDING", "CONFIRMED"], described(
            of_order(orders.records)
        )
        assert len(of_order(requests.records)) == 1, described(of_order(requests.records))
    await assert_no_drift(gateway, orders_db, {product: SEED_STOCK[product]})
    for node in cluster.config.kafka_nodes[1:]:
        await eventually(partial(in_every_isr, cluster, node.node_id), within=ISR_DEADLINE_SECONDS, what=node.name)


async def test_an_order_answered_503_while_two_brokers_are_down_is_not_committed_once_they_return(
    cluster: SideStack,
) -> None:
    # The POST above is refused at its claim; here the publisher alone: its records were sent, the transaction
    # could not commit within the timeout, and the brokers return after the 503. A refused order leaves nothing.
    run = uuid.uuid4().hex[:8]
    kafka_access = cluster.config.kafka_access
    refused = Order(
        f"refused-{run}", f"user-{run}", f"NO-SUCH-PRODUCT-{run}", 1, 100, 100, OrderStatus.PENDING, now_ms()
    )
    publisher = OrderPublisher(kafka_access, f"cluster-test-refused-{run}", lanes=1, commit_timeout=5.0)
    victims = [node.name for node in cluster.config.kafka_nodes[1:]]
    await publisher.start()
    try:
        async with TopicReader(kafka_access, ORDERS_TOPIC) as orders:
            try:
                for name in victims:
                    await asyncio.to_thread(cluster.kill, name)
                with pytest.raises(PublishFailed):
                    await publisher.publish(refused)
            finally:
                await asyncio.to_thread(cluster.start, *victims)
            later = Order(f"later-{run}", *dataclasses.astuple(refused)[1:])

            async def published() -> bool:
                # One lane: it takes this order only once the refused one's transaction has ended.
                try:
                    await publisher.publish(later)
                except PublishFailed:
                    return False
                return True

            await eventually(published, within=120, what="an order published once the brokers are back")
            await orders.read_until(
                lambda rs: any(later.order_id.encode() in (r.value or b"") for r in rs),
                within=30,
                what="the later order visible",
            )
            records = await orders.read_to_end()
    finally:
        await publisher.stop()
    mine = [r for r in records if refused.order_id.encode() in (r.value or b"")]
    assert mine == [], f"the refused order was committed after its 503:\n{described(mine)}"
    for node in cluster.config.kafka_nodes[1:]:
        await eventually(partial(in_every_isr, cluster, node.node_id), within=ISR_DEADLINE_SECONDS, what=node.name)


def process_gone(pid: int) -> bool:
    """The process has died (gone, or a zombie nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@dataclasses.dataclass(frozen=True)
class Kill:
    at: float  # when the process was seen dead (time.monotonic)
    accepted_before: int  # orders accepted by then


async def kill(cluster: SideStack, flow: OrderFlow, name: str) -> Kill:
    """kill -9 `name` through the launcher, timed from the moment the process died: under load the launcher takes
    seconds to start, which a failover time must not include."""
    pid = int((cluster.stack_dir / "pids" / f"{name}.pid").read_text().strip())
    killing = asyncio.ensure_future(asyncio.to_thread(cluster.kill, name))
    deadline = time.monotonic() + 120
    while not process_gone(pid):
        assert time.monotonic() < deadline and not killing.done(), f"{name} (pid {pid}) still alive"
        await asyncio.sleep(0.01)
    killed = Kill(time.monotonic(), len(flow.progress.accepted))
    await killing
    return killed


async def seconds_to_next_order(flow: OrderFlow, orders_db: DictConnection, killed: Kill) -> tuple[float, float]:
    """From a kill: to the first order accepted after it, and to that order's row in the shared table."""
    await flow.reached(killed.accepted_before + 1)
    accepted = flow.progress.accepted_at[killed.accepted_before] - killed.at
    order_id = flow.progress.accepted[killed.accepted_before]

    def visible() -> bool | None:
        found = rows_by_id(orders_db, [order_id])
        orders_db.commit()  # a fresh snapshot next time (REPEATABLE READ)
        return True if found else None

    await eventually(visible, within=60, what=f"the row of {order_id}, the first order after the kill", interval=0.05)
    return accepted, time.monotonic() - killed.at


async def monitor_rates(cluster: SideStack, group: str) -> bool:
    """The monitor answers its Burrow API and lists `group` among the consumer groups it rates."""
    url = f"http://127.0.0.1:{services.monitor_port(cluster.config)}/v3/kafka/local/consumer"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return group in (await client.get(url)).json()["consumers"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False


async def test_orders_flow_while_the_monitor_and_prometheus_are_down_and_both_come_back_whole(
    cluster: SideStack,
    gateway: GatewayClient,
    buyers: list[User],
    orders_db: DictConnection,
    fresh_products: dict[str, int],
) -> None:
    """The monitor and Prometheus are outside the data path: both killed -9, orders keep being accepted and
    written; started again, each answers (the monitor rating catalog-service's group again)."""
    flow = OrderFlow(gateway, buyers, list(fresh_products))
    try:
        await flow.reached(10)
        for name in ("monitor", "prometheus"):
            await asyncio.to_thread(cluster.kill, name)
        await flow.more(30)
    finally:
        accepted = await flow.stop()
        await asyncio.to_thread(cluster.start, "monitor", "prometheus")
    await assert_settled_once(orders_db, buyers, accepted, {"CONFIRMED"})
    assert await asyncio.to_thread(prometheus.SERVER.ready, cluster.config), "Prometheus answers again"
    restarted = "the restarted monitor rating catalog-service"
    await eventually(lambda: monitor_rates(cluster, "catalog-service"), within=60, what=restarted)


def node_db(cluster: SideStack, number: int, name: str = "ORDERS_DB") -> DictConnection:
    """Database `name` (the .env key of its name) on Galera node `number` (1 to 3), as the operator."""
    # This node alone, never the first of DB_HOSTS that answers (servicekit.testing.database fails over otherwise).
    on_node = cluster.settings.model_copy(update={"db_port": cluster.config.db_port + number - 1, "db_hosts": ""})
    return database(on_node, cluster.config.get(name))


def synced(cluster: SideStack, number: int) -> bool | None:
    """Node `number` answers and is Synced in the primary component."""
    try:
        connection = node_db(cluster, number)
    except pymysql.Error:
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW STATUS LIKE 'wsrep_local_state_comment'")
            row = cursor.fetchone()
    finally:
        connection.close()
    return True if row is not None and row["Value"] == "Synced" else None


def cdc_source_node(cluster: SideStack) -> int | None:
    """The Galera node (1 to 3) the CDC source reads, as its registered config names it; None while unknown."""
    url = f"{connect.answering_url(cluster.config)}/connectors/{connectors.SOURCE_CONNECTOR}/config"
    try:
        registered = httpx.get(url, auth=connectors.rest_auth(cluster.config), timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    env = {"DB_HOST": cluster.config.get("DB_HOST"), "DB_PORT": str(cluster.config.db_port)}
    node = configured_node(registered, env) if isinstance(registered, dict) else None
    return None if node is None else node.port - cluster.config.db_port + 1


def set_price(cluster: SideStack, number: int, product: str, price: int) -> None:
    """Change a product's price as an operator would, on Galera node `number` (the commit waits while the cluster
    still counts a killed node in)."""
    connection = node_db(cluster, number, "CATALOG_DB")
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE catalogs SET unit_price = %s WHERE product_id = %s", (price, product))
    finally:
        connection.close()


async def seconds_to_price_everywhere(cluster: SideStack, product: str, price: int, killed_at: float) -> float:
    """From a kill: until every order-service instance prices `product` at `price` (CDC brought the change)."""
    instances = cluster.config.number("ORDER_INSTANCES")
    await eventually(
        lambda: asyncio.to_thread(priced_everywhere, cluster.config, {product: price}, instances),
        within=120,
        what=f"{product} at {price} in every order-service instance's catalog",
        interval=0.3,
    )
    return time.monotonic() - killed_at


def audit_settings(cluster: SideStack, since: dt.datetime) -> AuditSettings:
    """The auditor over the side stack (every value given: the repo's .env is the shared stack's), judging the
    orders created since `since`, with short grace periods."""
    config = cluster.config
    return AuditSettings(
        db_host=config.get("DB_HOST"),
        db_port=config.db_port,
        db_hosts=config.db_hosts,
        db_user=config.get("DB_USER"),
        db_password=config.get("DB_PASSWORD"),
        kafka_bootstrap_servers=config.kafka_bootstrap_servers,
        kafka_admin_password=config.get("KAFKA_ADMIN_PASSWORD"),
        orders_db=config.get("ORDERS_DB"),
        catalog_db=config.get("CATALOG_DB"),
        order_deadline_seconds=config.number("ORDER_DEADLINE_SECONDS"),
        audit_sink_lag_seconds=5,
        audit_outcome_lag_seconds=5,
        audit_settle_seconds=1,
        audit_since=since,
    )


async def consistent(auditor: Auditor) -> Verdict | None:
    verdict = await auditor.run()
    return verdict if verdict.consistent else None


def cluster_seqno(gtids: str) -> int | None:
    """The cluster's own sequence number in a GTID list ("1-1-5129,12-12-3"): its wsrep GTID domain is 1
    (infra/mariadb/galera.cnf); a node's local domains are others."""
    for gtid in gtids.split(","):
        domain, _server, seqno = gtid.strip().split("-")
        if domain == "1":
            return int(seqno)
    return None


def source_seqno(cluster: SideStack) -> int | None:
    """The cluster seqno of the CDC source's committed position (Connect's offsets API); None while unknown."""
    url = f"{connect.answering_url(cluster.config)}/connectors/{connectors.SOURCE_CONNECTOR}/offsets"
    try:
        offsets = httpx.get(url, auth=connectors.rest_auth(cluster.config), timeout=5).json()["offsets"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return next((cluster_seqno(entry["offset"].get("gtids", "")) for entry in offsets), None)


async def test_the_cdc_sources_position_follows_the_binlog_while_only_other_databases_change(
    cluster: SideStack, gateway: GatewayClient, buyers: list[User], fresh_products: dict[str, int]
) -> None:
    """A Galera node's binlog carries every database, and the CDC source emits only catalog price changes: without
    heartbeats its committed position stays at the last one, and a node that rejoined by a full copy (SST) since
    holds no binlog that old, so the source could resume on no node (seen: connect-watchdog moving it round the
    nodes for good, each try ending in 1236). With Debezium's heartbeats (catalog-source.json, every 10 s) the
    position follows the binlog: an order (its row in mydb, its stock in catalogdb: no price change, so no change
    record) moves the source's committed position past it."""
    if cluster.config.number("MARIADB_NODES") < 3:
        pytest.skip("the cluster runs one MariaDB server (MARIADB_NODES=1)")
    product = next(iter(fresh_products))
    order_id = await gateway.place_until_accepted(buyers[0], product, 1)
    orders_db = node_db(cluster, 1)
    try:
        await eventually(lambda: settled(orders_db, [order_id]), within=60, what="the order's settled row")
        with orders_db.cursor() as cursor:
            cursor.execute("SELECT @@gtid_binlog_pos AS pos")
            row = cursor.fetchone()
    finally:
        orders_db.close()
    assert row is not None
    written = cluster_seqno(row["pos"])
    assert written is not None, row

    async def caught_up() -> bool:
        if (source_seqno(cluster) or 0) >= written:
            return True
        # Debezium sends a heartbeat with a binlog event once the interval has passed: keep events coming.
        await gateway.place_until_accepted(buyers[0], product, 1)
        return False

    await eventually(
        caught_up,
        within=60,
        what=f"the CDC source's committed position at the cluster's seqno {written} or later (heartbeats)",
        interval=1,
    )


async def test_each_galera_node_a_discovery_peer_and_a_gateway_killed_in_turn_lose_and_duplicate_nothing(
    cluster: SideStack,
    gateway: GatewayClient,
    buyers: list[User],
    fresh_products: dict[str, int],
    price_probe: str,
) -> None:
    """Issue 27's proof: while 300 orders flow through both gateways (three clients retrying with an
    Idempotency-Key and moving to the other gateway when a connection breaks), each Galera node is killed -9 in turn,
    the one everybody writes to (first of DB_HOSTS) first, and started again once the next has taken over; then the
    first discovery peer, then the first gateway; an order-service instance restarts and registers while that peer
    is down. After each node's kill a price is changed on a live node and must reach every order-service instance:
    the watchdog moves the CDC source off its node when that is the one killed; each node rejoins by IST. Every
    accepted order is one settled row, none twice, stock moved by exactly the confirmed quantities, and the auditor
    finds the window consistent.
    Prints kill -> next accepted order, -> its row, and (Galera) -> the new price at every order-service instance."""
    if cluster.config.number("MARIADB_NODES") < 3:
        pytest.skip("the cluster runs one MariaDB server (MARIADB_NODES=1)")
    assert len(gateway.gateways) == 2, "the cluster runs two gateways"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    flow = OrderFlow(gateway, buyers, list(fresh_products))
    timings: dict[str, tuple[float, float]] = {}
    cdc: dict[str, tuple[int, float]] = {}  # node killed -> (the source's node before, kill -> price everywhere)
    try:
        await flow.reached(20)
        for number in (1, 2, 3):
            survivor = number % 3 + 1
            source_before = await eventually(lambda: cdc_source_node(cluster), within=30, what="the CDC source's node")
            watcher = node_db(cluster, survivor)
            try:
                killed = await kill(cluster, flow, f"mariadb-{number}")
                price = 100 + number
                await asyncio.to_thread(set_price, cluster, survivor, price_probe, price)  # after the node died
                priced = asyncio.ensure_future(seconds_to_price_everywhere(cluster, price_probe, price, killed.at))
                timings[f"mariadb-{number}"] = await seconds_to_next_order(flow, watcher, killed)
                await flow.more(30)
                cdc[f"mariadb-{number}"] = (source_before, await priced)
            finally:
                watcher.close()
            if source_before == number:
                assert cdc_source_node(cluster) != number, f"the CDC source still reads the killed mariadb-{number}"
            log = cluster.log_file(f"mariadb-{number}")
            before_start = log.stat().st_size
            await asyncio.to_thread(cluster.start, f"mariadb-{number}")
            await eventually(partial(synced, cluster, number), within=120, what=f"mariadb-{number} Synced again")
            # Galera's rsync script names what the joiner took: the writesets it missed, not a copy of a peer's data.
            rejoin = log.read_bytes()[before_start:].decode(errors="replace")
            assert "rsync IST completed on joiner" in rejoin, f"mariadb-{number} rejoined by IST (see {log})"
            assert "rsync SST completed on joiner" not in rejoin, f"mariadb-{number} took no full copy (SST)"
        assert any(before == int(node[-1]) for node, (before, _) in cdc.items()), "the CDC source's node was killed"
        orders_db = node_db(cluster, 1)
        try:
            for victim in ("discovery", "gateway"):
                timings[victim] = await seconds_to_next_order(flow, orders_db, await kill(cluster, flow, victim))
                await flow.more(30)
        finally:
            orders_db.close()
        # A new registration while the first peer is down reaches the gateway through the other one.
        await asyncio.to_thread(cluster.kill, "order-service-2")
        await asyncio.to_thread(cluster.start, "order-service-2")
        await flow.more(20)
        await flow.reached(300)
    finally:
        accepted = await flow.stop()
        restarted = ("mariadb-1", "mariadb-2", "mariadb-3", "discovery", "gateway", "order-service-2")
        await asyncio.to_thread(cluster.start, *restarted)
    for victim, (to_order, to_row) in timings.items():
        print(f"\n{victim} killed: next accepted order {to_order:.2f} s, its row {to_row:.2f} s", end="")
        if victim in cdc:
            before, to_price = cdc[victim]
            print(f", price at every order-service instance {to_price:.2f} s (CDC source was on mariadb-{before})")
    print(f"\n{len(accepted)} orders accepted")
    orders_db = node_db(cluster, 1)
    try:
        await assert_settled_once(orders_db, buyers, accepted, {"CONFIRMED"})
        await assert_no_drift(gateway, orders_db, fresh_products)
    finally:
        orders_db.close()
    auditor = Auditor(audit_settings(cluster, since))
    try:
        verdict = await eventually(lambda: consistent(auditor), within=120, what="a consistent audit", interval=1)
    finally:
        await auditor.close()
    assert verdict.consistent, verdict.as_json()
