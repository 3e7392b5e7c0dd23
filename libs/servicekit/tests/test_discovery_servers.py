"""DISCOVERY_URL as a comma list of discovery servers (Eureka peers): credentials in each, and a client that moves
to the next server when the one it uses fails."""

import httpx
import pytest

from servicekit.config import DiscoverySettings
from servicekit.discovery import DiscoveryClient, with_credentials

pytestmark = pytest.mark.unit

REGISTRY = {"applications": {"versions__delta": "1", "apps__hashcode": "", "application": []}}


def test_credentials_go_into_each_url_that_has_none() -> None:
    urls = "http://a:8761/eureka, http://own:secret@b:8761/eureka"

    assert with_credentials(urls, "eureka", "pw") == "http://eureka:pw@a:8761/eureka,http://own:secret@b:8761/eureka"
    assert with_credentials(urls, "eureka", None) == urls


def test_settings_give_every_server_with_credentials() -> None:
    settings = DiscoverySettings(
        discovery_url="http://a:8761/eureka,http://b:8762/eureka", discovery_user="u", discovery_password="p"
    )

    assert settings.discovery_service_url == "http://u:p@a:8761/eureka,http://u:p@b:8762/eureka"
    assert settings.discovery_urls == ["http://a:8761/eureka", "http://b:8762/eureka"]


def test_a_client_starts_with_the_first_server_and_shows_no_credentials() -> None:
    client = DiscoveryClient("http://u:p@a:8761/eureka/,http://u:p@b:8762/eureka")

    assert client.server_url == "http://a:8761/eureka"
    assert [server.url for server in client.servers] == ["http://a:8761/eureka", "http://b:8762/eureka"]


async def test_a_client_moves_to_the_next_server_on_5xx_or_no_connection_and_stays_there() -> None:
    down = {"a"}
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        assert request.headers["authorization"].startswith("Basic ")
        if request.url.host in down:
            if request.url.host == "a":
                return httpx.Response(503)
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=REGISTRY)

    client = DiscoveryClient("http://u:p@a/eureka,http://u:p@b/eureka")
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    try:
        await client.refresh()
        assert asked == ["a", "b"] and client.server_url == "http://b/eureka"

        await client.refresh_changes()
        assert asked[2:] == ["b"], "stays with the server that answers"

        down = {"b"}
        await client.refresh_changes()
        # The delta asked of b is answered by a; a delta is one server's, so the whole registry follows.
        assert asked[3:] == ["b", "a", "a"] and client.server_url == "http://a/eureka"
        assert (client.full_fetches, client.delta_fetches) == (2, 1), (
            "a delta is one server's: after a move, the whole registry"
        )

        down = {"a", "b"}
        with pytest.raises(httpx.HTTPError):
            await client.refresh()
        assert client.server_url == "http://a/eureka"
    finally:
        await client._http.aclose()
