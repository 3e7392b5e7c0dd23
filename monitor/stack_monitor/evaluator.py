"""Burrow's consumer-lag rules, as pure functions over one partition's window.

The rules are those of Burrow's caching evaluator (linkedin/Burrow, core/internal/evaluator/caching.go, and its
wiki page "Consumer Lag Evaluation Rules"); this is our own code for them. A partition's window holds the last N
commits seen for it (offset, when it was seen, the lag at that moment), oldest first, and the log end offsets of
the last N polls. Nothing here reads a clock or Kafka: the caller passes `now_ms`.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import pairwise


class Status(IntEnum):
    """Burrow's ratings, ordered from good to bad. A group is NOTFOUND, OK, WARN or ERR; a partition is OK, WARN,
    STOP, STALL or REWIND (a group takes ERR for any of the last three)."""

    NOTFOUND = 0
    OK = 1
    WARN = 2
    ERR = 3
    STOP = 4
    STALL = 5
    REWIND = 6


@dataclass(frozen=True, slots=True)
class Commit:
    """One window entry: a committed offset, when it was seen (epoch ms), and the lag behind the log end then."""

    offset: int
    timestamp_ms: int
    lag: int


@dataclass(frozen=True, slots=True)
class EndSample:
    """The partition's log end offset at one poll (epoch ms)."""

    offset: int
    timestamp_ms: int


def rate_partition(
    commits: Sequence[Commit], end_offsets: Sequence[int], current_lag: int, now_ms: int, allowed_lag: int = 0
) -> Status:
    """The partition's rating. `commits` oldest first; `end_offsets` the recent log end offsets, oldest first;
    `current_lag` the latest log end minus the latest committed offset; `allowed_lag` counts as zero lag."""
    if not commits or current_lag <= allowed_lag:
        return Status.OK  # caught up (or nothing to judge): never an error
    # Stopped is checked first: zero lag somewhere in an old window says nothing about now. But when the log end
    # was at the last commit during the recent polls, the consumer may just not have seen the newest record yet.
    if _stopped(commits, now_ms) and not _recently_caught_up(commits[-1].offset, end_offsets):
        return Status.STOP
    # A rewind counts only until the consumer is back where it was (rebalances may re-commit a slightly old offset).
    rewind_at = _first_rewind(commits)
    if rewind_at is not None and not _recovered(commits, rewind_at):
        return Status.REWIND
    if all(commit.lag > allowed_lag for commit in commits):
        if _stalled(commits):
            return Status.STALL
        if _lag_never_decreases(commits):
            return Status.WARN
    return Status.OK


def rate_group(partition_statuses: Iterable[Status]) -> Status:
    """The worst partition's rating, where STOP, STALL and REWIND make the group ERR; OK for no partitions."""
    worst = Status.OK
    for status in partition_statuses:
        worst = max(worst, min(status, Status.ERR))
    return worst


def _stopped(commits: Sequence[Commit], now_ms: int) -> bool:
    """Longer since the last commit than the whole window spans."""
    first, last = commits[0].timestamp_ms, commits[-1].timestamp_ms
    return now_ms - last > last - first


def _recently_caught_up(last_committed: int, end_offsets: Sequence[int]) -> bool:
    return any(end <= last_committed for end in end_offsets)


def _first_rewind(commits: Sequence[Commit]) -> int | None:
    """Index of the first commit lower than the one before it."""
    for index in range(1, len(commits)):
        if commits[index].offset < commits[index - 1].offset:
            return index
    return None


def _recovered(commits: Sequence[Commit], rewind_at: int) -> bool:
    """Some commit from the rewind on reached the offset committed just before it."""
    before = commits[rewind_at - 1].offset
    return any(commit.offset >= before for commit in commits[rewind_at:])


def _stalled(commits: Sequence[Commit]) -> bool:
    """Every commit in the window has the same offset."""
    return all(commit.offset == commits[0].offset for commit in commits)


def _lag_never_decreases(commits: Sequence[Commit]) -> bool:
    return all(later.lag >= earlier.lag for earlier, later in pairwise(commits))


def lag_seconds(committed: int, ends: Sequence[EndSample], now_ms: int) -> float | None:
    """How long ago the first record the group has not consumed was written, estimated from the log end offsets
    of the recent polls (records between two polls taken as written evenly in between). Older than the window:
    extrapolated at the window's write rate. None without any sample."""
    if not ends:
        return None
    if committed >= ends[-1].offset:
        return 0.0
    written_ms = _time_written(committed, ends)
    return max(0.0, (now_ms - written_ms) / 1000)


def _time_written(offset: int, ends: Sequence[EndSample]) -> float:
    """Estimated epoch ms at which `offset` was written; `offset` is below the last sample's end."""
    for before, after in pairwise(ends):
        if before.offset <= offset < after.offset:
            share = (offset - before.offset + 1) / (after.offset - before.offset)
            return before.timestamp_ms + share * (after.timestamp_ms - before.timestamp_ms)
    first, last = ends[0], ends[-1]
    span_ms = last.timestamp_ms - first.timestamp_ms
    written = last.offset - first.offset
    if written <= 0 or span_ms <= 0:
        return float(first.timestamp_ms)  # older than the window, how much older unknown: a lower bound
    return first.timestamp_ms - (first.offset - offset) * span_ms / written
