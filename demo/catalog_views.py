"""Moved to launcher.catalog_views (benchmarks import it too); kept while callers move over."""

from launcher.catalog_views import CatalogView, catalog_views, instance_base_urls, priced_everywhere

__all__ = ["CatalogView", "catalog_views", "instance_base_urls", "priced_everywhere"]
