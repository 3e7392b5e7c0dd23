"""The gateway as an edge: one client cannot take its memory, its connections or its time, and one bad answer or
registry entry cannot hang it. Raw sockets where an HTTP client would be too polite."""

import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_gateway.balancer import is_valid_address
from servicekit.testing import eventually_blocking

from .health_check import known_instances

# The `edge` gateway's limits (conftest.py).
HEAD_TIMEOUT_SECONDS = 1.0
MAX_CLIENTS = 20
MAX_CONNECTIONS_PER_CLIENT = 10
MAX_RESPONSE_BYTES = 4096


def raw_exchange(port: int, payload: bytes, timeout: float = 5.0, source: str = "127.0.0.1") -> bytes:
    """Send `payload` (from the client address `source`) and read until the gateway closes or `timeout`."""
    with connect_from(source, port, timeout) as sock:
        sock.sendall(payload)
        return read_until_closed(sock, timeout)


def connect_from(source: str, port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def worker_rss_bytes(supervisor: subprocess.Popen[bytes]) -> int:
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()
    total = 0
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def edge_instance(url: str, start_instances: Callable[..., list[Any]]) -> None:
    """An EDGE instance, known to the `edge` gateway (start_instances waits for the shared gateway only)."""
    start_instances("EDGE", 1)
    eventually_blocking(
        lambda: known_instances(url, "EDGE") == 1, within=20, what="the edge gateway sees the EDGE instance"
    )


def test_a_url_past_8_kib_is_414(edge: tuple[str, int, Any]) -> None:
    _, port, _ = edge
    answer = raw_exchange(port, b"GET /edge/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 414


def test_a_header_block_past_32_kib_or_past_100_headers_is_431(edge: tuple[str, int, Any]) -> None:
    _, port, _ = edge
    huge = raw_exchange(port, b"GET /edge/x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40_000 + b"\r\n\r\n")
    many = b"".join(b"X-H%d: v\r\n" % n for n in range(150))
    numerous = raw_exchange(port, b"GET /edge/x HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(huge) == 431
    assert status_of(numerous) == 431


def test_an_endless_header_is_refused_before_it_ends(edge: tuple[str, int, Any]) -> None:
    """An 8 MiB header is not read to its end: the gateway answers and stops reading long before."""
    _, port, _ = edge
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /edge/x HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 8 * 1024 * 1024:
                sock.sendall(b"e" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        answer = read_until_closed(sock, 5)
    assert status_of(answer) == 431


def test_a_slow_head_gets_408_within_its_deadline(edge: tuple[str, int, Any]) -> None:
    _, port, _ = edge
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /edge/x HTTP/1.1\r\nHo")
        answer = read_until_closed(sock, 10)
        took = time.monotonic() - started
    assert status_of(answer) == 408
    # The deadline, plus one sweep interval (1 s), plus slack for a loaded machine.
    assert took < HEAD_TIMEOUT_SECONDS + 2.5


def test_connections_past_the_cap_are_refused_and_others_still_served(edge: tuple[str, int, Any]) -> None:
    url, port, _ = edge
    # Two client addresses (all of 127/8 is loopback), so that neither reaches its own cap first.
    held = [connect_from(f"127.0.0.{2 + n % 2}", port) for n in range(MAX_CLIENTS)]
    try:
        # Each held connection has sent nothing yet; the next one, from a third address, is over the cap.
        extra = raw_exchange(port, b"GET /gateway/health_check HTTP/1.1\r\nHost: x\r\n\r\n", source="127.0.0.4")
        assert status_of(extra) == 503
        assert b"too many connections;" in extra
    finally:
        for sock in held:
            sock.close()

    def served() -> bool:
        return httpx.get(f"{url}/gateway/health_check", timeout=2).status_code == 200

    eventually_blocking(served, within=10, what="served again after the held connections closed")


def test_one_client_address_cannot_take_every_connection_slot(edge: tuple[str, int, Any]) -> None:
    _, port, _ = edge
    health = b"GET /gateway/health_check HTTP/1.1\r\nHost: x\r\n\r\n"
    held = [connect_from("127.0.0.5", port) for _ in range(MAX_CONNECTIONS_PER_CLIENT)]
    try:
        same_address = raw_exchange(port, health, source="127.0.0.5")
        other_address = raw_exchange(port, health + health.replace(b"1.1", b"1.0"), source="127.0.0.6")
    finally:
        for sock in held:
            sock.close()
    assert status_of(same_address) == 503
    assert b"too many connections from your address" in same_address
    assert status_of(other_address) == 200


def test_an_upgrade_request_is_answered_once_and_not_proxied(
    edge: tuple[str, int, Any], start_instances: Callable[..., list[Any]]
) -> None:
    url, port, _ = edge
    edge_instance(url, start_instances)
    for method in (b"GET", b"POST"):
        answer = raw_exchange(
            port,
            method + b" /edge/upgrade HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"400"], answer


def read_until(sock: socket.socket, marker: bytes, within: float) -> bytes:
    """What arrives until `marker` has, or the gateway closes, or `within` seconds pass."""
    received = b""
    deadline = time.monotonic() + within
    while marker not in received and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        received += chunk
    return received


def test_expect_100_continue_is_answered_only_after_the_token_is_checked(
    edge: tuple[str, int, Any], start_instances: Callable[..., list[Any]], token_for: Callable[..., str]
) -> None:
    url, port, _ = edge
    edge_instance(url, start_instances)
    order = b'{"productId": "P-1", "qty": 1}'
    head = b"POST /order-service/u-1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n"
    refused = raw_exchange(port, head % len(order) + b"\r\n")
    with connect_from("127.0.0.1", port) as sock:
        sock.sendall(head % len(order) + b"Authorization: %s\r\n\r\n" % token_for("u-1").encode())
        allowed = read_until(sock, b"\r\n\r\n", within=5)
    with connect_from("127.0.0.1", port) as sock:
        sock.sendall(b"POST /edge/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        went_on = read_until(sock, b"\r\n\r\n", within=5)
        sock.sendall(b"hello")
        echoed = read_until(sock, b'"body": "hello"}', within=5)
    assert status_of(refused) == 401, refused
    assert b"100 Continue" not in refused
    assert allowed == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert went_on == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert status_of(echoed) == 200 and echoed.endswith(b'"body": "hello"}'), echoed


# What the SCRIPTED instance answers, by path; the route strips /scripted.
SCRIPTED_ANSWERS = {
    b"/early-hints": b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-real: yes\r\n\r\nfinal",
    b"/switch": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"/hop-by-hop": b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
    b"Keep-Alive: timeout=5\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\nProxy-Status: x\r\nTrailer: X-T\r\n"
    b"TE: trailers\r\nX-Kept: 1\r\n\r\nok",
    b"/moved/": b"HTTP/1.1 307 Temporary Redirect\r\ncontent-length: 0\r\nLocation: http://127.0.0.1:{port}/moved?a=1\r\n\r\n",
    b"/elsewhere-internal": b"HTTP/1.1 302 Found\r\ncontent-length: 0\r\nLocation: http://127.0.0.2:9/x\r\n\r\n",
    b"/outside": b"HTTP/1.1 302 Found\r\ncontent-length: 0\r\nLocation: https://example.com/x\r\n\r\n",
}


@pytest.fixture(scope="module")
def scripted(edge: tuple[str, int, Any], scripted_upstream: Callable[..., Any]) -> str:
    """The edge gateway's URL, with a SCRIPTED instance known to it."""
    url, _, _ = edge
    scripted_upstream("SCRIPTED", SCRIPTED_ANSWERS)
    eventually_blocking(
        lambda: known_instances(url, "SCRIPTED") == 1, within=20, what="the edge gateway sees the SCRIPTED instance"
    )
    return url


def test_an_upstream_1xx_is_not_the_answer_and_a_101_is_502(scripted: str) -> None:
    early = httpx.get(f"{scripted}/scripted/early-hints", timeout=5)
    switched = httpx.get(f"{scripted}/scripted/switch", timeout=5)
    assert (early.status_code, early.text, early.headers.get("x-real")) == (200, "final", "yes")
    assert "link" not in early.headers
    assert switched.status_code == 502
    assert "upgrade" not in switched.headers


def test_hop_by_hop_headers_of_an_upstream_answer_are_not_passed_on(scripted: str) -> None:
    answer = httpx.get(f"{scripted}/scripted/hop-by-hop", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["x-kept"] == "1"
    passed = {"connection", "x-hop", "keep-alive", "upgrade", "proxy-authenticate", "proxy-status", "trailer", "te"}
    assert passed & set(answer.headers) == set(), answer.headers


def test_a_location_at_the_instance_is_rewritten_to_the_gateway_and_other_internal_ones_dropped(scripted: str) -> None:
    moved = httpx.get(f"{scripted}/scripted/moved/", timeout=5)
    internal = httpx.get(f"{scripted}/scripted/elsewhere-internal", timeout=5)
    outside = httpx.get(f"{scripted}/scripted/outside", timeout=5)
    assert (moved.status_code, moved.headers["location"]) == (307, "/scripted/moved?a=1")
    assert internal.status_code == 302 and "location" not in internal.headers
    assert outside.headers["location"] == "https://example.com/x"


def test_an_upstream_answer_past_the_cap_is_502(
    edge: tuple[str, int, Any], start_instances: Callable[..., list[Any]]
) -> None:
    url, _, _ = edge
    edge_instance(url, start_instances)
    small = httpx.post(f"{url}/edge/echo", content=b"s" * 100, timeout=10)
    large = httpx.post(f"{url}/edge/echo", content=b"l" * (MAX_RESPONSE_BYTES * 2), timeout=10)
    assert small.status_code == 200
    assert large.status_code == 502
    assert "answered more" in large.json()["detail"]


def test_a_client_that_pipelines_and_never_reads_is_paused_and_others_are_served(
    edge: tuple[str, int, subprocess.Popen[bytes]], start_instances: Callable[..., list[Any]]
) -> None:
    url, port, supervisor = edge
    edge_instance(url, start_instances)
    before = worker_rss_bytes(supervisor)
    request = b"GET /edge/pipelined HTTP/1.1\r\nHost: x\r\n\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=3) as greedy:
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            while sent < 64 * 1024 * 1024:
                greedy.sendall(request * 256)
                sent += len(request) * 256
        except TimeoutError:
            pass  # the gateway stopped reading: what the test wants
        grown = worker_rss_bytes(supervisor) - before
        other = httpx.get(f"{url}/gateway/health_check", timeout=5)
    assert sent < 64 * 1024 * 1024, "the gateway kept reading from a client that reads nothing"
    assert grown < 32 * 1024 * 1024, f"the worker grew by {grown / 2**20:.1f} MiB for {sent / 2**20:.1f} MiB sent"
    assert other.status_code == 200


def test_a_post_whose_header_value_says_idempotency_key_is_not_retried(
    gateway_url: str, start_instances: Callable[..., list[Any]]
) -> None:
    """Only a header NAMED Idempotency-Key makes a POST retryable; a value that reads so does not."""
    start_instances("SLOW-POST", 1, SLEEP_SECONDS="5")
    start_instances("SLOW-POST", 1)
    with httpx.Client(timeout=10) as client:
        answers = [
            client.post(f"{gateway_url}/slow-post/orders", json={}, headers={"X-Note": "idempotency-key"})
            for _ in range(2)
        ]
    # Round robin sends one of the two to the slow instance: that one times out and is not sent again.
    assert sorted(a.status_code for a in answers) == [200, 504]


def test_a_rate_limited_route_answers_429_with_retry_after_past_its_burst(
    gateway_url: str, start_instances: Callable[..., list[Any]]
) -> None:
    start_instances("LIMITED", 1)
    with httpx.Client(timeout=5) as client:
        answers = [client.get(f"{gateway_url}/limited/x") for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[3].status_code == 429
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 5
    assert "too many requests" in answers[3].json()["detail"]


@pytest.mark.unit
def test_malformed_registry_addresses_are_never_routed_to() -> None:
    assert is_valid_address("127.0.0.1", 8080)
    assert is_valid_address("order-service-1", 8080)
    assert not is_valid_address("a" * 64 + ".example", 8080)
    assert not is_valid_address("127.0.0.1", 70000)
    assert not is_valid_address("127.0.0.1", 0)
    assert not is_valid_address("bad host", 80)
    assert not is_valid_address("x" * 254, 80)


def test_unusable_instances_cost_at_most_their_deadlines(
    discovery_url: str,
    register_at: Callable[..., str],
    start_gateway: Callable[..., tuple[str, Any]],
    start_instances: Callable[..., list[Any]],
) -> None:
    """A name that does not resolve and an address that accepts but never answers, both allowed: every request is
    answered by the good instance, each within the connect and read deadlines (1 s each here)."""
    url, _ = start_gateway(1, GATEWAY_UPSTREAM_ALLOW='["127.0.0.0/8", "no-such-host.invalid"]')
    (good,) = start_instances("ELSEWHERE", 1)
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:
        unresolvable = register_at(discovery_url, "ELSEWHERE", "no-such-host.invalid", 8080)
        mute = register_at(discovery_url, "ELSEWHERE", "127.0.0.1", silent.getsockname()[1])
        try:
            eventually_blocking(
                lambda: known_instances(url, "ELSEWHERE") == 3, within=20, what="the gateway sees all three instances"
            )
            timings = []
            for _ in range(6):
                started = time.monotonic()
                answer = httpx.get(f"{url}/elsewhere/x", timeout=10)
                timings.append(time.monotonic() - started)
                assert answer.status_code == 200
                assert answer.json()["instance"] == good.instance_id
        finally:
            httpx.delete(f"{discovery_url}/apps/ELSEWHERE/{unresolvable}")
            httpx.delete(f"{discovery_url}/apps/ELSEWHERE/{mute}")
    assert max(timings) < 1.0 + 1.0 + 1.0, timings


def test_pipelined_requests_answered_at_once_are_all_answered(gateway_url: str) -> None:
    """2,000 pipelined requests to an app without instances: each gets its 503 in order, on one connection
    (answers given inline once grew the stack per queued request until it overflowed)."""
    port = int(gateway_url.rsplit(":", 1)[1])
    count = 2000
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /nobody-home/x HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        received = b""
        deadline = time.monotonic() + 30
        while received.count(b"HTTP/1.1 ") < count and time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += chunk
    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]
    assert statuses == [503] * count
