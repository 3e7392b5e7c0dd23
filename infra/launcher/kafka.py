"""Apache Kafka as one combined broker + KRaft controller, from the jars infra/pom.xml fetched."""

import asyncio
import base64
import logging
import os
import subprocess
import uuid

from aiokafka.admin import AIOKafkaAdminClient

from launcher.environment import INFRA_DIR, KAFKA_LIB, STACK_DIR, StackConfig, render_template
from launcher.processes import Component, StartupFailed, done, needs_start, port_open, start, step, wait_until
from servicekit.kafka import ensure_topics

KAFKA_DIR = STACK_DIR / "kafka"
SERVER_PROPERTIES = KAFKA_DIR / "server.properties"
LOG4J_CONFIG = INFRA_DIR / "kafka" / "log4j2.properties"

# Topics of the data path; the dead-letter topics exist up front so they can be watched before anything fails.
DATA_TOPICS = ("orders", "example-catalog-topic")
DEAD_LETTER_TOPICS = ("orders-dlq", "example-catalog-topic-dlq")


# aiokafka logs every refused connection while the broker is still starting; the launcher reports progress itself.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


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
    controller_port = config.int("KAFKA_CONTROLLER_PORT", 9093)
    if needs_start(kafka, config.kafka_port, controller_port):
        render_template(
            INFRA_DIR / "kafka" / "server.properties",
            SERVER_PROPERTIES,
            stack_dir=STACK_DIR,
            kafka_port=config.kafka_port,
            kafka_controller_port=controller_port,
        )
        _format_storage(kafka)
        step(f"starting kafka (KRaft broker+controller) on 127.0.0.1:{config.kafka_port}")
        start(kafka, java_command("kafka.Kafka", str(SERVER_PROPERTIES)), dict(os.environ))
        wait_until(
            kafka,
            lambda: port_open(config.kafka_port) and asyncio.run(_list_topics(config)) is not None,
            120,
            "ready",
        )
    step("creating topics")
    created = asyncio.run(_create_topics(config))
    done(f"{', '.join(created) or 'all present'}")


def _format_storage(kafka: Component) -> None:
    if (KAFKA_DIR / "data" / "meta.properties").exists():
        return
    step("formatting kafka storage (first start)")
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    # "--cluster-id=<id>": a base64 id may start with "-", which would read as an option.
    argv = java_command(
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",
        "-c",
        str(SERVER_PROPERTIES),
        jvm_options=TOOL_JVM_OPTIONS,
    )
    kafka.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(kafka.log_file, "ab") as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise StartupFailed(f"kafka: storage format failed; see {kafka.log_file}")
    done("done")


def admin_client(config: StackConfig) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=config.get("KAFKA_BOOTSTRAP_SERVERS"), request_timeout_ms=5000)


async def _list_topics(config: StackConfig) -> list[str]:
    admin = admin_client(config)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


async def _create_topics(config: StackConfig) -> list[str]:
    existing = set(await _list_topics(config))
    wanted = [name for name in (*DATA_TOPICS, *DEAD_LETTER_TOPICS) if name not in existing]
    await ensure_topics(config.get("KAFKA_BOOTSTRAP_SERVERS"), wanted, config.int("TOPIC_PARTITIONS", 3))
    return wanted
