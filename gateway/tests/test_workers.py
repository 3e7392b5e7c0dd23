"""Several worker processes share the port; the supervisor registers and deregisters the gateway."""

import subprocess
from collections.abc import Callable

import httpx

JSON = {"Accept": "application/json"}


def test_workers_share_the_port_and_the_gateway_leaves_discovery_on_sigterm(
    discovery_url: str,
    start_gateway: Callable[..., tuple[str, subprocess.Popen[bytes]]],
    eventually: Callable[..., None],
) -> None:
    url, process = start_gateway(workers=2)
    instance_id = f"127.0.0.1:gateway:{url.rsplit(':', 1)[1]}"
    registered = f"{discovery_url}/apps/GATEWAY/{instance_id}"
    pids: set[int] = set()
    for _ in range(200):  # new connections, spread over the workers by the kernel
        pids.add(httpx.get(f"{url}/gateway/health_check").json()["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2
    eventually("gateway registered", lambda: httpx.get(registered, headers=JSON).status_code == 200)

    process.terminate()
    assert process.wait(timeout=15) == 0

    assert httpx.get(registered, headers=JSON).status_code == 404
    try:
        httpx.get(f"{url}/gateway/health_check", timeout=1)
        still_listening = True
    except httpx.ConnectError:
        still_listening = False
    assert not still_listening
