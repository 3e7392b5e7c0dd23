"""JWTs: issued by user-service at login, checked at the gateway and again by each service. HS256, shared JWT_SECRET."""

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
ADMIN_ROLE = "admin"


class InvalidToken(Exception):
    """The token is missing, malformed, expired or not signed with our secret."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says about its bearer."""

    subject: str
    roles: frozenset[str]
    expires: float

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


def issue_token(user_id: str, secret: str, ttl_seconds: int, roles: tuple[str, ...] = ()) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> TokenClaims:
    """The claims of a token signed with `secret` and not expired, or InvalidToken."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    roles = claims.get("roles", [])
    if not isinstance(claims["sub"], str) or not isinstance(roles, list):
        raise InvalidToken("malformed claims")
    return TokenClaims(claims["sub"], frozenset(str(role) for role in roles), float(claims["exp"]))
