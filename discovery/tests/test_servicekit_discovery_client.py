"""servicekit's DiscoveryClient, the one our services use, against the real server."""

import asyncio

import httpx
import pytest

from servicekit.discovery import DiscoveryClient, NoInstanceAvailable

JSON = {"Accept": "application/json"}


async def test_client_registers_and_stop_deregisters(discovery_url: str) -> None:
    client = DiscoveryClient(discovery_url, app_name="kit-app", port=9701, renewal_interval=0.2)
    await client.start()
    try:
        await client.refresh()
        [instance] = client.instances("KIT-APP")
        assert (instance.host, instance.port, instance.base_url) == ("127.0.0.1", 9701, "http://127.0.0.1:9701")
    finally:
        await client.stop()
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{discovery_url}/apps/KIT-APP", headers=JSON)).status_code == 404


async def test_heartbeat_registers_again_after_the_server_forgot(discovery_url: str) -> None:
    client = DiscoveryClient(discovery_url, app_name="kit-forgotten", port=9702, renewal_interval=0.1)
    await client.start()
    try:
        async with httpx.AsyncClient() as http:
            url = f"{discovery_url}/apps/KIT-FORGOTTEN/{client.instance_id}"
            assert (await http.delete(url)).status_code == 200
            for _ in range(200):  # up to ~10 s, checked every 50 ms
                if (await http.get(url, headers=JSON)).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert (await http.get(url, headers=JSON)).status_code == 200
    finally:
        await client.stop()


async def test_next_instance_goes_round_robin_over_up_instances(discovery_url: str) -> None:
    servers = [
        DiscoveryClient(discovery_url, app_name="kit-rr", port=port, renewal_interval=1) for port in (9711, 9712, 9713)
    ]
    reader = DiscoveryClient(discovery_url)
    for server in servers:
        await server.start()
    await reader.start()
    try:
        await reader.refresh()
        picked = [reader.next_instance("kit-rr").port for _ in range(9)]
        assert sorted(picked) == [9711, 9711, 9711, 9712, 9712, 9712, 9713, 9713, 9713]
        assert picked[:3] == picked[3:6]
        with pytest.raises(NoInstanceAvailable):
            reader.next_instance("NOBODY")
    finally:
        await reader.stop()
        for server in servers:
            await server.stop()


async def test_client_starts_while_discovery_is_down() -> None:
    client = DiscoveryClient("http://127.0.0.1:9/eureka", app_name="kit-lonely", port=9721)
    await client.start()
    await client.stop()
    assert client.instances("KIT-LONELY") == []
