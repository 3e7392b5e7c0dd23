"""servicekit's DiscoveryClient, the one our services use, against the real server."""

import httpx
import pytest

from servicekit.discovery import DiscoveryClient, NoInstanceAvailable
from servicekit.testing import eventually

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

            async def registered() -> bool:
                return (await http.get(url, headers=JSON)).status_code == 200

            await eventually(registered, within=10, what="the instance registered again by its heartbeat")
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


async def test_an_instance_registers_once_its_before_register_step_is_done_and_that_step_sees_the_registry(
    discovery_url: str,
) -> None:
    """What an instance needs before it takes requests (the token keys, found through the registry) comes first:
    registered means ready."""
    known = DiscoveryClient(discovery_url, app_name="kit-known", port=9731, renewal_interval=1)
    client = DiscoveryClient(discovery_url, app_name="kit-ready", port=9732, renewal_interval=1)
    seen: dict[str, object] = {}
    async with httpx.AsyncClient() as http:

        async def before_register() -> None:
            seen["registered"] = (await http.get(f"{discovery_url}/apps/KIT-READY", headers=JSON)).status_code
            seen["known"] = [instance.port for instance in client.instances("KIT-KNOWN")]

        await known.start()
        try:
            await client.start(before_register=before_register)
            try:
                assert seen == {"registered": 404, "known": [9731]}
                assert (await http.get(f"{discovery_url}/apps/KIT-READY", headers=JSON)).status_code == 200
            finally:
                await client.stop()
        finally:
            await known.stop()


@pytest.mark.unit
async def test_client_starts_while_discovery_is_down() -> None:
    client = DiscoveryClient("http://127.0.0.1:9/eureka", app_name="kit-lonely", port=9721)
    await client.start()
    await client.stop()
    assert client.instances("KIT-LONELY") == []


async def test_refreshes_apply_deltas_and_agree_with_the_full_registry(discovery_url: str) -> None:
    """After the first full fetch the client reads /apps/delta (registrations, cancels, status changes) and its
    copy equals the server's; a copy that does not reconcile with the server's hashcode is fetched whole."""
    reader = DiscoveryClient(discovery_url)
    await reader.start()
    first = DiscoveryClient(discovery_url, app_name="kit-delta", port=9721, renewal_interval=1)
    second = DiscoveryClient(discovery_url, app_name="kit-delta", port=9722, renewal_interval=1)
    await first.start()
    await second.start()
    try:
        async with httpx.AsyncClient() as http:
            override = f"{discovery_url}/apps/KIT-DELTA/{second.instance_id}/status"
            assert (await http.put(override, params={"value": "OUT_OF_SERVICE"})).status_code == 200
        await first.stop()
        full_before = reader.full_fetches
        await reader.refresh_changes()
        assert [i.port for i in reader.instances("KIT-DELTA")] == [], "the cancelled one gone, the other not UP"
        assert reader.delta_fetches >= 1 and reader.full_fetches == full_before, "applied as a delta"

        server_view = DiscoveryClient(discovery_url)
        await server_view.start()
        await server_view.stop()
        assert reader._registry == server_view._registry

        # A change the client missed (here: an instance it believes in that the server never had) is noticed
        # by the hashcode and repaired by a full fetch.
        reader._registry = {**reader._registry, "KIT-GHOST": server_view._registry.get("KIT-DELTA", [])}
        await reader.refresh_changes()
        assert reader.full_fetches == full_before + 1
        assert "KIT-GHOST" not in reader._registry
    finally:
        await second.stop()
        await reader.stop()


async def test_an_app_past_its_instance_cap_is_refused_and_its_instances_keep_renewing(discovery_url: str) -> None:
    def body(port: int) -> dict[str, object]:
        return {
            "instance": {
                "instanceId": f"cap-{port}",
                "app": "KIT-CAP",
                "hostName": "127.0.0.1",
                "ipAddr": "127.0.0.1",
                "status": "UP",
                "port": {"$": port, "@enabled": "true"},
                "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
            }
        }

    ports = range(20_000, 20_256)
    async with httpx.AsyncClient(base_url=discovery_url) as http:
        try:
            for port in ports:
                assert (await http.post("/apps/KIT-CAP", json=body(port))).status_code == 204
            refused = await http.post("/apps/KIT-CAP", json=body(20_256))
            assert refused.status_code == 409
            assert "the most one app may have" in refused.json()["detail"]
            assert (await http.put("/apps/KIT-CAP/cap-20000")).status_code == 200
            assert (await http.post("/apps/KIT-CAP", json=body(20_000))).status_code == 204, "re-registering is fine"
        finally:
            for port in ports:
                await http.delete(f"/apps/KIT-CAP/cap-{port}")
