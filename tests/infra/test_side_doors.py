"""Prometheus and Zipkin are not side doors for a web page open in a browser on this host: no lifecycle API to stop
Prometheus, and their answers readable cross-origin by the monitor's console only."""

import httpx
import pytest

from launcher import prometheus, services, zipkin
from stack_description.settings import StackConfig

pytestmark = pytest.mark.stack

FOREIGN_ORIGIN = "http://evil.example"


def console_origin(config: StackConfig) -> str:
    return f"http://127.0.0.1:{services.monitor_port(config)}"


def test_prometheus_refuses_its_lifecycle_api(stack_config: StackConfig) -> None:
    # A reload, not a quit: harmless on a Prometheus that still has the API (the test must not stop a shared one).
    answer = httpx.post(f"{prometheus.SERVER.url(stack_config)}/-/reload", timeout=10)
    assert answer.status_code == 403, answer.text
    flags = httpx.get(f"{prometheus.SERVER.url(stack_config)}/api/v1/status/flags", timeout=10).json()["data"]
    assert flags["web.enable-lifecycle"] == "false"


def test_prometheus_answers_are_readable_cross_origin_by_the_console_only(stack_config: StackConfig) -> None:
    buildinfo = f"{prometheus.SERVER.url(stack_config)}/api/v1/status/buildinfo"
    foreign = httpx.get(buildinfo, headers={"Origin": FOREIGN_ORIGIN}, timeout=10)
    assert "access-control-allow-origin" not in foreign.headers
    console = httpx.get(buildinfo, headers={"Origin": console_origin(stack_config)}, timeout=10)
    assert console.headers.get("access-control-allow-origin") == console_origin(stack_config)


def test_zipkin_answers_are_readable_cross_origin_by_the_console_only(stack_config: StackConfig) -> None:
    if not zipkin.tracing_on(stack_config):
        pytest.skip("TRACING=off: no Zipkin")
    services_url = f"{zipkin.SERVER.url(stack_config)}/api/v2/services"
    foreign = httpx.get(services_url, headers={"Origin": FOREIGN_ORIGIN}, timeout=10)
    assert "access-control-allow-origin" not in foreign.headers
    preflight = httpx.options(
        f"{zipkin.SERVER.url(stack_config)}/api/v2/spans",
        headers={
            "Origin": FOREIGN_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    assert "access-control-allow-origin" not in preflight.headers
    console = httpx.get(services_url, headers={"Origin": console_origin(stack_config)}, timeout=10)
    assert console.headers.get("access-control-allow-origin") == console_origin(stack_config)


def test_the_monitor_answers_only_requests_naming_it_by_its_own_host_name(stack_config: StackConfig) -> None:
    # DNS rebinding: a page at attacker.example:8090 whose name now resolves to 127.0.0.1 sends its own name.
    monitor = f"http://127.0.0.1:{services.monitor_port(stack_config)}"
    foreign = httpx.get(f"{monitor}/console/state", headers={"Host": "attacker.example:8090"}, timeout=10)
    assert foreign.status_code == 421, foreign.text[:200]
    assert httpx.get(f"{monitor}/v3/kafka", timeout=10).status_code == 200
    assert httpx.get(f"{monitor}/docs", timeout=10).status_code == 404
