"""`python -m discovery_server`: serve the registry on DISCOVERY_PORT (127.0.0.1 only)."""

import uvicorn

from discovery_server.config import Settings
from discovery_server.main import create_app


def main() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.discovery_host,
        port=settings.discovery_port,
        log_level=settings.discovery_log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
