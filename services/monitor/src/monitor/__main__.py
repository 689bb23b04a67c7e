"""Run the monitor: `python -m monitor`."""

from seoblog_runtime import serve
from seoblog_telemetry import configure_logging

from .app import create_app
from .settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("monitor", settings.log_level)
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
