"""Keep-alive between our own processes: the server keeps an idle connection longer than the client reuses one, so a
request never leaves on a connection the server is closing (servicekit.keep_alive)."""

import asyncio

from fastapi import FastAPI, Request

from servicekit.keep_alive import CLIENT_IDLE_SECONDS, SERVER_IDLE_SECONDS, internal_client
from servicekit.testing import serving

# uvicorn's own timeout_keep_alive, which closed our idle connections as httpx's own expiry (5 s) was reusing them.
UVICORN_DEFAULT_IDLE_SECONDS = 5.0


def test_the_client_lets_a_connection_go_well_before_the_server_would() -> None:
    assert CLIENT_IDLE_SECONDS <= SERVER_IDLE_SECONDS * 2 / 3


async def test_a_connection_idle_past_uvicorns_default_keep_alive_is_reused_by_a_service_and_its_client() -> None:
    """Served as every service is served (servicekit.server.server_config) and asked with internal_client: after
    more idle time than uvicorn's default keep-alive, the next request goes on the same connection. With either side
    at its library's default the server would have closed it (or the client dropped it): a new client port."""
    app = FastAPI()

    @app.get("/peer")
    async def peer(request: Request) -> dict[str, int]:
        assert request.client is not None
        return {"port": request.client.port}

    async with serving(app) as url, internal_client(base_url=url) as http:
        first = (await http.get("/peer")).json()["port"]
        # The property is the idle time itself: nothing to poll for.
        await asyncio.sleep(UVICORN_DEFAULT_IDLE_SECONDS + 1)
        second = (await http.get("/peer")).json()["port"]
    assert second == first, "the idle connection was closed and a new one opened"
