"""What checking a token costs since tokens are Ed25519 (EdDSA) JWTs that only user-service signs, next to the
HS256 shared-secret check they replaced, in the same run and the same process.

Three figures, each the median of alternating rounds over the same number of distinct tokens:
- a first sight: `TokenTrust.verify`, the signature checked (what a service, or the gateway on a token it has not
  seen for a minute, pays);
- the gateway's cached path: `TokenVerifier.claims` on a token it verified before (every later request of that
  user within CACHE_SECONDS; the revocation check included);
- the anchor: PyJWT's HS256 decode of the same claims with a 32-byte secret.

No stack needed: everything is in-process.
    .venv/bin/python bench/token_verify_cost.py [--tokens 2000] [--rounds 7]
"""

import argparse
import secrets
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import jwt

from api_gateway.auth import TokenVerifier
from servicekit.tokens import SigningKey, TokenTrust, issue_token, jwks


def timed(check: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Microseconds per call over `items`."""
    started = time.perf_counter()
    for item in items:
        check(item)
    return (time.perf_counter() - started) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    key = SigningKey.generate("bench")
    trust = TokenTrust.static(jwks([key]))
    users = [str(uuid.uuid4()) for _ in range(args.tokens)]
    ed_tokens = [issue_token(user, key, 3600) for user in users]
    secret = secrets.token_bytes(32)
    hs_tokens = [jwt.encode(jwt.decode(token, options={"verify_signature": False}), secret) for token in ed_tokens]
    headers = [f"Bearer {token}".encode() for token in ed_tokens]
    verifier = TokenVerifier(trust)
    for header in headers:  # every token seen once: the rounds below measure the cached path
        verifier.claims(header)

    def hs256(token: str) -> object:
        return jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp", "iat"]})

    first, cached, anchor = [], [], []
    for _ in range(args.rounds):
        anchor.append(timed(hs256, hs_tokens))
        first.append(timed(trust.verify, ed_tokens))
        cached.append(timed(verifier.claims, headers))

    def line(name: str, figures: list[float]) -> str:
        return f"  {name:<44} {statistics.median(figures):8.1f} µs  (spread {min(figures):.1f}-{max(figures):.1f})"

    print(f"token checks, {args.tokens} distinct tokens, median of {args.rounds} alternating rounds:")
    print(line("EdDSA, first sight (signature checked)", first))
    print(line("EdDSA, gateway's cached verification", cached))
    print(line("anchor: HS256 shared secret (the old scheme)", anchor))
    print(
        f"  ratio first sight / HS256: {statistics.median(first) / statistics.median(anchor):.2f}x;"
        f" cached / HS256: {statistics.median(cached) / statistics.median(anchor):.3f}x"
    )


if __name__ == "__main__":
    main()
