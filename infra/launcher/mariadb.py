"""A private MariaDB instance from Debian's mariadb-server binaries: own datadir and socket under .stack/mariadb/; or,
with MARIADB_NODES=3, a Galera cluster of three such servers under .stack/mariadb-N/ (docs/cluster.md)."""

import getpass
import os
import subprocess
from dataclasses import replace
from functools import partial
from pathlib import Path

from launcher.processes import (
    START_SCRIPTS,
    Component,
    StartupFailed,
    done,
    needs_start,
    path_with,
    start,
    step,
    stop,
    wait_until,
)
from servicekit.database import connect_blocking
from stack_description.access import DB_ACCOUNTS, OPERATOR_DB, ORDERS_MIGRATOR_DB, account_sql, quoted
from stack_description.settings import INFRA_DIR, STACK_DIR, MariaDbNode, StackConfig

MARIADB_DIR = STACK_DIR / "mariadb"
SOCKET = MARIADB_DIR / "mysqld.sock"
START_MARIADB = str(START_SCRIPTS / "start-mariadb")
# A joiner may copy a donor's whole datadir (rsync) before it serves.
JOIN_TIMEOUT_SECONDS = 300
# The rsync_owner state transfer, found on the nodes' PATH: rsync whose daemon writes as the node's owner.
SST_BIN = INFRA_DIR / "mariadb" / "sst-bin"


def components(config: StackConfig) -> list[Component]:
    """Every MariaDB server of this stack (one, or three Galera nodes)."""
    return [Component.of(node) for node in config.mariadb_nodes]


def component(config: StackConfig) -> Component:
    """The first node (the only one outside a Galera cluster)."""
    return components(config)[0]


def socket_of(node: MariaDbNode) -> Path:
    return node.home / "mysqld.sock"


def galera(config: StackConfig) -> bool:
    return len(config.mariadb_nodes) > 1


def up(config: StackConfig) -> None:
    if galera(config):
        start_nodes(config, [node for node in config.mariadb_nodes if _needs_start(node)])
    else:
        _up_single(config)
    step("creating databases and the application user")
    _create_databases_and_user(config)
    wait_until(component(config), lambda: _app_user_can_connect(config), 20, "app user can connect", quiet=True)
    done("ok")


def _needs_start(node: MariaDbNode) -> bool:
    return needs_start(Component.of(node), node.port, node.group_port or None)


def _up_single(config: StackConfig) -> None:
    mariadb = component(config)
    if needs_start(mariadb, config.db_port):
        _start_server(mariadb, config)
    elif not _binlog_on():
        # Started by an older checkout, before the catalog-source connector needed a row-based binlog.
        step("restarting mariadb with the binlog on (CDC needs it)")
        stop(mariadb)
        done()
        _start_server(mariadb, config)


def _start_server(mariadb: Component, config: StackConfig) -> None:
    step(f"starting mariadb on 127.0.0.1:{config.db_port}")
    start(mariadb, [START_MARIADB], _script_env(config, config.mariadb_nodes[0]))
    wait_until(mariadb, lambda: SOCKET.exists() and _admin_sql("SELECT 1") is not None, 60, "accepting connections")


def _script_env(config: StackConfig, node: MariaDbNode) -> dict[str, str]:
    """What start-mariadb (infra/containers/bin, compose's too) is told natively: the node's folder, log and ports,
    and in a Galera cluster its peers (their group ports, and their sockets to ask whether one is primary)."""
    values: dict[str, object] = {
        "PATH": path_with(START_SCRIPTS),
        "MARIADB_NETWORK": "loopback",
        "MARIADB_HOME": node.home,
        "MARIADB_CONFIG_DIR": INFRA_DIR / "mariadb",
        "MARIADB_LOG": Component.of(node).log_file,
        "MARIADB_PORT": node.port,
        "CATALOG_DB": config.databases[1],
        "GALERA_NODE": node.number,
        "GALERA_PEERS": "",  # a single server
    }
    if galera(config):
        values |= {
            "GALERA_NODE_NAME": node.name,
            "GALERA_PEERS": ",".join(f"127.0.0.1:{peer.group_port}" for peer in config.mariadb_nodes),
            "GALERA_PEER_SOCKETS": " ".join(str(socket_of(peer)) for peer in config.mariadb_nodes if peer != node),
            "GALERA_GROUP_PORT": node.group_port,
            "GALERA_IST_PORT": node.ist_port,
            "GALERA_SST_PORT": node.sst_port,
            "WSREP_NOTIFY": INFRA_DIR / "mariadb" / "wsrep-notify",
        }
        if os.geteuid() == 0:
            # rsync run by root writes as "nobody" (infra/mariadb/sst-bin/rsync says more): ours, first on the PATH.
            values |= {"GALERA_SST_METHOD": "rsync_owner", "PATH": path_with(SST_BIN, START_SCRIPTS)}
    return {**os.environ, **{key: str(value) for key, value in values.items()}}


def _binlog_on() -> bool:
    return (_admin_sql("SELECT @@log_bin") or "").strip() == "1"


# The Galera cluster.


def start_nodes(config: StackConfig, nodes: list[MariaDbNode]) -> None:
    """Start these Galera nodes (all down, or some of a running cluster) together with start-mariadb, which makes
    each node's choice (join a primary component, found one, or wait for the node that may), and wait until each is
    Synced in a primary component."""
    if not nodes:
        return
    running = [node for node in config.mariadb_nodes if node not in nodes and Component.of(node).running()]
    if running and not any(node_state(node)[0] == "Primary" for node in running):
        _restore_primary_component(running)
    for node in nodes:
        step(f"starting {node.name} on 127.0.0.1:{node.port} (galera node)")
        start(Component.of(node), [START_MARIADB], _script_env(config, node))
        done()
    for node in nodes:
        step(f"waiting for {node.name}")
        wait_until(Component.of(node), partial(_primary_and_synced, node), JOIN_TIMEOUT_SECONDS, "synced")


def _restore_primary_component(running: list[MariaDbNode]) -> None:
    """The nodes that run lost their majority (non-primary, refusing writes) and the others are down, so nobody else
    can hold a primary component: the running node that saw the most becomes one again (Galera's pc.bootstrap),
    and the restarted nodes join it. Restarted nodes would not count towards the old majority: a new process is a
    new member."""
    survivor = max(running, key=_last_committed)
    step(f"{survivor.name} lost its majority (non-primary): making it the primary component again (pc.bootstrap)")
    _admin_sql("SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'", socket_of(survivor))
    wait_until(Component.of(survivor), partial(_primary_and_synced, survivor), 30, "primary and synced")


def _last_committed(node: MariaDbNode) -> int:
    answer = _admin_sql("SHOW GLOBAL STATUS LIKE 'wsrep_last_committed'", socket_of(node)).split()
    return int(answer[-1]) if answer else -1


def _primary_and_synced(node: MariaDbNode) -> bool:
    return node_state(node) == ("Primary", "Synced")


def node_state(node: MariaDbNode) -> tuple[str, str]:
    """(wsrep_cluster_status, wsrep_local_state_comment), e.g. ("Primary", "Synced"), asked over the node's socket."""
    status = dict(
        line.split("\t", 1)
        for line in _admin_sql(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_status', 'wsrep_local_state_comment')",
            socket_of(node),
        ).splitlines()
        if "\t" in line
    )
    return status.get("wsrep_cluster_status", ""), status.get("wsrep_local_state_comment", "")


def node_summary(node: MariaDbNode) -> str:
    """One line for `status`: the node's view of the cluster."""
    try:
        summary = _admin_sql(
            "SHOW GLOBAL STATUS WHERE Variable_name IN "
            "('wsrep_cluster_status', 'wsrep_local_state_comment', 'wsrep_cluster_size', 'wsrep_last_committed')",
            socket_of(node),
        )
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"not answering ({exc})"
    status = dict(line.split("\t", 1) for line in summary.splitlines() if "\t" in line)
    return (
        f"{status.get('wsrep_cluster_status', '?').lower()}, {status.get('wsrep_local_state_comment', '?').lower()}, "
        f"cluster size {status.get('wsrep_cluster_size', '?')}, last committed {status.get('wsrep_last_committed')}"
    )


# Accounts and databases: on the single server, or on one node of the primary component (Galera replicates them).


def _admin_socket(config: StackConfig) -> Path:
    """The socket of the server the launcher's SQL goes to: the single one, else the first synced Galera node."""
    if not galera(config):
        return SOCKET
    for node in config.mariadb_nodes:
        try:
            if node_state(node) == ("Primary", "Synced"):
                return socket_of(node)
        except (RuntimeError, subprocess.TimeoutExpired):
            continue
    raise StartupFailed("mariadb: no galera node is synced with a primary component; see `make status`")


def _admin_sql(sql: str, socket: Path = SOCKET) -> str:
    """Run SQL as the OS user over a private socket (unix_socket authentication, no password)."""
    result = subprocess.run(
        [
            "mariadb",
            f"--socket={socket}",
            "--user",
            getpass.getuser(),
            "--batch",
            "--skip-column-names",
        ],
        input=sql,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return result.stdout


def _run_sql(config: StackConfig, statements: list[str], what: str) -> None:
    try:
        _admin_sql("\n".join(statements), _admin_socket(config))
    except RuntimeError as exc:
        raise StartupFailed(f"mariadb: {what} failed: {exc}") from exc


def _create_databases_and_user(config: StackConfig) -> None:
    statements = [f"CREATE DATABASE IF NOT EXISTS {quoted(name)} CHARACTER SET utf8mb4;" for name in config.databases]
    # The migrator with the operator: it creates mydb.orders, on which the other accounts get table-level rights later.
    # The operator's account goes by the name DB_USER gives it.
    for account in (replace(OPERATOR_DB, user=config.get("DB_USER")), ORDERS_MIGRATOR_DB):
        statements += account_sql(account, config)
    _run_sql(config, statements, "creating databases")


def grant_component_accounts(config: StackConfig) -> None:
    """Each component's own account (after the orders migration: some grants name the orders table)."""
    step("granting each component its own database account")
    accounts = [account for account in DB_ACCOUNTS if account is not ORDERS_MIGRATOR_DB]
    _run_sql(
        config,
        [line for account in accounts for line in account_sql(account, config)],
        "granting the component accounts",
    )
    done("ok")


def _app_user_can_connect(config: StackConfig) -> bool:
    connect_blocking(config.operator_settings, config.databases[0], connect_timeout=2).close()
    return True
