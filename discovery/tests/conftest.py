"""Discovery tests run the real server as a process on a free port, with short leases and eviction."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicekit.testing import free_port, start_server, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
# The test server's own write credentials; clients carry them in the URL, as Eureka clients do.
WRITER, WRITER_PASSWORD = "eureka-test", "a-test-registry-password-of-32-bytes"


@pytest.fixture(scope="module")
def discovery_url() -> Iterator[str]:
    """`.../eureka` of a fresh discovery server evicting expired leases every 0.2 s."""
    port = free_port()
    env = {
        "DISCOVERY_PORT": str(port),
        "DISCOVERY_EVICTION_INTERVAL_SECONDS": "0.2",
        "DISCOVERY_LOG_LEVEL": "warning",
        "DISCOVERY_USER": WRITER,
        "DISCOVERY_PASSWORD": WRITER_PASSWORD,
    }
    process = start_server(
        [sys.executable, "-m", "discovery_server"],
        ready_url=f"http://127.0.0.1:{port}/eureka/apps",
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        yield f"http://{WRITER}:{WRITER_PASSWORD}@127.0.0.1:{port}/eureka"
    finally:
        stop_process(process)


@pytest.fixture
def port() -> int:
    return free_port()
