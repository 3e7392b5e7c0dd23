"""Kafka Connect's connectors, described once: infra/connect/<name>.json each, rendered for the stack's MariaDB (one
server, or a Galera cluster) and registered as they come out of here by both launchers (launcher.connect natively,
compose's register-connectors one-shot); and the REST logins the workers accept."""

import json

import httpx

from order_contract.topics import ORDERS_SINK_CONNECTOR
from stack_description.settings import INFRA_DIR, StackConfig

# What the connector configs may read through ${env:...} (and the worker.properties allow-list says the same).
CONNECTOR_ENV = ("DB_HOST", "DB_PORT", "ORDERS_DB", "CATALOG_DB", "KAFKA_BOOTSTRAP_SERVERS")
CONNECTOR_DIR = INFRA_DIR / "connect"
SINK_CONNECTOR = ORDERS_SINK_CONNECTOR
SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"
SOURCE_CONNECTOR = "catalog-source"
SOURCE_CLASS = "io.debezium.connector.mariadb.MariaDbConnector"
# Each connector's config is infra/connect/<name>.json.
CONNECTORS = (SINK_CONNECTOR, SOURCE_CONNECTOR)

# The sink's URL names the one server (DB_HOST, DB_PORT); a Galera cluster's every node instead.
SINGLE_SERVER_URL = "jdbc:mariadb://${env:DB_HOST}:${env:DB_PORT}/"
# wsrep_gtid_domain_id in infra/mariadb/galera.cnf: the GTIDs every node writes alike ("domain-server" of each).
GALERA_GTID_SOURCES = "1-.*"


def connector_config(config: StackConfig, name: str) -> dict[str, str]:
    """The connector's JSON as registered (`rendered` from its file)."""
    return rendered(config, name, json.loads((CONNECTOR_DIR / f"{name}.json").read_text()))


def rendered(config: StackConfig, name: str, connector_config: dict[str, str]) -> dict[str, str]:
    """A connector's JSON as registered: as written for one MariaDB server; for a Galera cluster, the sink's URL in
    MariaDB Connector/J's sequential mode over every node (the first that answers and is synced, in DB_HOSTS'
    order, so the sink writes where the services do) and the CDC source's position taken from the cluster's GTID
    domain alone. Debezium follows one host (database.hostname/port: node 1 here); after that node is lost,
    connect-watchdog points it at the next Synced node (connect_watchdog.source_follower), where it resumes by
    GTID."""
    if not config.db_hosts:
        return connector_config
    changed = dict(connector_config)
    if name == SINK_CONNECTOR:
        url = changed["connection.url"]
        if not url.startswith(SINGLE_SERVER_URL):
            raise ValueError(f"connect: {name}'s connection.url does not start with {SINGLE_SERVER_URL}")
        # galeraAllowedState=4: a node that is not Synced (non-primary, donor, joiner) is passed over.
        rest = url.removeprefix(SINGLE_SERVER_URL)
        separator = "&" if "?" in rest else "?"
        changed["connection.url"] = f"jdbc:mariadb:sequential://{config.db_hosts}/{rest}{separator}galeraAllowedState=4"
    elif name == SOURCE_CONNECTOR:
        changed["gtid.source.includes"] = GALERA_GTID_SOURCES
    return changed


def followed_node(config: StackConfig, name: str, registered: dict[str, str] | None) -> dict[str, str]:
    """In a Galera cluster, the node the CDC source reads as `registered` (connect-watchdog moves it off a lost node),
    so that registering again leaves it there instead of pointing it back at node 1, whose binlog may have started
    after the source's position (a node that rejoined by SST); {} for anything else or before the first
    registration."""
    if name != SOURCE_CONNECTOR or not config.db_hosts or not registered:
        return {}
    return {key: registered[key] for key in ("database.hostname", "database.port") if key in registered}


def put_connector(config: StackConfig, url: str, name: str, timeout: float = 30) -> httpx.Response:
    """Register the connector through one worker's REST API (`url`): its config as `connector_config` renders it,
    PUT (create or update), keeping the Galera node a CDC source was moved to (`followed_node`). The one
    registration both launchers make; the answer of the GET or the PUT is returned, and each caller decides what it
    asks again (409: the worker group rebalancing)."""
    auth = rest_auth(config)
    held = httpx.get(f"{url}/connectors/{name}/config", auth=auth, timeout=timeout)
    if held.status_code not in (200, 404):
        return held
    registered = dict(held.json()) if held.status_code == 200 else None
    body = {**connector_config(config, name), **followed_node(config, name, registered)}
    return httpx.put(f"{url}/connectors/{name}/config", json=body, auth=auth, timeout=timeout)


def rest_auth(config: StackConfig) -> httpx.BasicAuth:
    """The credentials the worker's REST API asks for (CONNECT_USER / CONNECT_PASSWORD in .env)."""
    return httpx.BasicAuth(config.get("CONNECT_USER"), config.get("CONNECT_PASSWORD"))


def monitor_rest_user(config: StackConfig) -> str:
    """The REST user that may only read connector states (the worker's guard refuses it anything else)."""
    return config.get("CONNECT_MONITOR_USER")


def monitor_rest_auth(config: StackConfig) -> httpx.BasicAuth:
    return httpx.BasicAuth(monitor_rest_user(config), config.get("CONNECT_MONITOR_PASSWORD"))
