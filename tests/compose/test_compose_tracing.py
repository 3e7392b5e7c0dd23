"""Zipkin in the compose stack, asked from the host on its published port (make compose-test sets ZIPKIN_PORT): an
order placed through the compose gateway with a known W3C traceparent is one trace there, with spans of the gateway,
order-service (the request and its Kafka sends) and catalog-service (the consume and the outcome it sends)."""

import os

import pytest

from servicekit.testing import eventually
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.e2e.traces import Span, place_traced_order, spans_in_zipkin

pytestmark = pytest.mark.skipif(
    os.environ.get("STACK_UNDER_TEST") != "compose", reason="needs the compose stack: make compose-test"
)


async def test_an_order_placed_with_a_traceparent_is_one_trace_across_gateway_order_and_catalog_service(
    stack_config: StackConfig, gateway: GatewayClient, fresh_products: dict[str, int]
) -> None:
    product = next(iter(fresh_products))
    placed = await place_traced_order(gateway, product, "Traced Compose Buyer")
    trace_id, client_span_id, response = placed.trace_id, placed.client_span_id, placed.response
    assert response.status_code == 201, response.text

    # What each service's part is, by service and span kind: the gateway serves the request, order-service serves
    # it too and sends the order and the stock request, catalog-service consumes the request and sends the outcome.
    expected = {
        ("gateway", "SERVER"),
        ("order-service", "SERVER"),
        ("order-service", "PRODUCER"),
        ("catalog-service", "CONSUMER"),
        ("catalog-service", "PRODUCER"),
    }

    def complete() -> list[Span] | None:
        spans = spans_in_zipkin(f"http://127.0.0.1:{stack_config.number('ZIPKIN_PORT')}", trace_id)
        parts = {(span["localEndpoint"]["serviceName"], span.get("kind")) for span in spans}
        return spans if expected <= parts else None

    spans = await eventually(complete, within=60, interval=1, what=f"trace {trace_id} with {sorted(expected)}")

    assert {span["traceId"] for span in spans} == {trace_id}
    gateway_span = next(span for span in spans if span["localEndpoint"]["serviceName"] == "gateway")
    assert gateway_span["parentId"] == client_span_id, "the gateway continues the client's trace"
