"""Requests through a running gateway to echo instances found in discovery."""

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from servicekit.discovery import DiscoveryClient, ServiceInstance
from servicekit.testing import eventually

from .health_check import gateway_details


def test_round_robin_spreads_evenly_over_two_instances(
    gateway_url: str, start_instances: Callable[..., list[Any]]
) -> None:
    instances = start_instances("RR-TWO", 2)

    with httpx.Client() as client:
        answers = [client.get(f"{gateway_url}/rr-two/ping").json()["instance"] for _ in range(20)]

    assert Counter(answers) == {instance.instance_id: 10 for instance in instances}
    assert all(first != second for first, second in itertools.pairwise(answers))


def test_round_robin_spreads_evenly_over_three_instances(
    gateway_url: str, start_instances: Callable[..., list[Any]]
) -> None:
    instances = start_instances("RR-THREE", 3)

    answers = [httpx.get(f"{gateway_url}/rr-three/ping").json()["instance"] for _ in range(30)]

    assert Counter(answers) == {instance.instance_id: 10 for instance in instances}


@pytest.fixture(scope="module")
def echo(start_module_instances: Callable[..., object]) -> None:
    start_module_instances("HEADERS", 1)


@pytest.mark.usefixtures("echo")
def test_rewrite_path_keeps_query_and_sets_forwarding_headers(gateway_url: str) -> None:

    response = httpx.get(
        f"{gateway_url}/headers/items/7?color=red&size=2",
        headers={"Cookie": "session=secret", "X-Custom": "kept", "X-Forwarded-For": "10.0.0.1"},
    )

    echoed = response.json()
    assert response.status_code == 200
    assert (echoed["path"], echoed["query"]) == ("/items/7", "color=red&size=2")
    assert "cookie" not in echoed["headers"]
    assert echoed["headers"]["x-custom"] == "kept"
    assert echoed["headers"]["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert echoed["headers"]["x-forwarded-proto"] == "http"
    assert echoed["headers"]["x-forwarded-host"] == gateway_url.removeprefix("http://")
    assert response.headers["x-request-id"] == echoed["headers"]["x-request-id"]
    assert response.headers["x-instance-id"] == echoed["instance"]


@pytest.mark.usefixtures("echo")
def test_incoming_request_id_is_passed_on_and_returned(gateway_url: str) -> None:

    response = httpx.get(f"{gateway_url}/headers/x", headers={"X-Request-Id": "trace-123"})

    assert response.headers["x-request-id"] == "trace-123"
    assert response.json()["headers"]["x-request-id"] == "trace-123"


@pytest.mark.usefixtures("echo")
def test_a_request_id_of_64_plain_characters_is_kept(gateway_url: str) -> None:
    plain = "Ab0._-" * 10 + "Zz9-"

    response = httpx.get(f"{gateway_url}/headers/x", headers={"X-Request-Id": plain})

    assert response.headers["x-request-id"] == response.json()["headers"]["x-request-id"] == plain


@pytest.mark.usefixtures("echo")
@pytest.mark.parametrize(
    "client_id", [b"a" * 65, b"a/b", b"<script>", b'a"b', b"a b", b"caf\xe9", b"id,other", b"%0d%0a"]
)
def test_a_request_id_too_long_or_of_other_characters_is_replaced_by_the_gateways(
    gateway_url: str, client_id: bytes
) -> None:
    response = httpx.get(f"{gateway_url}/headers/x", headers={b"X-Request-Id": client_id})

    ours = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", ours), ours
    assert response.json()["headers"]["x-request-id"] == ours


@pytest.mark.usefixtures("echo")
def test_chunked_request_body_is_forwarded_whole(gateway_url: str) -> None:

    def chunks() -> Iterator[bytes]:
        yield b'{"part": 1, '
        yield b'"more": "yes"}'

    response = httpx.post(f"{gateway_url}/headers/upload", content=chunks())

    echoed = response.json()
    assert echoed["body"] == '{"part": 1, "more": "yes"}'
    assert echoed["headers"]["content-length"] == str(len(echoed["body"]))
    assert "transfer-encoding" not in echoed["headers"]


@pytest.mark.usefixtures("echo")
def test_body_over_the_limit_is_413(gateway_url: str, max_body_bytes: int) -> None:

    sized = httpx.post(f"{gateway_url}/headers/upload", content=b"x" * (max_body_bytes + 1))
    chunked = httpx.post(f"{gateway_url}/headers/upload", content=iter([b"x" * max_body_bytes, b"x"]))

    assert (sized.status_code, chunked.status_code) == (413, 413)
    assert "detail" in sized.json() and "detail" in chunked.json()


@pytest.mark.usefixtures("echo")
def test_head_answers_keep_the_connection_usable(gateway_url: str) -> None:
    with httpx.Client() as client:
        proxied = client.head(f"{gateway_url}/headers/x")
        own = client.head(f"{gateway_url}/gateway/health_check")
        after = client.get(f"{gateway_url}/headers/after")

    assert (proxied.status_code, own.status_code) == (200, 200)
    assert proxied.content == b"" and own.content == b""
    assert after.json()["path"] == "/after"


def test_unknown_route_is_404_json(gateway_url: str) -> None:
    response = httpx.get(f"{gateway_url}/no-such-service/x")

    assert response.status_code == 404
    assert "detail" in response.json()


def test_app_without_instances_is_503_json(gateway_url: str) -> None:
    response = httpx.get(f"{gateway_url}/nobody-home/x")

    assert response.status_code == 503
    assert "NOBODY-HOME" in response.json()["detail"]


def test_health_check_tells_anyone_only_that_the_gateway_is_up(gateway_url: str, token_for: Callable[..., str]) -> None:
    for authorization in ({}, {"Authorization": token_for("someone")}, {"Authorization": "Bearer not-a-token"}):
        response = httpx.get(f"{gateway_url}/gateway/health_check", headers=authorization)

        assert response.status_code == 200
        assert response.json() == {"status": "UP"}


def test_health_check_names_the_gateway_and_its_process_to_an_admin(gateway_url: str) -> None:
    details = gateway_details(gateway_url)

    assert (details["status"], details["app"]) == ("UP", "GATEWAY")
    assert details["pid"] > 0 and details["workers"] == 1


async def test_gateway_registers_itself_in_discovery(gateway_url: str, discovery_url: str) -> None:
    reader = DiscoveryClient(discovery_url)
    await reader.start()

    async def registered() -> list[ServiceInstance]:
        await reader.refresh()
        return reader.instances("GATEWAY")

    try:
        # It registers once it serves: a gateway started just before this test may not have yet.
        [gateway] = await eventually(registered, within=20, what="the gateway registered in discovery")
    finally:
        await reader.stop()
    assert gateway.base_url == gateway_url
