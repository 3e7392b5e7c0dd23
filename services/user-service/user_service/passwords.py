"""Password hashing with argon2id. Hashing is CPU-bound, so callers run it off the event loop."""

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified when the email is unknown, so a wrong email costs as long as a wrong password.
_UNKNOWN_USER_HASH = _hasher.hash("no user has this password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed; None (no such user) takes the same time and is never a match."""
    try:
        matched = await asyncio.to_thread(_hasher.verify, password_hash or _UNKNOWN_USER_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None
