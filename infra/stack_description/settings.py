"""The stack's settings: .env at the repo root (made from .env.example on the first `make up`, its secrets random),
the layout `up` started, and where each clustered piece listens. Both launchers read them: the native one
(infra/launcher) and compose's one-shots (infra/containers)."""

import os
import re
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import TypeAdapter, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from servicekit.config import ServiceSettings
from servicekit.kafka import KafkaAccess

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
# STACK_DIR moves every pid, log and data file of a stack elsewhere (tests/cluster runs a second stack beside make up).
STACK_DIR = Path(os.environ.get("STACK_DIR") or REPO_ROOT / ".stack")
LOG_DIR = STACK_DIR / "logs"
# The layout `up` started (KAFKA_BROKERS, CONNECT_WORKERS, CATALOG_INSTANCES, MARIADB_NODES): until `down`, later
# commands (status, down, the tests, a plain `make up`) see the stack that runs, whatever .env says; the process
# environment still wins.
LAYOUT_FILE = STACK_DIR / "layout.env"
LAYOUT_KEYS = (
    "KAFKA_BROKERS",
    "CONNECT_WORKERS",
    "CATALOG_INSTANCES",
    "MARIADB_NODES",
    "DISCOVERY_INSTANCES",
    "GATEWAY_INSTANCES",
)
# Layout keys .env.example leaves commented out, and what they are then.
LAYOUT_DEFAULTS = {"MARIADB_NODES": 1, "DISCOVERY_INSTANCES": 1, "GATEWAY_INSTANCES": 1}

PLACEHOLDER = "change-me"
# The first line of a .env the launcher wrote itself: only there may it fill placeholders on its own.
GENERATED_MARKER = "# Written by `make up` from .env.example; secrets are random. Edit freely."
# 32 random bytes (what an HS256 key needs, RFC 7518) is the floor for every secret here.
MIN_SECRET_BYTES = 32


def is_secret(key: str) -> bool:
    return key.endswith(("_PASSWORD", "_SECRET"))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def env_file_path() -> Path:
    """The repo's .env; STACK_ENV_FILE points the launcher at another one (its own tests do)."""
    return Path(os.environ.get("STACK_ENV_FILE") or REPO_ROOT / ".env")


def example_lines() -> list[tuple[str, str, str]]:
    """(key, value, raw line) of .env.example; key is empty for comments and blank lines."""
    rows = []
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        is_setting = sep and not line.lstrip().startswith("#")
        rows.append((key.strip(), value.strip(), line) if is_setting else ("", "", line))
    return rows


@cache
def example_defaults() -> dict[str, str]:
    """What a key .env leaves out defaults to: .env.example's value, written there once (secrets have none)."""
    return {key: value for key, value, _ in example_lines() if key and not is_secret(key)}


def _filled(key: str, value: str) -> str:
    return new_secret() if is_secret(key) and value in ("", PLACEHOLDER) else value


def ensure_env_file() -> Path:
    """Create .env from .env.example with random secrets; add keys .env.example gained since; keep it 0600."""
    env_file = env_file_path()
    if not env_file.exists():
        lines = [GENERATED_MARKER]
        lines += [f"{key}={_filled(key, value)}" if key else line for key, value, line in example_lines()]
        # Owner-only from its creation: a chmod after writing would leave every secret readable for a moment.
        descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as created:
            created.write("\n".join(lines) + "\n")
    else:
        _complete(env_file)
    if env_file.stat().st_mode & 0o077:
        env_file.chmod(0o600)
        print(f"==> {env_file} holds secrets: its mode is now 0600 (owner only)")
    return env_file


def _complete(env_file: Path) -> None:
    """Append the keys an older .env lacks; in a .env we generated, replace placeholders too."""
    text = env_file.read_text()
    present = read_env_file(env_file)
    added = [f"{key}={_filled(key, value)}" for key, value, _ in example_lines() if key and key not in present]
    if text.startswith(GENERATED_MARKER):
        lines = []
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and is_secret(key.strip()) and value.strip() == PLACEHOLDER:
                line = f"{key.strip()}={new_secret()}"
            lines.append(line)
        text = "\n".join(lines) + "\n"
    if added:
        text = text.rstrip("\n") + "\n\n# Added by `make up` (new in .env.example)\n" + "\n".join(added) + "\n"
    env_file.write_text(text)


def weak_secrets(values: dict[str, str]) -> list[str]:
    """One line per secret that is the placeholder or too short, naming its key."""
    problems = []
    for key, value in values.items():
        if not is_secret(key):
            continue
        if value == PLACEHOLDER:
            problems.append(f"{key} is the placeholder {PLACEHOLDER!r}")
        elif len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{key} is {len(value.encode())} bytes; it needs at least {MIN_SECRET_BYTES}")
        elif re.search(r'["\'\\;\s]', value):
            problems.append(f"{key} holds a quote, backslash, semicolon or space (JAAS and SQL cannot carry them)")
    return problems


def weak_secrets_message(env_file: Path, problems: list[str]) -> str:
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return (
        f"{env_file} has weak secrets, so nothing was started:\n{listed}\n"
        f"Fix: delete those lines and run `make up` again (missing secrets are generated), or set each to "
        f"{MIN_SECRET_BYTES}+ random bytes, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )


def read_env_file(path: Path) -> dict[str, str]:
    """A .env file's settings as python-dotenv reads it (pydantic-settings' own reader; `export`, quotes and
    comments as a shell would take them)."""
    return {key: value or "" for key, value in dotenv_values(path, interpolate=False).items()}


class ExampleDefaults(PydanticBaseSettingsSource):
    """The lowest source: .env.example's value of every key .env leaves out (secrets have none)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return example_defaults().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(example_defaults())


class StackSettings(BaseSettings):
    """Every setting of .env, typed, read the way every service reads its own (pydantic-settings): the process
    environment first, then the layout `up` recorded (LAYOUT_FILE), then .env, then .env.example's defaults. A
    value of the wrong kind stops the launcher with the key named. Keys of .env not declared here are kept as
    they are (a user's own additions)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="allow")

    DB_HOST: str
    DB_PORT: int
    # Compose names its Galera nodes here (host:port, in the order clients try them); the native launcher derives
    # them from MARIADB_NODES (StackConfig.db_hosts).
    DB_HOSTS: str | None = None
    DB_USER: str
    DB_PASSWORD: str = ""
    ORDER_SERVICE_DB_PASSWORD: str = ""
    ORDERS_MIGRATOR_DB_PASSWORD: str = ""
    CATALOG_SERVICE_DB_PASSWORD: str = ""
    USER_SERVICE_DB_PASSWORD: str = ""
    ORDERS_SINK_DB_PASSWORD: str = ""
    CDC_DB_PASSWORD: str = ""
    MONITOR_DB_PASSWORD: str = ""
    ORDERS_DB: str
    CATALOG_DB: str
    USERS_DB: str
    MARIADB_NODES: int = 1
    KAFKA_BOOTSTRAP_SERVERS: str
    KAFKA_CONTROLLER_PORT: int
    KAFKA_ADMIN_PASSWORD: str = ""
    KAFKA_ORDER_SERVICE_PASSWORD: str = ""
    KAFKA_CATALOG_SERVICE_PASSWORD: str = ""
    KAFKA_CONNECT_PASSWORD: str = ""
    KAFKA_MONITOR_PASSWORD: str = ""
    KAFKA_CONNECT_WATCHDOG_PASSWORD: str = ""
    CONNECT_URL: str
    CONNECT_USER: str
    CONNECT_PASSWORD: str = ""
    CONNECT_MONITOR_USER: str
    CONNECT_MONITOR_PASSWORD: str = ""
    TOPIC_PARTITIONS: int
    KAFKA_BROKERS: int
    CONNECT_WORKERS: int
    CATALOG_INSTANCES: int
    KAFKA_REPLICATION_FACTOR: int | None = None
    KAFKA_MIN_INSYNC_REPLICAS: int | None = None
    DISCOVERY_URL: str
    DISCOVERY_PORT: int
    DISCOVERY_USER: str
    DISCOVERY_PASSWORD: str = ""
    DISCOVERY_PEERS: str | None = None
    DISCOVERY_INSTANCES: int = 1
    GATEWAY_PORT: int
    GATEWAY_MANAGEMENT_PORT: int
    GATEWAY_INSTANCES: int = 1
    MONITOR_PORT: int
    MONITOR_USER: str | None = None
    MONITOR_PASSWORD: str | None = None
    PROMETHEUS_PORT: int
    KAFKA_METRICS_PORT: int
    CONNECT_METRICS_PORT: int
    ZIPKIN_PORT: int
    # Kept as written; the services read it as a boolean (on/off, true/false, yes/no, 1/0), so it must be one.
    TRACING: str
    TRACING_SAMPLE_RATIO: float
    JWT_SECRET: str = ""
    JWT_TTL_SECONDS: int
    ADMIN_EMAIL: str
    ORDER_INSTANCES: int
    ORDER_STORE: Literal["kafka", "local"]
    ORDER_DEADLINE_SECONDS: int

    @field_validator("TRACING")
    @classmethod
    def _a_boolean(cls, value: str) -> str:
        TypeAdapter(bool).validate_python(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The files come in as init values (load: read without interpolating `$`, as compose reads .env), below the
        # process environment.
        return env_settings, init_settings, ExampleDefaults(settings_cls)

    def as_values(self) -> dict[str, str]:
        """Every setting a source gave, as the text a child process gets in its environment."""
        return {key: str(value) for key, value in self.model_dump(exclude_unset=True).items() if value is not None}


@dataclass(frozen=True)
class StackConfig:
    """The stack's settings as text (StackSettings.as_values), and what follows from them: where each node,
    worker and instance of the layout listens, and what each child process is given."""

    values: dict[str, str]

    @classmethod
    def load(cls) -> "StackConfig":
        """The stack's settings (StackSettings): .env (made from .env.example on the first call), the layout `up`
        recorded, the process environment over both."""
        files = read_env_file(ensure_env_file())
        if LAYOUT_FILE.exists():
            files.update(read_env_file(LAYOUT_FILE))
        # Keys of the files are the fields (and a user's extras), which mypy cannot see in a dict.
        return cls(StackSettings(**files).as_values())  # type: ignore[arg-type]

    @classmethod
    def from_environment(cls) -> "StackConfig":
        """The settings a container is given, from its environment alone (compose's one-shots)."""
        return cls(StackSettings().as_values())

    def with_values(self, **values: str) -> "StackConfig":
        return StackConfig({**self.values, **values})

    @property
    def layout(self) -> dict[str, str]:
        """How many of each clustered piece this configuration runs (what `up` records in LAYOUT_FILE)."""
        return {key: str(self.number(key, LAYOUT_DEFAULTS.get(key))) for key in LAYOUT_KEYS}

    def get(self, key: str, default: str | None = None) -> str:
        """The key's value; when unset, `default`, else .env.example's (empty for a secret)."""
        return self.values.get(key, example_defaults().get(key, "") if default is None else default)

    def number(self, key: str, default: int | None = None) -> int:
        """The key as a number; when unset or empty, `default`, else .env.example's."""
        return int(self.values.get(key) or (example_defaults()[key] if default is None else default))

    @property
    def db_port(self) -> int:
        return self.number("DB_PORT")

    @property
    def mariadb_nodes(self) -> list["MariaDbNode"]:
        """MARIADB_NODES: 1 (one server in .stack/mariadb) or 3 (one Galera cluster). Node n serves clients on
        DB_PORT + n - 1 (3306, 3307, 3308) and talks to its peers on DB_PORT + 1261 + 10 (n - 1) (4567, 4577, 4587,
        Galera's default first), receives incremental state transfers on the next port and full ones (rsync) on the
        one after that."""
        count = self.number("MARIADB_NODES", LAYOUT_DEFAULTS["MARIADB_NODES"])
        if count not in (1, 3):
            raise ValueError(f"MARIADB_NODES is {count}; it must be 1 or 3 (a Galera cluster needs a majority)")
        if count == 1:
            return [MariaDbNode("mariadb", 1, self.db_port, 0, STACK_DIR / "mariadb")]
        return [
            MariaDbNode(
                f"mariadb-{n}", n, self.db_port + n - 1, self.db_port + 1261 + 10 * (n - 1), STACK_DIR / f"mariadb-{n}"
            )
            for n in range(1, count + 1)
        ]

    @property
    def db_hosts(self) -> str:
        """Every MariaDB node as host:port, in the order clients try them (DB_HOSTS, servicekit's failover list);
        empty for a single server, which clients reach at DB_HOST and DB_PORT."""
        nodes = self.mariadb_nodes
        host = self.get("DB_HOST")
        return "" if len(nodes) == 1 else ",".join(f"{host}:{node.port}" for node in nodes)

    @property
    def operator_settings(self) -> ServiceSettings:
        """The operator's account (DB_USER in .env) over the stack's servers, as servicekit's clients take it
        (servicekit.database.connect_blocking): the launcher's checks, the tools, the tests. No service runs with it."""
        return ServiceSettings(
            _env_file=None,
            db_host=self.get("DB_HOST"),
            db_port=self.db_port,
            db_hosts=self.db_hosts,
            db_user=self.get("DB_USER"),
            db_password=self.get("DB_PASSWORD"),
        )

    @property
    def kafka_port(self) -> int:
        """The first node's client port (the launcher's nodes take the next pairs from there)."""
        return int(self.get("KAFKA_BOOTSTRAP_SERVERS").split(",")[0].rsplit(":", 1)[1])

    @property
    def kafka_brokers(self) -> int:
        """KAFKA_BROKERS: 1 (one combined broker+controller) or 3 (one KRaft quorum of three such nodes)."""
        brokers = self.number("KAFKA_BROKERS")
        if brokers not in (1, 3):
            raise ValueError(f"KAFKA_BROKERS is {brokers}; it must be 1 or 3 (a KRaft quorum needs a majority)")
        return brokers

    @property
    def kafka_replication_factor(self) -> int:
        """Copies of every topic: KAFKA_REPLICATION_FACTOR, else 1 on one broker and 3 on three."""
        return self.number("KAFKA_REPLICATION_FACTOR", 3 if self.kafka_brokers == 3 else 1)

    @property
    def kafka_min_insync_replicas(self) -> int:
        """Copies that must hold a write before it is acknowledged: else 1 on one broker and 2 on three."""
        return self.number("KAFKA_MIN_INSYNC_REPLICAS", 2 if self.kafka_brokers == 3 else 1)

    @property
    def kafka_nodes(self) -> list["KafkaNode"]:
        """The Kafka nodes the launcher runs here: node n on the n-th port pair from the first node's (9092/9093,
        9094/9095, 9096/9097) and the n-th JMX exporter port from KAFKA_METRICS_PORT (9404, 9406, 9408; Connect's
        workers take the odd ones between). A cluster keeps its data apart from the single node's."""
        controller_port = self.number("KAFKA_CONTROLLER_PORT")
        if self.kafka_brokers == 1:
            return [
                KafkaNode("kafka", 1, self.kafka_port, controller_port, self.kafka_metrics_port, STACK_DIR / "kafka")
            ]
        return [
            KafkaNode(
                f"kafka-{n}",
                n,
                self.kafka_port + 2 * (n - 1),
                controller_port + 2 * (n - 1),
                self.kafka_metrics_port + 2 * (n - 1),
                STACK_DIR / "kafka-cluster" / f"node-{n}",
            )
            for n in range(1, self.kafka_brokers + 1)
        ]

    @property
    def kafka_bootstrap_servers(self) -> str:
        """KAFKA_BOOTSTRAP_SERVERS; when it names one server of a cluster run here, every node's address."""
        servers = self.get("KAFKA_BOOTSTRAP_SERVERS")
        if "," in servers or self.kafka_brokers == 1:
            return servers
        host = servers.rsplit(":", 1)[0]
        return ",".join(f"{host}:{node.port}" for node in self.kafka_nodes)

    @property
    def kafka_access(self) -> KafkaAccess:
        """The brokers as the `admin` super user: the launcher, the tests and the tools."""
        return KafkaAccess(
            self.kafka_bootstrap_servers,
            "admin",
            self.get("KAFKA_ADMIN_PASSWORD"),
            replication_factor=self.kafka_replication_factor,
            min_insync_replicas=self.kafka_min_insync_replicas,
        )

    @property
    def kafka_metrics_port(self) -> int:
        return self.number("KAFKA_METRICS_PORT")

    @property
    def connect_metrics_port(self) -> int:
        return self.number("CONNECT_METRICS_PORT")

    @property
    def connect_url(self) -> str:
        return self.get("CONNECT_URL").rstrip("/")

    @property
    def connect_port(self) -> int:
        return int(self.connect_url.rsplit(":", 1)[1])

    @property
    def connect_workers(self) -> list["ConnectWorker"]:
        """CONNECT_WORKERS (1-3) workers of one group: REST on CONNECT_URL's port and the next ones (8083, 8084,
        8085), JMX exporter on CONNECT_METRICS_PORT and every second port after it (9405, 9407, 9409)."""
        count = self.number("CONNECT_WORKERS")
        if not 1 <= count <= 3:
            raise ValueError(f"CONNECT_WORKERS is {count}; it must be 1, 2 or 3")
        if count == 1:
            return [ConnectWorker("connect", self.connect_port, self.connect_metrics_port)]
        return [
            ConnectWorker(f"connect-{n}", self.connect_port + n - 1, self.connect_metrics_port + 2 * (n - 1))
            for n in range(1, count + 1)
        ]

    @property
    def connect_urls(self) -> list[str]:
        """Every worker's REST API: any of them answers for the whole group."""
        host = self.connect_url.rsplit(":", 1)[0]
        return [f"{host}:{worker.port}" for worker in self.connect_workers]

    @property
    def catalog_instances(self) -> int:
        """CATALOG_INSTANCES (1-3) catalog-service instances in one consumer group."""
        count = self.number("CATALOG_INSTANCES")
        if not 1 <= count <= 3:
            raise ValueError(f"CATALOG_INSTANCES is {count}; it must be 1, 2 or 3")
        return count

    @property
    def databases(self) -> list[str]:
        return [self.get("ORDERS_DB"), self.get("CATALOG_DB"), self.get("USERS_DB")]

    def process_env(self, **extra: str) -> dict[str, str]:
        """Environment for a child process: ours, plus .env, plus per-process values."""
        env = dict(os.environ)
        env.update(self.values)
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka_bootstrap_servers
        env["KAFKA_REPLICATION_FACTOR"] = str(self.kafka_replication_factor)
        env["KAFKA_MIN_INSYNC_REPLICAS"] = str(self.kafka_min_insync_replicas)
        if self.db_hosts:
            env["DB_HOSTS"] = self.db_hosts
        env.update(extra)
        return env

    def component_env(self, shared_secrets: tuple[str, ...], **extra: str) -> dict[str, str]:
        """Environment for one of our components: ours plus .env, without any secret of .env except
        `shared_secrets` (e.g. DISCOVERY_PASSWORD), plus its own accounts in `extra`."""
        env = {key: value for key, value in self.process_env().items() if key in shared_secrets or not is_secret(key)}
        env.update(extra)
        return env


@dataclass(frozen=True)
class KafkaNode:
    """One Kafka process run by the launcher: a broker and a KRaft controller, its data under `home`."""

    name: str  # its component: "kafka" alone, "kafka-1", "kafka-2", ... in a cluster
    node_id: int
    port: int
    controller_port: int
    metrics_port: int
    home: Path


@dataclass(frozen=True)
class MariaDbNode:
    """One MariaDB server run by the launcher: the single one, or a node of a Galera cluster, its data under `home`."""

    name: str  # its component: "mariadb" alone, "mariadb-1", "mariadb-2", ... in a Galera cluster
    number: int
    port: int
    # Galera's group communication (0 outside a cluster); incremental and full state transfers take the next two.
    group_port: int
    home: Path

    @property
    def ist_port(self) -> int:
        return self.group_port + 1

    @property
    def sst_port(self) -> int:
        return self.group_port + 2


@dataclass(frozen=True)
class ConnectWorker:
    """One Kafka Connect worker run by the launcher (all of them form one group)."""

    name: str  # "connect" alone, "connect-1", "connect-2", ... in a group of several
    port: int
    metrics_port: int
