"""Which registered instances a process may call: only those on hosts its allow-list names (review H3)."""

import pytest

from servicekit.discovery import LOOPBACK, DiscoveryClient, HostAllowList, ServiceInstance

pytestmark = pytest.mark.unit


def registry_of(*hosts: str) -> dict[str, list[ServiceInstance]]:
    instances = [ServiceInstance("ORDER-SERVICE", f"order-{n}", host, 8000 + n, "UP") for n, host in enumerate(hosts)]
    return {"ORDER-SERVICE": instances}


def test_loopback_is_allowed_and_other_addresses_and_unlisted_names_are_not() -> None:
    allowed = HostAllowList(LOOPBACK)
    assert allowed.allows("127.0.0.1") and allowed.allows("127.3.2.1") and allowed.allows("::1")
    assert not allowed.allows("192.0.2.2") and not allowed.allows("169.254.169.254")
    assert not allowed.allows("localhost")  # names are matched as written, never resolved


def test_names_match_as_listed_whatever_their_case() -> None:
    allowed = HostAllowList(["order-service-1", "10.0.0.0/8"])
    assert allowed.allows("Order-Service-1") and allowed.allows("10.1.2.3")
    assert not allowed.allows("order-service-1.evil.example") and not allowed.allows("order-service-3")


def test_a_client_with_an_allow_list_never_offers_an_instance_off_it() -> None:
    client = DiscoveryClient("http://127.0.0.1:9/eureka", allowed_hosts=HostAllowList(LOOPBACK))
    client._replace(registry_of("127.0.0.1", "198.51.100.66", "127.0.0.2"))

    assert [i.host for i in client.instances("order-service")] == ["127.0.0.1", "127.0.0.2"]
    assert {client.next_instance("ORDER-SERVICE").host for _ in range(10)} == {"127.0.0.1", "127.0.0.2"}


def test_a_client_without_an_allow_list_offers_every_up_instance() -> None:
    client = DiscoveryClient("http://127.0.0.1:9/eureka")
    client._replace(registry_of("127.0.0.1", "198.51.100.66"))
    assert len(client.up_instances("ORDER-SERVICE")) == 2
