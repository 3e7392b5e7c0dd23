"""Keeping a verifier's TokenTrust current: user-service's JWKS and token revocations, fetched and cached.

Every verifier (the gateway's workers, each service) asks USER-SERVICE through discovery every
`token_trust_refresh_seconds`, and sooner when a token names a key id it does not know (rate-limited).
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from servicekit.discovery import InstanceSource
from servicekit.tokens import TokenTrust, public_keys

log = logging.getLogger(__name__)

USER_SERVICE_APP = "USER-SERVICE"
JWKS_PATH = "/.well-known/jwks.json"
REVOCATIONS_PATH = "/tokens/revocations"
# An unknown key id asks user-service again at most this often, so forged kids cannot make a verifier hammer it.
MIN_REFETCH_SECONDS = 1.0
FETCH_TIMEOUT_SECONDS = 2.0
LOADED_POLL_SECONDS = 0.1
# A verifier that has no key yet (just started) waits this long for user-service's before answering 503.
FIRST_KEYS_WAIT_SECONDS = 5.0

# (JWKS document, revocations document {"minVersions": {userId: version}})
TrustDocuments = tuple[Mapping[str, Any], Mapping[str, Any]]
TrustSource = Callable[[], Awaitable[TrustDocuments]]


class TrustUnavailable(Exception):
    """No USER-SERVICE instance answered."""


def from_user_service(registry: InstanceSource, http: httpx.AsyncClient) -> TrustSource:
    """The documents as the first UP USER-SERVICE instance that answers serves them."""

    async def fetch() -> TrustDocuments:
        failures: list[str] = []
        for instance in registry.instances(USER_SERVICE_APP):
            if instance.status != "UP":
                continue
            try:
                keys = await http.get(instance.base_url + JWKS_PATH, timeout=FETCH_TIMEOUT_SECONDS)
                revoked = await http.get(instance.base_url + REVOCATIONS_PATH, timeout=FETCH_TIMEOUT_SECONDS)
                keys.raise_for_status()
                revoked.raise_for_status()
                return keys.json(), revoked.json()
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                failures.append(f"{instance.instance_id}: {exc}")
        raise TrustUnavailable("; ".join(failures) or f"no {USER_SERVICE_APP} instance registered")

    return fetch


def apply(trust: TokenTrust, documents: TrustDocuments) -> bool:
    """Replace what `trust` holds; True when the key set changed (remembered verifications must go)."""
    keys_document, revocations = documents
    keys = public_keys(keys_document)
    versions = revocations.get("minVersions", {})
    trust.min_versions = {str(user): int(version) for user, version in versions.items()}
    changed = keys.keys() != trust.keys.keys()
    trust.keys = keys
    return changed


class TrustRefresher:
    """Fetches from `source` into `trust` now and then; `on_keys_changed` runs when the published keys change."""

    def __init__(
        self,
        trust: TokenTrust,
        source: TrustSource,
        refresh_seconds: float,
        on_keys_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.trust = trust
        self._source = source
        self._refresh_seconds = refresh_seconds
        self.on_keys_changed = on_keys_changed
        self._last_attempt = 0.0
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        self._last_attempt = time.monotonic()
        try:
            documents = await self._source()
        except (TrustUnavailable, httpx.HTTPError, ValueError, TypeError) as exc:
            log.warning("token keys not refreshed", extra={"reason": str(exc)})
            return False
        if apply(self.trust, documents):
            log.info("token keys changed", extra={"kids": sorted(self.trust.keys)})
            self.on_keys_changed()
        return True

    async def refresh_if_due(self) -> None:
        """For a token with an unknown key id: ask again, unless that was done a moment ago."""
        if time.monotonic() - self._last_attempt >= MIN_REFETCH_SECONDS:
            await self.refresh()

    async def wait_loaded(self, within: float) -> bool:
        """Until the trust holds user-service's keys (asking at most once a second) or `within` seconds have passed:
        a verifier that just started is not to judge tokens with no key at all."""
        self.start()
        for _ in range(max(1, int(within / LOADED_POLL_SECONDS))):
            if self.trust.keys:
                return True
            await self.refresh_if_due()
            await asyncio.sleep(LOADED_POLL_SECONDS)
        return bool(self.trust.keys)

    def want_refresh(self) -> None:
        """The synchronous form of refresh_if_due (the gateway's hot path): the background loop fetches soon."""
        self._wanted.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _refresh_forever(self) -> None:
        while True:
            ok = await self.refresh()
            # Until the first answer (user-service still starting), try again every second.
            wait = self._refresh_seconds if ok and self.trust.keys else MIN_REFETCH_SECONDS
            try:
                await asyncio.wait_for(self._wanted.wait(), timeout=wait)
                await asyncio.sleep(max(0.0, self._last_attempt + MIN_REFETCH_SECONDS - time.monotonic()))
            except TimeoutError:
                pass
            self._wanted.clear()
