"""The gateway's metrics, kept cheap on the hot path and served the way nginx or Envoy serve theirs: on a separate
management port (GATEWAY_MANAGEMENT_PORT, registered in discovery as the `management.port` metadata Prometheus
relabels to), not on the port clients use.

Each worker counts in plain dicts (one dict update and a bisect per answer) and writes its counts to a file of its
own about once a second; the supervisor adds the files up when Prometheus scrapes. A dead worker's file stays, so
counters never go backwards while the gateway runs.
"""

import json
import os
from bisect import bisect_left
from pathlib import Path
from typing import Any

# Seconds from a request's last byte to its answer's write; the same bounds as the services' histograms.
LATENCY_BOUNDS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """One worker's counts since it started."""

    def __init__(self) -> None:
        # (route id, status, upstream instance id or "" when the gateway answered itself) -> answers
        self.requests: dict[tuple[str, int, str], int] = {}
        # route id -> answers per latency bucket (the last one past every bound), and their summed seconds
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}
        # app -> requests sent again to another instance, and instances taken out of rotation
        self.retries: dict[str, int] = {}
        self.ejections: dict[str, int] = {}

    def answered(self, route: str, status: int, upstream: str, seconds: float) -> None:
        key = (route, status, upstream)
        self.requests[key] = self.requests.get(key, 0) + 1
        buckets = self.latency.get(route)
        if buckets is None:
            buckets = self.latency[route] = [0] * (len(LATENCY_BOUNDS) + 1)
            self.latency_sum[route] = 0.0
        buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum[route] += seconds

    def retried(self, app: str) -> None:
        self.retries[app] = self.retries.get(app, 0) + 1

    def ejected(self, app: str) -> None:
        self.ejections[app] = self.ejections.get(app, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": [
                [route, status, upstream, count] for (route, status, upstream), count in self.requests.items()
            ],
            "latency": {route: [buckets, self.latency_sum[route]] for route, buckets in self.latency.items()},
            "retries": self.retries,
            "ejections": self.ejections,
        }

    def write(self, directory: Path) -> None:
        """Replace this worker's file whole (a reader never sees half of it)."""
        target = directory / f"worker-{os.getpid()}.json"
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps(self.snapshot()))
        os.replace(partial, target)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(directory: Path) -> bytes:
    """Every worker's counts added up, as a Prometheus text page."""
    requests: dict[tuple[str, int, str], int] = {}
    latency: dict[str, list[int]] = {}
    latency_sum: dict[str, float] = {}
    retries: dict[str, int] = {}
    ejections: dict[str, int] = {}
    for path in sorted(directory.glob("worker-*.json")):
        try:
            snapshot = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced or removed while read: its next version counts at the next scrape
        for route, status, upstream, count in snapshot["requests"]:
            requests[(route, status, upstream)] = requests.get((route, status, upstream), 0) + count
        for route, (buckets, seconds) in snapshot["latency"].items():
            summed = latency.setdefault(route, [0] * len(buckets))
            latency[route] = [a + b for a, b in zip(summed, buckets, strict=True)]
            latency_sum[route] = latency_sum.get(route, 0.0) + seconds
        for app, count in snapshot["retries"].items():
            retries[app] = retries.get(app, 0) + count
        for app, count in snapshot["ejections"].items():
            ejections[app] = ejections.get(app, 0) + count

    lines = [
        "# HELP gateway_requests_total Answers by route, status and the upstream instance (empty: the gateway's own)",
        "# TYPE gateway_requests_total counter",
    ]
    for (route, status, upstream), count in sorted(requests.items()):
        lines.append(
            f'gateway_requests_total{{route="{_label(route)}",status="{status}",upstream="{_label(upstream)}"}} {count}'
        )
    lines += [
        "# HELP gateway_request_duration_seconds From a request's last byte to its answer, by route",
        "# TYPE gateway_request_duration_seconds histogram",
    ]
    for route, buckets in sorted(latency.items()):
        name = _label(route)
        cumulative = 0
        for bound, count in zip(LATENCY_BOUNDS, buckets, strict=False):
            cumulative += count
            lines.append(f'gateway_request_duration_seconds_bucket{{route="{name}",le="{bound}"}} {cumulative}')
        total = cumulative + buckets[-1]
        lines.append(f'gateway_request_duration_seconds_bucket{{route="{name}",le="+Inf"}} {total}')
        lines.append(f'gateway_request_duration_seconds_sum{{route="{name}"}} {latency_sum[route]}')
        lines.append(f'gateway_request_duration_seconds_count{{route="{name}"}} {total}')
    for metric, what, counts in (
        ("gateway_retries_total", "Requests sent again to another instance, by app", retries),
        ("gateway_ejections_total", "Instances taken out of rotation after failures in a row, by app", ejections),
    ):
        lines += [f"# HELP {metric} {what}", f"# TYPE {metric} counter"]
        lines += [f'{metric}{{app="{_label(app)}"}} {count}' for app, count in sorted(counts.items())]
    return ("\n".join(lines) + "\n").encode()
