"""The W3C traceparent the gateway sends upstream: the client's trace continued (a new parent id when the gateway
records the request), a new trace when the client brings none or a malformed one; a client's value always written
anew as version 00 with its ids kept, its sampled flag honoured only within a per-worker budget. Spans go to a Zipkin
port nothing listens on: here only headers count."""

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from servicekit.testing import eventually_blocking, free_port

from .health_check import known_instances

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SAMPLED = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
UNSAMPLED = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
# A later version may append fields (W3C): valid, but nothing of the tail is passed on.
LATER_VERSION_WITH_TAIL = f"cc-{CLIENT_TRACE}-{CLIENT_SPAN}-00-" + "x" * 2000
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])")

StartGateway = Callable[..., tuple[str, Any]]


@pytest.fixture(scope="module")
def echo(start_module_instances: Callable[..., object]) -> None:
    start_module_instances("HEADERS", 1)


def gateway_with(start_gateway: StartGateway, **env: str) -> str:
    url, _ = start_gateway(1, ZIPKIN_PORT=str(free_port()), **env)
    eventually_blocking(lambda: known_instances(url, "HEADERS") == 1, within=20, what="the gateway sees HEADERS")
    return url


def sent_upstream(gateway_url: str, traceparent: str | None = None) -> str | None:
    headers = {"traceparent": traceparent} if traceparent is not None else {}
    answer = httpx.get(f"{gateway_url}/headers/x", headers=headers, timeout=10)
    assert answer.status_code == 200
    value: str | None = answer.json()["headers"].get("traceparent")
    return value


def parts(traceparent: str | None) -> tuple[str, str, str]:
    assert traceparent is not None
    found = TRACEPARENT.fullmatch(traceparent)
    assert found is not None, traceparent
    trace_id, span_id, flags = found.groups()
    assert int(trace_id, 16) and int(span_id, 16)
    return trace_id, span_id, flags


@pytest.mark.usefixtures("echo")
def test_a_recording_gateway_continues_the_clients_trace_as_the_parent_of_the_upstream_request(
    start_gateway: StartGateway,
) -> None:
    url = gateway_with(start_gateway, TRACING="on", TRACING_SAMPLE_RATIO="1.0")

    trace_id, span_id, flags = parts(sent_upstream(url, SAMPLED))
    assert (trace_id, flags) == (CLIENT_TRACE, "01")
    assert span_id != CLIENT_SPAN  # the gateway's own span stands between the client and the service

    new_trace, _, new_flags = parts(sent_upstream(url))
    assert new_trace != CLIENT_TRACE and new_flags == "01"
    assert parts(sent_upstream(url, "00-not-a-traceparent"))[2] == "01"

    # A client's "not sampled" wins over the ratio (it costs nothing): its ids passed on, not recorded.
    assert sent_upstream(url, UNSAMPLED) == UNSAMPLED


@pytest.mark.usefixtures("echo")
def test_a_new_trace_left_unsampled_still_tells_the_services_not_to_record(start_gateway: StartGateway) -> None:
    url = gateway_with(start_gateway, TRACING="on", TRACING_SAMPLE_RATIO="0")

    first, second = parts(sent_upstream(url)), parts(sent_upstream(url))
    assert first[2] == second[2] == "00"
    assert first[0] != second[0]  # a trace per request
    # A sampled client trace is recorded within the budget (GATEWAY_CLIENT_SAMPLED_PER_SECOND, 5 by default; was:
    # whatever the ratio, any number of times: see the budget's test below).
    trace_id, span_id, flags = parts(sent_upstream(url, SAMPLED))
    assert (trace_id, flags) == (CLIENT_TRACE, "01") and span_id != CLIENT_SPAN


@pytest.mark.usefixtures("echo")
@pytest.mark.parametrize("tracing", ["on", "off"])
def test_a_clients_sampled_flag_is_honoured_only_within_the_budget(start_gateway: StartGateway, tracing: str) -> None:
    url = gateway_with(
        start_gateway, TRACING=tracing, TRACING_SAMPLE_RATIO="0", GATEWAY_CLIENT_SAMPLED_PER_SECOND="0.5"
    )

    sent = [parts(sent_upstream(url, SAMPLED)) for _ in range(8)]

    assert {trace_id for trace_id, _, _ in sent} == {CLIENT_TRACE}  # the client's id kept, to find its trace by
    assert sent[0][2] == "01"
    # A burst of one, then one more every 2 s at most: the rest are passed on unsampled, as the client sent them.
    assert [flags for _, _, flags in sent].count("01") <= 2
    assert all(span_id == CLIENT_SPAN for _, span_id, flags in sent if flags == "00")


@pytest.mark.usefixtures("echo")
@pytest.mark.parametrize("tracing", ["on", "off"])
def test_a_clients_traceparent_is_written_anew_as_version_00_with_its_ids(
    start_gateway: StartGateway, tracing: str
) -> None:
    url = gateway_with(start_gateway, TRACING=tracing, TRACING_SAMPLE_RATIO="0")

    assert sent_upstream(url, LATER_VERSION_WITH_TAIL) == UNSAMPLED


@pytest.mark.usefixtures("echo")
def test_with_tracing_off_only_a_well_formed_traceparent_passes_and_none_is_added(
    start_gateway: StartGateway,
) -> None:
    url = gateway_with(start_gateway, TRACING="off")

    assert sent_upstream(url, SAMPLED) == SAMPLED
    assert sent_upstream(url) is None
    assert sent_upstream(url, "00-not-a-traceparent") is None
    assert sent_upstream(url, f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01-tail") is None  # version 00 has no tail
