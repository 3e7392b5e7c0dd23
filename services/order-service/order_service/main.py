"""The order-service app: routes, and what lives as long as the process (DB engine, order sink, catalog read
model)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_service import api
from order_service.catalog import CatalogReadModel
from order_service.config import OrderSettings
from order_service.expiry import OrderExpirer
from order_service.messaging import OrderPublisher
from order_service.service import OrderIntake
from order_service.sinks import DiscardingSink, LocalOrderStore, OrderSink
from order_service.view import OrderView
from servicekit.auth import install_token_check
from servicekit.database import make_engine, make_sessions, run_migrations
from servicekit.web import install_edge

log = logging.getLogger(__name__)

APP_NAME = "ORDER-SERVICE"
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def create_app(settings: OrderSettings) -> FastAPI:
    """`app.state.discovery` is set by servicekit.server.serve (or by a test) before the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        local = settings.order_store == "local"
        database = settings.local_database() if local else settings.orders_db
        # A local store is the instance's own database: it migrates that with its own account.
        if local:
            await asyncio.to_thread(run_migrations, ALEMBIC_INI, database, settings)
        elif settings.migrate_orders_table:
            await asyncio.to_thread(run_migrations, ALEMBIC_INI, database, settings.migrator())
        engine = make_engine(settings, database)
        sessions = make_sessions(engine)
        catalog = CatalogReadModel(settings.kafka_access)
        await catalog.start()
        sink = order_sink(settings, sessions)
        await sink.start()
        view = order_view(settings, sink)
        if view is not None:
            await view.start()
        app.state.catalog = catalog
        app.state.sink = sink
        app.state.view = view
        app.state.intake = OrderIntake(
            sessions, catalog, sink, view, claim_wait_seconds=settings.publish_timeout_seconds
        )
        expirer = order_expirer(settings, sink)
        if expirer is not None:
            await expirer.start()
        try:
            # Start-up ends (and the instance registers with discovery) once the catalog is read to its end, and
            # the view to where it stood at start.
            await wait_for(catalog.caught_up, "the catalog (catalog-changes)")
            if view is not None:
                await wait_for(view.caught_up, "the orders the table does not show yet (orders, order-claims)")
            yield
        finally:
            if view is not None:
                await view.stop()
            if expirer is not None:
                await expirer.stop()
            await sink.stop()
            await catalog.stop()
            await engine.dispose()

    app = FastAPI(title="order-service", lifespan=lifespan)
    install_edge(app, settings, APP_NAME)
    install_token_check(app, settings)
    app.include_router(api.router)
    return app


async def wait_for(caught_up: asyncio.Event, what: str, report_every: float = 10.0) -> None:
    waited = 0.0
    while not caught_up.is_set():
        try:
            await asyncio.wait_for(caught_up.wait(), report_every)
        except TimeoutError:
            waited += report_every
            log.warning("still reading %s after %.0f s; not registering yet", what, waited)


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


def order_view(settings: OrderSettings, sink: OrderSink) -> OrderView | None:
    """Orders published to Kafka are read back (read your own writes); the local store is its own truth."""
    if not isinstance(sink, OrderPublisher) or not settings.order_view:
        return None
    return OrderView(
        settings.kafka_access,
        instance_id=settings.instance_id or "order-service",
        max_entries=settings.order_view_max_entries,
        sync_timeout=settings.read_sync_timeout_seconds,
    )


def order_expirer(settings: OrderSettings, sink: OrderSink) -> OrderExpirer | None:
    """Orders published to Kafka get a deadline; the local store and the benchmark baseline have no saga."""
    if not isinstance(sink, OrderPublisher) or not settings.order_expiry:
        return None
    return OrderExpirer(
        settings.kafka_access,
        deadline_seconds=settings.order_deadline_seconds,
        grace_seconds=settings.order_expiry_grace_seconds,
        transactional_prefix="order-service:expiry:",
    )
