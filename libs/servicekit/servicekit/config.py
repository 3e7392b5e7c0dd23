"""Settings every service shares, read from the environment and the repo-root `.env` (cwd = repo root)."""

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL


class ServiceSettings(BaseSettings):
    """Subclass per service for its own fields; environment variables win over `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    db_host: str = "127.0.0.1"
    db_port: int = 3306
    db_user: str
    db_password: str

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_partitions: int = 3

    discovery_url: str = "http://127.0.0.1:8761/eureka"
    # false: look others up but stay out of the registry (a benchmark's private instance).
    discovery_register: bool = True

    # Only user-service issues tokens; the others may run without a secret.
    jwt_secret: str | None = None
    jwt_ttl_seconds: int = 86400

    # Stable across restarts when set (order-service-1); else `host:app:port` once the port is known.
    instance_id: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "INFO"

    # Request bodies larger than this are answered with 413.
    max_body_bytes: int = 16 * 1024

    def database_url(self, database: str | None, *, driver: str = "mysql+aiomysql") -> URL:
        """A SQLAlchemy URL for one database on the shared server (None = server level, no database)."""
        return URL.create(
            driver,
            username=self.db_user,
            password=self.db_password,
            host=self.db_host,
            port=self.db_port,
            database=database,
            query={"charset": "utf8mb4"},
        )
