"""The HTTP face every service shares: /healthz, /readyz and Prometheus /metrics (with the
request figures of every route), plus the process entry point that runs it under uvicorn."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from seoblog_telemetry import HttpMetrics, configure_logging

from .settings import ServiceSettings

ReadinessCheck = Callable[[], Awaitable[bool]]
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def add_ops_routes(
    app: FastAPI,
    registry: CollectorRegistry,
    checks: dict[str, ReadinessCheck],
    optional: frozenset[str] = frozenset({"redis"}),
) -> None:
    """Liveness, readiness and metrics, outside the versioned API. Readiness needs every
    check but the `optional` ones, which are reported only: a service runs on its in-process
    cache when Redis is away, so Redis must not take every replica out of its Service.

    Every HTTP request the app answers is counted and timed on `registry` by route template,
    method and status, by a middleware outside all others (added later ones included)."""
    _count_requests(app, registry)
    _untraced_ops(app)

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: dependencies answer")
    async def readyz() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(checks[n](), timeout=3) for n in names), return_exceptions=True
        )
        status = {n: (r is True) for n, r in zip(names, results, strict=True)}
        missing = [n for n, v in status.items() if not v and n not in optional]
        if not missing:
            return JSONResponse({"ready": True, "checks": status})
        return JSONResponse({"ready": False, "checks": status, "missing": missing}, 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _count_requests(app: FastAPI, registry: CollectorRegistry) -> None:
    metrics = HttpMetrics(registry)
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: metrics.middleware(build_stack())  # type: ignore[method-assign]


def _untraced_ops(app: FastAPI) -> None:
    """Probes and scrapes make no traces: FastAPI's own OpenTelemetry support (on whenever a
    tracer provider is installed) is told to skip them, as the gateway's instrumentor is."""
    config: Any = getattr(app, "_telemetry", None)  # FastAPI(telemetry=...), FastAPI >= 0.165
    if not isinstance(config, dict):
        return
    before = config.get("exclude")

    def exclude(scope: MutableMapping[str, Any]) -> bool:
        return scope.get("path") in OPS_PATHS or (before is not None and bool(before(scope)))

    config["exclude"] = exclude


def ops_app(
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    registry: CollectorRegistry,
    checks: dict[str, ReadinessCheck],
) -> FastAPI:
    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None)
    add_ops_routes(app, registry, checks)
    return app


def run_service(
    settings_cls: Callable[[], ServiceSettings], create_app: Callable[[Any], FastAPI]
) -> None:
    """A service's `python -m <service>`: settings from the environment, JSON logs, serve."""
    settings = settings_cls()
    configure_logging(settings.service, settings.log_level)
    app = create_app(settings)
    tune_gc()
    serve(app, settings.host, settings.port)


# Collections after every 10,000 net allocations, a middle one every 20 of those, a full one
# every 20 middle ones (CPython's default: 700, 10, 10). A service allocates in bursts (an
# event decoded, a page parsed) that are nearly all freed by reference counting.
GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc() -> None:
    """Once imports and the app are built: move everything alive now out of the collector's
    sight (`gc.freeze`: modules, classes, compiled schemas are never garbage) and collect less
    often. With CPython's defaults the collector took 2 % of extraction's CPU (121 fixture pages
    twice, in one process), 1 % after. Call it in worker processes too, after their imports."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run the service until SIGINT/SIGTERM; uvicorn runs the lifespan (broker, store, cache).

    On uvloop and httptools when installed (they are dependencies of the runtime): the
    request path costs about a third less than asyncio with h11."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="uvloop" if _installed("uvloop") else "asyncio",
        http="httptools" if _installed("httptools") else "h11",
    )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
