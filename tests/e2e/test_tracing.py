"""Tracing for real: an order placed through the gateway with a known W3C traceparent is one trace in Zipkin, from
the gateway through order-service and Kafka to catalog-service and the outcome it publishes."""

import os

import pytest

from launcher import zipkin
from servicekit.config import TracingSettings
from servicekit.testing import eventually
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.e2e.traces import Span, new_sampled_trace, place_traced_order, spans_in_zipkin

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        os.environ.get("STACK_UNDER_TEST") == "compose",
        reason="native only; compose: tests/compose/test_compose_tracing.py",
    ),
    pytest.mark.skipif(not TracingSettings().tracing, reason="TRACING=off: the stack records no spans"),
]


def one(spans: list[Span], service: str, kind: str, name: str) -> Span | None:
    found = [
        span
        for span in spans
        if span["localEndpoint"]["serviceName"] == service and span.get("kind") == kind and span["name"] == name
    ]
    assert len(found) <= 1, f"more than one {kind} span {name!r} of {service}: {found}"
    return found[0] if found else None


async def test_an_order_placed_with_a_traceparent_is_one_trace_from_the_gateway_to_catalog_service_outcome(
    stack_config: StackConfig, gateway: GatewayClient, fresh_products: dict[str, int]
) -> None:
    product = next(iter(fresh_products))
    placed = await place_traced_order(gateway, product, "Traced Buyer")
    trace_id, client_span_id, response = placed.trace_id, placed.client_span_id, placed.response
    assert response.status_code == 201, response.text
    order_id = response.json()["orderId"]

    expected = {
        "gateway": ("gateway", "SERVER", "post /order-service/{userid}/**"),
        "order_request": ("order-service", "SERVER", "post /{user_id}/orders"),
        "send_order": ("order-service", "PRODUCER", "send orders"),
        "send_stock_request": ("order-service", "PRODUCER", "send example-catalog-topic"),
        "process_stock_request": ("catalog-service", "CONSUMER", "process example-catalog-topic"),
        "send_outcome": ("catalog-service", "PRODUCER", "send orders"),
    }

    def whole_trace() -> dict[str, Span] | None:
        spans = spans_in_zipkin(zipkin.SERVER.url(stack_config), trace_id)
        found = {part: one(spans, *what) for part, what in expected.items()}
        complete = {part: span for part, span in found.items() if span is not None}
        return complete if len(complete) == len(expected) else None

    # Spans reach Zipkin within a second of ending (each process's batch exporter); the outcome follows the order
    # through Kafka and catalog-service's next poll.
    trace = await eventually(whole_trace, within=60, what=f"trace {trace_id} complete in Zipkin: {sorted(expected)}")

    assert {span["traceId"] for span in trace.values()} == {trace_id}
    # One tree: the client's span -> the gateway -> order-service's request -> each record's send; catalog-service's
    # process span is a child of the stock request's send (the creation context in the record's headers), and the
    # outcome's send is a child of that.
    assert trace["gateway"]["parentId"] == client_span_id
    assert trace["order_request"]["parentId"] == trace["gateway"]["id"]
    assert trace["send_order"]["parentId"] == trace["order_request"]["id"]
    assert trace["send_stock_request"]["parentId"] == trace["order_request"]["id"]
    assert trace["process_stock_request"]["parentId"] == trace["send_stock_request"]["id"]
    assert trace["send_outcome"]["parentId"] == trace["process_stock_request"]["id"]

    # The records are the order's: keys and topics as OpenTelemetry's messaging conventions name them.
    assert trace["send_order"]["tags"]["messaging.kafka.message.key"] == order_id
    assert trace["send_stock_request"]["tags"]["messaging.kafka.message.key"] == product
    assert trace["send_outcome"]["tags"]["messaging.kafka.message.key"] == order_id
    for part in ("send_order", "send_stock_request", "process_stock_request", "send_outcome"):
        assert trace[part]["tags"]["messaging.system"] == "kafka"
    assert trace["process_stock_request"]["tags"]["messaging.consumer.group.name"]
    assert trace["gateway"]["tags"]["http.response.status_code"] == "201"
    assert trace["order_request"]["tags"]["service.instance.id"] == response.headers["X-Instance-Id"]


async def test_the_statements_of_a_traced_read_are_in_its_trace_under_the_request(
    stack_config: StackConfig, gateway: GatewayClient
) -> None:
    """order-service's query of a user's orders is a CLIENT span, a child of the request's SERVER span
    (servicekit.tracing.instrument_engine)."""
    user = await gateway.sign_up("Traced Reader")
    trace_id, _, traceparent = new_sampled_trace()
    response = await gateway.http.get(
        f"/order-service/{user.user_id}/orders", headers={**user.auth, "traceparent": traceparent}
    )
    assert response.status_code == 200, response.text

    def statements() -> list[Span] | None:
        spans = spans_in_zipkin(zipkin.SERVER.url(stack_config), trace_id)
        request = one(spans, "order-service", "SERVER", "get /{user_id}/orders")
        if request is None:
            return None
        found = [
            span
            for span in spans
            if span["localEndpoint"]["serviceName"] == "order-service"
            and span.get("kind") == "CLIENT"
            and span.get("parentId") == request["id"]
        ]
        return found or None

    sql = await eventually(statements, within=60, what=f"order-service's statements in trace {trace_id}")
    assert {span["tags"].get("db.system.name") for span in sql} == {"mariadb"}, sql
