"""The monitor app: Burrow's API over a `LagHistory` that an `OffsetPoller` fills in the background."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from servicekit.web import install_edge
from stack_monitor import api, console
from stack_monitor.audit_task import install_audit
from stack_monitor.config import MonitorSettings
from stack_monitor.gate import MonitorGate
from stack_monitor.history import LagHistory
from stack_monitor.metrics import RATINGS
from stack_monitor.offsets import OffsetPoller, OffsetReader

APP_NAME = "MONITOR"


def create_app(settings: MonitorSettings, *, history: LagHistory | None = None, poll: bool = True) -> FastAPI:
    """`poll=False` serves `history` as it is (tests fill it themselves)."""
    state = history or LagHistory(settings.monitor_cluster, settings.monitor_window, settings.monitor_allowed_lag)
    RATINGS.history = state

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.history = state
        poller = None
        if poll:
            poller = OffsetPoller(OffsetReader(settings.kafka_access), state, settings.monitor_poll_seconds)
            await poller.start()
        try:
            yield
        finally:
            if poller is not None:
                await poller.stop()

    # No /docs or /openapi.json: the Burrow API is Burrow's, documented there.
    app = FastAPI(title="monitor", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_edge(app, settings, APP_NAME)
    app.add_middleware(MonitorGate, settings=settings)  # outermost: before anything else reads the request
    app.include_router(api.router)
    app.include_router(console.router(settings))
    install_audit(app, settings, run=poll)
    return app
