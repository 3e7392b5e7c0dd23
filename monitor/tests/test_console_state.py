"""The console's state gathering: how each source's answer is shaped, and that a source that is down or slow
becomes a section marked down while the rest is still served (no stack: the sources are unreachable ports)."""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from servicekit.discovery import instances_from_registry
from stack_monitor import console
from stack_monitor.config import MonitorSettings
from stack_monitor.history import LagHistory, OffsetSnapshot, Partition
from stack_monitor.main import create_app

pytestmark = pytest.mark.unit

# Port 9 (discard) on loopback: nothing listens, so every request is refused at once.
NOWHERE = 9


def registry_document() -> dict[str, Any]:
    """Eureka's JSON /apps answer: one app with a single instance collapsed to an object, one with two."""

    def entry(instance_id: str, port: int, status: str = "UP") -> dict[str, Any]:
        return {
            "instanceId": instance_id,
            "ipAddr": "127.0.0.1",
            "port": {"$": port, "@enabled": "true"},
            "status": status,
        }

    return {
        "applications": {
            "application": [
                {"name": "CATALOG-SERVICE", "instance": entry("catalog-service-1", 4101)},
                {
                    "name": "ORDER-SERVICE",
                    "instance": [entry("order-service-2", 4202, "DOWN"), entry("order-service-1", 4201)],
                },
            ]
        }
    }


def test_instances_are_listed_per_app_with_their_status() -> None:
    apps = console.apps_of(instances_from_registry(registry_document()))

    assert [app.app for app in apps] == ["CATALOG-SERVICE", "ORDER-SERVICE"]
    orders = apps[1].instances
    assert [(i.instance_id, i.port, i.status) for i in orders] == [
        ("order-service-1", 4201, "UP"),
        ("order-service-2", 4202, "DOWN"),
    ]


def test_order_rates_join_the_rate_and_the_accepted_count_per_instance() -> None:
    def vector(values: dict[str, str]) -> dict[str, Any]:
        result = [{"metric": {"instance": i}, "value": [1796000000.0, v]} for i, v in values.items()]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    rates = console.vector_by_instance(vector({"order-service-1": "2.5"}))
    accepted = console.vector_by_instance(vector({"order-service-1": "120", "order-service-2": "7"}))
    out = console.order_rates_of(rates, accepted)

    assert [(i.instance, i.per_second, i.accepted) for i in out.instances] == [
        ("order-service-1", 2.5, 120),
        ("order-service-2", 0.0, 7),  # not scraped long enough for a rate yet
    ]
    assert out.accepted_total == 127


def test_a_failed_prometheus_query_is_an_error_not_an_empty_answer() -> None:
    with pytest.raises(ValueError, match="parse error"):
        console.vector_by_instance({"status": "error", "errorType": "bad_data", "error": "parse error"})


def test_connectors_show_their_state_and_each_task_with_the_first_line_of_its_failure() -> None:
    answer = {
        "orders-sink": {
            "status": {
                "name": "orders-sink",
                "type": "sink",
                "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8083"},
                "tasks": [
                    {
                        "id": 1,
                        "state": "FAILED",
                        "worker_id": "127.0.0.1:8083",
                        "trace": "java.sql.SQLException: gone\n\tat",
                    },
                    {"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:8083"},
                ],
            }
        }
    }

    (sink,) = console.connectors_of(answer)

    assert (sink.name, sink.type, sink.state) == ("orders-sink", "sink", "RUNNING")
    assert [(t.id, t.state, t.error) for t in sink.tasks] == [
        (0, "RUNNING", None),
        (1, "FAILED", "java.sql.SQLException: gone"),
    ]


def test_groups_and_end_offsets_come_from_the_monitors_own_history() -> None:
    history = LagHistory("local", window=3, allowed_lag=1)
    now_ms = int(time.time() * 1000)
    p0, p1 = Partition("orders", 0), Partition("orders", 1)
    for n in range(3):
        committed = {p0: 10 + n, p1: 50}  # p1 never moves while records keep coming: STOP
        ends = {p0: 11 + n, p1: 60 + n}
        history.record(OffsetSnapshot(now_ms - (3 - n) * 1000, frozenset({"sink"}), {"sink": committed}, ends))

    groups = console.groups_of(history, now_ms)
    (topic,) = console.topics_of(history)

    (sink,) = groups.groups
    assert (sink.group, sink.status, sink.totallag) == ("sink", "ERR", 1 + 12)
    assert [(p.partition, p.status, p.lag) for p in sink.partitions] == [(0, "OK", 1), (1, "STOP", 12)]
    assert groups.last_poll_ms == now_ms - 1000
    assert (topic.topic, topic.end_offset_total) == ("orders", 13 + 62)
    assert [(p.partition, p.end_offset) for p in topic.partitions] == [(0, 13), (1, 62)]


def test_order_counts_name_every_status_of_the_lifecycle() -> None:
    assert console.order_counts([("CONFIRMED", 5), ("PENDING", 1)]) == {
        "PENDING": 1,
        "CONFIRMED": 5,
        "REJECTED": 0,
        "EXPIRED": 0,
    }


def test_an_orders_trace_link_searches_zipkin_by_its_tag_around_its_time() -> None:
    created_ms = 1_796_000_000_000
    url = console.traces_url("http://127.0.0.1:9411", order_id="o-1", created_at_ms=created_ms, tag="order.id")
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}

    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "http://127.0.0.1:9411/zipkin/"
    assert query["serviceName"] == "order-service" and query["annotationQuery"] == "order.id=o-1"
    assert int(query["endTs"]) - int(query["millis"]) < created_ms < int(query["endTs"])
    assert query["lookback"] == "millis" and query["limit"]


def test_without_a_tag_the_link_searches_order_service_around_the_orders_time() -> None:
    url = console.traces_url("http://127.0.0.1:9411", order_id="o-1", created_at_ms=1_796_000_000_000, tag="")
    assert "annotationQuery" not in parse_qs(urlsplit(url).query)
    assert "serviceName=order-service" in url


class ZipkinTraces:
    """Zipkin's /api/v2/traces for a set of traced orders (in process), counting what it is asked."""

    def __init__(self, traced: dict[str, str]) -> None:
        self.asked: list[str] = []
        self.app = FastAPI()

        @self.app.get("/api/v2/traces")
        async def traces(annotationQuery: str) -> list[list[dict[str, Any]]]:  # Zipkin names it so
            order_id = annotationQuery.split("=", 1)[1]
            self.asked.append(order_id)
            found = traced.get(order_id)
            return [[{"traceId": found, "name": "send orders"}]] if found else []


async def test_an_orders_trace_is_found_by_its_tag_once_and_remembered() -> None:
    zipkin = ZipkinTraces({"o-traced": "abc123"})
    now_ms = int(time.time() * 1000)
    old_ms = now_ms - console.TRACE_GIVE_UP_MS - 1000
    orders = {"o-traced": now_ms, "o-young": now_ms, "o-unsampled": old_ms}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=zipkin.app), base_url="http://zipkin") as http:
        finder = console.TraceFinder(http, "http://zipkin", "messaging.kafka.message.key", 1.0)
        assert finder.find(orders) == {}  # asked in the background: nothing known yet
        await finder.settled()
        first = finder.find(orders)
        await finder.settled()
        second = finder.find(orders)
        await finder.settled()

    assert first == second == {"o-traced": "abc123"}
    # Found and not-sampled orders are asked once; one whose spans may still come is asked at every refresh.
    assert sorted(zipkin.asked) == ["o-traced", "o-unsampled", "o-young", "o-young", "o-young"]
    links = {order_id: finder.link(order_id, orders[order_id], first) for order_id in orders}
    assert links["o-traced"]["traces_url"] == "http://zipkin/zipkin/traces/abc123"
    elsewhere = console.TraceFinder(http, "http://zipkin", "messaging.kafka.message.key", 1.0, "http://127.0.0.1:1")
    assert elsewhere.link("o-traced", now_ms, first)["traces_url"] == "http://127.0.0.1:1/zipkin/traces/abc123"
    assert [links[o]["trace"] for o in orders] == ["found", "looking", "not sampled"]
    assert "annotationQuery" in links["o-young"]["traces_url"]
    assert "annotationQuery" not in links["o-unsampled"]["traces_url"]


async def test_without_a_tag_no_trace_is_looked_up() -> None:
    zipkin = ZipkinTraces({"o-1": "abc"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=zipkin.app), base_url="http://zipkin") as http:
        finder = console.TraceFinder(http, "http://zipkin", "", 1.0)
        assert finder.find({"o-1": 0}) == {}
        await finder.settled()
    assert zipkin.asked == [] and finder.link("o-1", 0, {})["trace"] == "off"


async def test_a_slow_source_is_down_after_its_timeout_and_a_failing_one_names_its_error() -> None:
    async def slow() -> int:
        await asyncio.sleep(5)
        return 1

    async def failing() -> int:
        raise ConnectionError("refused")

    async def quick() -> int:
        return 7

    started = time.perf_counter()
    late, broken, fine = await asyncio.gather(
        console.section(slow(), 0.2), console.section(failing(), 0.2), console.section(quick(), 0.2)
    )

    assert time.perf_counter() - started < 2
    assert not late.up and late.error == "no answer within 0.2 s"
    assert not broken.up and broken.error == "ConnectionError: refused"
    assert fine.up and fine.data == 7


async def test_one_sections_timeout_does_not_cancel_the_registry_answer_another_section_waits_for() -> None:
    async def slow_registry() -> dict[str, list[Any]]:
        await asyncio.sleep(0.3)
        return {}

    sources = console.Console(offline_settings())
    registry = asyncio.create_task(slow_registry())
    try:
        impatient, patient = await asyncio.gather(
            console.section(sources._instances(registry), 0.1), console.section(sources._instances(registry), 2.0)
        )
    finally:
        await sources.close()
    assert not impatient.up and patient.up and patient.data == []


def offline_settings() -> MonitorSettings:
    return MonitorSettings(
        instance_id="monitor-console-test",
        discovery_url=f"http://127.0.0.1:{NOWHERE}/eureka",
        prometheus_port=NOWHERE,
        connect_url=f"http://127.0.0.1:{NOWHERE}",
        db_user="",
        db_password="",
        console_timeout_seconds=1.0,
    )


@pytest.fixture
def history() -> LagHistory:
    history = LagHistory("local", window=10, allowed_lag=1)
    p0 = Partition("example-catalog-topic", 0)
    history.record(OffsetSnapshot(int(time.time() * 1000), frozenset({"catalog"}), {"catalog": {p0: 5}}, {p0: 6}))
    return history


async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090") as http:
            yield http


@pytest.fixture
async def offline(history: LagHistory) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_of(create_app(offline_settings(), history=history, poll=False)):
        yield http


async def test_with_every_source_down_the_state_still_answers_and_says_what_is_down(
    offline: httpx.AsyncClient,
) -> None:
    response = await offline.get("/console/state")

    assert response.status_code == 200
    state = response.json()
    for name in ("instances", "order_rates", "connectors", "orders", "stock", "audit"):
        assert state[name]["up"] is False and state[name]["error"], name
    assert state["orders"]["error"].startswith("no database account")
    assert state["groups"]["up"] and state["groups"]["data"]["groups"][0]["group"] == "catalog"
    assert state["topics"]["data"][0]["topic"] == "example-catalog-topic"
    assert state["links"]["prometheus"] == f"http://127.0.0.1:{NOWHERE}"


async def test_the_pages_links_point_where_a_browser_finds_prometheus_and_zipkin_when_that_is_elsewhere(
    history: LagHistory,
) -> None:
    """In compose the monitor asks `prometheus:9090` and `zipkin:9411`; the browser on the host knows neither name
    and follows the ports compose publishes."""
    settings = offline_settings().model_copy(
        update={
            "prometheus_host": "prometheus",
            "zipkin_host": "zipkin",
            "zipkin_port": 9411,
            "console_prometheus_url": "http://127.0.0.1:19090",
            "console_zipkin_url": "http://127.0.0.1:19411/",
        }
    )
    app = create_app(settings, history=history, poll=False)
    async for http in client_of(app):
        links = (await http.get("/console/state")).json()["links"]
        sources = app.state.console
        assert (sources.prometheus, sources.zipkin) == (f"http://prometheus:{NOWHERE}", "http://zipkin:9411")
    assert links["prometheus"] == "http://127.0.0.1:19090"
    assert links["zipkin"] == "http://127.0.0.1:19411/zipkin/"
    assert links["order_traces"].startswith("http://127.0.0.1:19411/zipkin/?")


async def test_the_audit_section_holds_the_verdict_the_apps_own_audit_endpoint_answers() -> None:
    auditor = FastAPI()

    @auditor.get("/audit")
    async def audit() -> dict[str, Any]:
        return {"consistent": True, "counts": {}}

    sources = console.Console(offline_settings())
    try:
        section = await console.section(sources.audit(auditor), 1.0)
    finally:
        await sources.close()
    assert section.up and section.data == {"consistent": True, "counts": {}}


def test_without_an_audit_endpoint_or_with_the_auditor_off_the_audit_is_not_available() -> None:
    request = httpx.Request("GET", "http://monitor/audit")
    missing = httpx.Response(404, json={"detail": "Not Found"}, request=request)
    off = httpx.Response(503, json={"detail": "the auditor is off"}, request=request)

    with pytest.raises(LookupError, match="no /audit"):
        console.audit_of(missing)
    with pytest.raises(LookupError, match="the auditor is off"):
        console.audit_of(off)
    assert console.audit_of(httpx.Response(200, json={"consistent": False}, request=request)) == {"consistent": False}


async def test_the_page_is_served_at_the_root_with_everything_inline(offline: httpx.AsyncClient) -> None:
    response = await offline.get("/")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'fetch("/console/state"' in page
    # Served by the monitor alone: no script, style or font from anywhere else.
    assert "<script src" not in page and '<link rel="stylesheet"' not in page and "@import" not in page


async def test_the_registry_comes_from_the_next_discovery_server_when_the_first_does_not_answer() -> None:
    """DISCOVERY_URL may list peers: the console reads the first that answers."""
    document = json.dumps(registry_document()).encode()

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path == "/eureka/apps" else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = offline_settings()
    settings.discovery_url = f"http://127.0.0.1:{NOWHERE}/eureka,http://127.0.0.1:{server.server_port}/eureka"
    sources = console.Console(settings)
    try:
        registry = await sources._registry()
    finally:
        await sources.close()
        server.shutdown()
        server.server_close()
    assert registry == instances_from_registry(registry_document())
    assert registry
