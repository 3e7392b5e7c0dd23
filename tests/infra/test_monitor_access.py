"""The monitor's Kafka login sees every consumer group's offsets and the topics' end offsets, and nothing more:
no record, no group of its own, no write."""

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from lag_monitor.history import OffsetSnapshot
from lag_monitor.offsets import OffsetReader
from launcher.environment import MONITOR_KAFKA, StackConfig
from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from order_contract.topics import CATALOG_CHANGES_TOPIC, ORDERS_DEAD_LETTER_TOPIC, ORDERS_TOPIC, STOCK_TOPIC
from servicekit.kafka import KafkaAccess
from servicekit.testing import eventually

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
