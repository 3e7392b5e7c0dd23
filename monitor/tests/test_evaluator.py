"""Burrow's rules on offset sequences: each rating, the order the rules are tried in, and the time lag estimate."""

import pytest

from stack_monitor.evaluator import Commit, EndSample, Status, lag_seconds, rate_group, rate_partition

pytestmark = pytest.mark.unit

SECOND = 1000


def window(*entries: tuple[int, int], every_s: int = 10) -> list[Commit]:
    """(offset, lag) pairs committed `every_s` seconds apart, the first at t=0."""
    return [Commit(offset, n * every_s * SECOND, lag) for n, (offset, lag) in enumerate(entries)]


# Ten commits, 0..90 s; "recent" means asked at 95 s, well inside the window's own span.
RECENT = 95 * SECOND
FAR_ENDS = [10_000] * 10  # log end offsets of the recent polls, all beyond every commit here


def test_caught_up_now_is_ok_whatever_the_window_holds() -> None:
    stalled = window(*[(100, 50)] * 10)
    assert rate_partition(stalled, FAR_ENDS, current_lag=0, now_ms=10**9) is Status.OK


def test_lag_within_allowed_lag_counts_as_caught_up() -> None:
    stalled = window(*[(100, 1)] * 10)
    assert rate_partition(stalled, FAR_ENDS, current_lag=1, now_ms=10**9, allowed_lag=1) is Status.OK
    assert rate_partition(stalled, FAR_ENDS, current_lag=1, now_ms=10**9, allowed_lag=0) is Status.STOP


def test_no_commits_is_ok() -> None:
    assert rate_partition([], FAR_ENDS, current_lag=5, now_ms=RECENT) is Status.OK


def test_zero_lag_once_in_the_window_is_ok() -> None:
    commits = window((100, 0), (110, 5), (120, 9), (130, 12), (140, 15))
    assert rate_partition(commits, FAR_ENDS, current_lag=15, now_ms=45 * SECOND) is Status.OK


def test_lag_shrinking_somewhere_is_ok() -> None:
    commits = window((100, 10), (110, 12), (120, 8), (130, 9), (140, 11))
    assert rate_partition(commits, FAR_ENDS, current_lag=11, now_ms=45 * SECOND) is Status.OK


def test_offsets_moving_while_lag_never_shrinks_is_warn() -> None:
    commits = window(*[(100 + 10 * n, 5 + n) for n in range(10)])
    assert rate_partition(commits, FAR_ENDS, current_lag=15, now_ms=RECENT) is Status.WARN


def test_lag_fixed_but_nonzero_with_moving_offsets_is_warn() -> None:
    commits = window(*[(100 + 10 * n, 7) for n in range(10)])
    assert rate_partition(commits, FAR_ENDS, current_lag=7, now_ms=RECENT) is Status.WARN


def test_same_offset_committed_again_and_again_with_lag_is_stall() -> None:
    commits = window(*[(100, 5 + n) for n in range(10)])
    assert rate_partition(commits, FAR_ENDS, current_lag=15, now_ms=RECENT) is Status.STALL


def test_no_commit_for_longer_than_the_window_spans_is_stop() -> None:
    commits = window(*[(100 + 10 * n, 0) for n in range(10)])  # healthy, zero lag, until 90 s
    assert rate_partition(commits, FAR_ENDS, current_lag=40, now_ms=180 * SECOND) is Status.OK  # 90 s: not yet
    assert rate_partition(commits, FAR_ENDS, current_lag=40, now_ms=181 * SECOND) is Status.STOP


def test_stop_is_held_back_while_the_log_end_was_at_the_last_commit_recently() -> None:
    commits = window(*[(100 + 10 * n, 0) for n in range(10)])
    ends = [190] * 9 + [230]  # the consumer was at the end until the very last poll
    assert rate_partition(commits, ends, current_lag=40, now_ms=400 * SECOND) is Status.OK


def test_offset_going_back_is_rewind_until_it_is_reached_again() -> None:
    rewound = window((100, 5), (110, 5), (120, 5), (50, 75), (60, 70))
    assert rate_partition(rewound, FAR_ENDS, current_lag=70, now_ms=45 * SECOND) is Status.REWIND
    recovered = window((100, 5), (110, 5), (120, 5), (50, 75), (125, 4))
    assert rate_partition(recovered, FAR_ENDS, current_lag=4, now_ms=45 * SECOND) is Status.OK


def test_stop_is_tried_before_rewind_and_rewind_before_stall() -> None:
    rewound = window((100, 5), (110, 5), (50, 60), (50, 70), (50, 80))
    assert rate_partition(rewound, FAR_ENDS, current_lag=80, now_ms=1000 * SECOND) is Status.STOP
    assert rate_partition(rewound, FAR_ENDS, current_lag=80, now_ms=45 * SECOND) is Status.REWIND


def test_a_single_commit_with_lag_is_stop_once_any_time_passes() -> None:
    one = [Commit(100, 0, 5)]
    assert rate_partition(one, FAR_ENDS, current_lag=5, now_ms=1) is Status.STOP


@pytest.mark.parametrize(
    ("partitions", "group"),
    [
        ([], Status.OK),
        ([Status.OK, Status.OK], Status.OK),
        ([Status.OK, Status.WARN], Status.WARN),
        ([Status.WARN, Status.STOP], Status.ERR),
        ([Status.OK, Status.STALL], Status.ERR),
        ([Status.REWIND, Status.WARN], Status.ERR),
    ],
)
def test_a_group_takes_its_worst_partition_with_stop_stall_and_rewind_as_err(
    partitions: list[Status], group: Status
) -> None:
    assert rate_group(partitions) is group


def test_lag_seconds_is_zero_when_caught_up_and_none_without_samples() -> None:
    assert lag_seconds(500, [EndSample(500, 0)], now_ms=9 * SECOND) == 0.0
    assert lag_seconds(500, [], now_ms=9 * SECOND) is None


def test_lag_seconds_dates_the_first_unread_record_between_two_polls() -> None:
    ends = [EndSample(100, 0), EndSample(200, 10 * SECOND), EndSample(300, 20 * SECOND)]
    # Offset 149 is the 50th of the 100 records written between 0 s and 10 s: written at about 5 s.
    assert lag_seconds(149, ends, now_ms=30 * SECOND) == pytest.approx(25.0)
    assert lag_seconds(299, ends, now_ms=30 * SECOND) == pytest.approx(10.0)


def test_lag_seconds_older_than_the_window_is_extrapolated_at_the_write_rate() -> None:
    ends = [EndSample(100, 10 * SECOND), EndSample(200, 20 * SECOND)]  # 10 records a second
    assert lag_seconds(50, ends, now_ms=20 * SECOND) == pytest.approx(15.0)
    idle = [EndSample(100, 10 * SECOND), EndSample(100, 20 * SECOND)]
    assert lag_seconds(50, idle, now_ms=20 * SECOND) == pytest.approx(10.0)  # at least as old as the window
