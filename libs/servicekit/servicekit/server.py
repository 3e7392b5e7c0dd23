"""Serve a FastAPI app like a Spring service with `server.port: 0`: a free port, found through discovery."""

import gc
import logging
import socket
from functools import partial

import uvicorn
from fastapi import FastAPI

from servicekit.auth import load_token_keys
from servicekit.config import ServiceSettings
from servicekit.discovery import DiscoveryClient
from servicekit.keep_alive import SERVER_IDLE_SECONDS
from servicekit.log_setup import configure_logging
from servicekit.tracing import configure as configure_tracing
from servicekit.tracing import instrument_app

log = logging.getLogger(__name__)

# CPython's cyclic collector runs a young collection every 700 container allocations by default. A service that
# keeps dozens of requests in flight (order-service waiting for Kafka commits) then spends a large share of its CPU
# re-scanning them; fewer collections raise the publishing throughput (bench/perf-notes.md). Memory stays bounded:
# cycles are still collected, just in larger steps.
GC_THRESHOLDS = (10_000, 50, 100)


class _RegisteredServer(uvicorn.Server):
    """Registers once the app has started (ready = UP in discovery); deregisters before shutting down."""

    def __init__(self, config: uvicorn.Config, discovery: DiscoveryClient, app: FastAPI) -> None:
        super().__init__(config)
        self.discovery = discovery
        self.served_app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            # Registered means ready: user-service's token keys are in (the first request does not fetch them).
            await self.discovery.start(before_register=partial(load_token_keys, self.served_app))
            log.info("started; registered with discovery", extra={"app": self.discovery.app_name})

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Leave the registry first so the gateway stops sending us requests while we drain.
        try:
            await self.discovery.stop()
            log.info("left discovery; shutting down")
        except Exception:
            log.exception("deregistration failed")
        await super().shutdown(sockets=sockets)


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_config(app: FastAPI) -> uvicorn.Config:
    """How every service serves its app (and servicekit.testing.serving an app in a test)."""
    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        # request.client stays the peer: uvicorn's default would take X-Forwarded-For from any loopback caller.
        # A service that needs the client's address reads the gateway's hop itself (user-service's TRUSTED_PROXIES).
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=SERVER_IDLE_SECONDS,
    )


def serve(app: FastAPI, settings: ServiceSettings, app_name: str) -> None:
    """Bind, register as `app_name`, serve until SIGTERM/SIGINT, deregister. Blocks.

    Sets `settings.instance_id` (when unset, `host:app:port`) before the app starts, and
    `app.state.discovery` to the client the app may use to find other services.
    """
    sock = bind_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    settings.instance_id = settings.instance_id or f"{settings.host}:{app_name.lower()}:{port}"
    configure_logging(app_name.lower(), settings.instance_id, settings.log_level)
    if configure_tracing(settings, app_name, settings.instance_id):
        instrument_app(app)

    discovery = DiscoveryClient(
        settings.discovery_service_url,
        app_name=app_name if settings.discovery_register else None,
        instance_id=settings.instance_id,
        host=settings.host,
        port=port,
        allowed_hosts=settings.allowed_hosts,
    )
    app.state.discovery = discovery
    server = _RegisteredServer(server_config(app), discovery, app)
    # What start-up allocated (modules, the app, its routes) lives as long as the process: never scan it again.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("serving", extra={"app": app_name, "port": port})
    server.run(sockets=[sock])
