"""Alembic environment for order-service (the shared `orders` table)."""

import os

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import URL


def database_url() -> str | URL:
    configured = context.config.get_main_option("sqlalchemy.url")
    if configured:
        return configured
    return URL.create(
        "mysql+pymysql",
        username=os.environ["DB_USER"],
        password=os.environ["DB_PASSWORD"],
        host=os.environ.get("DB_HOST", "127.0.0.1"),
        port=int(os.environ.get("DB_PORT", "3306")),
        database=os.environ.get("ORDERS_DB", "mydb"),
    )


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
