"""What the monitor knows: per consumer group and partition, a sliding window of the commits seen and of the log
end offsets, and the ratings derived from them. The HTTP API reads it; a console page or a metrics export can read
the same object. No I/O here: the poller hands in one `OffsetSnapshot` per poll.

A window entry is a commit *seen*: a poll that finds the group's committed offset moved since the poll before (the
offset, the poll's time, the lag then). Burrow reads every commit from `__consumer_offsets`; a poll cannot see a
commit that repeats an unchanged offset. Ours (catalog-service, Connect's sink) commit only when they moved, so
for them this is the same window Burrow would keep, with the poll interval as Burrow's `min-distance`.
"""

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from stack_monitor.evaluator import Commit, EndSample, Status, lag_seconds, rate_group, rate_partition


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    topic: str
    partition: int


@dataclass(frozen=True)
class OffsetSnapshot:
    """One poll: the consumer groups listed, the committed offsets of those that could be read, the log ends."""

    taken_ms: int
    listed_groups: frozenset[str]
    committed: Mapping[str, Mapping[Partition, int]]
    end_offsets: Mapping[Partition, int]


@dataclass
class PartitionHistory:
    window: int
    commits: deque[Commit] = field(init=False)
    ends: deque[EndSample] = field(init=False)

    def __post_init__(self) -> None:
        self.commits = deque(maxlen=self.window)
        self.ends = deque(maxlen=self.window)

    def observe(self, committed: int, end: int, taken_ms: int) -> None:
        self.ends.append(EndSample(end, taken_ms))
        if not self.commits or self.commits[-1].offset != committed:
            self.commits.append(Commit(committed, taken_ms, max(0, end - committed)))

    @property
    def current_lag(self) -> int:
        """The latest log end minus the latest committed offset (0 when the end we know is behind the commit)."""
        if not self.commits or not self.ends:
            return 0
        return max(0, self.ends[-1].offset - self.commits[-1].offset)


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    status: Status
    start: Commit | None
    end: Commit | None
    current_lag: int
    lag_seconds: float | None
    complete: float


@dataclass(frozen=True)
class GroupStatus:
    cluster: str
    group: str
    status: Status
    complete: float
    partitions: list[PartitionStatus]
    maxlag: PartitionStatus | None
    totallag: int

    @property
    def max_lag_seconds(self) -> float | None:
        known = [p.lag_seconds for p in self.partitions if p.lag_seconds is not None]
        return max(known, default=None)


class LagHistory:
    """Every group's windows, fed by `record`, rated on demand by `status`."""

    def __init__(self, cluster: str, window: int, allowed_lag: int) -> None:
        self.cluster = cluster
        self.window = window
        self.allowed_lag = allowed_lag
        self._groups: dict[str, dict[Partition, PartitionHistory]] = {}
        self.last_poll_ms: int | None = None
        self.last_poll_seconds: float | None = None
        self.last_error: str | None = None

    def record(self, snapshot: OffsetSnapshot) -> None:
        # A group no longer listed is gone (deleted, or expired); one listed but not read this time stays as it was.
        for gone in set(self._groups) - snapshot.listed_groups:
            del self._groups[gone]
        for group, committed in snapshot.committed.items():
            if not committed:
                self._groups.pop(group, None)  # Burrow knows only groups that committed
                continue
            partitions = self._groups.setdefault(group, {})
            for dropped in set(partitions) - set(committed):
                del partitions[dropped]
            for partition, offset in committed.items():
                end = snapshot.end_offsets.get(partition)
                if end is None:
                    continue  # its end offset could not be read this time
                history = partitions.setdefault(partition, PartitionHistory(self.window))
                history.observe(offset, end, snapshot.taken_ms)
        self.last_poll_ms = snapshot.taken_ms

    def groups(self) -> list[str]:
        return sorted(self._groups)

    def end_offsets(self) -> dict[Partition, int]:
        """The latest log end offset polled per partition (of the partitions some group has committed on)."""
        latest: dict[Partition, EndSample] = {}
        for partitions in self._groups.values():
            for partition, history in partitions.items():
                known = latest.get(partition)
                if history.ends and (known is None or history.ends[-1].timestamp_ms > known.timestamp_ms):
                    latest[partition] = history.ends[-1]
        return {partition: sample.offset for partition, sample in sorted(latest.items())}

    def status(self, group: str, now_ms: int) -> GroupStatus | None:
        """The group's rating with every partition's (None for a group never seen committing)."""
        partitions = self._groups.get(group)
        if partitions is None:
            return None
        rated = [self._rate(partition, history, now_ms) for partition, history in sorted(partitions.items())]
        complete_count = sum(1 for p in rated if p.complete >= 1.0)
        return GroupStatus(
            cluster=self.cluster,
            group=group,
            status=rate_group(p.status for p in rated),
            complete=complete_count / len(rated) if rated else 0.0,
            partitions=rated,
            maxlag=max(rated, key=lambda p: p.current_lag, default=None),
            totallag=sum(p.current_lag for p in rated),
        )

    def _rate(self, partition: Partition, history: PartitionHistory, now_ms: int) -> PartitionStatus:
        commits = list(history.commits)
        current_lag = history.current_lag
        status = rate_partition(
            commits, [sample.offset for sample in history.ends], current_lag, now_ms, self.allowed_lag
        )
        return PartitionStatus(
            topic=partition.topic,
            partition=partition.partition,
            status=status,
            start=commits[0] if commits else None,
            end=commits[-1] if commits else None,
            current_lag=current_lag,
            lag_seconds=_lag_seconds(history, now_ms, self.allowed_lag),
            complete=len(commits) / self.window,
        )


def _lag_seconds(history: PartitionHistory, now_ms: int, allowed_lag: int) -> float | None:
    if not history.commits:
        return None
    if history.current_lag <= allowed_lag:
        return 0.0  # what is left is not a record (a transaction's commit marker)
    return lag_seconds(history.commits[-1].offset, list(history.ends), now_ms)
