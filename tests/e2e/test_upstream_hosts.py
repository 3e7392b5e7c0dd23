"""Whom user-service hands a user's token to: only ORDER-SERVICE instances on its allowed hosts (UPSTREAM_HOST_ALLOW).
Whoever holds the registry's write credential can register an instance anywhere; a user's page must not send the
user's bearer token there (#25, review H3)."""

import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request

from servicekit.config import DiscoverySettings
from servicekit.discovery import DiscoveryClient
from servicekit.testing import eventually, serving
from stack_support.api_client import GatewayClient

pytestmark = pytest.mark.stack

ORDER_SERVICE = "ORDER-SERVICE"
# user-service's registry copy is refreshed every 2 s (DiscoveryClient's default): within three refreshes it has
# seen a registration, so a foreign instance that gets nothing in this window is ignored, not just not seen yet.
REGISTRY_REFRESHES = 3 * 2.0


def foreign_address() -> str:
    """An address of this machine off loopback (natively outside user-service's allow-list; in compose the runner's
    own, not an order-service name): the interface a route to a documentation address would leave by."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # UDP: nothing is sent
        except OSError:
            pytest.skip("no interface off loopback to register a foreign instance on")
        address: str = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("no interface off loopback to register a foreign instance on")
    return address


class ForeignOrderService:
    """An ORDER-SERVICE impostor: answers like order-service and notes every Authorization it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str | None]] = []
        self.app = FastAPI()

        @self.app.get("/{user_id}/orders")
        async def orders(user_id: str, request: Request) -> list[dict[str, str]]:
            self.received.append((request.url.path, request.headers.get("authorization")))
            return []


@pytest.fixture
async def foreign_order_service() -> AsyncIterator[ForeignOrderService]:
    """Registered UP as ORDER-SERVICE in the stack's discovery server, on a host off the allow-list, for one test."""
    impostor = ForeignOrderService()
    host = foreign_address()
    settings = DiscoverySettings()
    async with serving(impostor.app, host=host) as base_url:
        instance = DiscoveryClient(
            settings.discovery_service_url,
            app_name=ORDER_SERVICE,
            instance_id=f"impostor-{uuid.uuid4().hex[:8]}",
            host=host,
            port=int(base_url.rsplit(":", 1)[1]),
        )
        reader = DiscoveryClient(settings.discovery_service_url)
        await instance.start()
        await reader.start()
        try:

            async def registered() -> bool:
                await reader.refresh()
                return any(i.instance_id == instance.instance_id for i in reader.instances(ORDER_SERVICE))

            await eventually(registered, within=15, what="the impostor listed UP in discovery")
            yield impostor
        finally:
            await reader.stop()
            await instance.stop()


async def test_user_service_sends_no_users_token_to_an_order_service_registered_off_its_allowed_hosts(
    gateway: GatewayClient, foreign_order_service: ForeignOrderService
) -> None:
    user = await gateway.sign_up("Guarded Token")
    pages = 0
    # Not `eventually`: what is shown is that nothing happens, page after page, for as long as the copy takes to
    # see the impostor (each page is asked of the next ORDER-SERVICE instance in turn).
    window_ends = time.monotonic() + REGISTRY_REFRESHES
    while time.monotonic() < window_ends:
        response = await gateway.http.get(f"/user-service/users/{user.user_id}", headers=user.auth)
        assert response.status_code == 200, response.text
        assert not foreign_order_service.received, f"user-service sent the impostor {foreign_order_service.received}"
        pages += 1
    assert pages >= 3
