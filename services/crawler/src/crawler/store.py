"""All SQL of the crawler: pages stored compressed, and the crawl result of each job."""

from __future__ import annotations

import json
from typing import Any

import zstandard

from seoblog_contracts import PageCrawled
from seoblog_runtime import Store, migrations_of

_compress = zstandard.ZstdCompressor(level=6)
_decompress = zstandard.ZstdDecompressor()


def pack(text: str) -> bytes:
    return _compress.compress(text.encode())


def unpack(blob: bytes) -> str:
    return _decompress.decompress(blob).decode()


class PgPageStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    async def crawl_of(self, job_id: str) -> PageCrawled | None:
        row = await self.pool.fetchval("SELECT event FROM crawls WHERE job_id = $1", job_id)
        return None if row is None else PageCrawled.model_validate_json(row)

    async def save_page(self, url: str, page: dict[str, Any], html: str) -> None:
        """Keep the latest copy of a page, compressed."""
        await self.pool.execute(
            """
            INSERT INTO pages (url, final_url, content_hash, title, language, metadata,
                               html_z, text_z, etag, last_modified, fetched_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
            ON CONFLICT (url) DO UPDATE SET
                final_url = EXCLUDED.final_url, content_hash = EXCLUDED.content_hash,
                title = EXCLUDED.title, language = EXCLUDED.language,
                metadata = EXCLUDED.metadata, html_z = EXCLUDED.html_z,
                text_z = EXCLUDED.text_z, etag = EXCLUDED.etag,
                last_modified = EXCLUDED.last_modified, fetched_at = now()
            """,
            url,
            page["final_url"],
            page["content_hash"],
            page["title"],
            page["language"],
            json.dumps(page["metadata"]),
            pack(html),
            pack(page["text"]),
            page["metadata"].get("etag"),
            page["metadata"].get("last_modified"),
        )

    async def record_crawl(self, event: PageCrawled) -> PageCrawled:
        """The job's crawl result; the first one recorded wins, so redeliveries agree."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO crawls (job_id, url, event) VALUES ($1, $2, $3)"
                " ON CONFLICT (job_id) DO NOTHING",
                event.job_id,
                event.url,
                event.model_dump_json(),
            )
            stored = await conn.fetchval("SELECT event FROM crawls WHERE job_id = $1", event.job_id)
        return PageCrawled.model_validate_json(stored)

    async def page_text(self, url: str) -> str | None:
        blob = await self.pool.fetchval("SELECT text_z FROM pages WHERE url = $1", url)
        return None if blob is None else unpack(blob)
