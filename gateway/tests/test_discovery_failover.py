"""A gateway given several discovery servers (DISCOVERY_URL as a comma list) uses the first that answers."""

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from servicekit.testing import eventually_blocking, free_port

from .conftest import ScriptedUpstream

APP = "PEER-FAILOVER"
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"


@pytest.fixture
def failover_routes(tmp_path: Path) -> Path:
    route = {
        "id": "peer-failover",
        "uri": f"lb://{APP}",
        "predicates": ["Path=/peer-failover/**"],
        "filters": ["Public", "RewritePath=/peer-failover/(?<segment>.*), /${segment}"],
    }
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump({"routes": [route]}))
    return path


def test_a_gateway_whose_first_discovery_server_is_down_registers_and_routes_through_the_next(
    discovery_url: str,
    failover_routes: Path,
    start_gateway: Callable[..., tuple[str, object]],
    scripted_upstream: Callable[[str, dict[bytes, bytes]], ScriptedUpstream],
) -> None:
    scripted_upstream(APP, {b"/": OK})
    nobody = f"http://127.0.0.1:{free_port()}/eureka"  # nothing listens there

    gateway_url, _ = start_gateway(1, DISCOVERY_URL=f"{nobody},{discovery_url}", GATEWAY_ROUTES=str(failover_routes))

    def routed() -> str | None:
        response = httpx.get(f"{gateway_url}/peer-failover/")
        return response.text if response.status_code == 200 else None

    answer = eventually_blocking(
        routed, within=10, what="the gateway routes to an instance it learnt from the second discovery server"
    )
    assert answer == "ok"
    gateway_port = httpx.URL(gateway_url).port
    registered = f"{discovery_url}/apps/GATEWAY/127.0.0.1:gateway:{gateway_port}"
    eventually_blocking(
        lambda: httpx.get(registered).status_code == 200, within=10, what="the gateway registered at the second"
    )
