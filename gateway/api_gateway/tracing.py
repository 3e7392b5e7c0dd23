"""The gateway's part of a trace: accept the client's W3C `traceparent` or start a trace, send it upstream, and record
a SERVER span for the requests whose trace is sampled.

Kept off the hot path's cost: an unsampled request costs a header parse or two random numbers and one formatted
header line, no SDK object; only sampled requests (TRACING_SAMPLE_RATIO of new traces, or the client's decision)
create a span, which the SDK's batch processor sends to Zipkin from its own thread.
"""

import random

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from api_gateway.config import Settings
from servicekit import tracing

_random = random.random
_bits = random.getrandbits


class GatewayTracing:
    """One per worker process. Off (the client's traceparent passed on untouched) unless made by `start`."""

    def __init__(self, ratio: float = 0.0, enabled: bool = False) -> None:
        self.enabled = enabled
        self.ratio = ratio

    @classmethod
    def start(cls, settings: Settings) -> "GatewayTracing":
        """Sets the SDK up in this process when TRACING=on. It samples every span the gateway starts: the gateway
        has decided before it starts one."""
        enabled = tracing.configure(settings, "GATEWAY", settings.instance_id)
        return cls(settings.tracing_sample_ratio, enabled)

    def begin(self, incoming: bytes | None, method: str, template: str) -> tuple[bytes, Span | None]:
        """The `traceparent` header line to send upstream, and the request's span when its trace is sampled."""
        if not self.enabled:
            # Passed on untouched: tracing off here does not break a trace the client runs.
            return (b"traceparent: %s\r\n" % incoming if incoming else b""), None
        parent = None
        if incoming:
            parent = tracing.parse_traceparent(incoming.decode("latin-1"))
            if parent is not None and not parent.trace_flags.sampled:
                # The caller decided against recording: the services see its decision and record nothing either.
                return b"traceparent: %s\r\n" % incoming, None
        if parent is None and _random() >= self.ratio:
            # A new trace, not sampled: ids the services pass on, with the flag that tells them not to record.
            return b"traceparent: 00-%032x-%016x-00\r\n" % (_bits(128) or 1, _bits(64) or 1), None
        span = tracing.tracer().start_span(
            f"{method} {template}",
            context=tracing.context_with_parent(parent) if parent is not None else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": template},
        )
        return b"traceparent: %s\r\n" % tracing.traceparent(span.get_span_context()).encode(), span

    @staticmethod
    def end(span: Span, status: int, upstream: str) -> None:
        span.set_attribute("http.response.status_code", status)
        if upstream:
            span.set_attribute("gateway.upstream.instance", upstream)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
