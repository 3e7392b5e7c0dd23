"""A client of the services' HTTP API (README, "A curl walkthrough"), through the gateway only:
what a user's curl calls do, in Python."""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    token: str
    password: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class PlacedOrder:
    order: dict[str, Any]
    instance_id: str

    @property
    def order_id(self) -> str:
        return str(self.order["orderId"])


class GatewayClient:
    """The public API through the gateway. Given several gateways (the cluster's two), place_until_accepted moves
    to the next one when a connection to the current one fails, as a client behind a load balancer would."""

    def __init__(self, base_url: str, *others: str, timeout: float = 15.0) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.gateways = [base_url, *others]
        self._current = 0
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)

    def fail_over(self) -> None:
        """Send from now on to the next gateway (round the list)."""
        self._current = (self._current + 1) % len(self.gateways)
        self.http.base_url = httpx.URL(self.gateways[self._current])

    async def __aenter__(self) -> "GatewayClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    async def sign_up(self, name: str = "Demo User") -> User:
        """Register a new user and log in; a fresh email every time."""
        email = f"{name.lower().replace(' ', '.')}.{uuid.uuid4().hex[:10]}@example.com"
        password = uuid.uuid4().hex
        created = await self.http.post("/user-service/users", json={"email": email, "name": name, "pwd": password})
        created.raise_for_status()
        login = await self.http.post("/user-service/login", json={"email": email, "password": password})
        login.raise_for_status()
        return User(user_id=login.headers["userId"], email=email, token=login.headers["token"], password=password)

    async def order(
        self,
        user: User,
        product_id: str,
        qty: int,
        unit_price: int | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = dict(user.auth)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        # Without a unitPrice the catalog's applies; with one, a different catalog price is a 409.
        body: dict[str, Any] = {"productId": product_id, "qty": qty}
        if unit_price is not None:
            body["unitPrice"] = unit_price
        return await self.http.post(f"/order-service/{user.user_id}/orders", json=body, headers=headers)

    async def place_order(
        self,
        user: User,
        product_id: str,
        qty: int,
        unit_price: int | None = None,
        idempotency_key: str | None = None,
    ) -> PlacedOrder:
        response = await self.order(user, product_id, qty, unit_price, idempotency_key)
        if response.status_code != 201:
            raise OrderNotAccepted(response.status_code, response.text)
        return PlacedOrder(order=response.json(), instance_id=response.headers.get("X-Instance-Id", "?"))

    async def place_until_accepted(
        self,
        user: User,
        product_id: str,
        qty: int,
        *,
        attempts: int = 60,
        backoff: float = 0.5,
        on_retry: Callable[[httpx.Response | None], None] | None = None,
    ) -> str:
        """What a careful client does while parts of the system fail: one Idempotency-Key for the order, sent
        again after a 5xx or a broken connection until accepted (the key makes the retries one order). Any other
        answer raises OrderNotAccepted, as does running out of attempts. Returns the order id."""
        key = uuid.uuid4().hex
        response: httpx.Response | None = None
        for _attempt in range(attempts):
            try:
                response = await self.order(user, product_id, qty, idempotency_key=key)
            except httpx.HTTPError:  # the connection itself failed: for a client the same as a 5xx
                response = None
                self.fail_over()
            if response is not None and response.status_code == 201:
                return str(response.json()["orderId"])
            if response is not None and response.status_code < 500:
                raise OrderNotAccepted(response.status_code, response.text)
            if on_retry is not None:
                on_retry(response)
            await asyncio.sleep(backoff)
        last = f"{response.status_code}: {response.text}" if response is not None else "no connection"
        raise OrderNotAccepted(0, f"not accepted after {attempts} attempts; last answer {last}")

    async def orders_of(self, user: User) -> tuple[list[dict[str, Any]], str]:
        """That user's orders and the order-service instance that answered."""
        response = await self.http.get(f"/order-service/{user.user_id}/orders", headers=user.auth)
        response.raise_for_status()
        return response.json(), response.headers.get("X-Instance-Id", "?")

    async def catalog(self) -> dict[str, dict[str, Any]]:
        response = await self.http.get("/catalog-service/catalogs")
        response.raise_for_status()
        return {item["productId"]: item for item in response.json()}

    async def stock(self) -> dict[str, int]:
        return {product_id: item["stock"] for product_id, item in (await self.catalog()).items()}


class OrderNotAccepted(Exception):
    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"{status_code}: {body[:300]}")
        self.status_code = status_code
