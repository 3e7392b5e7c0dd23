"""The authorization filter: Bearer JWTs checked with servicekit.tokens, verified tokens cached briefly."""

import time

from servicekit.tokens import InvalidToken, TokenClaims, verify_token

MAX_CACHED_TOKENS = 10_000
# A cached verification is trusted at most this long, and never past the token's own expiry.
CACHE_SECONDS = 60.0


class TokenVerifier:
    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._verified: dict[bytes, tuple[TokenClaims, float]] = {}

    def claims(self, authorization: bytes | None) -> TokenClaims:
        """The claims of a valid `Authorization: Bearer <jwt>`, or InvalidToken."""
        if not authorization:
            raise InvalidToken("missing Authorization header")
        now = time.time()
        cached = self._verified.get(authorization)
        if cached is not None and cached[1] > now:
            return cached[0]
        scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("expected 'Bearer <token>'")
        claims = verify_token(token.strip(), self._secret)
        if len(self._verified) >= MAX_CACHED_TOKENS:
            self._verified.clear()
        self._verified[authorization] = (claims, min(claims.expires, now + CACHE_SECONDS))
        return claims
