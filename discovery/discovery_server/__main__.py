"""`python -m discovery_server`: serve the registry on DISCOVERY_PORT (127.0.0.1 only)."""

import uvicorn

from discovery_server.config import RegistrySettings
from discovery_server.main import create_app
from servicekit.keep_alive import SERVER_IDLE_SECONDS
from servicekit.log_setup import configure_logging


def main() -> None:
    settings = RegistrySettings()
    configure_logging("discovery", f"{settings.discovery_host}:{settings.discovery_port}", settings.discovery_log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.discovery_host,
        port=settings.discovery_port,
        log_config=None,  # uvicorn's loggers go through the JSON handler above
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_keep_alive=SERVER_IDLE_SECONDS,  # longer than its clients keep an idle connection
    )


if __name__ == "__main__":
    main()
