"""The compose stack's Kafka is one KRaft quorum of three nodes (kafka-1, kafka-2, kafka-3: each broker and
controller) with two Connect workers: every topic, the internal ones too, has three replicas in sync and needs two
of them for a write (min.insync.replicas), and no replica out of sync may lead. Asked from the host: the quorum
through Kafka's own tool in a node's container, topics and configs through the published client port.
(test_compose_stack.py stops and restarts a broker while orders flow.)"""

import os
import re

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from launcher.kafka import admin_client
from servicekit.testing import eventually
from stack_description.settings import StackConfig
from tests.compose.test_compose_stack import container, engine

pytestmark = pytest.mark.skipif(
    os.environ.get("STACK_UNDER_TEST") != "compose", reason="needs the compose stack: make compose-test"
)

NODES = {1, 2, 3}
# Made by the brokers (offsets, transactions) and by Connect (its configs, offsets and status).
INTERNAL_TOPICS = {"__consumer_offsets", "__transaction_state", "connect-configs", "connect-offsets", "connect-status"}
# Made by the launcher's code (create-topics), as natively.
OUR_TOPICS = {"orders", "orders-dlq", "example-catalog-topic", "example-catalog-topic-dlq", "catalog-changes"}


def quorum_status() -> dict[str, str]:
    """`kafka-metadata-quorum describe --status` as the admin, from inside kafka-1: field -> value."""
    describe = (
        "write-admin-config && kafka-tool org.apache.kafka.tools.MetadataQuorumCommand"
        " --bootstrap-server kafka-1:19092 --command-config /tmp/admin.properties describe --status"
    )
    output = engine("exec", container("kafka-1"), "sh", "-c", describe)
    fields = {}
    for line in output.splitlines():
        key, separator, value = line.partition(":")
        if separator:
            fields[key.strip()] = value.strip()
    return fields


def test_the_quorum_has_three_voters_and_one_of_them_leads() -> None:
    status = quorum_status()
    voters = {int(node) for node in re.findall(r'"id":\s*(\d+)', status["CurrentVoters"])}

    assert voters == NODES
    assert int(status["LeaderId"]) in NODES


async def replication(config: StackConfig) -> dict[str, list[tuple[list[int], list[int]]]]:
    """Every topic -> (replicas, in-sync replicas) of each partition."""
    admin = admin_client(config)
    await admin.start()
    try:
        topics = await admin.list_topics()
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {
        topic["topic"]: [(partition["replicas"], partition["isr"]) for partition in topic["partitions"]]
        for topic in described
    }


async def effective_configs(config: StackConfig, resources: list[ConfigResource]) -> dict[str, dict[str, str]]:
    """Resource name -> its effective configs (overrides, the brokers' settings and Kafka's defaults alike)."""
    admin = admin_client(config)
    await admin.start()
    try:
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for _error, _message, _type, name, entries in response.resources:
            found[name] = {entry[0]: entry[1] for entry in entries}
    return found


async def test_every_topic_has_three_replicas_all_in_sync(stack_config: StackConfig) -> None:
    async def fully_replicated() -> dict[str, list[tuple[list[int], list[int]]]] | None:
        topics = await replication(stack_config)
        partitions = [partition for partitions in topics.values() for partition in partitions]
        in_sync = all(len(replicas) == 3 and set(isr) == set(replicas) for replicas, isr in partitions)
        return topics if in_sync else None

    # A broker restarted by another test may still be catching up: it rejoins every ISR within a minute.
    topics = await eventually(
        fully_replicated, within=60, what="every partition of every topic: 3 replicas in sync", interval=1
    )

    assert INTERNAL_TOPICS | OUR_TOPICS <= set(topics)
    assert {replica for partitions in topics.values() for replicas, _ in partitions for replica in replicas} == NODES


async def test_every_topic_needs_two_replicas_for_a_write_and_no_unclean_leader(stack_config: StackConfig) -> None:
    topics = sorted(await replication(stack_config))
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
    configs = await effective_configs(stack_config, resources)

    assert {topic: configs[topic]["min.insync.replicas"] for topic in topics} == dict.fromkeys(topics, "2")
    assert {configs[topic]["unclean.leader.election.enable"] for topic in topics} == {"false"}
