"""The discovery app: the registry in memory, the Eureka API, the dashboard, the eviction task and the peers."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from discovery_server import api, dashboard
from discovery_server.config import RegistrySettings
from discovery_server.metrics import EVICTIONS, INSTANCES
from discovery_server.peers import Peers
from discovery_server.registry import Registry, UnknownInstance
from servicekit.metrics import MetricsMiddleware, metrics_router

log = logging.getLogger("discovery_server")


class TrailingSlashIgnored:
    """`/eureka/apps/` and `/eureka/apps` are the same resource: real clients use both."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


async def evict_expired_leases(registry: Registry, interval_seconds: float) -> None:
    while True:
        await asyncio.sleep(interval_seconds)
        for instance in registry.evict_expired():
            EVICTIONS.labels(instance.app).inc()
            log.info(
                "evicted %s/%s: no heartbeat for %s s",
                instance.app,
                instance.instance_id,
                instance.duration_secs,
            )


def create_app(settings: RegistrySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before listening, so a restarted peer answers with every instance from its first request.
        await peers.sync_registry(registry, settings.discovery_peer_timeout_seconds)
        peers.start()
        # Eviction stays local, as in Eureka: each server expires leases its heartbeats (or a peer's) did not renew.
        eviction = asyncio.create_task(evict_expired_leases(registry, settings.discovery_eviction_interval_seconds))
        yield
        eviction.cancel()
        await peers.stop()

    app = FastAPI(title="discovery-server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    registry = Registry(
        delta_retention_secs=settings.discovery_delta_retention_seconds,
        max_instances_per_app=settings.discovery_max_instances_per_app,
        max_apps=settings.discovery_max_apps,
    )
    peers = Peers.from_settings(
        settings.discovery_peers,
        registry,
        user=settings.discovery_user,
        password=settings.discovery_password,
        bind_host=settings.discovery_host,
        port=settings.discovery_port,
        max_pending=settings.discovery_peer_max_pending,
        timeout_seconds=settings.discovery_peer_timeout_seconds,
    )
    app.state.registry = registry
    app.state.peers = peers
    INSTANCES.registry = registry
    app.include_router(api.router)
    app.add_exception_handler(UnknownInstance, api.unknown_instance)
    app.include_router(dashboard.router)
    app.include_router(metrics_router())
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(TrailingSlashIgnored)
    return app
