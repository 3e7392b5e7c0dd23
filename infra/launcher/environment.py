"""Where things are, and the configuration every component reads (.env at the repo root)."""

import os
import re
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from order_contract.topics import (
    CATALOG_CHANGES_TOPIC,
    ORDER_CLAIMS_TOPIC,
    ORDERS_DEAD_LETTER_TOPIC,
    ORDERS_SINK_GROUP,
    ORDERS_TOPIC,
    STOCK_DEAD_LETTER_TOPIC,
    STOCK_TOPIC,
)
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
PID_DIR = STACK_DIR / "pids"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
KAFKA_LIB = INFRA_DIR / "target" / "kafka" / "lib"
CONNECT_PLUGINS = INFRA_DIR / "target" / "connect-plugins"
JMX_EXPORTER_AGENT = INFRA_DIR / "target" / "agents" / "jmx_prometheus_javaagent.jar"


def metrics_agent(port: int, rules: str) -> str:
    """The JVM option that serves this JVM's JMX beans as Prometheus metrics on 127.0.0.1:`port`, read by the
    rules in infra/prometheus/`rules`."""
    return f"-javaagent:{JMX_EXPORTER_AGENT}=127.0.0.1:{port}:{INFRA_DIR / 'prometheus' / rules}"


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
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


@dataclass(frozen=True)
class StackConfig:
    """The .env values, with the process environment taking precedence (as pydantic-settings does)."""

    values: dict[str, str]

    @classmethod
    def load(cls) -> "StackConfig":
        values = read_env_file(ensure_env_file())
        if LAYOUT_FILE.exists():
            values.update(read_env_file(LAYOUT_FILE))
        # The environment wins for every key .env has, and for the layout (`make up-cluster` sets MARIADB_NODES and
        # the like, which a .env from .env.example may not name).
        values.update({k: v for k, v in os.environ.items() if k in values or k in LAYOUT_KEYS})
        return cls(values)

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


# Who may do what: each component's MariaDB account and Kafka principal, with its rights, described once. The native
# launcher grants them (launcher.mariadb, launcher.kafka); infra/kafka/acls.txt (compose's kafka-access) and the
# accounts of infra/containers/bin/start-mariadb are rendered from them (a unit test holds both to these).


@dataclass(frozen=True)
class DbAccount:
    """A MariaDB account of one component: rights on its own data only.

    `grants` in MariaDB's GRANT syntax; {orders}, {catalog}, {users} are the configured databases, {orders_local}
    the ORDER_STORE=local databases (one per order-service instance), {bench} the benchmarks' own databases."""

    user: str
    password_key: str
    grants: tuple[str, ...] = ()

    def password(self, config: StackConfig) -> str:
        return config.get(self.password_key)

    def env(self, config: StackConfig, prefix: str = "DB") -> dict[str, str]:
        """How a process is told to use this account (`DB_USER`/`DB_PASSWORD`, or another prefix)."""
        return {f"{prefix}_USER": self.user, f"{prefix}_PASSWORD": self.password(config)}


# DB_USER/DB_PASSWORD in .env is the operator's account (the launcher's checks, the tests, the demo's reads);
# no service runs with it. Its name is DB_USER's ("app" when unset).
OPERATOR_DB = DbAccount(
    "app",
    "DB_PASSWORD",
    (
        "ALL PRIVILEGES ON {orders}.*",
        "ALL PRIVILEGES ON {catalog}.*",
        "ALL PRIVILEGES ON {users}.*",
        "ALL PRIVILEGES ON {orders_local}.*",
        "ALL PRIVILEGES ON {bench}.*",
    ),
)
# The one account with DDL rights on mydb: order-service's Alembic history, run before the instances start.
ORDERS_MIGRATOR_DB = DbAccount("orders_migrator", "ORDERS_MIGRATOR_DB_PASSWORD", ("ALL PRIVILEGES ON {orders}.*",))
# The instances only read mydb.orders (the sink writes it); ORDER_STORE=local gives each a database of its own.
ORDER_SERVICE_DB = DbAccount(
    "order_service",
    "ORDER_SERVICE_DB_PASSWORD",
    ("SELECT ON {orders}.`orders`", "ALL PRIVILEGES ON {orders_local}.*"),
)
# The orders sink; bench/sink_vs_raw.py's own connector writes a table of the bench's own database with it.
ORDERS_SINK_DB = DbAccount(
    "orders_sink",
    "ORDERS_SINK_DB_PASSWORD",
    ("SELECT, INSERT, UPDATE ON {orders}.`orders`", "SELECT, INSERT, UPDATE ON {bench}.*"),
)
# The catalog-source connector (Debezium MariaDB), writes nothing: it reads the captured database (snapshot), takes
# the brief global read lock of its snapshot (RELOAD), lists databases, and reads the binlog as a replica would.
CDC_DB = DbAccount(
    "cdc",
    "CDC_DB_PASSWORD",
    ("SELECT ON {catalog}.*", "RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.*"),
)
CATALOG_SERVICE_DB = DbAccount("catalog_service", "CATALOG_SERVICE_DB_PASSWORD", ("ALL PRIVILEGES ON {catalog}.*",))
USER_SERVICE_DB = DbAccount("user_service", "USER_SERVICE_DB_PASSWORD", ("ALL PRIVILEGES ON {users}.*",))
# The monitor's console and its consistency auditor, writes nothing: mydb.orders, and catalogdb's stock and ledger
# (catalogdb as a whole: its tables appear only when catalog-service first migrates, after the grants).
MONITOR_DB = DbAccount("monitor", "MONITOR_DB_PASSWORD", ("SELECT ON {orders}.`orders`", "SELECT ON {catalog}.*"))
# Every component's account, the operator's aside.
DB_ACCOUNTS = (
    ORDERS_MIGRATOR_DB,
    ORDER_SERVICE_DB,
    ORDERS_SINK_DB,
    CDC_DB,
    CATALOG_SERVICE_DB,
    USER_SERVICE_DB,
    MONITOR_DB,
)


@dataclass(frozen=True)
class KafkaLogin:
    """A Kafka principal of one component: a SCRAM-SHA-512 login and exactly these ACLs (KRaft's StandardAuthorizer
    allows nothing else; `admin`, the launcher's, the tests' and the tools', is a super user instead).

    `acls`: "OPERATION RESOURCE-TYPE PATTERN NAME" each, allowed from any host. A TOPIC WRITE or READ includes
    DESCRIBE; a transactional producer needs WRITE on its transactional id."""

    user: str
    acls: tuple[str, ...] = ()

    @property
    def password_key(self) -> str:
        return f"KAFKA_{self.user.upper().replace('-', '_')}_PASSWORD"

    def env(self, config: StackConfig) -> dict[str, str]:
        """How a process is told to log in as this principal (ServiceSettings.kafka_username/kafka_password)."""
        return {"KAFKA_USERNAME": self.user, "KAFKA_PASSWORD": config.get(self.password_key)}


ORDER_SERVICE_KAFKA = KafkaLogin(
    "order-service",
    (
        # It publishes each order and its stock request in one transaction.
        f"WRITE TOPIC LITERAL {ORDERS_TOPIC}",
        f"WRITE TOPIC LITERAL {STOCK_TOPIC}",
        "WRITE TRANSACTIONAL_ID PREFIXED order-service:",
        # The instances share the orders partitions in one group to expire unanswered orders (saga deadlines): each
        # owner publishes EXPIRED and the expiry notice in a transaction of its own per partition.
        f"READ TOPIC LITERAL {ORDERS_TOPIC}",
        "READ GROUP LITERAL order-service-expiry",
        # Each instance reads the whole catalog-changes topic into its catalog read model (no group).
        f"READ TOPIC LITERAL {CATALOG_CHANGES_TOPIC}",
        # Read your own writes: each instance follows orders (above) and order-claims (no group), writes its
        # Idempotency-Key claims there, and reads how far the sink has written (its group's committed offsets only).
        f"READ TOPIC LITERAL {ORDER_CLAIMS_TOPIC}",
        f"WRITE TOPIC LITERAL {ORDER_CLAIMS_TOPIC}",
        f"DESCRIBE GROUP LITERAL {ORDERS_SINK_GROUP}",
    ),
)
# It consumes stock requests in its group and answers on `orders` (or dead-letters) in the transaction that
# commits its offsets.
CATALOG_SERVICE_KAFKA = KafkaLogin(
    "catalog-service",
    (
        f"READ TOPIC LITERAL {STOCK_TOPIC}",
        "READ GROUP LITERAL catalog-service",
        f"WRITE TOPIC LITERAL {ORDERS_TOPIC}",
        f"WRITE TOPIC LITERAL {STOCK_DEAD_LETTER_TOPIC}",
        "WRITE TRANSACTIONAL_ID PREFIXED catalog-service:",
    ),
)
# The Connect workers: their group and internal topics, which they create on the first start and whose cleanup
# policy they check (DESCRIBE_CONFIGS), but may neither delete nor reconfigure.
CONNECT_INTERNAL_TOPICS = ("connect-configs", "connect-offsets", "connect-status")
CONNECT_KAFKA = KafkaLogin(
    "connect",
    (
        "READ GROUP LITERAL kafka-sync-connect",
        *(
            f"{operation} TOPIC LITERAL {topic}"
            for topic in CONNECT_INTERNAL_TOPICS
            for operation in ("CREATE", "READ", "WRITE", "DESCRIBE_CONFIGS")
        ),
        # The orders sink: its consumer group, and its dead letters.
        f"READ TOPIC LITERAL {ORDERS_TOPIC}",
        f"READ GROUP LITERAL {ORDERS_SINK_GROUP}",
        f"WRITE TOPIC LITERAL {ORDERS_DEAD_LETTER_TOPIC}",
        # The catalog-source connector (Debezium MariaDB): its change records, and its schema history (written by
        # its task, read back in full by a consumer of its own group when the task starts).
        f"WRITE TOPIC LITERAL {CATALOG_CHANGES_TOPIC}",
        "READ TOPIC LITERAL catalog-source-schema-history",
        "WRITE TOPIC LITERAL catalog-source-schema-history",
        "DESCRIBE_CONFIGS TOPIC LITERAL catalog-source-schema-history",
        "READ GROUP LITERAL catalog-source-schemahistory",
        # A benchmark's own sink (bench/sink_vs_raw.py): its topic and its connector's group, removed when it ends.
        "READ TOPIC PREFIXED bench-orders-",
        "READ GROUP PREFIXED connect-bench-sink-",
    ),
)
# The monitor rates every consumer group (Burrow's rules) from committed and end offsets (DESCRIBE, no group joined);
# its consistency auditor reads the two topics it reconciles and the sink's dead letters (no group, no commit).
MONITOR_KAFKA = KafkaLogin(
    "monitor",
    (
        "DESCRIBE GROUP LITERAL *",
        "DESCRIBE TOPIC LITERAL *",
        f"READ TOPIC LITERAL {ORDERS_TOPIC}",
        f"READ TOPIC LITERAL {STOCK_TOPIC}",
        f"READ TOPIC LITERAL {ORDERS_DEAD_LETTER_TOPIC}",
    ),
)
# The connect-watchdog's sink recovery: replays orders from the sink's committed offsets (no group) and moves a
# record the database refuses to the sink's dead letters.
CONNECT_WATCHDOG_KAFKA = KafkaLogin(
    "connect-watchdog",
    (f"READ TOPIC LITERAL {ORDERS_TOPIC}", f"WRITE TOPIC LITERAL {ORDERS_DEAD_LETTER_TOPIC}"),
)
KAFKA_LOGINS = (ORDER_SERVICE_KAFKA, CATALOG_SERVICE_KAFKA, CONNECT_KAFKA, CONNECT_WATCHDOG_KAFKA, MONITOR_KAFKA)


def render_template(template: Path, target: Path, *, private: bool = False, **values: object) -> Path:
    """Fill {{name}} placeholders of a config file we ship and write it under .stack/ (owner-only if `private`)."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    unfilled = re.search(r"\{\{\w+\}\}", text)
    if unfilled:
        raise ValueError(f"{template}: no value for {unfilled.group(0)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if private:
        target.touch(mode=0o600)
        target.chmod(0o600)
    target.write_text(text)
    return target
