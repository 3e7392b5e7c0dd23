"""Remember each product's starting stock (`initial_stock`), so stock taken can be checked against the ledger:
initial_stock - stock = the qty of the product's CONFIRMED ledger rows (the consistency auditor's drift check).

The column defaults to the row's own `stock` (a MariaDB default expression naming an earlier column), so a product
inserted by plain SQL without it (seeding, tests) starts where its stock starts. Existing rows get their stock plus
what their CONFIRMED ledger rows took.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "catalogs",
        sa.Column("initial_stock", sa.Integer, nullable=False, server_default=sa.text("(stock)")),
    )
    op.execute(
        "UPDATE catalogs c SET c.initial_stock = c.stock + COALESCE("
        "(SELECT SUM(p.qty) FROM processed_orders p WHERE p.product_id = c.product_id AND p.status = 'CONFIRMED'), 0)"
    )


def downgrade() -> None:
    op.drop_column("catalogs", "initial_stock")
