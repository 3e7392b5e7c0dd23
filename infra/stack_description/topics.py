"""The stack's topics, made from order_contract's names by both launchers before anything uses them: natively by
launcher.kafka, in compose by its create-topics one-shot (`python -m stack_description.topics`, its settings from
the environment)."""

import asyncio

from aiokafka.admin import AIOKafkaAdminClient

from order_contract.topics import (
    CATALOG_CHANGES_TOPIC,
    DATA_TOPICS,
    DEAD_LETTER_TOPICS,
    ORDER_CLAIMS_RETENTION_MS,
    ORDER_CLAIMS_TOPIC,
)
from servicekit.kafka import ensure_topics
from stack_description.settings import StackConfig

# The catalog-source connector's schema history: the DDL it has seen, read back in full when its task starts.
# Debezium wants one partition, never compacted nor expired.
CATALOG_HISTORY_TOPIC = "catalog-source-schema-history"
SCHEMA_HISTORY_CONFIGS = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
# Its heartbeats (heartbeat.interval.ms, every 10 s): each carries the source's binlog position, so its committed
# offset follows the binlog while only other databases change (a Galera node that rejoined by SST holds only recent
# binlog, docs/cluster.md). Nobody reads them; a day of them is kept.
CATALOG_HEARTBEAT_TOPIC = "catalog-source-heartbeat.catalogdb-cdc"
HEARTBEAT_CONFIGS = {"cleanup.policy": "delete", "retention.ms": "86400000"}
# Idempotency-Key claims decide within an hour; after that the order's row does.
CLAIMS_CONFIGS = {"cleanup.policy": "delete", "retention.ms": str(ORDER_CLAIMS_RETENTION_MS)}
# catalog-changes holds the catalog's current state: compaction keeps the last record per product for ever (a
# tombstone for a while, so readers see the delete). One partition: the catalog is small, and a reader catches up
# to one end offset.
COMPACTED_CONFIGS = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "delete.retention.ms": "86400000"}


def topic_plan(config: StackConfig) -> list[tuple[tuple[str, ...], int, dict[str, str]]]:
    """(names, partitions, topic configs) of every topic the stack makes. The dead-letter topics exist up front so
    they can be watched before anything fails."""
    partitions = config.number("TOPIC_PARTITIONS")
    return [
        ((*DATA_TOPICS, *DEAD_LETTER_TOPICS), partitions, {}),
        ((ORDER_CLAIMS_TOPIC,), partitions, CLAIMS_CONFIGS),
        ((CATALOG_CHANGES_TOPIC,), 1, COMPACTED_CONFIGS),
        ((CATALOG_HISTORY_TOPIC,), 1, SCHEMA_HISTORY_CONFIGS),
        ((CATALOG_HEARTBEAT_TOPIC,), 1, HEARTBEAT_CONFIGS),
    ]


async def create_topics(config: StackConfig) -> list[str]:
    """Make the topics that are missing (with the stack's replication factor); the names made."""
    admin = AIOKafkaAdminClient(**config.kafka_access.client_options(), request_timeout_ms=5000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    made = []
    for names, partitions, configs in topic_plan(config):
        missing = [name for name in names if name not in existing]
        if missing:
            await ensure_topics(config.kafka_access, missing, partitions, configs)
            made += missing
    return made


if __name__ == "__main__":
    print("topics created:", asyncio.run(create_topics(StackConfig.from_environment())))
