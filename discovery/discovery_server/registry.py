"""The in-memory registry: instances with leases, status overrides, eviction and the recent-changes queue.

It follows Netflix Eureka's AbstractInstanceRegistry closely enough that real Eureka clients agree with it:
the apps hashcode, the delta version counter and the ADDED/MODIFIED/DELETED action types.
"""

import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace

DEFAULT_RENEWAL_INTERVAL_SECS = 30
DEFAULT_DURATION_SECS = 90
DEFAULT_DATA_CENTER_CLASS = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


def now_millis() -> int:
    return int(time.time() * 1000)


@dataclass
class Instance:
    """One registered instance, with every field Eureka clients send and read back."""

    instance_id: str
    app: str
    host_name: str
    ip_addr: str
    port: int
    port_enabled: bool = True
    secure_port: int = 443
    secure_port_enabled: bool = False
    reported_status: str = "UP"
    overridden_status: str = "UNKNOWN"
    vip_address: str = ""
    secure_vip_address: str = ""
    home_page_url: str = ""
    status_page_url: str = ""
    health_check_url: str = ""
    secure_health_check_url: str = ""
    country_id: int = 1
    data_center_class: str = DEFAULT_DATA_CENTER_CLASS
    data_center_name: str = "MyOwn"
    metadata: dict[str, str] = field(default_factory=dict)
    renewal_interval_secs: int = DEFAULT_RENEWAL_INTERVAL_SECS
    duration_secs: int = DEFAULT_DURATION_SECS
    registration_timestamp: int = 0
    last_renewal_timestamp: int = 0
    eviction_timestamp: int = 0
    service_up_timestamp: int = 0
    last_updated_timestamp: int = 0
    last_dirty_timestamp: int = 0
    action_type: str = ADDED

    @property
    def status(self) -> str:
        """What clients see: an operator's override wins over what the instance reports."""
        if self.overridden_status not in ("", "UNKNOWN"):
            return self.overridden_status
        return self.reported_status

    def is_expired(self, at_millis: int) -> bool:
        return at_millis > self.last_renewal_timestamp + self.duration_secs * 1000


@dataclass(frozen=True)
class Change:
    at_millis: int
    instance: Instance


class InstanceTaken(Exception):
    """An instance id whose lease is alive, registered again from another address."""


class RegistryFull(Exception):
    """A new instance past the most one app may have, or a new app past the most apps."""


class UnknownInstance(Exception):
    """No instance with that app name and id is registered."""


def _address(instance: Instance) -> tuple[str, str, int]:
    return instance.host_name, instance.ip_addr, instance.port


class Registry:
    def __init__(
        self, delta_retention_secs: float = 180.0, max_instances_per_app: int = 256, max_apps: int = 256
    ) -> None:
        self.max_instances_per_app = max_instances_per_app
        self.max_apps = max_apps
        self._apps: dict[str, dict[str, Instance]] = {}
        self._recent_changes: deque[Change] = deque()
        self._delta_retention_millis = int(delta_retention_secs * 1000)
        self.version = 0

    def register(self, instance: Instance, *, replication: bool = False) -> None:
        """A replication from a peer (or the start-up sync) older than what we hold only renews our lease: the
        instance's last dirty timestamp says which copy is newer, as in Eureka's AbstractInstanceRegistry."""
        now = now_millis()
        if instance.app not in self._apps and len(self._apps) >= self.max_apps:
            raise RegistryFull(f"the registry holds {self.max_apps} apps, the most it takes")
        instances = self._apps.setdefault(instance.app, {})
        previous = instances.get(instance.instance_id)
        if previous is None and len(instances) >= self.max_instances_per_app:
            raise RegistryFull(f"{instance.app} has {self.max_instances_per_app} instances, the most one app may have")
        if replication and previous is not None and previous.last_dirty_timestamp > instance.last_dirty_timestamp:
            previous.last_renewal_timestamp = now
            return
        if previous is not None and not previous.is_expired(now) and _address(previous) != _address(instance):
            # Else anyone could point a live instance's traffic elsewhere; the owner's heartbeats would renew it.
            raise InstanceTaken(
                f"{instance.app}/{instance.instance_id} is registered at {previous.ip_addr}:{previous.port} "
                "and its lease is alive"
            )
        instance.last_renewal_timestamp = now
        instance.last_updated_timestamp = now
        if previous is not None:
            instance.registration_timestamp = previous.registration_timestamp
            instance.service_up_timestamp = previous.service_up_timestamp
            if instance.overridden_status in ("", "UNKNOWN"):
                instance.overridden_status = previous.overridden_status
            instance.action_type = MODIFIED
        else:
            instance.registration_timestamp = now
            instance.action_type = ADDED
        if instance.service_up_timestamp == 0 and instance.reported_status == "UP":
            instance.service_up_timestamp = now
        if instance.last_dirty_timestamp == 0:
            instance.last_dirty_timestamp = now
        instances[instance.instance_id] = instance
        self._record(instance)

    def renew(self, app: str, instance_id: str) -> None:
        instance = self.instance(app, instance_id)
        instance.last_renewal_timestamp = now_millis()

    def cancel(self, app: str, instance_id: str) -> None:
        instances = self._apps.get(app.upper(), {})
        instance = instances.pop(instance_id, None)
        if instance is None:
            raise UnknownInstance(f"{app}/{instance_id}")
        if not instances:
            del self._apps[app.upper()]
        now = now_millis()
        instance.eviction_timestamp = now
        instance.last_updated_timestamp = now
        instance.action_type = DELETED
        self._record(instance)

    def override_status(self, app: str, instance_id: str, status: str) -> None:
        instance = self.instance(app, instance_id)
        instance.overridden_status = status
        self._mark_modified(instance)

    def remove_status_override(self, app: str, instance_id: str) -> None:
        instance = self.instance(app, instance_id)
        instance.overridden_status = "UNKNOWN"
        self._mark_modified(instance)

    def update_metadata(self, app: str, instance_id: str, metadata: dict[str, str]) -> None:
        instance = self.instance(app, instance_id)
        instance.metadata = {**instance.metadata, **metadata}
        self._mark_modified(instance)

    def evict_expired(self) -> list[Instance]:
        now = now_millis()
        expired = [
            instance for instances in self._apps.values() for instance in instances.values() if instance.is_expired(now)
        ]
        for instance in expired:
            self.cancel(instance.app, instance.instance_id)
        return expired

    def instance(self, app: str, instance_id: str) -> Instance:
        instance = self._apps.get(app.upper(), {}).get(instance_id)
        if instance is None:
            raise UnknownInstance(f"{app}/{instance_id}")
        return instance

    def application(self, app: str) -> list[Instance]:
        return list(self._apps.get(app.upper(), {}).values())

    def applications(self) -> dict[str, list[Instance]]:
        return {app: list(instances.values()) for app, instances in sorted(self._apps.items())}

    def delta(self) -> dict[str, list[Instance]]:
        """Instances changed within the retention window, grouped by app, each with its action type."""
        self._forget_old_changes()
        grouped: dict[str, list[Instance]] = {}
        for change in self._recent_changes:
            grouped.setdefault(change.instance.app, []).append(change.instance)
        return grouped

    def apps_hashcode(self) -> str:
        """Eureka's reconcile hashcode: `STATUS_count_` for each status, sorted by status."""
        counts = Counter(instance.status for instances in self._apps.values() for instance in instances.values())
        return "".join(f"{status}_{count}_" for status, count in sorted(counts.items()))

    def _mark_modified(self, instance: Instance) -> None:
        now = now_millis()
        instance.last_updated_timestamp = now
        instance.last_dirty_timestamp = now
        instance.action_type = MODIFIED
        self._record(instance)

    def _record(self, instance: Instance) -> None:
        self.version += 1
        # A snapshot, so later changes to the live instance do not rewrite history.
        self._recent_changes.append(Change(now_millis(), replace(instance, metadata=dict(instance.metadata))))
        self._forget_old_changes()

    def _forget_old_changes(self) -> None:
        oldest_kept = now_millis() - self._delta_retention_millis
        while self._recent_changes and self._recent_changes[0].at_millis < oldest_kept:
            self._recent_changes.popleft()
