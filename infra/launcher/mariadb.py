"""A private MariaDB instance from Debian's mariadb-server binaries: own datadir and socket under .stack/."""

import getpass
import os
import subprocess
from dataclasses import replace

import pymysql

from launcher.environment import (
    DB_ACCOUNTS,
    INFRA_DIR,
    OPERATOR_DB,
    ORDERS_MIGRATOR_DB,
    STACK_DIR,
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


def _account_sql(account: DbAccount, config: StackConfig) -> list[str]:
    """Create or update the account from each local host; revoke what it had, grant what it needs."""
    names = _database_names(config)
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


def _database_names(config: StackConfig) -> dict[str, str]:
    """The quoted databases a DbAccount's grants name."""
    orders, catalog, users = config.databases
    return {
        "orders": _quoted(orders),
        "catalog": _quoted(catalog),
        "users": _quoted(users),
        # A LIKE pattern: one database per order-service instance under ORDER_STORE=local.
        "orders_local": _quoted(orders.replace("_", "\\_") + "\\_local\\_%"),
        # The benchmarks' own databases (bench_<what>_<run>): made, filled and dropped by bench/.
        "bench": _quoted("bench\\_%"),
    }


def _run_sql(statements: list[str], what: str) -> None:
    try:
        _admin_sql("\n".join(statements))
    except RuntimeError as exc:
        raise StartupFailed(f"mariadb: {what} failed: {exc}") from exc


def _create_databases_and_user(config: StackConfig) -> None:
    statements = [f"CREATE DATABASE IF NOT EXISTS {_quoted(name)} CHARACTER SET utf8mb4;" for name in config.databases]
    # The migrator with the operator: it creates mydb.orders, on which the other accounts get table-level rights later.
    # The operator's account goes by the name DB_USER gives it.
    for account in (replace(OPERATOR_DB, user=config.get("DB_USER")), ORDERS_MIGRATOR_DB):
        statements += _account_sql(account, config)
    _run_sql(statements, "creating databases")


def grant_component_accounts(config: StackConfig) -> None:
    """Each component's own account (after the orders migration: some grants name the orders table)."""
    step("granting each component its own database account")
    accounts = [account for account in DB_ACCOUNTS if account is not ORDERS_MIGRATOR_DB]
    _run_sql(
        [line for account in accounts for line in _account_sql(account, config)], "granting the component accounts"
    )
    done("ok")


def operator_connection(config: StackConfig, database: str, connect_timeout: int = 10) -> pymysql.Connection:
    """The operator's account (DB_USER in .env), autocommit: the launcher's checks, the demo, the benchmarks."""
    return pymysql.connect(
        host=config.get("DB_HOST"),
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
