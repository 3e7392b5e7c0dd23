"""user-service against the real MariaDB, a real in-process discovery server and a small real order-service."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from servicekit.discovery import DiscoveryClient
from user_service.config import ORDER_SERVICE_APP, UserServiceSettings
from user_service.main import create_app

discovery_server = pytest.importorskip("discovery_server.main", reason="the discovery server package is not installed")
discovery_config = pytest.importorskip("discovery_server.config")

POLL_DEADLINE_SECONDS = 15.0
ORDERS_TIMEOUT_SECONDS = 0.5


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Poll `check` until true; fail naming `what` after the deadline."""
    deadline = time.monotonic() + POLL_DEADLINE_SECONDS
    while True:
        outcome = check()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not within {POLL_DEADLINE_SECONDS:.0f}s: {what}")
        await asyncio.sleep(0.05)


class LocalServer:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port, inside the test's event loop."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        await eventually(lambda: self.server.started, "local server started")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


class FakeOrderService:
    """Answers GET /{userId}/orders like order-service: the orders it was given, after `delay_seconds`."""

    def __init__(self) -> None:
        self.orders: dict[str, list[dict[str, Any]]] = {}
        self.delay_seconds = 0.0
        self.app = FastAPI()

        @self.app.get("/{user_id}/orders")
        async def orders_of(user_id: str) -> list[dict[str, Any]]:
            await asyncio.sleep(self.delay_seconds)
            return self.orders.get(user_id, [])


@pytest.fixture(scope="session")
def settings() -> UserServiceSettings:
    return UserServiceSettings(instance_id="user-service-test", orders_timeout_seconds=ORDERS_TIMEOUT_SECONDS)


@pytest.fixture(scope="session")
async def discovery_url() -> AsyncIterator[str]:
    """A discovery server of our own, so the stack's real order-service instances stay out of these tests."""
    registry = LocalServer(discovery_server.create_app(discovery_config.Settings()))
    await registry.start()
    yield f"http://127.0.0.1:{registry.port}/eureka"
    await registry.stop()


@pytest.fixture(scope="session")
async def discovery(discovery_url: str) -> AsyncIterator[DiscoveryClient]:
    """What user-service reads the registry through (it does not register itself here)."""
    client = DiscoveryClient(discovery_url, registry_refresh_interval=0.1)
    await client.start()
    yield client
    await client.stop()


@pytest.fixture(scope="session")
async def api(settings: UserServiceSettings, discovery: DiscoveryClient) -> AsyncIterator[httpx.AsyncClient]:
    """The user-service app with its lifespan run (migrations, engine), called in-process."""
    app = create_app(settings)
    app.state.discovery = discovery
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://user-service") as client:
            yield client


@pytest.fixture
async def order_service(discovery_url: str, discovery: DiscoveryClient) -> AsyncIterator[FakeOrderService]:
    """A real HTTP order-service stand-in, registered UP as ORDER-SERVICE for one test, then deregistered."""
    fake = FakeOrderService()
    server = LocalServer(fake.app)
    await server.start()
    instance = DiscoveryClient(
        discovery_url,
        app_name=ORDER_SERVICE_APP,
        instance_id=f"fake-order-service-{uuid.uuid4().hex[:8]}",
        host="127.0.0.1",
        port=server.port,
    )
    await instance.start()
    await eventually(lambda: bool(discovery.instances(ORDER_SERVICE_APP)), "ORDER-SERVICE visible")
    yield fake
    await instance.stop()
    await eventually(lambda: not discovery.instances(ORDER_SERVICE_APP), "ORDER-SERVICE gone")
    await server.stop()


@pytest.fixture
def new_user() -> dict[str, str]:
    """A registration body with an email no earlier run has used."""
    tag = uuid.uuid4().hex[:12]
    return {"email": f"user-{tag}@example.com", "name": f"Test {tag}", "pwd": f"secret-{tag}"}
