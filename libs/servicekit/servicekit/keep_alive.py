"""Keep-alive between our own processes: a client lets an idle connection go before the server closes it.

uvicorn closes a connection that has been idle `timeout_keep_alive` (5 s unless told), and httpx reuses one idle up to
`keepalive_expiry` (5 s unless told). With both at 5 s, a request sent on a connection idle for almost 5 s can meet
the server's close on the way: "Server disconnected without sending a response" (seen in the gateway's discovery
heartbeat, every 5 s, sharing its pool with the registry refresh). So our servers keep an idle connection
SERVER_IDLE_SECONDS, and our clients reuse one for CLIENT_IDLE_SECONDS at most, well below. The gateway's own
upstream pool follows the same rule with its GATEWAY_UPSTREAM_IDLE_SECONDS.
"""

from typing import Any

import httpx

# uvicorn's timeout_keep_alive for every service, the discovery server and the in-process test servers.
SERVER_IDLE_SECONDS = 30
# The longest an internal client keeps an idle connection for reuse: a third less than the server, so a request
# never leaves on a connection the server is closing, however late its event loop runs.
CLIENT_IDLE_SECONDS = 20.0


def internal_client(**options: Any) -> httpx.AsyncClient:
    """An httpx client for another of our processes (discovery, user-service's keys, order-service, a peer): httpx's
    default pool (100 connections, 20 kept idle) with the idle bound above."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=CLIENT_IDLE_SECONDS)
    return httpx.AsyncClient(limits=limits, **options)
