"""Apache Kafka from the jars infra/pom.xml fetched: one combined broker + KRaft controller, or three of them in one
quorum (KAFKA_BROKERS=3), each with its own ports and folder."""

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
    Component,
    StartupFailed,
    done,
    needs_start,
    port_open,
    render_template,
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


def metrics_agent(port: int, rules: str) -> str:
    """The JVM option that serves this JVM's JMX beans as Prometheus metrics on 127.0.0.1:`port`, read by the
    rules in infra/prometheus/`rules`."""
    return f"-javaagent:{JMX_EXPORTER_AGENT}=127.0.0.1:{port}:{INFRA_DIR / 'prometheus' / rules}"


def server_properties(node: KafkaNode) -> Path:
    return node.home / "server.properties"


def admin_login_stamp(node: KafkaNode) -> Path:
    """Written next to the data when the storage is formatted: a digest of the admin password its login was made
    with."""
    return node.home / "admin-login.sha256"


def components(config: StackConfig) -> list[Component]:
    """Every Kafka node of this stack (one, or three in a cluster)."""
    return [Component.of(node) for node in config.kafka_nodes]


def component(config: StackConfig) -> Component:
    """The first node (the only one outside cluster mode)."""
    return components(config)[0]


# The broker answers producers and consumers: Kafka's own scripts give it G1 with a short pause target.
BROKER_JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")
# Tools run briefly.
TOOL_JVM_OPTIONS = ("-Xmx256m",)


def java_command(main_class: str, *args: str, jvm_options: tuple[str, ...] = BROKER_JVM_OPTIONS) -> list[str]:
    """The java command line Kafka's own scripts would build: log4j config and our jar folder as classpath."""
    if not KAFKA_LIB.is_dir():
        raise StartupFailed(f"kafka: {KAFKA_LIB} is missing; run `make install` (mvn -f infra/pom.xml package)")
    return [
        "java",
        *jvm_options,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{KAFKA_LIB}/*",
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
    """Start these nodes (formatting their storage on the first start), then wait until every node of the
    stack serves as a broker."""
    if not to_start:
        return
    nodes = config.kafka_nodes
    voters = ",".join(f"{node.node_id}@127.0.0.1:{node.controller_port}" for node in nodes)
    for node in to_start:
        render_template(
            INFRA_DIR / "kafka" / "server.properties",
            server_properties(node),
            private=True,
            node_id=node.node_id,
            quorum_voters=voters,
            data_dir=node.home / "data",
            kafka_port=node.port,
            kafka_controller_port=node.controller_port,
            replication_factor=config.kafka_replication_factor,
            min_insync_replicas=config.kafka_min_insync_replicas,
            admin_password=config.get("KAFKA_ADMIN_PASSWORD"),
        )
    _format_storage(to_start, nodes, config)
    for node in to_start:
        # A node of a quorum cannot serve before a majority of the controllers runs: start them all, then wait.
        step(f"starting {node.name} (KRaft broker+controller) on 127.0.0.1:{node.port}")
        jvm_options = (*BROKER_JVM_OPTIONS, metrics_agent(node.metrics_port, "jmx-kafka.yml"))
        start(
            Component.of(node),
            java_command("kafka.Kafka", str(server_properties(node)), jvm_options=jvm_options),
            dict(os.environ),
        )
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


def _format_storage(starting: list[KafkaNode], nodes: list[KafkaNode], config: StackConfig) -> None:
    """Format each node once, all with one cluster id and the admin's SCRAM login in the first metadata (the nodes
    log in to each other with it). The formats run side by side: each is a JVM of a few seconds."""
    unformatted = []
    for node in starting:
        if not (node.home / "data" / "meta.properties").exists():
            unformatted.append(node)
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
        return
    if len(unformatted) < len(nodes):
        # Formatted nodes of this stack that are not starting now hold data too.
        names = ", ".join(node.name for node in unformatted)
        raise StartupFailed(
            f"kafka: {names} unformatted while the other nodes hold data; a node formatted alone would join with its "
            "own cluster id. Run `make clean` (drops the stack's data), or remove the cluster's folders under "
            f"{nodes[0].home.parent} and `make up-cluster` again."
        )
    step(f"formatting kafka storage (first start, {len(nodes)} node{'s' if len(nodes) > 1 else ''})")
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    running = []
    for node in unformatted:
        # "--cluster-id=<id>": a base64 id may start with "-", which would read as an option.
        argv = java_command(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            f"--add-scram=SCRAM-SHA-512=[name=admin,password={config.get('KAFKA_ADMIN_PASSWORD')}]",
            "-c",
            str(server_properties(node)),
            jvm_options=TOOL_JVM_OPTIONS,
        )
        log_file = Component.of(node).log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            running.append((node, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)))
    for node, process in running:
        if process.wait() != 0:
            raise StartupFailed(f"{node.name}: storage format failed; see {Component.of(node).log_file}")
        admin_login_stamp(node).write_text(_admin_digest(config) + "\n")
    done("done")


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
