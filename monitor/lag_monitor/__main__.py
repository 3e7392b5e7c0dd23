"""`python -m lag_monitor`: serve Burrow's API on MONITOR_PORT (127.0.0.1), register as MONITOR, poll offsets."""

from lag_monitor.config import MonitorSettings
from lag_monitor.main import APP_NAME, create_app
from servicekit.server import serve


def main() -> None:
    settings = MonitorSettings()
    serve(create_app(settings), settings, APP_NAME)


if __name__ == "__main__":
    main()
