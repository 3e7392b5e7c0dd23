"""The window the poller keeps per partition, and the ratings it leads to over a series of polls."""

import pytest

from stack_monitor.evaluator import Status
from stack_monitor.history import LagHistory, OffsetSnapshot, Partition

pytestmark = pytest.mark.unit

SECOND = 1000
P0 = Partition("orders", 0)


def poll(history: LagHistory, at_s: float, committed: int | None, end: int, group: str = "sink") -> None:
    """One poll: `group` listed with `committed` on P0 (None: listed, but its offsets could not be read)."""
    read = {} if committed is None else {group: {P0: committed}}
    history.record(OffsetSnapshot(int(at_s * SECOND), frozenset({group}), read, {P0: end}))


def status(history: LagHistory, at_s: float, group: str = "sink") -> Status:
    rated = history.status(group, int(at_s * SECOND))
    assert rated is not None
    return rated.status


def test_a_commit_enters_the_window_only_when_the_offset_moved() -> None:
    history = LagHistory("local", window=10, allowed_lag=1)
    for n, committed in enumerate([10, 10, 20, 20, 20, 30]):
        poll(history, 5 * n, committed, committed + 1)
    rated = history.status("sink", 30 * SECOND)
    assert rated is not None
    [partition] = rated.partitions
    assert partition.start is not None and partition.end is not None
    assert (partition.start.offset, partition.end.offset) == (10, 30)
    assert partition.complete == pytest.approx(0.3)


def test_a_consumer_that_stops_while_records_keep_coming_leaves_ok_after_the_window_span() -> None:
    history = LagHistory("local", window=10, allowed_lag=1)
    # Healthy: 10 records every 5 s poll, each read and committed (the commit marker stays behind: lag 1).
    for n in range(10):
        poll(history, 5 * n, 10 * n, 10 * n + 1)
    assert status(history, 45) is Status.OK
    # Stopped at 45 s: the committed offset stays, the log keeps growing.
    at = 45.0
    while status(history, at) is Status.OK:
        at += 5
        poll(history, at, 90, int(91 + 10 * (at - 45) / 5))
        assert at < 200, "never left OK"
    assert status(history, at) is Status.ERR
    rated = history.status("sink", int(at * SECOND))
    assert rated is not None and rated.partitions[0].status is Status.STOP
    # The window spans 45 s and the log end was at the last commit until 45 s: not OK from 95 s on (within 100 s).
    assert 90 < at <= 100
    # Back: it reads everything and commits; OK at the next poll.
    poll(history, at + 5, 500, 501)
    assert status(history, at + 5) is Status.OK


def test_a_group_no_longer_listed_is_forgotten_and_an_unread_one_kept() -> None:
    history = LagHistory("local", window=10, allowed_lag=1)
    poll(history, 0, 10, 11)
    poll(history, 5, None, 21)  # listed, offsets unreadable this time: kept as it was
    assert history.groups() == ["sink"]
    history.record(OffsetSnapshot(10 * SECOND, frozenset(), {}, {}))
    assert history.groups() == []
    assert history.status("sink", 10 * SECOND) is None


def test_a_group_without_committed_offsets_is_not_listed() -> None:
    history = LagHistory("local", window=10, allowed_lag=1)
    history.record(OffsetSnapshot(0, frozenset({"idle"}), {"idle": {}}, {}))
    assert history.groups() == []


def test_totallag_and_maxlag_over_partitions() -> None:
    history = LagHistory("local", window=10, allowed_lag=1)
    p1 = Partition("orders", 1)
    history.record(OffsetSnapshot(0, frozenset({"g"}), {"g": {P0: 10, p1: 20}}, {P0: 15, p1: 21}))
    rated = history.status("g", 1 * SECOND)
    assert rated is not None
    assert rated.totallag == 6
    assert rated.maxlag is not None and rated.maxlag.partition == 0
