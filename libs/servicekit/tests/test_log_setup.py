"""servicekit.log_setup: every process's log is JSON lines, and the libraries that write a line per request or per
rebalance speak only of what went wrong."""

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from servicekit.log_setup import configure_logging

pytestmark = pytest.mark.unit


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("aiokafka", "httpx")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_a_request_logged_by_httpx_is_not_a_line_unless_it_went_wrong(
    root_restored: None, level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = io.StringIO()
    monkeypatch.setattr("sys.stderr", written)
    configure_logging("order-service", "order-service-1", level)

    logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1:1/tokens/revocations "HTTP/1.1 200 OK"')
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Discovered coordinator 1")
    logging.getLogger("httpx").warning("a warning still comes through")
    logging.getLogger("order_service.service").info("order published")

    lines = [orjson.loads(line) for line in written.getvalue().splitlines()]
    assert [(line["logger"], line["msg"]) for line in lines] == [
        ("httpx", "a warning still comes through"),
        ("order_service.service", "order published"),
    ]
    assert lines[1]["service"] == "order-service" and lines[1]["instance"] == "order-service-1"
