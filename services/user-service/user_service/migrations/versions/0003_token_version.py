"""Each user's token version: a password change raises it and ends every token issued before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("token_version", sa.Integer, nullable=False, server_default="0"))
    # When it was raised: only users whose version changed within a token lifetime are in the revocation list.
    op.add_column("users", sa.Column("token_version_at", mysql.DATETIME(fsp=3), nullable=True))
    op.create_index("ix_users_token_version_at", "users", ["token_version_at"])


def downgrade() -> None:
    op.drop_index("ix_users_token_version_at", "users")
    op.drop_column("users", "token_version_at")
    op.drop_column("users", "token_version")
