"""What user-service does: register and authenticate users, and show a user with their orders."""

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.discovery import DiscoveryClient, NoInstanceAvailable
from servicekit.errors import Conflict, DomainError, NotFound
from user_service.config import ORDER_SERVICE_APP
from user_service.models import User
from user_service.passwords import hash_password, password_matches
from user_service.schemas import OrderView, UserRegistration, UserView, UserWithOrders

log = logging.getLogger(__name__)

_ORDER_LIST = TypeAdapter(list[OrderView])


class EmailAlreadyRegistered(Conflict):
    def __init__(self) -> None:
        super().__init__("a user with this email already exists", field="email")


class InvalidCredentials(DomainError):
    status_code = 401

    def __init__(self) -> None:
        super().__init__("wrong email or password")


class UserNotFound(NotFound):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user {user_id}")


class OrdersUnavailable(Exception):
    """order-service could not say which orders a user has; the message says why."""


async def register_user(session: AsyncSession, registration: UserRegistration) -> User:
    user = User(
        user_id=str(uuid.uuid4()),
        email=registration.email,
        name=registration.name,
        password_hash=await hash_password(registration.pwd),
        created_at=datetime.now(UTC).replace(tzinfo=None),
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        # The unique index decides, so two concurrent registrations of one email cannot both succeed.
        await session.rollback()
        raise EmailAlreadyRegistered() from exc
    log.info("user registered", extra={"user_id": user.user_id})
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.email == email))
    # Checked even for an unknown email, so the answer takes as long either way.
    matched = await password_matches(user.password_hash if user is not None else None, password)
    if user is None or not matched:
        raise InvalidCredentials()
    return user


async def list_users(session: AsyncSession) -> Sequence[User]:
    return (await session.scalars(select(User).order_by(User.id))).all()


async def find_user(session: AsyncSession, user_id: str) -> User:
    user = await session.scalar(select(User).where(User.user_id == user_id))
    if user is None:
        raise UserNotFound(user_id)
    return user


class OrderServiceClient:
    """Asks one order-service instance (round robin through discovery) for a user's orders."""

    def __init__(self, discovery: DiscoveryClient, http: httpx.AsyncClient) -> None:
        self.discovery = discovery
        self.http = http

    async def orders_of(self, user_id: str, *, authorization: str | None = None) -> list[OrderView]:
        try:
            instance = self.discovery.next_instance(ORDER_SERVICE_APP)
        except NoInstanceAvailable as exc:
            raise OrdersUnavailable(f"order-service unavailable: {exc}") from exc
        headers = {"Authorization": authorization} if authorization else {}
        url = f"{instance.base_url}/{user_id}/orders"
        try:
            response = await self.http.get(url, headers=headers)
        except httpx.TimeoutException as exc:
            raise OrdersUnavailable(f"order-service instance {instance.instance_id} timed out") from exc
        except httpx.HTTPError as exc:
            raise OrdersUnavailable(f"order-service instance {instance.instance_id} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise OrdersUnavailable(f"order-service instance {instance.instance_id} answered {response.status_code}")
        try:
            return _ORDER_LIST.validate_json(response.content)
        except ValidationError as exc:
            raise OrdersUnavailable(f"order-service instance {instance.instance_id} sent an unexpected answer") from exc


async def user_with_orders(
    session: AsyncSession, orders: OrderServiceClient, user_id: str, *, authorization: str | None = None
) -> UserWithOrders:
    """The user and their orders; when order-service cannot answer, no orders and the reason instead."""
    user = await find_user(session, user_id)
    view = UserView.of(user)
    try:
        return UserWithOrders(**view.model_dump(), orders=await orders.orders_of(user_id, authorization=authorization))
    except OrdersUnavailable as exc:
        log.warning("user shown without orders", extra={"user_id": user_id, "reason": str(exc)})
        return UserWithOrders(**view.model_dump(), orders=[], ordersError=str(exc))
