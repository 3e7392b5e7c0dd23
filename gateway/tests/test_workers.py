"""Several worker processes share the port; the supervisor registers and deregisters the gateway."""

import socket
import subprocess
from collections.abc import Callable

import httpx

from servicekit.testing import eventually_blocking

from .health_check import gateway_details

JSON = {"Accept": "application/json"}


def test_workers_share_the_port_and_the_gateway_leaves_discovery_on_sigterm(
    discovery_url: str,
    start_gateway: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    url, process = start_gateway(workers=2)
    instance_id = f"127.0.0.1:gateway:{url.rsplit(':', 1)[1]}"
    registered = f"{discovery_url}/apps/GATEWAY/{instance_id}"
    pids: set[int] = set()
    for _ in range(200):  # new connections, spread over the workers by the kernel
        pids.add(gateway_details(url)["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2
    eventually_blocking(
        lambda: httpx.get(registered, headers=JSON).status_code == 200, within=20, what="gateway registered"
    )

    process.terminate()
    assert process.wait(timeout=15) == 0

    assert httpx.get(registered, headers=JSON).status_code == 404
    try:
        httpx.get(f"{url}/gateway/health_check", timeout=1)
        still_listening = True
    except httpx.ConnectError:
        still_listening = False
    assert not still_listening


def test_idle_client_connections_are_closed(
    start_gateway: Callable[..., tuple[str, subprocess.Popen[bytes]]],
) -> None:
    url, _ = start_gateway(workers=1, GATEWAY_CLIENT_IDLE_SECONDS="0.5")
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(b"GET /gateway/health_check HTTP/1.1\r\nHost: x\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        connection.settimeout(0.05)

        def closed_by_gateway() -> bool:
            try:
                return connection.recv(1) == b""
            except TimeoutError:
                return False

        eventually_blocking(closed_by_gateway, within=20, what="idle connection closed")
