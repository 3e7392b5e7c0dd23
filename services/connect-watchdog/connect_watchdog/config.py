"""What the watchdog reads: its environment only (the launcher and compose give it exactly its own accounts)."""

from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.config import ServiceSettings
from servicekit.kafka import KafkaAccess


class WatchdogSettings(BaseSettings):
    """Its own accounts only: DB_USER/DB_PASSWORD are the sink's (its recovery writes the rows the sink would),
    KAFKA_USERNAME/KAFKA_PASSWORD the principal connect-watchdog (reads `orders`, writes `orders-dlq`). No `.env` is
    read, whatever the working directory. No discovery and no tracing: it talks to Connect, Kafka and MariaDB."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    # Every worker's REST API, comma-separated: any of them answers for the whole group.
    connect_urls: str = "http://127.0.0.1:8083"
    connect_user: str = "connect-admin"
    connect_password: str
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_username: str = "connect-watchdog"
    kafka_password: str
    db_host: str = "127.0.0.1"
    db_port: int = 3306
    # A Galera cluster's nodes (host:port,...), as every service gets them: its recovery writes where they do, and
    # the CDC source is moved among them (source_follower). Empty: the one server at DB_HOST and DB_PORT.
    db_hosts: str = ""
    db_user: str = "orders_sink"
    db_password: str
    orders_db: str = "mydb"
    log_level: str = "INFO"
    connect_watchdog_interval_seconds: float = 3.0
    # Touched after every look at the connectors, answered or not: a container's health check reads its age.
    connect_watchdog_heartbeat_file: str | None = None

    @property
    def connect_url_list(self) -> list[str]:
        return [url.strip().rstrip("/") for url in self.connect_urls.split(",") if url.strip()]

    @property
    def kafka_access(self) -> KafkaAccess:
        return KafkaAccess(self.kafka_bootstrap_servers, self.kafka_username, self.kafka_password)

    @property
    def database(self) -> ServiceSettings:
        """The sink's account on DB_HOSTS (or DB_HOST/DB_PORT) in servicekit's shape, for its URLs, its host list and
        its failover (servicekit.database.with_failover); built from these values alone (no environment read)."""
        return ServiceSettings.model_construct(
            db_host=self.db_host,
            db_port=self.db_port,
            db_hosts=self.db_hosts,
            db_user=self.db_user,
            db_password=self.db_password,
        )
