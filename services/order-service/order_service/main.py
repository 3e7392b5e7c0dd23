"""The order-service app: routes, and what lives as long as the process (DB engine, order sink, catalog client)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_service import api
from order_service.config import OrderSettings
from order_service.messaging import OrderPublisher
from order_service.service import CatalogClient, OrderIntake
from order_service.sinks import DiscardingSink, LocalOrderStore, OrderSink
from servicekit.auth import install_token_check
from servicekit.database import make_engine, make_sessions, run_migrations
from servicekit.web import install_edge

APP_NAME = "ORDER-SERVICE"
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def create_app(settings: OrderSettings) -> FastAPI:
    """`app.state.discovery` is set by servicekit.server.serve (or by a test) before the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        local = settings.order_store == "local"
        database = settings.local_database() if local else settings.orders_db
        # A local store is the instance's own database: it migrates that with its own account.
        migrating_as = settings if local else settings.migrator()
        await asyncio.to_thread(run_migrations, ALEMBIC_INI, database, migrating_as)
        engine = make_engine(settings, database)
        http = httpx.AsyncClient(timeout=settings.catalog_timeout_seconds)
        sessions = make_sessions(engine)
        sink = order_sink(settings, sessions)
        await sink.start()
        app.state.sink = sink
        catalog = CatalogClient(app.state.discovery, http, known_ttl=settings.catalog_cache_seconds)
        app.state.intake = OrderIntake(sessions, catalog, sink)
        try:
            yield
        finally:
            await sink.stop()
            await http.aclose()
            await engine.dispose()

    app = FastAPI(title="order-service", lifespan=lifespan)
    install_edge(app, settings, APP_NAME)
    install_token_check(app, settings.jwt_secret)
    app.include_router(api.router)
    return app


def order_sink(settings: OrderSettings, sessions: async_sessionmaker[AsyncSession]) -> OrderSink:
    """ORDER_STORE and PUBLISH_ORDERS pick where accepted orders go (sinks.py)."""
    if settings.order_store == "local":
        return LocalOrderStore(sessions)
    if not settings.publish_orders:
        return DiscardingSink()
    return OrderPublisher(
        settings.kafka_access,
        settings.transactional_id(),
        lanes=settings.publish_lanes,
        max_batch=settings.max_orders_per_transaction,
        commit_timeout=settings.publish_timeout_seconds,
    )
