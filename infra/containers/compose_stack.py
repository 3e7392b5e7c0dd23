"""make compose-up | compose-down | compose-test: the stack of docker-compose.yml in containers.

With a Docker engine this is Docker Compose (`up --build --wait`). Without one, podman-compose and podman: images
are built with `podman build` (the base image made locally, the host's CA mounted for the build only), and
services are started in the order their `depends_on` conditions give, waiting for each healthcheck and one-shot
ourselves, because podman-compose skips `service_healthy` conditions before podman 4.6 (Debian 12 has 4.3) and
podman runs no healthcheck without systemd's timers.

Run by infra/containers/compose.sh, which installs the tools and sets the environment (ENGINE, COMPOSE_TOOL, ...).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import yaml

REPO = Path(__file__).resolve().parents[2]
PROJECT = "kafka-sync"
TEST_PROJECT = "kafka-sync-test"
# make compose-test publishes on these, so it runs beside the native stack (8000, 8761, 9092/9094/9096, 8083/8084,
# 3306-3308, 8090, 9090, 9411).
TEST_HOST_PORTS = {
    "GATEWAY_HOST_PORT": 18000,
    "GATEWAY_2_HOST_PORT": 18002,
    "DISCOVERY_HOST_PORT": 18761,
    "KAFKA_HOST_PORT": 19192,
    "KAFKA_2_HOST_PORT": 19194,
    "KAFKA_3_HOST_PORT": 19196,
    "CONNECT_HOST_PORT": 18083,
    "CONNECT_2_HOST_PORT": 18084,
    "MARIADB_HOST_PORT": 13306,
    "MARIADB_2_HOST_PORT": 13307,
    "MARIADB_3_HOST_PORT": 13308,
    "MONITOR_HOST_PORT": 18090,
    "PROMETHEUS_HOST_PORT": 19090,
    "ZIPKIN_HOST_PORT": 19411,
}
# Longest wait for one service to become healthy or for a one-shot to finish.
SERVICE_DEADLINE_SECONDS = 300
# What podman says on every container with a healthcheck where there is no systemd to run it (we run them).
HOST_WITHOUT_SYSTEMD_NOISE = ("unable to get systemd connection", "failed to connect to syslog")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


class Compose:
    """One compose project, run with Docker Compose or podman-compose."""

    def __init__(self, project: str, env_file: Path | None = None) -> None:
        """`env_file` replaces the .env beside docker-compose.yml (compose-test gives an empty one: no .env)."""
        self.project = project
        self.engine = os.environ.get("ENGINE", "podman")
        tool = os.environ.get("COMPOSE_TOOL", "podman-compose")
        chosen = ["--env-file", str(env_file)] if env_file is not None else []
        if self.engine == "docker":
            self.compose = ["docker", "compose", *chosen, "-p", project]
        else:
            # Each container in its own network namespace, as Docker does (pods would share one).
            self.compose = [tool, "--in-pod", "false", *chosen, "-p", project]

    def run(self, *args: str, quiet: bool = False, expected: tuple[str, ...] = ()) -> None:
        """A compose command; its stderr without podman's systemd complaints and the `expected` lines."""
        output = subprocess.DEVNULL if quiet else None
        result = subprocess.run(
            [*self.compose, *args], cwd=REPO, check=False, stdout=output, stderr=subprocess.PIPE, text=True
        )
        for line in result.stderr.splitlines():
            if not any(noise in line for noise in (*HOST_WITHOUT_SYSTEMD_NOISE, *expected)):
                print(line, file=sys.stderr)
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, [*self.compose, *args])

    def config(self) -> dict[str, Any]:
        text = subprocess.run([*self.compose, "config"], cwd=REPO, check=True, capture_output=True, text=True).stdout
        loaded: dict[str, Any] = yaml.safe_load(text)
        return loaded

    def container(self, service: str) -> str:
        """The name of the service's container (the labels both tools set)."""
        names = subprocess.run(
            [
                self.engine,
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--filter",
                f"label=com.docker.compose.service={service}",
                "--format",
                "{{.Names}}",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        if not names:
            raise RuntimeError(f"{service}: no container in project {self.project}")
        return names[0]

    def up(self) -> None:
        if self.engine == "docker":
            self.run("up", "--detach", "--build", "--wait", "--wait-timeout", str(SERVICE_DEADLINE_SECONDS))
            return
        config = self.config()
        build_images(config)
        start_in_dependency_order(self, config["services"])

    def down(self, volumes: bool) -> None:
        if self.engine == "podman" and self.running():
            # podman-compose stops every container at once: Connect would then wait on a broker already gone.
            # Dependents first, as Docker Compose does.
            for wave in reversed(dependency_waves(self.config()["services"])):
                self.run("stop", *wave, quiet=True)
        # podman-compose names every container of the file, also those never created.
        self.run("down", *(["--volumes"] if volumes else []), quiet=True, expected=("no such container",))

    def running(self) -> bool:
        return bool(self.containers())

    def containers(self, *, stopped: bool = False) -> list[str]:
        """The names of the project's containers: those running, or (`stopped`) every one."""
        label = f"label=com.docker.compose.project={self.project}"
        listed = subprocess.run(
            [self.engine, "ps", *(["-a"] if stopped else []), "--filter", label, "--format", "{{.Names}}"],
            check=True,
            capture_output=True,
            text=True,
        )
        return listed.stdout.split()

    def save_logs(self, directory: Path) -> None:
        """Every container's whole log, a file each, kept after `down` removes the containers. It raises nothing:
        compose_test calls it just before `down`, which must run whatever happens here."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            names = self.containers(stopped=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            say(f"compose-test: the containers' logs were not saved: {exc}")
            return
        for name in names:
            with (directory / f"{name}.log").open("w") as log:
                subprocess.run([self.engine, "logs", name], stdout=log, stderr=subprocess.STDOUT, check=False)
        say(f"compose-test: every container's log is in {directory}")


def build_args(build: dict[str, Any]) -> list[str]:
    args = build.get("args", {})
    pairs = args.items() if isinstance(args, dict) else (item.split("=", 1) for item in args)
    return [f"{key}={value}" for key, value in pairs]


def build_images(config: dict[str, Any]) -> None:
    """Each image once (several services share one), with podman's layer cache, so a second run builds nothing."""
    built: set[str] = set()
    ca_file = os.environ.get("HOST_CA_FILE", "")
    for service in config["services"].values():
        image, build = service.get("image"), service.get("build")
        if not build or image in built:
            continue
        built.add(image)
        say(f"building {image}")
        command = ["podman", "build", "--layers", "--network", "host", "-t", image, "-f", build["dockerfile"]]
        if build.get("target"):
            command += ["--target", build["target"]]
        for arg in build_args(build):
            command += ["--build-arg", arg]
        if ca_file:
            # The host's CA bundle, for pip behind a TLS-inspecting proxy: a build-time mount, in no layer.
            command += ["--volume", f"{ca_file}:/run/host-ca.crt:ro"]
        started = time.monotonic()
        subprocess.run([*command, build.get("context", ".")], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        say(f"built {image} in {time.monotonic() - started:.0f} s")


def dependency_waves(services: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Services in waves: each wave is every service whose dependencies are all in earlier waves."""
    waves: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(services):
        wave = sorted(
            name
            for name, service in services.items()
            if name not in done and set(service.get("depends_on") or {}) <= done
        )
        if not wave:
            raise RuntimeError(f"depends_on has a cycle among {sorted(set(services) - done)}")
        waves.append(wave)
        done.update(wave)
    return waves


def start_in_dependency_order(compose: Compose, services: dict[str, dict[str, Any]]) -> None:
    """Start a wave, wait until each of its services is ready, then the next wave."""
    for wave in dependency_waves(services):
        say(f"starting {', '.join(wave)}")
        compose.run("up", "--detach", "--no-build", "--no-deps", *wave, quiet=True)
        pin_bridge_address(f"{compose.project}_default")
        for name in wave:
            wait_ready(compose, name, services[name])


# Where a command sees podman's bridges: here, or (rootless podman) in the network namespace podman keeps for them.
BRIDGE_NAMESPACE = [] if os.geteuid() == 0 else ["podman", "unshare", "--rootless-netns"]


def pin_bridge_address(network: str) -> None:
    """Keep the MAC address of the network's bridge, the one it has now, for as long as the bridge lives.

    netavark before 1.5 (Debian 12 has 1.4) leaves it to the kernel, which gives a bridge the lowest address among
    its ports: a container that leaves or joins can change it, and each container's ARP entry for the bridge's IP
    address, where aardvark-dns answers, then points nowhere for up to half a minute. Name lookups time out
    meanwhile, so new connections fail while open ones go on. Seen: compose-test's first sign-ups answered 504 after
    the one-shot register-connectors exited (user-service found no Galera node "within 3 s", the gateway no
    discovery server); stopping the container that held the lowest address stalled a lookup 5 s (a probe).
    Docker gives its bridges a fixed address itself."""
    link = bridge_link(network)
    if link is None or link.assign_type == "3":  # no container on it yet, or NET_ADDR_SET: fixed already
        return
    command = [*BRIDGE_NAMESPACE, "ip", "link", "set", "dev", link.name, "address", link.address]
    pinned = subprocess.run(command, capture_output=True, text=True, check=False)
    if pinned.returncode != 0:
        say(
            f"could not fix the address of bridge {link.name} ({pinned.stderr.strip()}): name lookups in the "
            "containers may stall for up to half a minute when a container leaves or joins (docs/containers.md)"
        )


class BridgeLink(NamedTuple):
    name: str
    address: str
    assign_type: str  # the kernel's addr_assign_type: 3 (NET_ADDR_SET) once the address is fixed


def bridge_link(network: str) -> BridgeLink | None:
    """The bridge of a podman network, as the kernel has it; None until its first container made it."""
    inspected = subprocess.run(
        ["podman", "network", "inspect", network, "--format", "{{.NetworkInterface}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    name = inspected.stdout.strip()
    if inspected.returncode != 0 or not name:
        return None
    files = [f"/sys/class/net/{name}/address", f"/sys/class/net/{name}/addr_assign_type"]
    read = subprocess.run([*BRIDGE_NAMESPACE, "cat", *files], capture_output=True, text=True, check=False)
    if read.returncode != 0:
        return None
    address, assign_type = read.stdout.split()
    return BridgeLink(name, address, assign_type)


def wait_ready(compose: Compose, name: str, service: dict[str, Any]) -> None:
    """A one-shot (restart "no") must exit 0; a service with a healthcheck must pass it; others must run."""
    container = compose.container(name)
    started = time.monotonic()
    if service.get("restart", "no") == "no":
        code = subprocess.run(["podman", "wait", container], check=True, capture_output=True, text=True).stdout
        if code.strip() != "0":
            subprocess.run(["podman", "logs", "--tail", "30", container], check=False)
            raise RuntimeError(f"{name} exited {code.strip()} (its last log lines are above)")
        say(f"{name} done in {time.monotonic() - started:.0f} s")
        return
    if "healthcheck" not in service:
        return
    while True:
        # Runs the image's healthcheck once and records the result, as systemd's timer would.
        check = subprocess.run(["podman", "healthcheck", "run", container], capture_output=True, check=False)
        if check.returncode == 0:
            say(f"{name} healthy after {time.monotonic() - started:.0f} s")
            return
        if time.monotonic() - started > SERVICE_DEADLINE_SECONDS:
            subprocess.run(["podman", "logs", "--tail", "30", container], check=False)
            raise RuntimeError(f"{name} not healthy after {SERVICE_DEADLINE_SECONDS} s (its last log lines are above)")
        time.sleep(2)


@contextmanager
def timed(what: str, timings: dict[str, float]) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[what] = time.monotonic() - started


# The image of the create-topics one-shot: every project and the tests (python.Dockerfile, stage stack-tools).
TEST_RUNNER_IMAGE = "kafka-sync/stack-tools"
# The `secrets` one-shot's volume with every secret under its .env name (compose_secrets.py beside this file), and
# the group its files belong to.
OPERATOR_SECRETS_VOLUME = f"{TEST_PROJECT}_secrets-operator"
SECRETS_GID = "10010"
SECRET_SUFFIXES = ("_PASSWORD", "_SECRET")


def operator_secrets(engine: str) -> dict[str, str]:
    """Every secret the compose stack made, read from its operator volume (the host tests log in with them)."""
    listing = 'for f in /s/*; do printf "%s=%s\\n" "${f##*/}" "$(cat "$f")"; done'
    command = [engine, "run", "--rm", "--group-add", SECRETS_GID, "--volume", f"{OPERATOR_SECRETS_VOLUME}:/s:ro"]
    command += ["--entrypoint", "sh", TEST_RUNNER_IMAGE, "-c", listing]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def example_settings() -> dict[str, str]:
    """.env.example's settings other than secrets (DB_USER, the database names, ...): what a .env would give."""
    settings = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.strip() and not key.strip().endswith(SECRET_SUFFIXES):
            settings[key.strip()] = value.strip()
    return settings


def run_e2e_in_container(engine: str, pytest_args: list[str]) -> int:
    """tests/e2e on the compose network, through the compose gateway: the services register their container names,
    which resolve there (and not on the host). Secrets from the stack's operator volume; addresses as inside."""
    inside = {
        "GATEWAY_URL": "http://gateway:8000",
        "DB_HOST": "mariadb",
        "DB_PORT": "3306",
        "DB_HOSTS": "mariadb:3306,mariadb-2:3306,mariadb-3:3306",
        "DISCOVERY_URL": "http://discovery:8761/eureka",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:19092,kafka-2:19092,kafka-3:19092",
        "CONNECT_URL": "http://connect-1:8083",
        "MONITOR_PORT": "8090",
        "STACK_UNDER_TEST": "compose",
        # The launcher's config reader completes its .env file in place: a copy of its own, not the host's.
        "STACK_ENV_FILE": "/tmp/stack.env",
    }
    command = [engine, "run", "--rm", "--network", f"{TEST_PROJECT}_default"]
    # Every secret under its .env name, exported by the image's entrypoint (with-secrets).
    command += ["--group-add", SECRETS_GID, "--volume", f"{OPERATOR_SECRETS_VOLUME}:/run/stack-secrets:ro"]
    # user-service's signing keys, read-only: tests that need a token for a user who never logged in sign it as
    # the operator can (servicekit.testing.stack_signing_key). The runner is the same `app` user as user-service.
    command += ["--volume", f"{TEST_PROJECT}_user-service-keys:/run/stack-keys:ro"]
    command += ["--env", "SIGNING_KEYS_FILE=/run/stack-keys/signing-keys.json"]
    for key, value in {**example_settings(), **inside}.items():
        command += ["--env", f"{key}={value}"]
    command += [TEST_RUNNER_IMAGE, "python", "-m", "pytest", "-p", "no:cacheprovider", "tests/e2e", *pytest_args]
    return subprocess.run(command, cwd=REPO, check=False).returncode


def host_test_environment() -> dict[str, str]:
    """For tests/compose on the host: where the compose stack is published (the environment beats .env)."""
    ports = TEST_HOST_PORTS
    return {
        "GATEWAY_PORT": str(ports["GATEWAY_HOST_PORT"]),
        "GATEWAY_2_PORT": str(ports["GATEWAY_2_HOST_PORT"]),
        "DISCOVERY_URL": f"http://127.0.0.1:{ports['DISCOVERY_HOST_PORT']}/eureka",
        "PROMETHEUS_PORT": str(ports["PROMETHEUS_HOST_PORT"]),
        "ZIPKIN_PORT": str(ports["ZIPKIN_HOST_PORT"]),
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(ports["MARIADB_HOST_PORT"]),
        # The Galera nodes in the order the services try them (tests/compose kills the first).
        "DB_HOSTS": ",".join(
            f"127.0.0.1:{ports[key]}" for key in ("MARIADB_HOST_PORT", "MARIADB_2_HOST_PORT", "MARIADB_3_HOST_PORT")
        ),
        "CONNECT_URL": f"http://127.0.0.1:{ports['CONNECT_HOST_PORT']}",
        "KAFKA_BOOTSTRAP_SERVERS": ",".join(
            f"127.0.0.1:{ports[key]}" for key in ("KAFKA_HOST_PORT", "KAFKA_2_HOST_PORT", "KAFKA_3_HOST_PORT")
        ),
        "STACK_UNDER_TEST": "compose",
        "COMPOSE_TEST_PROJECT": TEST_PROJECT,
        "COMPOSE_TEST_ENGINE": os.environ.get("ENGINE", "podman"),
    }


def compose_test(pytest_args: list[str]) -> int:
    """The compose stack under its own project name and ports, as a bare clone has it (an empty env file in place
    of .env: every secret made by the stack itself); the e2e suite through its gateway; then, from the host,
    containers killed and restarted while orders flow (tests/compose); `down --volumes` whatever happened."""
    os.environ.update({key: str(port) for key, port in TEST_HOST_PORTS.items()})
    no_env = REPO / ".stack" / "compose-test.env"
    no_env.parent.mkdir(exist_ok=True)
    no_env.write_text("# compose-test: no .env, as on a bare clone\n")
    compose = Compose(TEST_PROJECT, env_file=no_env)
    timings: dict[str, float] = {}
    results: dict[str, int] = {}
    try:
        # A run killed halfway leaves its containers and volumes: start from nothing.
        with timed("clean start", timings):
            compose.down(volumes=True)
        with timed("build and up", timings):
            compose.up()
        say("tests/e2e in a container on the compose network, through the compose gateway")
        with timed("e2e", timings):
            results["tests/e2e"] = run_e2e_in_container(compose.engine, pytest_args)
        say("tests/compose from the host: the images, and containers killed and restarted while orders flow")
        with timed("tests/compose", timings):
            results["tests/compose"] = subprocess.run(
                [str(REPO / ".venv/bin/python"), "-m", "pytest", "-p", "no:cacheprovider", "tests/compose"],
                cwd=REPO,
                env={**example_settings(), **os.environ, **operator_secrets(compose.engine), **host_test_environment()},
                check=False,
            ).returncode
    finally:
        passed = len(results) == 2 and all(code == 0 for code in results.values())
        if not passed:
            compose.save_logs(REPO / ".stack" / "logs" / "compose-test")
        with timed("down", timings):
            compose.down(volumes=True)
        say("compose-test: " + ", ".join(f"{what} {seconds:.0f} s" for what, seconds in timings.items()))
        say(
            "compose-test: "
            + ", ".join(f"{suite} {'passed' if code == 0 else 'FAILED'}" for suite, code in results.items())
        )
    return 0 if passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "test", "config"])
    parser.add_argument("pytest_args", nargs="*", help="compose-test: passed on to pytest")
    args = parser.parse_args()
    # A CI runner's TERM unwinds like Ctrl-C, so compose-test still takes its stack down.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        if args.command == "test":
            return compose_test(args.pytest_args)
        compose = Compose(PROJECT)
        if args.command == "up":
            compose.up()
            say("compose stack up: gateway http://127.0.0.1:" + os.environ.get("GATEWAY_HOST_PORT", "8000"))
        elif args.command == "down":
            compose.down(volumes=False)
        else:
            print(json.dumps(compose.config(), indent=2))
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
