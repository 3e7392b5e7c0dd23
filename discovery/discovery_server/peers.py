"""Discovery peers, as Eureka's PeerAwareInstanceRegistry and PeerEurekaNode have them: every register, heartbeat,
cancel and status change a client makes here is passed on to each peer, marked as a replication so the peer applies
it without passing it on again; a server starting up fetches the registry from a peer (Eureka's syncUp).

Replication is asynchronous and bounded: each peer has one queue of pending changes, at most one per instance and
kind (a newer change to the same instance replaces the older), sent by one task per peer, so a slow or dead peer
holds up no client and at most `max_pending` changes.
"""

import asyncio
import enum
import ipaddress
import logging
import socket
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from discovery_server import wire_format
from discovery_server.metrics import PEER_REACHABLE, REPLICATION_FAILURES, REPLICATION_PENDING, REPLICATIONS
from discovery_server.registry import InstanceTaken, Registry, RegistryFull, UnknownInstance
from servicekit.discovery import registry_entries
from servicekit.keep_alive import internal_client

log = logging.getLogger("discovery_server.peers")

# The header Eureka servers mark a replication with: the receiver applies it and passes nothing on.
REPLICATION_HEADER = "x-netflix-discovery-replication"
# A peer that fails is tried again after this, doubling up to the most.
FIRST_RETRY_SECONDS = 0.1
MOST_RETRY_SECONDS = 2.0


class Action(enum.Enum):
    REGISTER = "register"
    HEARTBEAT = "heartbeat"
    CANCEL = "cancel"
    STATUS_UPDATE = "status"
    DELETE_STATUS_OVERRIDE = "delete-status"


# Changes to an instance's lease replace each other, and so do changes to its status override.
_LEASE = (Action.REGISTER, Action.HEARTBEAT, Action.CANCEL)


@dataclass(frozen=True)
class Change:
    action: Action
    app: str
    instance_id: str
    status: str = ""  # STATUS_UPDATE's value

    @property
    def key(self) -> tuple[str, str, bool]:
        return self.app, self.instance_id, self.action in _LEASE


class PeerUnavailable(Exception):
    """The peer could not be reached, or answered 5xx: the change stays pending."""


def is_replication(headers: Any) -> bool:
    return str(headers.get(REPLICATION_HEADER, "")).lower() == "true"


def _own_hosts(bind_host: str) -> set[str]:
    hosts = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower(), bind_host.lower()}
    return {host for host in hosts if host}


def _names_this_server(url: httpx.URL, bind_host: str, port: int) -> bool:
    """Eureka's isThisMyUrl: the same port on a loopback address or one of this host's names."""
    if (url.port or 80) != port:
        return False
    try:
        if ipaddress.ip_address(url.host).is_loopback:
            return True
    except ValueError:
        pass
    return url.host.lower() in _own_hosts(bind_host)


class PeerNode:
    """One peer: its pending changes and the task that sends them."""

    def __init__(
        self, url: str, user: str, password: str, registry: Registry, *, max_pending: int, timeout_seconds: float
    ) -> None:
        parsed = httpx.URL(url.strip().rstrip("/"))
        auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.username else httpx.BasicAuth(user, password)
        # The peer's name in logs and metrics: its URL without credentials.
        self.url = str(parsed.copy_with(username=None, password=None))
        self._registry = registry
        self._max_pending = max_pending
        self._http = internal_client(
            base_url=self.url, auth=auth, timeout=timeout_seconds, headers={REPLICATION_HEADER: "true"}
        )
        self._pending: OrderedDict[tuple[str, str, bool], Change] = OrderedDict()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reachable: bool | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._send_forever(), name=f"replicate-to-{self.url}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._http.aclose()

    def enqueue(self, change: Change) -> None:
        waiting = self._pending.get(change.key)
        if waiting is not None and waiting.action is Action.REGISTER and change.action is Action.HEARTBEAT:
            return  # the registration still to be sent carries the instance and renews its lease too
        self._pending[change.key] = change
        self._pending.move_to_end(change.key)
        if len(self._pending) > self._max_pending:
            _, dropped = self._pending.popitem(last=False)
            REPLICATIONS.labels(self.url, dropped.action.value, "dropped").inc()
            # Heals on its own: a dropped heartbeat's 404 re-registers, a dropped cancel expires at the peer.
            log.warning(
                "dropped %s of %s/%s for peer %s: %d changes pending",
                dropped.action.value,
                dropped.app,
                dropped.instance_id,
                self.url,
                self._max_pending,
            )
        REPLICATION_PENDING.labels(self.url).set(len(self._pending))
        self._wake.set()

    async def _send_forever(self) -> None:
        retry_seconds = FIRST_RETRY_SECONDS
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key, change = next(iter(self._pending.items()))
                try:
                    outcome = await self._send(change)
                except PeerUnavailable as exc:
                    REPLICATION_FAILURES.labels(self.url).inc()
                    self._mark_reachable(False, str(exc))
                    await asyncio.sleep(retry_seconds)
                    retry_seconds = min(retry_seconds * 2, MOST_RETRY_SECONDS)
                    continue
                retry_seconds = FIRST_RETRY_SECONDS
                self._mark_reachable(True, "")
                if self._pending.get(key) is change:  # else a newer change to the instance came meanwhile
                    del self._pending[key]
                REPLICATION_PENDING.labels(self.url).set(len(self._pending))
                if outcome is not None:
                    REPLICATIONS.labels(self.url, change.action.value, outcome).inc()

    def _mark_reachable(self, reachable: bool, reason: str) -> None:
        if reachable != self._reachable:  # said once per change, not per attempt
            if reachable:
                log.info("peer %s answers; %d changes pending", self.url, len(self._pending))
            else:
                log.warning("peer %s unreachable (%s); %d changes pending", self.url, reason, len(self._pending))
        self._reachable = reachable
        PEER_REACHABLE.labels(self.url).set(1 if reachable else 0)

    async def _send(self, change: Change) -> str | None:
        """The outcome (sent, refused), or None when there was nothing left to send."""
        path = f"/apps/{quote(change.app)}/{quote(change.instance_id)}"
        if change.action is Action.REGISTER:
            return await self._register(change)
        if change.action is Action.HEARTBEAT:
            try:
                instance = self._registry.instance(change.app, change.instance_id)
            except UnknownInstance:
                return None  # cancelled or evicted here since
            params = {"status": instance.status, "lastDirtyTimestamp": str(instance.last_dirty_timestamp)}
            response = await self._request("PUT", path, params=params)
            if response.status_code == 404:
                # The peer does not know it (restarted, or a change was dropped): give it the whole instance.
                return await self._register(change)
        elif change.action is Action.CANCEL:
            response = await self._request("DELETE", path)
        elif change.action is Action.STATUS_UPDATE:
            response = await self._request("PUT", f"{path}/status", params={"value": change.status})
        else:
            response = await self._request("DELETE", f"{path}/status")
        return self._outcome(change, response, missing_is_fine=change.action is not Action.HEARTBEAT)

    async def _register(self, change: Change) -> str | None:
        try:
            instance = self._registry.instance(change.app, change.instance_id)
        except UnknownInstance:
            return None
        body = wire_format.instance_json(instance)
        # What the instance reports, as a registration carries it; the override rides in overriddenStatus.
        body["status"] = instance.reported_status
        response = await self._request("POST", f"/apps/{quote(change.app)}", json={"instance": body})
        return self._outcome(change, response, missing_is_fine=False)

    async def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **options)
        except httpx.TransportError as exc:
            raise PeerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise PeerUnavailable(f"answered {response.status_code}")
        return response

    def _outcome(self, change: Change, response: httpx.Response, *, missing_is_fine: bool) -> str:
        if response.is_success or (missing_is_fine and response.status_code == 404):
            return "sent"
        log.warning(
            "peer %s refused %s of %s/%s: %s %s",
            self.url,
            change.action.value,
            change.app,
            change.instance_id,
            response.status_code,
            response.text[:200],
        )
        return "refused"


class Peers:
    """Every peer of this server; `replicate` hands a change a client made here to each."""

    def __init__(self, nodes: Iterable[PeerNode]) -> None:
        self.nodes = list(nodes)

    @classmethod
    def from_settings(
        cls,
        urls: str,
        registry: Registry,
        *,
        user: str,
        password: str,
        bind_host: str,
        port: int,
        max_pending: int,
        timeout_seconds: float,
    ) -> "Peers":
        nodes = []
        for url in filter(None, (part.strip() for part in urls.split(","))):
            if _names_this_server(httpx.URL(url), bind_host, port):
                continue
            nodes.append(
                PeerNode(url, user, password, registry, max_pending=max_pending, timeout_seconds=timeout_seconds)
            )
        return cls(nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()

    def replicate(self, action: Action, app: str, instance_id: str, status: str = "") -> None:
        change = Change(action, app.upper(), instance_id, status)
        for node in self.nodes:
            node.enqueue(change)

    async def sync_registry(self, registry: Registry, timeout_seconds: float) -> int:
        """Eureka's syncUp: copy the registry of the first peer that answers; the number of instances taken."""
        for node in self.nodes:
            try:
                document = await fetch_registry(node.url, timeout_seconds)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("could not fetch the registry from peer %s: %s", node.url, exc)
                continue
            taken = sum(_take(registry, fields) for _, fields in registry_entries(document))
            log.info("took %d instances from peer %s at start", taken, node.url)
            return taken
        if self.nodes:
            log.warning("no peer answered at start; starting with an empty registry")
        return 0


async def fetch_registry(url: str, timeout_seconds: float) -> dict[str, Any]:
    # Reads are open; credentials stay out of this request.
    parsed = httpx.URL(url).copy_with(username=None, password=None)
    async with httpx.AsyncClient(timeout=timeout_seconds) as http:
        response = await http.get(f"{parsed}/apps", headers={"Accept": "application/json"})
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document


def _take(registry: Registry, fields: dict[str, Any]) -> bool:
    try:
        instance = wire_format.instance_from_fields(fields)
        if instance.overridden_status not in ("", "UNKNOWN"):
            # `/apps` shows the override as the status; what the instance itself reports is not in it.
            instance.reported_status = "UP"
        registry.register(instance, replication=True)
    except (wire_format.MalformedInstance, ValueError, KeyError, TypeError, InstanceTaken, RegistryFull) as exc:
        log.warning("skipped an instance of a peer's registry: %s", exc)
        return False
    return True
