"""The composition every service shares: settings in, telemetry + bus + store + cache out,
opened and closed in one lifespan, with their health and figures on the ops routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from cachetools import TTLCache
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from seoblog_contracts import JobCancelled, Stage
from seoblog_telemetry import (
    Telemetry,
    instrument_libraries,
    register_process_collectors,
    setup_tracing,
)

from .bus import Bus
from .cache import Cache
from .service import add_ops_routes
from .settings import ServiceSettings
from .store import Store

log = logging.getLogger("seoblog.service")

S = TypeVar("S", bound=Store)
FIRST_ATTEMPT_S = 1.0
Hook = Callable[[], Awaitable[None]]


@dataclass
class Parts(Generic[S]):
    """What a service's handlers and routes work with."""

    settings: ServiceSettings
    telemetry: Telemetry
    bus: Bus
    store: S
    cache: Cache
    registry: CollectorRegistry
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)

    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open store, cache and bus, run the on_start hooks, then start consuming; stop in
        reverse order.

        One attempt is made before the block is entered, so with every dependency up the
        service is ready inside it. If one is down, the block is entered anyway (the HTTP
        server serves /healthz, /readyz says what is missing) and a background task keeps
        connecting with capped exponential back-off: a dependency being down never ends the
        process."""
        instrument_libraries(self.telemetry)
        starting = _Startup(self)
        task: asyncio.Task[None] | None = None
        try:
            # The first attempt is bounded tighter: it holds up the HTTP server (and /healthz).
            if not await starting.attempt(min(self.settings.connect_timeout_s, FIRST_ATTEMPT_S)):
                task = asyncio.create_task(starting.until_ready(), name="seoblog-startup")
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await starting.close()
            self.telemetry.shutdown()

    def ops_app(self, title: str) -> FastAPI:
        """A worker's whole HTTP surface: health, readiness and metrics."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with self.running():
                yield

        app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None)
        add_ops_routes(app, self.registry, self.readiness_checks())
        return app

    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        async def nats() -> bool:  # consuming, not merely connected: start-up has finished
            return self.ready.is_set() and await self.bus.ping()

        return {"nats": nats, "postgres": self.store.ping, "redis": self.cache.ping}


class _Startup:
    """Brings one service's dependencies up step by step, remembering what is open, so a
    failed attempt resumes where it stopped and shutdown closes only what was opened."""

    def __init__(self, parts: Parts[Any]) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.store_open = self.cache_open = self.bus_connected = self.bus_started = False
        self.hooks_done = 0
        self.attempts = 0
        self.delay = parts.settings.connect_retry_initial_s  # before the next attempt

    async def attempt(self, bound_s: float | None = None) -> bool:
        """One pass over the missing steps; True once the service is consuming."""
        p, timeout = self.parts, bound_s or self.settings.connect_timeout_s
        self.attempts += 1
        dependency = "postgres"
        try:
            if not self.store_open:
                await p.store.open(connect_timeout_s=timeout)
                self.store_open = True
            if not self.cache_open:  # Redis is optional and connects lazily
                dependency = "redis"
                await p.cache.open()
                self.cache_open = True
            if not self.bus_connected:
                dependency = "nats"
                await asyncio.wait_for(p.bus.broker.connect(), timeout)
                self.bus_connected = True
            while self.hooks_done < len(p.on_start):
                dependency = "start hook"
                await p.on_start[self.hooks_done]()
                self.hooks_done += 1
            dependency = "nats"
            await p.bus.start()
            self.bus_started = True
        except Exception as exc:
            self._log_failure(dependency, exc)
            return False
        p.ready.set()
        log.info("service started", extra={"schema": p.store.schema, "attempts": self.attempts})
        return True

    async def until_ready(self) -> None:
        while True:
            await asyncio.sleep(self.delay)
            self.delay = min(self.delay * 2, self.settings.connect_retry_max_s)
            if await self.attempt():
                return

    def _log_failure(self, dependency: str, exc: BaseException) -> None:
        log.warning(
            "dependency unavailable; retrying",
            extra={
                "dependency": dependency,
                "attempt": self.attempts,
                "retry_in_s": round(self.delay, 2),
                "error": redact(f"{type(exc).__name__}: {exc}")[:300],
            },
        )

    async def close(self) -> None:
        p = self.parts
        steps: list[tuple[str, Hook]] = []
        if self.bus_connected or self.bus_started:
            steps.append(("bus", p.bus.stop))
        steps += [("stop hook", hook) for hook in reversed(p.on_stop)]
        if self.cache_open:
            steps.append(("cache", p.cache.close))
        if self.store_open:
            steps.append(("store", p.store.close))
        for name, step in steps:
            try:
                await step()
            except Exception as exc:  # keep closing the rest
                log.warning(
                    "shutdown step failed",
                    extra={"step": name, "error": redact(f"{type(exc).__name__}: {exc}")[:300]},
                )


_CREDENTIALS = re.compile(r"(//[^/:@\s]*):[^@\s]*@")


def redact(text: str) -> str:
    """Passwords out of any URL an error message quotes."""
    return _CREDENTIALS.sub(r"\1:***@", text)


def build_parts(
    settings: ServiceSettings,
    store_factory: Callable[[str, str, int], S],
    *,
    stage: Stage | None = None,
    drop_cancelled: bool | None = None,
) -> Parts[S]:
    """Wire one service from its settings; nothing connects until `running()`.

    A pipeline stage (`stage` given, or `drop_cancelled=True`) also follows seo.job.cancelled
    with its own durable `<service>-note_cancelled` and drops later events of cancelled jobs.
    """
    telemetry = setup_tracing(settings.service)
    registry = CollectorRegistry()
    register_process_collectors(registry)
    bus = Bus(settings, tracer_provider=telemetry.provider, stage=stage)
    cache = Cache(
        settings.cache_prefix,
        settings.redis_url,
        local_items=settings.cache_local_items,
        local_ttl_s=settings.cache_local_ttl_s,
        default_ttl_s=settings.cache_ttl_s,
    )
    store = store_factory(settings.database_url, settings.schema_name, settings.db_pool_max)
    registry.register(_RuntimeCollector(settings.service, bus, cache))
    if drop_cancelled if drop_cancelled is not None else stage is not None:
        follow_cancellations(bus, cache, ttl_s=settings.stream_max_age_s)
    return Parts(settings, telemetry, bus, store, cache, registry)


def follow_cancellations(bus: Bus, cache: Cache, *, ttl_s: float) -> None:
    """Note every cancelled job (in Redis, so every replica sees it, and in process) and make
    the bus drop that job's later events before their handlers run.

    The note lives as long as events can: the SEO stream's age limit. It bypasses the
    cache's hit counters, which describe the service's own work."""
    noted: TTLCache[str, bool] = TTLCache(maxsize=100_000, ttl=ttl_s)

    def key(job_id: str) -> str:
        return f"{cache.prefix}:cancelled:{job_id}"

    async def note_cancelled(event: JobCancelled) -> None:
        noted[event.job_id] = True
        if cache.redis is not None:  # a Redis error fails this message: it is retried
            await cache.redis.set(key(event.job_id), b"1", px=int(ttl_s * 1000))
        log.info("job cancelled; its later events will be dropped")

    async def cancelled(job_id: str) -> bool:
        if job_id in noted:
            return True
        return cache.redis is not None and bool(await cache.redis.exists(key(job_id)))

    bus.consume(
        bus.subjects.of(JobCancelled),
        f"{bus.settings.service}-note_cancelled",
        JobCancelled,
        note_cancelled,
    )
    bus.cancelled = cancelled


def migrations_of(package_file: str) -> Path:
    """The migrations/ folder beside a service's store module."""
    return Path(package_file).resolve().parent / "migrations"


class _RuntimeCollector(Collector):
    """Consumer outcomes and cache hit figures, read live from the bus and cache."""

    def __init__(self, service: str, bus: Bus, cache: Cache) -> None:
        self.service, self.bus, self.cache = service, bus, cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        messages = CounterMetricFamily(
            "seoblog_consumer_messages",
            "Messages handled by outcome",
            labels=["service", "consumer", "outcome"],
        )
        for consumer, stats in self.bus.stats.items():
            for outcome, value in vars(stats).items():
                messages.add_metric([self.service, consumer, outcome], value)
        yield messages
        cache = CounterMetricFamily(
            "seoblog_cache_lookups", "Cache lookups by result", labels=["service", "result"]
        )
        for result, value in self.cache.stats.items():
            cache.add_metric([self.service, result], value)
        yield cache
