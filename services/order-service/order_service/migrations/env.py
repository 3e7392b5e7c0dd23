"""Alembic environment for order-service (the shared `orders` table, or an instance's local one)."""

from order_service.config import OrderSettings
from servicekit.database import run_migration_environment

settings = OrderSettings()
run_migration_environment(settings, settings.orders_db)
