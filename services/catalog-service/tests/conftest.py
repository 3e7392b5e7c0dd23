"""Fixtures for catalog-service tests: the real catalogdb and Kafka, test products and test topics.

Nothing here touches the running stack's consumer group or the seed products: test products have unique ids
and are removed afterwards; the consumer under test reads its own topics, created for this run and deleted after.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service import service
from catalog_service.config import CatalogSettings
from catalog_service.main import ALEMBIC_INI, create_app
from catalog_service.messaging import StockRequestConsumer
from catalog_service.service import StockLedger
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from servicekit.database import make_engine, make_sessions, run_migrations
from servicekit.kafka import ensure_topics
from servicekit.testing import kit_jwks

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def settings() -> CatalogSettings:
    # Tokens from the test kit: the instance trusts its key instead of USER-SERVICE's.
    return CatalogSettings(
        instance_id=f"catalog-test-{RUN}", consumer_group=f"catalog-test-{RUN}", trusted_jwks=kit_jwks()
    )


@pytest.fixture(scope="session")
async def sessions(settings: CatalogSettings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await asyncio.to_thread(run_migrations, ALEMBIC_INI, settings.catalog_db, settings)
    engine = make_engine(settings, settings.catalog_db)
    yield make_sessions(engine)
    await engine.dispose()


@pytest.fixture
async def client(settings: CatalogSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API in process (no stock consumer), against the real catalogdb."""
    app = create_app(settings, consume=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as http:
            yield http


@pytest.fixture
async def topics(settings: CatalogSettings) -> AsyncIterator[CatalogSettings]:
    """Settings naming this test's own stock, dead-letter and outcome topics (created now, deleted after),
    so a new consumer group reads only what this test sends."""
    test = uuid.uuid4().hex[:8]
    own = settings.model_copy(
        update={
            "stock_topic": f"catalog-test-{test}-stock",
            "dead_letter_topic": f"catalog-test-{test}-stock-dlq",
            "outcome_topic": f"catalog-test-{test}-outcomes",
        }
    )
    names = [own.stock_topic, own.dead_letter_topic, own.outcome_topic]
    await ensure_topics(own.kafka_access, names, 3)
    yield own
    admin = AIOKafkaAdminClient(**own.kafka_access.client_options())
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


NewProduct = Callable[..., Awaitable[str]]


@pytest.fixture
async def new_product(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[NewProduct]:
    """`await new_product(stock=5)` -> a product id of our own, removed after the test."""
    created: list[str] = []

    async def make(stock: int, unit_price: int = 100) -> str:
        product_id = f"TEST-{uuid.uuid4().hex[:12]}"
        await service.add_product(sessions, product_id, "Test product", stock, unit_price)
        created.append(product_id)
        return product_id

    yield make
    for product_id in created:
        await service.remove_product(sessions, product_id)


@pytest.fixture
def stock_of(sessions: async_sessionmaker[AsyncSession]) -> Callable[[str], Awaitable[int]]:
    """`await stock_of(product_id)` -> its stock now."""

    async def read(product_id: str) -> int:
        async with sessions() as session:
            return (await service.get_catalog(session, product_id)).stock

    return read


@pytest.fixture
def pending_order() -> Callable[..., Order]:
    """`pending_order(product_id, qty)` -> a new PENDING order, as order-service would publish it."""

    def make(product_id: str, qty: int, unit_price: int = 100) -> Order:
        return Order(
            order_id=str(uuid.uuid4()),
            user_id=f"user-{RUN}",
            product_id=product_id,
            qty=qty,
            unit_price=unit_price,
            total_price=qty * unit_price,
            status=OrderStatus.PENDING,
            created_at=now_ms(),
        )

    return make


@pytest.fixture
async def producer(settings: CatalogSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer for stock requests (non-transactional records are visible to read_committed)."""
    kafka = AIOKafkaProducer(**settings.kafka_access.client_options(), acks="all")
    await kafka.start()
    yield kafka
    await kafka.stop()


StartConsumer = Callable[..., Awaitable[StockRequestConsumer]]


@pytest.fixture
async def start_consumer(
    topics: CatalogSettings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[StartConsumer]:
    """`await start_consumer(group=..., instance=..., ledger=...)`: a StockRequestConsumer on this test's topics."""
    started: list[StockRequestConsumer] = []

    async def start(
        group: str | None = None, instance: str = "1", ledger: StockLedger | None = None
    ) -> StockRequestConsumer:
        consumer = StockRequestConsumer(
            ledger or StockLedger(sessions),
            kafka=topics.kafka_access,
            transactional_id=f"{topics.transactional_id()}-{instance}",
            group_id=group or f"{topics.consumer_group}-{uuid.uuid4().hex[:6]}",
            stock_topic=topics.stock_topic,
            outcome_topic=topics.outcome_topic,
            dead_letter_topic=topics.dead_letter_topic,
        )
        await consumer.start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        await consumer.stop()
