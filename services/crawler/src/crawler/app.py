"""Composition root of the crawler: settings in, a running ASGI app out."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from seoblog_contracts import Stage
from seoblog_runtime import add_ops_routes, build_parts

from .addresses import AddressPolicy
from .analysis import start_worker
from .fetch import Fetcher, FetchLimits
from .handlers import CrawlPage, register
from .metrics import CrawlerMetrics
from .pages_api import pages_router
from .politeness import Politeness, PolitenessRules
from .priority import PrioritySlots
from .settings import Settings
from .store import PgPageStore

log = logging.getLogger("crawler.app")


class WarmPool:
    """Starts every extraction process at start-up rather than on the first pages (each
    worker loads the extractor as it starts), and says when that is done: the `extractor`
    readiness check, so a ready crawler's first job costs what later ones do."""

    def __init__(self, executor: ProcessPoolExecutor, workers: int) -> None:
        self.executor = executor
        self.workers = workers
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._warm(), name="crawler-warm-up")

    async def ready(self) -> bool:
        return self.done.is_set()

    async def _warm(self) -> None:
        started = time.perf_counter()
        try:
            # Submitting starts the forkserver and forks, which blocks: off the event loop.
            await asyncio.to_thread(self._start_all)
        except Exception:  # a broken pool shows on the first job; readiness must not hang
            log.warning("extraction workers failed to start", exc_info=True)
        else:
            log.info(
                "extraction workers ready",
                extra={"workers": self.workers, "seconds": round(time.perf_counter() - started, 2)},
            )
        finally:
            self.done.set()

    def _start_all(self) -> None:
        # One task per worker: each submit that finds no idle worker starts another one.
        futures = [self.executor.submit(os.getpid) for _ in range(self.workers)]
        for future in concurrent.futures.as_completed(futures):
            future.result()

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = build_parts(settings, PgPageStore, stage=Stage.CRAWL)
    metrics = CrawlerMetrics(parts.registry)
    politeness = Politeness(
        parts.cache,
        PolitenessRules(
            user_agent=settings.robots_user_agent,
            host_rate_per_s=settings.host_rate_per_s,
            host_burst=settings.host_burst,
            host_concurrency=settings.host_concurrency,
            robots_ttl_s=settings.robots_ttl_s,
            robots_unreachable_ttl_s=settings.robots_unreachable_ttl_s,
            max_crawl_delay_s=settings.max_crawl_delay_s,
            max_wait_s=settings.max_host_wait_s,
            # Held while waiting for the host's rate and through one request.
            slot_lease_s=settings.max_host_wait_s * 2 + settings.fetch_timeout_s,
        ),
        metrics,
    )
    fetcher = Fetcher(
        FetchLimits(
            timeout_s=settings.fetch_timeout_s,
            max_redirects=settings.max_redirects,
            max_bytes=settings.max_bytes,
            max_decoded_bytes=settings.max_decoded_bytes,
            user_agent=settings.user_agent,
            attempts=settings.fetch_attempts,
            backoff_s=settings.fetch_backoff_s,
            backoff_max_s=settings.fetch_backoff_max_s,
            max_retry_after_s=settings.max_retry_after_s,
        ),
        policy=AddressPolicy.allowing(settings.allowed_networks),
        politeness=politeness,
        metrics=metrics,
        per_host_connections=settings.host_concurrency + 1,  # + robots.txt
    )
    # Extraction is CPU-bound: a process pool keeps it off the event loop.
    # forkserver: forking a process that already runs threads (uvicorn, OTel) is unsafe.
    # Each worker loads and exercises the extractor as it starts (initializer), not on its
    # first page, and exits when the service process does (even killed with SIGKILL); only
    # the workers import trafilatura, the service process never does.
    workers = settings.extract_workers or os.cpu_count() or 1
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=start_worker,
        initargs=(os.getpid(),),
    )
    slots = PrioritySlots(settings.global_concurrency, settings.starvation_limit, metrics)
    handler = CrawlPage(parts, settings, fetcher, executor, slots, metrics)
    register(parts, handler)

    async def close() -> None:
        await fetcher.aclose()
        executor.shutdown(wait=False, cancel_futures=True)

    warm = WarmPool(executor, workers)
    parts.on_stop.append(close)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warm.start()  # alongside connecting to the dependencies, not after
        try:
            async with parts.running():
                yield
        finally:
            await warm.stop()

    app = FastAPI(title="seoblog crawler", lifespan=lifespan, docs_url=None, redoc_url=None)
    add_ops_routes(app, parts.registry, parts.readiness_checks() | {"extractor": warm.ready})
    app.include_router(pages_router(parts.store))  # read-only: the gateway's post sources
    app.state.crawl_page = handler  # tests and operators reach the handler and its slots here
    return app
