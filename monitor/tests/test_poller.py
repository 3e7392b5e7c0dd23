"""The poll loop: a failed poll is recorded and the next one tried; a good one clears the error."""

import pytest

from servicekit.kafka import KafkaAccess
from servicekit.testing import eventually
from stack_monitor.history import LagHistory, OffsetSnapshot, Partition
from stack_monitor.offsets import OffsetPoller, OffsetReader

pytestmark = pytest.mark.unit


class FlakyReader(OffsetReader):
    """Fails its first snapshot, then answers one group on one partition."""

    def __init__(self) -> None:
        super().__init__(KafkaAccess("127.0.0.1:1"))
        self.calls = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def snapshot(self) -> OffsetSnapshot:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("broker away")
        partition = Partition("orders", 0)
        return OffsetSnapshot(self.calls * 1000, frozenset({"g"}), {"g": {partition: 10}}, {partition: 11})


async def test_a_failed_poll_is_recorded_and_the_next_tick_polls_again() -> None:
    history = LagHistory("local", window=10, allowed_lag=1)
    reader = FlakyReader()
    poller = OffsetPoller(reader, history, interval=0.01)
    await poller.poll_once()
    assert history.last_error == "ConnectionError: broker away" and history.groups() == []
    await poller.start()
    try:
        await eventually(lambda: reader.calls >= 3, within=5, what="two more polls", interval=0.01)
    finally:
        await poller.stop()
    assert history.last_error is None and history.groups() == ["g"]
    assert history.last_poll_seconds is not None
