"""Which Galera node the CDC source reads after its own is lost (connect_watchdog.source_follower), without Connect
or MariaDB: stay while Synced, else the next Synced node after it in DB_HOSTS' order; the config PUT back names that
node in plain values and keeps every reference; the sink recovery's engine fails over through DB_HOSTS."""

import json
import socket
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from connect_watchdog.config import WatchdogSettings
from connect_watchdog.sink_recovery import SinkRecovery
from connect_watchdog.source_follower import (
    DONOR,
    MARIADB_SOURCE_CLASS,
    SYNCED,
    Node,
    SourceFollower,
    configured_node,
    lost_its_position,
    next_synced_node,
    pointed_at,
)
from order_contract.topics import ORDERS_SINK_CONNECTOR

pytestmark = pytest.mark.unit

ONE, TWO, THREE = Node("127.0.0.1", 3306), Node("127.0.0.1", 3307), Node("127.0.0.1", 3308)
NODES = [ONE, TWO, THREE]
REGISTERED = {
    "connector.class": MARIADB_SOURCE_CLASS,
    "database.hostname": "${env:DB_HOST}",
    "database.port": "${env:DB_PORT}",
    "database.password": "${env:CDC_DB_PASSWORD}",
    "gtid.source.includes": "1-.*",
}
ENV = {"DB_HOST": "127.0.0.1", "DB_PORT": "3306"}
RUNNING = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}
# What the task's trace said when the source was pointed at a node that had rejoined by SST (seen on a side stack).
PURGED = (
    "org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer.\n"
    "Caused by: io.debezium.DebeziumException: Could not find GTID state requested by slave in any binlog files."
    " Probably the slave state is too old and required binlog files have been purged. Error code: 1236;"
    " SQLSTATE: HY000."
)
WITHOUT_ITS_POSITION = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "FAILED", "trace": PURGED}]}
DB_HOSTS = ",".join(str(node) for node in NODES)


def settings(**values: Any) -> WatchdogSettings:
    return WatchdogSettings(connect_password="p", kafka_password="p", db_password="p", **values)


def test_a_source_whose_node_is_synced_stays_there_whatever_the_order() -> None:
    everyone_synced = dict.fromkeys(NODES, SYNCED)
    assert next_synced_node(ONE, everyone_synced, NODES) is None
    assert next_synced_node(THREE, everyone_synced, NODES) is None  # not moved back to the first


@pytest.mark.parametrize("lost", [None, "Initialized", "Joining", "Joined"])
def test_a_source_whose_node_is_lost_moves_to_the_next_synced_node_after_it(lost: str | None) -> None:
    assert next_synced_node(ONE, {ONE: lost, TWO: SYNCED, THREE: SYNCED}, NODES) == TWO
    assert next_synced_node(TWO, {ONE: SYNCED, TWO: lost, THREE: SYNCED}, NODES) == THREE
    assert next_synced_node(THREE, {ONE: SYNCED, TWO: SYNCED, THREE: lost}, NODES) == ONE  # round the list


def test_a_donor_keeps_its_source_and_is_not_moved_to() -> None:
    # A global read lock desyncs a node, Debezium's own snapshot's too: moving on would chase it from node to node.
    assert next_synced_node(ONE, {ONE: DONOR, TWO: SYNCED, THREE: SYNCED}, NODES) is None
    assert next_synced_node(ONE, {ONE: None, TWO: DONOR, THREE: SYNCED}, NODES) == THREE


def test_nodes_that_are_not_synced_are_passed_over_and_with_none_synced_the_source_stays() -> None:
    assert next_synced_node(ONE, {ONE: None, TWO: "Joining", THREE: SYNCED}, NODES) == THREE
    assert next_synced_node(ONE, {ONE: None, TWO: None, THREE: "Initialized"}, NODES) is None
    assert next_synced_node(ONE, {ONE: None}, NODES) is None  # not asked: not answering


def test_a_source_on_a_node_outside_the_list_moves_to_the_first_synced_one() -> None:
    elsewhere = Node("10.0.0.9", 3306)
    assert next_synced_node(elsewhere, {elsewhere: None, ONE: None, TWO: SYNCED, THREE: SYNCED}, NODES) == TWO


def test_the_configured_node_resolves_the_env_references_the_worker_resolves() -> None:
    assert configured_node(REGISTERED, ENV) == ONE
    assert configured_node(pointed_at(REGISTERED, THREE), ENV) == THREE
    assert configured_node({**REGISTERED, "database.port": "${env:ELSEWHERE}"}, ENV) is None
    assert configured_node({"connector.class": MARIADB_SOURCE_CLASS}, ENV) is None


def test_the_moved_config_names_the_node_in_plain_values_and_keeps_every_reference() -> None:
    moved = pointed_at(REGISTERED, TWO)
    assert moved == {**REGISTERED, "database.hostname": "127.0.0.1", "database.port": "3307"}
    # What Connect's REST guard accepts outside the password fields: no reference, or ${env:NAME} of a plain setting.
    others = [value for key, value in moved.items() if key != "database.password"]
    assert all("${" not in value or value.startswith("${env:") for value in others)
    assert REGISTERED["database.port"] == "${env:DB_PORT}", "the registered config itself is left as it was"


class ScriptedFollower(SourceFollower):
    """SourceFollower with the nodes' answers scripted (the decision and the PUT are under test)."""

    def __init__(self, states: dict[Node, str | None], **values: Any) -> None:
        super().__init__(settings(db_host="127.0.0.1", db_port=3306, **values))
        self.states = states
        self.asked: list[Node] = []

    def node_state(self, node: Node) -> str | None:
        self.asked.append(node)
        return self.states.get(node)


def connect_api(puts: list[tuple[str, dict[str, str]]]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        puts.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={})

    return httpx.Client(base_url="http://connect", transport=httpx.MockTransport(answer))


def test_the_follower_puts_the_source_config_with_the_next_synced_node_when_its_node_is_gone() -> None:
    puts: list[tuple[str, dict[str, str]]] = []
    follower = ScriptedFollower({ONE: None, TWO: SYNCED, THREE: SYNCED}, db_hosts=DB_HOSTS)
    assert follower.follow(connect_api(puts), "catalog-source", REGISTERED, RUNNING)
    assert puts == [("/connectors/catalog-source/config", pointed_at(REGISTERED, TWO))]


def test_the_follower_only_asks_the_sources_own_node_while_it_is_synced() -> None:
    puts: list[tuple[str, dict[str, str]]] = []
    follower = ScriptedFollower(dict.fromkeys(NODES, SYNCED), db_hosts=DB_HOSTS)
    assert not follower.follow(connect_api(puts), "catalog-source", pointed_at(REGISTERED, TWO), RUNNING)
    assert follower.asked == [TWO]
    assert puts == []


def test_a_task_failed_for_a_gtid_its_node_never_held_is_told_from_other_failures() -> None:
    assert lost_its_position(WITHOUT_ITS_POSITION)
    assert not lost_its_position(RUNNING)
    refused = {"tasks": [{"id": 0, "state": "FAILED", "trace": "Caused by: java.net.ConnectException: refused"}]}
    assert not lost_its_position(refused)
    restarting = {"tasks": [{"id": 0, "state": "RUNNING", "trace": PURGED}]}  # an old trace of a running task
    assert not lost_its_position(restarting)


def test_a_source_whose_synced_node_lacks_its_position_moves_on_to_the_next_synced_node() -> None:
    puts: list[tuple[str, dict[str, str]]] = []
    follower = ScriptedFollower(dict.fromkeys(NODES, SYNCED), db_hosts=DB_HOSTS)
    assert follower.follow(connect_api(puts), "catalog-source", REGISTERED, WITHOUT_ITS_POSITION)
    assert puts == [("/connectors/catalog-source/config", pointed_at(REGISTERED, TWO))]
    assert ONE not in follower.asked, "its own node answering does not keep it there"


def test_with_one_server_or_for_another_connector_the_follower_does_nothing() -> None:
    puts: list[tuple[str, dict[str, str]]] = []
    single = ScriptedFollower({})  # no DB_HOSTS: the one server at DB_HOST, as before
    assert not single.enabled
    assert not single.follow(connect_api(puts), "catalog-source", REGISTERED, RUNNING)
    cluster = ScriptedFollower({}, db_hosts=DB_HOSTS)
    sink = {"connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector", "connection.url": "jdbc:..."}
    assert not cluster.follow(connect_api(puts), ORDERS_SINK_CONNECTOR, sink, RUNNING)
    assert single.asked == cluster.asked == [] and puts == []


def refused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_sink_recoverys_engine_tries_every_server_of_db_hosts() -> None:
    first, second = refused_port(), refused_port()
    recovery = SinkRecovery(settings(db_hosts=f"127.0.0.1:{first},127.0.0.1:{second}"), httpx.Client(), "orders-sink")
    engine = recovery._sink_engine()
    try:
        with pytest.raises(OperationalError) as refused:
            engine.connect()
    finally:
        engine.dispose()
    # servicekit's failover went through both (one server alone names only DB_HOST's port).
    assert f"127.0.0.1:{first}" in str(refused.value) and f"127.0.0.1:{second}" in str(refused.value)
