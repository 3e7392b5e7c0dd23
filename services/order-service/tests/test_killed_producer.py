"""A producer killed in mid-transaction: its messages are in the log, but no read_committed reader sees them."""

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from order_service.config import OrderSettings
from servicekit.kafka import ensure_topics, fresh_producer
from servicekit.testing import TopicReader

pytestmark = pytest.mark.stack

DYING_PRODUCER = Path(__file__).with_name("dying_producer.py")


@pytest.fixture
async def topics(settings: OrderSettings) -> AsyncIterator[tuple[str, str]]:
    """This test's own orders and stock topics: an open transaction on them stalls nobody else."""
    test = uuid.uuid4().hex[:8]
    names = (f"order-test-{test}-orders", f"order-test-{test}-stock")
    await ensure_topics(settings.kafka_access, list(names), 3)
    yield names
    admin = AIOKafkaAdminClient(**settings.kafka_access.client_options())
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


async def test_a_producer_killed_mid_transaction_leaves_neither_message_visible(
    settings: OrderSettings, topics: tuple[str, str]
) -> None:
    orders_topic, stock_topic = topics
    transactional_id = f"order-test-dying-{uuid.uuid4().hex[:8]}"
    order_id = str(uuid.uuid4())
    kafka = settings.kafka_access
    readers = {
        (topic, isolation): TopicReader(kafka, topic, isolation_level=isolation)
        for topic in topics
        for isolation in ("read_committed", "read_uncommitted")
    }
    for reader in readers.values():
        await reader.__aenter__()
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DYING_PRODUCER),
            settings.kafka_bootstrap_servers,
            transactional_id,
            orders_topic,
            stock_topic,
            order_id,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"sent\n"
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()

        # The instance comes back with the same transactional id: that fences and aborts the open transaction.
        successor = await fresh_producer(kafka, transactional_id)
        await successor.stop()

        # No transaction is open any more: read_committed readers can read as far as anyone.
        for topic in topics:
            stable = await readers[(topic, "read_committed")].end_offsets()
            assert stable == await readers[(topic, "read_uncommitted")].end_offsets()
        seen = {}
        for where, reader in readers.items():
            seen[where] = sum(order_id.encode() in (r.value or b"") for r in await reader.read_to_end())
    finally:
        for reader in readers.values():
            await reader.__aexit__()

    assert seen == {
        (orders_topic, "read_committed"): 0,
        (orders_topic, "read_uncommitted"): 1,  # it was written, only never committed
        (stock_topic, "read_committed"): 0,
        (stock_topic, "read_uncommitted"): 1,
    }
