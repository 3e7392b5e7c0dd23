"""ORDER_STORE=local, the demo's "before": each instance keeps its own orders and publishes nothing."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from order_contract.topics import STOCK_TOPIC
from order_service.catalog import CatalogReadModel
from order_service.config import OrderSettings
from order_service.main import create_app
from servicekit.testing import FixedRegistry, SignedAsPathUser, TopicReader, serving

pytestmark = pytest.mark.stack

NewProduct = Callable[..., Awaitable[str]]
Priced = Callable[[CatalogReadModel, str, int | None], Awaitable[None]]
LocalInstance = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
async def local_instances(settings: OrderSettings, registry: FixedRegistry) -> AsyncIterator[list[LocalInstance]]:
    """Two order-service instances in local mode, each with its own database (dropped afterwards)."""
    run = uuid.uuid4().hex[:8]
    instances = [
        settings.model_copy(update={"instance_id": f"order-test-{run}-local-{name}", "order_store": "local"})
        for name in ("a", "b")
    ]
    async with AsyncExitStack() as stack:
        clients = []
        for instance in instances:
            app = create_app(instance)
            app.state.discovery = registry
            url = await stack.enter_async_context(serving(app))
            auth = SignedAsPathUser()
            clients.append((app, await stack.enter_async_context(httpx.AsyncClient(base_url=url, auth=auth))))
        yield clients
    server = create_async_engine(settings.database_url(None))
    async with server.begin() as connection:
        for instance in instances:
            await connection.execute(text(f"DROP DATABASE IF EXISTS `{instance.local_database()}`"))
    await server.dispose()


async def test_local_instances_keep_their_own_orders_and_publish_nothing(
    settings: OrderSettings,
    local_instances: list[LocalInstance],
    new_product: NewProduct,
    priced: Priced,
    user_id: str,
) -> None:
    product_id = await new_product()
    for app, _ in local_instances:
        await priced(app.state.catalog, product_id, 100)
    first, second = (client for _, client in local_instances)
    async with TopicReader(settings.kafka_access, STOCK_TOPIC) as stock_requests:
        placed = await first.post(f"/{user_id}/orders", json={"productId": product_id, "qty": 1, "unitPrice": 100})
        assert user_id.encode() not in b"".join(r.value or b"" for r in await stock_requests.read_to_end())

    assert placed.status_code == 201
    assert [o["orderId"] for o in (await first.get(f"/{user_id}/orders")).json()] == [placed.json()["orderId"]]
    assert (await second.get(f"/{user_id}/orders")).json() == []  # the instances disagree: the problem Kafka solves
