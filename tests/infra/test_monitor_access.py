"""The monitor's Kafka login sees every consumer group's offsets and the topics' end offsets, and nothing more:
no record, no group of its own, no write."""

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from lag_monitor.offsets import OffsetReader
from launcher.environment import MONITOR_KAFKA, StackConfig
from order_contract.topics import ORDERS_TOPIC
from servicekit.kafka import KafkaAccess

pytestmark = pytest.mark.stack


@pytest.fixture
def monitor_login(stack_config: StackConfig) -> KafkaAccess:
    servers = stack_config.kafka_access.bootstrap_servers
    return KafkaAccess(servers, MONITOR_KAFKA.user, stack_config.get(MONITOR_KAFKA.password_key))


async def test_the_monitor_reads_the_offsets_of_the_stacks_consumer_groups(monitor_login: KafkaAccess) -> None:
    reader = OffsetReader(monitor_login)
    await reader.start()
    try:
        snapshot = await reader.snapshot()
    finally:
        await reader.stop()
    assert {"catalog-service", "connect-orders-sink"} <= snapshot.listed_groups
    sink = snapshot.committed["connect-orders-sink"]
    assert sink and all(partition.topic == ORDERS_TOPIC for partition in sink)
    assert all(snapshot.end_offsets[partition] >= offset for partition, offset in sink.items())


async def test_the_monitor_may_not_read_a_record(monitor_login: KafkaAccess) -> None:
    consumer = AIOKafkaConsumer(**monitor_login.client_options(), request_timeout_ms=5000)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(ORDERS_TOPIC, 0)])
        consumer.seek(TopicPartition(ORDERS_TOPIC, 0), 0)
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
