"""A private MariaDB instance from Debian's mariadb-server binaries: own datadir and socket under .stack/mariadb/; or,
with MARIADB_NODES=3, a Galera cluster of three such servers under .stack/mariadb-N/ (docs/cluster.md)."""

import getpass
import os
import re
import subprocess
from dataclasses import replace
from functools import partial
from pathlib import Path

from launcher.processes import (
    Component,
    StartupFailed,
    done,
    needs_start,
    render_template,
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
CONFIG = MARIADB_DIR / "my.cnf"
MARIADBD = "/usr/sbin/mariadbd"
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


def config_of(node: MariaDbNode) -> Path:
    return node.home / "my.cnf"


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
    node = config.mariadb_nodes[0]
    _write_config(config, node)
    _initialise_datadir(node)
    step(f"starting mariadb on 127.0.0.1:{config.db_port}")
    start(mariadb, _server_argv(node), dict(os.environ))
    wait_until(mariadb, lambda: SOCKET.exists() and _admin_sql("SELECT 1") is not None, 60, "accepting connections")


def _server_argv(node: MariaDbNode, *options: str) -> list[str]:
    argv = [MARIADBD, f"--defaults-file={config_of(node)}", *options]
    if os.geteuid() == 0:
        argv.append("--user=root")
    return argv


def _write_config(config: StackConfig, node: MariaDbNode) -> None:
    """my.cnf for the node; a Galera node's includes galera.cnf, filled with its peers and ports."""
    target = render_template(
        INFRA_DIR / "mariadb" / "my.cnf",
        config_of(node),
        home=node.home,
        log_file=Component.of(node).log_file,
        server_id=node.number,
        db_port=node.port,
        binlog_filter=_binlog_filter(config),
    )
    if galera(config):
        peers = ",".join(f"127.0.0.1:{peer.group_port}" for peer in config.mariadb_nodes)
        included = render_template(
            INFRA_DIR / "mariadb" / "galera.cnf",
            node.home / "galera.cnf",
            peers=peers,
            node_name=node.name,
            node_host="127.0.0.1",
            group_port=node.group_port,
            ist_port=node.ist_port,
            sst_port=node.sst_port,
            db_port=node.port,
            gtid_domain_id=10 + node.number,
            # rsync run by root writes as "nobody" (infra/mariadb/sst-bin/rsync says more).
            sst_method="rsync_owner" if os.geteuid() == 0 else "rsync",
            notify_cmd=f"{INFRA_DIR / 'mariadb' / 'wsrep-notify'} {socket_of(node)}",
        )
        with open(target, "a") as appended:
            appended.write(f"\n!include {included}\n")
    (node.home / "binlog").mkdir(parents=True, exist_ok=True)


def _binlog_filter(config: StackConfig) -> str:
    """Only catalogdb's changes in the binlog (what the cdc account may read), on a single server. Galera replicates
    what the binlog holds: there a filter would keep every other database's writes from the other nodes (seen: a row
    of mydb written on node 1 never reached 2 and 3), so a cluster's binlog holds every database."""
    if galera(config):
        return "# No binlog_do_db in a Galera cluster: it would filter what the nodes replicate (launcher.mariadb)."
    return f"binlog_do_db={config.databases[1]}"


def _binlog_on() -> bool:
    return (_admin_sql("SELECT @@log_bin") or "").strip() == "1"


def _initialise_datadir(node: MariaDbNode) -> None:
    if (node.home / "data" / "mysql").exists():
        return
    mariadb = Component.of(node)
    step(f"initialising {node.name} datadir")
    (node.home / "data").mkdir(parents=True, exist_ok=True)
    argv = [
        "mariadb-install-db",
        f"--defaults-file={config_of(node)}",
        "--auth-root-authentication-method=socket",
        "--skip-test-db",
        f"--user={getpass.getuser()}",
    ]
    with open(mariadb.log_file, "ab") as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise StartupFailed(f"{node.name}: mariadb-install-db failed; see {mariadb.log_file}")
    done("done")


# The Galera cluster.


def start_nodes(config: StackConfig, nodes: list[MariaDbNode]) -> None:
    """Start these Galera nodes (all down, or some of a running cluster) and wait until each is Synced. With no node
    of the cluster running, one of them bootstraps a new primary component: the one that may (grastate.dat), else the
    one that saw the most; the others join it one after another (IST, or SST by rsync)."""
    if not nodes:
        return
    for node in nodes:
        _write_config(config, node)
        _initialise_datadir(node)
    joiners = list(nodes)
    running = [node for node in config.mariadb_nodes if node not in nodes and Component.of(node).running()]
    if running and not any(node_state(node)[0] == "Primary" for node in running):
        _restore_primary_component(running)
    if not running:
        first = _bootstrap_node(nodes)
        joiners.remove(first)
        step(f"starting {first.name} on 127.0.0.1:{first.port} (bootstrapping the galera cluster)")
        start(Component.of(first), _server_argv(first, "--wsrep-new-cluster"), _node_env())
        wait_until(Component.of(first), partial(_primary_and_synced, first), 60, "primary and synced")
    for node in joiners:
        # After a crash grastate.dat holds no position, and a node started without one takes a full copy (SST);
        # given the position InnoDB recovers, it takes only the writesets it missed (IST) while a peer holds them.
        position = _recovered_position(node) if _grastate(node).get("seqno") == "-1" else None
        options = [f"--wsrep-start-position={position}"] if position else []
        step(f"starting {node.name} on 127.0.0.1:{node.port} (joining the galera cluster)")
        start(Component.of(node), _server_argv(node, *options), _node_env())
        wait_until(Component.of(node), partial(_primary_and_synced, node), JOIN_TIMEOUT_SECONDS, "joined and synced")


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


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    if os.geteuid() == 0:
        env["PATH"] = f"{SST_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


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


def _grastate(node: MariaDbNode) -> dict[str, str]:
    """The node's saved Galera state (uuid, seqno, safe_to_bootstrap); empty when it never ran."""
    path = node.home / "data" / "grastate.dat"
    if not path.exists():
        return {}
    return {
        key.strip(): value.strip()
        for key, sep, value in (line.partition(":") for line in path.read_text().splitlines())
        if sep and not key.startswith("#")
    }


def _bootstrap_node(nodes: list[MariaDbNode]) -> MariaDbNode:
    """Who starts a new primary component: the first node when none has run yet; else the one grastate.dat marks
    safe_to_bootstrap (the last to stop cleanly); else (all crashed) the one whose recovered seqno is highest, marked
    safe so that it may bootstrap."""
    states = {node: _grastate(node) for node in nodes}
    if not any(states.values()):
        return nodes[0]
    for node, state in states.items():
        if state.get("safe_to_bootstrap") == "1":
            return node
    seqnos = {node: _recovered_seqno(node, state) for node, state in states.items()}
    chosen = max(nodes, key=lambda node: seqnos[node])
    path = chosen.home / "data" / "grastate.dat"
    path.write_text(re.sub(r"safe_to_bootstrap:\s*0", "safe_to_bootstrap: 1", path.read_text()))
    print(f"==> no node may bootstrap safely; {chosen.name} saw the most (seqno {seqnos[chosen]}): it bootstraps")
    return chosen


def _recovered_seqno(node: MariaDbNode, state: dict[str, str]) -> int:
    """grastate.dat's seqno, or after a crash (-1) the position InnoDB recovers (mariadbd --wsrep-recover)."""
    seqno = int(state.get("seqno", "-1"))
    if seqno >= 0 or not state:
        return seqno
    position = _recovered_position(node)
    return int(position.rsplit(":", 1)[1]) if position else -1


def _recovered_position(node: MariaDbNode) -> str | None:
    """The cluster position (uuid:seqno) InnoDB recovers for a crashed node (mariadbd --wsrep-recover, as mysqld_safe
    asks it); None when it finds none."""
    log = node.home / "wsrep-recover.log"
    log.unlink(missing_ok=True)
    step(f"recovering {node.name}'s last position (mariadbd --wsrep-recover, log {log})")
    subprocess.run(
        _server_argv(node, "--wsrep-recover", f"--log-error={log}"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    found = re.findall(r"Recovered position: ([0-9a-f-]+:-?\d+)", log.read_text() if log.exists() else "")
    done(found[-1] if found else "none")
    return found[-1] if found else None


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
