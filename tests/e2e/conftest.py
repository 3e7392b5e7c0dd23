"""End-to-end fixtures: the running stack, reached through the gateway; test products of their own in catalogdb."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from demo.gateway_client import GatewayClient
from launcher import services
from launcher.environment import StackConfig
from servicekit.config import ServiceSettings
from servicekit.testing import database


@pytest.fixture
async def gateway(stack_config: StackConfig) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(f"http://127.0.0.1:{services.gateway_port(stack_config)}") as client:
        yield client


@pytest.fixture
def fresh_products(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[dict[str, int]]:
    """Three products of this test alone, each with 5,000 in stock, so a long flow of orders neither empties
    the seed catalog (the demo's) nor depends on what earlier runs left. Removed afterwards."""
    products = {f"E2E-{uuid.uuid4().hex[:10]}": 5000 for _ in range(3)}
    connection = database(settings, stack_config.get("CATALOG_DB", "catalogdb"))
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO catalogs (product_id, product_name, stock, unit_price, created_at)"
            " VALUES (%s, 'End-to-end test product', %s, 100, UTC_TIMESTAMP(3))",
            list(products.items()),
        )
    yield products
    with connection.cursor() as cursor:
        cursor.executemany("DELETE FROM catalogs WHERE product_id = %s", [(p,) for p in products])
    connection.close()
