"""The catalog-service app: routes, migrations at start, and the stock-request consumer."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from catalog_service import api
from catalog_service.config import CatalogSettings
from catalog_service.messaging import StockRequestConsumer
from catalog_service.service import StockLedger
from servicekit.auth import install_token_check
from servicekit.database import make_engine, make_sessions, run_migrations
from servicekit.web import install_edge

APP_NAME = "CATALOG-SERVICE"
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def create_app(settings: CatalogSettings, *, consume: bool = True) -> FastAPI:
    """`consume=False` serves the HTTP API only (tests drive the consumer themselves)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(run_migrations, ALEMBIC_INI, settings.catalog_db, settings)
        engine = make_engine(settings, settings.catalog_db)
        app.state.sessions = make_sessions(engine)
        consumer = None
        if consume:
            consumer = StockRequestConsumer(
                StockLedger(app.state.sessions, settings.order_deadline_seconds),
                kafka=settings.kafka_access,
                transactional_id=settings.transactional_id(),
                group_id=settings.consumer_group,
                stock_topic=settings.stock_topic,
                outcome_topic=settings.outcome_topic,
                dead_letter_topic=settings.dead_letter_topic,
                topic_partitions=settings.topic_partitions,
            )
            await consumer.start()
        try:
            yield
        finally:
            if consumer is not None:
                await consumer.stop()
            await engine.dispose()

    app = FastAPI(title="catalog-service", lifespan=lifespan)
    install_edge(app, settings, APP_NAME)
    install_token_check(app, settings)
    app.include_router(api.router)
    return app
