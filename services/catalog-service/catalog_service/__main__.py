"""`python -m catalog_service`: serve on a free port, register as CATALOG-SERVICE, consume stock requests."""

from catalog_service.config import CatalogSettings
from catalog_service.main import APP_NAME, create_app
from servicekit.server import serve


def main() -> None:
    settings = CatalogSettings()
    serve(create_app(settings), settings, APP_NAME)


if __name__ == "__main__":
    main()
