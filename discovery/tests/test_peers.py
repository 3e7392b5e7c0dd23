"""Two discovery servers as Eureka peers: what a client does at one shows at the other, a restarted peer learns the
registry at start, and a client given both keeps going through the other when one is killed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from servicekit.discovery import DiscoveryClient
from servicekit.testing import eventually, eventually_blocking, free_port, stop_process

from .servers import start_discovery, writer_url
from .test_eureka_api import registration

JSON = {"Accept": "application/json"}
PROBE = Path(__file__).with_name("py_eureka_probe.py")
# Changes reach the other peer in milliseconds here; the deadline is for a loaded CI machine.
REPLICATED_WITHIN = 5.0


@dataclass
class PeerPair:
    """Two discovery servers, each given both URLs (each skips its own) and no credentials in them (each then
    uses its own, which both share)."""

    ports: tuple[int, int]
    processes: list[subprocess.Popen[bytes]]

    @property
    def a(self) -> str:
        return writer_url(self.ports[0])

    @property
    def b(self) -> str:
        return writer_url(self.ports[1])

    @property
    def both(self) -> str:
        return f"{self.a},{self.b}"

    def launch(self, index: int) -> subprocess.Popen[bytes]:
        peers = ",".join(f"http://127.0.0.1:{port}/eureka" for port in self.ports)
        return start_discovery(self.ports[index], DISCOVERY_PEERS=peers, DISCOVERY_PEER_TIMEOUT_SECONDS="1")

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)


def start_pair() -> PeerPair:
    pair = PeerPair((free_port(), free_port()), [])
    pair.processes.append(pair.launch(0))  # finds no peer to sync from: starts empty
    try:
        pair.processes.append(pair.launch(1))
    except BaseException:
        pair.stop()
        raise
    return pair


@pytest.fixture(scope="module")
def pair() -> Iterator[PeerPair]:
    started = start_pair()
    yield started
    started.stop()


@pytest.fixture
def fresh_pair() -> Iterator[PeerPair]:
    """A pair of its own, for a test that kills one."""
    started = start_pair()
    yield started
    started.stop()


def unique_app(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6].upper()}"


def listed(discovery_url: str, app: str, instance_id: str) -> dict[str, Any] | None:
    """The instance as the server at `discovery_url` shows it, or None."""
    response = httpx.get(f"{discovery_url}/apps/{app}/{instance_id}", headers=JSON)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    instance: dict[str, Any] = response.json()["instance"]
    return instance


def register(discovery_url: str, app: str, duration: int = 90, headers: dict[str, str] | None = None) -> str:
    instance_id = f"{app.lower()}-1"
    body = registration(app, instance_id, 9000, duration)
    assert httpx.post(f"{discovery_url}/apps/{app}", json=body, headers=headers).status_code == 204
    return instance_id


@pytest.mark.parametrize("direction", ["a-to-b", "b-to-a"])
def test_a_registration_at_one_peer_is_listed_at_the_other(pair: PeerPair, direction: str) -> None:
    here, there = (pair.a, pair.b) if direction == "a-to-b" else (pair.b, pair.a)
    app = unique_app("PEER-REG")

    started = time.monotonic()
    instance_id = register(here, app)
    instance = eventually_blocking(
        lambda: listed(there, app, instance_id), within=REPLICATED_WITHIN, what="registration replicated"
    )
    print(f"registration at one peer listed at the other after {time.monotonic() - started:.3f} s")

    assert instance["port"] == {"$": 9000, "@enabled": "true"} and instance["status"] == "UP"
    original = listed(here, app, instance_id)
    assert original is not None and instance["lastDirtyTimestamp"] == original["lastDirtyTimestamp"]


def test_renewals_at_one_peer_keep_the_instance_alive_at_the_other_past_its_lease(pair: PeerPair) -> None:
    app = unique_app("PEER-RENEW")
    instance_id = register(pair.a, app, duration=1)
    eventually_blocking(lambda: listed(pair.b, app, instance_id), within=REPLICATED_WITHIN, what="replicated")

    # Two leases of heartbeats at A only, every 0.2 s (the instance's own pace, not a wait for a result).
    until = time.monotonic() + 2
    while time.monotonic() < until:
        assert httpx.put(f"{pair.a}/apps/{app}/{instance_id}").status_code == 200
        assert listed(pair.b, app, instance_id) is not None, "expired at B although renewed at A"
        time.sleep(0.2)

    # Heartbeats stop: B expires it by itself (eviction is each server's own).
    eventually_blocking(lambda: listed(pair.b, app, instance_id) is None, within=10, what="expired at B")


def test_a_cancel_at_one_peer_removes_the_instance_at_the_other(pair: PeerPair) -> None:
    app = unique_app("PEER-CANCEL")
    instance_id = register(pair.a, app)  # a 90 s lease: gone from B only by the cancel
    eventually_blocking(lambda: listed(pair.b, app, instance_id), within=REPLICATED_WITHIN, what="replicated")

    assert httpx.delete(f"{pair.a}/apps/{app}/{instance_id}").status_code == 200

    eventually_blocking(lambda: listed(pair.b, app, instance_id) is None, within=REPLICATED_WITHIN, what="cancelled")


def test_a_status_override_at_one_peer_shows_at_the_other_and_its_removal_too(pair: PeerPair) -> None:
    app = unique_app("PEER-STATUS")
    instance_id = register(pair.a, app)
    eventually_blocking(lambda: listed(pair.b, app, instance_id), within=REPLICATED_WITHIN, what="replicated")

    def status_at_b() -> str:
        return str((listed(pair.b, app, instance_id) or {}).get("status", ""))

    url = f"{pair.a}/apps/{app}/{instance_id}/status"
    assert httpx.put(url, params={"value": "OUT_OF_SERVICE"}).status_code == 200
    eventually_blocking(lambda: status_at_b() == "OUT_OF_SERVICE", within=REPLICATED_WITHIN, what="override at B")
    assert httpx.delete(url).status_code == 200
    eventually_blocking(lambda: status_at_b() == "UP", within=REPLICATED_WITHIN, what="override removed at B")


def test_a_replicated_change_is_applied_and_not_passed_on_again(pair: PeerPair) -> None:
    app = unique_app("PEER-ONCE")
    replicated = register(pair.b, app, headers={"x-netflix-discovery-replication": "true"})
    assert listed(pair.b, app, replicated) is not None

    # A client's own registration after it is passed on; had the first been passed on, it would be at A first.
    body = registration(app, "client-made", 9001)
    assert httpx.post(f"{pair.b}/apps/{app}", json=body).status_code == 204
    eventually_blocking(lambda: listed(pair.a, app, "client-made"), within=REPLICATED_WITHIN, what="replicated")
    assert listed(pair.a, app, replicated) is None


def test_a_restarted_peer_knows_every_instance_as_soon_as_it_answers(pair: PeerPair) -> None:
    app = unique_app("PEER-SYNC")
    instance_id = register(pair.a, app)
    eventually_blocking(lambda: listed(pair.b, app, instance_id), within=REPLICATED_WITHIN, what="replicated")

    stop_process(pair.processes[1])  # B forgets everything; A has nothing pending for it (no heartbeats)
    pair.processes[1] = pair.launch(1)

    # No waiting: B fetched A's registry before it began to answer.
    synced = listed(pair.b, app, instance_id)
    assert synced is not None and synced["port"]["$"] == 9000
    # And A passes new changes on to the restarted B.
    later_app = unique_app("PEER-AFTER")
    later = register(pair.a, later_app)
    eventually_blocking(lambda: listed(pair.b, later_app, later), within=REPLICATED_WITHIN, what="replicated to B")


def _metric(page: str, sample: str) -> float:
    return next((float(line.rpartition(" ")[2]) for line in page.splitlines() if line.rpartition(" ")[0] == sample), 0)


def test_a_peer_that_never_answers_holds_up_no_client_and_at_most_its_pending_bound() -> None:
    with socket.create_server(("127.0.0.1", 0)) as black_hole:  # listens, never accepts: every request hangs
        peer = f"http://127.0.0.1:{black_hole.getsockname()[1]}/eureka"
        port = free_port()
        # Its start-up fetch from the peer gives up after the timeout; each replication would wait as long.
        server = start_discovery(
            port, DISCOVERY_PEERS=peer, DISCOVERY_PEER_TIMEOUT_SECONDS="1.5", DISCOVERY_PEER_MAX_PENDING="3"
        )
        try:
            url = writer_url(port)
            app = unique_app("PEER-STUCK")
            started = time.monotonic()
            for n in range(5):
                body = registration(app, f"stuck-{n}", 9100 + n)
                assert httpx.post(f"{url}/apps/{app}", json=body, timeout=5).status_code == 204
            assert time.monotonic() - started < 1, "registrations waited for the peer"

            page = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            assert _metric(page, f'discovery_replication_pending{{peer="{peer}"}}') == 3
            assert (
                _metric(page, f'discovery_replications_total{{action="register",outcome="dropped",peer="{peer}"}}') == 2
            )
        finally:
            stop_process(server)


async def test_a_client_given_both_keeps_registering_renewing_and_fetching_through_b_when_a_is_killed(
    fresh_pair: PeerPair,
) -> None:
    pair = fresh_pair
    app = unique_app("PEER-KIT")
    client = DiscoveryClient(
        pair.both, app_name=app, port=9800, renewal_interval=0.2, lease_duration=1, registry_refresh_interval=0.2
    )
    late = DiscoveryClient(pair.both, app_name=app, port=9801, renewal_interval=0.2, lease_duration=1)
    async with httpx.AsyncClient(headers=JSON) as http:

        async def at_b(instance_id: str) -> dict[str, Any] | None:
            response = await http.get(f"{pair.b}/apps/{app}/{instance_id}")
            return None if response.status_code == 404 else response.json()["instance"]

        await client.start()
        try:
            assert client.server_url == str(httpx.URL(pair.a).copy_with(username=None, password=None))
            await eventually(lambda: at_b(client.instance_id), within=REPLICATED_WITHIN, what="replicated to B")

            pair.processes[0].send_signal(signal.SIGKILL)
            pair.processes[0].wait()
            killed_at = time.time()

            async def renewed_at_b_since(seconds: float) -> bool:
                instance = await at_b(client.instance_id)
                renewed = instance["leaseInfo"]["lastRenewalTimestamp"] / 1000 if instance else 0
                return renewed > killed_at + seconds

            await eventually(lambda: renewed_at_b_since(0), within=5, what="a heartbeat at B after A died")
            print(f"first heartbeat at B {time.time() - killed_at:.3f} s after A was killed")
            # Two leases after the kill and still renewed, so never expired at B.
            await eventually(lambda: renewed_at_b_since(2), within=10, what="renewed at B two leases on")
            assert client.server_url == str(httpx.URL(pair.b).copy_with(username=None, password=None))

            # Fetching: an instance registered at B reaches the client's copy.
            body = registration(app, "fetched-through-b", 9802)
            assert (await http.post(f"{pair.b}/apps/{app}", json=body)).status_code == 204
            await eventually(
                lambda: "fetched-through-b" in {i.instance_id for i in client.instances(app)},
                within=5,
                what="the client's copy from B",
            )

            # A client started after A died registers at B, and deregisters there when it stops.
            await late.start()
            assert await at_b(late.instance_id) is not None
            await late.stop()
            assert await at_b(late.instance_id) is None
        finally:
            await late.stop()
            await client.stop()


def test_py_eureka_client_given_both_urls_registers_and_discovers(pair: PeerPair, port: int) -> None:
    target_app = unique_app("PEER-PROBE-TARGET")
    env = {**os.environ, "EUREKA_URL": pair.both, "PROBE_PORT": str(port), "TARGET_APP": target_app}
    probe = subprocess.Popen([sys.executable, str(PROBE)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        # It registers at A, its first URL; B lists it too.
        eventually_blocking(
            lambda: httpx.get(f"{pair.b}/apps/PY-EUREKA-PROBE", headers=JSON).status_code == 200,
            within=15,
            what="py-eureka-client's registration at B",
        )
        # A target registered at B only reaches the probe, which reads A, through replication.
        body = registration(target_app, "probe-target-1", 9555)
        assert httpx.post(f"{pair.b}/apps/{target_app}", json=body).status_code == 204

        output, _ = probe.communicate(timeout=30)
        assert probe.returncode == 0
        assert json.loads(output.strip().splitlines()[-1]) == {"app": target_app, "host": "127.0.0.1", "port": 9555}
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
