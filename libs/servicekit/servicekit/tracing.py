"""Tracing with OpenTelemetry: W3C `traceparent` through HTTP and Kafka headers, spans to Zipkin.

`configure` sets the SDK up once per process (service.name = the app, service.instance.id = the instance): a
Zipkin JSON exporter behind a batch span processor (a thread that sends every second), and a sampler that follows
the caller's decision when a request or record carries a traceparent. Only entry points start traces, and they
decide before they touch the SDK: an HTTP request without a traceparent is sampled at TRACING_SAMPLE_RATIO by
`TracingMiddleware` here (or by the gateway), and the SDK records the SERVER span of a request so chosen; a
database query or an HTTP call outside any request is not traced at all. TRACING=off: `configure` does nothing, no
SDK is imported, no exporter thread runs, and every helper here is a no-op (the API's non-recording spans).

The server side of a request is our own pure-ASGI middleware, not OpenTelemetry's FastAPI instrumentation: that
one (and FastAPI's native telemetry, which switches itself on when a global tracer provider is set) builds spans
and context objects for every request, sampled or not, which made each published order cost order-service
markedly more CPU even at a sample ratio of 0 (bench/observability_cost.py; figures in docs/observability.md). An
unsampled request here costs a header scan, two random numbers and a context switch. For the same reason the
provider is not made the global one: nothing but what is handed the provider (our spans, the httpx
instrumentation) records anything.

httpx uses OpenTelemetry's maintained instrumentation. Statements do not: opentelemetry-instrumentation-sqlalchemy
builds a span, its attributes and a context for every statement, sampled or not (a third of a trivial query's time,
bench/perf-notes.md), and it instruments one engine per process and only the SQLAlchemy versions it declares
(below 2.1: on ours it had instrumented nothing). `instrument_engine` makes a CLIENT span, after the
database conventions (db.system.name, db.namespace, db.operation.name, db.query.text), for a statement run inside a
sampled span only. Kafka does not either:
opentelemetry-instrumentation-aiokafka wraps every `send` (it waits for metadata and serializes again per record to
learn the partition) and every `getmany` of every consumer in the process, and its consumer spans end before the
application has handled the records. Our producers send many orders in one transaction, each from another request,
and our consumer handles a whole poll in one database and one Kafka transaction; so the producer and consumer spans
are made here, after OpenTelemetry's messaging conventions (span kinds PRODUCER/CONSUMER, "send {topic}" /
"process {topic}", messaging.system=kafka, messaging.destination.name, messaging.kafka.message.key, ...), and
`KafkaSpans` keeps them for one transaction, around the handler's code.
"""

import logging
import random
import re
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from servicekit.config import TracingSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from httpx import AsyncClient
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
TRACESTATE = "tracestate"
KafkaHeaders = list[tuple[str, bytes]]

# How often the batch processor sends what it collected: soon enough that a trace is complete in Zipkin a moment
# after the order is settled, rarely enough to cost one HTTP POST per second per process.
EXPORT_DELAY_MS = 1000
# Spans waiting for export beyond this are dropped (a Zipkin that is away costs memory only up to here).
EXPORT_QUEUE_SIZE = 8192
# Paths no one wants a trace of: Prometheus scrapes, health checks, the console's refreshes (every 2 s per page).
UNTRACED_PATHS = frozenset({"/metrics", "/health_check", "/console/state"})

_provider: "TracerProvider | None" = None
_tracer: trace.Tracer = trace.NoOpTracer()
_sample_ratio = 0.0


def configure(settings: TracingSettings, service_name: str, instance_id: str) -> bool:
    """Set up the SDK for this process (once; later calls change nothing). False when TRACING=off."""
    global _provider, _tracer, _sample_ratio
    if not settings.tracing:
        return False
    if _provider is not None:
        return True
    # The SDK only when tracing is on.
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    # Resource(...), not Resource.create: the SDK's telemetry.sdk.* attributes would be three more tags on every span.
    resource = Resource({"service.name": service_name.lower(), "service.instance.id": instance_id})
    provider = TracerProvider(resource=resource, sampler=ParentBased(root=_entry_point_sampler()))
    exporter = ZipkinExporter(endpoint=settings.zipkin_spans_url, timeout=5)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=EXPORT_QUEUE_SIZE, schedule_delay_millis=EXPORT_DELAY_MS)
    )
    # Deliberately not trace.set_tracer_provider(provider): see the module's docstring.
    _provider = provider
    _tracer = provider.get_tracer("servicekit")
    _sample_ratio = settings.tracing_sample_ratio
    log.info("tracing to %s, new traces sampled at %s", settings.zipkin_spans_url, _sample_ratio)
    return True


def _entry_point_sampler() -> Any:
    """A root span is recorded when it is a request's SERVER span (whoever starts one has sampled the request
    already: `TracingMiddleware`, the gateway); any other root (a query, an HTTP call, a record with no context)
    never."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class EntryPointSampler(Sampler):
        def should_sample(
            self,
            parent_context: otel_context.Context | None,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Sequence[Link] | None = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind is SpanKind.SERVER:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
            return SamplingResult(Decision.DROP)

        def get_description(self) -> str:
            return "EntryPointsDecided"

    return EntryPointSampler()


def enabled() -> bool:
    """Whether this process records spans (configure ran with TRACING=on)."""
    return _provider is not None


def tracer() -> trace.Tracer:
    """The process's tracer; a no-op one when tracing is off."""
    return _tracer


def shutdown() -> None:
    """Send what is still queued (the SDK also does this at exit)."""
    if _provider is not None:
        _provider.shutdown()


# ---- The W3C trace context ------------------------------------------------------------------------------------


def traceparent(span_context: SpanContext) -> str:
    """The `traceparent` value naming `span_context` as the parent (version 00)."""
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags) & 1:02x}"


def parse_traceparent(value: str) -> SpanContext | None:
    """The remote parent a `traceparent` names, or None when it is malformed (the W3C rules: lower-case hex,
    no all-zero ids, version ff invalid, version 00 exactly 55 characters, later versions may append fields)."""
    found = _TRACEPARENT.fullmatch(value)
    if found is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = found.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    flags = TraceFlags(int(flags_hex, 16) & TraceFlags.SAMPLED)
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)


def current_span_context() -> SpanContext | None:
    """The context of the span current here (a request's server span), or None when there is none."""
    if _provider is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    return span_context if span_context.is_valid else None


def inject_kafka_headers(headers: KafkaHeaders, span_context: SpanContext) -> KafkaHeaders:
    """Add `traceparent` (and `tracestate` when there is one) naming `span_context` to Kafka record headers."""
    headers.append((TRACEPARENT, traceparent(span_context).encode()))
    if span_context.trace_state:
        headers.append((TRACESTATE, span_context.trace_state.to_header().encode()))
    return headers


def extract_kafka_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> SpanContext | None:
    """The producer's context a record carries in its headers, or None (no header, or a malformed one)."""
    if not headers:
        return None
    found = state = None
    for name, value in headers:
        if value is None:
            continue
        if name == TRACEPARENT:
            found = parse_traceparent(value.decode("ascii", "replace"))
        elif name == TRACESTATE:
            state = value.decode("ascii", "replace")
    if found is None or state is None:
        return found
    from opentelemetry.trace.span import TraceState

    return SpanContext(
        found.trace_id,
        found.span_id,
        is_remote=True,
        trace_flags=found.trace_flags,
        trace_state=TraceState.from_header([state]),
    )


def context_with_parent(parent: SpanContext) -> otel_context.Context:
    """An OpenTelemetry context whose current span is the (remote) `parent`: spans started in it are its children."""
    return trace.set_span_in_context(NonRecordingSpan(parent))


# ---- Kafka spans ----------------------------------------------------------------------------------------------


def _kafka_attributes(operation: str, operation_type: str, topic: str, key: bytes | str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": operation,
        "messaging.operation.type": operation_type,
        "messaging.destination.name": topic,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    return attributes


def start_send(topic: str, key: bytes | str | None, parent: SpanContext | None) -> tuple[Span | None, KafkaHeaders]:
    """A PRODUCER span "send {topic}" for one record, child of `parent`, and the headers that carry it on.

    Unsampled parents get no span (nothing would record it), but their context still travels in the headers, so
    the consumer follows the same decision instead of starting a trace of its own. No parent: no span, no headers.
    """
    if parent is None or _provider is None:
        return None, []
    if not parent.trace_flags.sampled:
        return None, inject_kafka_headers([], parent)
    span = _tracer.start_span(
        f"send {topic}",
        context=context_with_parent(parent),
        kind=SpanKind.PRODUCER,
        attributes=_kafka_attributes("send", "publish", topic, key),
    )
    return span, inject_kafka_headers([], span.get_span_context())


def start_process(
    topic: str, key: bytes | str | None, creation: SpanContext | None, *, partition: int, offset: int, group: str
) -> Span | None:
    """A CONSUMER span "process {topic}" for one record, parented to the record's creation context (the producer's
    "send" span) and linked to it. None when the record carries no context or its trace is not sampled."""
    if creation is None or _provider is None or not creation.trace_flags.sampled:
        return None
    attributes = _kafka_attributes("process", "process", topic, key)
    attributes["messaging.destination.partition.id"] = str(partition)
    attributes["messaging.kafka.offset"] = offset
    attributes["messaging.consumer.group.name"] = group
    return _tracer.start_span(
        f"process {topic}",
        context=context_with_parent(creation),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=[Link(creation)],
    )


def end_send(span: Span | None, *, partition: int | None = None, offset: int | None = None) -> None:
    """End a "send" span once its record is committed, naming where it landed."""
    if span is None:
        return
    if partition is not None:
        span.set_attribute("messaging.destination.partition.id", str(partition))
    if offset is not None:
        span.set_attribute("messaging.kafka.offset", offset)
    span.end()


def end_failed(span: Span | None, error: BaseException) -> None:
    """End a span whose operation failed (an aborted transaction), with the error's type."""
    if span is None:
        return
    span.set_attribute("error.type", type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
    span.end()


class ConsumedRecord(Protocol):
    """What a "process" span takes from a consumed record (aiokafka's ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Landed(Protocol):
    """Where a sent record was written (aiokafka's RecordMetadata)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class KafkaSpans:
    """The spans of the records one Kafka transaction consumes and sends, kept apart from the code handling them:

        with KafkaSpans() as spans:
            spans.process(record, group=group, name=order_id)   # per record read
            headers = spans.send(topic, key, spans.processing(order_id))   # per record sent
            ...   # the transaction; spans.landed(metadata) once the records are written, when known

    Leaving the block ends every span; leaving it by an exception (an aborted transaction) ends them failed.

    A record's "process" span is PARENTED to the creation context the record carries (the producer's "send" span)
    and linked to it as well: the messaging conventions ask for the link (a batch span would need up to 500),
    and Zipkin keeps parents only, so without the parent an order's trace would stop at Kafka."""

    def __init__(self) -> None:
        self._processing: dict[str, Span] = {}
        self._sends: list[Span | None] = []
        self._landed: Sequence[Landed] | None = None

    def __enter__(self) -> "KafkaSpans":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is not None:
            for span in (*self._sends, *self._processing.values()):
                end_failed(span, exc)
            return
        if self._landed is None:
            for sent in self._sends:
                end_send(sent)
        else:
            for sent, where in zip(self._sends, self._landed, strict=True):
                end_send(sent, partition=where.partition, offset=where.offset)
        for process in self._processing.values():
            process.end()

    def process(self, record: ConsumedRecord, *, group: str, name: str) -> None:
        """Open the "process" span of `record` (when its trace is sampled); `processing(name)` gives its context.
        A second record under the same name gets none: sends follow the first."""
        if _provider is None or name in self._processing:
            return
        creation = extract_kafka_headers(record.headers)
        span = start_process(
            record.topic, record.key, creation, partition=record.partition, offset=record.offset, group=group
        )
        if span is not None:
            self._processing[name] = span

    def processing(self, name: str) -> SpanContext | None:
        """The context of the "process" span opened under `name`, or None when there is none."""
        span = self._processing.get(name)
        return span.get_span_context() if span is not None else None

    def send(self, topic: str, key: bytes | str | None, parent: SpanContext | None) -> KafkaHeaders | None:
        """Open the "send" span of one record, child of `parent` (`start_send`); the headers the record goes with,
        None when it needs none."""
        span, headers = start_send(topic, key, parent)
        self._sends.append(span)
        return headers or None

    def landed(self, where: Sequence[Landed]) -> None:
        """Where each record was written, in the order they were sent: their "send" spans name it when they end."""
        if len(where) != len(self._sends):
            raise ValueError(f"{len(where)} records landed, {len(self._sends)} sent")
        self._landed = where


# ---- HTTP requests ---------------------------------------------------------------------------------------------


class TracingMiddleware:
    """Pure ASGI: each HTTP request runs in its trace context, and a sampled one gets a SERVER span
    "{METHOD} {route template}" (OpenTelemetry's HTTP conventions: http.request.method, url.path, http.route,
    http.response.status_code).

    The decision comes first and costs no SDK object: a `traceparent` from the caller (the gateway sends one with
    every request) is followed, sampled or not; a request without one starts a trace sampled at
    TRACING_SAMPLE_RATIO. An unsampled request still runs in its (non-recording) context, so what it publishes
    carries the decision on in the Kafka headers and catalog-service records nothing either."""

    def __init__(self, app: "ASGIApp") -> None:
        self.app = app

    async def __call__(self, scope: "Scope", receive: "Receive", send: "Send") -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        parent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                parent = parse_traceparent(value.decode("latin-1"))
                break
        sampled = parent.trace_flags.sampled if parent is not None else random.random() < _sample_ratio
        if sampled:
            await self._traced(scope, receive, send, parent)
            return
        if parent is None:
            # A new trace, not sampled: its ids exist all the same, so the services behind this one (and the records
            # it publishes) carry the decision on instead of drawing again.
            parent = SpanContext(random.getrandbits(128) or 1, random.getrandbits(64) or 1, False, TraceFlags(0))
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)

    async def _traced(self, scope: "Scope", receive: "Receive", send: "Send", parent: SpanContext | None) -> None:
        method = scope["method"]
        span = _tracer.start_span(
            method,
            context=context_with_parent(parent) if parent is not None else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )

        async def send_noting_status(message: "Message") -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
            raise
        finally:
            otel_context.detach(token)
            # The route FastAPI matched (the scope carries it once routing ran): a template, never the raw path.
            route = getattr(scope.get("route"), "path", None)
            if route is not None:
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
            span.end()


def instrument_app(app: "FastAPI") -> None:
    """Run every request of `app` through `TracingMiddleware` (outermost, so its span covers the whole answer)."""
    if _provider is None:
        return
    app.add_middleware(TracingMiddleware)


# ---- Outgoing calls: HTTP (OpenTelemetry's instrumentation) and database statements (our own) ------------------------


def instrument_http_client(client: "AsyncClient") -> None:
    """CLIENT spans for the calls of this httpx client, with the traceparent sent along."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_provider)


def instrument_engine(engine: "AsyncEngine") -> None:
    """CLIENT spans for the statements of this engine, inside the sampled request (or record) that ran them; a
    statement outside one costs a look at the current span's flags."""
    if _provider is None:
        return
    from sqlalchemy import event

    url = engine.url
    where: dict[str, Any] = {
        "db.system.name": "mariadb",
        "db.namespace": url.database or "",
        "server.address": url.host or "",
        "server.port": url.port or 3306,
    }

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def begin(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if context is None or not trace.get_current_span().get_span_context().trace_flags.sampled:
            return
        words = statement.split(None, 1)
        operation = words[0].upper() if words else "STATEMENT"
        context._servicekit_span = tracer().start_span(
            f"{operation} {where['db.namespace']}".rstrip(),
            kind=SpanKind.CLIENT,
            attributes={**where, "db.operation.name": operation, "db.query.text": statement},
        )

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def end(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        span: Span | None = getattr(context, "_servicekit_span", None)
        if span is not None:
            span.end()
            context._servicekit_span = None

    @event.listens_for(engine.sync_engine, "handle_error")
    def failed(failure: Any) -> None:
        span: Span | None = getattr(failure.execution_context, "_servicekit_span", None)
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, type(failure.original_exception).__name__))
            span.end()
            failure.execution_context._servicekit_span = None
