"""Kafka Connect in distributed mode: one worker, or CONNECT_WORKERS of them in one group sharing the tasks; its
connectors (orders-sink, catalog-source) registered once through any worker's REST API."""

import os
from functools import partial

import httpx

from launcher import services
from launcher.kafka import CONNECT_PLUGINS, script_env
from launcher.processes import (
    START_SCRIPTS,
    Component,
    StartupFailed,
    done,
    needs_start,
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


def worker_env(config: StackConfig) -> dict[str, str]:
    """The launcher's own environment without anything from .env, plus only what the connectors resolve:
    a config validation request can echo what ${env:...} resolves, so nothing else may be there to find."""
    env = {key: value for key, value in os.environ.items() if key not in config.values}
    env.update({key: config.get(key) for key in CONNECTOR_ENV})
    env["KAFKA_BOOTSTRAP_SERVERS"] = config.kafka_bootstrap_servers
    env.update(ORDERS_SINK_DB.env(config, prefix="SINK_DB"))
    env.update(CDC_DB.env(config, prefix="CDC_DB"))
    # The worker's Kafka login: start-worker makes it CONNECT_KAFKA_JAAS, which Debezium's schema-history clients
    # resolve too (they log in as `connect`, like the worker).
    env[CONNECT_KAFKA.password_key] = config.get(CONNECT_KAFKA.password_key)
    return env


def start_workers(config: StackConfig, workers: list[ConnectWorker]) -> None:
    """Start the workers side by side with start-worker (each JVM takes a while to load its plugins), then wait for
    each. start-worker writes a worker's files (its properties, its REST API's users) into its own folder."""
    if not workers:
        return
    for worker in workers:
        step(f"starting kafka connect (distributed) as {worker.name} on http://127.0.0.1:{worker.port}")
        env = worker_env(config) | script_env(
            config,
            CONNECT_HOST="127.0.0.1",
            CONNECT_PORT=worker.port,
            CONNECT_METRICS_PORT=worker.metrics_port,
            CONNECT_STATE_DIR=CONNECT_DIR / worker.name,
            CONNECT_CONFIG_DIR=CONNECTOR_DIR,
            CONNECT_PLUGINS=CONNECT_PLUGINS,
            # The REST API's logins: start-worker writes them to the users file and takes them out of the worker's
            # environment.
            CONNECT_USER=config.get("CONNECT_USER"),
            CONNECT_PASSWORD=config.get("CONNECT_PASSWORD"),
            CONNECT_MONITOR_USER=monitor_rest_user(config),
            CONNECT_MONITOR_PASSWORD=config.get("CONNECT_MONITOR_PASSWORD"),
        )
        start(Component.of(worker), [str(START_SCRIPTS / "start-worker")], env)
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
