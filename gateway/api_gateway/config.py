import os
import socket
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from servicekit.config import DiscoverySettings, TokenSettings, TracingSettings


class GatewaySettings(DiscoverySettings, TracingSettings, TokenSettings):
    """Read from the environment (and `.env` at the repo root). Tokens are checked with USER-SERVICE's JWKS."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    gateway_host: str = "127.0.0.1"
    # The address registered in discovery, when it differs from the bind address (containers: 0.0.0.0).
    gateway_advertised_host: str | None = None
    gateway_port: int = 8000
    # /metrics for Prometheus, apart from the clients' port (nginx's and Envoy's admin ports do the same).
    gateway_management_port: int = 8001
    # Worker processes sharing the port through SO_REUSEPORT. 0 = half the cores (at least one): the
    # gateway shares the machine with the services behind it, and on 2 cores one worker beats two (more
    # context switches, less batching per wakeup; bench/perf-notes.md).
    gateway_workers: int = 0
    gateway_routes: Path = Path("gateway/routes.yaml")
    gateway_max_body_bytes: int = 1024 * 1024
    # Edge limits (nginx/Envoy-like): longer URLs get 414, bigger or more headers 431, a head or body that takes
    # longer 408; pipelined requests past the queue and answers past the write buffer pause reading.
    gateway_max_url_bytes: int = 8 * 1024
    gateway_max_header_bytes: int = 32 * 1024
    gateway_max_headers: int = 100
    gateway_head_timeout_seconds: float = 30.0
    gateway_body_timeout_seconds: float = 60.0
    gateway_max_pipelined: int = 16
    gateway_write_buffer_bytes: int = 256 * 1024
    # Client connections per worker, and per client address in a worker; more are answered 503 and closed.
    gateway_max_clients: int = 10_000
    gateway_max_connections_per_client: int = 1_000
    # Upstream answers larger than this become 502 (they are buffered whole before they are sent on).
    gateway_max_response_bytes: int = 8 * 1024 * 1024
    gateway_connect_timeout_seconds: float = 2.0
    gateway_read_timeout_seconds: float = 30.0
    # Distinct instances tried for one request (failover and retries).
    gateway_max_attempts: int = 3
    # Consecutive failures after which an instance is skipped, and for how long.
    gateway_eject_after_failures: int = 3
    gateway_ejection_seconds: float = 10.0
    gateway_registry_refresh_seconds: float = 2.0
    gateway_renewal_interval_seconds: float = 5.0
    gateway_lease_duration_seconds: float = 15.0
    # Idle upstream connections are dropped before the instance's own keep-alive timeout (servicekit.keep_alive).
    gateway_upstream_idle_seconds: float = 2.0
    # Client keep-alive connections idle this long are closed (nginx: keepalive_timeout 75 s).
    gateway_client_idle_seconds: float = 75.0
    gateway_log_level: str = "INFO"
    # A client's traceparent flagged sampled is recorded this often per second per worker (a token bucket, bursts of
    # as many); past it TRACING_SAMPLE_RATIO decides, as for a new trace. 0: the ratio always decides.
    gateway_client_sampled_per_second: float = 5.0
    # Where upstream instances may be (CIDRs or host names): loopback natively; compose lists its services.
    gateway_upstream_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    @property
    def worker_count(self) -> int:
        return self.gateway_workers if self.gateway_workers > 0 else max(1, (os.cpu_count() or 1) // 2)

    @property
    def advertised_host(self) -> str:
        if self.gateway_advertised_host:
            return self.gateway_advertised_host
        return socket.gethostname() if self.gateway_host in ("0.0.0.0", "") else self.gateway_host

    @property
    def instance_id(self) -> str:
        return f"{self.advertised_host}:gateway:{self.gateway_port}"
