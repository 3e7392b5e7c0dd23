"""Keep-alive HTTP/1.1 connections to service instances, parsed with httptools, pooled per instance."""

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol, cast

import httptools


class UpstreamTimeout(Exception):
    """The instance accepted the request but did not answer within the read timeout."""


class UpstreamBroken(Exception):
    """The connection closed or sent garbage before a whole response arrived."""

    def __init__(self, message: str, *, received_anything: bool) -> None:
        super().__init__(message)
        self.received_anything = received_anything


class UpstreamTooLarge(Exception):
    """The answer grew past the gateway's cap; the connection was dropped instead of buffering more."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    # Headers its Connection header names (lower case): hop-by-hop, like Connection itself.
    connection_options: frozenset[bytes] = frozenset()


_CONNECTION_TOKENS_WITHOUT_HEADERS = frozenset({b"close", b"keep-alive", b""})


def connection_options(value: bytes) -> frozenset[bytes]:
    """The header names a Connection header lists (RFC 9110 7.6.1), lower case; `close`/`keep-alive` name none."""
    return frozenset(token.strip().lower() for token in value.split(b",")) - _CONNECTION_TOKENS_WITHOUT_HEADERS


class ResponseListener(Protocol):
    """Told exactly once per send(): the whole response, or why there is none."""

    def on_upstream_response(self, connection: "UpstreamConnection", response: UpstreamResponse) -> None: ...

    def on_upstream_failure(self, connection: "UpstreamConnection", exc: Exception) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to one instance, carrying one request at a time."""

    def __init__(self, address: tuple[str, int], max_body_bytes: int) -> None:
        self.address = address
        # Its requests' Host header line, made once.
        self.host_line = b"host: %s:%d\r\n" % (address[0].encode(), address[1])
        self.max_body_bytes = max_body_bytes
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.closed = False
        self.reusable = False
        self._parser = httptools.HttpResponseParser(self)
        self._listener: ResponseListener | None = None
        # One timer at a time, left armed across requests (a timer per request cost more than the rest of send):
        # when it fires it checks the deadline of the request then in flight, if any, and waits again if need be.
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._outcome: UpstreamResponse | Exception | None = None
        # Kept: asyncio.get_running_loop() costs a getpid() syscall per call on Python 3.11.
        self._loop = asyncio.get_running_loop()
        self._reset()

    def _reset(self) -> None:
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._headers_done = False
        self._has_length = False
        self._connection: bytes | None = None
        self._received_anything = False
        self._skip_body = False
        self._outcome = None

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received_anything = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self._outcome is None:
                self._outcome = UpstreamBroken(f"bad response: {exc}", received_anything=True)
            self.close()
        # Delivered after the parser returns, so the listener may reuse this connection at once.
        if self._outcome is not None:
            self._deliver()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self._listener is None:
            return
        if self._outcome is None:
            if self._headers_done and not self._has_length:
                # A response delimited by the connection closing is complete now.
                self._complete(keep_alive=False)
            else:
                self._outcome = UpstreamBroken(
                    "connection closed mid-response", received_anything=self._received_anything
                )
        self._deliver()

    # ---- httptools callbacks ---------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self._has_length = True
        elif lowered == b"connection":
            self._connection = value
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        status = self._parser.get_status_code()
        if status == 101 and self._outcome is None:
            # The gateway never asks to switch protocols (it sends no Upgrade): nothing to pass on.
            self._outcome = UpstreamBroken("switched protocols unasked", received_anything=True)
            self.close()
            return
        if self._skip_body or status in (204, 304) or 100 <= status < 200:
            self._has_length = True
            if self._skip_body:
                # httptools cannot be told a HEAD response has no body: finish here, drop the connection.
                self._complete(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.max_body_bytes:
            if self._outcome is None:
                self._outcome = UpstreamTooLarge(f"answer larger than {self.max_body_bytes} bytes")
                self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:
            # An interim answer (100, 102, 103): the gateway passes on only the final one, which follows.
            self._reason = b""
            self._headers = []
            self._headers_done = self._has_length = False
            self._connection = None
            return
        if self._outcome is None and self._listener is not None:
            self._complete(keep_alive=self._parser.should_keep_alive())

    # ---- use ------------------------------------------------------------------------------------

    def _complete(self, keep_alive: bool) -> None:
        self.reusable = keep_alive and not self.closed
        options = connection_options(self._connection) if self._connection else frozenset()
        self._outcome = UpstreamResponse(
            self._parser.get_status_code(), self._reason, self._headers, b"".join(self._body), options
        )

    def _deliver(self) -> None:
        listener, outcome = self._listener, self._outcome
        if listener is None or outcome is None:
            return
        self._listener = None
        if isinstance(outcome, UpstreamResponse):
            listener.on_upstream_response(self, outcome)
        else:
            self.reusable = False
            listener.on_upstream_failure(self, outcome)

    def send(self, request: bytes, read_timeout: float, listener: ResponseListener, *, head: bool) -> None:
        """Send one request; the listener hears the whole response, UpstreamTimeout or UpstreamBroken."""
        assert self.transport is not None and self._listener is None
        self._reset()
        self._skip_body = head
        self.reusable = False
        self._listener = listener
        self._deadline = self._loop.time() + read_timeout
        if self._timer is None or self._timer.when() > self._deadline:
            self._cancel_timer()
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)
        self.transport.write(request)

    def _check_deadline(self) -> None:
        self._timer = None
        if self._listener is None or self._outcome is not None:
            return  # nothing in flight: the next send arms the timer again
        if self._deadline > self._loop.time():
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)
            return
        host, port = self.address
        self._outcome = UpstreamTimeout(f"no answer from {host}:{port}")
        self._deliver()
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections per instance address, most recently used first."""

    def __init__(
        self,
        connect_timeout: float,
        idle_seconds: float,
        max_response_bytes: int = 8 * 1024 * 1024,
        max_idle_per_instance: int = 256,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.max_response_bytes = max_response_bytes
        # Dropped before the instance's own keep-alive timeout (uvicorn: 5 s) can race with our reuse.
        self.idle_seconds = idle_seconds
        self.max_idle_per_instance = max_idle_per_instance
        self._idle: dict[tuple[str, int], list[UpstreamConnection]] = {}

    def take_idle(self, host: str, port: int) -> UpstreamConnection | None:
        idle = self._idle.get((host, port))
        if not idle:
            return None
        oldest_usable = time.monotonic() - self.idle_seconds
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= oldest_usable:
                return connection
            connection.close()
        return None

    async def connect(self, host: str, port: int) -> UpstreamConnection:
        """A new connection to host:port within the connect timeout (name lookup included). Raises OSError or
        TimeoutError, and ValueError/UnicodeError/OverflowError for an address no socket can take."""
        loop = asyncio.get_running_loop()
        limit = self.max_response_bytes
        async with asyncio.timeout(self.connect_timeout):
            _, connection = await loop.create_connection(lambda: UpstreamConnection((host, port), limit), host, port)
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        if connection.closed or not connection.reusable:
            connection.close()
            return
        idle = self._idle.setdefault(connection.address, [])
        if len(idle) >= self.max_idle_per_instance:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def prune(self) -> None:
        """Drop idle connections past their time, and those the instance closed (or that left discovery)."""
        oldest_usable = time.monotonic() - self.idle_seconds
        for address, idle in list(self._idle.items()):
            kept = [c for c in idle if not c.closed and c.idle_since >= oldest_usable]
            for connection in idle:
                if connection not in kept:
                    connection.close()
            if kept:
                self._idle[address] = kept
            else:
                del self._idle[address]

    def close_all(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
