from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistrySettings(BaseSettings):
    """Read from the environment (and `.env` at the repo root)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    discovery_host: str = "127.0.0.1"
    discovery_port: int = 8761
    # How often expired leases are looked for; Eureka's 60 s is too slow for our 15 s leases.
    discovery_eviction_interval_seconds: float = 5.0
    # How long changes stay in /apps/delta (Eureka: 3 minutes).
    discovery_delta_retention_seconds: float = 180.0
    discovery_log_level: str = "info"
    # HTTP Basic for every write (register, heartbeat, status, cancel, metadata), as a Spring Security-protected
    # Eureka asks; reads stay open. Clients put `user:password@` in their service URL.
    discovery_user: str = "eureka"
    discovery_password: str
    # A registration larger than this is refused (413); Eureka instances are a few KiB.
    discovery_max_registration_bytes: int = 64 * 1024
    # New instances past these are refused (409): the registry's memory and every client's copy stay bounded.
    discovery_max_instances_per_app: int = 256
    discovery_max_apps: int = 256
    # Other discovery servers (Eureka's peers), a comma list of their `/eureka` URLs with `user:password@` in them
    # (else the credentials above): every register, heartbeat, cancel and status change a client makes here is
    # passed on to each, and the registry is fetched from the first that answers at start. A URL naming this
    # server's own port on this host is skipped, so every peer may be given the same list.
    discovery_peers: str = ""
    # Replications waiting for one peer past this are dropped, oldest first: a dead peer holds bounded memory (one
    # pending change per instance and kind, as changes to the same instance replace each other).
    discovery_peer_max_pending: int = 10_000
    # Each request to a peer (replications and the start-up fetch).
    discovery_peer_timeout_seconds: float = 2.0
