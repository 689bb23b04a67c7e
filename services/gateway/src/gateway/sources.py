"""The article a post was written from, read on request from the crawler's store
(GET {GATEWAY_CRAWLER_URL}/v1/pages?url=…&job_id=…: the job's own crawl result, else the URL's
latest stored copy) and kept in process for a short while.

Nothing on the pipeline's path changes: no consumer, no bigger events; only a person opening a
post's source pays the one request."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import httpx

from .errors import ApiError
from .settings import Settings

_MAX_ENTRIES = 256


class Sources:
    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.crawler_url.rstrip("/")
        self.timeout_s = settings.source_timeout_s
        self.ttl_s = settings.source_cache_ttl_s
        self._client: httpx.AsyncClient | None = None
        # (url, job id) -> (expires at, the page, or None: the crawler has none)
        self._cache: OrderedDict[tuple[str, str], tuple[float, dict[str, Any] | None]] = (
            OrderedDict()
        )

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=5),
            trust_env=False,  # an in-cluster address: never through a proxy from the env
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def page(self, url: str, job_id: str) -> dict[str, Any]:
        """What job `job_id` crawled at `url` (else the URL's stored copy); ApiError 404
        source_not_found, 503 source_unavailable."""
        now = time.monotonic()
        key = (url, job_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            found = cached[1]
        else:
            found = await self._fetch(url, job_id)
            self._cache[key] = (now + self.ttl_s, found)
            self._cache.move_to_end(key)
            while len(self._cache) > _MAX_ENTRIES:
                self._cache.popitem(last=False)
        if found is None:
            raise ApiError(
                404,
                "source_not_found",
                "The crawler keeps no copy of this post's source article (it may have been "
                "removed, or the crawler's store is another one).",
            )
        return found

    async def _fetch(self, url: str, job_id: str) -> dict[str, Any] | None:
        if self._client is None:
            raise _unavailable("the gateway is not started")
        try:
            response = await self._client.get("/v1/pages", params={"url": url, "job_id": job_id})
        except httpx.HTTPError as exc:
            raise _unavailable(type(exc).__name__) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _unavailable(f"HTTP {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
            return {
                "url": str(body["url"]),
                "final_url": str(body["final_url"]),
                "title": str(body["title"]),
                "text": str(body["text"]),
                "language": None if body.get("language") is None else str(body["language"]),
                "fetched_at": str(body["fetched_at"]),
                "exact": bool(body.get("exact", False)),
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise _unavailable("an answer it could not read") from exc


def _unavailable(why: str) -> ApiError:
    return ApiError(
        503,
        "source_unavailable",
        f"The crawler, which keeps the source articles, did not answer ({why}); try again "
        "shortly. The post itself is unaffected.",
        **{"Retry-After": "5"},
    )
