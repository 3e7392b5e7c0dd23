"""Monitor settings: the shared ones, its fixed port, and how it polls and rates (Burrow's knobs)."""

from pydantic import AliasChoices, Field

from servicekit.config import ServiceSettings


class MonitorSettings(ServiceSettings):
    # A fixed, well-known port (like Burrow's 8000), not a free one: tools and people find it there.
    port: int = Field(8090, validation_alias=AliasChoices("MONITOR_PORT"))
    # Its own SELECT-only account on mydb.orders (the console's counts); empty: no database.
    db_user: str = ""
    db_password: str = ""

    # Host names a request may give besides 127.0.0.1, localhost and HOST (its own), comma-separated (gate.py).
    monitor_allowed_hosts: str = ""
    # Both set: every route but /health_check and /metrics needs HTTP Basic with them. Unset: loopback only.
    monitor_user: str = ""
    monitor_password: str = ""

    # The cluster's name in /v3/kafka/{cluster}/... (Burrow names each cluster in its config).
    monitor_cluster: str = "local"
    # Seconds between polls of committed and end offsets (Burrow's offset-refresh).
    monitor_poll_seconds: float = Field(5.0, gt=0)
    # Entries per partition window (Burrow's storage `intervals`).
    monitor_window: int = Field(10, ge=2)
    # Lag that counts as none (Burrow's `allowed-lag`). 1: every topic here is written in transactions, and a
    # caught-up consumer's committed offset stops in front of the last transaction's commit marker, which takes an
    # offset but is no record (measured: committed = end - 1 on every idle partition of both groups).
    monitor_allowed_lag: int = Field(1, ge=0)

    # The console (console.py): where it reads what it shows, and how long it waits for each source.
    orders_db: str = "mydb"
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 9090
    # Where a browser opening the console finds Prometheus and Zipkin (the page's links); unset: where the monitor
    # itself reaches them (PROMETHEUS_HOST, ZIPKIN_HOST). Compose sets them to the ports it publishes on the host.
    console_prometheus_url: str | None = None
    console_zipkin_url: str | None = None
    connect_url: str | None = None  # CONNECT_URL from .env
    connect_user: str = "connect-admin"
    connect_password: str | None = None
    # The span tag holding the order id, to find an order's trace in Zipkin: the Kafka record key of its `orders`
    # message (OpenTelemetry's messaging attribute). Empty, or no trace found: a search around the order's time.
    console_order_tag: str = "messaging.kafka.message.key"
    console_timeout_seconds: float = Field(1.5, gt=0)
