"""The CDC source follows a live Galera node. Debezium's MariaDB connector reads one server's binlog
(database.hostname, database.port) and has no host list; when that node dies it retries it for good. In a Galera
cluster every node's binlog holds the same transactions under the same GTIDs (one wsrep GTID domain), so the
connector, pointed at another node, finds where it stopped and reads on. The watchdog does that pointing: when the
node a MariaDB source reads does not answer or is out of the cluster (non-primary, joining), it PUTs the
connector's config with the next Synced node of DB_HOSTS (after the lost one, round the list), and Connect restarts
the task there. A donor (Donor/Desynced) keeps its source: it is still in the cluster and applies what it queued
once done, and a global read lock makes a node one too, Debezium's own snapshot included (seen: moving on that sent
the starting source from node to node, each snapshot desyncing the next).

A node that rejoined by a full state transfer (SST) has a binlog that starts there. The source's committed
position is its last captured change (catalogdb changes are rare, and a cluster's binlog carries every database), so
such a node may not hold it: the task then fails with MariaDB's 1236 ("Could not find GTID state requested"), and
the watchdog moves the source on to the next Synced node as if its node were lost.

Decide (pure functions) apart from asking: `next_synced_node` and `lost_its_position` are the rules,
`SourceFollower` the I/O around them. With one server (no DB_HOSTS) it does nothing.
"""

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import httpx
import pymysql
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError

from connect_watchdog.config import WatchdogSettings
from servicekit.database import galera_state

log = logging.getLogger("connect-watchdog")

MARIADB_SOURCE_CLASS = "io.debezium.connector.mariadb.MariaDbConnector"
SYNCED = "Synced"
DONOR = "Donor/Desynced"
# What a node may be and keep the source reading it (see above); only a Synced node is moved to.
KEEPS_THE_SOURCE = (SYNCED, DONOR)
# A node that takes longer than this to accept a connection or to answer is as good as gone for the source.
PROBE_TIMEOUT_SECONDS = 2
# A connector config value that is one ${env:NAME} reference (what infra/connect/*.json use for the server).
ENV_REFERENCE = re.compile(r"\$\{env:(\w+)\}")
# MariaDB's answer (error 1236) to a replica asking for a GTID its binlogs no longer (or never) held.
POSITION_NOT_IN_BINLOG = re.compile(r"Could not find GTID state requested|[Ee]rror code: 1236")
# What the follower calls a node, reachable or not, whose binlog lacks the source's position.
WITHOUT_POSITION = "without the source's position in its binlog"


class Node(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def next_synced_node(current: Node, states: Mapping[Node, str | None], nodes: Sequence[Node]) -> Node | None:
    """Where a source reading `current` should read instead: None while `current` is Synced or a donor (it stays,
    however the list is ordered) or when no other node is Synced; else the first Synced node after `current` in
    `nodes`, round the list (from the first when `current` is not in it). `states`: a node's
    wsrep_local_state_comment, None for no answer; a node missing from it counts as not answering."""
    if states.get(current) in KEEPS_THE_SOURCE:
        return None
    start = nodes.index(current) + 1 if current in nodes else 0
    for node in [*nodes[start:], *nodes[:start]]:
        if node != current and states.get(node) == SYNCED:
            return node
    return None


def lost_its_position(status: Mapping[str, Any]) -> bool:
    """A source's status (GET /connectors/{name}/status) says a task failed because its node's binlog does not hold
    the position it resumes from."""
    return any(
        task.get("state") == "FAILED" and POSITION_NOT_IN_BINLOG.search(task.get("trace", ""))
        for task in status.get("tasks", [])
    )


def configured_node(config: Mapping[str, str], env: Mapping[str, str]) -> Node | None:
    """The node a source's config names (database.hostname, database.port), with `${env:NAME}` references taken from
    `env` (the worker resolves DB_HOST and DB_PORT from the same .env); None when it cannot be told."""

    def resolved(key: str) -> str | None:
        value = config.get(key)
        if value is None:
            return None
        reference = ENV_REFERENCE.fullmatch(value)
        return env.get(reference[1]) if reference else value

    host, port = resolved("database.hostname"), resolved("database.port")
    if not host or port is None or not port.isdigit():
        return None
    return Node(host, int(port))


def pointed_at(config: Mapping[str, str], node: Node) -> dict[str, str]:
    """The same config reading `node`: its host and port as plain values (Connect's REST guard lets them pass; every
    other field, the password's reference included, stays as registered)."""
    return {**config, "database.hostname": node.host, "database.port": str(node.port)}


def is_mariadb_source(config: Mapping[str, str]) -> bool:
    return config.get("connector.class") == MARIADB_SOURCE_CLASS


class SourceFollower:
    """Looks at each MariaDB source's node once per round; moves the source when its node is lost."""

    def __init__(self, settings: WatchdogSettings) -> None:
        self.settings = settings
        self.nodes = [Node(host, port) for host, port in settings.database.db_addresses]
        self.env = {"DB_HOST": settings.db_host, "DB_PORT": str(settings.db_port)}

    @property
    def enabled(self) -> bool:
        """Only with several servers to choose from (DB_HOSTS); one server is as it always was."""
        return len(self.nodes) > 1

    def follow(self, http: httpx.Client, name: str, config: Mapping[str, str], status: Mapping[str, Any]) -> bool:
        """Move source `name` (its registered `config`, its `status`) to the next Synced node if its own is lost or
        lacks its position; True if moved."""
        if not self.enabled or not is_mariadb_source(config):
            return False
        current = configured_node(config, self.env)
        if current is None:
            log.warning("%s: cannot tell which database node it reads; not following", name)
            return False
        states: dict[Node, str | None] = {
            current: WITHOUT_POSITION if lost_its_position(status) else self.node_state(current)
        }
        if states[current] in KEEPS_THE_SOURCE:
            return False
        states.update({node: self.node_state(node) for node in self.nodes if node != current})
        target = next_synced_node(current, states, self.nodes)
        if target is None:
            log.error("%s reads %s, which is %s, and no other node is Synced", name, current, states[current])
            return False
        log.warning(
            "moving %s from %s (%s) to %s: it resumes there by GTID",
            name,
            current,
            states[current] or "not answering",
            target,
        )
        http.put(f"/connectors/{name}/config", json=pointed_at(config, target)).raise_for_status()
        return True

    def node_state(self, node: Node) -> str | None:
        """The node's wsrep_local_state_comment (Synced, Donor/Desynced, Joining...), None when it does not answer;
        a server without Galera counts as Synced. As the watchdog's own account (SHOW STATUS needs no grant)."""
        url = self.settings.database.database_url(None, driver="mysql+pymysql").set(host=node.host, port=node.port)
        timeouts: dict[str, Any] = {"connect_timeout": PROBE_TIMEOUT_SECONDS, "read_timeout": PROBE_TIMEOUT_SECONDS}
        engine = create_engine(url, poolclass=pool.NullPool, connect_args=timeouts)
        try:
            connection = engine.raw_connection()  # a failed connect arrives as DBAPIError, a failed query as pymysql's
            try:
                state = galera_state(connection)
            finally:
                connection.close()
        except (DBAPIError, pymysql.Error):
            return None
        finally:
            engine.dispose()
        return SYNCED if state is None else state
