"""The gateway's part of a trace: accept the client's W3C `traceparent` or start a trace, send it upstream, and record
a SERVER span for the requests whose trace is sampled.

Kept off the hot path's cost: an unsampled request costs a header parse or two random numbers and one formatted
header line, no SDK object; only sampled requests (TRACING_SAMPLE_RATIO of new traces, or of client traces past the
budget below) create a span, which the SDK's batch processor sends to Zipkin from its own thread.

The gateway is the edge, so a client's trace context is taken as a hint (the W3C spec's advice for a public edge):
its trace id is kept, so the client finds its request's trace, but the header is always written anew as version 00,
never passed on as it came, and its sampled flag is honoured only a few times a second per worker
(GATEWAY_CLIENT_SAMPLED_PER_SECOND); past that the ratio decides, so no client can have every request recorded.
The services behind follow the gateway's decision.
"""

import math
import random
import time

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from api_gateway.config import GatewaySettings
from servicekit import tracing

_random = random.random
_bits = random.getrandbits
_TRACE_LINE = b"traceparent: 00-%032x-%016x-%02x\r\n"


class SampledBudget:
    """A token bucket: `per_second` takes a second on average, at most that many (one at least) in a burst."""

    def __init__(self, per_second: float) -> None:
        self.per_second = max(0.0, per_second)
        self.burst = float(max(1, math.ceil(self.per_second))) if self.per_second > 0 else 0.0
        self.tokens = self.burst
        self.updated = time.monotonic()

    def take(self) -> bool:
        if self.per_second == 0:
            return False
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class GatewayTracing:
    """One per worker process. Off (a valid client traceparent passed on, written anew) unless made by `start`."""

    def __init__(self, ratio: float = 0.0, enabled: bool = False, client_sampled_per_second: float = 0.0) -> None:
        self.enabled = enabled
        self.ratio = ratio
        self.client_sampled = SampledBudget(client_sampled_per_second)

    @classmethod
    def start(cls, settings: GatewaySettings) -> "GatewayTracing":
        """Sets the SDK up in this process when TRACING=on. It samples every span the gateway starts: the gateway
        has decided before it starts one."""
        enabled = tracing.configure(settings, "GATEWAY", settings.instance_id)
        return cls(settings.tracing_sample_ratio, enabled, settings.gateway_client_sampled_per_second)

    def begin(self, incoming: bytes | None, method: str, template: str) -> tuple[bytes, Span | None]:
        """The `traceparent` header line to send upstream, and the request's span when its trace is sampled."""
        parent = tracing.parse_traceparent(incoming.decode("latin-1")) if incoming else None
        if not self.enabled:
            # Tracing off here does not break a trace the client runs, but only a well-formed one passes, and its
            # sampled flag within the budget alone: the services behind may record.
            if parent is None:
                return b"", None
            sampled = parent.trace_flags.sampled and self.client_sampled.take()
            return _TRACE_LINE % (parent.trace_id, parent.span_id, sampled), None
        if parent is None:
            if _random() >= self.ratio:
                # A new trace, not sampled: ids the services pass on, with the flag that tells them not to record.
                return _TRACE_LINE % (_bits(128) or 1, _bits(64) or 1, 0), None
        elif not parent.trace_flags.sampled or (_random() >= self.ratio and not self.client_sampled.take()):
            # Not recorded (the client's choice, or its flag past the budget and not drawn): the services see the
            # decision and record nothing either; the client's ids stay for correlation.
            return _TRACE_LINE % (parent.trace_id, parent.span_id, 0), None
        span = tracing.tracer().start_span(
            f"{method} {template}",
            context=tracing.context_with_parent(parent) if parent is not None else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": template},
        )
        return b"traceparent: %s\r\n" % tracing.traceparent(span.get_span_context()).encode(), span

    @staticmethod
    def end(span: Span, status: int, upstream: str) -> None:
        # One call, not one per attribute: each takes the span's lock.
        if upstream:
            span.set_attributes({"http.response.status_code": status, "gateway.upstream.instance": upstream})
        else:
            span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
