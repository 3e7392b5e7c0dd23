"""What the watchdog reads: its environment only (the launcher and compose give it exactly its own accounts)."""

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

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
    def orders_db_url(self) -> URL:
        """mydb as the sink's account, synchronous (PyMySQL)."""
        return URL.create(
            "mysql+pymysql",
            username=self.db_user,
            password=self.db_password,
            host=self.db_host,
            port=self.db_port,
            database=self.orders_db,
            query={"charset": "utf8mb4"},
        )
