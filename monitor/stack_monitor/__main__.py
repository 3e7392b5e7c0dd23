"""`python -m stack_monitor`: serve Burrow's API on MONITOR_PORT (127.0.0.1), register as MONITOR, poll offsets."""

from servicekit.server import serve
from stack_monitor.config import MonitorSettings
from stack_monitor.main import APP_NAME, create_app


def main() -> None:
    settings = MonitorSettings()
    serve(create_app(settings), settings, APP_NAME)


if __name__ == "__main__":
    main()
