"""A private MariaDB instance from Debian's mariadb-server binaries: own datadir and socket under .stack/."""

import getpass
import os
import subprocess

import pymysql

from launcher.environment import (
    CATALOG_SERVICE_DB,
    CDC_DB,
    INFRA_DIR,
    MONITOR_DB,
    ORDER_SERVICE_DB,
    ORDERS_MIGRATOR_DB,
    ORDERS_SINK_DB,
    STACK_DIR,
    USER_SERVICE_DB,
    DbAccount,
    StackConfig,
    render_template,
)
from launcher.processes import Component, StartupFailed, done, needs_start, start, step, stop, wait_until

MARIADB_DIR = STACK_DIR / "mariadb"
SOCKET = MARIADB_DIR / "mysqld.sock"
CONFIG = MARIADB_DIR / "my.cnf"


def component(config: StackConfig) -> Component:
    return Component("mariadb", config.db_port)


def up(config: StackConfig) -> None:
    mariadb = component(config)
    if needs_start(mariadb, config.db_port):
        _start_server(mariadb, config)
    elif not _binlog_on():
        # Started by an older checkout, before the catalog-source connector needed a row-based binlog.
        step("restarting mariadb with the binlog on (CDC needs it)")
        stop(mariadb)
        done()
        _start_server(mariadb, config)
    step("creating databases and the application user")
    _create_databases_and_user(config)
    wait_until(mariadb, lambda: _app_user_can_connect(config), 20, "app user can connect", quiet=True)
    done("ok")


def _start_server(mariadb: Component, config: StackConfig) -> None:
    render_template(
        INFRA_DIR / "mariadb" / "my.cnf",
        CONFIG,
        stack_dir=STACK_DIR,
        db_port=config.db_port,
        catalog_db=config.databases[1],
    )
    (MARIADB_DIR / "binlog").mkdir(parents=True, exist_ok=True)
    _initialise_datadir(mariadb)
    step(f"starting mariadb on 127.0.0.1:{config.db_port}")
    argv = ["/usr/sbin/mariadbd", f"--defaults-file={CONFIG}"]
    if os.geteuid() == 0:
        argv.append("--user=root")
    start(mariadb, argv, dict(os.environ))
    wait_until(mariadb, lambda: SOCKET.exists() and _admin_sql("SELECT 1") is not None, 60, "accepting connections")


def _binlog_on() -> bool:
    return (_admin_sql("SELECT @@log_bin") or "").strip() == "1"


def _initialise_datadir(mariadb: Component) -> None:
    if (MARIADB_DIR / "data" / "mysql").exists():
        return
    step("initialising mariadb datadir")
    (MARIADB_DIR / "data").mkdir(parents=True, exist_ok=True)
    argv = [
        "mariadb-install-db",
        f"--defaults-file={CONFIG}",
        "--auth-root-authentication-method=socket",
        "--skip-test-db",
        f"--user={getpass.getuser()}",
    ]
    with open(mariadb.log_file, "ab") as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise StartupFailed(f"mariadb: mariadb-install-db failed; see {mariadb.log_file}")
    done("done")


def _admin_sql(sql: str) -> str | None:
    """Run SQL as the OS user over the private socket (unix_socket authentication, no password)."""
    result = subprocess.run(
        ["mariadb", f"--socket={SOCKET}", "--user", getpass.getuser(), "--batch", "--skip-column-names"],
        input=sql,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return result.stdout


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _account_sql(config: StackConfig, user: str, password: str, grants: list[str]) -> list[str]:
    """Create or update an account from localhost and 127.0.0.1; revoke what it had, grant what it needs."""
    escaped_user, escaped_password = (pymysql.converters.escape_string(v) for v in (user, password))
    statements = []
    for host in ("127.0.0.1", "localhost"):
        account = f"'{escaped_user}'@'{host}'"
        statements.append(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{escaped_password}';")
        statements.append(f"ALTER USER {account} IDENTIFIED BY '{escaped_password}';")
        statements.append(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account};")
        statements.extend(f"GRANT {grant} TO {account};" for grant in grants)
    return statements


def _local_databases(config: StackConfig) -> str:
    """ORDER_STORE=local (the demo's "before" picture): one database per order-service instance."""
    return _quoted(config.databases[0].replace("_", "\\_") + "\\_local\\_%")


# The benchmarks' own databases (bench_<what>_<run>): made, filled and dropped by bench/, never read by the stack.
BENCH_DATABASES = _quoted("bench\\_%")


def database_grants(config: StackConfig) -> dict[DbAccount, list[str]]:
    """What each component's account may do: its own database, or for mydb.orders, only its part."""
    orders_db, catalog_db, users_db = (_quoted(name) for name in config.databases)
    local_dbs = _local_databases(config)
    return {
        ORDERS_MIGRATOR_DB: [f"ALL PRIVILEGES ON {orders_db}.*"],
        ORDER_SERVICE_DB: [f"SELECT ON {orders_db}.`orders`", f"ALL PRIVILEGES ON {local_dbs}.*"],
        # bench/sink_vs_raw.py's own connector writes a table of the bench's own database with the sink's account.
        ORDERS_SINK_DB: [
            f"SELECT, INSERT, UPDATE ON {orders_db}.`orders`",
            f"SELECT, INSERT, UPDATE ON {BENCH_DATABASES}.*",
        ],
        # What the Debezium MariaDB source needs: read the captured database (snapshot), take the brief global
        # read lock of its snapshot (RELOAD), list databases, and read the binlog as a replica would.
        CDC_DB: [f"SELECT ON {catalog_db}.*", "RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.*"],
        CATALOG_SERVICE_DB: [f"ALL PRIVILEGES ON {catalog_db}.*"],
        USER_SERVICE_DB: [f"ALL PRIVILEGES ON {users_db}.*"],
        # The monitor's console and its consistency auditor: mydb.orders, and catalogdb's stock and ledger
        # (catalogdb as a whole: its tables appear only when catalog-service first migrates, after these grants).
        MONITOR_DB: [f"SELECT ON {orders_db}.`orders`", f"SELECT ON {catalog_db}.*"],
    }


def _create_databases_and_user(config: StackConfig) -> None:
    statements = [f"CREATE DATABASE IF NOT EXISTS {_quoted(name)} CHARACTER SET utf8mb4;" for name in config.databases]
    operator_grants = [f"ALL PRIVILEGES ON {_quoted(name)}.*" for name in config.databases]
    operator_grants.append(f"ALL PRIVILEGES ON {_local_databases(config)}.*")
    operator_grants.append(f"ALL PRIVILEGES ON {BENCH_DATABASES}.*")
    statements += _account_sql(config, config.get("DB_USER", "app"), config.get("DB_PASSWORD"), operator_grants)
    # The migrator first: it creates mydb.orders, on which the other accounts get table-level rights later.
    statements += _account_sql(
        config,
        ORDERS_MIGRATOR_DB.user,
        ORDERS_MIGRATOR_DB.password(config),
        database_grants(config)[ORDERS_MIGRATOR_DB],
    )
    try:
        _admin_sql("\n".join(statements))
    except RuntimeError as exc:
        raise StartupFailed(f"mariadb: creating databases failed: {exc}") from exc


def grant_component_accounts(config: StackConfig) -> None:
    """Each component's own account (after the orders migration: some grants name the orders table)."""
    step("granting each component its own database account")
    statements = []
    for account, grants in database_grants(config).items():
        if account is not ORDERS_MIGRATOR_DB:
            statements += _account_sql(config, account.user, account.password(config), grants)
    try:
        _admin_sql("\n".join(statements))
    except RuntimeError as exc:
        raise StartupFailed(f"mariadb: granting the component accounts failed: {exc}") from exc
    done("ok")


def operator_connection(config: StackConfig, database: str, connect_timeout: int = 10) -> pymysql.Connection:
    """The operator's account (DB_USER in .env), autocommit: the launcher's checks, the demo, the benchmarks."""
    return pymysql.connect(
        host=config.get("DB_HOST", "127.0.0.1"),
        port=config.db_port,
        user=config.get("DB_USER"),
        password=config.get("DB_PASSWORD"),
        database=database,
        connect_timeout=connect_timeout,
        autocommit=True,
    )


def _app_user_can_connect(config: StackConfig) -> bool:
    operator_connection(config, config.databases[0], connect_timeout=2).close()
    return True
