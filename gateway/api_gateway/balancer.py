"""`lb://APP`: round robin over the UP instances in this worker's copy of the registry, skipping
instances that failed several times in a row for a while (passive ejection)."""

import time

from servicekit.discovery import DiscoveryClient, ServiceInstance


class LoadBalancer:
    def __init__(self, discovery: DiscoveryClient, eject_after_failures: int, ejection_seconds: float) -> None:
        self._discovery = discovery
        self._eject_after = eject_after_failures
        self._ejection_seconds = ejection_seconds
        self._turns: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._ejected_until: dict[str, float] = {}

    def up_count(self, app: str) -> int:
        return len(self._discovery.up_instances(app))

    def pick(self, app: str, tried: set[str]) -> ServiceInstance | None:
        """The next instance in turn, not yet tried for this request; ejected ones only as a last resort."""
        instances = self._discovery.up_instances(app)
        if tried:
            instances = tuple(i for i in instances if i.instance_id not in tried)
        if not instances:
            return None
        if self._ejected_until:
            now = time.monotonic()
            healthy = tuple(i for i in instances if self._ejected_until.get(i.instance_id, 0.0) <= now)
            instances = healthy or instances
        turn = self._turns.get(app, 0)
        self._turns[app] = turn + 1
        return instances[turn % len(instances)]

    def succeeded(self, instance: ServiceInstance) -> None:
        if self._failures:
            self._failures.pop(instance.instance_id, None)
            self._ejected_until.pop(instance.instance_id, None)

    def failed(self, instance: ServiceInstance) -> None:
        failures = self._failures.get(instance.instance_id, 0) + 1
        self._failures[instance.instance_id] = failures
        if failures >= self._eject_after:
            self._ejected_until[instance.instance_id] = time.monotonic() + self._ejection_seconds
