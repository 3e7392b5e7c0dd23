"""What a gateway under test reports about itself on /gateway/health_check (its details are for the admin role)."""

from typing import Any

import httpx

from servicekit.testing import bearer


def gateway_details(gateway_url: str) -> dict[str, Any]:
    """The health document an admin's token gets: pid, workers, instances per app, instances not allowed."""
    answer = httpx.get(f"{gateway_url}/gateway/health_check", headers={"Authorization": bearer("operator", "admin")})
    document: dict[str, Any] = answer.json()
    return document


def known_instances(gateway_url: str, app: str) -> int:
    """How many instances of `app` the gateway at `gateway_url` routes to."""
    known: int = gateway_details(gateway_url)["instances"].get(app, 0)
    return known
