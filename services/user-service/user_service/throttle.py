"""Login throttling per account and per client address, kept in userdb so every user-service instance agrees.

Failures are counted in a window; reaching the limit locks the key, each lock twice as long as the previous one
(capped). Attempts while locked are answered 429 without checking the password and are not counted.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.mysql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.errors import TooManyRequests
from user_service.models import LoginThrottle

# A key whose last lock ended this long ago starts again from the shortest lock.
FORGIVEN_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class ThrottlePolicy:
    failures_allowed: int
    window: timedelta
    first_lock: timedelta
    longest_lock: timedelta

    def lock_for(self, lockouts: int) -> timedelta:
        longer: timedelta = self.first_lock * 2 ** (lockouts - 1)
        return min(longer, self.longest_lock)


def account_key(user_id: str | None, typed_email: str) -> str:
    """The account itself once found, so no spelling of its e-mail (case, accents: the users table's collation
    finds them all) starts a budget of its own; for an e-mail no account has, the e-mail as typed, case-folded."""
    if user_id is not None:
        return f"user:{user_id}"
    return f"email:{typed_email.casefold()}"


def address_key(address: str) -> str:
    return f"address:{address}"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def refuse_if_locked(session: AsyncSession, keys: list[str]) -> None:
    """429 with Retry-After while any of `keys` is locked."""
    now = utc_now()
    locks = await session.scalars(
        select(LoginThrottle.locked_until).where(LoginThrottle.throttle_key.in_(keys), LoginThrottle.locked_until > now)
    )
    waits = [(until - now).total_seconds() for until in locks if until is not None]
    if waits:
        raise TooManyRequests("too many failed logins; try again later", retry_after=math.ceil(max(waits)))


async def record_failure(session: AsyncSession, key: str, policy: ThrottlePolicy) -> None:
    """Count one failure for `key` (row-locked, so concurrent instances count every one); the caller commits."""
    now = utc_now()
    await session.execute(
        insert(LoginThrottle).values(throttle_key=key, failures=0, window_started=now, lockouts=0).prefix_with("IGNORE")
    )
    row = await session.scalar(select(LoginThrottle).where(LoginThrottle.throttle_key == key).with_for_update())
    assert row is not None
    if now - row.window_started > policy.window:
        row.failures, row.window_started = 0, now
    if row.locked_until is not None and now - row.locked_until > FORGIVEN_AFTER:
        row.lockouts = 0
    row.failures += 1
    if row.failures >= policy.failures_allowed:
        row.lockouts += 1
        row.locked_until = now + policy.lock_for(row.lockouts)
        row.failures, row.window_started = 0, now


async def forget(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginThrottle).where(LoginThrottle.throttle_key == key))
