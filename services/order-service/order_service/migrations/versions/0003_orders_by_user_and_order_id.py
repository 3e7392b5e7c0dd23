"""Index orders by (user_id, created_at, order_id): a user's orders are paged newest first by that key.

The row id was the tiebreak before; an order the table does not show yet has none, so an order read from the view
and then from its row sorted in two places, and one page could repeat an order of the last.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_user_created_order", "orders", ["user_id", "created_at", "order_id"])
    op.drop_index("ix_orders_user_created", table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_user_created", "orders", ["user_id", "created_at", "id"])
    op.drop_index("ix_orders_user_created_order", table_name="orders")
