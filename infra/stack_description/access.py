"""Who may do what: each component's MariaDB account and Kafka principal, with its rights, described once. The native
launcher grants them (launcher.mariadb, launcher.kafka); infra/kafka/acls.txt (compose's kafka-access) and the
accounts of infra/containers/bin/start-mariadb are rendered from them (a unit test holds both to these)."""

from dataclasses import dataclass

import pymysql

from order_contract.topics import (
    CATALOG_CHANGES_TOPIC,
    ORDER_CLAIMS_TOPIC,
    ORDERS_DEAD_LETTER_TOPIC,
    ORDERS_SINK_GROUP,
    ORDERS_TOPIC,
    STOCK_DEAD_LETTER_TOPIC,
    STOCK_TOPIC,
)
from stack_description.settings import INFRA_DIR, StackConfig
from stack_description.topics import CATALOG_HEARTBEAT_TOPIC, CATALOG_HISTORY_TOPIC


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
        # The catalog-source connector (Debezium MariaDB): its change records, its schema history (written by its
        # task, read back in full by a consumer of its own group when the task starts), and its heartbeats.
        f"WRITE TOPIC LITERAL {CATALOG_CHANGES_TOPIC}",
        f"READ TOPIC LITERAL {CATALOG_HISTORY_TOPIC}",
        f"WRITE TOPIC LITERAL {CATALOG_HISTORY_TOPIC}",
        f"DESCRIBE_CONFIGS TOPIC LITERAL {CATALOG_HISTORY_TOPIC}",
        "READ GROUP LITERAL catalog-source-schemahistory",
        f"WRITE TOPIC LITERAL {CATALOG_HEARTBEAT_TOPIC}",
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

# acl_file_text() as a file, for compose's kafka-access and the benchmarks' private broker.
ACL_FILE = INFRA_DIR / "kafka" / "acls.txt"


def acl_file_text() -> str:
    """Every login's ACLs (the KafkaLogin descriptions above) in KafkaAccessSetup's file format."""
    lines = [
        "# Who may do what on the brokers, rendered from the KafkaLogin descriptions of",
        "# infra/stack_description/access.py (the reasons are there): `python -m infra.containers.compose_secrets",
        "# --render-access` rewrites this file,",
        "# a unit test holds it to them. Compose's kafka-access one-shot applies it; `make up`, the descriptions.",
        "#",
        "# principal      operation        resource          pattern   name",
    ]
    for login in KAFKA_LOGINS:
        lines.append("")
        for acl in login.acls:
            operation, resource, pattern, name = acl.split()
            lines.append(f"{login.user:<16} {operation:<16} {resource:<17} {pattern:<9} {name}")
    return "\n".join(lines) + "\n"


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def account_sql(account: DbAccount, config: StackConfig) -> list[str]:
    """Create or update the account from each local host; revoke what it had, grant what it needs."""
    names = database_names(config)
    password = account.password(config)
    escaped_user, escaped_password = (pymysql.converters.escape_string(v) for v in (account.user, password))
    statements = []
    # Natively every account is reached over loopback only.
    for host in ("127.0.0.1", "localhost"):
        name = f"'{escaped_user}'@'{host}'"
        statements.append(f"CREATE USER IF NOT EXISTS {name} IDENTIFIED BY '{escaped_password}';")
        statements.append(f"ALTER USER {name} IDENTIFIED BY '{escaped_password}';")
        statements.append(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {name};")
        statements.extend(f"GRANT {grant.format(**names)} TO {name};" for grant in account.grants)
    return statements


def database_names(config: StackConfig) -> dict[str, str]:
    """The quoted databases a DbAccount's grants name."""
    orders, catalog, users = config.databases
    return {
        "orders": quoted(orders),
        "catalog": quoted(catalog),
        "users": quoted(users),
        # A LIKE pattern: one database per order-service instance under ORDER_STORE=local.
        "orders_local": quoted(orders.replace("_", "\\_") + "\\_local\\_%"),
        # The benchmarks' own databases (bench_<what>_<run>): made, filled and dropped by bench/.
        "bench": quoted("bench\\_%"),
    }
