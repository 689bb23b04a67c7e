"""Run the gateway: `python -m gateway`."""

from seoblog_runtime import run_service

from .app import create_app
from .settings import Settings

if __name__ == "__main__":
    run_service(Settings, create_app)
