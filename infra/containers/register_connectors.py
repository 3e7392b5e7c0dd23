"""Compose's register-connectors one-shot: every connector of infra/connect/ (the file name is the connector's name),
rendered for the stack's MariaDB and PUT through Connect's REST API exactly as the launcher registers them
(stack_description.connectors.put_connector: create or update, so a rerun is harmless; for a Galera cluster the
sink's URL over every node and the CDC source's GTID domain). Run as `python -m infra.containers.register_connectors`
from /app in the stack-tools image.

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


def register(config: StackConfig, url: str, name: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            response = connectors.put_connector(config, url, name)
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
        register(config, url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
