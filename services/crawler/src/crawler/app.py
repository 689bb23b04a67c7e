"""Composition root of the crawler: settings in, a running ASGI app out."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from fastapi import FastAPI

from seoblog_contracts import Stage
from seoblog_runtime import build_parts

from .fetch import Fetcher, FetchLimits
from .handlers import CrawlPage, register
from .settings import Settings
from .store import PgPageStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = build_parts(settings, PgPageStore, stage=Stage.CRAWL)
    fetcher = Fetcher(
        limits=FetchLimits(
            timeout_s=settings.fetch_timeout_s,
            max_redirects=settings.max_redirects,
            max_bytes=settings.max_bytes,
            user_agent=settings.user_agent,
        )
    )
    # Extraction is CPU-bound: a process pool keeps it off the event loop.
    # forkserver: forking a process that already runs threads (uvicorn, OTel) is unsafe.
    executor = ProcessPoolExecutor(
        max_workers=settings.extract_workers or os.cpu_count() or 1,
        mp_context=multiprocessing.get_context("forkserver"),
    )
    handler = CrawlPage(parts, settings, fetcher, executor)
    register(parts, handler)

    async def close() -> None:
        await fetcher.aclose()
        executor.shutdown(wait=False, cancel_futures=True)

    parts.on_stop.append(close)
    return parts.ops_app("seoblog crawler")
