"""What a gateway under test reports about itself on /gateway/health_check."""

import httpx


def known_instances(gateway_url: str, app: str) -> int:
    """How many instances of `app` the gateway at `gateway_url` routes to."""
    known: int = httpx.get(f"{gateway_url}/gateway/health_check").json()["instances"].get(app, 0)
    return known
