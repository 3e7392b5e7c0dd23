"""Failover, retries and timeouts with instances that die or stall."""

from collections.abc import Callable
from typing import Any

import httpx


def test_instance_killed_9_stops_getting_traffic_without_client_errors(
    gateway_url: str,
    start_instances: Callable[..., list[Any]],
) -> None:
    victim, survivor = start_instances("KILLED", 2)
    statuses: list[int] = []
    answered_by: list[str] = []

    with httpx.Client() as client:
        for index in range(60):
            if index == 10:
                victim.process.kill()
                victim.process.wait()
            if index % 2:
                response = client.post(f"{gateway_url}/killed/orders", json={"n": index})
            else:
                response = client.get(f"{gateway_url}/killed/orders")
            statuses.append(response.status_code)
            answered_by.append(response.json()["instance"])

    assert statuses == [200] * 60
    assert set(answered_by[11:]) == {survivor.instance_id}


def test_read_timeout_is_504_for_a_post_without_idempotency_key(
    gateway_url: str,
    start_instances: Callable[..., list[Any]],
) -> None:
    start_instances("SLOW-POST", 1, SLEEP_SECONDS="5")

    response = httpx.post(f"{gateway_url}/slow-post/orders", json={}, timeout=10)

    assert response.status_code == 504
    assert "detail" in response.json()


def test_get_and_idempotent_post_are_retried_on_another_instance_after_a_timeout(
    gateway_url: str,
    start_instances: Callable[..., list[Any]],
) -> None:
    [slow] = start_instances("SLOW-RETRY", 1, SLEEP_SECONDS="5")
    [fast] = start_instances("SLOW-RETRY", 1)

    with httpx.Client(timeout=10) as client:
        gets = [client.get(f"{gateway_url}/slow-retry/orders") for _ in range(2)]
        posts = [
            client.post(f"{gateway_url}/slow-retry/orders", json={}, headers={"Idempotency-Key": f"k{n}"})
            for n in range(2)
        ]

    assert [r.status_code for r in gets + posts] == [200] * 4
    assert {r.json()["instance"] for r in gets + posts} == {fast.instance_id}
    assert slow.instance_id != fast.instance_id
