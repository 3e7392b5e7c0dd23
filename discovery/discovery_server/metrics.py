"""What the registry holds and does, for Prometheus: instances by app and status (read from the registry at each
scrape), and counters of registrations, renewals and evictions."""

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from discovery_server.registry import Registry

REGISTRATIONS = Counter("discovery_registrations_total", "Registrations accepted, by app", ["app"])
RENEWALS = Counter("discovery_renewals_total", "Heartbeats accepted, by app", ["app"])
EVICTIONS = Counter("discovery_evictions_total", "Instances evicted for missing heartbeats, by app", ["app"])
REPLICATIONS = Counter(
    "discovery_replications_total",
    "Changes passed on to a peer discovery server, by peer, action and outcome (sent, refused, dropped)",
    ["peer", "action", "outcome"],
)
REPLICATION_FAILURES = Counter(
    "discovery_replication_failures_total", "Attempts at a peer that failed to connect or answered 5xx", ["peer"]
)
REPLICATION_PENDING = Gauge("discovery_replication_pending", "Changes waiting to be passed on to a peer", ["peer"])
PEER_REACHABLE = Gauge("discovery_peer_reachable", "1 while the last attempt at the peer got an answer", ["peer"])


class InstancesCollector(Collector):
    """discovery_instances{app,status}: counted from the registry when Prometheus scrapes."""

    def __init__(self) -> None:
        self.registry: Registry | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "discovery_instances", "Registered instances, by app and status", labels=["app", "status"]
        )
        if self.registry is not None:
            counts: dict[tuple[str, str], int] = {}
            for app, instances in self.registry.applications().items():
                for instance in instances:
                    counts[(app, instance.status)] = counts.get((app, instance.status), 0) + 1
            for (app, status), count in sorted(counts.items()):
                family.add_metric([app, status], count)
        yield family


# One per process (the default registry is); create_app points it at its registry.
INSTANCES = InstancesCollector()
REGISTRY.register(INSTANCES)
