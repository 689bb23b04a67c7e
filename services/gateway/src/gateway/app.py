"""Composition root of the gateway: settings in, the FastAPI app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from seoblog_runtime import add_ops_routes, build_parts
from seoblog_runtime.signals import on_stop_signal

from . import errors
from .auth import Authenticator
from .deps import Gateway, document_keys
from .experiments import Experiments
from .handlers import Counters, register
from .limits import BodyLimit, KeyFromQuery, RateLimitHeaders, RejectNul, key_out_of_query
from .live import REVOCATIONS, LiveHub
from .relay import Relay
from .routes import experiments as experiment_routes
from .routes import jobs, keys, posts, web
from .settings import Settings, check_open_mode
from .snapshots import JobCache
from .sources import Sources
from .store import PgJobStore
from .webhook_docs import router as webhook_docs
from .webhooks import Webhooks

log = logging.getLogger("gateway.app")

DESCRIPTION = """
Turn a web article into an SEO blog post in another language.

**Auth.** Send an API key as `Authorization: Bearer sk_seo_...` (or `X-API-Key`). Scopes:
`jobs:write` submits and cancels, `jobs:read` reads jobs and posts and follows them live,
`admin` does everything and manages keys. Each key has a token bucket: over it, a 429 with
`Retry-After` and `RateLimit-*` headers. `/healthz`, `/readyz`, `/metrics`, these docs and the
web page at `/` need no key.

**Errors** are JSON with a stable code: `{"error": {"code", "message", "details"?}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if check_open_mode(settings):
        log.warning(
            "OPEN MODE ON A NON-LOOPBACK ADDRESS (GATEWAY_OPEN_MODE_FORCE): every caller who "
            "reaches %s:%s is admin, may read the webhook secret and create admin keys",
            settings.host,
            settings.port,
        )
    # The gateway projects every event, those of cancelled jobs included.
    parts = build_parts(settings, PgJobStore, drop_cancelled=False)
    jobs_cache = JobCache(parts.store, settings.status_cache_ttl_s)
    hub = LiveHub(parts.bus, on_snapshot=jobs_cache.update)
    webhooks = Webhooks(settings, parts.store)
    auth = Authenticator(settings, parts.store)
    relay = Relay(settings, parts.store, parts.bus)
    counters = register(parts, jobs_cache, hub, webhooks)
    experiments = Experiments(parts)
    experiments.register()
    parts.on_start.append(experiments.start)
    parts.on_stop.append(experiments.stop)
    parts.registry.register(_GatewayCollector(hub, webhooks, relay, counters))

    async def start_auth() -> None:
        # Revocations travel beside the live updates (core NATS, `<root>.live.keys`).
        revocations = f"{parts.bus.subjects.root}.live.{REVOCATIONS}"
        await auth.start(parts.cache.redis, settings.cache_prefix, parts.bus.nc, revocations)

    # Start hooks run once PostgreSQL, Redis and NATS answer, so a gateway started before its
    # dependencies serves /healthz (and 503s) at once instead of exiting; stops run in reverse.
    sources = Sources(settings)  # GET /v1/posts/{id}/source asks the crawler
    parts.on_start += [start_auth, hub.start, webhooks.start, relay.start, sources.start]
    parts.on_stop += [sources.stop, hub.stop, webhooks.stop, relay.stop, auth.stop]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with parts.running():
            restore_signals = on_stop_signal(hub.close_all)
            try:
                yield
            finally:
                restore_signals()

    # /docs (Swagger UI) and /redoc with their assets served from a pinned package
    # (fastapi-offline), not from a CDN at a floating version.
    app = FastAPIOffline(
        static_url="/docs/assets",
        title="seoblog API",
        version="1",
        summary="Turn a web article into an SEO blog post in another language.",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry support makes the server span (current HTTP semantic
        # conventions). One span per request: no spans per dependency, endpoint and
        # serialization; request metrics are Prometheus' (HttpMetrics). `?api_key=` leaves
        # the URL before the span sees it.
        telemetry={
            "tracer_provider": parts.telemetry.provider,
            "operation_spans": False,
            "metrics": False,
            "logs": False,
            "exclude": _key_out_of_query,
        },
    )
    app.state.parts = parts
    app.state.settings = settings
    app.state.hub = hub
    app.state.jobs = jobs_cache
    app.state.webhooks = webhooks
    app.state.auth = auth
    app.state.relay = relay
    app.state.counters = counters
    app.state.experiments = experiments
    app.state.sources = sources
    app.state.gateway = Gateway(parts, settings, jobs_cache, hub, webhooks, relay, experiments)
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(posts.router)
    app.include_router(keys.router)
    app.include_router(experiment_routes.router)
    app.include_router(web.router)
    document_keys(app)
    app.webhooks.include_router(webhook_docs)  # OpenAPI `webhooks`: what callbacks receive
    add_ops_routes(app, parts.registry, parts.readiness_checks())
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RejectNul)
    # Outside every middleware, so `?api_key=` never reaches a log line or a route's URL.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: KeyFromQuery(build_stack())  # type: ignore[method-assign]
    return app


def _key_out_of_query(scope: MutableMapping[str, Any]) -> bool:
    """FastAPI's telemetry `exclude` hook, the first thing that sees a request: moves the key
    of a live route out of the query string (in place) and excludes nothing."""
    key_out_of_query(scope)
    return False


class _GatewayCollector(Collector):
    def __init__(self, hub: LiveHub, webhooks: Webhooks, relay: Relay, counters: Counters) -> None:
        self.hub, self.webhooks, self.relay, self.counters = hub, webhooks, relay, counters

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "seoblog_gateway_live_connections",
            "Open SSE streams and WebSockets",
            value=self.hub.connections,
        )
        deliveries = CounterMetricFamily(
            "seoblog_gateway_webhooks", "Webhook attempts by outcome", labels=["outcome"]
        )
        for outcome, value in self.webhooks.stats.items():
            deliveries.add_metric([outcome], value)
        yield deliveries
        yield CounterMetricFamily(
            "seoblog_gateway_unknown_job_events",
            "Events for jobs the gateway does not know: ignored and dead-lettered",
            value=self.counters.unknown_job,
        )
        yield CounterMetricFamily(
            "seoblog_gateway_relay_republished",
            "Submitted events the relay published again after no confirmation",
            value=self.relay.republished,
        )
