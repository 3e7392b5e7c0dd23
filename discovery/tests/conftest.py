"""Discovery tests run the real server as a process on a free port, with short leases and eviction."""

from collections.abc import Iterator

import pytest

from servicekit.testing import free_port, stop_process

from .servers import start_discovery, writer_url


@pytest.fixture(scope="module")
def discovery_url() -> Iterator[str]:
    """`.../eureka` of a fresh discovery server, with the write credentials in it."""
    port = free_port()
    process = start_discovery(port)
    try:
        yield writer_url(port)
    finally:
        stop_process(process)


@pytest.fixture
def port() -> int:
    return free_port()
