"""Restarts failed Kafka Connect connectors and tasks: `python -m connect_watchdog`, run by `make up` and by
docker-compose; with several workers it asks whichever answers.

Connect never restarts a FAILED task by itself, and the Debezium JDBC sink fails its task when the database
disappears in the middle of a write (a dead connection at `begin` is not among the errors it retries). A restarted
task resumes from its committed offsets and upserts, so restarting is always safe: the Strimzi operator's
auto-restart, for a stack without an operator. A task that keeps failing because the database refuses one of
its records is not restarted forever: connect_watchdog.sink_recovery moves that record to orders-dlq. In a
Galera cluster (DB_HOSTS) the CDC source is moved to another node when its own is lost
(connect_watchdog.source_follower).
"""

import logging
import time
from pathlib import Path
from typing import Any

import httpx

from connect_watchdog.config import WatchdogSettings
from connect_watchdog.sink_recovery import SinkRecovery
from connect_watchdog.source_follower import SourceFollower
from order_contract.topics import ORDERS_SINK_CONNECTOR
from servicekit.log_setup import configure_logging

log = logging.getLogger("connect-watchdog")


def failed_parts(status: dict[str, Any]) -> list[str]:
    """What of one connector's status is FAILED: "connector", "task 0", ..."""
    parts = []
    if status.get("connector", {}).get("state") == "FAILED":
        parts.append("connector")
    parts += [f"task {task['id']}" for task in status.get("tasks", []) if task.get("state") == "FAILED"]
    return parts


def traces(status: dict[str, Any]) -> list[str]:
    found = [status.get("connector", {}).get("trace", "")] + [t.get("trace", "") for t in status.get("tasks", [])]
    return [trace for trace in found if trace]


def first_line(status: dict[str, Any]) -> str:
    return next((trace.splitlines()[0] for trace in traces(status)), "")


def check_once(http: httpx.Client, recoveries: dict[str, SinkRecovery], follower: SourceFollower) -> None:
    connectors = http.get("/connectors", params={"expand": ["status", "info"]}).json()
    for name, described in connectors.items():
        # The config as registered (Connect answers it unresolved: references stay references).
        status = described["status"]
        if follower.follow(http, name, described["info"]["config"], status):
            continue  # its new config restarts it, on the new node
        failed = failed_parts(status)
        if not failed:
            continue
        recovery = recoveries.get(name)
        if recovery is not None and recovery.task_failed("\n".join(traces(status))):
            continue  # resumed, with the refused record moved aside
        log.warning("restarting %s of %s: %s", ", ".join(failed), name, first_line(status))
        http.post(f"/connectors/{name}/restart", params={"includeTasks": "true", "onlyFailed": "true"})


def main() -> None:
    settings = WatchdogSettings()
    configure_logging("connect-watchdog", None, settings.log_level)
    urls = settings.connect_url_list
    interval = settings.connect_watchdog_interval_seconds
    log.info("watching %s every %.0f s", ", ".join(urls), interval)
    auth = httpx.BasicAuth(settings.connect_user, settings.connect_password)
    heartbeat = Path(settings.connect_watchdog_heartbeat_file) if settings.connect_watchdog_heartbeat_file else None
    with httpx.Client(base_url=urls[0], timeout=30, auth=auth) as http:
        recoveries = {ORDERS_SINK_CONNECTOR: SinkRecovery(settings, http, ORDERS_SINK_CONNECTOR)}
        follower = SourceFollower(settings)
        if follower.enabled:
            log.info("a MariaDB source whose node is lost moves to the next Synced of %s", settings.db_hosts)
        tries = 0
        while True:
            try:
                check_once(http, recoveries, follower)
            except (httpx.HTTPError, ValueError, KeyError, TimeoutError) as exc:
                # Any worker speaks for the group: when this one does not answer, ask the next one next time.
                tries += 1
                http.base_url = httpx.URL(urls[tries % len(urls)])
                log.info("Connect not answering (%s); trying again at %s", exc, http.base_url)
            except Exception:  # a watchdog that dies watches nothing: log it and look again
                log.exception("checking the connectors failed; trying again")
            if heartbeat is not None:
                heartbeat.touch()
            time.sleep(interval)
