"""The shared HTTP edge: errors naming the field, 413 for big bodies, X-Instance-Id on every answer."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError

from servicekit.config import ServiceSettings
from servicekit.errors import NotFound
from servicekit.web import install_edge

pytestmark = pytest.mark.unit


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    qty: int = Field(gt=0)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(db_user="unused", db_password="unused", instance_id="edge-test-1", max_body_bytes=64)
    app = FastAPI()
    install_edge(app, settings, "EDGE-TEST")

    @app.post("/things")
    async def make_thing(body: Body) -> dict[str, int]:
        if body.qty == 7:
            raise NotFound("no seventh thing", field="qty")
        if body.qty == 8:
            raise OperationalError("SELECT 1", {}, Exception("(2003) Can't connect to MySQL server"))
        return {"qty": body.qty}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as http:
        yield http


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"qty": 0}', 422, "qty"),
        (b'{"qty": "1"}', 422, "qty"),
        (b'{"qty": 1, "extra": true}', 422, "extra"),
        (b"{}", 422, "qty"),
        (b'{"qty": 1', 400, "body"),
        (b"[]", 422, "body"),
        (b'{"qty": 7}', 404, "qty"),
    ],
)
async def test_refused_bodies_get_json_naming_the_field(
    client: httpx.AsyncClient, body: bytes, status: int, field: str
) -> None:
    response = await client.post("/things", content=body, headers={"content-type": "application/json"})

    assert response.status_code == status
    assert response.json()["fields"] == [field]
    assert response.json()["detail"]


async def test_a_body_over_the_limit_is_413_with_or_without_content_length(client: httpx.AsyncClient) -> None:
    big = b'{"qty": 1, "pad": "' + b"x" * 100 + b'"}'

    async def chunked() -> AsyncIterator[bytes]:
        yield big[:50]
        yield big[50:]

    declared = await client.post("/things", content=big, headers={"content-type": "application/json"})
    streamed = await client.post("/things", content=chunked(), headers={"content-type": "application/json"})

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert declared.json() == {"detail": "request body too large"}


async def test_every_answer_carries_the_instance_id(client: httpx.AsyncClient) -> None:
    answers = [
        await client.post("/things", json={"qty": 1}),
        await client.post("/things", json={"qty": 0}),
        await client.get("/nowhere"),
        await client.get("/health_check"),
    ]

    assert [answer.headers["x-instance-id"] for answer in answers] == ["edge-test-1"] * 4
    assert answers[-1].json() == {"status": "UP", "app": "EDGE-TEST", "instanceId": "edge-test-1"}


def _sample(page: str, name: str, **labels: str) -> float:
    """The value of one sample on a Prometheus text page (0 when absent)."""
    wanted = name + "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"
    for line in page.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0


async def test_metrics_count_answers_by_route_template_and_status(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    for body in (b'{"qty": 1}', b'{"qty": 2}', b'{"qty": 0}'):
        await client.post("/things", content=body, headers={"content-type": "application/json"})
    await client.get("/no/such/path")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    page = response.text

    def grew(status: str, route: str, method: str = "POST") -> float:
        labels = {"method": method, "route": route, "status": status}
        return _sample(page, "http_requests_total", **labels) - _sample(before, "http_requests_total", **labels)

    assert (grew("200", "/things"), grew("422", "/things"), grew("404", "unmatched", "GET")) == (2, 1, 1)
    assert 'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/things"}' in page
    assert "_created" not in page  # one series per metric, not a creation-time gauge beside each


async def test_a_database_that_cannot_be_reached_is_503_with_retry_after_not_500(client: httpx.AsyncClient) -> None:
    """Down, restarting, or a Galera node outside the primary component: the client may retry."""
    response = await client.post("/things", content=b'{"qty": 8}', headers={"content-type": "application/json"})

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "database" in response.json()["detail"]
