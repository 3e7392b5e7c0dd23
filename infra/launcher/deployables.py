"""The stack's Python deployables, each described once: what `python -m` runs, its database account, its Kafka
login (each with its rights: launcher.environment) and the other secrets it reads. The native launcher starts them
with exactly these (services.py, connect.py); compose's secrets one-shot fills each one's volume with the same
(compose_secrets.py); tests/compose checks that docker-compose.yml gives each container these account names."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from launcher.environment import (
    CATALOG_SERVICE_DB,
    CATALOG_SERVICE_KAFKA,
    CONNECT_WATCHDOG_KAFKA,
    MONITOR_DB,
    MONITOR_KAFKA,
    ORDER_SERVICE_DB,
    ORDER_SERVICE_KAFKA,
    ORDERS_MIGRATOR_DB,
    ORDERS_SINK_DB,
    USER_SERVICE_DB,
    DbAccount,
    KafkaLogin,
    StackConfig,
)

# Every component that registers or looks others up writes to the registry with this password.
REGISTRY = {"DISCOVERY_PASSWORD": "DISCOVERY_PASSWORD"}


@dataclass(frozen=True)
class Deployable:
    name: str  # the native component (a prefix when there are several: order-service-1) and the compose service
    module: str  # what `python -m` runs
    db: DbAccount | None = None  # given as DB_USER / DB_PASSWORD
    kafka: KafkaLogin | None = None  # given as KAFKA_USERNAME / KAFKA_PASSWORD
    # Further secrets: the variable it reads -> the .env key that holds the value.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Secrets .env may set or leave out, passed natively under their own name only when set (never in compose).
    optional: tuple[str, ...] = ()
    # Compose's secrets volume, when it shares another deployable's (the same files).
    volume: str | None = None
    # Fixed settings it runs with under either launcher (docker-compose.yml gives the same; a test checks).
    settings: Mapping[str, str] = field(default_factory=dict)

    def secret_sources(self) -> dict[str, str]:
        """Every secret it reads: variable -> the .env key it comes from."""
        sources = dict(self.secrets)
        if self.db is not None:
            sources["DB_PASSWORD"] = self.db.password_key
        if self.kafka is not None:
            sources["KAFKA_PASSWORD"] = self.kafka.password_key
        return sources

    def account_names(self) -> dict[str, str]:
        """The user names that go with those passwords (not secret)."""
        names = {}
        if self.db is not None:
            names["DB_USER"] = self.db.user
        if self.kafka is not None:
            names["KAFKA_USERNAME"] = self.kafka.user
        return names

    def env(self, config: StackConfig, **extra: str) -> dict[str, str]:
        """Its environment when the native launcher starts it: .env's settings without any secret but its own."""
        own = {variable: config.get(key) for variable, key in self.secret_sources().items()}
        return config.component_env(self.optional, **self.settings, **self.account_names(), **own, **extra)


DISCOVERY = Deployable("discovery", "discovery_server", secrets=REGISTRY)
GATEWAY = Deployable("gateway", "api_gateway", secrets=REGISTRY, volume="discovery")
USER_SERVICE = Deployable("user-service", "user_service", db=USER_SERVICE_DB, secrets=REGISTRY)
CATALOG_SERVICE = Deployable(
    "catalog-service", "catalog_service", db=CATALOG_SERVICE_DB, kafka=CATALOG_SERVICE_KAFKA, secrets=REGISTRY
)
# The instances only read mydb.orders: the migrator's account (a one-shot, before them) owns its schema.
ORDER_SERVICE = Deployable(
    "order-service", "order_service", db=ORDER_SERVICE_DB, kafka=ORDER_SERVICE_KAFKA, secrets=REGISTRY
)
ORDERS_MIGRATOR = Deployable("orders-migrator", "alembic", db=ORDERS_MIGRATOR_DB)
# Connect's REST login is the read-only user's, never the admin's; MONITOR_PASSWORD (with MONITOR_USER) turns on
# its Basic auth when .env sets it (stack_monitor/gate.py).
MONITOR = Deployable(
    "monitor",
    "stack_monitor",
    db=MONITOR_DB,
    kafka=MONITOR_KAFKA,
    secrets={**REGISTRY, "CONNECT_PASSWORD": "CONNECT_MONITOR_PASSWORD"},
    optional=("MONITOR_PASSWORD",),
    # The auditor's full pass holds every order for a moment; with the C allocator, malloc_trim afterwards gives
    # that memory back (pymalloc kept ~87 MB of half-used arenas): 155-172 MB at rest -> 127 MB (bench/perf-notes.md).
    settings={"PYTHONMALLOC": "malloc"},
)
# Restarts, stops and resumes connectors (the admin REST login); its recovery replays `orders` as its own principal
# and writes the rows the sink would, with the sink's account.
CONNECT_WATCHDOG = Deployable(
    "connect-watchdog",
    "connect_watchdog",
    db=ORDERS_SINK_DB,
    kafka=CONNECT_WATCHDOG_KAFKA,
    secrets={"CONNECT_PASSWORD": "CONNECT_PASSWORD"},
)

DEPLOYABLES = (
    DISCOVERY,
    GATEWAY,
    USER_SERVICE,
    CATALOG_SERVICE,
    ORDER_SERVICE,
    ORDERS_MIGRATOR,
    MONITOR,
    CONNECT_WATCHDOG,
)


def secret_volumes() -> dict[str, dict[str, str]]:
    """Compose's secrets volume of each deployable: volume name -> {file (variable): .env key}."""
    volumes: dict[str, dict[str, str]] = {}
    for deployable in DEPLOYABLES:
        volume = deployable.volume or deployable.name
        sources = deployable.secret_sources()
        if volumes.setdefault(volume, sources) != sources:
            raise ValueError(f"{deployable.name} shares the volume {volume} but reads other secrets")
    return volumes
