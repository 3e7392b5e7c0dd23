"""Kafka Connect in distributed mode: one worker, or CONNECT_WORKERS of them in one group sharing the tasks; its
connectors (orders-sink, catalog-source) registered once through any worker's REST API."""

import os
from functools import partial

import httpx

from launcher import kafka, services
from launcher.kafka import CONNECT_PLUGINS, metrics_agent
from launcher.processes import (
    Component,
    StartupFailed,
    done,
    needs_start,
    render_template,
    start,
    step,
    wait_until,
)
from stack_description.access import CDC_DB, CONNECT_KAFKA, ORDERS_SINK_DB
from stack_description.connectors import (
    CONNECTOR_DIR,
    CONNECTOR_ENV,
    CONNECTORS,
    SINK_CLASS,
    SOURCE_CLASS,
    monitor_rest_user,
    put_connector,
    rest_auth,
)
from stack_description.deployables import CONNECT_WATCHDOG
from stack_description.settings import STACK_DIR, ConnectWorker, StackConfig

CONNECT_DIR = STACK_DIR / "connect"
REST_JAAS = STACK_DIR / "connect" / "rest-jaas.conf"
REST_USERS = STACK_DIR / "connect" / "rest-users.properties"
# The worker converts and writes records in batches: a throughput collector with a fixed heap writes more rows/s
# than G1 with Kafka's 20 ms pause target, which is sized for the broker's latency (bench/perf-notes.md).
WORKER_JVM_OPTIONS = ("-Xms1g", "-Xmx1g", "-XX:+UseParallelGC")


def components(config: StackConfig) -> list[Component]:
    """Every worker of the group."""
    return [Component.of(worker) for worker in config.connect_workers]


def component(config: StackConfig) -> Component:
    """The first worker (the only one unless CONNECT_WORKERS is above 1)."""
    return components(config)[0]


def watchdog_component() -> Component:
    return Component(CONNECT_WATCHDOG.name)


def up(config: StackConfig) -> None:
    start_workers(config, [w for w in config.connect_workers if needs_start(Component.of(w), w.port)])
    # The watchdog first: a task left FAILED by an earlier run is restarted while the launcher waits for it.
    services.start_instance(
        config, services.Instance(watchdog_component(), CONNECT_WATCHDOG, watchdog_settings(config))
    )
    for name in CONNECTORS:
        register_connector(config, name)


def watchdog_settings(config: StackConfig) -> dict[str, str]:
    """What the watchdog is told beyond its description: every worker's REST API."""
    return {"CONNECT_URLS": ",".join(config.connect_urls)}


def watchdog_env(config: StackConfig) -> dict[str, str]:
    """connect-watchdog (services/connect-watchdog) with only its own secrets: Connect's REST login (it restarts,
    stops and resumes connectors, and moves the CDC source off a lost Galera node), its Kafka login and the sink's
    database account (its recovery writes the rows the sink would), as compose gives them too. In cluster mode it
    gets DB_HOSTS like every component (StackConfig.process_env): its recovery fails over through them, and they
    are the nodes the CDC source may be moved to."""
    return CONNECT_WATCHDOG.env(config, **watchdog_settings(config))


def _write_rest_credentials(config: StackConfig) -> None:
    """The JAAS entry BasicAuthSecurityRestExtension reads, and its users file (owner-only: it holds passwords):
    the admin, and the monitor's read-only user."""
    REST_USERS.parent.mkdir(parents=True, exist_ok=True)
    REST_USERS.touch(mode=0o600)
    REST_USERS.chmod(0o600)
    REST_USERS.write_text(
        f"{config.get('CONNECT_USER')}: {config.get('CONNECT_PASSWORD')}\n"
        f"{monitor_rest_user(config)}: {config.get('CONNECT_MONITOR_PASSWORD')}\n"
    )
    module = "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
    REST_JAAS.write_text(f'KafkaConnect {{\n  {module} required\n  file="{REST_USERS}";\n}};\n')


def worker_env(config: StackConfig) -> dict[str, str]:
    """The launcher's own environment without anything from .env, plus only what the connectors resolve:
    a config validation request can echo what ${env:...} resolves, so nothing else may be there to find."""
    env = {key: value for key, value in os.environ.items() if key not in config.values}
    env.update({key: config.get(key) for key in CONNECTOR_ENV})
    env["KAFKA_BOOTSTRAP_SERVERS"] = config.kafka_bootstrap_servers
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


def start_workers(config: StackConfig, workers: list[ConnectWorker]) -> None:
    """Start the workers side by side (each JVM takes a while to load its plugins), then wait for each."""
    if not workers:
        return
    _write_rest_credentials(config)
    for worker in workers:
        properties = render_template(
            CONNECTOR_DIR / "worker.properties",
            CONNECT_DIR / f"{worker.name}.properties",
            private=True,
            kafka_bootstrap_servers=config.kafka_bootstrap_servers,
            kafka_jaas=kafka_jaas(config),
            connect_monitor_user=monitor_rest_user(config),
            connect_host="127.0.0.1",
            connect_port=worker.port,
            replication_factor=config.kafka_replication_factor,
            plugin_path=CONNECT_PLUGINS,
        )
        step(f"starting kafka connect (distributed) as {worker.name} on http://127.0.0.1:{worker.port}")
        jvm_options = (
            *WORKER_JVM_OPTIONS,
            f"-Djava.security.auth.login.config={REST_JAAS}",
            metrics_agent(worker.metrics_port, "jmx-connect.yml"),
        )
        argv = kafka.java_command(
            "org.apache.kafka.connect.cli.ConnectDistributed", str(properties), jvm_options=jvm_options
        )
        start(Component.of(worker), argv, worker_env(config))
        done()
    for worker in workers:
        step(f"waiting for {worker.name}")
        url = f"http://127.0.0.1:{worker.port}"
        wait_until(Component.of(worker), partial(_has_plugins, config, url), 180, "serving REST with the plugins")


def _has_plugins(config: StackConfig, url: str) -> bool:
    plugins = httpx.get(f"{url}/connector-plugins", auth=rest_auth(config), timeout=2).json()
    return {SINK_CLASS, SOURCE_CLASS} <= {plugin["class"] for plugin in plugins}


def answering_url(config: StackConfig) -> str:
    """The REST API of the first worker that answers (any worker speaks for the group); the first one's when none
    does, so the caller's request fails as it would have."""
    for url in config.connect_urls:
        try:
            httpx.get(f"{url}/", auth=rest_auth(config), timeout=2).raise_for_status()
            return url
        except httpx.HTTPError:
            continue
    return config.connect_url


def register_connector(config: StackConfig, name: str) -> None:
    """PUT the config (idempotent: create or update), then wait until the connector and its tasks run."""
    connect = component(config)
    step(f"registering connector {name}")

    def put_config() -> bool:
        response = put_connector(config, answering_url(config), name)
        # 409: the worker group is rebalancing; try again.
        if response.status_code == 409:
            return False
        if response.status_code >= 400:
            raise StartupFailed(f"connect: {name} rejected ({response.status_code}): {response.text}")
        return True

    wait_until(connect, put_config, 60, "accepted", quiet=True)
    wait_until(connect, lambda: connector_running(config, name), 90, "RUNNING with its tasks")


def connector_running(config: StackConfig, name: str) -> bool:
    url = f"{answering_url(config)}/connectors/{name}/status"
    status = httpx.get(url, auth=rest_auth(config), timeout=2).json()
    tasks = status.get("tasks", [])
    return (
        status.get("connector", {}).get("state") == "RUNNING"
        and len(tasks) > 0
        and all(task.get("state") == "RUNNING" for task in tasks)
    )


def ensure_running(config: StackConfig) -> None:
    """Used by tests that stop or kill workers: start the missing ones, wait until the connectors run."""
    start_workers(config, [worker for worker in config.connect_workers if not Component.of(worker).running()])
    for name in CONNECTORS:
        wait_until(component(config), partial(connector_running, config, name), 90, f"{name} RUNNING", quiet=True)
    done()
