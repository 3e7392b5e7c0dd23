"""Apache Kafka as one combined broker + KRaft controller, from the jars infra/pom.xml fetched."""

import asyncio
import base64
import hashlib
import os
import subprocess
import uuid

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from launcher.environment import (
    INFRA_DIR,
    KAFKA_LIB,
    KAFKA_LOGINS,
    STACK_DIR,
    StackConfig,
    metrics_agent,
    render_template,
)
from launcher.processes import Component, StartupFailed, done, needs_start, port_open, start, step, wait_until
from order_contract.topics import CATALOG_CHANGES_TOPIC, DATA_TOPICS, DEAD_LETTER_TOPICS
from servicekit.kafka import ensure_topics

KAFKA_DIR = STACK_DIR / "kafka"
SERVER_PROPERTIES = KAFKA_DIR / "server.properties"
LOG4J_CONFIG = INFRA_DIR / "kafka" / "log4j2.properties"
ACL_FILE = INFRA_DIR / "kafka" / "acls.txt"
# Written next to the data when the storage is formatted: a digest of the admin password its login was made with.
ADMIN_LOGIN_STAMP = KAFKA_DIR / "admin-login.sha256"


# The catalog-source connector's schema history: the DDL it has seen, read back in full when its task starts.
# Debezium wants one partition, never compacted nor expired.
CATALOG_HISTORY_TOPIC = "catalog-source-schema-history"
SCHEMA_HISTORY_CONFIGS = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def component(config: StackConfig) -> Component:
    return Component("kafka", config.kafka_port)


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
    kafka = component(config)
    controller_port = config.number("KAFKA_CONTROLLER_PORT", 9093)
    if needs_start(kafka, config.kafka_port, controller_port):
        render_template(
            INFRA_DIR / "kafka" / "server.properties",
            SERVER_PROPERTIES,
            private=True,
            stack_dir=STACK_DIR,
            kafka_port=config.kafka_port,
            kafka_controller_port=controller_port,
            admin_password=config.get("KAFKA_ADMIN_PASSWORD"),
        )
        _format_storage(kafka, config)
        step(f"starting kafka (KRaft broker+controller) on 127.0.0.1:{config.kafka_port}")
        jvm_options = (*BROKER_JVM_OPTIONS, metrics_agent(config.kafka_metrics_port, "jmx-kafka.yml"))
        start(kafka, java_command("kafka.Kafka", str(SERVER_PROPERTIES), jvm_options=jvm_options), dict(os.environ))
        wait_until(
            kafka,
            lambda: port_open(config.kafka_port) and asyncio.run(_list_topics(config)) is not None,
            120,
            "ready",
        )
    step("creating topics")
    created = asyncio.run(_create_topics(config))
    done(f"{', '.join(created) or 'all present'}")
    _apply_access(kafka, config)


def _admin_digest(config: StackConfig) -> str:
    return hashlib.sha256(config.get("KAFKA_ADMIN_PASSWORD").encode()).hexdigest()


def _apply_access(kafka: Component, config: StackConfig) -> None:
    """Every component's SCRAM login and exactly the ACLs of infra/kafka/acls.txt (idempotent, one short JVM)."""
    step("kafka logins and ACLs (infra/kafka/acls.txt)")
    env = {**os.environ, "KAFKA_ADMIN_PASSWORD": config.get("KAFKA_ADMIN_PASSWORD")}
    env.update({login.password_key: config.get(login.password_key) for login in KAFKA_LOGINS})
    argv = java_command(
        "example.kafkasync.admin.KafkaAccessSetup",
        config.get("KAFKA_BOOTSTRAP_SERVERS"),
        str(ACL_FILE),
        jvm_options=TOOL_JVM_OPTIONS,
    )
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=120)
    with open(kafka.log_file, "a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise StartupFailed(f"kafka: setting logins and ACLs failed; see {kafka.log_file}")
    summary = [line for line in result.stdout.splitlines() if line.startswith("kafka access: ")]
    done(summary[-1].removeprefix("kafka access: ") if summary else "done")


def _format_storage(kafka: Component, config: StackConfig) -> None:
    """Format once, with the admin's SCRAM login in the first metadata (the broker logs in to itself with it)."""
    if (KAFKA_DIR / "data" / "meta.properties").exists():
        stamp = ADMIN_LOGIN_STAMP.read_text().strip() if ADMIN_LOGIN_STAMP.exists() else None
        if stamp != _admin_digest(config):
            reason = "before Kafka asked for logins" if stamp is None else "with another KAFKA_ADMIN_PASSWORD"
            raise StartupFailed(
                f"kafka: {KAFKA_DIR / 'data'} was formatted {reason}, so the broker cannot log in to itself. "
                "Run `make clean` (it drops the stack's data) and `make up`, or restore the old KAFKA_ADMIN_PASSWORD."
            )
        return
    step("formatting kafka storage (first start)")
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    # "--cluster-id=<id>": a base64 id may start with "-", which would read as an option.
    argv = java_command(
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",
        f"--add-scram=SCRAM-SHA-512=[name=admin,password={config.get('KAFKA_ADMIN_PASSWORD')}]",
        "-c",
        str(SERVER_PROPERTIES),
        jvm_options=TOOL_JVM_OPTIONS,
    )
    kafka.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(kafka.log_file, "ab") as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise StartupFailed(f"kafka: storage format failed; see {kafka.log_file}")
    ADMIN_LOGIN_STAMP.write_text(_admin_digest(config) + "\n")
    done("done")


def node_summary(config: StackConfig) -> str | None:
    """One line for `make status`: whether this node leads the KRaft controller quorum, and how many partitions it
    leads with a follower out of sync; read from the node's JMX exporter. None when it does not answer."""
    try:
        page = httpx.get(f"http://127.0.0.1:{config.kafka_metrics_port}/metrics", timeout=2).text
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


async def _list_topics(config: StackConfig) -> list[str]:
    admin = admin_client(config)
    await admin.start()
    try:
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


async def _create_topics(config: StackConfig) -> list[str]:
    existing = set(await _list_topics(config))
    # The dead-letter topics exist up front so they can be watched before anything fails.
    wanted = [name for name in (*DATA_TOPICS, *DEAD_LETTER_TOPICS) if name not in existing]
    await ensure_topics(config.kafka_access, wanted, config.number("TOPIC_PARTITIONS", 3))
    # catalog-changes holds the catalog's current state: compaction keeps the last record per product for ever
    # (a tombstone for a while, so readers see the delete). One partition: the catalog is small, and a reader
    # catches up to one end offset.
    compacted = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "delete.retention.ms": "86400000"}
    for name, configs in ((CATALOG_CHANGES_TOPIC, compacted), (CATALOG_HISTORY_TOPIC, SCHEMA_HISTORY_CONFIGS)):
        if name not in existing:
            await ensure_topics(config.kafka_access, [name], 1, configs)
            wanted.append(name)
    return wanted
