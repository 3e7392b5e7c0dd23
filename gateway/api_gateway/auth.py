"""The authorization filter: Bearer JWTs checked with servicekit.tokens, verified tokens cached briefly."""

import time

import jwt

from servicekit.tokens import InvalidToken, token_subject

MAX_CACHED_TOKENS = 10_000
# A cached verification is trusted at most this long, and never past the token's own expiry.
CACHE_SECONDS = 60.0


class TokenVerifier:
    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._verified: dict[bytes, tuple[str, float]] = {}

    def subject(self, authorization: bytes | None) -> str:
        """The user id of a valid `Authorization: Bearer <jwt>`, or InvalidToken."""
        if not authorization:
            raise InvalidToken("missing Authorization header")
        now = time.time()
        cached = self._verified.get(authorization)
        if cached is not None and cached[1] > now:
            return cached[0]
        scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("expected 'Bearer <token>'")
        subject = token_subject(token.strip(), self._secret)
        expires = float(jwt.decode(token.strip(), options={"verify_signature": False}).get("exp", now))
        if len(self._verified) >= MAX_CACHED_TOKENS:
            self._verified.clear()
        self._verified[authorization] = (subject, min(expires, now + CACHE_SECONDS))
        return subject
