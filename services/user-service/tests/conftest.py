"""user-service against the real MariaDB, a real in-process discovery server and a small real order-service."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from servicekit.discovery import DiscoveryClient, with_credentials
from servicekit.testing import serving, wait_until
from servicekit.tokens import ADMIN_ROLE, issue_token
from user_service.config import ORDER_SERVICE_APP, UserServiceSettings
from user_service.main import create_app

discovery_server = pytest.importorskip("discovery_server.main", reason="the discovery server package is not installed")
discovery_config = pytest.importorskip("discovery_server.config")

POLL_DEADLINE_SECONDS = 15.0
ORDERS_TIMEOUT_SECONDS = 0.5


class FakeOrderService:
    """Answers GET /{userId}/orders like order-service: the orders it was given, after `delay_seconds`."""

    def __init__(self) -> None:
        self.orders: dict[str, list[dict[str, Any]]] = {}
        self.delay_seconds = 0.0
        # The Authorization header of each request, to check that user-service passes the caller's token on.
        self.authorizations: list[str | None] = []
        self.app = FastAPI()

        @self.app.get("/{user_id}/orders")
        async def orders_of(user_id: str, request: Request) -> list[dict[str, Any]]:
            self.authorizations.append(request.headers.get("authorization"))
            await asyncio.sleep(self.delay_seconds)
            return self.orders.get(user_id, [])


@pytest.fixture(scope="session")
def settings() -> UserServiceSettings:
    return UserServiceSettings(instance_id="user-service-test", orders_timeout_seconds=ORDERS_TIMEOUT_SECONDS)


@pytest.fixture(scope="session")
async def discovery_url() -> AsyncIterator[str]:
    """A discovery server of our own, so the stack's real order-service instances stay out of these tests."""
    registry_settings = discovery_config.Settings()
    async with serving(discovery_server.create_app(registry_settings)) as base_url:
        yield with_credentials(
            f"{base_url}/eureka", registry_settings.discovery_user, registry_settings.discovery_password
        )


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

    async def visible() -> bool:
        return bool(discovery.instances(ORDER_SERVICE_APP))

    async def gone() -> bool:
        return not discovery.instances(ORDER_SERVICE_APP)

    async with serving(fake.app) as base_url:
        instance = DiscoveryClient(
            discovery_url,
            app_name=ORDER_SERVICE_APP,
            instance_id=f"fake-order-service-{uuid.uuid4().hex[:8]}",
            host="127.0.0.1",
            port=int(base_url.rsplit(":", 1)[1]),
        )
        await instance.start()
        await wait_until(visible, within=POLL_DEADLINE_SECONDS, what="ORDER-SERVICE in user-service's registry copy")
        yield fake
        await instance.stop()
        await wait_until(gone, within=POLL_DEADLINE_SECONDS, what="ORDER-SERVICE gone from the registry copy")


@pytest.fixture
def new_user() -> dict[str, str]:
    """A registration body with an email no earlier run has used."""
    tag = uuid.uuid4().hex[:12]
    return {"email": f"user-{tag}@example.com", "name": f"Test {tag}", "pwd": f"secret-{tag}"}


Bearer = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def bearer(settings: UserServiceSettings) -> Bearer:
    """`bearer(user_id)` / `bearer(user_id, admin=True)` -> an Authorization header signed like user-service's."""

    def headers(user_id: str, *, admin: bool = False) -> dict[str, str]:
        roles = (ADMIN_ROLE,) if admin else ()
        return {"Authorization": f"Bearer {issue_token(user_id, settings.jwt_secret, 600, roles)}"}

    return headers
