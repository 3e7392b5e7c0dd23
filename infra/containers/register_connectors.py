"""Compose's register-connectors one-shot: every connector of infra/connect/ (the file name is the connector's name),
rendered by the launcher's own code for the stack's MariaDB (launcher.connectors.rendered: for a Galera cluster the
sink's URL over every node, the CDC source's GTID domain) and PUT through Connect's REST API (create or update, so
a rerun is harmless). Run as `python -m infra.containers.register_connectors` from /app in the stack-tools image.

Environment: CONNECT_URL, CONNECT_USER and CONNECT_PASSWORD (its secret volume); DB_HOSTS, the Galera nodes as the
containers reach them (host:port, in the order clients try them).
"""

import sys
import time

import httpx

from stack_description import connectors
from stack_description.settings import StackConfig

# While the worker group starts (no answer, 5xx) or rebalances (409), ask again, for at most this long.
DEADLINE_SECONDS = 300
RETRY_SECONDS = 2


class ComposeStack(StackConfig):
    """The compose stack's configuration: its database nodes are containers, all on MariaDB's own port, named in
    DB_HOSTS (the launcher derives its nodes' loopback ports from MARIADB_NODES instead)."""

    @property
    def db_hosts(self) -> str:
        return self.get("DB_HOSTS", "")


def register(config: StackConfig, url: str, name: str, connector_config: dict[str, str]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    auth = connectors.rest_auth(config)
    while True:
        try:
            # A source connect-watchdog has moved to another Galera node stays there (connectors.followed_node).
            held = httpx.get(f"{url}/connectors/{name}/config", auth=auth, timeout=30)
            if held.status_code in (200, 404):
                registered = held.json() if held.status_code == 200 else None
                body = {**connector_config, **connectors.followed_node(config, name, registered)}
                response = httpx.put(f"{url}/connectors/{name}/config", json=body, auth=auth, timeout=30)
            else:
                response = held
            if response.status_code < 400:
                print(f"{name} registered", flush=True)
                return
            if response.status_code != 409 and response.status_code < 500:
                raise SystemExit(f"Kafka Connect rejected {name} ({response.status_code}): {response.text}")
            problem = f"{response.status_code}"
        except httpx.HTTPError as exc:
            problem = str(exc) or type(exc).__name__
        if time.monotonic() > deadline:
            raise SystemExit(f"Kafka Connect did not accept {name} within {DEADLINE_SECONDS} s ({problem})")
        time.sleep(RETRY_SECONDS)


def main() -> int:
    config = ComposeStack.from_environment()
    url = config.get("CONNECT_URL").rstrip("/")
    for name in connectors.CONNECTORS:
        register(config, url, name, connectors.connector_config(config, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
