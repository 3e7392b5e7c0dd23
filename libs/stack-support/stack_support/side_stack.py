"""A second native stack beside make up's, e.g. in cluster mode for tests/cluster and bench/cluster_throughput.py:
its own folder (STACK_DIR) and .env (STACK_ENV_FILE), every port moved up by a fixed amount (tests/cluster: 20000,
so gateway 28000, Kafka 29092/29094/29096, Connect 28083/28084, MariaDB 23306), driven through the launcher's
command line as a user would. The shared stack is not touched."""

import os
import re
import shutil
import subprocess
from pathlib import Path

from launcher.processes import VENV_PYTHON
from servicekit.config import ServiceSettings
from stack_description.settings import REPO_ROOT, StackConfig, ensure_env_file, read_env_file

# What `make up-cluster` runs.
CLUSTER_LAYOUT = {
    "KAFKA_BROKERS": "3",
    "CONNECT_WORKERS": "2",
    "CATALOG_INSTANCES": "2",
    "ORDER_INSTANCES": "2",
    "DISCOVERY_INSTANCES": "2",
    "GATEWAY_INSTANCES": "2",
    "MARIADB_NODES": "3",
}


def shifted(key: str, value: str, shift: int) -> str:
    """A port setting, or an address on loopback, moved `shift` up."""
    if key.endswith("_PORT") and value.isdigit():
        return str(int(value) + shift)
    return re.sub(r"(127\.0\.0\.1|localhost):(\d+)", lambda m: f"{m[1]}:{int(m[2]) + shift}", value)


class SideStack:
    """Secrets are the shared .env's (the services also read the repo's .env for what their environment lacks,
    so both must agree); everything with a port is moved; `layout` sets KAFKA_BROKERS and the like. Without
    `tracing` it runs no Zipkin (TRACING=off: one JVM less); the benchmarks' stack measures tracing, so it has one."""

    def __init__(self, name: str, port_shift: int, layout: dict[str, str], *, tracing: bool = False) -> None:
        self.name = name
        self.stack_dir = REPO_ROOT / ".stack" / name
        self.env_file = REPO_ROOT / ".stack" / f"{name}.env"
        self.launcher_log = REPO_ROOT / ".stack" / f"{name}-launcher.log"
        # A fresh clone has no .env until make up: made here the same way, so the suite runs on its own.
        # make up's .env, also when this process runs with another stack's settings (a benchmark on the bench
        # stack, whose STACK_ENV_FILE holds ports already moved): every side stack's ports move from make up's.
        repo_env = REPO_ROOT / ".env"
        shared = read_env_file(repo_env if repo_env.exists() else ensure_env_file())
        values = {key: shifted(key, value, port_shift) for key, value in shared.items()}
        values.update(layout)
        # Ports whose defaults live in code, where an older .env does not name them.
        values.setdefault("ZIPKIN_PORT", str(9411 + port_shift))
        values["TRACING"] = "on" if tracing else "off"
        self.config = StackConfig(values)

    @property
    def settings(self) -> ServiceSettings:
        """The operator's database account and the admin's Kafka login, on the cluster's ports."""
        return ServiceSettings(
            db_host=self.config.get("DB_HOST"),
            db_port=self.config.db_port,
            db_user=self.config.get("DB_USER"),
            db_password=self.config.get("DB_PASSWORD"),
            kafka_bootstrap_servers=self.config.kafka_bootstrap_servers,
            kafka_admin_password=self.config.get("KAFKA_ADMIN_PASSWORD"),
            discovery_url=self.config.get("DISCOVERY_URL"),
        )

    def launcher(self, *args: str, timeout: float = 600) -> str:
        """Run `python -m launcher ARGS` for this stack; its output (kept in launcher_log) or AssertionError."""
        env = {key: value for key, value in os.environ.items() if key not in self.config.values}
        env.update(STACK_DIR=str(self.stack_dir), STACK_ENV_FILE=str(self.env_file))
        result = subprocess.run(
            [str(VENV_PYTHON), "-m", "launcher", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        with open(self.launcher_log, "a") as log:
            log.write(f"$ launcher {' '.join(args)}\n{result.stdout}{result.stderr}")
        assert result.returncode == 0, f"launcher {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr}"
        return result.stdout

    def up_fresh(self) -> None:
        """Stop what an earlier run may have left, drop its data, start the whole cluster from nothing."""
        if self.stack_dir.exists():
            self.launcher("down")
            shutil.rmtree(self.stack_dir)
        self.launcher_log.unlink(missing_ok=True)
        self.env_file.touch(mode=0o600)
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in self.config.values.items()))
        self.up()

    def up(self) -> None:
        """Start whatever of the cluster is missing (the data of an earlier run kept)."""
        self.launcher("up", timeout=900)

    def down(self) -> None:
        self.launcher("down")

    def kill(self, name: str) -> None:
        self.launcher("kill", name)

    def start(self, *names: str) -> None:
        self.launcher("start", *names)

    @property
    def signing_keys_file(self) -> Path:
        """Its user-service's signing keys (made at its first start): tokens for it are signed with these."""
        return self.stack_dir / "user-service" / "signing-keys.json"

    def log_file(self, name: str) -> Path:
        return self.stack_dir / "logs" / f"{name}.log"
