"""Kafka clients set up the one way we use them: transactional producers, read_committed readers."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.producer import sender as aiokafka_sender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaAccess:
    """Where the brokers are, who we are to them, and how many copies of a topic we ask them to keep: every
    client and every topic here is made from one of these."""

    # host:port[,host:port...]: any of them answers with the whole cluster.
    bootstrap_servers: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # KAFKA_REPLICATION_FACTOR / KAFKA_MIN_INSYNC_REPLICAS: 1/1 on one broker, 3/2 on three (a write is
    # acknowledged once two copies hold it, so losing any one broker loses nothing acknowledged).
    replication_factor: int = 1
    min_insync_replicas: int = 1

    def client_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments: SASL/SCRAM-SHA-512 when there are credentials (the stack's brokers ask)."""
        if self.username is None or self.password is None:
            return {"bootstrap_servers": self.bootstrap_servers}
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def consumer_options(self) -> dict[str, Any]:
        """`client_options` for a consumer that runs for the process's life: its fetch loop wakes on a fetch's
        answer, on consumed records and on a new assignment, and otherwise every CONSUMER_IDLE_WAKE_MS."""
        return {**self.client_options(), "consumer_timeout_ms": CONSUMER_IDLE_WAKE_MS}


# aiokafka's background fetch loop also wakes every consumer_timeout_ms (200 ms by default) when nothing happened,
# and walks its partitions: five times a second for each idle consumer. Nothing waits on that wake-up (a fetch's
# answer, consumed records and a reassignment each wake the loop themselves); once a second is enough
# (bench/perf-notes.md).
CONSUMER_IDLE_WAKE_MS = 1000

# A read_committed reader cannot pass an open transaction: keep a dead producer's stall short.
TRANSACTION_TIMEOUT_MS = 10_000

# A transaction begun right after a commit meets CONCURRENT_TRANSACTIONS until the coordinator has written the
# markers (KAFKA-5477); aiokafka then waits a fixed 20 ms. Here markers take a few ms: retrying after 5 ms
# doubles one producer's transactions per second (bench/perf-notes.md).
CONCURRENT_TRANSACTIONS_BACKOFF_SECONDS = 0.005


def transactional_producer(kafka: KafkaAccess, transactional_id: str, *, linger_ms: int = 0) -> AIOKafkaProducer:
    """Starting a producer with a `transactional_id` fences (aborts) any earlier one with the same id."""
    aiokafka_sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_SECONDS
    return AIOKafkaProducer(
        **kafka.client_options(),
        client_id=transactional_id,
        transactional_id=transactional_id,
        enable_idempotence=True,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=TRANSACTION_TIMEOUT_MS,
    )


async def fresh_producer(
    kafka: KafkaAccess, transactional_id: str, old: AIOKafkaProducer | None = None
) -> AIOKafkaProducer:
    """Stop `old` (it may be fenced or stuck after a failed transaction) and start a new one, retrying."""
    if old is not None:
        with contextlib.suppress(Exception):
            await old.stop()
    delay = 0.2
    while True:
        producer = transactional_producer(kafka, transactional_id)
        try:
            await producer.start()
            return producer
        except Exception:
            log.exception("could not start a producer; retrying", extra={"transactional_id": transactional_id})
            with contextlib.suppress(Exception):
                await producer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def committed_consumer(kafka: KafkaAccess, *topics: str, group_id: str | None) -> AIOKafkaConsumer:
    """Sees only committed transactions; offsets are committed by the caller (inside its transaction)."""
    return AIOKafkaConsumer(
        *topics,
        **kafka.consumer_options(),
        group_id=group_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def ensure_topics(
    kafka: KafkaAccess, names: list[str], partitions: int, configs: dict[str, str] | None = None
) -> None:
    """Create the topics that do not exist yet, with `kafka`'s replication factor and min.insync.replicas and
    topic `configs`."""
    configs = dict(configs or {})
    if kafka.min_insync_replicas > 1:
        configs.setdefault("min.insync.replicas", str(kafka.min_insync_replicas))
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, kafka.replication_factor, topic_configs=configs)
            for name in names
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
                log.info("created topics", extra={"topics": [topic.name for topic in missing]})
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
