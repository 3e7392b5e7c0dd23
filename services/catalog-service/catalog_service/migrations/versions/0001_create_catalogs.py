"""Create the catalog (seeded with the course's three products, CATALOG-001..003) and the processed-orders ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    catalogs = op.create_table(
        "catalogs",
        sa.Column("product_id", sa.String(64), primary_key=True),
        sa.Column("product_name", sa.String(255), nullable=False),
        sa.Column("stock", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.Integer, nullable=False),
        sa.Column("created_at", mysql.DATETIME(fsp=3), nullable=False, server_default=sa.text("UTC_TIMESTAMP(3)")),
        # The conditional decrement already refuses to oversell; this makes it impossible.
        sa.CheckConstraint("stock >= 0", name="ck_catalogs_stock_not_negative"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.bulk_insert(
        catalogs,
        [
            {"product_id": "CATALOG-001", "product_name": "Berlin", "stock": 100, "unit_price": 1500},
            {"product_id": "CATALOG-002", "product_name": "Tokyo", "stock": 110, "unit_price": 1000},
            {"product_id": "CATALOG-003", "product_name": "Stockholm", "stock": 120, "unit_price": 2000},
        ],
    )
    # One row per order ever applied, with its OUTCOME: a redelivered stock request republishes it.
    op.create_table(
        "processed_orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.Integer, nullable=False),
        sa.Column("total_price", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("order_created_at", mysql.DATETIME(fsp=3), nullable=False),
        sa.Column("processed_at", mysql.DATETIME(fsp=3), nullable=False, server_default=sa.text("UTC_TIMESTAMP(3)")),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("processed_orders")
    op.drop_table("catalogs")
