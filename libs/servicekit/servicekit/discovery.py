"""A small async Eureka client: register, heartbeat, deregister, and a local copy of the registry.

Every service registers itself with it; callers pick instances from the local copy (refreshed in the
background), so no request ever waits on the discovery server. Given several discovery servers (peers that
replicate to each other), it talks to one and moves to the next when that one fails, as Eureka clients do.
"""

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from servicekit.keep_alive import internal_client
from servicekit.tasks import cancel_and_wait

log = logging.getLogger("servicekit.discovery")

T = TypeVar("T")

DATA_CENTER_CLASS = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"


@dataclass(frozen=True)
class ServiceInstance:
    app: str
    instance_id: str
    host: str
    port: int
    status: str

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class InstanceSource(Protocol):
    """What callers of other services need from a registry: the UP instances of an app (DiscoveryClient; a
    test's fixed list)."""

    def instances(self, app_name: str) -> Sequence[ServiceInstance]: ...


class RoundRobin:
    """Turns per app: each call starts one further along the app's candidates. The one round robin of the repo
    (DiscoveryClient.next_instance, the gateway's balancer)."""

    def __init__(self) -> None:
        self._turns: dict[str, int] = {}

    def pick(self, app: str, candidates: Sequence[T]) -> T:
        """The candidate whose turn it is; `candidates` must not be empty."""
        return candidates[self._next_turn(app) % len(candidates)]

    def _next_turn(self, app: str) -> int:
        turn = self._turns.get(app, 0)
        self._turns[app] = turn + 1
        return turn


LOOPBACK = ("127.0.0.0/8", "::1/128")


class HostAllowList:
    """Networks (CIDR) and host names a caller may send requests to: an instance registered anywhere else (another
    machine, a metadata service) gets none, whoever managed to register it. Names match literally, never resolved."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._names: set[str] = set()
        for entry in entries:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._names.add(entry.lower())

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host.lower() in self._names
        return any(address in network for network in self._networks)


class NoInstanceAvailable(Exception):
    """The registry (as last fetched) has no UP instance of that app."""


def registry_entries(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(upper-case app name, instance entry) pairs of Eureka's JSON `/apps` or `/apps/delta` answer."""
    applications = document.get("applications", {}).get("application", [])
    if isinstance(applications, dict):  # Eureka collapses one-element lists in some versions
        applications = [applications]
    pairs: list[tuple[str, dict[str, Any]]] = []
    for application in applications:
        entries = application.get("instance", [])
        if isinstance(entries, dict):
            entries = [entries]
        name = str(application.get("name", "")).upper()
        pairs.extend((name, entry) for entry in entries)
    return pairs


def instance_from_entry(app: str, entry: dict[str, Any]) -> ServiceInstance:
    """One instance entry of Eureka's JSON answers (`port` as `{"$": ...}` or a plain number)."""
    port = entry.get("port", {})
    return ServiceInstance(
        app=app,
        instance_id=str(entry.get("instanceId", "")),
        host=str(entry.get("ipAddr") or entry.get("hostName")),
        port=int(port.get("$", 0) if isinstance(port, dict) else port),
        status=str(entry.get("status", "UNKNOWN")),
    )


def instances_from_registry(document: dict[str, Any]) -> dict[str, list[ServiceInstance]]:
    """Parse Eureka's JSON `/apps` answer into instances per (upper-case) app name."""
    found: dict[str, list[ServiceInstance]] = {}
    for app, entry in registry_entries(document):
        found.setdefault(app, []).append(instance_from_entry(app, entry))
    return {app: sorted(parsed, key=lambda instance: instance.instance_id) for app, parsed in found.items()}


def apply_delta(
    registry: dict[str, list[ServiceInstance]], document: dict[str, Any]
) -> dict[str, list[ServiceInstance]]:
    """The registry after Eureka's JSON `/apps/delta` answer: ADDED/MODIFIED replace, DELETED remove."""
    by_app = {app: {i.instance_id: i for i in instances} for app, instances in registry.items()}
    for app, entry in registry_entries(document):
        instance = instance_from_entry(app, entry)
        instances = by_app.setdefault(app, {})
        if entry.get("actionType") == "DELETED":
            instances.pop(instance.instance_id, None)
        else:
            instances[instance.instance_id] = instance
    return {
        app: sorted(instances.values(), key=lambda instance: instance.instance_id)
        for app, instances in by_app.items()
        if instances
    }


def apps_hashcode(registry: dict[str, list[ServiceInstance]]) -> str:
    """Eureka's reconcile hashcode (`STATUS_count_` per status, sorted): a delta applied right gives the server's."""
    counts = Counter(instance.status for instances in registry.values() for instance in instances)
    return "".join(f"{status}_{count}_" for status, count in sorted(counts.items()))


def service_urls(urls: str) -> list[str]:
    """The URLs of a comma list: DISCOVERY_URL may name several discovery servers, as Eureka's serviceUrl does."""
    return [url.strip() for url in urls.split(",") if url.strip()]


def with_credentials(urls: str, user: str, password: str | None) -> str:
    """Each URL of `urls` (a comma list) with `user:password@` in it (for writes to a registry that asks for them),
    unless it has some."""
    if password is None:
        return urls
    with_them = []
    for url in service_urls(urls):
        parsed = httpx.URL(url)
        with_them.append(url if parsed.username else str(parsed.copy_with(username=user, password=password)))
    return ",".join(with_them)


@dataclass(frozen=True)
class DiscoveryServer:
    """One discovery server a client may talk to: its URL without credentials (fit for logs), and those."""

    url: str
    auth: httpx.BasicAuth | None

    @classmethod
    def parse(cls, url: str) -> "DiscoveryServer":
        # Credentials ride in the service URL, as with Eureka clients (`http://user:password@host/eureka`);
        # kept apart so the URL can be logged and errors never show the password.
        parsed = httpx.URL(url.rstrip("/"))
        auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.username else None
        return cls(str(parsed.copy_with(username=None, password=None)), auth)


class DiscoveryClient:
    def __init__(
        self,
        server_url: str,
        *,
        app_name: str | None = None,
        instance_id: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        renewal_interval: float = 5.0,
        lease_duration: float = 15.0,
        registry_refresh_interval: float = 2.0,
        metadata: dict[str, str] | None = None,
        allowed_hosts: HostAllowList | None = None,
    ) -> None:
        """`server_url`: one discovery server's `.../eureka` URL, or a comma list of peers'; the client registers
        with, renews at, fetches from and deregisters at the first that answers, and stays with it until it fails.
        `allowed_hosts`: the instances this process may call; others are left out of every answer here (None:
        all, for a reader that filters itself, such as the gateway, or only looks)."""
        if app_name is not None and port is None:
            raise ValueError("a port is needed to register an instance")
        self.servers = [DiscoveryServer.parse(url) for url in service_urls(server_url)]
        if not self.servers:
            raise ValueError("no discovery server URL given")
        self._current = 0
        # After a move to another server, the next refresh fetches the whole registry: a delta is one server's.
        self._fetch_whole = False
        self.app_name = app_name.upper() if app_name else None
        self.host = host
        self.port = port
        self.instance_id = instance_id or (f"{host}:{app_name.lower()}:{port}" if app_name else "")
        self.renewal_interval = renewal_interval
        self.lease_duration = lease_duration
        self.registry_refresh_interval = registry_refresh_interval
        self.metadata = dict(metadata or {})
        self._allowed_hosts = allowed_hosts
        self._registry: dict[str, list[ServiceInstance]] = {}
        self._up: dict[str, tuple[ServiceInstance, ...]] = {}
        self._round_robin = RoundRobin()
        self._http: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._registered = False
        self._last_dirty_timestamp = int(time.time() * 1000)
        self.full_fetches = 0
        self.delta_fetches = 0

    @property
    def server_url(self) -> str:
        """The discovery server this client talks to now (without credentials)."""
        return self.servers[self._current].url

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self, before_register: Callable[[], Awaitable[None]] | None = None) -> None:
        """Read the registry (and keep it fresh in the background), run `before_register` (what the instance needs
        before it takes requests, e.g. the token keys it finds through the registry), then register if this process
        is an instance, and heartbeat.

        Never fails because discovery is down: the background loops keep trying and log.
        """
        self._http = internal_client(timeout=httpx.Timeout(3.0), headers={"Accept": "application/json"})
        with contextlib.suppress(httpx.HTTPError, ValueError):
            await self.refresh()
        self._tasks.append(asyncio.create_task(self._refresh_forever(), name="discovery-refresh"))
        if before_register is not None:
            await before_register()
        if self.app_name is not None:
            await self._try_register()
            self._tasks.append(asyncio.create_task(self._heartbeat_forever(), name="discovery-heartbeat"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._http is None:
            return
        if self.app_name is not None and self._registered:
            # At the server it renews at (or the next that answers); that server passes the cancel on to its peers.
            try:
                response = await self._request("DELETE", self._instance_path())
                log.info(
                    "deregistered %s/%s at %s (%s)",
                    self.app_name,
                    self.instance_id,
                    self.server_url,
                    response.status_code,
                )
            except httpx.HTTPError as exc:
                log.warning("could not deregister %s/%s: %s", self.app_name, self.instance_id, exc)
        await self._http.aclose()
        self._http = None

    async def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """`method` on `path` at the current server; on a connection error or a 5xx answer, at the next, which
        becomes the current one if it answers. When none does, the last error (or 5xx answer)."""
        assert self._http is not None, "start() first"
        failure: httpx.TransportError | httpx.Response | None = None
        for offset in range(len(self.servers)):
            index = (self._current + offset) % len(self.servers)
            server = self.servers[index]
            try:
                response = await self._http.request(method, f"{server.url}{path}", auth=server.auth, **options)
            except httpx.TransportError as exc:
                failure = exc
                continue
            if response.status_code >= 500:
                failure = response
                continue
            if index != self._current:
                log.warning(
                    "discovery server %s failed (%s); now using %s",
                    self.server_url,
                    _failure_text(failure),
                    server.url,
                )
                self._current = index
                self._fetch_whole = True
            return response
        if isinstance(failure, httpx.Response):
            return failure
        assert failure is not None
        raise failure

    # ---- reading the registry -------------------------------------------------------------------

    async def refresh(self) -> None:
        """Fetch the whole registry now and replace the local copy."""
        response = await self._request("GET", "/apps")
        response.raise_for_status()
        self._replace(instances_from_registry(response.json()))
        self._fetch_whole = False
        self.full_fetches += 1

    async def refresh_changes(self) -> None:
        """Fetch what changed lately (`/apps/delta`) and apply it, as Eureka clients do between full fetches;
        when the result disagrees with the server's hashcode (a change aged out of its window), fetch it all."""
        if not self.full_fetches or self._fetch_whole:
            await self.refresh()
            return
        asked = self._current
        response = await self._request("GET", "/apps/delta")
        response.raise_for_status()
        if self._current != asked:
            await self.refresh()
            return
        document = response.json()
        registry = apply_delta(self._registry, document)
        if apps_hashcode(registry) != document.get("applications", {}).get("apps__hashcode"):
            log.info("registry delta does not reconcile with the server's hashcode; fetching it all")
            await self.refresh()
            return
        self._replace(registry)
        self.delta_fetches += 1

    def _replace(self, registry: dict[str, list[ServiceInstance]]) -> None:
        self._up = {
            app: tuple(i for i in found if i.status == "UP" and self._may_call(i)) for app, found in registry.items()
        }
        self._registry = registry

    def _may_call(self, instance: ServiceInstance) -> bool:
        if self._allowed_hosts is None or self._allowed_hosts.allows(instance.host):
            return True
        if instance not in self._registry.get(instance.app, ()):  # said once per registration, not per refresh
            log.warning(
                "ignoring %s/%s: its host %s is not in the upstream allow-list",
                instance.app,
                instance.instance_id,
                instance.host,
            )
        return False

    def instances(self, app_name: str) -> list[ServiceInstance]:
        return list(self.up_instances(app_name))

    def up_instances(self, app_name: str) -> tuple[ServiceInstance, ...]:
        """UP instances on allowed hosts from the local copy, without copying (for per-request callers)."""
        up = self._up.get(app_name)
        return up if up is not None else self._up.get(app_name.upper(), ())

    def next_instance(self, app_name: str) -> ServiceInstance:
        """Round robin over the UP instances of the app."""
        candidates = self.instances(app_name)
        if not candidates:
            raise NoInstanceAvailable(f"no UP instance of {app_name.upper()}")
        return self._round_robin.pick(app_name.upper(), candidates)

    # ---- registering ----------------------------------------------------------------------------

    def _instance_path(self) -> str:
        return f"/apps/{quote(self.app_name or '')}/{quote(self.instance_id)}"

    def _registration(self) -> dict[str, Any]:
        assert self.app_name is not None and self.port is not None
        base = f"http://{self.host}:{self.port}"
        return {
            "instance": {
                "instanceId": self.instance_id,
                "hostName": self.host,
                "app": self.app_name,
                "ipAddr": self.host,
                "status": "UP",
                "overriddenStatus": "UNKNOWN",
                "port": {"$": self.port, "@enabled": "true"},
                "securePort": {"$": 443, "@enabled": "false"},
                "countryId": 1,
                "dataCenterInfo": {"@class": DATA_CENTER_CLASS, "name": "MyOwn"},
                "leaseInfo": {
                    "renewalIntervalInSecs": max(1, round(self.renewal_interval)),
                    "durationInSecs": max(1, round(self.lease_duration)),
                },
                "metadata": self.metadata,
                "homePageUrl": f"{base}/",
                "statusPageUrl": f"{base}/health_check",
                "healthCheckUrl": f"{base}/health_check",
                "vipAddress": self.app_name.lower(),
                "secureVipAddress": self.app_name.lower(),
                "isCoordinatingDiscoveryServer": "false",
                "lastDirtyTimestamp": str(self._last_dirty_timestamp),
            }
        }

    async def _register(self) -> None:
        response = await self._request("POST", f"/apps/{quote(self.app_name or '')}", json=self._registration())
        response.raise_for_status()
        self._registered = True
        log.info(
            "registered %s/%s at %s:%s with %s", self.app_name, self.instance_id, self.host, self.port, self.server_url
        )

    async def _try_register(self) -> None:
        try:
            await self._register()
        except httpx.HTTPError as exc:
            log.warning("could not register %s/%s (will retry): %s", self.app_name, self.instance_id, exc)

    async def _heartbeat(self) -> None:
        if not self._registered:
            await self._register()
            return
        params = {"status": "UP", "lastDirtyTimestamp": str(self._last_dirty_timestamp)}
        response = await self._request("PUT", self._instance_path(), params=params)
        if response.status_code == 404:
            log.info("discovery forgot %s/%s; registering again", self.app_name, self.instance_id)
            await self._register()
            return
        response.raise_for_status()

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.renewal_interval)
            try:
                await self._heartbeat()
            except httpx.HTTPError as exc:
                log.warning("heartbeat of %s/%s failed: %s", self.app_name, self.instance_id, exc)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.registry_refresh_interval)
            try:
                await self.refresh_changes()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("registry refresh failed (keeping the last copy): %s", exc)


def _failure_text(failure: httpx.TransportError | httpx.Response | None) -> str:
    if isinstance(failure, httpx.Response):
        return f"answered {failure.status_code}"
    return f"{type(failure).__name__}: {failure}" if failure is not None else "no answer"
