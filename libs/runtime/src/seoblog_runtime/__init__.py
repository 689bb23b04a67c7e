"""What every seoblog service runs on: settings, the event bus, the PostgreSQL store with
migrations, the two-level cache, and the shared HTTP ops routes."""

from . import _lean_imports  # noqa: F401  # first: nats without aiohttp
from .bus import Bus, ConsumerStats, JobError
from .cache import Cache
from .parts import Parts, build_parts, migrations_of
from .service import add_ops_routes, ops_app, run_service, serve, tune_gc
from .settings import ServiceSettings
from .store import Store

__all__ = [
    "Bus",
    "Cache",
    "ConsumerStats",
    "JobError",
    "Parts",
    "ServiceSettings",
    "Store",
    "add_ops_routes",
    "build_parts",
    "migrations_of",
    "ops_app",
    "run_service",
    "serve",
    "tune_gc",
]
