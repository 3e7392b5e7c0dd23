"""Worker processes: each runs its own uvloop, registry copy, upstream pool and listening socket
(SO_REUSEPORT lets the kernel spread connections over them). The supervisor registers GATEWAY."""

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

import httpx
import orjson
import uvloop

from api_gateway.auth import TokenVerifier
from api_gateway.balancer import LoadBalancer
from api_gateway.config import GatewaySettings
from api_gateway.metrics import WorkerMetrics, render
from api_gateway.proxy import ClientConnection, Gateway
from api_gateway.routes import Route, load_routes
from api_gateway.tracing import GatewayTracing
from api_gateway.upstream import UpstreamPool
from servicekit import log_setup, tracing
from servicekit.discovery import DiscoveryClient, HostAllowList
from servicekit.keep_alive import internal_client
from servicekit.token_trust import FIRST_KEYS_WAIT_SECONDS, TrustRefresher, from_user_service
from servicekit.tokens import TokenTrust

log = logging.getLogger("api_gateway")

PR_SET_PDEATHSIG = 1
LISTEN_BACKLOG = 2048


def _die_with_parent() -> None:
    """A worker must not outlive a supervisor killed with -9 and keep serving the port."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def token_verifier(
    settings: GatewaySettings, discovery: DiscoveryClient, http: httpx.AsyncClient
) -> tuple[TokenVerifier, TrustRefresher | None]:
    """TRUSTED_JWKS as given (tests, benchmarks), or USER-SERVICE's keys, fetched by this worker in the background."""
    if settings.trusted_jwks:
        return TokenVerifier(TokenTrust.static(orjson.loads(settings.trusted_jwks))), None
    trust = TokenTrust()
    refresher = TrustRefresher(trust, from_user_service(discovery, http), settings.token_trust_refresh_seconds)
    verifier = TokenVerifier(trust, refresher)
    refresher.on_keys_changed = verifier.forget
    refresher.start()
    return verifier, refresher


async def serve_worker(
    settings: GatewaySettings, routes: list[Route], ready: multiprocessing.connection.Connection, metrics_dir: Path
) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    discovery = DiscoveryClient(
        settings.discovery_service_url, registry_refresh_interval=settings.gateway_registry_refresh_seconds
    )
    await discovery.start()
    pool = UpstreamPool(
        settings.gateway_connect_timeout_seconds,
        settings.gateway_upstream_idle_seconds,
        max_response_bytes=settings.gateway_max_response_bytes,
    )
    metrics = WorkerMetrics()
    balancer = LoadBalancer(
        discovery,
        settings.gateway_eject_after_failures,
        settings.gateway_ejection_seconds,
        HostAllowList(settings.gateway_upstream_allow),
        metrics,
    )
    trust_http = internal_client()
    verifier, refresher = token_verifier(settings, discovery, trust_http)
    # Listen once user-service's keys are in (bounded: without them every token is answered 503, not 401).
    if refresher is not None and not await refresher.wait_loaded(FIRST_KEYS_WAIT_SECONDS):
        log.warning("listening without user-service's token keys; tokens are answered 503 until they come")
    gateway = Gateway(settings, routes, balancer, pool, metrics, GatewayTracing.start(settings), verifier)
    server = await loop.create_server(
        lambda: ClientConnection(gateway),
        sock=listening_socket(settings.gateway_host, settings.gateway_port),
        backlog=LISTEN_BACKLOG,
    )
    ready.send("listening")
    ready.close()
    idle_seconds = settings.gateway_client_idle_seconds
    # At least once a second: request heads and bodies past their deadline are answered 408 by the sweep.
    sweep_every = max(0.1, min(idle_seconds / 4, settings.gateway_upstream_idle_seconds, 1.0))
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=sweep_every)
        gateway.sweep_clients(idle_seconds)
        pool.prune()
        metrics.write(metrics_dir)
    server.close()
    for client in list(gateway.clients):
        client.close()
    pool.close_all()
    if refresher is not None:
        await refresher.stop()
    await trust_http.aclose()
    await discovery.stop()
    tracing.shutdown()


def configure_logging(level: str, role: str) -> None:
    """JSON lines like the services'; `instance` says which process wrote the line."""
    log_setup.configure_logging("api-gateway", f"{role}-{os.getpid()}", level)


def run_worker(
    settings: GatewaySettings, routes: list[Route], ready: multiprocessing.connection.Connection, metrics_dir: Path
) -> None:
    _die_with_parent()
    configure_logging(settings.gateway_log_level, "worker")
    try:
        uvloop.run(serve_worker(settings, routes, ready, metrics_dir))
    except OSError as exc:
        log.error("worker could not listen on %s:%s: %s", settings.gateway_host, settings.gateway_port, exc)
        sys.exit(1)


class Supervisor:
    """Starts the workers, registers the gateway in discovery, restarts workers that die."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.routes = load_routes(settings.gateway_routes)
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[multiprocessing.process.BaseProcess] = []
        # Each worker writes its counts here; the management port serves their sum (metrics.py).
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))

    def start_worker(self) -> multiprocessing.process.BaseProcess:
        receiving, sending = self.context.Pipe(duplex=False)
        worker = self.context.Process(
            target=run_worker,
            args=(self.settings, self.routes, sending, self.metrics_dir),
            name="gateway-worker",
            daemon=True,
        )
        worker.start()
        sending.close()
        # A worker that cannot listen (port taken) exits: the pipe closes without a message.
        try:
            if receiving.poll(30) and receiving.recv() == "listening":
                return worker
        except EOFError:
            pass
        finally:
            receiving.close()
        worker.terminate()
        raise RuntimeError(f"gateway worker could not listen on port {self.settings.gateway_port}")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        discovery = DiscoveryClient(
            self.settings.discovery_service_url,
            app_name="GATEWAY",
            instance_id=self.settings.instance_id,
            host=self.settings.advertised_host,
            port=self.settings.gateway_port,
            renewal_interval=self.settings.gateway_renewal_interval_seconds,
            lease_duration=self.settings.gateway_lease_duration_seconds,
            registry_refresh_interval=60.0,
            metadata={"management.port": str(self.settings.gateway_management_port)},
        )
        management = await asyncio.start_server(
            self._serve_management, self.settings.gateway_host, self.settings.gateway_management_port
        )
        await discovery.start()
        log.info(
            "gateway listening on http://%s:%s with %d workers, %d routes",
            self.settings.gateway_host,
            self.settings.gateway_port,
            len(self.workers),
            len(self.routes),
        )
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=1.0)
            for index, worker in enumerate(self.workers):
                if not worker.is_alive() and not stopping.is_set():
                    log.warning("worker %s exited with %s; starting another", worker.pid, worker.exitcode)
                    self.workers[index] = await loop.run_in_executor(None, self.start_worker)
        await discovery.stop()
        management.close()

    async def _serve_management(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """GET /metrics (the workers' counts added up); anything else 404. One request per connection."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if method == b"GET" and path == b"/metrics":
                body = await asyncio.get_running_loop().run_in_executor(None, render, self.metrics_dir)
                status, content_type = b"200 OK", b"text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, content_type = b'{"detail":"not found"}', b"404 Not Found", b"application/json"
            writer.write(
                b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (status, content_type, len(body), body)
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.gateway_log_level, "supervisor")
    supervisor = Supervisor(settings)
    try:
        for _ in range(settings.worker_count):
            supervisor.workers.append(supervisor.start_worker())
        uvloop.run(supervisor.run())
    except RuntimeError as exc:
        log.error("%s", exc)
        sys.exit(1)
    finally:
        supervisor.stop_workers()
        shutil.rmtree(supervisor.metrics_dir, ignore_errors=True)
