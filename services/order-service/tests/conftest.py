"""Fixtures for order-service tests: the real Kafka, the shared mydb, and a real catalog-service in process.

The catalog-service app runs in this event loop (HTTP only) and is found through a fixed registry instead of
the discovery server. Test products have unique ids in catalogdb and are removed afterwards.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service import service as catalog
from catalog_service.config import CatalogSettings
from catalog_service.main import create_app as create_catalog_app
from order_service.config import OrderSettings
from order_service.main import create_app
from servicekit.database import make_engine, make_sessions
from servicekit.testing import FixedRegistry, SignedAsPathUser, serving

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def settings() -> OrderSettings:
    return OrderSettings(instance_id=f"order-test-{RUN}", order_store="kafka")


@pytest.fixture(scope="session")
async def catalog_url() -> AsyncIterator[str]:
    catalog_settings = CatalogSettings(instance_id=f"catalog-for-order-tests-{RUN}")
    async with serving(create_catalog_app(catalog_settings, consume=False)) as url:
        yield url


@pytest.fixture(scope="session")
def registry(catalog_url: str) -> FixedRegistry:
    registry = FixedRegistry()
    registry.add("CATALOG-SERVICE", catalog_url)
    return registry


OrderService = tuple[FastAPI, str]


@pytest.fixture(scope="session")
async def order_service(settings: OrderSettings, registry: FixedRegistry) -> AsyncIterator[OrderService]:
    """One order-service instance on a real port: (app, base URL)."""
    app = create_app(settings)
    app.state.discovery = registry
    async with serving(app) as url:
        yield app, url


@pytest.fixture
async def client(order_service: OrderService, settings: OrderSettings) -> AsyncIterator[httpx.AsyncClient]:
    """Calls order-service as the user named in each path (the routes check the token's subject)."""
    assert settings.jwt_secret
    auth = SignedAsPathUser(settings.jwt_secret)
    async with httpx.AsyncClient(base_url=order_service[1], timeout=30, auth=auth) as http:
        yield http


@pytest.fixture
def user_id() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
async def orders_db(settings: OrderSettings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The shared mydb (its migration ran when order_service started)."""
    engine = make_engine(settings, settings.orders_db)
    yield make_sessions(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def catalog_db() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    catalog_settings = CatalogSettings()
    engine = make_engine(catalog_settings, catalog_settings.catalog_db)
    yield make_sessions(engine)
    await engine.dispose()


NewProduct = Callable[..., Awaitable[str]]


@pytest.fixture
async def new_product(catalog_db: async_sessionmaker[AsyncSession], catalog_url: str) -> AsyncIterator[NewProduct]:
    """`await new_product(stock=5)` -> a product id of our own in catalogdb, removed after the test."""
    created: list[str] = []

    async def make(stock: int = 1000, unit_price: int = 100) -> str:
        product_id = f"TEST-{uuid.uuid4().hex[:12]}"
        await catalog.add_product(catalog_db, product_id, "Test product", stock, unit_price)
        created.append(product_id)
        return product_id

    yield make
    for product_id in created:
        await catalog.remove_product(catalog_db, product_id)
