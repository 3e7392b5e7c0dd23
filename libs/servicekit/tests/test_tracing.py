"""servicekit.tracing: the W3C traceparent in and out of Kafka headers, the spans made for records, TRACING=off.

What configures the SDK runs in a child process: the SDK's tracer provider is set once per process. The tests of
KafkaSpans put a provider of their own in the module's place instead, with an in-memory exporter."""

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from servicekit import tracing

# No stack; the tests that configure the SDK start a short-lived interpreter of their own (once per process).
pytestmark = pytest.mark.unit

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
SAMPLED = f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"


def run_in_child(code: str, **env: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter; it prints one JSON document as its last line."""
    # Zipkin at a port nothing listens on: these tests look at spans and headers, not at the export.
    settings_env = {"TRACING": "on", "ZIPKIN_PORT": "9", "PATH": "/usr/bin:/bin", **env}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=settings_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_sampled_traceparent_is_parsed_into_a_remote_parent() -> None:
    parent = tracing.parse_traceparent(SAMPLED)
    assert parent is not None
    assert (parent.trace_id, parent.span_id, parent.is_remote) == (TRACE_ID, SPAN_ID, True)
    assert parent.trace_flags.sampled


def test_an_unsampled_traceparent_keeps_its_decision() -> None:
    parent = tracing.parse_traceparent(SAMPLED[:-2] + "00")
    assert parent is not None and not parent.trace_flags.sampled


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        SAMPLED.upper(),  # hex must be lower-case
        SAMPLED + "-extra",  # version 00 is exactly 55 characters
        "ff" + SAMPLED[2:],  # version ff is invalid
        f"00-{0:032x}-{SPAN_ID:016x}-01",  # all-zero trace id
        f"00-{TRACE_ID:032x}-{0:016x}-01",  # all-zero parent id
        SAMPLED.replace("-", "_"),
        " " + SAMPLED[1:],
        "00-0x" + SAMPLED[5:],
    ],
)
def test_a_malformed_traceparent_is_refused(value: str) -> None:
    assert tracing.parse_traceparent(value) is None


def test_a_later_version_may_append_fields() -> None:
    assert tracing.parse_traceparent("01" + SAMPLED[2:] + "-what-comes-later") is not None


def test_kafka_headers_carry_the_context_there_and_back() -> None:
    context = SpanContext(
        TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "x1")])
    )
    headers = tracing.inject_kafka_headers([("existing", b"kept")], context)
    assert headers[0] == ("existing", b"kept")
    assert ("traceparent", SAMPLED.encode()) in headers
    assert ("tracestate", b"vendor=x1") in headers

    extracted = tracing.extract_kafka_headers(headers)
    assert extracted is not None
    assert (extracted.trace_id, extracted.span_id, extracted.trace_flags.sampled) == (TRACE_ID, SPAN_ID, True)
    assert extracted.is_remote
    assert extracted.trace_state.get("vendor") == "x1"


@pytest.mark.parametrize(
    "headers",
    [None, [], [("other", b"x")], [("traceparent", b"not a traceparent")], [("traceparent", None)]],
)
def test_a_record_without_a_valid_traceparent_has_no_context(headers: list[tuple[str, bytes | None]] | None) -> None:
    assert tracing.extract_kafka_headers(headers) is None


def test_tracing_off_loads_no_sdk_and_starts_no_thread() -> None:
    result = run_in_child(
        """
        import json, sys, threading
        from opentelemetry.trace import SpanContext, TraceFlags
        from servicekit import tracing
        from servicekit.config import TracingSettings

        configured = tracing.configure(TracingSettings(), "ORDER-SERVICE", "order-service-1")
        parent = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(1))
        span, headers = tracing.start_send("orders", b"key", parent)
        print(json.dumps({
            "configured": configured,
            "enabled": tracing.enabled(),
            "sdk_loaded": any(name.startswith("opentelemetry.sdk") for name in sys.modules),
            "threads": threading.active_count(),
            "span": span is not None,
            "headers": len(headers),
            "process": tracing.start_process("t", None, parent, partition=0, offset=0, group="g") is not None,
            "current": tracing.current_span_context() is not None,
        }))
        """,
        TRACING="off",
    )
    assert result == {
        "configured": False,
        "enabled": False,
        "sdk_loaded": False,
        "threads": 1,
        "span": False,
        "headers": 0,
        "process": False,
        "current": False,
    }


def test_tracing_on_sends_a_child_span_of_a_sampled_parent_and_passes_an_unsampled_one_on() -> None:
    result = run_in_child(
        f"""
        import json, threading
        from servicekit import tracing
        from servicekit.config import TracingSettings

        configured = tracing.configure(TracingSettings(), "ORDER-SERVICE", "order-service-1")
        sampled = tracing.parse_traceparent("{SAMPLED}")
        unsampled = tracing.parse_traceparent("{SAMPLED[:-2]}00")
        span, headers = tracing.start_send("orders", b"order-1", sampled)
        child = tracing.extract_kafka_headers(headers)
        process = tracing.start_process("orders", b"order-1", child, partition=2, offset=7, group="catalog")
        no_span, passed_on = tracing.start_send("orders", b"order-2", unsampled)
        print(json.dumps({{
            "configured": configured,
            "exporter_thread": threading.active_count() > 1,
            "send_recording": span.is_recording(),
            "send_kind": span.kind.name,
            "send_name": span.name,
            "send_parent": span.parent.span_id,
            "send_attributes": dict(span.attributes),
            "header_trace": child.trace_id,
            "header_span": child.span_id == span.get_span_context().span_id,
            "process_parent": process.parent.span_id == span.get_span_context().span_id,
            "process_kind": process.kind.name,
            "process_links": [link.context.span_id == child.span_id for link in process.links],
            "unsampled_span": no_span is not None,
            "unsampled_headers": [[name, value.decode()] for name, value in passed_on],
            "service": span.resource.attributes["service.name"],
            "instance": span.resource.attributes["service.instance.id"],
        }}))
        """
    )
    assert result["configured"] is True
    assert result["exporter_thread"] is True
    assert result["send_recording"] is True
    assert (result["send_kind"], result["send_name"]) == ("PRODUCER", "send orders")
    assert result["send_parent"] == SPAN_ID
    assert result["send_attributes"] == {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.operation.type": "publish",
        "messaging.destination.name": "orders",
        "messaging.kafka.message.key": "order-1",
    }
    assert result["header_trace"] == TRACE_ID
    assert result["header_span"] is True
    assert result["process_parent"] is True
    assert result["process_kind"] == "CONSUMER"
    assert result["process_links"] == [True]
    assert result["unsampled_span"] is False
    assert result["unsampled_headers"] == [["traceparent", SAMPLED[:-2] + "00"]]
    assert (result["service"], result["instance"]) == ("order-service", "order-service-1")


def test_a_root_span_outside_any_request_is_not_sampled() -> None:
    """A database query, an HTTP call or a record with no request around it starts no trace, whatever the ratio;
    a SERVER root is recorded (whoever starts one has sampled the request already)."""
    result = run_in_child(
        """
        import json
        from opentelemetry.trace import SpanKind
        from servicekit import tracing
        from servicekit.config import TracingSettings

        tracing.configure(TracingSettings(), "CATALOG-SERVICE", "catalog-service-1")
        spans = {kind.name: tracing.tracer().start_span("x", kind=kind).is_recording() for kind in SpanKind}
        print(json.dumps(spans))
        """,
        TRACING_SAMPLE_RATIO="1.0",
    )
    assert result == {"INTERNAL": False, "SERVER": True, "CLIENT": False, "PRODUCER": False, "CONSUMER": False}


# A FastAPI app with the middleware, called in-process through httpx's ASGI transport; its spans land in memory.
# Each request answers with the trace context its handler ran in.
REQUESTS_IN_CHILD = """
    import asyncio, json
    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from servicekit import tracing
    from servicekit.config import TracingSettings

    tracing.configure(TracingSettings(), "ORDER-SERVICE", "order-service-1")
    memory = InMemorySpanExporter()
    tracing._provider.add_span_processor(SimpleSpanProcessor(memory))
    app = FastAPI()

    @app.post("/{user_id}/orders")
    async def place(user_id: str) -> dict:
        here = tracing.current_span_context()
        if here is None:
            return {}
        return {"trace": f"{here.trace_id:032x}", "span": f"{here.span_id:016x}", "sampled": here.trace_flags.sampled}

    @app.get("/health_check")
    async def health() -> dict:
        return {"in_trace": tracing.current_span_context() is not None}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("down")

    tracing.instrument_app(app)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        answers = []
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for method, path, headers in REQUESTS:
                answer = await client.request(method, path, headers=headers)
                is_json = answer.headers.get("content-type") == "application/json"
                answers.append({"status": answer.status_code, **(answer.json() if is_json else {})})
        spans = [
            {
                "name": span.name,
                "kind": span.kind.name,
                "trace": f"{span.context.trace_id:032x}",
                "span": f"{span.context.span_id:016x}",
                "parent": f"{span.parent.span_id:016x}" if span.parent else None,
                "attributes": dict(span.attributes),
                "error": span.status.status_code.name == "ERROR",
            }
            for span in memory.get_finished_spans()
        ]
        print(json.dumps({"answers": answers, "spans": spans}))

    asyncio.run(main())
"""


def requests_in_child(requests: str, **env: str) -> dict[str, list[dict[str, Any]]]:
    code = textwrap.dedent(REQUESTS_IN_CHILD).replace("async def main", f"REQUESTS = {requests}\n\nasync def main", 1)
    return run_in_child(code, **env)  # type: ignore[return-value]


def test_a_request_with_a_sampled_traceparent_gets_a_server_span_named_by_its_route() -> None:
    result = requests_in_child(f'[("POST", "/u-1/orders", {{"traceparent": "{SAMPLED}"}})]', TRACING_SAMPLE_RATIO="0")
    [answer], [span] = result["answers"], result["spans"]
    assert span["name"] == "POST /{user_id}/orders"
    assert span["kind"] == "SERVER"
    assert (span["trace"], span["parent"]) == (f"{TRACE_ID:032x}", f"{SPAN_ID:016x}")
    assert span["attributes"] == {
        "http.request.method": "POST",
        "url.path": "/u-1/orders",
        "http.route": "/{user_id}/orders",
        "http.response.status_code": 200,
    }
    # The handler runs inside the span: what it publishes is the span's child.
    assert answer == {"status": 200, "trace": span["trace"], "span": span["span"], "sampled": True}


def test_an_unsampled_traceparent_is_followed_without_a_span() -> None:
    unsampled = SAMPLED[:-2] + "00"
    result = requests_in_child(f'[("POST", "/u-1/orders", {{"traceparent": "{unsampled}"}})]', TRACING_SAMPLE_RATIO="1")
    assert result["spans"] == []
    assert result["answers"] == [
        {"status": 200, "trace": f"{TRACE_ID:032x}", "span": f"{SPAN_ID:016x}", "sampled": False}
    ]


def test_a_request_without_a_traceparent_starts_a_trace_sampled_at_the_ratio() -> None:
    requests = '[("POST", "/u-1/orders", {})] * 20'
    never = requests_in_child(requests, TRACING_SAMPLE_RATIO="0")
    assert never["spans"] == []
    # Unsampled, yet in a trace of its own: what it publishes tells the consumers not to record either.
    assert all(answer["sampled"] is False for answer in never["answers"])
    assert len({answer["trace"] for answer in never["answers"]}) == 20

    always = requests_in_child(requests, TRACING_SAMPLE_RATIO="1")
    assert len(always["spans"]) == 20
    assert all(span["parent"] is None and span["name"] == "POST /{user_id}/orders" for span in always["spans"])
    assert [answer["span"] for answer in always["answers"]] == [span["span"] for span in always["spans"]]


def test_health_checks_are_not_traced_and_a_failing_request_is_an_error_span() -> None:
    result = requests_in_child('[("GET", "/health_check", {}), ("GET", "/boom", {})]', TRACING_SAMPLE_RATIO="1")
    assert result["answers"] == [{"status": 200, "in_trace": False}, {"status": 500}]
    [span] = result["spans"]
    assert span["name"] == "GET /boom"
    assert span["error"] is True
    assert span["attributes"]["error.type"] == "RuntimeError"


# ---- KafkaSpans: the spans of one transaction, in this process ------------------------------------------------

CREATION = SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
UNSAMPLED = SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(0))


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class Landed:
    partition: int
    offset: int


def stock_request(offset: int, creation: SpanContext | None = CREATION) -> Record:
    headers = tracing.inject_kafka_headers([], creation) if creation is not None else []
    return Record("example-catalog-topic", 2, offset, b"P1", headers)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_a_process_span_follows_its_record_and_the_send_answering_it_is_its_child(
    finished: InMemorySpanExporter,
) -> None:
    with tracing.KafkaSpans() as spans:
        spans.process(stock_request(7), group="catalog-service", name="o1")
        headers = spans.send("orders", b"o1", spans.processing("o1"))
        assert finished.get_finished_spans() == (), "nothing ends before the transaction does"

    send, process = finished.get_finished_spans()
    assert (process.name, process.kind, process.context.trace_id) == (
        "process example-catalog-topic",
        SpanKind.CONSUMER,
        TRACE_ID,
    )
    assert parent_id(process) == SPAN_ID, "parented to the creation context, which Zipkin can follow"
    assert [link.context.span_id for link in process.links] == [SPAN_ID]
    assert process.attributes is not None
    assert {key: process.attributes[key] for key in ("messaging.kafka.offset", "messaging.consumer.group.name")} == {
        "messaging.kafka.offset": 7,
        "messaging.consumer.group.name": "catalog-service",
    }
    assert (send.name, send.kind, parent_id(send)) == ("send orders", SpanKind.PRODUCER, process.context.span_id)
    assert headers == [("traceparent", tracing.traceparent(send.context).encode())]
    assert all(span.status.status_code is StatusCode.UNSET for span in (send, process))


@pytest.mark.parametrize("error", [RuntimeError("transaction aborted"), asyncio.CancelledError()])
def test_an_exception_in_the_block_ends_every_span_failed_and_goes_on(
    finished: InMemorySpanExporter, error: BaseException
) -> None:
    with pytest.raises(type(error)), tracing.KafkaSpans() as spans:
        spans.process(stock_request(7), group="catalog-service", name="o1")
        spans.send("orders", b"o1", spans.processing("o1"))
        raise error

    ended = finished.get_finished_spans()
    assert [span.kind for span in ended] == [SpanKind.PRODUCER, SpanKind.CONSUMER]
    assert all(span.status.status_code is StatusCode.ERROR for span in ended)
    assert all(span.attributes is not None and span.attributes["error.type"] == type(error).__name__ for span in ended)


def test_sends_end_naming_where_their_records_landed(finished: InMemorySpanExporter) -> None:
    with tracing.KafkaSpans() as spans:
        spans.send("orders", b"o1", CREATION)
        spans.send("example-catalog-topic", b"P1", CREATION)
        spans.landed([Landed(0, 10), Landed(1, 20)])

    landed = [
        (span.attributes["messaging.destination.partition.id"], span.attributes["messaging.kafka.offset"])
        for span in finished.get_finished_spans()
        if span.attributes is not None
    ]
    assert landed == [("0", 10), ("1", 20)]
    assert all(parent_id(span) == SPAN_ID for span in finished.get_finished_spans())


def test_landed_must_name_a_place_for_each_record_sent(finished: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="1 records landed, 2 sent"), tracing.KafkaSpans() as spans:
        spans.send("orders", b"o1", CREATION)
        spans.send("orders", b"o2", None)
        spans.landed([Landed(0, 10)])


def test_records_of_unsampled_traces_or_none_get_no_process_span_and_their_answers_no_headers(
    finished: InMemorySpanExporter,
) -> None:
    with tracing.KafkaSpans() as spans:
        spans.process(stock_request(1, UNSAMPLED), group="catalog-service", name="o1")
        spans.process(stock_request(2, None), group="catalog-service", name="o2")
        assert spans.processing("o1") is None and spans.processing("o2") is None
        assert spans.send("orders", b"o1", spans.processing("o1")) is None
        # A request's unsampled context travels on, so the consumer follows the same decision.
        assert spans.send("orders", b"o3", UNSAMPLED) == [("traceparent", tracing.traceparent(UNSAMPLED).encode())]

    assert finished.get_finished_spans() == ()


def test_a_redelivered_record_in_the_same_poll_gets_no_second_process_span(finished: InMemorySpanExporter) -> None:
    with tracing.KafkaSpans() as spans:
        spans.process(stock_request(1), group="catalog-service", name="o1")
        first = spans.processing("o1")
        spans.process(stock_request(5), group="catalog-service", name="o1")
        assert spans.processing("o1") == first

    [process] = finished.get_finished_spans()
    assert process.attributes is not None and process.attributes["messaging.kafka.offset"] == 1


def test_with_tracing_off_the_spans_are_no_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_provider", None)
    monkeypatch.setattr(tracing, "_tracer", NoOpTracer())
    with tracing.KafkaSpans() as spans:
        spans.process(stock_request(1), group="catalog-service", name="o1")
        assert spans.processing("o1") is None
        assert spans.send("orders", b"o1", CREATION) is None
        spans.landed([Landed(0, 10)])
