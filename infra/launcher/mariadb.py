"""A private MariaDB instance from Debian's mariadb-server binaries: own datadir and socket under .stack/."""

import getpass
import os
import subprocess

import pymysql

from launcher.environment import INFRA_DIR, STACK_DIR, StackConfig, render_template
from launcher.processes import Component, StartupFailed, done, needs_start, start, step, wait_until

MARIADB_DIR = STACK_DIR / "mariadb"
SOCKET = MARIADB_DIR / "mysqld.sock"
CONFIG = MARIADB_DIR / "my.cnf"


def component(config: StackConfig) -> Component:
    return Component("mariadb", config.db_port)


def up(config: StackConfig) -> None:
    mariadb = component(config)
    if needs_start(mariadb, config.db_port):
        render_template(INFRA_DIR / "mariadb" / "my.cnf", CONFIG, stack_dir=STACK_DIR, db_port=config.db_port)
        _initialise_datadir(mariadb)
        step(f"starting mariadb on 127.0.0.1:{config.db_port}")
        argv = ["/usr/sbin/mariadbd", f"--defaults-file={CONFIG}"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        start(mariadb, argv, dict(os.environ))
        wait_until(mariadb, lambda: SOCKET.exists() and _admin_sql("SELECT 1") is not None, 60, "accepting connections")
    step("creating databases and the application user")
    _create_databases_and_user(config)
    wait_until(mariadb, lambda: _app_user_can_connect(config), 20, "app user can connect", quiet=True)
    done("ok")


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


def _create_databases_and_user(config: StackConfig) -> None:
    user = pymysql.converters.escape_string(config.get("DB_USER", "app"))
    password = pymysql.converters.escape_string(config.get("DB_PASSWORD"))
    statements = []
    for database in config.databases:
        statements.append(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4;")
    for host in ("127.0.0.1", "localhost"):
        account = f"'{user}'@'{host}'"
        statements.append(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}';")
        statements.append(f"ALTER USER {account} IDENTIFIED BY '{password}';")
        for database in config.databases:
            statements.append(f"GRANT ALL PRIVILEGES ON `{database}`.* TO {account};")
        # ORDER_STORE=local (the demo's "before" picture): one database per order-service instance.
        orders_db = config.get("ORDERS_DB", "mydb").replace("_", "\\_")
        statements.append(f"GRANT ALL PRIVILEGES ON `{orders_db}\\_local\\_%`.* TO {account};")
    try:
        _admin_sql("\n".join(statements))
    except RuntimeError as exc:
        raise StartupFailed(f"mariadb: creating databases failed: {exc}") from exc


def _app_user_can_connect(config: StackConfig) -> bool:
    connection = pymysql.connect(
        host=config.get("DB_HOST", "127.0.0.1"),
        port=config.db_port,
        user=config.get("DB_USER"),
        password=config.get("DB_PASSWORD"),
        database=config.databases[0],
        connect_timeout=2,
    )
    connection.close()
    return True
