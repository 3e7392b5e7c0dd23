"""JWTs: issued by user-service at login, checked at the gateway. HS256 with the shared JWT_SECRET."""

import time

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, expired or not signed with our secret."""


def issue_token(user_id: str, secret: str, ttl_seconds: int) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + ttl_seconds}, secret, algorithm=ALGORITHM)


def token_subject(token: str, secret: str) -> str:
    """The user id the token was issued to, or InvalidToken."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    return str(claims["sub"])
