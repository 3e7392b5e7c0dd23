"""order-service settings: the shared ones plus where orders go."""

import re
from typing import Literal

from order_contract.order import DEFAULT_ORDER_DEADLINE_SECONDS
from servicekit.config import ServiceSettings

# The view's defaults (view.py), for the settings and for a view made without them (bench/read_your_writes.py).
VIEW_MAX_ENTRIES = 200_000
READ_SYNC_TIMEOUT_SECONDS = 1.5


class OrderSettings(ServiceSettings):
    orders_db: str = "mydb"
    # The shared table's migration runs with this account (the launcher's orders_migrator); the service itself
    # only reads mydb.orders. Unset: migrate with the service's own account (a developer's operator account).
    migration_db_user: str | None = None
    migration_db_password: str | None = None
    # false: the shared table is migrated before the service starts (the launcher does, as orders_migrator), so the
    # service holds no account that may change it.
    migrate_orders_table: bool = True
    # kafka: publish to Kafka, read the shared table. local: the demo's "before", one database per instance.
    order_store: Literal["kafka", "local"] = "kafka"

    # false: the benchmark's baseline only, the same endpoint answering without publishing anything.
    publish_orders: bool = True

    # How long a request waits for its transaction to commit before answering 503.
    publish_timeout_seconds: float = 10.0
    max_orders_per_transaction: int = 500
    # Transactions in flight at once (one transactional producer each): while one commits, the next fills.
    publish_lanes: int = 4

    # Saga deadlines (expiry.py): an order unanswered this long after it was created is settled EXPIRED; the
    # grace lets an answer committed just before the deadline reach the expirer first.
    order_deadline_seconds: float = DEFAULT_ORDER_DEADLINE_SECONDS
    order_expiry_grace_seconds: float = 2.0
    # false: this instance leaves expiry to the other instances of the group (the benchmarks' private instances:
    # which of two compared instances owns more `orders` partitions would otherwise tilt the comparison).
    order_expiry: bool = True

    # Read your own writes (view.py): the orders the table may not show yet that the view holds at most, and how
    # long a read waits for the view to reach its sync point before answering with X-Orders-Behind.
    # false: the benchmark's baseline only (bench/read_your_writes.py): reads from the table alone, and an
    # Idempotency-Key decided by each instance for itself.
    order_view: bool = True
    order_view_max_entries: int = VIEW_MAX_ENTRIES
    read_sync_timeout_seconds: float = READ_SYNC_TIMEOUT_SECONDS

    def migrator(self) -> "OrderSettings":
        """The settings to migrate the shared table with."""
        if not self.migration_db_user:
            return self
        return self.model_copy(update={"db_user": self.migration_db_user, "db_password": self.migration_db_password})

    def local_database(self) -> str:
        """`mydb_local_1` for order-service-1: covered by the launcher's grant on `mydb\\_local\\_%`."""
        instance = self.instance_id or "0"
        number = re.search(r"(\d+)$", instance)
        suffix = number.group(1) if number else re.sub(r"\W", "_", instance)
        return f"{self.orders_db}_local_{suffix}"[:64]

    def transactional_id(self) -> str:
        """Stable per instance (lanes append `:0`, `:1`...): a restart fences its predecessor's transactions."""
        return f"order-service:{self.instance_id}"
