"""Auditor settings: where it reads (the stack's .env), and how long each source may lag before a difference counts."""

import datetime as dt
from pathlib import Path

from pydantic import AliasChoices, Field

from consistency_audit.reconcile import Grace
from order_contract.order import DEFAULT_ORDER_DEADLINE_SECONDS
from order_contract.timestamps import epoch_ms
from order_contract.topics import ORDERS_DEAD_LETTER_TOPIC, ORDERS_TOPIC, STOCK_TOPIC
from servicekit.config import ServiceSettings


class AuditSettings(ServiceSettings):
    orders_db: str = "mydb"
    catalog_db: str = "catalogdb"
    orders_topic: str = ORDERS_TOPIC
    stock_topic: str = STOCK_TOPIC
    # The sink's dead letters: an order whose last record is there is reported apart, not as a missing row.
    orders_dead_letter_topic: str = ORDERS_DEAD_LETTER_TOPIC

    order_deadline_seconds: float = Field(DEFAULT_ORDER_DEADLINE_SECONDS, gt=0)
    # A record on `orders` may wait this long for its row (the sink's allowed lag; Connect restarts take ~20 s).
    audit_sink_lag_seconds: float = Field(30.0, ge=0)
    # A stock request may wait this long for its outcome in the ledger (catalog-service restarting, catching up).
    audit_outcome_lag_seconds: float = Field(60.0, ge=0)
    # PENDING is overdue at created_at + ORDER_DEADLINE_SECONDS + this (the expirer's grace and poll, the sink).
    audit_pending_allowance_seconds: float = Field(30.0, ge=0)
    # An order every source agrees on stops being watched once this old (folded into the row checksum).
    audit_settle_seconds: float = Field(10.0, ge=0)
    # An incremental pass compares mydb.orders' row count and checksum (one scan of the table, in the database) at
    # most this often (0: every pass); the rest of the pass reads only what changed.
    audit_totals_every_seconds: float = Field(30.0, ge=0)
    # A discrepancy past its grace is reported from memory; its row and outcome are read again when a record comes
    # for it, when the row count or checksum disagrees, and otherwise every this many seconds, at most
    # AUDIT_RECHECK_BATCH orders a pass (the ones read longest ago): 100,000 of them take 100 passes, each one
    # `IN` batch of rows and one of outcomes, instead of every pass reading them all (7.8 s a pass, measured).
    audit_recheck_seconds: float = Field(30.0, ge=0)
    audit_recheck_batch: int = Field(1000, ge=1)
    # Seconds between passes when the auditor runs in the monitor.
    audit_interval_seconds: float = Field(5.0, gt=0)
    # Order ids listed per kind in the report (counts are always whole).
    audit_ids_shown: int = Field(50, ge=1)
    # Judge only orders created at or after this time (ISO 8601; empty: all): `make chaos` and tests audit their
    # own window on a stack whose history holds other tests' deliberate damage.
    audit_since: dt.datetime | None = None
    # Where the CLI remembers its position between runs (incremental passes); the monitor keeps it in memory.
    audit_state_file: Path = Field(Path(".stack/audit-state.json"), validation_alias=AliasChoices("AUDIT_STATE_FILE"))
    # The auditor writes nothing; it needs no JWT or registry secret.
    db_user: str = ""
    db_password: str = ""

    @property
    def grace(self) -> Grace:
        return Grace(
            sink_lag=self.audit_sink_lag_seconds,
            outcome_lag=self.audit_outcome_lag_seconds,
            deadline=self.order_deadline_seconds,
            pending_allowance=self.audit_pending_allowance_seconds,
            settle=self.audit_settle_seconds,
            since_ms=0 if self.audit_since is None else epoch_ms(self.audit_since),
        )
