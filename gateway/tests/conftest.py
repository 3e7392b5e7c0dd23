"""Gateway tests run real processes on free ports: discovery, the gateway, and echo instances that
register themselves. Each scenario gets its own app name, so scenarios never share instances."""

import functools
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from servicekit.testing import bearer, eventually_blocking, free_port, kit_jwks, start_server, stop_process

from .health_check import known_instances

REPO_ROOT = Path(__file__).resolve().parents[2]
ECHO_INSTANCE = Path(__file__).with_name("echo_instance.py")
DISCOVERY_USER, DISCOVERY_PASSWORD = "eureka-test", "gateway-test-registry-password-32b"
# Apps that only the tests route to: `/<app in lower case>/**` → lb://<APP>.
TEST_APPS = [
    "RR-TWO",
    "COUNTED",
    "RR-THREE",
    "KILLED",
    "SLOW-POST",
    "SLOW-RETRY",
    "NOBODY-HOME",
    "HEADERS",
    "ELSEWHERE",
    "LIMITED",
    "EDGE",
    "SCRIPTED",
]
# The LIMITED app's route: a burst of 3, then one request every 5 s per client address.
LIMITED_FILTER = "RequestRateLimiter=0.2, 3, address"
MAX_BODY_BYTES = 64 * 1024


def start_and_wait(args: list[str], env: dict[str, str], ready_url: str) -> subprocess.Popen[bytes]:
    return start_server(args, ready_url=ready_url, env=env, cwd=REPO_ROOT)


@pytest.fixture(scope="session")
def discovery_url() -> Iterator[str]:
    """The test registry's URL with its write credentials in it, as every Eureka client is given it."""
    port = free_port()
    env = {
        "DISCOVERY_PORT": str(port),
        "DISCOVERY_EVICTION_INTERVAL_SECONDS": "0.2",
        "DISCOVERY_LOG_LEVEL": "warning",
        "DISCOVERY_USER": DISCOVERY_USER,
        "DISCOVERY_PASSWORD": DISCOVERY_PASSWORD,
    }
    process = start_and_wait([sys.executable, "-m", "discovery_server"], env, f"http://127.0.0.1:{port}/eureka/apps")
    yield f"http://{DISCOVERY_USER}:{DISCOVERY_PASSWORD}@127.0.0.1:{port}/eureka"
    stop_process(process)


@pytest.fixture(scope="session")
def routes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real routes, then one plain route per test app."""
    routes = yaml.safe_load((REPO_ROOT / "gateway" / "routes.yaml").read_text())["routes"]
    for app in TEST_APPS:
        prefix = app.lower()
        routes.append(
            {
                "id": prefix,
                "uri": f"lb://{app}",
                "predicates": [f"Path=/{prefix}/**"],
                "filters": [
                    "Public",
                    "RemoveRequestHeader=Cookie",
                    f"RewritePath=/{prefix}/(?<segment>.*), /${{segment}}",
                    *([LIMITED_FILTER] if app == "LIMITED" else []),
                ],
            }
        )
    path = tmp_path_factory.mktemp("gateway") / "routes.yaml"
    path.write_text(yaml.safe_dump({"routes": routes}))
    return path


def gateway_env(
    discovery_url: str, routes_file: Path, port: int, workers: int, management_port: int | None = None
) -> dict[str, str]:
    return {
        "GATEWAY_PORT": str(port),
        "GATEWAY_MANAGEMENT_PORT": str(management_port or free_port()),
        "DISCOVERY_URL": discovery_url,
        "TRUSTED_JWKS": kit_jwks(),
        "GATEWAY_WORKERS": str(workers),
        "GATEWAY_ROUTES": str(routes_file),
        "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "GATEWAY_READ_TIMEOUT_SECONDS": "1",
        "GATEWAY_CONNECT_TIMEOUT_SECONDS": "1",
        "GATEWAY_REGISTRY_REFRESH_SECONDS": "0.2",
        "GATEWAY_RENEWAL_INTERVAL_SECONDS": "1",
        "GATEWAY_LEASE_DURATION_SECONDS": "3",
    }


@pytest.fixture(scope="session")
def gateway_management_port() -> int:
    """Where the session's gateway serves /metrics."""
    return free_port()


@pytest.fixture(scope="session")
def gateway_url(discovery_url: str, routes_file: Path, gateway_management_port: int) -> Iterator[str]:
    """One worker, so round robin is exact per request rather than per worker."""
    port = free_port()
    process = start_and_wait(
        [sys.executable, "-m", "api_gateway"],
        gateway_env(discovery_url, routes_file, port, workers=1, management_port=gateway_management_port),
        f"http://127.0.0.1:{port}/gateway/health_check",
    )
    yield f"http://127.0.0.1:{port}"
    stop_process(process)


@pytest.fixture
def start_gateway(
    discovery_url: str, routes_file: Path
) -> Iterator[Callable[..., tuple[str, subprocess.Popen[bytes]]]]:
    """`start_gateway(workers=2, **env)`: another gateway on a free port, (url, process); stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(workers: int, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        process = start_and_wait(
            [sys.executable, "-m", "api_gateway"],
            {**gateway_env(discovery_url, routes_file, port, workers), **env},
            f"http://127.0.0.1:{port}/gateway/health_check",
        )
        started.append(process)
        return f"http://127.0.0.1:{port}", process

    yield start
    for process in started:
        stop_process(process)


@dataclass
class EchoInstance:
    app: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def instance_id(self) -> str:
        return f"127.0.0.1:{self.app.lower()}:{self.port}"


StartInstances = Callable[..., list[EchoInstance]]


class Fleet:
    """Echo instances started for one test (or module), stopped and gone from the gateway afterwards."""

    def __init__(self, discovery_url: str, gateway_url: str) -> None:
        self.discovery_url = discovery_url
        self.gateway_url = gateway_url
        self.started: list[EchoInstance] = []

    def start(self, app: str, count: int, **env: str) -> list[EchoInstance]:
        """`count` instances of `app`, up and known to the gateway when this returns."""
        expected = known_instances(self.gateway_url, app) + count
        batch = []
        for _ in range(count):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, str(ECHO_INSTANCE)],
                cwd=REPO_ROOT,
                env={**os.environ, "APP": app, "PORT": str(port), "DISCOVERY_URL": self.discovery_url, **env},
            )
            batch.append(EchoInstance(app, port, process))
        self.started.extend(batch)
        eventually_blocking(
            lambda: known_instances(self.gateway_url, app) == expected,
            within=20,
            what=f"gateway sees {expected} {app}",
        )
        return batch

    def stop_all(self) -> None:
        for instance in self.started:
            if instance.process.poll() is None:
                instance.process.terminate()
        for instance in self.started:
            stop_process(instance.process)
        for app in {instance.app for instance in self.started}:
            eventually_blocking(functools.partial(self.gone, app), within=20, what=f"{app} gone from the gateway")

    def gone(self, app: str) -> bool:
        return known_instances(self.gateway_url, app) == 0


@pytest.fixture
def start_instances(discovery_url: str, gateway_url: str) -> Iterator[StartInstances]:
    """`start_instances(app, count, **env)`: echo instances, stopped after the test."""
    fleet = Fleet(discovery_url, gateway_url)
    yield fleet.start
    fleet.stop_all()


@pytest.fixture(scope="module")
def start_module_instances(discovery_url: str, gateway_url: str) -> Iterator[StartInstances]:
    """Like start_instances, for instances shared by the tests of one module."""
    fleet = Fleet(discovery_url, gateway_url)
    yield fleet.start
    fleet.stop_all()


@pytest.fixture
def token_for() -> Callable[..., str]:
    """`token_for(user_id, *roles)`: the header value of a valid token for that user."""
    return lambda user_id, *roles: bearer(user_id, *roles)


@pytest.fixture
def max_body_bytes() -> int:
    return MAX_BODY_BYTES


@pytest.fixture(scope="module")
def edge(discovery_url: str, routes_file: Path) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """A one-worker gateway with small limits (test_edge_limits.py): (url, port, supervisor process)."""
    port = free_port()
    env = {
        **gateway_env(discovery_url, routes_file, port, workers=1),
        "GATEWAY_HEAD_TIMEOUT_SECONDS": "1",
        "GATEWAY_BODY_TIMEOUT_SECONDS": "1",
        "GATEWAY_MAX_CLIENTS": "20",
        "GATEWAY_MAX_CONNECTIONS_PER_CLIENT": "10",
        "GATEWAY_MAX_RESPONSE_BYTES": "4096",
        "GATEWAY_MAX_PIPELINED": "16",
    }
    url = f"http://127.0.0.1:{port}"
    process = start_and_wait([sys.executable, "-m", "api_gateway"], env, f"{url}/gateway/health_check")
    yield url, port, process
    stop_process(process)


@pytest.fixture
def register_at() -> Callable[[str, str, str, int], str]:
    """`register_at(discovery_url, app, host, port)`: an UP instance at any address (no process behind it);
    returns its instance id (the test deletes it)."""
    return _register_at


def _register_at(discovery_url: str, app: str, host: str, port: int) -> str:
    instance_id = f"outsider-{uuid.uuid4().hex[:8]}"
    body = {
        "instance": {
            "instanceId": instance_id,
            "app": app,
            "hostName": host,
            "ipAddr": host,
            "status": "UP",
            "port": {"$": port, "@enabled": "true"},
            "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
            "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        }
    }
    assert httpx.post(f"{discovery_url}/apps/{app}", json=body).status_code == 204
    return instance_id


class ScriptedUpstream:
    """An instance that answers bytes no well-behaved service would send: `answers[path]` as written, with
    `{port}` replaced by its own port; the connection is closed after each answer."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self.answers = answers
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed
            with connection:
                received = b""
                while b"\r\n\r\n" not in received and (chunk := connection.recv(65536)):
                    received += chunk
                path = received.split(b" ", 2)[1] if received.count(b" ") >= 2 else b""
                answer = self.answers.get(path, b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                connection.sendall(answer.replace(b"{port}", str(self.port).encode()))

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def scripted_upstream(discovery_url: str) -> Iterator[Callable[[str, dict[bytes, bytes]], ScriptedUpstream]]:
    """`scripted_upstream(app, answers)`: a ScriptedUpstream registered as an UP instance of `app`; gone after
    the module."""
    started: list[tuple[ScriptedUpstream, str, str]] = []

    def start(app: str, answers: dict[bytes, bytes]) -> ScriptedUpstream:
        upstream = ScriptedUpstream(answers)
        started.append((upstream, app, _register_at(discovery_url, app, "127.0.0.1", upstream.port)))
        return upstream

    yield start
    for upstream, app, instance_id in started:
        httpx.delete(f"{discovery_url}/apps/{app}/{instance_id}")
        upstream.close()
