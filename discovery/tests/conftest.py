"""Discovery tests run the real server as a process on a free port, with short leases and eviction."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from servicekit.testing import free_port, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
JSON = {"Accept": "application/json"}
# The test server's own write credentials; clients carry them in the URL, as Eureka clients do.
WRITER, WRITER_PASSWORD = "eureka-test", "a-test-registry-password-of-32-bytes"


def wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, headers=JSON, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready within {timeout} s")


@pytest.fixture(scope="module")
def discovery_url() -> Iterator[str]:
    """`.../eureka` of a fresh discovery server evicting expired leases every 0.2 s."""
    port = free_port()
    env = {
        **os.environ,
        "DISCOVERY_PORT": str(port),
        "DISCOVERY_EVICTION_INTERVAL_SECONDS": "0.2",
        "DISCOVERY_LOG_LEVEL": "warning",
        "DISCOVERY_USER": WRITER,
        "DISCOVERY_PASSWORD": WRITER_PASSWORD,
    }
    process = subprocess.Popen([sys.executable, "-m", "discovery_server"], cwd=REPO_ROOT, env=env)
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/eureka/apps")
        yield f"http://{WRITER}:{WRITER_PASSWORD}@127.0.0.1:{port}/eureka"
    finally:
        stop_process(process)


def poll(description: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout} s: {description}")


Poll = Callable[[str, Callable[[], bool]], None]


@pytest.fixture
def eventually() -> Poll:
    """`eventually("what", lambda: check())`: poll with a deadline instead of sleeping a guess."""
    return poll


@pytest.fixture
def port() -> int:
    return free_port()
