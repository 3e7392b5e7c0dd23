"""The monitor answers only requests that name it by one of its own host names, and, given MONITOR_USER and
MONITOR_PASSWORD, only with HTTP Basic (health and metrics stay open to the registry and Prometheus)."""

from collections.abc import AsyncIterator

import httpx
import pytest

from stack_monitor.config import MonitorSettings
from stack_monitor.main import create_app

pytestmark = pytest.mark.unit


async def client_of(settings: MonitorSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, poll=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090") as http:
            yield http


@pytest.fixture
async def open_monitor() -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_of(MonitorSettings(instance_id="monitor-test", host="monitor")):
        yield http


@pytest.fixture
async def guarded_monitor() -> AsyncIterator[httpx.AsyncClient]:
    settings = MonitorSettings(instance_id="monitor-test", monitor_user="ops", monitor_password="p" * 32)
    async for http in client_of(settings):
        yield http


@pytest.mark.parametrize("host", ["127.0.0.1:8090", "localhost:8090", "LOCALHOST", "monitor:8090", "[::1]:8090"])
async def test_its_own_host_names_are_answered(open_monitor: httpx.AsyncClient, host: str) -> None:
    assert (await open_monitor.get("/v3/kafka", headers={"Host": host})).status_code == 200


@pytest.mark.parametrize("host", ["attacker.example:8090", "attacker.example", "127.0.0.1.nip.io:8090", ""])
async def test_another_host_name_is_refused(open_monitor: httpx.AsyncClient, host: str) -> None:
    for path in ("/v3/kafka", "/console/state", "/console", "/audit"):
        response = await open_monitor.get(path, headers={"Host": host})
        assert response.status_code == 421, (path, response.text)


async def test_it_serves_no_api_docs(open_monitor: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await open_monitor.get(path)).status_code == 404


async def test_with_credentials_set_it_needs_basic_except_for_health_and_metrics(
    guarded_monitor: httpx.AsyncClient,
) -> None:
    refused = await guarded_monitor.get("/v3/kafka")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert (await guarded_monitor.get("/v3/kafka", auth=("ops", "q" * 32))).status_code == 401
    assert (await guarded_monitor.get("/v3/kafka", headers={"Authorization": "Basic !!"})).status_code == 401
    assert (await guarded_monitor.get("/v3/kafka", auth=("ops", "p" * 32))).status_code == 200
    assert (await guarded_monitor.get("/health_check")).status_code == 200
    assert (await guarded_monitor.get("/metrics")).status_code == 200
