"""What the tests share: polling with a deadline, processes and apps on real ports, the database, reading topics."""

import asyncio
import contextlib
import functools
import inspect
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, overload

import httpx
import pymysql
import uvicorn
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from fastapi import FastAPI
from pymysql.cursors import DictCursor

from servicekit.config import ServiceSettings
from servicekit.database import connect_blocking
from servicekit.discovery import ServiceInstance
from servicekit.kafka import KafkaAccess
from servicekit.server import server_config
from servicekit.tokens import SigningKey, issue_token, jwks

T = TypeVar("T")

# How much of the last value a timeout shows: a few records or rows, not thousands.
SHOWN_CHARS = 600


def _timed_out(what: str, within: float, last: object) -> AssertionError:
    shown = repr(last)
    if len(shown) > SHOWN_CHARS:
        shown = shown[:SHOWN_CHARS] + f"... ({len(shown)} chars)"
    return AssertionError(f"not within {within:g} s: {what} (last: {shown})")


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float, what: str, interval: float = 0.1
) -> T: ...
@overload
async def eventually(check: Callable[[], T | None], *, within: float, what: str, interval: float = 0.1) -> T: ...
async def eventually(check: Callable[[], Any], *, within: float, what: str, interval: float = 0.1) -> Any:
    """Call `check` (sync or async) until it returns something truthy, and return that. An AssertionError from
    `check` means "not yet". After `within` seconds: AssertionError naming `what` and the last value."""
    deadline = time.monotonic() + within
    while True:
        try:
            last = check()
            if inspect.isawaitable(last):
                last = await last
            if last:
                return last
        except AssertionError as failed:
            last = failed
        if time.monotonic() >= deadline:
            raise _timed_out(what, within, last)
        await asyncio.sleep(interval)


def eventually_blocking(check: Callable[[], T | None], *, within: float, what: str, interval: float = 0.1) -> T:
    """`eventually` for sync tests and fixtures; it sleeps the thread, so an async test awaits `eventually`."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no event loop in this thread to block
    else:
        raise RuntimeError(f"eventually_blocking would block the running event loop ({what}): await eventually()")
    deadline = time.monotonic() + within
    while True:
        last: object
        try:
            result = check()
            if inspect.isawaitable(result):
                raise TypeError(f"{what}: an async check needs `await eventually(...)`")
            if result:
                return result
            last = result
        except AssertionError as failed:
            last = failed
        if time.monotonic() >= deadline:
            raise _timed_out(what, within, last)
        time.sleep(interval)


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1 (for servers a test or benchmark starts itself)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, up to 10 s to exit, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_server(
    args: list[str], *, ready_url: str, env: Mapping[str, str], cwd: Path, within: float = 20.0
) -> subprocess.Popen[bytes]:
    """Start a server process (this environment plus `env`); return once `ready_url` answers 200.
    A process that exits first, or never answers, fails the caller and is stopped."""
    process = subprocess.Popen(args, cwd=cwd, env={**os.environ, **env})
    try:
        wait_answering(process, ready_url, within=within)
    except BaseException:
        stop_process(process)
        raise
    return process


def wait_answering(process: subprocess.Popen[bytes], url: str, *, within: float = 20.0) -> None:
    """Return once `url` answers 200; fail at once if `process` (the server behind it) exits first."""

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before {url} answered")
        try:
            return httpx.get(url, headers={"Accept": "application/json"}, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False  # not listening yet

    eventually_blocking(answers, within=within, what=f"{url} answers 200", interval=0.05)


# A string: pymysql's Connection is generic only in its type stubs.
DictConnection: TypeAlias = "pymysql.Connection[DictCursor]"


def database(settings: ServiceSettings, name: str) -> DictConnection:
    """A connection to database `name` as the settings' user (servicekit.database.connect_blocking: the first server
    of DB_HOSTS that answers), autocommit so every read sees the latest rows; rows come back as dicts."""
    connection: DictConnection = connect_blocking(settings, name, cursorclass=DictCursor)
    return connection


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns the signals
        yield


@contextlib.asynccontextmanager
async def serving(app: FastAPI, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run `app` (lifespan included) on a free port of `host` in this event loop, configured as a service serves it;
    yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = _QuietServer(server_config(app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during startup")
            await asyncio.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@functools.cache
def kit_signing_key() -> SigningKey:
    """The key the test kit signs with for apps under test, which trust it through `kit_jwks()`."""
    return SigningKey.generate("test-kit")


def kit_jwks() -> str:
    """TRUSTED_JWKS for an in-process app or a private gateway: they then accept the test kit's tokens only."""
    return json.dumps(jwks([kit_signing_key()]))


def stack_signing_key(activation_seconds: float = 10.0, keys_file: Path | None = None) -> SigningKey:
    """The running stack's current signing key (the newest one every verifier knows: user-service's rule, with
    the default refresh), read from user-service's key file as the operator can (natively: under STACK_DIR;
    SIGNING_KEYS_FILE where it is elsewhere, as for make compose-test's runner, which mounts the volume read-only;
    `keys_file` for another native stack's). For whole-stack tests that need a token for a user that never logged
    in."""
    stack_dir = Path(os.environ.get("STACK_DIR") or Path(__file__).resolve().parents[3] / ".stack")
    path = keys_file or Path(os.environ.get("SIGNING_KEYS_FILE") or stack_dir / "user-service" / "signing-keys.json")
    entries = json.loads(path.read_text())["keys"]
    keys = sorted(
        (SigningKey.from_raw(entry["kid"], entry["private"], float(entry["created"])) for entry in entries),
        key=lambda key: key.created,
    )
    active = [key for key in keys if key.created <= time.time() - activation_seconds]
    return active[-1] if active else keys[0]


def bearer(user_id: str, *roles: str, key: SigningKey | None = None, ttl_seconds: int = 600) -> str:
    """An Authorization header value for `user_id`, signed with `key` (the test kit's by default)."""
    return f"Bearer {issue_token(user_id, key or kit_signing_key(), ttl_seconds, roles)}"


class SignedAsPathUser(httpx.Auth):
    """Sends each request with a token for the user its path starts with (`/{userId}/orders`), as that user would."""

    def __init__(self, key: SigningKey | None = None, ttl_seconds: int = 3600) -> None:
        self._key = key or kit_signing_key()
        self._ttl_seconds = ttl_seconds
        self._tokens: dict[str, str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        user_id = request.url.path.split("/")[1]
        if user_id and "authorization" not in request.headers:
            if user_id not in self._tokens:
                self._tokens[user_id] = issue_token(user_id, self._key, self._ttl_seconds)
            request.headers["Authorization"] = f"Bearer {self._tokens[user_id]}"
        yield request


@dataclass
class FixedRegistry:
    """Stands in for DiscoveryClient where a test names the instances itself."""

    apps: dict[str, list[ServiceInstance]] = field(default_factory=dict)

    def instances(self, app_name: str) -> list[ServiceInstance]:
        return list(self.apps.get(app_name.upper(), []))


Record: TypeAlias = ConsumerRecord[bytes, bytes]


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

        # getmany already waits up to 100 ms for records: no pause between polls.
        return await eventually(check, within=within, what=what, interval=0)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """High watermarks; for read_committed, the last stable offsets (held back by open transactions)."""
        offsets: dict[TopicPartition, int] = await self._consumer.end_offsets(list(self._start))
        return offsets

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

        await eventually(caught_up, within=within, what=f"reading {self.topic} to its end", interval=0)
        return self.records
