"""Orders placed from the host through the compose gateway."""

import asyncio
import time
import uuid

from stack_support.api_client import GatewayClient, User

ORDER_REPLICAS = {"order-service-1", "order-service-2"}


async def priced_by_every_instance(gateway: GatewayClient, user: User, products: list[str]) -> list[str]:
    """Orders of one unit until each product was accepted by both order-service replicas (they learn products from
    catalog-changes); their ids, which count like any other accepted order."""
    accepted: list[str] = []
    for product in products:
        answered_by: set[str] = set()
        deadline = time.monotonic() + 60
        while answered_by != ORDER_REPLICAS:
            assert time.monotonic() < deadline, f"{product} not priced by both replicas within 60 s: {answered_by}"
            response = await gateway.order(user, product, 1, 100, idempotency_key=uuid.uuid4().hex)
            if response.status_code == 201:
                accepted.append(response.json()["orderId"])
                answered_by.add(response.headers.get("X-Instance-Id", "?"))
            else:
                await asyncio.sleep(0.5)
    return accepted
