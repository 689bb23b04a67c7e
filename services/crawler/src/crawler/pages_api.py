"""GET /v1/pages?url=…[&job_id=…]: a crawled page's title, text and language, read-only.

The gateway shows it beside a post (GET /v1/posts/{id}/source); nothing on the pipeline's
path calls it. With `job_id`, the text that job's crawl extracted (its recorded result,
`exact`); otherwise, or when the crawler has no record of the job, the latest stored copy of
the URL (a re-crawl replaces it)."""

from __future__ import annotations

from typing import Annotated

from courlan import normalize_url
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from .packing import unpack
from .store import PgPageStore


class StoredPageText(BaseModel):
    url: str
    final_url: str
    title: str
    text: str
    language: str | None
    fetched_at: str
    exact: bool  # the job's own crawl result, not the URL's latest copy


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def pages_router(store: PgPageStore) -> APIRouter:
    router = APIRouter(prefix="/v1/pages", tags=["pages"])

    @router.get("", response_model=StoredPageText, responses={404: {}, 422: {}})
    async def get_page(
        url: Annotated[str, Query(min_length=1, max_length=4096)],
        job_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ) -> StoredPageText | JSONResponse:
        if not url.lower().startswith(("http://", "https://")):
            return _error(422, "bad_url", "url must be an http(s) URL.")
        try:
            key = normalize_url(url)
        except ValueError:  # courlan refuses what it cannot parse
            return _error(422, "bad_url", "url is not a URL the crawler could have stored.")
        if job_id is not None:
            crawl = await store.pool.fetchrow(
                "SELECT event->>'url' AS url, event->>'final_url' AS final_url,"
                " event->>'title' AS title, event->>'text' AS text,"
                " event->>'language' AS language, created_at FROM crawls"
                " WHERE job_id = $1 AND url = ANY($2::text[])",
                job_id,
                [key, url],
            )
            if crawl is not None:
                return StoredPageText(
                    url=crawl["url"],
                    final_url=crawl["final_url"],
                    title=crawl["title"],
                    text=crawl["text"],
                    language=crawl["language"],
                    fetched_at=crawl["created_at"].isoformat(),
                    exact=True,
                )
        # Keyed by the normalised URL, as the crawler stores it; the URL as given otherwise.
        row = await store.pool.fetchrow(
            "SELECT url, final_url, title, language, text_z, fetched_at FROM pages"
            " WHERE url = ANY($1::text[]) ORDER BY url = $2 DESC LIMIT 1",
            [key, url],
            key,
        )
        if row is None:
            return _error(404, "page_not_found", "The crawler has no stored copy of this URL.")
        return StoredPageText(
            url=row["url"],
            final_url=row["final_url"],
            title=row["title"],
            text=unpack(row["text_z"]),
            language=row["language"],
            fetched_at=row["fetched_at"].isoformat(),
            exact=False,
        )

    return router
