"""Which peers may tell user-service the client's address (X-Forwarded-For): networks, and host names resolved now
and then. In compose the gateway's address is the engine's choice, so it is named (`gateway`) instead of trusting
every private range, where any container of the project could choose its login-throttle address."""

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

log = logging.getLogger(__name__)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Resolver = Callable[[str], Awaitable[set[Address]]]


async def resolve(name: str) -> set[Address]:
    """Every address `name` has now (the event loop's getaddrinfo, in its thread pool)."""
    found = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return {ip_address(entry[4][0]) for entry in found}


class TrustedProxies:
    """`networks` always; `names` as they resolved at most `refresh_seconds` ago. An unknown peer makes a stale-ish
    answer (older than `recheck_seconds`) be looked up again, so a gateway that restarted under a new address is
    believed at once, and no peer can make user-service ask DNS more than once per `recheck_seconds`."""

    def __init__(
        self,
        networks: Iterable[Network],
        names: Iterable[str] = (),
        *,
        refresh_seconds: float = 30.0,
        recheck_seconds: float = 1.0,
        resolver: Resolver = resolve,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._networks = tuple(networks)
        self._names = tuple(names)
        self._refresh_seconds = refresh_seconds
        self._recheck_seconds = recheck_seconds
        self._resolver = resolver
        self._clock = clock
        self._addresses: frozenset[Address] = frozenset()
        self._resolved_at: float | None = None

    async def trusts(self, peer: str) -> bool:
        try:
            address = ip_address(peer)
        except ValueError:
            return False
        if any(address in network for network in self._networks):
            return True
        if not self._names:
            return False
        age = None if self._resolved_at is None else self._clock() - self._resolved_at
        if (
            age is None
            or age >= self._refresh_seconds
            or (address not in self._addresses and age >= self._recheck_seconds)
        ):
            await self._resolve()
        return address in self._addresses

    async def _resolve(self) -> None:
        self._resolved_at = self._clock()
        found: set[Address] = set()
        for name in self._names:
            try:
                found |= await self._resolver(name)
            except OSError as exc:
                # Not there now (a restarting container): the name is trusted at none of its addresses meanwhile.
                log.warning("trusted proxy %s does not resolve: %s", name, exc)
        self._addresses = frozenset(found)
