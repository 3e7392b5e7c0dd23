"""Monitor settings: the shared ones, its fixed port, and how it polls and rates (Burrow's knobs)."""

from pydantic import AliasChoices, Field

from servicekit.config import ServiceSettings


class MonitorSettings(ServiceSettings):
    # A fixed, well-known port (like Burrow's 8000), not a free one: tools and people find it there.
    port: int = Field(8090, validation_alias=AliasChoices("MONITOR_PORT"))
    # The monitor has no database.
    db_user: str = ""
    db_password: str = ""

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
