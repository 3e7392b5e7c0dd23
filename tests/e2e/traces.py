"""What the tracing tests share, native and compose: an order placed with a traceparent of the test's own, and the
spans Zipkin holds for a trace."""

import os
from dataclasses import dataclass
from typing import Any

import httpx

from stack_support.api_client import GatewayClient

Span = dict[str, Any]


@dataclass(frozen=True)
class TracedOrder:
    trace_id: str
    client_span_id: str  # the span the test plays as the client: the gateway's span must be its child
    response: httpx.Response


def new_sampled_trace() -> tuple[str, str, str]:
    """A new trace as a client starts one: its trace id, the client's span id, and the sampled `traceparent`."""
    trace_id, client_span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, client_span_id, f"00-{trace_id}-{client_span_id}-01"


async def place_traced_order(gateway: GatewayClient, product: str, buyer: str) -> TracedOrder:
    """A new user orders one `product` through the gateway with a sampled traceparent of a new trace."""
    user = await gateway.sign_up(buyer)
    trace_id, client_span_id, traceparent = new_sampled_trace()
    response = await gateway.http.post(
        f"/order-service/{user.user_id}/orders",
        json={"productId": product, "qty": 1},
        headers={**user.auth, "traceparent": traceparent},
    )
    return TracedOrder(trace_id, client_span_id, response)


def spans_in_zipkin(zipkin_url: str, trace_id: str) -> list[Span]:
    """The trace's spans as Zipkin holds them now (none yet: empty)."""
    answer = httpx.get(f"{zipkin_url}/api/v2/trace/{trace_id}", timeout=5)
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    spans: list[Span] = answer.json()
    return spans
