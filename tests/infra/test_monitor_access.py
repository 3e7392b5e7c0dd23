"""The monitor's Kafka login sees every consumer group's offsets and the topics' end offsets, and nothing more:
no record, no group of its own, no write. Its Connect REST user reads connector states and nothing more."""

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from launcher import connect, services
from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from order_contract.topics import CATALOG_CHANGES_TOPIC, ORDERS_DEAD_LETTER_TOPIC, ORDERS_TOPIC, STOCK_TOPIC
from servicekit.kafka import KafkaAccess
from servicekit.testing import eventually
from stack_description import connectors
from stack_description.access import MONITOR_KAFKA
from stack_description.settings import StackConfig
from stack_monitor.history import OffsetSnapshot
from stack_monitor.offsets import OffsetReader

pytestmark = pytest.mark.stack


@pytest.fixture
def monitor_login(stack_config: StackConfig) -> KafkaAccess:
    servers = stack_config.kafka_access.bootstrap_servers
    return KafkaAccess(servers, MONITOR_KAFKA.user, stack_config.get(MONITOR_KAFKA.password_key))


async def test_the_monitor_reads_the_offsets_of_the_stacks_consumer_groups(
    monitor_login: KafkaAccess, stack_config: StackConfig
) -> None:
    # On a fresh stack no group has committed yet: one order record for the sink (a product of no catalog, a user
    # of this test only) makes it commit.
    order = Order(
        order_id=f"monitor-access-{uuid.uuid4().hex[:12]}",
        user_id=f"monitor-test-{uuid.uuid4().hex[:8]}",
        product_id="MONITOR-TEST-P1",
        qty=1,
        unit_price=100,
        total_price=100,
        status=OrderStatus.PENDING,
        created_at=now_ms(),
    )
    producer = AIOKafkaProducer(**stack_config.kafka_access.client_options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(ORDERS_TOPIC, order_record_value(order), key=order_record_key(order))
    finally:
        await producer.stop()
    reader = OffsetReader(monitor_login)
    await reader.start()
    try:

        async def with_sink_offsets() -> OffsetSnapshot | None:
            found = await reader.snapshot()
            return found if found.committed.get("connect-orders-sink") else None

        snapshot = await eventually(with_sink_offsets, within=30, what="the sink's committed offsets")
    finally:
        await reader.stop()
    assert {"catalog-service", "connect-orders-sink"} <= snapshot.listed_groups
    sink = snapshot.committed["connect-orders-sink"]
    assert all(partition.topic == ORDERS_TOPIC for partition in sink)
    assert all(snapshot.end_offsets[partition] >= offset for partition, offset in sink.items())


async def test_the_monitor_reads_records_only_of_the_topics_its_auditor_reconciles(
    monitor_login: KafkaAccess,
) -> None:
    consumer = AIOKafkaConsumer(
        **monitor_login.client_options(), request_timeout_ms=5000, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        readable = [TopicPartition(t, 0) for t in (ORDERS_TOPIC, STOCK_TOPIC, ORDERS_DEAD_LETTER_TOPIC)]
        consumer.assign(readable)
        for partition in readable:
            consumer.seek(partition, 0)
        await consumer.getmany(timeout_ms=2000)  # no authorization error
        forbidden = TopicPartition(CATALOG_CHANGES_TOPIC, 0)
        consumer.assign([forbidden])
        consumer.seek(forbidden, 0)
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()


async def test_the_monitor_may_not_join_a_group(monitor_login: KafkaAccess) -> None:
    consumer = AIOKafkaConsumer(
        ORDERS_TOPIC, **monitor_login.client_options(), group_id="catalog-service", request_timeout_ms=5000
    )
    with pytest.raises(GroupAuthorizationFailedError):
        await consumer.start()
        await consumer.getmany(timeout_ms=5000)
    await consumer.stop()


async def test_the_monitor_may_not_write(monitor_login: KafkaAccess) -> None:
    producer = AIOKafkaProducer(**monitor_login.client_options(), request_timeout_ms=5000)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(ORDERS_TOPIC, b"forged", key=b"forged")
    finally:
        await producer.stop()


@pytest.fixture
def monitor_rest(stack_config: StackConfig) -> Iterator[httpx.Client]:
    auth = connectors.monitor_rest_auth(stack_config)
    # A connection each: Jetty may close the one a refused request with a body came on, and a client reusing it gets
    # "Server disconnected without sending a response" for the next request (seen once in CI) instead of its answer.
    no_reuse = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    with httpx.Client(base_url=stack_config.connect_url, auth=auth, timeout=30, transport=no_reuse) as client:
        yield client


def test_the_monitors_connect_user_reads_the_connector_states(monitor_rest: httpx.Client) -> None:
    listed = monitor_rest.get("/connectors", params={"expand": "status"})
    status = monitor_rest.get(f"/connectors/{connectors.SINK_CONNECTOR}/status")
    task = monitor_rest.get(f"/connectors/{connectors.SINK_CONNECTOR}/tasks/0/status")

    assert (listed.status_code, status.status_code, task.status_code) == (200, 200, 200), listed.text
    assert set(connectors.CONNECTORS) <= listed.json().keys()


def test_the_monitors_connect_user_may_change_nothing(stack_config: StackConfig, monitor_rest: httpx.Client) -> None:
    # Requests an admin could make without changing anything that runs: a validation, a config PUT equal to the
    # running one, a connector that is not there.
    sink = json.loads((connectors.CONNECTOR_DIR / f"{connectors.SINK_CONNECTOR}.json").read_text())
    plugin = connectors.SINK_CLASS.rsplit(".", 1)[-1]
    missing = f"monitor-test-{uuid.uuid4().hex[:8]}"
    answers = {
        "PUT config": monitor_rest.put(f"/connectors/{connectors.SINK_CONNECTOR}/config", json=sink),
        "PUT validate": monitor_rest.put(f"/connector-plugins/{plugin}/config/validate", json=sink),
        "POST connectors": monitor_rest.post("/connectors", json={"name": missing, "config": sink}),
        "POST restart": monitor_rest.post(f"/connectors/{missing}/restart"),
        "DELETE": monitor_rest.delete(f"/connectors/{missing}"),
        "GET config": monitor_rest.get(f"/connectors/{connectors.SINK_CONNECTOR}/config"),
    }

    assert {request: answer.status_code for request, answer in answers.items()} == dict.fromkeys(answers, 403)
    assert connect.connector_running(stack_config, connectors.SINK_CONNECTOR)


def test_the_monitor_process_holds_connects_read_only_login_not_the_admins(stack_config: StackConfig) -> None:
    pid = services.monitor_component(stack_config).pid()
    assert pid is not None, "the monitor is not running"
    with open(f"/proc/{pid}/environ", "rb") as environ:
        values = environ.read().decode(errors="replace").split("\0")

    assert f"CONNECT_USER={connectors.monitor_rest_user(stack_config)}" in values
    assert f"CONNECT_PASSWORD={stack_config.get('CONNECT_MONITOR_PASSWORD')}" in values
    assert not any(stack_config.get("CONNECT_PASSWORD") in value for value in values)
