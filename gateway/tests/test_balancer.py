"""Round robin and passive ejection, over a real registry copy fetched from discovery."""

import httpx

from api_gateway.balancer import LoadBalancer
from servicekit.discovery import DiscoveryClient


async def register(discovery_url: str, app: str, port: int) -> None:
    instance = {
        "instanceId": f"127.0.0.1:{app.lower()}:{port}",
        "app": app,
        "hostName": "127.0.0.1",
        "ipAddr": "127.0.0.1",
        "port": {"$": port, "@enabled": "true"},
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
    }
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{discovery_url}/apps/{app}", json={"instance": instance})).status_code == 204


def ports_picked(balancer: LoadBalancer, app: str, times: int = 4) -> set[int]:
    """The ports of `times` picks with nothing tried yet; every pick finds an instance."""
    ports = set()
    for _ in range(times):
        instance = balancer.pick(app, set())
        assert instance is not None, f"no {app} instance picked"
        ports.add(instance.port)
    return ports


async def test_instance_failing_repeatedly_is_skipped_until_it_succeeds_again(discovery_url: str) -> None:
    await register(discovery_url, "EJECTION", 9801)
    await register(discovery_url, "EJECTION", 9802)
    registry = DiscoveryClient(discovery_url)
    await registry.start()
    try:
        balancer = LoadBalancer(registry, eject_after_failures=2, ejection_seconds=60)
        failing = next(i for i in registry.instances("EJECTION") if i.port == 9801)

        balancer.failed(failing)
        assert ports_picked(balancer, "EJECTION") == {9801, 9802}

        balancer.failed(failing)
        assert ports_picked(balancer, "EJECTION") == {9802}
        # All others tried: an ejected instance is still better than none.
        assert balancer.pick("EJECTION", {"127.0.0.1:ejection:9802"}) == failing

        balancer.succeeded(failing)
        assert ports_picked(balancer, "EJECTION") == {9801, 9802}
    finally:
        await registry.stop()
        async with httpx.AsyncClient() as http:
            for port in (9801, 9802):
                await http.delete(f"{discovery_url}/apps/EJECTION/127.0.0.1:ejection:{port}")
