"""The hot path: client connections parsed with httptools, routed, authorized and proxied to an instance
over a pooled keep-alive connection, with failover, retries and timeouts."""

import asyncio
import itertools
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote

import httptools
import orjson
from opentelemetry.trace import Span

from api_gateway.auth import TokenVerifier
from api_gateway.balancer import LoadBalancer
from api_gateway.config import GatewaySettings
from api_gateway.metrics import WorkerMetrics
from api_gateway.ratelimit import RateLimit, RateLimiter, retry_after_seconds
from api_gateway.routes import Route, RouteTable
from api_gateway.tracing import GatewayTracing
from api_gateway.upstream import (
    UpstreamBroken,
    UpstreamConnection,
    UpstreamPool,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTooLarge,
    connection_options,
)
from servicekit.discovery import ServiceInstance
from servicekit.tokens import InvalidToken, TokenTrust, TrustNotReady

log = logging.getLogger("api_gateway")

# Hop-by-hop headers, and those the gateway sets itself, are not passed on as received.
REQUEST_HEADERS_NOT_FORWARDED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"host",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
        b"traceparent",
    }
)
# And every Proxy-* header, and those the answer's Connection header names.
RESPONSE_HEADERS_NOT_FORWARDED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"x-request-id",
    }
)
# What becomes of an answer's header, by its name as the instance spelled it; remembered per name in a worker,
# up to this many names.
FORWARD, DROP, RELOCATE = 0, 1, 2
MAX_REMEMBERED_HEADER_NAMES = 1_000
REJECTED_CONNECTION_LINGER_SECONDS = 2.0
# Routing decisions remembered per (method, path) in a worker, for paths up to this long (a few MB at most); all
# forgotten at once when full.
MAX_REMEMBERED_PATHS = 10_000
MAX_REMEMBERED_PATH_LENGTH = 200
REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


# What the gateway makes of a (method, path): what is wrong with the path, else the route that takes it with its
# variables, and the path sent upstream.
Routing = tuple[str | None, tuple[Route, dict[str, str]] | None, bytes]


class Refused(Exception):
    """The gateway answers the request itself, with this status, and does not pass it on."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(slots=True)
class IncomingRequest:
    method: str
    url: bytes
    headers: list[tuple[bytes, bytes]]  # names in lower case
    body: bytes
    keep_alive: bool
    # For the metrics: when the request was complete, the route it matched, the instance that answered it.
    started: float = 0.0
    route: str = "unmatched"
    upstream: str = ""
    # Its SERVER span when its trace is sampled (ended with the answer).
    span: Span | None = None


_REQUEST_ID_PREFIX = os.urandom(8).hex().encode()
_request_numbers = itertools.count()


def new_request_id() -> bytes:
    """Unique without a syscall per request: a random per-process prefix and a counter."""
    return b"%s%016x" % (_REQUEST_ID_PREFIX, next(_request_numbers))


# A client's X-Request-Id is kept (to find its request in the logs) only when it is short and plain; anything else
# is replaced, so no client's bytes reach the logs or another header.
_ACCEPTABLE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def _is_acceptable_request_id(value: bytes) -> bool:
    return _ACCEPTABLE_REQUEST_ID.fullmatch(value) is not None


def _has_dot_segments(path: str) -> bool:
    return any(segment in (".", "..") for segment in unquote(path).split("/"))


# Percent-encodings of unreserved characters (RFC 3986 2.3: equivalent to the character itself).
# An absolute or scheme-relative URL: its authority and what follows it.
_ABSOLUTE_URL = re.compile(rb"(?:[A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)(.*)", re.DOTALL)
_ENCODED_UNRESERVED = re.compile(r"%(?:[46][1-9a-fA-F]|[57][0-9aA]|3[0-9]|2[dDeE]|5[fF]|7[eE])")


def _path_problem(path: str) -> str | None:
    """Paths routes could read differently from the services behind them are refused, not normalised."""
    if not path.startswith("/"):
        return "invalid path"
    if "//" in path:
        return "invalid path: empty segment"
    if "%" in path:
        lowered = path.lower()
        if "%2f" in lowered or "%5c" in lowered:
            return "invalid path: encoded slash"
        if _ENCODED_UNRESERVED.search(path):
            # `/user-service/%6Detrics` would pass the routes as something else than the /metrics it is upstream.
            return "invalid path: encoded letter, digit or -._~"
    if ("." in path or "%" in path) and _has_dot_segments(path):
        return "invalid path"
    return None


def json_response(
    status: int,
    document: object,
    request_id: bytes,
    keep_alive: bool,
    extra_headers: bytes = b"",
) -> bytes:
    body = orjson.dumps(document)
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Error")),
            b"Content-Type: application/json\r\nContent-Length: %d\r\nX-Request-Id: %s\r\n" % (len(body), request_id),
            extra_headers,
            b"" if keep_alive else b"Connection: close\r\n",
            b"\r\n",
            body,
        )
    )


def error_response(status: int, detail: str, request_id: bytes, keep_alive: bool) -> bytes:
    extra = b'WWW-Authenticate: Bearer realm="gateway"\r\n' if status == 401 else b""
    return json_response(status, {"detail": detail}, request_id, keep_alive, extra)


class Gateway:
    """Everything one worker process needs to answer requests; shared by all its client connections."""

    def __init__(
        self,
        settings: GatewaySettings,
        routes: list[Route],
        balancer: LoadBalancer,
        pool: UpstreamPool,
        metrics: WorkerMetrics | None = None,
        tracing: GatewayTracing | None = None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()
        self.tracing = tracing or GatewayTracing()
        self.routes = RouteTable(routes)
        self.balancer = balancer
        self.pool = pool
        # None: the keys of TRUSTED_JWKS (tests); the worker passes one fed from USER-SERVICE.
        self.verifier = verifier or TokenVerifier(TokenTrust.static(orjson.loads(settings.trusted_jwks or "{}")))
        self.max_body_bytes = settings.gateway_max_body_bytes
        self.clients: set[ClientConnection] = set()
        self._connections_by_address: dict[str, int] = {}
        self.limiter = RateLimiter()
        # (method, path) -> what _path_problem and the route table say of it, and the path sent upstream (the
        # route's rewrite of it): all depend on nothing else.
        self._routing: dict[tuple[str, str], Routing] = {}
        self._rate_limits = {route.id: route.rate_limit for route in routes if route.rate_limit is not None}
        self.response_header_kinds: dict[bytes, int] = {}
        self._apps = sorted({route.app for route in routes})

    def admit(self, client: "ClientConnection") -> str | None:
        """Count a new connection in, or say why it is refused: the worker's slots or its address's are taken."""
        settings = self.settings
        if len(self.clients) >= settings.gateway_max_clients:
            return "too many connections; try again later"
        address = client.client_ip
        held = self._connections_by_address.get(address, 0)
        if held >= settings.gateway_max_connections_per_client:
            return "too many connections from your address; try again later"
        self._connections_by_address[address] = held + 1
        self.clients.add(client)
        return None

    def release(self, client: "ClientConnection") -> None:
        """An admitted connection closed."""
        self.clients.discard(client)
        address = client.client_ip
        held = self._connections_by_address.get(address, 0)
        if held > 1:
            self._connections_by_address[address] = held - 1
        else:
            self._connections_by_address.pop(address, None)

    def sweep_clients(self, idle_seconds: float) -> None:
        """Close keep-alive connections idle for a while; answer 408 to a request head or body past its deadline."""
        now = asyncio.get_running_loop().time()
        oldest_allowed = now - idle_seconds
        settings = self.settings
        for client in list(self.clients):
            if not client.busy and client.last_active < oldest_allowed:
                client.close()
            elif not client.reading:
                continue  # the gateway paused it (its answers wait): its deadlines run again once it reads
            elif client.receiving_head_since is not None:
                if now - client.receiving_head_since > settings.gateway_head_timeout_seconds:
                    client.time_out(f"request head not complete within {settings.gateway_head_timeout_seconds:g} s")
            elif client.receiving_body_since is not None:
                if now - client.receiving_body_since > settings.gateway_body_timeout_seconds:
                    client.time_out(f"request body not complete within {settings.gateway_body_timeout_seconds:g} s")
        if self._rate_limits:
            self.limiter.prune(self._rate_limits, now)

    def health(self, authorization: bytes | None, request_id: bytes, keep_alive: bool) -> bytes:
        """UP to anyone (probes, `make status`); the process and what it routes to only with an admin token."""
        try:
            admin = authorization is not None and self.verifier.claims(authorization).is_admin
        except InvalidToken:
            admin = False
        if not admin:
            return json_response(200, {"status": "UP"}, request_id, keep_alive)
        document = {
            "status": "UP",
            "app": "GATEWAY",
            "instanceId": self.settings.instance_id,
            "pid": os.getpid(),
            "workers": self.settings.worker_count,
            "instances": {app: self.balancer.up_count(app) for app in self._apps},
            "notAllowed": {app: n for app in self._apps if (n := self.balancer.refused_count(app))},
        }
        return json_response(200, document, request_id, keep_alive)

    def handle(self, request: IncomingRequest, client: "ClientConnection") -> bytes | None:
        """The answer when the gateway answers itself (errors, health), or None: an Exchange will answer."""
        raw_path, _, query = request.url.partition(b"?")
        path = raw_path.decode("latin-1")
        keep_alive = request.keep_alive
        head = _read_headers(request.headers)
        request_id = head.request_id
        if request_id is None or not _is_acceptable_request_id(request_id):
            request_id = new_request_id()

        if path == "/gateway/health_check" and request.method in ("GET", "HEAD"):
            request.route = "gateway-health"
            return self.health(head.authorization, request_id, keep_alive)
        try:
            route, subject, target = self._admit(request, path, head)
        except Refused as refused:
            return error_response(refused.status, refused.detail, request_id, keep_alive)
        if route.rate_limit is not None:
            key = subject if route.rate_limit.key == "subject" and subject else client.client_ip
            limited = self._rate_limited(route.id, route.rate_limit, key, request_id, keep_alive, client.loop.time())
            if limited is not None:
                return limited

        forwarded = head.forwarded
        if route.removed_headers and not route.removed_headers.isdisjoint(forwarded[::4]):
            forwarded = _without_headers(forwarded, route.removed_headers)
        if head.connection is not None and (named := connection_options(head.connection)):
            forwarded = _without_headers(forwarded, named)
        if query:
            target += b"?" + query
        trace_line, request.span = self.tracing.begin(head.traceparent, request.method, route.template)
        head_tail = _forwarded_head_tail(request, forwarded, head, client.client_ip.encode(), request_id, trace_line)
        request_line = b"%s %s HTTP/1.1\r\n" % (request.method.encode(), target)
        retryable = request.method in ("GET", "HEAD") or (request.method == "POST" and head.has_idempotency_key)
        Exchange(self, client, request, route, request_line, head_tail, retryable, request_id).try_next()
        return None

    def refusal(self, method: str, url: bytes, headers: list[tuple[bytes, bytes]]) -> Refused | None:
        """How the gateway would refuse a request whose body has not come yet (`Expect: 100-continue`), if it
        would; rate limits are left to the whole request."""
        path = url.partition(b"?")[0].decode("latin-1")
        if path == "/gateway/health_check":
            return None
        try:
            self._admit(IncomingRequest(method, url, headers, b"", False), path, _read_headers(headers))
        except Refused as refused:
            return refused
        return None

    def _admit(self, request: IncomingRequest, path: str, head: "RequestHead") -> tuple[Route, str | None, bytes]:
        """The route that takes the request, the token's subject when it needs one, and the path to send upstream;
        raises Refused."""
        problem, matched, target = self._route(request.method, path)
        if problem is not None:
            raise Refused(400, problem)
        if head.authorizations > 1:
            raise Refused(400, "more than one Authorization header")
        if matched is None:
            raise Refused(404, f"no route for {request.method} {path}")
        route, variables = matched
        request.route = route.id
        return route, self._authorize(route, variables, head.authorization), target

    def _route(self, method: str, path: str) -> "Routing":
        """What is wrong with the path, else the route that takes it, its variables and the path upstream (empty
        when no route takes it); remembered per path."""
        key = (method, path)
        known = self._routing.get(key)
        if known is None:
            problem = _path_problem(path)
            matched = None if problem is not None else self.routes.match(method, path)
            target = matched[0].rewritten(path).encode("latin-1") if matched is not None else b""
            known = (problem, matched, target)
            if len(path) <= MAX_REMEMBERED_PATH_LENGTH:
                if len(self._routing) >= MAX_REMEMBERED_PATHS:
                    self._routing.clear()
                self._routing[key] = known
        return known

    def _authorize(self, route: Route, variables: dict[str, str], authorization: bytes | None) -> str | None:
        """The token's subject when the route needs a token; raises Refused."""
        if not route.requires_token:
            return None
        try:
            claims = self.verifier.claims(authorization)
        except TrustNotReady as exc:
            # Just started, user-service's keys not fetched yet: the client tries again (a 401 would be final).
            raise Refused(503, f"tokens cannot be checked yet: {exc}") from None
        except InvalidToken as exc:
            raise Refused(401, f"invalid or missing token: {exc}") from None
        variable = route.subject_path_variable
        if variable is not None and claims.subject != unquote(variables.get(variable, "")):
            raise Refused(403, "the token belongs to another user")
        if route.required_role is not None and route.required_role not in claims.roles:
            raise Refused(403, f"needs the {route.required_role} role")
        return claims.subject

    def _rate_limited(
        self, route_id: str, limit: RateLimit, key: str, request_id: bytes, keep_alive: bool, now: float
    ) -> bytes | None:
        wait = self.limiter.take(route_id, limit, key, now)
        if wait <= 0:
            return None
        retry_after = b"Retry-After: %d\r\n" % retry_after_seconds(wait)
        detail = {"detail": f"too many requests; retry in {retry_after_seconds(wait)} s"}
        return json_response(429, detail, request_id, keep_alive, retry_after)


@dataclass(slots=True)
class RequestHead:
    """What the gateway reads from a request's headers, and the ones it passes on (lower-case names)."""

    forwarded: list[bytes]
    authorization: bytes | None = None
    authorizations: int = 0
    host: bytes | None = None
    connection: bytes | None = None
    forwarded_for: bytes | None = None
    request_id: bytes | None = None
    traceparent: bytes | None = None
    has_idempotency_key: bool = False


def _read_headers(headers: list[tuple[bytes, bytes]]) -> RequestHead:
    """One pass over the (lower-case name, value) pairs; decisions look at names only, never at values."""
    head = RequestHead(forwarded=[])
    forwarded = head.forwarded
    for lowered, value in headers:
        if lowered in REQUEST_HEADERS_NOT_FORWARDED:
            if lowered == b"host":
                head.host = value
            elif lowered == b"x-request-id":
                head.request_id = value
            elif lowered == b"x-forwarded-for":
                head.forwarded_for = value
            elif lowered == b"traceparent":
                head.traceparent = value
            elif lowered == b"connection":
                head.connection = value
            continue
        if lowered == b"authorization":
            head.authorization = value
            head.authorizations += 1
        elif lowered == b"idempotency-key":
            head.has_idempotency_key = True
        forwarded += (lowered, b": ", value, b"\r\n")
    return head


def _forwarded_head_tail(
    request: IncomingRequest,
    forwarded: list[bytes],
    head: RequestHead,
    client_address: bytes,
    request_id: bytes,
    trace_line: bytes = b"",
) -> bytes:
    """The headers sent upstream after the request line and Host: the client's, then X-Forwarded-*, traceparent."""
    forwarded_for = head.forwarded_for
    return b"".join(
        (
            *forwarded,
            b"x-forwarded-for: ",
            forwarded_for + b", " + client_address if forwarded_for else client_address,
            b"\r\nx-forwarded-proto: http\r\n",
            b"x-forwarded-host: %s\r\n" % head.host if head.host else b"",
            b"x-request-id: %s\r\n" % request_id,
            trace_line,
            b"content-length: %d\r\n" % len(request.body)
            if request.body or request.method in ("POST", "PUT", "PATCH")
            else b"",
            b"\r\n",
        )
    )


class Exchange:
    """One request on its way to an instance: failover when nothing was sent, retries after sending only
    if retryable. Callbacks, not a task: on a pooled connection nothing here awaits."""

    __slots__ = (
        "client",
        "failure",
        "gateway",
        "head_tail",
        "instance",
        "request",
        "request_id",
        "request_line",
        "retryable",
        "reused",
        "route",
        "tried",
    )

    def __init__(
        self,
        gateway: Gateway,
        client: "ClientConnection",
        request: IncomingRequest,
        route: Route,
        request_line: bytes,
        head_tail: bytes,
        retryable: bool,
        request_id: bytes,
    ) -> None:
        self.gateway = gateway
        self.client = client
        self.request = request
        self.route = route
        self.request_line = request_line
        self.head_tail = head_tail
        self.retryable = retryable
        self.request_id = request_id
        self.tried: set[str] = set()
        # Why the request could not be sent, once an attempt failed (None: no instance was there to try).
        self.failure: tuple[int, str] | None = None
        self.instance: ServiceInstance | None = None
        self.reused = False

    def try_next(self) -> None:
        gateway = self.gateway
        instance = None
        if len(self.tried) < gateway.settings.gateway_max_attempts:
            instance = gateway.balancer.pick(self.route.app, self.tried)
        if instance is None:
            status, detail = self.failure or (503, f"no instance of {self.route.app} is available")
            self.client.answer(self.request, error_response(status, detail, self.request_id, self.request.keep_alive))
            return
        if self.tried:
            gateway.metrics.retried(self.route.app)
        self.tried.add(instance.instance_id)
        self.instance = instance
        connection = gateway.pool.take_idle(instance.host, instance.port)
        if connection is not None:
            self.reused = True
            self._send(connection)
        else:
            self.client.loop.create_task(self._connect(instance))

    async def _connect(self, instance: ServiceInstance) -> None:
        try:
            connection = await self.gateway.pool.connect(instance.host, instance.port)
        except TimeoutError:
            self.gateway.balancer.failed(instance)
            self.failure = (504, f"connecting to {self.route.app} timed out")
            self.try_next()
            return
        except OSError as exc:
            self.gateway.balancer.failed(instance)
            self.failure = (503, f"no instance of {self.route.app} accepted the connection ({exc.strerror})")
            self.try_next()
            return
        except (ValueError, UnicodeError, OverflowError) as exc:
            # A registry entry no socket can take (the balancer filters malformed ones; this is the last guard).
            self.gateway.balancer.failed(instance)
            log.warning("request %s: cannot connect to %s: %s", self.request_id.decode(), instance.instance_id, exc)
            self.failure = (502, f"an instance of {self.route.app} has an unusable address")
            self.try_next()
            return
        self.reused = False
        self._send(connection)

    def _send(self, connection: UpstreamConnection) -> None:
        message = b"".join(
            (
                self.request_line,
                connection.host_line,
                self.head_tail,
                self.request.body,
            )
        )
        timeout = self.gateway.settings.gateway_read_timeout_seconds
        connection.send(message, timeout, self, head=self.request.method == "HEAD")

    def on_upstream_response(self, connection: UpstreamConnection, response: UpstreamResponse) -> None:
        assert self.instance is not None
        self.gateway.balancer.succeeded(self.instance)
        self.gateway.pool.release(connection)
        self.request.upstream = self.instance.instance_id
        self.client.answer(self.request, _client_response(response, self))

    def on_upstream_failure(self, connection: UpstreamConnection, exc: Exception) -> None:
        try:
            self._recover(connection, exc)
        except Exception:
            log.exception("request %s: unexpected error after %s", self.request_id.decode(), exc)
            self.request.keep_alive = False
            self.client.answer(self.request, error_response(500, "gateway error", self.request_id, False))

    def _recover(self, connection: UpstreamConnection, exc: Exception) -> None:
        instance = self.instance
        assert instance is not None
        connection.close()
        app = self.route.app
        if isinstance(exc, UpstreamTooLarge):
            # Any instance would answer the same: no retry.
            log.warning("request %s: %s: %s", self.request_id.decode(), instance.instance_id, exc)
            status, detail = 502, f"{app} answered more than the gateway passes on"
            self.client.answer(self.request, error_response(status, detail, self.request_id, self.request.keep_alive))
            return
        if isinstance(exc, UpstreamTimeout):
            self.gateway.balancer.failed(instance)
            log.warning("request %s: %s timed out", self.request_id.decode(), instance.instance_id)
            failure = (504, f"{app} did not answer in time")
        else:
            stale = self.reused and isinstance(exc, UpstreamBroken) and not exc.received_anything
            if stale:
                # A pooled connection the instance had just closed: not the instance's fault.
                self.tried.discard(instance.instance_id)
            else:
                self.gateway.balancer.failed(instance)
            log.warning("request %s: %s: %s", self.request_id.decode(), instance.instance_id, exc)
            failure = (502, f"{app} closed the connection")
        self.failure = failure
        if not self.retryable:
            status, detail = failure
            self.client.answer(self.request, error_response(status, detail, self.request_id, self.request.keep_alive))
            return
        self.try_next()


def _relocated(location: bytes, exchange: Exchange) -> bytes | None:
    """A Location naming the answering instance becomes a path at the gateway (the route's rewrite undone when it
    took a prefix off, else None); one naming another host where instances may be is None (dropped)."""
    found = _ABSOLUTE_URL.fullmatch(location)
    if found is None:
        return location  # a path: the client resolves it against the URL it asked for
    authority, rest = found.groups()
    instance = exchange.instance
    assert instance is not None
    if authority.lower() == b"%s:%d" % (instance.host.lower().encode(), instance.port):
        gateway_path = exchange.request.url.partition(b"?")[0]
        upstream_path = exchange.request_line.split(b" ", 2)[1].partition(b"?")[0]
        if not gateway_path.endswith(upstream_path):
            return None
        return gateway_path[: len(gateway_path) - len(upstream_path)] + (rest if rest[:1] == b"/" else b"/" + rest)
    host = authority.rpartition(b"@")[2]
    host = host[1 : host.find(b"]")] if host[:1] == b"[" else host.partition(b":")[0]
    return None if exchange.gateway.balancer.is_internal(host.decode("latin-1")) else location


def _without_headers(forwarded: list[bytes], removed: frozenset[bytes]) -> list[bytes]:
    """`forwarded` holds name, ': ', value, CRLF quadruples with lower-case names."""
    kept: list[bytes] = []
    for index in range(0, len(forwarded), 4):
        if forwarded[index] not in removed:
            kept.extend(forwarded[index : index + 4])
    return kept


def _response_header_kind(name: bytes) -> int:
    lowered = name.lower()
    if lowered in RESPONSE_HEADERS_NOT_FORWARDED or lowered.startswith(b"proxy-"):
        return DROP
    return RELOCATE if lowered == b"location" else FORWARD


def _client_response(response: UpstreamResponse, exchange: Exchange) -> bytes:
    request = exchange.request
    head = request.method == "HEAD"
    keep_alive = request.keep_alive
    request_id = exchange.request_id
    # Hop-by-hop too: the headers the answer's Connection header names.
    named = response.connection_options
    kinds = exchange.gateway.response_header_kinds
    parts = [b"HTTP/1.1 %d %s\r\n" % (response.status, response.reason or REASONS.get(response.status, b""))]
    for name, value in response.headers:
        kind = kinds.get(name)
        if kind is None:
            kind = _response_header_kind(name)
            if len(kinds) < MAX_REMEMBERED_HEADER_NAMES:
                kinds[name] = kind
        if kind == DROP:
            if head and name.lower() == b"content-length":
                parts.append(b"%s: %s\r\n" % (name, value))
            continue
        if named and name.lower() in named:
            continue
        if kind == RELOCATE:
            relocated = _relocated(value, exchange)
            if relocated is None:
                continue
            value = relocated
        parts += (name, b": ", value, b"\r\n")
    if not head and response.status not in (204, 304) and not 100 <= response.status < 200:
        parts.append(b"Content-Length: %d\r\n" % len(response.body))
    parts += (b"X-Request-Id: ", request_id, b"\r\n" if keep_alive else b"\r\nConnection: close\r\n", b"\r\n")
    parts.append(response.body)
    return b"".join(parts)


class ClientConnection(asyncio.Protocol):
    """One client connection: requests are parsed as they arrive and answered in order.

    Bounded like an edge proxy: reading pauses while `gateway_max_pipelined` requests wait or the answers
    waiting for the client pass the write buffer's high-water mark; URL, header block and header count are capped
    (414/431) as they arrive; a head or body past its deadline gets 408 (the worker's sweep checks)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        settings = gateway.settings
        self._max_url = settings.gateway_max_url_bytes
        self._max_header_bytes = settings.gateway_max_header_bytes
        self._max_headers = settings.gateway_max_headers
        self._max_pipelined = settings.gateway_max_pipelined
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[IncomingRequest] = deque()
        # Bytes read but not parsed yet: the queue had no room for the requests they may hold.
        self._unparsed = b""
        self._admitted = False
        self._busy = False
        self._rejection: tuple[int, str] | None = None
        self._draining = False
        self._reading = True
        self._write_paused = False
        self._in_queue_loop = False
        self._answered_inline = False
        self._url: list[bytes] = []
        self._url_size = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._head_bytes_seen = 0
        self._message_began = False
        # The request arriving said `Expect: 100-continue` and its body has not begun.
        self._awaiting_continue = False
        self._body: list[bytes] = []
        self._body_size = 0
        # Set while a request's head (or body) is arriving: the sweep answers 408 past the deadline.
        self.receiving_head_since: float | None = None
        self.receiving_body_since: float | None = None
        # Kept: asyncio.get_running_loop() costs a getpid() syscall per call on Python 3.11.
        self.loop = asyncio.get_running_loop()
        self.last_active = self.loop.time()

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def reading(self) -> bool:
        return self._reading

    @property
    def queued(self) -> int:
        """Requests parsed and waiting for the one in flight."""
        return len(self._queue)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        refusal = self.gateway.admit(self)
        if refusal is not None:
            self.transport.write(error_response(503, refusal, new_request_id(), keep_alive=False))
            self.transport.close()
            return
        self._admitted = True
        self.transport.set_write_buffer_limits(high=self.gateway.settings.gateway_write_buffer_bytes)
        self.last_active = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._queue.clear()
        self._unparsed = b""
        if self._admitted:
            self._admitted = False
            self.gateway.release(self)

    def pause_writing(self) -> None:
        """The client is not reading its answers: stop reading its requests until it does."""
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self._busy:
            self._answer_queued()

    def _pause_reading(self) -> None:
        if self._reading and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            self._reading = False

    def _resume_reading(self) -> None:
        if self._write_paused or len(self._queue) >= self._max_pipelined or self._draining or self._unparsed:
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._reading = True
            # A head or body that was arriving when the gateway paused gets its full deadline from now.
            now = self.loop.time()
            if self.receiving_head_since is not None:
                self.receiving_head_since = now
            if self.receiving_body_since is not None:
                self.receiving_body_since = now

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def time_out(self, detail: str) -> None:
        """The sweep found a request head or body past its deadline."""
        self.receiving_head_since = self.receiving_body_since = None
        if self._rejection is None:
            self._rejection = (408, detail)
        if not self._busy:
            self._reject()

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        if self._draining or self._rejection is not None:
            return
        if self._unparsed:
            self._unparsed += data  # read before the pause took effect: after what waits, in order
        else:
            self._parse(data)
        # Answered outside the parser's callbacks, so an answer can never re-enter the parser.
        if not self._busy:
            self._answer_queued()

    def _parse(self, data: bytes) -> None:
        """Parse no further than the queue has room for; keep the rest, and stop reading, until it drains."""
        try:
            room = self._max_pipelined - len(self._queue)
            # A request's head holds at least two line ends, so n of them end at most n // 2 + 1 requests.
            if data.count(b"\n") < 2 * room:
                self._feed(data)
            else:
                self._unparsed = self._feed_within_room(data)
        except httptools.HttpParserUpgrade:
            self._rejection = self._rejection or (400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._rejection = self._rejection or (400, f"malformed request: {exc}")
        if self._unparsed or len(self._queue) >= self._max_pipelined:
            self._pause_reading()

    def _feed_within_room(self, data: bytes) -> bytes:
        """Feed `data` in pieces that cannot end more requests than the queue has room for; what is left."""
        view = memoryview(data)
        start = 0
        while start < len(data):
            room = self._max_pipelined - len(self._queue)
            if self._rejection is not None:
                return b""
            if room <= 0:
                return data[start:]
            end = start
            for _ in range(2 * room - 1):
                end = data.find(b"\n", end) + 1
                if end == 0:
                    break
            if end == 0:
                end = len(data)
            self._feed(view[start:end])
            start = end
        return b""

    def _feed(self, data: bytes | memoryview) -> None:
        head_before = self.receiving_head_since is not None
        self._message_began = False
        self._parser.feed_data(data)
        # The whole piece belongs to one unfinished head only when that head began before it and no request began
        # in it (a pipelining client's read holds the end of one head, whole requests, the start of another).
        if head_before and not self._message_began and self.receiving_head_since is not None:
            # httptools buffers a header until it ends: count what arrives before the head is complete.
            self._head_bytes_seen += len(data)
            if self._head_bytes_seen > self._max_header_bytes + self._max_url and self._rejection is None:
                self._rejection = (431, f"request head larger than {self._max_header_bytes} bytes")

    def _reject(self) -> None:
        assert self.transport is not None and self._rejection is not None
        status, detail = self._rejection
        if self.transport.is_closing() or self._draining:
            return
        self.transport.write(error_response(status, detail, new_request_id(), keep_alive=False))
        self.gateway.metrics.answered("edge", status, "", 0.0)
        # Half-close and keep reading for a moment: closing with unread body bytes would reset the
        # connection and the client might never see the answer.
        self._draining = True
        if not self._reading:
            self.transport.resume_reading()
            self._reading = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(REJECTED_CONNECTION_LINGER_SECONDS, self.transport.close)

    def _answer_queued(self) -> None:
        while True:
            self._in_queue_loop = True
            try:
                while self._queue and not self._write_paused:
                    request = self._queue.popleft()
                    self._busy = True
                    self._answered_inline = False
                    try:
                        immediate = self.gateway.handle(request, self)
                    except Exception:
                        log.exception("unexpected error answering %s %r", request.method, request.url)
                        request.keep_alive = False
                        immediate = error_response(500, "gateway error", new_request_id(), keep_alive=False)
                    if immediate is None:
                        if self._answered_inline and self._reading_on():
                            continue  # an Exchange answered at once (no instance): next one, without recursing
                        return  # an Exchange calls answer() later
                    if not self._write(request, immediate):
                        return
            finally:
                self._in_queue_loop = False
            self._busy = False
            if self._rejection is not None or not self._unparsed or self._write_paused:
                break
            # The queue drained: parse what was kept back (a loop, not recursion: it may hold many requests).
            unparsed, self._unparsed = self._unparsed, b""
            self._parse(unparsed)
        if self._rejection is None and self._awaiting_continue and not self._write_paused:
            self._answer_expectation()
        if self._rejection is not None:
            self._reject()
        elif not self._reading:
            self._resume_reading()

    def _answer_expectation(self) -> None:
        """The request now first in line waits for `100 Continue` before its body: the gateway judges its head
        first (route, token, role), and refuses it without the 100 (RFC 9110 10.1.1)."""
        self._awaiting_continue = False
        assert self.transport is not None
        method = self._parser.get_method().decode()
        refused = self.gateway.refusal(method, b"".join(self._url), self._headers)
        if refused is None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        else:
            self._rejection = (refused.status, refused.detail)

    def _reading_on(self) -> bool:
        """The connection still takes requests (an inline answer may have closed it)."""
        return self.transport is not None and not self.transport.is_closing()

    def answer(self, request: IncomingRequest, response: bytes) -> None:
        """The answer to the request in flight; then the next queued request, if any."""
        if not self._write(request, response):
            return
        if self._in_queue_loop:
            # Called from inside handle(): the loop above goes on; recursing would grow the stack per request.
            self._answered_inline = True
            return
        self._answer_queued()

    def _write(self, request: IncomingRequest, response: bytes) -> bool:
        """Write the answer; whether the connection stays open for more."""
        assert self.transport is not None
        if self.transport.is_closing():
            if request.span is not None:
                # The client left before its answer (nginx logs such requests as 499).
                self.gateway.tracing.end(request.span, 499, request.upstream)
            return False
        if request.method == "HEAD":
            response = response[: response.find(b"\r\n\r\n") + 4]
        self.transport.write(response)
        # Every answer starts "HTTP/1.1 NNN".
        elapsed = time.monotonic() - request.started
        status = int(response[9:12])
        self.gateway.metrics.answered(request.route, status, request.upstream, elapsed)
        if request.span is not None:
            self.gateway.tracing.end(request.span, status, request.upstream)
        if not request.keep_alive:
            self.transport.close()
            return False
        return True

    # ---- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = []
        self._url_size = 0
        self._headers = []
        self._header_bytes = 0
        self._head_bytes_seen = 0
        self._message_began = True
        self._body = []
        self._body_size = 0
        self.receiving_head_since = self.last_active

    def on_url(self, url: bytes) -> None:
        self._url_size += len(url)
        if self._url_size > self._max_url:
            self._rejection = self._rejection or (414, f"URL longer than {self._max_url} bytes")
            return
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if len(self._headers) >= self._max_headers:
            self._rejection = self._rejection or (431, f"more than {self._max_headers} headers")
            return
        # Lower case once, here: everything after reads the names so.
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.receiving_head_since = None
        self.receiving_body_since = self.last_active
        if self._header_bytes > self._max_header_bytes:
            self._rejection = self._rejection or (431, f"headers larger than {self._max_header_bytes} bytes")
            return
        for name, value in self._headers:
            if name == b"content-length" and value.strip().isdigit():
                if int(value) > self.gateway.max_body_bytes:
                    self._rejection = (413, f"body larger than {self.gateway.max_body_bytes} bytes")
                    return
            elif name == b"expect" and value.lower() == b"100-continue":
                self._awaiting_continue = True  # answered once the gateway has judged the head

    def on_body(self, body: bytes) -> None:
        self._awaiting_continue = False
        self._body_size += len(body)
        if self._body_size > self.gateway.max_body_bytes:
            self._rejection = self._rejection or (413, f"body larger than {self.gateway.max_body_bytes} bytes")
        elif self._rejection is None:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self.receiving_body_since = None
        self._awaiting_continue = False
        if self._rejection is not None:
            return
        if self._parser.should_upgrade():
            # Refused, not passed on: the gateway speaks HTTP/1.1 only (httptools stops parsing after it).
            self._rejection = (400, "protocol upgrades are not supported")
            return
        self._queue.append(
            IncomingRequest(
                method=self._parser.get_method().decode(),
                url=b"".join(self._url),
                headers=self._headers,
                body=b"".join(self._body),
                keep_alive=self._parser.should_keep_alive(),
                started=time.monotonic(),
            )
        )
