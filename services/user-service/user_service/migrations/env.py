"""Alembic environment for user-service (its own database, USERS_DB)."""

from servicekit.database import run_migration_environment
from user_service.config import UserServiceSettings

settings = UserServiceSettings()
run_migration_environment(settings, settings.users_db)
