"""Burrow's /v3/kafka answers, field for field, over a history filled by the test (no Kafka)."""

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from stack_monitor.config import MonitorSettings
from stack_monitor.history import LagHistory, OffsetSnapshot, Partition
from stack_monitor.main import create_app

pytestmark = pytest.mark.unit

P0, P1 = Partition("orders", 0), Partition("orders", 1)


@pytest.fixture
def history() -> LagHistory:
    """Group `sink`: partition 0 caught up (lag 1, the commit marker), partition 1 stopped far behind."""
    history = LagHistory("local", window=10, allowed_lag=1)
    now_ms = int(time.time() * 1000)
    for n in range(10):
        taken = now_ms - 600_000 + n * 5000  # ten polls ten minutes ago
        committed = {P0: 10 * n, P1: 100 + n}
        history.record(OffsetSnapshot(taken, frozenset({"sink"}), {"sink": committed}, {P0: 10 * n + 1, P1: 500}))
    history.record(OffsetSnapshot(now_ms, frozenset({"sink"}), {"sink": {P0: 90, P1: 109}}, {P0: 91, P1: 900}))
    return history


@pytest.fixture
async def client(history: LagHistory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(MonitorSettings(instance_id="monitor-test"), history=history, poll=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090") as http:
            yield http


async def test_cluster_list_names_our_cluster(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v3/kafka")).json()
    assert body["error"] is False and body["clusters"] == ["local"]
    assert body["request"]["url"] == "/v3/kafka" and body["request"]["host"]


async def test_consumer_list_and_an_unknown_cluster(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v3/kafka/local/consumer")).json()["consumers"] == ["sink"]
    unknown = await client.get("/v3/kafka/elsewhere/consumer")
    assert unknown.status_code == 404
    assert unknown.json()["error"] is True and unknown.json()["message"] == "cluster not found"


async def test_status_lists_only_partitions_that_are_not_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/kafka/local/consumer/sink/status")
    assert response.status_code == 200
    status = response.json()["status"]
    assert set(status) >= {
        "cluster",
        "group",
        "status",
        "complete",
        "partitions",
        "partition_count",
        "maxlag",
        "totallag",
    }
    assert (status["cluster"], status["group"], status["status"]) == ("local", "sink", "ERR")
    assert status["partition_count"] == 2 and status["complete"] == 1.0
    assert [(p["partition"], p["status"]) for p in status["partitions"]] == [(1, "STOP")]
    assert status["totallag"] == 1 + 791
    assert status["maxlag"]["partition"] == 1 and status["maxlag"]["current_lag"] == 791


async def test_lag_lists_every_partition_with_its_window_ends(client: httpx.AsyncClient) -> None:
    status = (await client.get("/v3/kafka/local/consumer/sink/lag")).json()["status"]
    partitions = {p["partition"]: p for p in status["partitions"]}
    assert partitions[0]["status"] == "OK" and partitions[0]["current_lag_seconds"] == 0.0
    stopped = partitions[1]
    assert set(stopped) >= {
        "topic",
        "partition",
        "owner",
        "client_id",
        "status",
        "start",
        "end",
        "current_lag",
        "complete",
    }
    assert set(stopped["end"]) == {"offset", "timestamp", "observedAt", "lag"}
    assert (stopped["start"]["offset"], stopped["end"]["offset"], stopped["complete"]) == (100, 109, 1.0)
    assert stopped["current_lag_seconds"] > 500  # the first unread record is about ten minutes old


async def test_an_unknown_group_is_notfound_with_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/kafka/local/consumer/nobody/status")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] is False
    assert body["status"]["status"] == "NOTFOUND" and body["status"]["partitions"] == []


async def test_the_ratings_are_prometheus_metrics(client: httpx.AsyncClient) -> None:
    """The same rating the API gives, on /metrics: 1 on the group's status, 0 on the others, and its lag."""
    rating = (await client.get("/v3/kafka/local/consumer/sink/status")).json()["status"]

    page = (await client.get("/metrics")).text

    samples = dict(line.rsplit(" ", 1) for line in page.splitlines() if line.startswith("consumer_group_"))
    assert rating["status"] == "ERR"
    assert [float(samples[f'consumer_group_status{{group="sink",status="{s}"}}']) for s in ("OK", "WARN", "ERR")] == [
        0,
        0,
        1,
    ]
    assert float(samples['consumer_group_lag_records{group="sink"}']) == rating["totallag"]
    assert float(samples['consumer_group_lag_seconds{group="sink"}']) > 0
