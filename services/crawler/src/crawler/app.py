"""Composition root of the crawler: settings in, a running ASGI app out."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from fastapi import FastAPI

from seoblog_contracts import Stage
from seoblog_runtime import build_parts

from .addresses import AddressPolicy
from .fetch import Fetcher, FetchLimits
from .handlers import CrawlPage, register
from .metrics import CrawlerMetrics
from .politeness import Politeness, PolitenessRules
from .priority import PrioritySlots
from .settings import Settings
from .store import PgPageStore


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
    executor = ProcessPoolExecutor(
        max_workers=settings.extract_workers or os.cpu_count() or 1,
        mp_context=multiprocessing.get_context("forkserver"),
    )
    slots = PrioritySlots(settings.global_concurrency, settings.starvation_limit, metrics)
    handler = CrawlPage(parts, settings, fetcher, executor, slots, metrics)
    register(parts, handler)

    async def close() -> None:
        await fetcher.aclose()
        executor.shutdown(wait=False, cancel_futures=True)

    parts.on_stop.append(close)
    app = parts.ops_app("seoblog crawler")
    app.state.crawl_page = handler  # tests and operators reach the handler and its slots here
    return app
