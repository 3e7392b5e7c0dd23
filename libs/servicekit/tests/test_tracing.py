"""servicekit.tracing: the W3C traceparent in and out of Kafka headers, the spans made for records, TRACING=off.

What configures the SDK runs in a child process: the SDK's tracer provider is set once per process."""

import json
import subprocess
import sys
import textwrap

import pytest
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace.span import TraceState

from servicekit import tracing

# No stack; three tests start a short-lived interpreter of their own (the SDK is set up once per process).
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
    """A database query or an HTTP call with no request around it starts no trace, whatever the ratio."""
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
    assert result == {"INTERNAL": False, "SERVER": True, "CLIENT": False, "PRODUCER": False, "CONSUMER": True}
