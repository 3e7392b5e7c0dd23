"""One JSON object per log line, carrying the service name and instance id.

Pass context through `extra`, e.g. `log.info("order published", extra={"order_id": order_id})`.
"""

import logging
import sys
import time
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}


class JsonLineFormatter(logging.Formatter):
    def __init__(self, service: str, instance_id: str | None) -> None:
        super().__init__()
        self.service = service
        self.instance_id = instance_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "instance": self.instance_id,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(service: str, instance_id: str | None, level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's, aiokafka's, ...) to stderr as JSON lines; safe to call again."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter(service, instance_id))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiokafka is chatty at INFO about every rebalance and coordinator lookup; httpx writes a line per request, and
    # the token-trust poll, discovery's registry fetches and the watchdog's look at Connect are one every few
    # seconds per process (2 of every 3 lines of an order-service log at rest were the poll's).
    for chatty in ("aiokafka", "httpx"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
