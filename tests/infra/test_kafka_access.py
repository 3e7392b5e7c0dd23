"""Kafka asks every client who it is (SASL/SCRAM-SHA-512) and lets each component do only what
infra/kafka/acls.txt lists: no anonymous client, no forged orders, no draining stock, no fencing another's
transactions."""

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from order_contract.topics import ORDERS_TOPIC, STOCK_TOPIC
from servicekit.kafka import KafkaAccess, transactional_producer
from stack_description.access import (
    CATALOG_SERVICE_KAFKA,
    CONNECT_KAFKA,
    CONNECT_WATCHDOG_KAFKA,
    ORDER_SERVICE_KAFKA,
    KafkaLogin,
)
from stack_description.settings import StackConfig

pytestmark = pytest.mark.stack

# The CDC topic of catalog changes: only catalog-service's side may write it, never order-service.
CATALOG_CHANGES_TOPIC = "catalog-changes"


def access_of(config: StackConfig, login: KafkaLogin) -> KafkaAccess:
    return KafkaAccess(config.kafka_access.bootstrap_servers, login.user, config.get(login.password_key))


async def send_refused(kafka: KafkaAccess, topic: str) -> KafkaError | None:
    """Produce one record; the error that stopped it, or None when the broker took it."""
    producer = AIOKafkaProducer(**kafka.client_options(), request_timeout_ms=5000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"forged", key=b"forged")
    except KafkaError as exc:
        return exc
    finally:
        await producer.stop()
    return None


async def test_a_client_without_a_login_is_refused(stack_config: StackConfig) -> None:
    anonymous = KafkaAccess(stack_config.kafka_access.bootstrap_servers)
    producer = AIOKafkaProducer(**anonymous.client_options(), request_timeout_ms=3000)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()


async def test_a_wrong_password_is_refused(stack_config: StackConfig) -> None:
    wrong = KafkaAccess(stack_config.kafka_access.bootstrap_servers, ORDER_SERVICE_KAFKA.user, "x" * 40)
    producer = AIOKafkaProducer(**wrong.client_options(), request_timeout_ms=3000)
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()


async def test_order_service_may_write_only_its_own_topics(stack_config: StackConfig) -> None:
    order_service = access_of(stack_config, ORDER_SERVICE_KAFKA)
    assert isinstance(await send_refused(order_service, CATALOG_CHANGES_TOPIC), TopicAuthorizationFailedError)
    assert isinstance(await send_refused(order_service, "orders-dlq"), TopicAuthorizationFailedError)


async def test_only_order_service_may_ask_for_stock(stack_config: StackConfig) -> None:
    """A stock request from anyone else would take stock for an order nobody placed."""
    for login in (CATALOG_SERVICE_KAFKA, CONNECT_KAFKA):
        refusal = await send_refused(access_of(stack_config, login), STOCK_TOPIC)
        assert isinstance(refusal, TopicAuthorizationFailedError), login.user


async def test_connect_may_not_forge_orders(stack_config: StackConfig) -> None:
    refusal = await send_refused(access_of(stack_config, CONNECT_KAFKA), ORDERS_TOPIC)
    assert isinstance(refusal, TopicAuthorizationFailedError)


async def test_order_service_may_not_read_as_catalog_service(stack_config: StackConfig) -> None:
    order_service = access_of(stack_config, ORDER_SERVICE_KAFKA)
    consumer = AIOKafkaConsumer(
        STOCK_TOPIC, **order_service.client_options(), group_id="catalog-service", enable_auto_commit=False
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await consumer.start()  # joining the group is where it stops
            await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()


async def test_no_one_else_may_use_order_service_transactional_ids(stack_config: StackConfig) -> None:
    """Starting a producer with a live instance's id would fence it (abort its commits): refused before that."""
    intruder = transactional_producer(access_of(stack_config, CATALOG_SERVICE_KAFKA), "order-service:order-service-1:0")
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await intruder.start()
    await intruder.stop()


async def test_order_service_may_use_its_own_transactional_ids(stack_config: StackConfig) -> None:
    """The other side of the ACL: under its prefix, order-service's login starts a transactional producer."""
    producer = transactional_producer(
        access_of(stack_config, ORDER_SERVICE_KAFKA), f"order-service:probe-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    await producer.stop()


async def test_connect_may_not_repartition_or_reconfigure_its_internal_topics(stack_config: StackConfig) -> None:
    """`connect` creates, reads and writes its topics; ALTER (partitions, configs) and DELETE are not its to use."""
    admin = AIOKafkaAdminClient(**access_of(stack_config, CONNECT_KAFKA).client_options(), request_timeout_ms=5000)
    await admin.start()
    try:
        described = await admin.describe_topics(["connect-status"])
        count = len(described[0]["partitions"])
        # Validation only: were it allowed, nothing would change.
        with pytest.raises(TopicAuthorizationFailedError):
            await admin.create_partitions({"connect-status": NewPartitions(count + 1)}, validate_only=True)
    finally:
        await admin.close()


async def test_the_watchdog_may_read_orders_but_write_only_dead_letters(stack_config: StackConfig) -> None:
    """The sink recovery's login (not `admin` any more): it replays orders; it may not forge an order or a price."""
    watchdog = access_of(stack_config, CONNECT_WATCHDOG_KAFKA)
    for topic in (ORDERS_TOPIC, STOCK_TOPIC, CATALOG_CHANGES_TOPIC):
        assert isinstance(await send_refused(watchdog, topic), TopicAuthorizationFailedError), topic
    consumer = AIOKafkaConsumer(**watchdog.client_options(), request_timeout_ms=5000, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(ORDERS_TOPIC, 0)])
        await consumer.seek_to_end(TopicPartition(ORDERS_TOPIC, 0))
        await consumer.getmany(timeout_ms=1000)  # no authorization error
    finally:
        await consumer.stop()
