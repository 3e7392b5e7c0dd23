"""What user-service does: register and authenticate users, and show a user with their orders."""

import logging
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import httpx
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.discovery import DiscoveryClient, NoInstanceAvailable
from servicekit.errors import Conflict, DomainError, NotFound
from servicekit.tokens import ADMIN_ROLE
from user_service import throttle
from user_service.config import ORDER_SERVICE_APP, UserServiceSettings
from user_service.models import User
from user_service.passwords import hash_password, password_matches
from user_service.schemas import OrderView, UserRegistration, UserUpdate, UserView, UserWithOrders

log = logging.getLogger(__name__)

_ORDER_LIST = TypeAdapter(list[OrderView])
# A user page shows this many of the latest orders (order-service's default page).
ORDERS_PAGE = 50
# The generated first admin password: 24 random bytes, 32 URL-safe characters.
ADMIN_PASSWORD_BYTES = 24


class EmailAlreadyRegistered(Conflict):
    def __init__(self) -> None:
        super().__init__("a user with this email already exists", field="email")


class InvalidCredentials(DomainError):
    status_code = 401

    def __init__(self) -> None:
        super().__init__("wrong email or password")


class WrongCurrentPassword(DomainError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__("currentPwd is not this user's password", field="currentPwd")


class UserNotFound(NotFound):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user {user_id}")


class OrdersUnavailable(Exception):
    """order-service could not say which orders a user has; the message says why."""


class AdminEmailTaken(Conflict):
    def __init__(self, email: str) -> None:
        super().__init__(
            f"{email} already has an account without the admin role: whoever signed it up may not be you. "
            "If it is yours, give it the role with grant-admin"
        )


async def register_user(session: AsyncSession, registration: UserRegistration) -> User:
    """A new account without roles, whatever its e-mail (ADMIN_EMAIL included: an e-mail proves nothing here)."""
    user = _new_user(registration.email, registration.name, await hash_password(registration.pwd), roles="")
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        # The unique index decides, so two concurrent registrations of one email cannot both succeed.
        await session.rollback()
        raise EmailAlreadyRegistered() from exc
    log.info("user registered", extra={"user_id": user.user_id})
    return user


def _new_user(email: str, name: str, password_hash: str, roles: str) -> User:
    return User(
        user_id=str(uuid.uuid4()),
        email=email,
        name=name,
        password_hash=password_hash,
        created_at=datetime.now(UTC).replace(tzinfo=None),
        roles=roles,
    )


async def create_admin(session: AsyncSession, email: str) -> tuple[User, str | None]:
    """The operator's first admin: a new account with a generated password, returned once and kept nowhere but
    as its hash. An admin with this e-mail already there: (it, None). Anyone else's account: AdminEmailTaken,
    so signing up first with the address gains nothing."""
    existing = await user_by_email(session, email)
    if existing is not None:
        if ADMIN_ROLE in existing.role_names:
            return existing, None
        raise AdminEmailTaken(email)
    password = secrets.token_urlsafe(ADMIN_PASSWORD_BYTES)
    user = _new_user(email, "Administrator", await hash_password(password), roles=ADMIN_ROLE)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise AdminEmailTaken(email) from exc
    log.info("admin created", extra={"user_id": user.user_id})
    return user, password


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """The account with this e-mail as the users table compares it (utf8mb4_unicode_ci: case and accents aside)."""
    return await session.scalar(select(User).where(User.email == email))


async def log_in(session: AsyncSession, email: str, password: str, address: str, settings: UserServiceSettings) -> User:
    """The user, unless the account or the client address is locked (429) or the credentials are wrong (401)."""
    user = await user_by_email(session, email)
    by_account = throttle.account_key(user.user_id if user is not None else None, email)
    by_address = throttle.address_key(address)
    await throttle.refuse_if_locked(session, [by_account, by_address])
    # Checked even for an unknown email, so the answer takes as long either way.
    matched = await password_matches(user.password_hash if user is not None else None, password)
    if user is None or not matched:
        await throttle.record_failure(session, by_account, _policy(settings, settings.login_failures_per_account))
        await throttle.record_failure(session, by_address, _policy(settings, settings.login_failures_per_address))
        await session.commit()
        raise InvalidCredentials()
    await throttle.forget(session, by_account)
    await session.commit()
    return user


def _policy(settings: UserServiceSettings, failures_allowed: int) -> throttle.ThrottlePolicy:
    return throttle.ThrottlePolicy(
        failures_allowed=failures_allowed,
        window=timedelta(seconds=settings.login_window_seconds),
        first_lock=timedelta(seconds=settings.login_lock_seconds),
        longest_lock=timedelta(seconds=settings.login_max_lock_seconds),
    )


async def grant_role(session: AsyncSession, email: str, role: str) -> User:
    user = await user_by_email(session, email)
    if user is None:
        raise UserNotFound(email)
    if role not in user.role_names:
        user.roles = ",".join((*user.role_names, role))
        await session.commit()
    return user


async def update_user(session: AsyncSession, user_id: str, update: UserUpdate) -> User:
    """A new password needs the current one, and ends every token issued before it (a new token version)."""
    user = await find_user(session, user_id)
    if update.pwd is not None:
        if not await password_matches(user.password_hash, update.currentPwd or ""):
            raise WrongCurrentPassword()
        user.password_hash = await hash_password(update.pwd)
        user.token_version += 1
        user.token_version_at = datetime.now(UTC).replace(tzinfo=None)
    if update.name is not None:
        user.name = update.name
    await session.commit()
    log.info("user updated", extra={"user_id": user_id, "password_changed": update.pwd is not None})
    return user


async def revoked_token_versions(session: AsyncSession, settings: UserServiceSettings) -> dict[str, int]:
    """userId -> the lowest token version still valid, for users whose older tokens may not have expired yet."""
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=settings.jwt_ttl_seconds)
    rows = await session.execute(select(User.user_id, User.token_version).where(User.token_version_at >= since))
    return {user_id: version for user_id, version in rows}


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

    async def orders_of(self, user_id: str, *, authorization: str | None = None) -> tuple[list[OrderView], str | None]:
        """The latest page of the user's orders (newest first) and the cursor of the next page, if any."""
        try:
            instance = self.discovery.next_instance(ORDER_SERVICE_APP)
        except NoInstanceAvailable as exc:
            raise OrdersUnavailable(f"order-service unavailable: {exc}") from exc
        headers = {"Authorization": authorization} if authorization else {}
        url = f"{instance.base_url}/{user_id}/orders"
        try:
            response = await self.http.get(url, headers=headers, params={"limit": ORDERS_PAGE})
        except httpx.TimeoutException as exc:
            raise OrdersUnavailable(f"order-service instance {instance.instance_id} timed out") from exc
        except httpx.HTTPError as exc:
            raise OrdersUnavailable(f"order-service instance {instance.instance_id} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise OrdersUnavailable(f"order-service instance {instance.instance_id} answered {response.status_code}")
        try:
            return _ORDER_LIST.validate_json(response.content), response.headers.get("X-Next-Cursor")
        except ValidationError as exc:
            raise OrdersUnavailable(f"order-service instance {instance.instance_id} sent an unexpected answer") from exc


async def user_with_orders(
    session: AsyncSession, orders: OrderServiceClient, user_id: str, *, authorization: str | None = None
) -> UserWithOrders:
    """The user and their orders; when order-service cannot answer, no orders and the reason instead."""
    user = await find_user(session, user_id)
    view = UserView.of(user)
    try:
        page, next_cursor = await orders.orders_of(user_id, authorization=authorization)
    except OrdersUnavailable as exc:
        log.warning("user shown without orders", extra={"user_id": user_id, "reason": str(exc)})
        return UserWithOrders(**view.model_dump(), orders=[], ordersError=str(exc))
    more = None
    if next_cursor is not None:
        # Through the gateway, with the same token: the user's next page straight from order-service.
        more = f"/order-service/{quote(user_id)}/orders?{urlencode({'limit': ORDERS_PAGE, 'cursor': next_cursor})}"
    return UserWithOrders(**view.model_dump(), orders=page, ordersNext=more)
