"""Reading offsets from Kafka with the monitor's own login (DESCRIBE on groups and topics, nothing more), and the
loop that feeds one `OffsetSnapshot` per poll into the history.

Per poll: ListGroups, one OffsetFetch per consumer group (its coordinator remembered), one ListOffsets per
partition leader. End offsets are read `read_committed`: the last stable offset, so records of a transaction still
open, which no consumer of ours may read yet, are not counted as lag.
"""

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from servicekit.kafka import KafkaAccess
from servicekit.tasks import cancel_and_wait
from stack_monitor.history import LagHistory, OffsetSnapshot, Partition

log = logging.getLogger(__name__)

# Groups made by consumers (aiokafka, Java, Connect's sink tasks); "" for groups that only commit offsets.
# Connect workers' own group ("connect") and share groups commit no offsets a consumer's lag is measured by.
CONSUMER_PROTOCOLS = frozenset({"consumer", ""})


class OffsetReader:
    def __init__(self, kafka: KafkaAccess, request_timeout_ms: int = 5000) -> None:
        self._options = {**kafka.client_options(), "request_timeout_ms": request_timeout_ms}
        self._admin: AIOKafkaAdminClient | None = None
        self._ends: AIOKafkaConsumer | None = None
        self._coordinators: dict[str, int] = {}

    async def start(self) -> None:
        """Connect (again): fresh clients each time, so a reader that failed to start can simply start again."""
        await self.stop()
        self._admin = AIOKafkaAdminClient(**self._options)
        # No group, never fetches: it only asks partition leaders for their end offsets.
        self._ends = AIOKafkaConsumer(**self._options, isolation_level="read_committed", enable_auto_commit=False)
        await self._admin.start()
        await self._ends.start()

    async def stop(self) -> None:
        if self._ends is not None:
            with contextlib.suppress(Exception):
                await self._ends.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
        self._admin = self._ends = None
        self._coordinators.clear()

    @property
    def admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise RuntimeError("OffsetReader is not started")
        return self._admin

    async def snapshot(self) -> OffsetSnapshot:
        taken_ms = int(time.time() * 1000)
        groups = await self.admin.list_consumer_groups()
        listed = frozenset(str(group) for group, protocol, *_ in groups if protocol in CONSUMER_PROTOCOLS)
        committed: dict[str, dict[Partition, int]] = {}
        for group in sorted(listed):
            try:
                committed[group] = await self._committed(group)
            except KafkaError:
                self._coordinators.pop(group, None)  # moved, or not loaded yet: found again next time
                log.warning("could not read a group's offsets; keeping its last state", extra={"group": group})
        partitions = {partition for offsets in committed.values() for partition in offsets}
        return OffsetSnapshot(taken_ms, listed, committed, await self._end_offsets(partitions))

    async def _committed(self, group: str) -> dict[Partition, int]:
        coordinator = self._coordinators.get(group)
        if coordinator is None:
            coordinator = self._coordinators[group] = await self.admin.find_coordinator(group)
        offsets = await self.admin.list_consumer_group_offsets(group, group_coordinator_id=coordinator)
        if not offsets:
            # aiokafka drops OffsetFetch's top-level error: a coordinator that lost the group (NOT_COORDINATOR after
            # two of three brokers returned) answers "no offsets" for good. Ask who coordinates it now, once.
            coordinator = self._coordinators[group] = await self.admin.find_coordinator(group)
            offsets = await self.admin.list_consumer_group_offsets(group, group_coordinator_id=coordinator)
        return {Partition(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def _end_offsets(self, partitions: set[Partition]) -> dict[Partition, int]:
        if not partitions or self._ends is None:
            return {}
        ends = await self._ends.end_offsets([TopicPartition(p.topic, p.partition) for p in partitions])
        return {Partition(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}


class OffsetPoller:
    """Polls every `interval` seconds (measured start to start) into `history`; a failed poll is logged, recorded
    as the history's `last_error`, and tried again at the next tick."""

    def __init__(self, reader: OffsetReader, history: LagHistory, interval: float) -> None:
        self.reader = reader
        self.history = history
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="offset-poller")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        await self.reader.stop()

    async def poll_once(self) -> None:
        started = time.perf_counter()
        try:
            snapshot = await self.reader.snapshot()
        except Exception as exc:
            self.history.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("offset poll failed; trying again at the next tick")
            return
        self.history.record(snapshot)
        self.history.last_poll_seconds = time.perf_counter() - started
        self.history.last_error = None

    async def _connect(self) -> None:
        """Start the reader, retrying at each tick while Kafka is away (the API answers meanwhile)."""
        while True:
            try:
                await self.reader.start()
                return
            except Exception as exc:
                self.history.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("cannot reach Kafka yet; retrying", extra={"error": self.history.last_error})
                await asyncio.sleep(self.interval)

    async def _run(self) -> None:
        await self._connect()
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            await self.poll_once()
            next_tick += self.interval
            delay = next_tick - loop.time()
            if delay < 0:  # a poll took longer than the interval: start again from now, don't burst
                next_tick, delay = loop.time(), 0.0
            await asyncio.sleep(delay)
