"""The ratings as Prometheus metrics, computed from the LagHistory when Prometheus scrapes (like Burrow's own
exporters): one series per group and status (1 for the group's current rating, 0 for the others, so an alert can
ask for `status!="OK"`), the group's total lag in records and its worst lag in seconds."""

import time
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stack_monitor.evaluator import Status
from stack_monitor.history import LagHistory

GROUP_STATUSES = (Status.OK, Status.WARN, Status.ERR)


class RatingsCollector(Collector):
    def __init__(self) -> None:
        self.history: LagHistory | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "consumer_group_status", "Burrow's rating of the group (1 for its current one)", labels=["group", "status"]
        )
        lag = GaugeMetricFamily("consumer_group_lag_records", "Records the group is behind, summed", labels=["group"])
        seconds = GaugeMetricFamily(
            "consumer_group_lag_seconds", "How long the group's oldest unread record has waited", labels=["group"]
        )
        if self.history is not None:
            now_ms = int(time.time() * 1000)
            for group in self.history.groups():
                rated = self.history.status(group, now_ms)
                if rated is None:
                    continue
                for candidate in GROUP_STATUSES:
                    status.add_metric([group, candidate.name], 1.0 if rated.status == candidate else 0.0)
                lag.add_metric([group], rated.totallag)
                if rated.max_lag_seconds is not None:
                    seconds.add_metric([group], rated.max_lag_seconds)
        yield status
        yield lag
        yield seconds


# One per process; create_app points it at the history it serves.
RATINGS = RatingsCollector()
REGISTRY.register(RATINGS)
