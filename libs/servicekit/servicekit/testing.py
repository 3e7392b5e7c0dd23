"""What the services' tests share: polling with a deadline, serving an app on a real port, reading topics."""

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from fastapi import FastAPI

from servicekit.discovery import ServiceInstance
from servicekit.kafka import KafkaAccess
from servicekit.tokens import issue_token

T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1 (for servers a test or benchmark starts itself)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, up to 10 s to exit, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_until(check: Callable[[], Awaitable[T | None]], *, within: float, what: str) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns the signals
        yield


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` (lifespan included) on a free 127.0.0.1 port in this event loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _QuietServer(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during startup")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class SignedAsPathUser(httpx.Auth):
    """Sends each request with a token for the user its path starts with (`/{userId}/orders`), as that user would."""

    def __init__(self, secret: str, ttl_seconds: int = 3600) -> None:
        self._secret = secret
        self._ttl_seconds = ttl_seconds
        self._tokens: dict[str, str] = {}

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        user_id = request.url.path.split("/")[1]
        if user_id and "authorization" not in request.headers:
            if user_id not in self._tokens:
                self._tokens[user_id] = issue_token(user_id, self._secret, self._ttl_seconds)
            request.headers["Authorization"] = f"Bearer {self._tokens[user_id]}"
        yield request


@dataclass
class FixedRegistry:
    """Stands in for DiscoveryClient where a test names the instances itself."""

    apps: dict[str, list[ServiceInstance]] = field(default_factory=dict)

    def add(self, app: str, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        instance = ServiceInstance(app.upper(), f"{host}:{app.lower()}:{port}", host, int(port), "UP")
        self.apps.setdefault(app.upper(), []).append(instance)

    def instances(self, app_name: str) -> list[ServiceInstance]:
        return list(self.apps.get(app_name.upper(), []))


Record = ConsumerRecord[bytes, bytes]


class TopicReader:
    """Reads one topic from the offsets it had when `mark()` was called (no consumer group, nothing committed)."""

    def __init__(self, kafka: KafkaAccess, topic: str, *, isolation_level: str = "read_committed") -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(
            **kafka.client_options(), isolation_level=isolation_level, enable_auto_commit=False
        )
        self._start: dict[TopicPartition, int] = {}
        self.records: list[Record] = []

    async def __aenter__(self) -> "TopicReader":
        await self._consumer.start()
        await self.mark()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def mark(self) -> None:
        """From now on: forget what was read and start again at the current end of the topic."""
        partitions = self._consumer.partitions_for_topic(self.topic)
        if partitions is None:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        self._start = await self._consumer.end_offsets(tps)
        for tp, offset in self._start.items():
            self._consumer.seek(tp, offset)
        self.records = []

    async def read_until(self, done: Callable[[list[Record]], bool], *, within: float, what: str) -> list[Record]:
        """Read until `done(records)` holds for everything read since `mark()`."""

        async def check() -> list[Record] | None:
            polled = await self._consumer.getmany(timeout_ms=100)
            for records in polled.values():
                self.records.extend(records)
            return self.records if done(self.records) else None

        return await wait_until(check, within=within, what=what)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """High watermarks; for read_committed, the last stable offsets (held back by open transactions)."""
        return await self._consumer.end_offsets(list(self._start))

    async def read_to_end(self, *, within: float = 15.0) -> list[Record]:
        """Everything up to the end offsets as of now (for read_committed: the last stable offsets)."""
        tps = list(self._start)
        ends = await self.end_offsets()

        async def caught_up() -> bool:
            polled = await self._consumer.getmany(timeout_ms=100)
            for records in polled.values():
                self.records.extend(records)
            positions = [await self._consumer.position(tp) for tp in tps]
            return all(position >= ends[tp] for position, tp in zip(positions, tps, strict=True))

        await wait_until(caught_up, within=within, what=f"reading {self.topic} to its end")
        return self.records
