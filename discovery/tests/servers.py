"""Discovery servers as processes on free ports, with short leases and eviction (the suite's fixtures and the
peer tests start them)."""

import subprocess
import sys
from pathlib import Path

from servicekit.testing import start_server

REPO_ROOT = Path(__file__).resolve().parents[2]
# The test server's own write credentials; clients carry them in the URL, as Eureka clients do.
WRITER, WRITER_PASSWORD = "eureka-test", "a-test-registry-password-of-32-bytes"


def writer_url(port: int) -> str:
    """`.../eureka` of the server on `port`, with the write credentials in it."""
    return f"http://{WRITER}:{WRITER_PASSWORD}@127.0.0.1:{port}/eureka"


def start_discovery(port: int, **env: str) -> subprocess.Popen[bytes]:
    """A discovery server on `port` evicting expired leases every 0.2 s, returned once it answers; `env` adds to
    or overrides its settings (DISCOVERY_PEERS=...)."""
    settings = {
        "DISCOVERY_PORT": str(port),
        "DISCOVERY_EVICTION_INTERVAL_SECONDS": "0.2",
        "DISCOVERY_LOG_LEVEL": "warning",
        "DISCOVERY_USER": WRITER,
        "DISCOVERY_PASSWORD": WRITER_PASSWORD,
        **env,
    }
    return start_server(
        [sys.executable, "-m", "discovery_server"],
        ready_url=f"http://127.0.0.1:{port}/eureka/apps",
        env=settings,
        cwd=REPO_ROOT,
    )
