"""`python -m user_service`: migrate, then serve on a free port registered in discovery as USER-SERVICE."""

from servicekit.server import serve
from user_service.config import APP_NAME, UserServiceSettings
from user_service.main import create_app


def main() -> None:
    settings = UserServiceSettings()
    serve(create_app(settings), settings, APP_NAME)


if __name__ == "__main__":
    main()
