"""Apache Kafka from the jars infra/pom.xml fetched: one combined broker + KRaft controller, or three of them in one
quorum (KAFKA_BROKERS=3), each with its own ports and folder, started by the containers' start-broker."""

import asyncio
import base64
import hashlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from launcher.processes import (
    START_SCRIPTS,
    Component,
    StartupFailed,
    done,
    needs_start,
    path_with,
    port_open,
    start,
    step,
    wait_until,
)
from stack_description.access import KAFKA_LOGINS, acl_file_text
from stack_description.settings import INFRA_DIR, STACK_DIR, KafkaNode, StackConfig
from stack_description.topics import create_topics

LOG4J_CONFIG = INFRA_DIR / "kafka" / "log4j2.properties"
KAFKA_LIB = INFRA_DIR / "target" / "kafka" / "lib"
CONNECT_PLUGINS = INFRA_DIR / "target" / "connect-plugins"
JMX_EXPORTER_AGENT = INFRA_DIR / "target" / "agents" / "jmx_prometheus_javaagent.jar"


def script_env(config: StackConfig, **values: object) -> dict[str, str]:
    """What start-broker and start-worker are told natively beyond their environment: where the jars, Kafka's
    configuration and the metrics agent are here, the stack's replication, and `values`."""
    paths = {
        "PATH": path_with(START_SCRIPTS),
        "KAFKA_LIB": kafka_lib(),
        "KAFKA_CONFIG_DIR": INFRA_DIR / "kafka",
        "METRICS_AGENT": JMX_EXPORTER_AGENT,
        "METRICS_RULES_DIR": INFRA_DIR / "prometheus",
        "KAFKA_REPLICATION_FACTOR": config.kafka_replication_factor,
    }
    return {key: str(value) for key, value in {**paths, **values}.items()}


def kafka_lib() -> Path:
    """Kafka's jars (and Connect's), or StartupFailed naming the install step."""
    if not KAFKA_LIB.is_dir():
        raise StartupFailed(f"kafka: {KAFKA_LIB} is missing; run `make install` (mvn -f infra/pom.xml package)")
    return KAFKA_LIB


def admin_login_stamp(node: KafkaNode) -> Path:
    """Beside the node's data, written before start-broker formats it: a digest of the admin password its login is
    made with."""
    return node.home / "admin-login.sha256"


def components(config: StackConfig) -> list[Component]:
    """Every Kafka node of this stack (one, or three in a cluster)."""
    return [Component.of(node) for node in config.kafka_nodes]


def component(config: StackConfig) -> Component:
    """The first node (the only one outside cluster mode)."""
    return components(config)[0]


# Tools run briefly.
TOOL_JVM_OPTIONS = ("-Xmx256m",)


def java_command(main_class: str, *args: str, jvm_options: tuple[str, ...] = TOOL_JVM_OPTIONS) -> list[str]:
    """The java command line Kafka's own scripts would build: log4j config and our jar folder as classpath."""
    return [
        "java",
        *jvm_options,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{kafka_lib()}/*",
        main_class,
        *args,
    ]


def up(config: StackConfig) -> None:
    nodes = config.kafka_nodes
    start_nodes(config, [node for node in nodes if needs_start(Component.of(node), node.port, node.controller_port)])
    step("creating topics")
    created = asyncio.run(create_topics(config))
    done(f"{', '.join(created) or 'all present'}")
    _apply_access(component(config), config)


def start_nodes(config: StackConfig, to_start: list[KafkaNode]) -> None:
    """Start these nodes with start-broker (it formats a node's storage on its first start), then wait until every
    node of the stack serves as a broker."""
    if not to_start:
        return
    nodes = config.kafka_nodes
    voters = ",".join(f"{node.node_id}@127.0.0.1:{node.controller_port}" for node in nodes)
    cluster_id = _cluster_id(to_start, nodes, config)
    for node in to_start:
        # A node of a quorum cannot serve before a majority of the controllers runs: start them all, then wait.
        step(f"starting {node.name} (KRaft broker+controller) on 127.0.0.1:{node.port}")
        env = os.environ | script_env(
            config,
            KAFKA_NETWORK="loopback",
            KAFKA_NODE_DIR=node.home,
            NODE_ID=node.node_id,
            QUORUM_VOTERS=voters,
            CLUSTER_ID=cluster_id,
            KAFKA_HOST_PORT=node.port,
            KAFKA_CONTROLLER_PORT=node.controller_port,
            KAFKA_METRICS_PORT=node.metrics_port,
            KAFKA_MIN_INSYNC_REPLICAS=config.kafka_min_insync_replicas,
            KAFKA_ADMIN_PASSWORD=config.get("KAFKA_ADMIN_PASSWORD"),
        )
        start(Component.of(node), [str(START_SCRIPTS / "start-broker")], env)
        done()
    step(f"waiting for {len(nodes)} kafka node{'s' if len(nodes) > 1 else ''}")
    wait_until(
        Component.of(to_start[0]),
        lambda: all(port_open(node.port) for node in nodes) and asyncio.run(_broker_count(config)) == len(nodes),
        120 + 30 * (len(nodes) - 1),
        "ready",
    )


def _admin_digest(config: StackConfig) -> str:
    return hashlib.sha256(config.get("KAFKA_ADMIN_PASSWORD").encode()).hexdigest()


def _apply_access(kafka: Component, config: StackConfig) -> None:
    """Every component's SCRAM login and exactly the ACLs its description gives (idempotent, one short JVM)."""
    step("kafka logins and ACLs")
    acl_file = STACK_DIR / "kafka-acls.txt"
    acl_file.write_text(acl_file_text())
    env = {**os.environ, "KAFKA_ADMIN_PASSWORD": config.get("KAFKA_ADMIN_PASSWORD")}
    env.update({login.password_key: config.get(login.password_key) for login in KAFKA_LOGINS})
    argv = java_command(
        "example.kafkasync.admin.KafkaAccessSetup",
        config.kafka_bootstrap_servers,
        str(acl_file),
        jvm_options=TOOL_JVM_OPTIONS,
    )
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=120)
    with open(kafka.log_file, "a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise StartupFailed(f"kafka: setting logins and ACLs failed; see {kafka.log_file}")
    summary = [line for line in result.stdout.splitlines() if line.startswith("kafka access: ")]
    done(summary[-1].removeprefix("kafka access: ") if summary else "done")


def _cluster_id(starting: list[KafkaNode], nodes: list[KafkaNode], config: StackConfig) -> str:
    """The cluster id start-broker formats with: the stack's, or a new one for all the nodes at their first start,
    whose admin login (the nodes log in to each other with it) is the one .env gives; those get its stamp. Refuses
    a node formatted with another admin password, and a node unformatted beside formatted ones (it would join with
    a cluster id of its own)."""
    unformatted = [node for node in starting if not _meta_properties(node).exists()]
    for node in starting:
        if node in unformatted:
            continue
        stamp_file = admin_login_stamp(node)
        stamp = stamp_file.read_text().strip() if stamp_file.exists() else None
        if stamp != _admin_digest(config):
            reason = "before Kafka asked for logins" if stamp is None else "with another KAFKA_ADMIN_PASSWORD"
            raise StartupFailed(
                f"{node.name}: {node.home / 'data'} was formatted {reason}, so the broker cannot log in to itself. "
                "Run `make clean` (it drops the stack's data) and `make up`, or restore the old KAFKA_ADMIN_PASSWORD."
            )
    if not unformatted:
        # start-broker's format skips formatted storage only when its id is the one it is given.
        meta = _meta_properties(starting[0]).read_text()
        return next(line.split("=", 1)[1].strip() for line in meta.splitlines() if line.startswith("cluster.id="))
    if len(unformatted) < len(nodes):
        # Formatted nodes of this stack that are not starting now hold data too.
        names = ", ".join(node.name for node in unformatted)
        raise StartupFailed(
            f"kafka: {names} unformatted while the other nodes hold data; a node formatted alone would join with its "
            "own cluster id. Run `make clean` (drops the stack's data), or remove the cluster's folders under "
            f"{nodes[0].home.parent} and `make up-cluster` again."
        )
    for node in unformatted:
        node.home.mkdir(parents=True, exist_ok=True)
        admin_login_stamp(node).write_text(_admin_digest(config) + "\n")
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _meta_properties(node: KafkaNode) -> Path:
    """Written by the storage format."""
    return node.home / "data" / "meta.properties"


def node_summary(node: KafkaNode) -> str | None:
    """One line for `make status`: whether this node leads the KRaft controller quorum, and how many partitions it
    leads with a follower out of sync; read from the node's JMX exporter. None when it does not answer."""
    try:
        page = httpx.get(f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    values = {}
    for line in page.splitlines():
        name, _, value = line.rpartition(" ")
        if name in ("kafka_controller_active_controller_count", "kafka_server_under_replicated_partitions"):
            values[name] = int(float(value))
    if len(values) < 2:
        return None
    leads = "leads the controller quorum" if values["kafka_controller_active_controller_count"] else "follows"
    return f"{leads}, under-replicated partitions: {values['kafka_server_under_replicated_partitions']}"


def admin_client(config: StackConfig) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**config.kafka_access.client_options(), request_timeout_ms=5000)


@asynccontextmanager
async def _admin(config: StackConfig) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = admin_client(config)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _broker_count(config: StackConfig) -> int:
    """Brokers registered with the quorum: topics with three copies need all three."""
    async with _admin(config) as admin:
        return len((await admin.describe_cluster())["brokers"])
