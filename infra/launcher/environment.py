"""Where things are, and the configuration every component reads (.env at the repo root)."""

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
STACK_DIR = REPO_ROOT / ".stack"
LOG_DIR = STACK_DIR / "logs"
PID_DIR = STACK_DIR / "pids"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
KAFKA_LIB = INFRA_DIR / "target" / "kafka" / "lib"
CONNECT_PLUGINS = INFRA_DIR / "target" / "connect-plugins"

PLACEHOLDER = "change-me"


def ensure_env_file() -> Path:
    """Create .env from .env.example on first use, with random secrets instead of the placeholders."""
    env_file = REPO_ROOT / ".env"
    if not env_file.exists():
        lines = []
        for line in (REPO_ROOT / ".env.example").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and value.strip() == PLACEHOLDER and not line.lstrip().startswith("#"):
                line = f"{key}={secrets.token_urlsafe(24)}"
            lines.append(line)
        env_file.write_text("\n".join(lines) + "\n")
        env_file.chmod(0o600)
    return env_file


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


@dataclass(frozen=True)
class StackConfig:
    """The .env values, with the process environment taking precedence (as pydantic-settings does)."""

    values: dict[str, str]

    @classmethod
    def load(cls) -> "StackConfig":
        values = read_env_file(ensure_env_file())
        values.update({k: v for k, v in os.environ.items() if k in values})
        return cls(values)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def int(self, key: str, default: int) -> int:
        return int(self.values.get(key) or default)

    @property
    def db_port(self) -> int:
        return self.int("DB_PORT", 3306)

    @property
    def kafka_port(self) -> int:
        return int(self.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092").rsplit(":", 1)[1])

    @property
    def connect_url(self) -> str:
        return self.get("CONNECT_URL", "http://127.0.0.1:8083").rstrip("/")

    @property
    def connect_port(self) -> int:
        return int(self.connect_url.rsplit(":", 1)[1])

    @property
    def databases(self) -> list[str]:
        return [self.get("ORDERS_DB", "mydb"), self.get("CATALOG_DB", "catalogdb"), self.get("USERS_DB", "userdb")]

    def process_env(self, **extra: str) -> dict[str, str]:
        """Environment for a child process: ours, plus .env, plus per-process values."""
        env = dict(os.environ)
        env.update(self.values)
        env.update(extra)
        return env


def render_template(template: Path, target: Path, **values: object) -> Path:
    """Fill {{name}} placeholders of a config file we ship and write it under .stack/."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    unfilled = re.search(r"\{\{\w+\}\}", text)
    if unfilled:
        raise ValueError(f"{template}: no value for {unfilled.group(0)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target
