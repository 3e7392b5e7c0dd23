"""connect-watchdog's decisions without Connect: what of a status is FAILED, when a data error is the record's
fault, and when the sink recovery steps in (after FAILURES_BEFORE_RECOVERY in a row, at most
MAX_DEAD_LETTERS_PER_HOUR times an hour)."""

import httpx
import pytest

from connect_watchdog import sink_recovery
from connect_watchdog.config import WatchdogSettings
from connect_watchdog.sink_recovery import SinkRecovery, is_data_error, refused_by_database
from connect_watchdog.watchdog import failed_parts, first_line

pytestmark = pytest.mark.unit

REFUSED = (
    "org.apache.kafka.connect.errors.ConnectException\nCaused by: java.sql.SQLIntegrityConstraintViolationException"
)


def test_failed_parts_name_the_connector_and_each_failed_task() -> None:
    status = {
        "connector": {"state": "FAILED", "trace": "boom\nat x"},
        "tasks": [{"id": 0, "state": "RUNNING"}, {"id": 1, "state": "FAILED", "trace": "task boom"}],
    }
    assert failed_parts(status) == ["connector", "task 1"]
    assert first_line(status) == "boom"
    assert failed_parts({"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}) == []


@pytest.mark.parametrize(
    ("sqlstate", "record_at_fault"),
    [("22003", True), ("23000", True), ("HY000", False), ("42S02", False), ("08S01", False), (None, False)],
)
def test_only_data_exceptions_and_constraint_violations_are_the_records_fault(
    sqlstate: str | None, record_at_fault: bool
) -> None:
    assert is_data_error(sqlstate) is record_at_fault


def test_a_trace_names_a_refused_record_only_for_jdbcs_data_exceptions() -> None:
    assert refused_by_database(REFUSED)
    assert refused_by_database("Caused by: java.sql.SQLDataException: Data truncation")
    assert not refused_by_database("Caused by: java.sql.SQLTransientConnectionException: connection refused")


class CountingRecovery(SinkRecovery):
    """SinkRecovery with its Connect and Kafka work replaced by a count (the decision is what is under test)."""

    def __init__(self) -> None:
        settings = WatchdogSettings(connect_password="p", kafka_password="p", db_password="p")
        super().__init__(settings, httpx.Client(), "orders-sink")
        self.recoveries = 0

    def recover(self) -> bool:
        self.recoveries += 1
        self.dead_lettered.append(self.clock())
        return True


def test_recovery_waits_for_failures_in_a_row_and_another_error_resets_the_count() -> None:
    recovery = CountingRecovery()
    for _ in range(sink_recovery.FAILURES_BEFORE_RECOVERY - 1):
        assert not recovery.task_failed(REFUSED)
    assert not recovery.task_failed("Caused by: java.net.ConnectException")  # not the record's fault: count reset
    for _ in range(sink_recovery.FAILURES_BEFORE_RECOVERY - 1):
        assert not recovery.task_failed(REFUSED)
    assert recovery.task_failed(REFUSED)
    assert recovery.recoveries == 1


def test_recovery_stops_moving_records_aside_past_the_hourly_limit() -> None:
    recovery = CountingRecovery()
    recovery.clock = lambda: 10.0
    moved = 0
    for _ in range((sink_recovery.MAX_DEAD_LETTERS_PER_HOUR + 2) * sink_recovery.FAILURES_BEFORE_RECOVERY):
        moved += recovery.task_failed(REFUSED)
    assert moved == sink_recovery.MAX_DEAD_LETTERS_PER_HOUR
