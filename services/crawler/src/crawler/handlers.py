"""Subscriber: crawl the page of a submitted job (one durable consumer per priority)."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Executor
from dataclasses import asdict
from typing import Any

from courlan import normalize_url

from seoblog_contracts import (
    JobProgress,
    JobSubmitted,
    PageCrawled,
    Priority,
    Stage,
    stage_event_id,
)
from seoblog_runtime import JobError, Parts

from .extract import ExtractionError, extract_article
from .fetch import Fetcher, FetchError
from .settings import Settings
from .store import PgPageStore

log = logging.getLogger("crawler.handlers")


def page_key(url: str) -> str:
    return f"page:v1:{url}"


class CrawlPage:
    """Fetch (once per URL while cached), extract off the event loop, store, announce."""

    def __init__(
        self,
        parts: Parts[PgPageStore],
        settings: Settings,
        fetcher: Fetcher,
        executor: Executor | None,
    ) -> None:
        self.parts = parts
        self.settings = settings
        self.fetcher = fetcher
        self.executor = executor

    async def __call__(self, event: JobSubmitted) -> None:
        bus, store = self.parts.bus, self.parts.store
        if (done := await store.crawl_of(event.job_id)) is not None:
            await bus.publish(done)  # redelivery: same event id, dropped as a duplicate
            return
        await bus.publish(
            JobProgress(job_id=event.job_id, stage=Stage.CRAWL, percent=0, message="fetching")
        )
        url = normalize_url(str(event.spec.url))
        fetched = False

        async def fetch_and_extract() -> bytes:
            nonlocal fetched
            fetched = True
            page = await self._fetch_and_extract(url)
            return json.dumps(page).encode()

        page = json.loads(
            await self.parts.cache.get_or_compute(
                page_key(url), fetch_and_extract, ttl_s=self.settings.page_ttl_s
            )
        )
        crawled = PageCrawled(
            event_id=stage_event_id(event.job_id, "page.crawled"),
            job_id=event.job_id,
            spec=event.spec,
            url=url,
            final_url=page["final_url"],
            title=page["title"],
            text=page["text"],
            language=page["language"],
            content_hash=page["content_hash"],
            metadata=page["metadata"],
            from_cache=not fetched,
        )
        await bus.publish(await store.record_crawl(crawled))

    async def _fetch_and_extract(self, url: str) -> dict[str, Any]:
        try:
            fetched = await self.fetcher.fetch(url)
        except FetchError as exc:
            raise JobError(exc.code, exc.message, retryable=exc.retryable) from exc
        loop = asyncio.get_running_loop()
        try:
            article = await loop.run_in_executor(
                self.executor, extract_article, fetched.html, fetched.final_url
            )
        except ExtractionError as exc:
            raise JobError(exc.code, exc.message) from exc
        metadata = {
            k: v for k, v in asdict(article).items() if k not in {"title", "text", "content_hash"}
        }
        metadata |= {
            "status": fetched.status,
            "etag": fetched.headers.get("etag"),
            "last_modified": fetched.headers.get("last-modified"),
            "fetch_ms": round(fetched.elapsed_ms, 1),
        }
        page = {
            "final_url": fetched.final_url,
            "title": article.title,
            "text": article.text,
            "language": article.language,
            "content_hash": article.content_hash,
            "metadata": metadata,
        }
        await self.parts.store.save_page(url, page, fetched.html)
        return page


def register(parts: Parts[PgPageStore], handler: CrawlPage) -> None:
    """One durable consumer per priority, so each can be scaled and watched on its own."""
    for priority in Priority:
        parts.bus.consume(
            parts.bus.subjects.submitted(priority),
            f"crawler-crawl_page_{priority.value}",
            JobSubmitted,
            handler,
            stage=Stage.CRAWL,
        )


__all__ = ["CrawlPage", "page_key", "register"]
