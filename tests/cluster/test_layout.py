"""Where cluster mode puts things (pure StackConfig logic, no processes)."""

import pytest

from connect_watchdog.config import WatchdogSettings
from connect_watchdog.source_follower import SourceFollower
from launcher import connect
from launcher.services import instances
from stack_description import connectors
from stack_description.deployables import DISCOVERY, GATEWAY, ORDER_SERVICE
from stack_description.settings import STACK_DIR, StackConfig
from stack_support.side_stack import shifted

pytestmark = pytest.mark.unit

BASE = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "KAFKA_CONTROLLER_PORT": "9093",
    "CONNECT_URL": "http://127.0.0.1:8083",
}


def test_one_broker_keeps_todays_node_ports_data_and_single_copies() -> None:
    config = StackConfig({**BASE, "KAFKA_BROKERS": "1"})

    [node] = config.kafka_nodes

    assert (node.name, node.port, node.controller_port, node.metrics_port) == ("kafka", 9092, 9093, 9404)
    assert node.home == STACK_DIR / "kafka"
    assert config.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert (config.kafka_access.replication_factor, config.kafka_access.min_insync_replicas) == (1, 1)


def test_three_brokers_take_the_next_port_pairs_their_own_folders_and_three_copies_two_in_sync() -> None:
    config = StackConfig({**BASE, "KAFKA_BROKERS": "3"})

    nodes = config.kafka_nodes

    assert [(n.name, n.node_id, n.port, n.controller_port, n.metrics_port) for n in nodes] == [
        ("kafka-1", 1, 9092, 9093, 9404),
        ("kafka-2", 2, 9094, 9095, 9406),
        ("kafka-3", 3, 9096, 9097, 9408),
    ]
    assert {n.home for n in nodes} == {STACK_DIR / "kafka-cluster" / f"node-{n}" for n in (1, 2, 3)}
    assert config.kafka_bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert (config.kafka_access.replication_factor, config.kafka_access.min_insync_replicas) == (3, 2)
    env = config.process_env()
    assert (env["KAFKA_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == config.kafka_bootstrap_servers


def test_a_bootstrap_list_in_env_is_taken_as_given() -> None:
    servers = "kafka-1.example:9092,kafka-2.example:9092,kafka-3.example:9092"
    config = StackConfig({**BASE, "KAFKA_BROKERS": "3", "KAFKA_BOOTSTRAP_SERVERS": servers})

    assert config.kafka_bootstrap_servers == servers


def test_connect_workers_take_consecutive_rest_ports_and_the_odd_metrics_ports() -> None:
    config = StackConfig({**BASE, "CONNECT_WORKERS": "2", "CONNECT_METRICS_PORT": "9405"})

    assert [(w.name, w.port, w.metrics_port) for w in config.connect_workers] == [
        ("connect-1", 8083, 9405),
        ("connect-2", 8084, 9407),
    ]
    assert config.connect_urls == ["http://127.0.0.1:8083", "http://127.0.0.1:8084"]


UNSUPPORTED = [("KAFKA_BROKERS", "2"), ("CONNECT_WORKERS", "4"), ("CATALOG_INSTANCES", "0")]


@pytest.mark.parametrize(("key", "value"), UNSUPPORTED)
def test_unsupported_counts_are_refused_naming_the_setting(key: str, value: str) -> None:
    config = StackConfig({**BASE, key: value})

    with pytest.raises(ValueError, match=key):
        _ = (config.kafka_nodes, config.connect_workers, config.catalog_instances)


def test_a_side_stack_moves_ports_and_loopback_addresses_only() -> None:
    assert shifted("GATEWAY_PORT", "8000", 20000) == "28000"
    assert shifted("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", 20000) == "127.0.0.1:29092"
    assert shifted("DISCOVERY_URL", "http://127.0.0.1:8761/eureka", 20000) == "http://127.0.0.1:28761/eureka"
    assert shifted("DB_USER", "app", 20000) == "app"


def test_two_discovery_peers_and_two_gateways_take_the_next_ports_and_every_client_lists_both_peers() -> None:
    config = StackConfig({"DISCOVERY_INSTANCES": "2", "GATEWAY_INSTANCES": "2"})

    started = {i.component.name: (i.component.port, i.extra) for i in instances(config, DISCOVERY, GATEWAY)}

    assert started == {
        "discovery": (8761, {"DISCOVERY_PORT": "8761"}),
        "discovery-2": (8762, {"DISCOVERY_PORT": "8762"}),
        "gateway": (8000, {"GATEWAY_PORT": "8000", "GATEWAY_MANAGEMENT_PORT": "8001"}),
        "gateway-2": (8002, {"GATEWAY_PORT": "8002", "GATEWAY_MANAGEMENT_PORT": "8003"}),
    }
    peers = "http://127.0.0.1:8761/eureka,http://127.0.0.1:8762/eureka"
    for deployable in (DISCOVERY, GATEWAY, ORDER_SERVICE):
        env = deployable.env(config)
        assert (env["DISCOVERY_URL"], env["DISCOVERY_PEERS"]) == (peers, peers)


def test_one_discovery_server_and_gateway_keep_their_names_ports_and_the_discovery_url_of_env() -> None:
    config = StackConfig({"DISCOVERY_URL": "http://127.0.0.1:8761/eureka"})

    started = [(i.component.name, i.component.port) for i in instances(config, DISCOVERY, GATEWAY)]

    assert started == [("discovery", 8761), ("gateway", 8000)]
    env = ORDER_SERVICE.env(config)
    assert env["DISCOVERY_URL"] == "http://127.0.0.1:8761/eureka"
    assert "DISCOVERY_PEERS" not in env


def test_the_connect_watchdog_is_given_every_galera_node_and_reads_them_and_one_server_gives_none() -> None:
    cluster = StackConfig({"DB_HOST": "127.0.0.1", "DB_PORT": "3306", "MARIADB_NODES": "3"})
    env = connect.watchdog_env(cluster)
    assert env["DB_HOSTS"] == "127.0.0.1:3306,127.0.0.1:3307,127.0.0.1:3308"
    # What its settings make of the list the launcher gives it (the secrets aside, which .env holds).
    settings = WatchdogSettings(db_hosts=env["DB_HOSTS"], connect_password="p", kafka_password="p", db_password="p")
    assert SourceFollower(settings).nodes == [("127.0.0.1", port) for port in (3306, 3307, 3308)]

    single = connect.watchdog_env(StackConfig({"DB_HOST": "127.0.0.1", "DB_PORT": "3306"}))
    assert "DB_HOSTS" not in single


def test_registering_again_keeps_the_galera_node_the_watchdog_moved_the_cdc_source_to_and_nothing_else() -> None:
    cluster = StackConfig({"DB_HOST": "127.0.0.1", "DB_PORT": "3306", "MARIADB_NODES": "3"})
    registered = {"connector.class": connectors.SOURCE_CLASS, "database.hostname": "127.0.0.1", "database.port": "3307"}
    moved = {"database.hostname": "127.0.0.1", "database.port": "3307"}
    assert connectors.followed_node(cluster, connectors.SOURCE_CONNECTOR, registered) == moved
    # Before the first registration, for the sink, and on one server: the rendered config as it is.
    assert connectors.followed_node(cluster, connectors.SOURCE_CONNECTOR, None) == {}
    assert connectors.followed_node(cluster, connectors.SINK_CONNECTOR, registered) == {}
    single = StackConfig({"DB_HOST": "127.0.0.1", "DB_PORT": "3306"})
    assert connectors.followed_node(single, connectors.SOURCE_CONNECTOR, registered) == {}
