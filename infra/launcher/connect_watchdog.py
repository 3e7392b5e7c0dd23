"""Restarts failed Kafka Connect connectors and tasks: `python -m launcher.connect_watchdog`, started by `up`.

Connect never restarts a FAILED task by itself, and the Debezium JDBC sink fails its task when the database
disappears in the middle of a write (a dead connection at `begin` is not among the errors it retries). A restarted
task resumes from its committed offsets and upserts, so restarting is always safe: the Strimzi operator's
auto-restart, for a stack without an operator.
"""

import logging
import os
import time

import httpx

log = logging.getLogger("connect-watchdog")


def failed_parts(status: dict) -> list[str]:
    parts = []
    if status.get("connector", {}).get("state") == "FAILED":
        parts.append("connector")
    parts += [f"task {task['id']}" for task in status.get("tasks", []) if task.get("state") == "FAILED"]
    return parts


def first_line(status: dict) -> str:
    traces = [status.get("connector", {}).get("trace", "")] + [t.get("trace", "") for t in status.get("tasks", [])]
    return next((trace.splitlines()[0] for trace in traces if trace), "")


def check_once(http: httpx.Client) -> None:
    statuses = http.get("/connectors", params={"expand": "status"}).json()
    for name, described in statuses.items():
        status = described["status"]
        failed = failed_parts(status)
        if failed:
            log.warning("restarting %s of %s: %s", ", ".join(failed), name, first_line(status))
            http.post(f"/connectors/{name}/restart", params={"includeTasks": "true", "onlyFailed": "true"})


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll would drown the restarts
    url = os.environ.get("CONNECT_URL", "http://127.0.0.1:8083").rstrip("/")
    interval = float(os.environ.get("CONNECT_WATCHDOG_INTERVAL_SECONDS", "3"))
    log.info("watching %s every %.0f s", url, interval)
    auth = httpx.BasicAuth(os.environ.get("CONNECT_USER", "connect-admin"), os.environ.get("CONNECT_PASSWORD", ""))
    with httpx.Client(base_url=url, timeout=5, auth=auth) as http:
        while True:
            try:
                check_once(http)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.info("Connect not answering (%s); trying again", exc)
            time.sleep(interval)


if __name__ == "__main__":
    main()
