"""`python -m order_service`: serve on a free port and register as ORDER-SERVICE."""

from order_service.config import OrderSettings
from order_service.main import APP_NAME, create_app
from servicekit.server import serve


def main() -> None:
    settings = OrderSettings()
    serve(create_app(settings), settings, APP_NAME)


if __name__ == "__main__":
    main()
