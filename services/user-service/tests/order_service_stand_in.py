"""What user-service tests put where order-service would be, and how they call user-service as a user."""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request

# user-service's deadline for order-service's answer in these tests; the slow stand-in takes longer.
ORDERS_TIMEOUT_SECONDS = 0.5

# `bearer(user_id)` / `bearer(user_id, admin=True)` -> an Authorization header (the `bearer` fixture).
Bearer = Callable[..., dict[str, str]]


class FakeOrderService:
    """Answers GET /{userId}/orders like order-service: the orders it was given, after `delay_seconds`."""

    def __init__(self) -> None:
        self.orders: dict[str, list[dict[str, Any]]] = {}
        self.delay_seconds = 0.0
        # The Authorization header of each request, to check that user-service passes the caller's token on.
        self.authorizations: list[str | None] = []
        self.app = FastAPI()

        @self.app.get("/{user_id}/orders")
        async def orders_of(user_id: str, request: Request) -> list[dict[str, Any]]:
            self.authorizations.append(request.headers.get("authorization"))
            await asyncio.sleep(self.delay_seconds)
            return self.orders.get(user_id, [])
