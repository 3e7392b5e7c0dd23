"""Each component reaches only its own data: MariaDB accounts per component, Connect's REST API behind Basic auth,
and a Connect worker that holds no secret it does not need."""

import re
import uuid
from pathlib import Path

import httpx
import pymysql
import pytest

from launcher import connect, services
from stack_description import connectors, deployables
from stack_description.access import (
    CATALOG_SERVICE_DB,
    CDC_DB,
    ORDER_SERVICE_DB,
    ORDERS_MIGRATOR_DB,
    ORDERS_SINK_DB,
    USER_SERVICE_DB,
    DbAccount,
)
from stack_description.settings import StackConfig
from stack_support.database import operator_connection

pytestmark = pytest.mark.stack

DENIED = (1044, 1045, 1142, 1143)  # access denied to a database, a login, a table command, a column


def connect_as(config: StackConfig, account: DbAccount, database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(
        host=config.get("DB_HOST", "127.0.0.1"),
        port=config.db_port,
        user=account.user,
        password=account.password(config),
        database=database,
        autocommit=True,
    )


def refused(config: StackConfig, account: DbAccount, sql: str) -> bool:
    connection = connect_as(config, account)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    except pymysql.err.MySQLError as exc:
        return exc.args[0] in DENIED
    finally:
        connection.close()
    return False


def test_the_sinks_account_writes_orders_and_reads_nothing_else(stack_config: StackConfig) -> None:
    orders, catalog, users = stack_config.databases

    assert refused(stack_config, ORDERS_SINK_DB, f"SELECT email FROM `{users}`.users LIMIT 1")
    assert refused(stack_config, ORDERS_SINK_DB, f"SELECT stock FROM `{catalog}`.catalogs LIMIT 1")
    assert refused(stack_config, ORDERS_SINK_DB, f"DELETE FROM `{orders}`.orders WHERE order_id = 'none'")
    assert refused(stack_config, ORDERS_SINK_DB, f"DROP TABLE `{orders}`.orders")
    assert not refused(stack_config, ORDERS_SINK_DB, f"SELECT order_id FROM `{orders}`.orders LIMIT 1")


def test_order_service_only_reads_the_shared_table(stack_config: StackConfig) -> None:
    orders, _, users = stack_config.databases

    assert not refused(stack_config, ORDER_SERVICE_DB, f"SELECT order_id FROM `{orders}`.orders LIMIT 1")
    assert refused(stack_config, ORDER_SERVICE_DB, f"UPDATE `{orders}`.orders SET status = 'CONFIRMED' WHERE id < 0")
    assert refused(stack_config, ORDER_SERVICE_DB, f"INSERT INTO `{orders}`.orders (order_id) VALUES ('forged')")
    assert refused(stack_config, ORDER_SERVICE_DB, f"SELECT email FROM `{users}`.users LIMIT 1")


@pytest.mark.parametrize(("account", "own", "foreign"), [(CATALOG_SERVICE_DB, 1, 2), (USER_SERVICE_DB, 2, 1)])
def test_catalog_and_user_service_each_see_only_their_own_database(
    stack_config: StackConfig, account: DbAccount, own: int, foreign: int
) -> None:
    databases = stack_config.databases

    assert not refused(stack_config, account, f"SHOW TABLES FROM `{databases[own]}`")
    assert refused(stack_config, account, f"SHOW TABLES FROM `{databases[foreign]}`")
    assert refused(stack_config, account, f"SELECT order_id FROM `{databases[0]}`.orders LIMIT 1")


def test_connect_rest_needs_the_credentials(stack_config: StackConfig) -> None:
    url = f"{stack_config.connect_url}/connectors/{connectors.SINK_CONNECTOR}/status"

    anonymous = httpx.get(url, timeout=5)
    wrong = httpx.get(url, auth=("connect-admin", "not-the-password"), timeout=5)
    deletion = httpx.delete(f"{stack_config.connect_url}/connectors/{connectors.SINK_CONNECTOR}", timeout=5)
    right = httpx.get(url, auth=connectors.rest_auth(stack_config), timeout=5)

    assert (anonymous.status_code, wrong.status_code, deletion.status_code, right.status_code) == (401, 401, 401, 200)
    assert connect.connector_running(stack_config, connectors.SINK_CONNECTOR)


def test_a_validate_request_cannot_read_secrets_through_the_env_provider(stack_config: StackConfig) -> None:
    """A config validation echoes resolved values: neither JWT_SECRET nor any other secret may come back."""
    plugin = connectors.SINK_CLASS.rsplit(".", 1)[-1]
    config = {
        "connector.class": connectors.SINK_CLASS,
        "topics": "orders",
        "connection.url": "${env:JWT_SECRET}",
        "connection.username": "${env:DB_PASSWORD}",
        "collection.name.format": "${env:DISCOVERY_PASSWORD}",
    }

    response = httpx.put(
        f"{stack_config.connect_url}/connector-plugins/{plugin}/config/validate",
        json=config,
        auth=connectors.rest_auth(stack_config),
        timeout=30,
    )

    assert response.status_code in (200, 400), response.text
    for key in ("JWT_SECRET", "DB_PASSWORD", "DISCOVERY_PASSWORD", "CONNECT_PASSWORD", "ORDERS_SINK_DB_PASSWORD"):
        assert stack_config.get(key) not in response.text, f"{key} came back"


def test_the_connect_worker_holds_only_its_connectors_secrets(stack_config: StackConfig) -> None:
    pid = connect.component(stack_config).pid()
    assert pid is not None
    with open(f"/proc/{pid}/environ", "rb") as environ:
        variables = dict(entry.split(b"=", 1) for entry in environ.read().split(b"\0") if b"=" in entry)
    names = {name.decode() for name in variables}

    # The sink's and the CDC source's database accounts, and Connect's own Kafka login (for the source's
    # schema-history clients): nothing of another component.
    secrets = {name for name in names if name.endswith(("_PASSWORD", "_SECRET"))}
    assert secrets == {"SINK_DB_PASSWORD", "CDC_DB_PASSWORD"}
    its_own = ("ORDERS_SINK_DB_PASSWORD", "CDC_DB_PASSWORD", "KAFKA_CONNECT_PASSWORD")
    foreign = [key for key in stack_config.values if key.endswith(("_PASSWORD", "_SECRET")) and key not in its_own]
    environment = b"\0".join(variables.values())
    assert [key for key in foreign if stack_config.get(key).encode() in environment] == []


def environment_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as environ:
        entries = environ.read().split(b"\0")
    return dict(entry.decode(errors="replace").split("=", 1) for entry in entries if b"=" in entry)


def test_only_user_service_is_given_signing_material(stack_config: StackConfig) -> None:
    """Nobody holds JWT_SECRET; the signing key file's path goes to user-service alone, and only its owner reads it."""
    given: dict[str, bool] = {}
    for component in services.all_components(stack_config):
        pid = component.pid()
        assert pid is not None, f"{component.name} is not running"
        environment = environment_of(pid)
        assert stack_config.get("JWT_SECRET") not in environment.values(), component.name
        given[component.name] = "SIGNING_KEYS_FILE" in environment
    assert [name for name, has_it in given.items() if has_it] == ["user-service-1"]
    assert deployables.SIGNING_KEYS_FILE.stat().st_mode & 0o777 == 0o600
    assert deployables.SIGNING_KEYS_FILE.parent.stat().st_mode & 0o777 == 0o700


def test_no_python_component_runs_where_it_could_read_the_env_file(stack_config: StackConfig) -> None:
    """pydantic-settings reads `.env` from the working directory: the repo root's holds every secret."""
    readable = []
    for component in services.all_components(stack_config):
        pid = component.pid()
        assert pid is not None, f"{component.name} is not running"
        if (Path(f"/proc/{pid}/cwd") / ".env").exists():
            readable.append(component.name)
    assert readable == []


def test_order_service_is_not_given_an_account_that_may_change_the_orders_table(stack_config: StackConfig) -> None:
    """The launcher migrates mydb.orders as orders_migrator before the instances start; they only read it."""
    instances = [c for c in services.all_components(stack_config) if c.name.startswith("order-service-")]
    assert instances
    holding = []
    for component in instances:
        pid = component.pid()
        assert pid is not None, f"{component.name} is not running"
        given = set(environment_of(pid).values())
        for key in (ORDERS_MIGRATOR_DB.password_key, "DB_PASSWORD"):
            if stack_config.get(key) in given:
                holding.append(f"{component.name}: {key}")  # the key's name only: never print a secret
    assert holding == []


def binlog_tables_written(config: StackConfig, write: str) -> set[str]:
    """The `db.table` names of the row events the cdc account finds in the binlog after the operator ran `write`."""
    reader = connect_as(config, CDC_DB)
    operator = operator_connection(config, config.databases[1])
    try:
        with reader.cursor() as cursor:
            cursor.execute("SHOW MASTER STATUS")
            status = cursor.fetchone()
            assert status is not None, "the binlog is off"
            binlog_file, position = status[:2]
            with operator.cursor() as writer:
                for statement in write.split(";"):
                    writer.execute(statement)
            cursor.execute(f"SHOW BINLOG EVENTS IN '{binlog_file}' FROM {int(position)}")
            maps = [row[5] for row in cursor.fetchall() if row[2] == "Table_map"]
    finally:
        operator.close()
        reader.close()
    return {found.group(1) for info in maps if (found := re.search(r"\(([^)]+)\)", info))}


def test_the_cdc_account_finds_only_the_catalogs_changes_in_the_binlog(stack_config: StackConfig) -> None:
    """The binlog carries catalogdb alone (binlog_do_db): the cdc account, which reads it as a replica, sees no row
    of another database (before: every users row, e-mail and password hash, and every order)."""
    catalog = stack_config.databases[1]
    probe = f"binlog_probe_{uuid.uuid4().hex[:8]}"
    elsewhere = f"bench_{probe}"
    try:
        foreign = binlog_tables_written(
            stack_config,
            f"CREATE DATABASE `{elsewhere}`; CREATE TABLE `{elsewhere}`.t (id INT PRIMARY KEY); "
            f"INSERT INTO `{elsewhere}`.t VALUES (1)",
        )
        own = binlog_tables_written(
            stack_config,
            f"CREATE TABLE `{catalog}`.`{probe}` (id INT PRIMARY KEY); INSERT INTO `{catalog}`.`{probe}` VALUES (1)",
        )
    finally:
        cleanup = operator_connection(stack_config, catalog)
        with cleanup.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{elsewhere}`")
            cursor.execute(f"DROP TABLE IF EXISTS `{catalog}`.`{probe}`")
        cleanup.close()

    assert foreign == set()
    assert own == {f"{catalog}.{probe}"}


def test_the_connect_watchdog_holds_only_its_own_secrets_and_no_env_file(stack_config: StackConfig) -> None:
    """Connect's REST login, its own Kafka login and the sink's database account: not `admin`, not .env."""
    pid = connect.watchdog_component().pid()
    assert pid is not None, "connect-watchdog is not running"
    environment = environment_of(pid)
    secrets = {name for name in environment if name.endswith(("_PASSWORD", "_SECRET"))}
    assert secrets == {"CONNECT_PASSWORD", "KAFKA_PASSWORD", "DB_PASSWORD"}
    assert environment["KAFKA_PASSWORD"] == stack_config.get("KAFKA_CONNECT_WATCHDOG_PASSWORD")
    assert environment["KAFKA_USERNAME"] == "connect-watchdog"
    assert environment["DB_PASSWORD"] == stack_config.get("ORDERS_SINK_DB_PASSWORD")
    assert environment["DB_USER"] == "orders_sink"
    assert not (Path(f"/proc/{pid}/cwd") / ".env").exists()
