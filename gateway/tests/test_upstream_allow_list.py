"""Instances registered at an address outside the upstream allow-list get no traffic."""

from collections.abc import Callable
from typing import Any

import httpx

from servicekit.testing import eventually_blocking

from .health_check import gateway_details


def test_an_instance_outside_the_allow_list_gets_no_traffic(
    gateway_url: str,
    discovery_url: str,
    register_at: Callable[..., str],
    start_instances: Callable[..., list[Any]],
) -> None:
    (local,) = start_instances("ELSEWHERE", 1)
    (decoy,) = start_instances("HEADERS", 1)
    # Registered by name ("localhost" is not in the loopback-CIDR allow-list) at a live instance: were it used,
    # answers would come from the decoy. No traffic leaves the machine either way.
    outsider = register_at(discovery_url, "ELSEWHERE", "localhost", decoy.port)
    try:

        def refused() -> bool:
            not_allowed: dict[str, int] = gateway_details(gateway_url)["notAllowed"]
            return not_allowed.get("ELSEWHERE") == 1

        eventually_blocking(refused, within=20, what="the gateway sees the outsider and refuses it")
        answers = [httpx.get(f"{gateway_url}/elsewhere/orders", timeout=10) for _ in range(10)]
    finally:
        httpx.delete(f"{discovery_url}/apps/ELSEWHERE/{outsider}")

    assert [a.status_code for a in answers] == [200] * 10
    assert {a.json()["instance"] for a in answers} == {local.instance_id}
