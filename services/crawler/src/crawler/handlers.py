"""Subscriber: crawl the page of a submitted job (one durable consumer per priority, all
through the same priority slots)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Executor
from dataclasses import fields
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
from seoblog_telemetry import span

from .analysis import analyse_page
from .article import ExtractionError
from .expiring import fresh_json
from .fetch import Fetcher, FetchError, Validators
from .metrics import CrawlerMetrics
from .priority import PrioritySlots
from .settings import Settings
from .store import PgPageStore

log = logging.getLogger("crawler.handlers")


def page_key(url: str, mode: str = "default") -> str:
    """A page's cache key; an experiment's extraction mode gets keys of its own."""
    return f"page:v2:{url}" if mode == "default" else f"page:v2:{mode}:{url}"


class CrawlPage:
    """Fetch (once per URL while cached, conditionally after), extract off the event loop,
    store, announce."""

    def __init__(
        self,
        parts: Parts[PgPageStore],
        settings: Settings,
        fetcher: Fetcher,
        executor: Executor | None,
        slots: PrioritySlots,
        metrics: CrawlerMetrics,
    ) -> None:
        self.parts = parts
        self.settings = settings
        self.fetcher = fetcher
        self.executor = executor
        self.slots = slots
        self.metrics = metrics

    async def __call__(self, event: JobSubmitted, priority: Priority | None = None) -> None:
        bus, store = self.parts.bus, self.parts.store
        if (done := await store.crawl_of(event.job_id)) is not None:
            await bus.publish(done)  # redelivery: same event id, dropped as a duplicate
            return
        chosen = priority or event.spec.priority
        async with contextlib.AsyncExitStack() as held:
            with span("crawl slot", {"seoblog.priority": chosen.value}):  # the wait for it
                await held.enter_async_context(self.slots.slot(chosen))
            try:
                await self._crawl(event)
            except JobError as exc:
                self.metrics.failures.labels(exc.code).inc()
                raise

    async def _crawl(self, event: JobSubmitted) -> None:
        bus = self.parts.bus
        # The stage's one progress event (its end is page.crawled or job.failed); progress
        # needs no confirmed write, so nothing waits for the stream's ack.
        await bus.publish(
            JobProgress(job_id=event.job_id, stage=Stage.CRAWL, percent=0, message="fetching"),
            ack=False,
        )
        url = normalize_url(str(event.spec.url))
        mode = str(event.spec.overrides("crawler").get("extract_mode", "default"))
        recorded: list[PageCrawled] = []  # the crawl the computation recorded with the page
        page, computed = await fresh_json(
            self.parts.cache,
            page_key(url, mode),
            self.settings.page_ttl_s,
            lambda: self._fetch_and_extract(event, url, mode, recorded),
        )
        if not computed:
            self.metrics.cache_hits.inc()
        if computed and recorded:  # as recorded: with what the page's statement found
            crawled = recorded[0].model_copy(update={"metadata": page["metadata"]})
        else:
            crawled = crawl_event(
                event,
                url,
                page,
                from_cache=not computed or bool(page["metadata"].get("not_modified")),
            )
            with span("store crawl"):
                crawled = await self.parts.store.record_crawl(crawled)
        await bus.publish(crawled)

    async def _fetch_and_extract(
        self, event: JobSubmitted, url: str, mode: str, recorded: list[PageCrawled]
    ) -> dict[str, Any]:
        store = self.parts.store
        with span("stored page"):  # validators for a conditional request
            stored = await store.stored_page(url)
        validators = (
            Validators(stored.etag, stored.last_modified)
            if stored is not None and (stored.etag or stored.last_modified) and mode == "default"
            else None  # another extraction mode fetches whole: the stored page is default's
        )
        try:
            fetched = await self.fetcher.fetch(url, validators)
        except FetchError as exc:
            raise JobError(exc.code, exc.message, retryable=exc.retryable) from exc
        if fetched.not_modified and stored is not None:
            self.metrics.not_modified.inc()
            await store.touch_page(url)
            page = dict(stored.page)
            page["metadata"] = page["metadata"] | {
                "status": 304,
                "not_modified": True,
                "fetch_ms": round(fetched.elapsed_ms, 1),
            }
            return page
        loop = asyncio.get_running_loop()
        with span("extract", {"seoblog.html_bytes": len(fetched.body)}) as extracting:
            try:  # the worker decodes the page: bytes go there, not text
                analysis = await loop.run_in_executor(
                    self.executor,
                    analyse_page,
                    fetched.body,
                    fetched.final_url,
                    mode,
                    fetched.charset,
                )
            except ExtractionError as exc:
                raise JobError(exc.code, exc.message) from exc
            extracting.set_attributes(
                {
                    "seoblog.text_chars": len(analysis.article.text),
                    "seoblog.language": analysis.article.language or "",
                    "seoblog.extract.worker_s": round(analysis.seconds, 4),
                }
            )
        article, fingerprint = analysis.article, analysis.simhash
        self.metrics.extract_seconds.observe(analysis.seconds)
        metadata = {  # the Article's fields, shallow (asdict would deep-copy the links)
            f.name: getattr(article, f.name)
            for f in fields(article)
            if f.name not in {"title", "text", "content_hash"}
        }
        metadata |= {
            "status": fetched.status,
            "etag": fetched.headers.get("etag"),
            "last_modified": fetched.headers.get("last-modified"),
            "fetch_ms": round(fetched.elapsed_ms, 1),
            "fetch_attempts": fetched.attempts,
            "not_modified": False,
            "simhash": f"{fingerprint:016x}",
            "changed_since_last_crawl": (
                None if stored is None else stored.page["content_hash"] != article.content_hash
            ),
        }
        page = {
            "final_url": fetched.final_url,
            "title": article.title,
            "text": article.text,
            "language": article.language,
            "content_hash": article.content_hash,
            "metadata": metadata,
        }
        if mode == "default":  # kept as the page's; duplicates found and the job's crawl
            # recorded in the same round trip (no "store crawl" after it)
            crawl = crawl_event(event, url, page, from_cache=False)
            with span("store page"):
                duplicates, wrote = await store.save_page_recording_crawl(
                    url, page, analysis.html_z, analysis.text_z, fingerprint, crawl
                )
            if wrote:  # else a delivery recorded the job first: record_crawl says what stands
                recorded.append(crawl)
        else:  # a variant's extraction is not kept as the page's
            with span("dedup"):
                duplicates = await store.duplicates(url, article.content_hash, fingerprint)
        if duplicates.exact:
            self.metrics.duplicates.labels("exact").inc()
        if duplicates.near:
            self.metrics.duplicates.labels("near").inc()
        metadata |= {
            "duplicate_of": duplicates.exact,
            "near_duplicate_of": duplicates.near,
            "near_duplicate_distance": duplicates.near_distance,
        }
        return page


def crawl_event(
    event: JobSubmitted, url: str, page: dict[str, Any], *, from_cache: bool
) -> PageCrawled:
    """The job's page.crawled event for `page` (as _fetch_and_extract returns and caches it)."""
    return PageCrawled(
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
        from_cache=from_cache,
    )


def register(parts: Parts[PgPageStore], handler: CrawlPage) -> None:
    """One durable consumer per priority, so each can be scaled and watched on its own; the
    handler's priority slots decide which of the pulled messages runs first."""
    for priority in Priority:

        async def handle(event: JobSubmitted, priority: Priority = priority) -> None:
            await handler(event, priority)

        parts.bus.consume(
            parts.bus.subjects.submitted(priority),
            f"crawler-crawl_page_{priority.value}",
            JobSubmitted,
            handle,
            stage=Stage.CRAWL,
        )


__all__ = ["CrawlPage", "crawl_event", "page_key", "register"]
