"""Fixtures of the compose suites: the compose gateway and products of a test's own, asked from the host on the
ports make compose-test publishes (GATEWAY_PORT, DB_PORT, ...)."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from launcher import services
from servicekit.config import ServiceSettings
from servicekit.testing import database
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.compose.orders import priced_by_every_instance


@pytest.fixture
async def gateway(stack_config: StackConfig) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(f"http://127.0.0.1:{services.gateway_port(stack_config)}") as client:
        yield client


@pytest.fixture
def own_products(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[dict[str, int]]:
    """Three products of this test, 5,000 in stock each (the catalog-source connector brings them to the order
    services)."""
    products = {f"COMPOSE-{uuid.uuid4().hex[:10]}": 5000 for _ in range(3)}
    connection = database(settings, stack_config.get("CATALOG_DB"))
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO catalogs (product_id, product_name, stock, unit_price, created_at)"
            " VALUES (%s, 'Compose test product', %s, 100, UTC_TIMESTAMP(3))",
            list(products.items()),
        )
    yield products
    connection.close()


@pytest.fixture
async def fresh_products(gateway: GatewayClient, own_products: dict[str, int]) -> dict[str, int]:
    """The tests/e2e fixture of that name for the tests run from here: products of the test's own, yielded once
    both order-service replicas price them (told by orders of one unit, which count like any others)."""
    probe_user = await gateway.sign_up("Compose Pricing Probe")
    await priced_by_every_instance(gateway, probe_user, list(own_products))
    return own_products
