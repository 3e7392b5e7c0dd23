"""Fixtures for order-service tests: the real Kafka, the shared mydb, and the stack's catalog-source connector.

Test products have unique ids in catalogdb and are removed afterwards. They reach the instance under test the way
every product does: the binlog, the catalog-source connector, catalog-changes, the instance's read model.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service import service as catalog
from catalog_service.config import CatalogSettings
from order_service.catalog import CatalogReadModel
from order_service.config import OrderSettings
from order_service.main import create_app
from servicekit.database import make_engine, make_sessions
from servicekit.testing import FixedRegistry, SignedAsPathUser, eventually, kit_jwks, serving

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def settings() -> OrderSettings:
    # Tokens from the test kit: the instance trusts its key instead of USER-SERVICE's.
    return OrderSettings(instance_id=f"order-test-{RUN}", order_store="kafka", trusted_jwks=kit_jwks())


@pytest.fixture(scope="session")
def registry() -> FixedRegistry:
    """The instance asks discovery for nothing (it prices from its read model): an empty registry."""
    return FixedRegistry()


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
    auth = SignedAsPathUser()
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
Priced = Callable[[CatalogReadModel, str, int | None], Awaitable[None]]


@pytest.fixture
def priced() -> Priced:
    """`await priced(app.state.catalog, product_id, price)`: wait until that read model prices it so."""
    return wait_priced


async def wait_priced(catalog: CatalogReadModel, product_id: str, unit_price: int | None) -> None:
    """Wait until `catalog` prices the product at `unit_price` (None: does not know it)."""

    def check() -> bool:
        product = catalog.get(product_id)
        return (product.unit_price if product else None) == unit_price

    await eventually(check, within=15, what=f"{product_id} at {unit_price} in the catalog read model")


@pytest.fixture
async def new_product(
    catalog_db: async_sessionmaker[AsyncSession], order_service: OrderService
) -> AsyncIterator[NewProduct]:
    """`await new_product(stock=5)` -> a product id of our own in catalogdb, removed after the test; returned once
    the instance under test prices it (CDC brought it)."""
    created: list[str] = []

    async def make(stock: int = 1000, unit_price: int = 100) -> str:
        product_id = f"TEST-{uuid.uuid4().hex[:12]}"
        await catalog.add_product(catalog_db, product_id, "Test product", stock, unit_price)
        created.append(product_id)
        await wait_priced(order_service[0].state.catalog, product_id, unit_price)
        return product_id

    yield make
    for product_id in created:
        await catalog.remove_product(catalog_db, product_id)
