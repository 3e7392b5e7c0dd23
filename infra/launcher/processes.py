"""Starting, finding and stopping the stack's processes: one pid file and one log file per component."""

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from stack_description.settings import INFRA_DIR, LOG_DIR, REPO_ROOT, STACK_DIR, StackConfig

log = logging.getLogger(__name__)

# In the environment of every process we start: how we know our own. A stack in another STACK_DIR (tests/cluster's,
# beside make up's) marks its processes with that folder, so neither stack's launcher touches the other's.
STACK_ID = str(REPO_ROOT if STACK_DIR == REPO_ROOT / ".stack" else STACK_DIR)


PID_DIR = STACK_DIR / "pids"
# The start scripts of a MariaDB server, a Kafka node and a Connect worker: the containers run them too (on their PATH).
START_SCRIPTS = INFRA_DIR / "containers" / "bin"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def path_with(*folders: Path) -> str:
    """Our PATH with these folders first: what a start script is run with (it calls its companions by name)."""
    return ":".join([*map(str, folders), os.environ.get("PATH", "/usr/bin:/bin")])


# Where every Python component runs: not the repo root, whose .env (every secret) pydantic-settings would read.
RUN_DIR = STACK_DIR / "run"


def run_dir() -> Path:
    """The empty working directory of the Python components (relative paths in their settings would miss it)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    return RUN_DIR


class StartupFailed(Exception):
    """A component did not become ready; the message names it and its log file."""


class Member(Protocol):
    """One of several processes of a kind (a Kafka node, a Connect worker)."""

    @property
    def name(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class Component:
    name: str  # also the pid and log file name, e.g. "kafka", "order-service-2"
    port: int | None = None

    @classmethod
    def of(cls, member: Member) -> "Component":
        return cls(member.name, member.port)

    @property
    def log_file(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return PID_DIR / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file, or a pid reused by someone else)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if started_by_us(pid) else None

    def running(self) -> bool:
        return self.pid() is not None


def started_by_us(pid: int) -> bool:
    """True when pid is alive and was started by this launcher (its environment carries our marker)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and f"KAFKA_SYNC_STACK={STACK_ID}".encode() in environ.split(b"\0")


def needs_start(component: Component, *ports: int | None) -> bool:
    """False (and says so) when our process already runs; True when it has to be started. Fails when one of
    its ports is held by a process this launcher did not start, which it never touches."""
    if component.running():
        print(f"==> {component.name} already running (pid {component.pid()})")
        return False
    for port in ports:
        if port is not None and port_open(port):
            raise StartupFailed(
                f"{component.name}: port {port} is taken by a process this launcher did not start; "
                "stop it or change the port in .env"
            )
    return True


def start(component: Component, argv: Sequence[str], env: dict[str, str], cwd: Path = REPO_ROOT) -> int:
    """Start a detached process (own session, so `make` returning doesn't stop it), logging to its file."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    PID_DIR.mkdir(parents=True, exist_ok=True)
    env = {**env, "KAFKA_SYNC_STACK": STACK_ID}
    with open(component.log_file, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {component.name}\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    component.pid_file.write_text(f"{process.pid}\n")
    return process.pid


def stop(component: Component, timeout: float = 30.0) -> bool:
    """SIGTERM, wait, then SIGKILL. Returns True if something was stopped."""
    pid = component.pid()
    if pid is None:
        component.pid_file.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and started_by_us(pid):
        time.sleep(0.1)
    if started_by_us(pid):
        _signal_group(pid, signal.SIGKILL)
        while started_by_us(pid):
            time.sleep(0.05)
    component.pid_file.unlink(missing_ok=True)
    return True


def kill(component: Component) -> None:
    """kill -9, as a crash would (used by failure tests)."""
    pid = component.pid()
    if pid is not None:
        _signal_group(pid, signal.SIGKILL)
        while started_by_us(pid):
            time.sleep(0.05)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def wait_until(
    component: Component, ready: Callable[[], bool], timeout: float, what: str = "ready", quiet: bool = False
) -> None:
    """Poll `ready` until it holds; fail naming the component and its log when the deadline passes
    or the process dies first. Prints a dot every few seconds so long waits show progress."""
    started = time.monotonic()
    next_dot = started + 3
    last_failure = ""
    while True:
        try:
            if ready():
                if not quiet:
                    print(f" {what} in {time.monotonic() - started:.1f}s", flush=True)
                return
        except StartupFailed:
            raise
        # Any client's error while it starts (a refused connection, a 503, a broker without a leader): ask again,
        # and name the last one if it never gets ready.
        except Exception as exc:
            if repr(exc) != last_failure:
                log.debug("%s not %s yet: %r", component.name, what, exc)
            last_failure = repr(exc)
        if _exited(component):
            raise StartupFailed(f"{component.name} exited before it was {what}; see {_tail_hint(component)}")
        if time.monotonic() - started > timeout:
            last = f" (last: {last_failure})" if last_failure else ""
            raise StartupFailed(f"{component.name} not {what} after {timeout:.0f}s{last}; see {_tail_hint(component)}")
        if time.monotonic() >= next_dot and not quiet:
            print(".", end="", flush=True)
            next_dot += 3
        time.sleep(0.2)


def _exited(component: Component) -> bool:
    """The process we started for `component` is gone (or a zombie). Judged by its pid alone: a marker check that
    fails for a moment (seen once on a first start under load) must not call a starting process dead."""
    try:
        pid = int(component.pid_file.read_text().strip())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return component.pid_file.exists()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _tail_hint(component: Component) -> str:
    lines = []
    try:
        lines = component.log_file.read_text(errors="replace").splitlines()[-15:]
    except FileNotFoundError:
        pass
    tail = "\n    ".join(lines)
    return f"{component.log_file}" + (f"\n  last lines:\n    {tail}" if tail else "")


@dataclass(frozen=True)
class LocalServer:
    """A server the stack runs from a download-free binary or jar on 127.0.0.1 at a port .env may move, ready once
    `ready_path` answers 200 (Prometheus, Zipkin)."""

    name: str
    port_key: str
    ready_path: str

    def port(self, config: StackConfig) -> int:
        return config.number(self.port_key)

    def component(self, config: StackConfig) -> Component:
        return Component(self.name, self.port(config))

    def url(self, config: StackConfig) -> str:
        return f"http://127.0.0.1:{self.port(config)}"

    def ready(self, config: StackConfig) -> bool:
        return httpx.get(f"{self.url(config)}{self.ready_path}", timeout=2).status_code == 200

    def start(self, config: StackConfig, argv: Sequence[str], timeout: float) -> None:
        """Start it with PATH alone, not our environment (Zipkin would read KAFKA_BOOTSTRAP_SERVERS and RABBIT_* as
        collectors to start), and wait until it is ready."""
        step(f"starting {self.name} on {self.url(config)}")
        start(self.component(config), argv, {"PATH": "/usr/bin:/bin"})
        wait_until(self.component(config), lambda: self.ready(config), timeout, "ready")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def step(message: str) -> None:
    print(f"==> {message}", end="", flush=True)


def done(message: str = "") -> None:
    print(f" {message}".rstrip(), flush=True)


def fail(message: str) -> None:
    print(f"\nERROR: {message}", file=sys.stderr, flush=True)


def render_template(template: Path, target: Path, *, private: bool = False, **values: object) -> Path:
    """Fill {{name}} placeholders of a config file we ship and write it under .stack/ (owner-only if `private`)."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    unfilled = re.search(r"\{\{\w+\}\}", text)
    if unfilled:
        raise ValueError(f"{template}: no value for {unfilled.group(0)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if private:
        target.touch(mode=0o600)
        target.chmod(0o600)
    target.write_text(text)
    return target
