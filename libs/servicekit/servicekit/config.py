"""Settings every service shares, read from the environment and the repo-root `.env` (cwd = repo root).

Only pydantic at import time: the gateway reads DiscoverySettings without installing the db or kafka extras.
"""

from typing import TYPE_CHECKING

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.discovery import LOOPBACK, HostAllowList, service_urls, with_credentials

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from servicekit.kafka import KafkaAccess


class DiscoverySettings(BaseSettings):
    """Where the registry is, and the credentials its writes (register, heartbeat, cancel) need."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # One discovery server's `/eureka` URL, or a comma list of peers' (clients fail over from one to the next).
    discovery_url: str = "http://127.0.0.1:8761/eureka"
    discovery_user: str = "eureka"
    discovery_password: str | None = None
    # Where the instances this process calls may be (CIDRs or host names): loopback natively, the services' names
    # in compose. Whoever can register (any component holds DISCOVERY_PASSWORD) cannot draw requests, and the users'
    # tokens they carry, elsewhere. The gateway has its own, GATEWAY_UPSTREAM_ALLOW.
    upstream_host_allow: tuple[str, ...] = LOOPBACK

    @property
    def allowed_hosts(self) -> HostAllowList:
        return HostAllowList(self.upstream_host_allow)

    @property
    def discovery_service_url(self) -> str:
        """The registry's URL (or comma list of URLs) with the credentials in each, as Eureka clients take them."""
        return with_credentials(self.discovery_url, self.discovery_user, self.discovery_password)

    @property
    def discovery_urls(self) -> list[str]:
        """Each discovery server's URL, as given (for a reader that picks one itself)."""
        return service_urls(self.discovery_url)


class TracingSettings(BaseSettings):
    """OpenTelemetry tracing (servicekit.tracing): W3C traceparent through HTTP and Kafka headers, spans to Zipkin."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # off: no tracing SDK in the process at all (no spans, no exporter thread); headers are passed on untouched.
    tracing: bool = True
    # Share of new traces recorded; a request that arrives with a traceparent keeps its caller's decision.
    tracing_sample_ratio: float = 0.1
    zipkin_host: str = "127.0.0.1"
    zipkin_port: int = 9411

    @field_validator("tracing_sample_ratio")
    @classmethod
    def _ratio_is_a_share(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError("TRACING_SAMPLE_RATIO must be between 0 and 1")
        return value

    @property
    def zipkin_spans_url(self) -> str:
        return f"http://{self.zipkin_host}:{self.zipkin_port}/api/v2/spans"


class TokenSettings(BaseSettings):
    """How a verifier learns user-service's public keys (servicekit.token_trust); it holds no secret."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # A JWKS document trusted as it is, instead of fetching USER-SERVICE's (in-process tests, a benchmark's
    # private gateway). Never set on the stack.
    trusted_jwks: str | None = None
    # How often the keys and the revoked token versions are fetched again: a password change reaches every
    # verifier within this time, and a new key must be published this long before it signs (twice, to be safe).
    token_trust_refresh_seconds: float = 5.0


class ServiceSettings(DiscoverySettings, TracingSettings, TokenSettings):
    """Subclass per service for its own fields; environment variables win over `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    db_host: str = "127.0.0.1"
    db_port: int = 3306
    # Several MariaDB servers (a Galera cluster) as host:port,host:port,...: every client tries them in this order and
    # uses the first that answers and is synced (servicekit.database), so all write to the same node. Empty: the
    # one server at DB_HOST and DB_PORT.
    db_hosts: str = ""
    db_user: str
    db_password: str

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # The component's own Kafka principal (the launcher sets them per process); without them, the operator's
    # `admin` with KAFKA_ADMIN_PASSWORD from .env (tests, benchmarks, tools).
    kafka_username: str | None = None
    kafka_password: str | None = None
    kafka_admin_password: str | None = None
    topic_partitions: int = 3
    # Copies of each topic a service creates, and how many must hold a write (3 and 2 on a three-broker cluster).
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1

    # false: look others up but stay out of the registry (a benchmark's private instance).
    discovery_register: bool = True

    # Stable across restarts when set (order-service-1); else `host:app:port` once the port is known.
    instance_id: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "INFO"

    # Request bodies larger than this are answered with 413.
    max_body_bytes: int = 16 * 1024

    @property
    def kafka_access(self) -> "KafkaAccess":
        from servicekit.kafka import KafkaAccess  # the kafka extra

        copies = {
            "replication_factor": self.kafka_replication_factor,
            "min_insync_replicas": self.kafka_min_insync_replicas,
        }
        if self.kafka_username:
            return KafkaAccess(self.kafka_bootstrap_servers, self.kafka_username, self.kafka_password, **copies)
        password = self.kafka_admin_password
        return KafkaAccess(self.kafka_bootstrap_servers, "admin" if password else None, password, **copies)

    @property
    def db_addresses(self) -> list[tuple[str, int]]:
        """Where the database server is, in the order to try: DB_HOSTS, else DB_HOST and DB_PORT alone."""
        if not self.db_hosts.strip():
            return [(self.db_host, self.db_port)]
        addresses = []
        for address in self.db_hosts.split(","):
            host, _, port = address.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"DB_HOSTS: {address.strip()!r} is not host:port")
            addresses.append((host, int(port)))
        return addresses

    def database_url(self, database: str | None, *, driver: str = "mysql+aiomysql") -> "URL":
        """A SQLAlchemy URL for one database on the shared server (None = server level, no database)."""
        from sqlalchemy.engine import URL  # the db extra

        return URL.create(
            driver,
            username=self.db_user,
            password=self.db_password,
            host=self.db_host,
            port=self.db_port,
            database=database,
            query={"charset": "utf8mb4"},
        )
