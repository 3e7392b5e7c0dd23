"""The stack's Python deployables, each described once: what `python -m` runs, how the native launcher starts and
waits for it, its database account, its Kafka login (each with its rights: stack_description.access) and the other
secrets it reads. services.py starts them in this order from these entries alone; compose's secrets one-shot fills
each one's volume with the same (infra/containers/compose_secrets.py); tests/compose checks that docker-compose.yml
gives each container these account names and settings. A .env key's default is .env.example's."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from stack_description.access import (
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
)
from stack_description.settings import REPO_ROOT, STACK_DIR, StackConfig

# user-service's private signing keys (made at its first start, mode 0600); no other component is told the path.
SIGNING_KEYS_FILE = STACK_DIR / "user-service" / "signing-keys.json"
# Every component that registers or looks others up writes to the registry with this password.
REGISTRY = {"DISCOVERY_PASSWORD": "DISCOVERY_PASSWORD"}


@dataclass(frozen=True)
class Deployable:
    name: str  # the native component (a prefix when there are several: order-service-1) and the compose service
    module: str  # what `python -m` runs
    # "app": started by services.up, in DEPLOYABLES' order, each waited for; "one-shot": run to completion before
    # the apps (services.migrate_orders_table); "connect": started with the Connect workers, before their connectors.
    kind: Literal["app", "one-shot", "connect"] = "app"
    port: str | None = None  # the .env key of its fixed port; None: a free one, found through discovery
    # None: one process, named as the deployable; else how many (a number, or the .env key of one), name-1, name-2,
    # ..., each with its name as INSTANCE_ID (and so its own transactional id).
    instances: int | str | None = None
    # Ready when this path on its port answers 200; None: when registered UP in discovery as `app`.
    health: str | None = None
    timeout: float = 60  # seconds to get ready
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
    # Settings of .env it reads under another name: the variable -> the .env key.
    renamed: Mapping[str, str] = field(default_factory=dict)
    # Settings only the native launcher gives: paths on this host (compose's are the image's).
    native: Mapping[str, str] = field(default_factory=dict)
    # With a fixed port: the .env key of how many copies run side by side (the cluster's discovery peers and
    # gateways). The first keeps its plain name and ports; copy N is name-N, every setting in `ports` moved up by
    # port_step * (N - 1).
    copies: str | None = None
    ports: tuple[str, ...] = ()
    port_step: int = 1

    @property
    def app(self) -> str:
        """Its application name in discovery (Eureka's upper case)."""
        return self.name.upper()

    def port_number(self, config: StackConfig) -> int:
        if self.port is None:
            raise ValueError(f"{self.name} has no fixed port")
        return config.number(self.port)

    def instance_names(self, config: StackConfig) -> list[str]:
        if self.copies is not None:
            return [self.name, *(f"{self.name}-{n}" for n in range(2, config.number(self.copies, 1) + 1))]
        if self.instances is None:
            return [self.name]
        count = self.instances if isinstance(self.instances, int) else config.number(self.instances)
        return [f"{self.name}-{number}" for number in range(1, count + 1)]

    def copy_ports(self, config: StackConfig, copy: int) -> dict[str, str]:
        """The port settings of copy `copy` (1 for the first): each of `ports` moved up by its step."""
        shift = self.port_step * (copy - 1)
        return {key: str(config.number(key) + shift) for key in self.ports}

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
        own = {variable: config.get(key) for variable, key in {**self.secret_sources(), **self.renamed}.items()}
        settings = {**discovery_env(config), **self.settings, **self.native, **self.account_names(), **own, **extra}
        return config.component_env(self.optional, **settings)


# DISCOVERY_INSTANCES peers (the cluster's two) replicate every registration to each other; every client is given
# all of them in DISCOVERY_URL and fails over (discovery_env).
DISCOVERY = Deployable(
    "discovery",
    "discovery_server",
    port="DISCOVERY_PORT",
    health="/eureka/apps",
    secrets=REGISTRY,
    copies="DISCOVERY_INSTANCES",
    ports=("DISCOVERY_PORT",),
)
CATALOG_SERVICE = Deployable(
    "catalog-service",
    "catalog_service",
    instances="CATALOG_INSTANCES",  # in one consumer group
    timeout=90,
    db=CATALOG_SERVICE_DB,
    kafka=CATALOG_SERVICE_KAFKA,
    secrets=REGISTRY,
)
USER_SERVICE = Deployable(
    "user-service",
    "user_service",
    instances=1,
    timeout=90,
    db=USER_SERVICE_DB,
    secrets=REGISTRY,
    native={"SIGNING_KEYS_FILE": str(SIGNING_KEYS_FILE)},
)
# The instances only read mydb.orders: the migrator's account (a one-shot, before them) owns its schema.
ORDER_SERVICE = Deployable(
    "order-service",
    "order_service",
    instances="ORDER_INSTANCES",
    timeout=90,
    db=ORDER_SERVICE_DB,
    kafka=ORDER_SERVICE_KAFKA,
    secrets=REGISTRY,
    settings={"MIGRATE_ORDERS_TABLE": "false"},
)
GATEWAY = Deployable(
    "gateway",
    "api_gateway",
    port="GATEWAY_PORT",
    health="/gateway/health_check",
    secrets=REGISTRY,
    volume="discovery",
    # GATEWAY_INSTANCES side by side (the cluster's two: 8000 and 8002, management ports 8001 and 8003), each
    # finding the instances itself; clients fail over between them.
    copies="GATEWAY_INSTANCES",
    ports=("GATEWAY_PORT", "GATEWAY_MANAGEMENT_PORT"),
    port_step=2,
    native={"GATEWAY_ROUTES": str(REPO_ROOT / "gateway" / "routes.yaml")},
)
ORDERS_MIGRATOR = Deployable("orders-migrator", "alembic", kind="one-shot", db=ORDERS_MIGRATOR_DB)
# Connect's REST login is the read-only user's, never the admin's; MONITOR_PASSWORD (with MONITOR_USER) turns on
# its Basic auth when .env sets it (stack_monitor/gate.py).
MONITOR = Deployable(
    "monitor",
    "stack_monitor",
    port="MONITOR_PORT",
    db=MONITOR_DB,
    kafka=MONITOR_KAFKA,
    secrets={**REGISTRY, "CONNECT_PASSWORD": "CONNECT_MONITOR_PASSWORD"},
    optional=("MONITOR_PASSWORD",),
    # The auditor's full pass holds every order for a moment; with the C allocator, malloc_trim afterwards gives
    # that memory back (pymalloc kept ~87 MB of half-used arenas): 155-172 MB at rest -> 127 MB (bench/perf-notes.md).
    settings={"PYTHONMALLOC": "malloc", "INSTANCE_ID": "monitor-1"},
    renamed={"CONNECT_USER": "CONNECT_MONITOR_USER"},
)
# Restarts, stops and resumes connectors (the admin REST login); its recovery replays `orders` as its own principal
# and writes the rows the sink would, with the sink's account.
CONNECT_WATCHDOG = Deployable(
    "connect-watchdog",
    "connect_watchdog",
    kind="connect",
    db=ORDERS_SINK_DB,
    kafka=CONNECT_WATCHDOG_KAFKA,
    secrets={"CONNECT_PASSWORD": "CONNECT_PASSWORD"},
)


def discovery_urls(config: StackConfig) -> list[str]:
    """Every discovery server's /eureka URL on this host, the first one's first."""
    return [
        f"http://127.0.0.1:{DISCOVERY.copy_ports(config, copy)['DISCOVERY_PORT']}/eureka"
        for copy in range(1, len(DISCOVERY.instance_names(config)) + 1)
    ]


def discovery_env(config: StackConfig) -> dict[str, str]:
    """With several discovery servers: every client's DISCOVERY_URL lists them all, and each server has the others
    as its DISCOVERY_PEERS (it skips its own URL in the list). With one, .env's DISCOVERY_URL as it is."""
    urls = discovery_urls(config)
    if len(urls) < 2:
        return {}
    return {"DISCOVERY_URL": ",".join(urls), "DISCOVERY_PEERS": ",".join(urls)}


# In start order.
DEPLOYABLES = (
    ORDERS_MIGRATOR,
    CONNECT_WATCHDOG,
    DISCOVERY,
    USER_SERVICE,  # first of the apps: the others load its token keys before they register
    CATALOG_SERVICE,
    ORDER_SERVICE,
    GATEWAY,
    MONITOR,
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
