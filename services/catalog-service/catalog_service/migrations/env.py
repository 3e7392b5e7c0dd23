"""Alembic environment for catalog-service (catalogdb)."""

from catalog_service.config import CatalogSettings
from servicekit.database import run_migration_environment

settings = CatalogSettings()
run_migration_environment(settings, settings.catalog_db)
