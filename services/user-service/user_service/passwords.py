"""Password hashing with argon2id. Hashing is CPU-bound, so callers run it off the event loop."""

import asyncio
import os
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

_hasher = PasswordHasher()
# Verified when the email is unknown, so a wrong email costs as long as a wrong password.
_UNKNOWN_USER_HASH = _hasher.hash("no user has this password")
# Each hash takes ~64 MiB and a core for 150-300 ms: a flood of logins waits here instead of exhausting memory.
_hashing_slots = asyncio.Semaphore(os.cpu_count() or 2)


async def _off_loop(work: Callable[[], T]) -> T:
    async with _hashing_slots:
        return await asyncio.to_thread(work)


async def hash_password(password: str) -> str:
    return await _off_loop(lambda: _hasher.hash(password))


async def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed; None (no such user) takes the same time and is never a match."""
    try:
        matched = await _off_loop(lambda: _hasher.verify(password_hash or _UNKNOWN_USER_HASH, password))
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None
