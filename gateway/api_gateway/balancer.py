"""`lb://APP`: round robin over the UP instances in this worker's copy of the registry, skipping
instances that failed several times in a row for a while (passive ejection), and never sending to an
address outside the upstream allow-list."""

import ipaddress
import logging
import re
import time

from api_gateway.metrics import WorkerMetrics
from servicekit.discovery import LOOPBACK, DiscoveryClient, HostAllowList, RoundRobin, ServiceInstance

log = logging.getLogger("api_gateway")

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_valid_host_name(host: str) -> bool:
    """RFC 1123: dot-separated labels of 1-63 letters, digits and inner hyphens, 253 characters at most."""
    return 0 < len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in host.rstrip(".").split("."))


def is_valid_address(host: str, port: int) -> bool:
    """What a registration may point at: an IP address or a well-formed host name, and a TCP port."""
    if not isinstance(port, int) or not 0 < port < 65536:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return is_valid_host_name(host)


class LoadBalancer:
    def __init__(
        self,
        discovery: DiscoveryClient,
        eject_after_failures: int,
        ejection_seconds: float,
        allowed: HostAllowList | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._discovery = discovery
        self._metrics = metrics or WorkerMetrics()
        # Hosts it may connect to (GATEWAY_UPSTREAM_ALLOW): a registration pointing anywhere else gets no traffic.
        self._allow = allowed or HostAllowList(LOOPBACK)
        # Per app: the registry copy's tuple and what of it is allowed; recomputed only when the copy changes.
        self._allowed: dict[str, tuple[tuple[ServiceInstance, ...], tuple[ServiceInstance, ...]]] = {}
        self._eject_after = eject_after_failures
        self._ejection_seconds = ejection_seconds
        self._round_robin = RoundRobin()
        self._failures: dict[str, int] = {}
        self._ejected_until: dict[str, float] = {}

    def is_internal(self, host: str) -> bool:
        """Whether `host` is where instances may be (the upstream allow-list)."""
        return self._allow.allows(host)

    def up_count(self, app: str) -> int:
        return len(self._usable(app))

    def refused_count(self, app: str) -> int:
        """UP instances of `app` kept from traffic: outside the allow-list, or a malformed host or port."""
        return len(self._discovery.up_instances(app)) - len(self._usable(app))

    def _usable(self, app: str) -> tuple[ServiceInstance, ...]:
        instances = self._discovery.up_instances(app)
        cached = self._allowed.get(app)
        if cached is not None and cached[0] is instances:
            return cached[1]
        usable = tuple(i for i in instances if is_valid_address(i.host, i.port) and self._allow.allows(i.host))
        for refused in instances:
            if refused not in usable and (cached is None or refused in cached[1] or refused not in cached[0]):
                log.warning(
                    "not routing to %s/%s: %s:%s is malformed or not in the upstream allow-list",
                    app,
                    refused.instance_id,
                    refused.host,
                    refused.port,
                )
        self._allowed[app] = (instances, usable)
        return usable

    def pick(self, app: str, tried: set[str]) -> ServiceInstance | None:
        """The next instance in turn, not yet tried for this request; ejected ones only as a last resort."""
        instances = self._usable(app)
        if tried:
            instances = tuple(i for i in instances if i.instance_id not in tried)
        if not instances:
            return None
        if self._ejected_until:
            now = time.monotonic()
            healthy = tuple(i for i in instances if self._ejected_until.get(i.instance_id, 0.0) <= now)
            instances = healthy or instances
        return self._round_robin.pick(app, instances)

    def succeeded(self, instance: ServiceInstance) -> None:
        if self._failures:
            self._failures.pop(instance.instance_id, None)
            self._ejected_until.pop(instance.instance_id, None)

    def failed(self, instance: ServiceInstance) -> None:
        failures = self._failures.get(instance.instance_id, 0) + 1
        self._failures[instance.instance_id] = failures
        if failures >= self._eject_after:
            if failures == self._eject_after:
                self._metrics.ejected(instance.app)
            self._ejected_until[instance.instance_id] = time.monotonic() + self._ejection_seconds
