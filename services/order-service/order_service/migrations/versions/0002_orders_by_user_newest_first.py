"""Index orders by (user_id, created_at, id): a user's orders are paged newest first by that key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_user_created", "orders", ["user_id", "created_at", "id"])
    op.drop_index("ix_orders_user_id", table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_user_id", "orders", ["user_id"])
    op.drop_index("ix_orders_user_created", table_name="orders")
