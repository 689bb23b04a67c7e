"""Composition root of the gateway: settings in, the FastAPI app out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from seoblog_runtime import add_ops_routes, build_parts

from . import errors
from .handlers import register
from .limits import BodyLimit
from .routes import jobs, posts
from .settings import Settings
from .store import PgJobStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = build_parts(settings, PgJobStore)
    register(parts)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with parts.running():
            yield

    app = FastAPI(
        title="seoblog API",
        version="1",
        summary="Turn a web article into an SEO blog post in another language.",
        lifespan=lifespan,
    )
    app.state.parts = parts
    app.state.settings = settings
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(posts.router)
    add_ops_routes(app, parts.registry, parts.readiness_checks())
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=parts.telemetry.provider, excluded_urls="healthz,readyz,metrics"
    )
    return app
