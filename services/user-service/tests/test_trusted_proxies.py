"""Which peers user-service believes X-Forwarded-For from: listed networks, and named proxies (compose: `gateway`)
at the addresses they resolve to, looked up again now and then, never more than once a second for unknown peers."""

from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

import pytest

from user_service.proxies import TrustedProxies

pytestmark = pytest.mark.unit

Address = IPv4Address | IPv6Address


class Names:
    """A DNS of the test's: what each name resolves to now, and how often it was asked."""

    def __init__(self, **records: str) -> None:
        self.records = records
        self.lookups = 0

    async def resolve(self, name: str) -> set[Address]:
        self.lookups += 1
        if name not in self.records:
            raise OSError(f"{name}: name or service not known")
        return {ip_address(self.records[name])}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def proxies(names: Names, clock: Clock, networks: tuple[IPv4Network, ...] = ()) -> TrustedProxies:
    return TrustedProxies(
        networks, ["gateway"], refresh_seconds=30, recheck_seconds=1, resolver=names.resolve, clock=clock
    )


async def test_a_named_proxy_is_trusted_at_its_address_and_no_other_private_address_is() -> None:
    names, clock = Names(gateway="10.89.0.7"), Clock()
    trusted = proxies(names, clock)

    assert await trusted.trusts("10.89.0.7")
    assert not await trusted.trusts("10.89.0.8")  # another container of the same network
    assert not await trusted.trusts("not-an-address")


async def test_networks_are_trusted_without_asking_dns() -> None:
    names, clock = Names(gateway="10.89.0.7"), Clock()
    trusted = proxies(names, clock, (IPv4Network("127.0.0.1/32"),))

    assert await trusted.trusts("127.0.0.1")
    assert names.lookups == 0


async def test_the_answer_is_kept_for_the_refresh_period_then_looked_up_again() -> None:
    names, clock = Names(gateway="10.89.0.7"), Clock()
    trusted = proxies(names, clock)
    assert await trusted.trusts("10.89.0.7")

    clock.now += 29
    assert await trusted.trusts("10.89.0.7") and names.lookups == 1
    names.records["gateway"] = "10.89.0.9"  # the gateway came back under another address
    clock.now += 1
    assert not await trusted.trusts("10.89.0.7")
    assert names.lookups == 2


async def test_an_unknown_peer_rechecks_at_most_once_a_recheck_period_so_a_moved_gateway_is_believed_soon() -> None:
    names, clock = Names(gateway="10.89.0.7"), Clock()
    trusted = proxies(names, clock)
    assert not await trusted.trusts("10.89.0.9")
    names.records["gateway"] = "10.89.0.9"

    for _ in range(50):
        assert not await trusted.trusts("10.89.0.9")  # within the second: the cached answer, no lookup
    assert names.lookups == 1
    clock.now += 1
    assert await trusted.trusts("10.89.0.9")
    assert names.lookups == 2


async def test_a_name_that_does_not_resolve_is_trusted_nowhere_until_it_does() -> None:
    names, clock = Names(), Clock()
    trusted = proxies(names, clock)
    assert not await trusted.trusts("10.89.0.7")

    names.records["gateway"] = "10.89.0.7"
    clock.now += 1
    assert await trusted.trusts("10.89.0.7")
