"""The gateway's metrics: each worker's counts, added up by the supervisor on the management port."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_gateway.metrics import WorkerMetrics, render
from servicekit.testing import eventually_blocking


def _sample(page: str, sample: str) -> float | None:
    return next(
        (float(line.rpartition(" ")[2]) for line in page.splitlines() if line.rpartition(" ")[0] == sample), None
    )


@pytest.mark.unit
def test_the_supervisor_adds_up_every_workers_counts(tmp_path: Path) -> None:
    for worker, statuses in enumerate(((201, 201, 503), (201,))):
        metrics = WorkerMetrics()
        for status in statuses:
            metrics.answered("order-service-user", status, "order-service-1" if status == 201 else "", 0.004)
        metrics.retried("ORDER-SERVICE")
        (tmp_path / f"worker-{worker}.json").write_text(json.dumps(metrics.snapshot()))
    (tmp_path / "worker-9.json").write_text("{not json")  # caught half-written: skipped, counted next time

    page = render(tmp_path).decode()

    assert (
        _sample(page, 'gateway_requests_total{route="order-service-user",status="201",upstream="order-service-1"}') == 3
    )
    assert _sample(page, 'gateway_requests_total{route="order-service-user",status="503",upstream=""}') == 1
    assert _sample(page, 'gateway_request_duration_seconds_bucket{route="order-service-user",le="0.002"}') == 0
    assert _sample(page, 'gateway_request_duration_seconds_bucket{route="order-service-user",le="0.005"}') == 4
    assert _sample(page, 'gateway_request_duration_seconds_count{route="order-service-user"}') == 4
    assert _sample(page, 'gateway_retries_total{app="ORDER-SERVICE"}') == 2


def test_answers_are_counted_by_route_status_and_instance_on_the_management_port(
    gateway_url: str, gateway_management_port: int, start_instances: Callable[..., list[Any]]
) -> None:
    (instance,) = start_instances("COUNTED", 1)
    for _ in range(5):
        assert httpx.get(f"{gateway_url}/counted/ping").status_code == 200
    httpx.get(f"{gateway_url}/no-such-route")
    metrics_url = f"http://127.0.0.1:{gateway_management_port}/metrics"
    sample = f'gateway_requests_total{{route="counted",status="200",upstream="{instance.instance_id}"}}'

    unmatched = 'gateway_requests_total{route="unmatched",status="404",upstream=""}'

    def page_with_the_answers() -> str | None:
        # Each worker writes its counts once a second: the 404 may come from another worker than the pings.
        page = httpx.get(metrics_url).text
        return page if (_sample(page, sample) or 0) >= 5 and (_sample(page, unmatched) or 0) >= 1 else None

    eventually_blocking(page_with_the_answers, within=10, what="the workers' counts on /metrics (5 pings, one 404)")
    assert httpx.get(f"{gateway_url}/metrics").status_code == 404  # not on the clients' port
    assert httpx.get(f"http://127.0.0.1:{gateway_management_port}/other").status_code == 404
