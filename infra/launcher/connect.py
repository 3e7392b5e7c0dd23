"""Kafka Connect in distributed mode, and its connectors (orders-sink, catalog-source) registered through REST."""

import json
import os
from functools import partial
from pathlib import Path

import httpx

from launcher import kafka
from launcher.environment import (
    CDC_DB,
    CONNECT_KAFKA,
    CONNECT_PLUGINS,
    INFRA_DIR,
    ORDERS_SINK_DB,
    STACK_DIR,
    VENV_PYTHON,
    StackConfig,
    metrics_agent,
    render_template,
)
from launcher.processes import Component, StartupFailed, done, needs_start, start, step, wait_until

WORKER_PROPERTIES = STACK_DIR / "connect" / "worker.properties"
REST_JAAS = STACK_DIR / "connect" / "rest-jaas.conf"
REST_USERS = STACK_DIR / "connect" / "rest-users.properties"
# What the connector configs may read through ${env:...} (and the worker.properties allow-list says the same).
CONNECTOR_ENV = ("DB_HOST", "DB_PORT", "ORDERS_DB", "CATALOG_DB", "KAFKA_BOOTSTRAP_SERVERS")
CONNECTOR_DIR = INFRA_DIR / "connect"
SINK_CONNECTOR = "orders-sink"
SINK_CLASS = "io.debezium.connector.jdbc.JdbcSinkConnector"
SOURCE_CONNECTOR = "catalog-source"
SOURCE_CLASS = "io.debezium.connector.mariadb.MariaDbConnector"
# Each connector's config is infra/connect/<name>.json.
CONNECTORS = (SINK_CONNECTOR, SOURCE_CONNECTOR)
# The worker converts and writes records in batches: a throughput collector with a fixed heap writes more rows/s
# than G1 with Kafka's 20 ms pause target, which is sized for the broker's latency (bench/perf-notes.md).
WORKER_JVM_OPTIONS = ("-Xms1g", "-Xmx1g", "-XX:+UseParallelGC")


def component(config: StackConfig) -> Component:
    return Component("connect", config.connect_port)


def watchdog_component() -> Component:
    return Component("connect-watchdog")


def up(config: StackConfig) -> None:
    connect = component(config)
    if needs_start(connect, config.connect_port):
        start_worker(config)
    # The watchdog first: a task left FAILED by an earlier run is restarted while the launcher waits for it.
    watchdog = watchdog_component()
    if needs_start(watchdog):
        step("starting connect-watchdog (restarts FAILED connectors and tasks)")
        start(watchdog, [str(VENV_PYTHON), "-m", "launcher.connect_watchdog"], config.process_env())
        done()
    for name in CONNECTORS:
        register_connector(config, name, CONNECTOR_DIR / f"{name}.json")


def rest_auth(config: StackConfig) -> httpx.BasicAuth:
    """The credentials the worker's REST API asks for (CONNECT_USER / CONNECT_PASSWORD in .env)."""
    return httpx.BasicAuth(config.get("CONNECT_USER", "connect-admin"), config.get("CONNECT_PASSWORD"))


def _write_rest_credentials(config: StackConfig) -> None:
    """The JAAS entry BasicAuthSecurityRestExtension reads, and its users file (owner-only: it holds a password)."""
    REST_USERS.parent.mkdir(parents=True, exist_ok=True)
    REST_USERS.touch(mode=0o600)
    REST_USERS.chmod(0o600)
    REST_USERS.write_text(f"{config.get('CONNECT_USER', 'connect-admin')}: {config.get('CONNECT_PASSWORD')}\n")
    module = "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
    REST_JAAS.write_text(f'KafkaConnect {{\n  {module} required\n  file="{REST_USERS}";\n}};\n')


def worker_env(config: StackConfig) -> dict[str, str]:
    """The launcher's own environment without anything from .env, plus only what the connectors resolve:
    a config validation request can echo what ${env:...} resolves, so nothing else may be there to find."""
    env = {key: value for key, value in os.environ.items() if key not in config.values}
    env.update({key: config.get(key) for key in CONNECTOR_ENV})
    env.update(ORDERS_SINK_DB.env(config, prefix="SINK_DB"))
    env.update(CDC_DB.env(config, prefix="CDC_DB"))
    # Debezium's schema history makes its own Kafka clients; they log in as `connect`, like the worker.
    env["CONNECT_KAFKA_JAAS"] = kafka_jaas(config)
    return env


def kafka_jaas(config: StackConfig) -> str:
    """The SASL/SCRAM login of the `connect` principal, as a Kafka client's sasl.jaas.config."""
    password = config.get(CONNECT_KAFKA.password_key)
    module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    return f'{module} required username="{CONNECT_KAFKA.user}" password="{password}";'


def start_worker(config: StackConfig) -> None:
    connect = component(config)
    _write_rest_credentials(config)
    render_template(
        CONNECTOR_DIR / "worker.properties",
        WORKER_PROPERTIES,
        private=True,
        kafka_bootstrap_servers=config.get("KAFKA_BOOTSTRAP_SERVERS"),
        kafka_jaas=kafka_jaas(config),
        connect_host="127.0.0.1",
        connect_port=config.connect_port,
        plugin_path=CONNECT_PLUGINS,
    )
    step(f"starting kafka connect (distributed) on {config.connect_url}")
    jvm_options = (
        *WORKER_JVM_OPTIONS,
        f"-Djava.security.auth.login.config={REST_JAAS}",
        metrics_agent(config.connect_metrics_port, "jmx-connect.yml"),
    )
    argv = kafka.java_command(
        "org.apache.kafka.connect.cli.ConnectDistributed", str(WORKER_PROPERTIES), jvm_options=jvm_options
    )
    start(connect, argv, worker_env(config))
    wait_until(connect, lambda: _has_plugins(config), 180, "serving REST with the Debezium plugins")


def _has_plugins(config: StackConfig) -> bool:
    plugins = httpx.get(f"{config.connect_url}/connector-plugins", auth=rest_auth(config), timeout=2).json()
    return {SINK_CLASS, SOURCE_CLASS} <= {plugin["class"] for plugin in plugins}


def register_connector(config: StackConfig, name: str, config_file: Path) -> None:
    """PUT the config (idempotent: create or update), then wait until the connector and its tasks run."""
    connect = component(config)
    step(f"registering connector {name}")
    connector_config = json.loads(config_file.read_text())

    def put_config() -> bool:
        url = f"{config.connect_url}/connectors/{name}/config"
        response = httpx.put(url, json=connector_config, auth=rest_auth(config), timeout=30)
        # 409: the worker group is rebalancing; try again.
        if response.status_code == 409:
            return False
        if response.status_code >= 400:
            raise StartupFailed(f"connect: {name} rejected ({response.status_code}): {response.text}")
        return True

    wait_until(connect, put_config, 60, "accepted", quiet=True)
    wait_until(connect, lambda: connector_running(config, name), 90, "RUNNING with its tasks")


def connector_running(config: StackConfig, name: str) -> bool:
    status = httpx.get(f"{config.connect_url}/connectors/{name}/status", auth=rest_auth(config), timeout=2).json()
    tasks = status.get("tasks", [])
    return (
        status.get("connector", {}).get("state") == "RUNNING"
        and len(tasks) > 0
        and all(task.get("state") == "RUNNING" for task in tasks)
    )


def ensure_running(config: StackConfig) -> None:
    """Used by tests that restart the worker."""
    if not component(config).running():
        start_worker(config)
    for name in CONNECTORS:
        wait_until(component(config), partial(connector_running, config, name), 90, f"{name} RUNNING", quiet=True)
    done()
