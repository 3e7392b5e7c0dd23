"""A stand-in service instance for gateway tests: echoes what it received, registers in discovery.

Env: APP, PORT, DISCOVERY_URL; `?sleep=<seconds>` delays the answer; SLEEP_SECONDS delays every answer.
A bare ASGI app rather than FastAPI: tests start many of these and FastAPI's import dominates startup.
"""

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from servicekit.discovery import DiscoveryClient

APP = os.environ["APP"]
PORT = int(os.environ["PORT"])
INSTANCE_ID = f"127.0.0.1:{APP.lower()}:{PORT}"
SLEEP_SECONDS = float(os.environ.get("SLEEP_SECONDS", "0"))


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = scope["query_string"].decode()
    delay = float(parse_qs(query).get("sleep", [SLEEP_SECONDS])[0])
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if delay:
        await asyncio.sleep(delay)
    answer = json.dumps(
        {
            "instance": INSTANCE_ID,
            "method": scope["method"],
            "path": scope["path"],
            "query": query,
            "headers": {name.decode(): value.decode() for name, value in scope["headers"]},
            "body": body.decode(),
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"x-instance-id", INSTANCE_ID.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


class _Server(uvicorn.Server):
    """Leaves discovery before it stops serving: uvicorn re-raises SIGTERM once `serve` returns, so code after it
    never runs, and an instance that is not deregistered stays routable until its lease runs out (3 s)."""

    def __init__(self, config: uvicorn.Config, discovery: DiscoveryClient) -> None:
        super().__init__(config)
        self.discovery = discovery

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            await self.discovery.start()

    async def shutdown(self, sockets: Any = None) -> None:
        await self.discovery.stop()
        await super().shutdown(sockets=sockets)


def main() -> None:
    discovery = DiscoveryClient(
        os.environ["DISCOVERY_URL"],
        app_name=APP,
        instance_id=INSTANCE_ID,
        port=PORT,
        renewal_interval=1.0,
        lease_duration=3.0,
    )
    config = uvicorn.Config(echo, host="127.0.0.1", port=PORT, log_level="warning", timeout_graceful_shutdown=1)
    _Server(config, discovery).run()


main()
