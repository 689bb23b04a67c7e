"""All SQL of the crawler: pages stored compressed, and the crawl result of each job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from seoblog_contracts import PageCrawled
from seoblog_runtime import Store, migrations_of

from .packing import pack, unpack
from .similarity import NEAR_DISTANCE, bands, distance, from_signed, to_signed

__all__ = ["Duplicates", "PgPageStore", "StoredPage", "pack", "unpack"]


# A newer copy of a page replaces the stored one (both ways of saving a page end with this).
_PAGE_UPSERT = """
    ON CONFLICT (url) DO UPDATE SET
        final_url = EXCLUDED.final_url, content_hash = EXCLUDED.content_hash,
        title = EXCLUDED.title, language = EXCLUDED.language,
        metadata = EXCLUDED.metadata, html_z = EXCLUDED.html_z,
        text_z = EXCLUDED.text_z, etag = EXCLUDED.etag,
        last_modified = EXCLUDED.last_modified, fetched_at = now(),
        simhash = EXCLUDED.simhash, simhash_bands = EXCLUDED.simhash_bands
"""

_SAVE_PAGE = "".join(  # constant clauses
    (
        """
            INSERT INTO pages (url, final_url, content_hash, title, language, metadata,
                               html_z, text_z, etag, last_modified, fetched_at,
                               simhash, simhash_bands)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11, $12)
            """,
        _PAGE_UPSERT,
    )
)
_SAVE_PAGE_FINDING_DUPLICATES = "".join(  # constant clauses
    (
        """
            WITH exact AS (
                SELECT url FROM pages
                 WHERE content_hash = $3 AND url <> $1 ORDER BY fetched_at LIMIT 1
            ), candidates AS (
                SELECT url, bit_count((simhash # $11)::bit(64)) AS distance FROM pages
                 WHERE simhash_bands && $12::integer[] AND url <> $1 AND content_hash <> $3
                 LIMIT 500
            ), nearest AS (  -- the nearest, then the first URL by code point, as min() in Python
                SELECT url, distance FROM candidates
                 WHERE distance <= $13
                 ORDER BY distance, url COLLATE "C" LIMIT 1
            ), found AS (
                SELECT (SELECT url FROM exact) AS exact, (SELECT url FROM nearest) AS near,
                       (SELECT distance FROM nearest)::integer AS near_distance
            ), saved AS (
                INSERT INTO pages (url, final_url, content_hash, title, language, metadata,
                                   html_z, text_z, etag, last_modified, fetched_at,
                                   simhash, simhash_bands)
                SELECT $1, $2, $3, $4, $5,
                       $6::jsonb || jsonb_build_object('duplicate_of', found.exact,
                           'near_duplicate_of', found.near,
                           'near_duplicate_distance', found.near_distance),
                       $7, $8, $9, $10, now(), $11, $12
                  FROM found
                """,
        _PAGE_UPSERT,
        """
            )
            SELECT exact, near, near_distance FROM found
            """,
    )
)
# The same, and the job's crawl recorded in the same round trip (unless a delivery recorded
# it first): its event is $16 with what was found added to its metadata, as the caller adds
# it to its own copy.
_SAVE_PAGE_RECORDING_CRAWL = _SAVE_PAGE_FINDING_DUPLICATES.replace(
    "SELECT exact, near, near_distance FROM found",
    """, recorded AS (
                INSERT INTO crawls (job_id, url, event)
                SELECT $14, $15, jsonb_set($16::jsonb, '{metadata}',
                       ($16::jsonb -> 'metadata') || jsonb_build_object(
                           'duplicate_of', found.exact, 'near_duplicate_of', found.near,
                           'near_duplicate_distance', found.near_distance))
                  FROM found
                ON CONFLICT (job_id) DO NOTHING RETURNING job_id
            )
            SELECT exact, near, near_distance, EXISTS (SELECT FROM recorded) AS recorded
              FROM found""",
)


def _page_row(
    url: str, page: dict[str, Any], html_z: bytes, text_z: bytes | None, fingerprint: int | None
) -> tuple[Any, ...]:
    """$1-$12 of both page upserts: the columns of a pages row."""
    return (
        url,
        page["final_url"],
        page["content_hash"],
        page["title"],
        page["language"],
        json.dumps(page["metadata"]),
        html_z,
        pack(page["text"]) if text_z is None else text_z,
        page["metadata"].get("etag"),
        page["metadata"].get("last_modified"),
        None if fingerprint is None else to_signed(fingerprint),
        None if fingerprint is None else _band_keys(fingerprint),
    )


@dataclass(frozen=True)
class StoredPage:
    """The latest stored copy of a page, as the crawler announced it."""

    page: dict[str, Any]
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class Duplicates:
    exact: str | None = None  # another URL with the same content hash
    near: str | None = None  # another URL whose SimHash is within NEAR_DISTANCE bits
    near_distance: int | None = None


def _band_keys(fingerprint: int) -> list[int]:
    # Band values tagged with their position, so band 0 never matches band 2.
    return [i * 65536 + band for i, band in enumerate(bands(fingerprint))]


class PgPageStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    async def crawl_of(self, job_id: str) -> PageCrawled | None:
        row = await self.pool.fetchval("SELECT event FROM crawls WHERE job_id = $1", job_id)
        return None if row is None else PageCrawled.model_validate_json(row)

    async def save_page(
        self,
        url: str,
        page: dict[str, Any],
        html_z: bytes,
        text_z: bytes | None = None,
        fingerprint: int | None = None,
    ) -> None:
        """Keep the latest copy of a page with its SimHash; `html_z` (and `text_z`, else
        page["text"]) already compressed with packing.pack."""
        await self.pool.execute(_SAVE_PAGE, *_page_row(url, page, html_z, text_z, fingerprint))

    async def save_page_finding_duplicates(
        self,
        url: str,
        page: dict[str, Any],
        html_z: bytes,
        text_z: bytes,
        fingerprint: int,
    ) -> Duplicates:
        """duplicates() and then save_page() in one round trip: the other pages with the same
        or nearly the same text, found before this one is kept; the kept metadata is
        page["metadata"] with what they found (duplicate_of, near_duplicate_of,
        near_duplicate_distance), as the caller adds it to its own copy."""
        row = await self.pool.fetchrow(
            _SAVE_PAGE_FINDING_DUPLICATES,
            *_page_row(url, page, html_z, text_z, fingerprint),
            NEAR_DISTANCE,
        )
        return Duplicates(exact=row["exact"], near=row["near"], near_distance=row["near_distance"])

    async def save_page_recording_crawl(
        self,
        url: str,
        page: dict[str, Any],
        html_z: bytes,
        text_z: bytes,
        fingerprint: int,
        crawl: PageCrawled,
    ) -> tuple[Duplicates, bool]:
        """save_page_finding_duplicates() and record_crawl() in one round trip: `crawl` is
        recorded with the duplicates found added to its metadata. Also returns whether it
        was recorded: when not (a delivery recorded the job first), record_crawl() says
        which event stands."""
        row = await self.pool.fetchrow(
            _SAVE_PAGE_RECORDING_CRAWL,
            *_page_row(url, page, html_z, text_z, fingerprint),
            NEAR_DISTANCE,
            crawl.job_id,
            crawl.url,
            crawl.model_dump_json(),
        )
        found = Duplicates(exact=row["exact"], near=row["near"], near_distance=row["near_distance"])
        return found, bool(row["recorded"])

    async def stored_page(self, url: str) -> StoredPage | None:
        """The latest copy of `url`, for a conditional re-crawl."""
        row = await self.pool.fetchrow(
            "SELECT final_url, content_hash, title, language, metadata, text_z, etag,"
            " last_modified FROM pages WHERE url = $1",
            url,
        )
        if row is None:
            return None
        page = {
            "final_url": row["final_url"],
            "title": row["title"],
            "text": unpack(row["text_z"]),
            "language": row["language"],
            "content_hash": row["content_hash"],
            "metadata": json.loads(row["metadata"]),
        }
        return StoredPage(page, row["etag"], row["last_modified"])

    async def touch_page(self, url: str) -> None:
        """The stored copy was confirmed current (304)."""
        await self.pool.execute("UPDATE pages SET fetched_at = now() WHERE url = $1", url)

    async def duplicates(self, url: str, content_hash: str, fingerprint: int) -> Duplicates:
        """Other pages with the same text (hash) or nearly the same (SimHash), in one query:
        the oldest exact one first, then candidates sharing a SimHash band."""
        rows = await self.pool.fetch(
            """
            (SELECT true AS exact, url, simhash FROM pages
              WHERE content_hash = $1 AND url <> $2 ORDER BY fetched_at LIMIT 1)
            UNION ALL
            (SELECT false, url, simhash FROM pages
              WHERE simhash_bands && $3::integer[] AND url <> $2 AND content_hash <> $1
              LIMIT 500)
            """,
            content_hash,
            url,
            _band_keys(fingerprint),
        )
        exact = next((r["url"] for r in rows if r["exact"]), None)
        near = min(
            (
                (distance(fingerprint, from_signed(r["simhash"])), r["url"])
                for r in rows
                if not r["exact"]
            ),
            default=None,
        )
        if near is None or near[0] > NEAR_DISTANCE:
            return Duplicates(exact=exact)
        return Duplicates(exact=exact, near=near[1], near_distance=near[0])

    async def record_crawl(self, event: PageCrawled) -> PageCrawled:
        """The job's crawl result; the first one recorded wins, so redeliveries agree.

        One round trip: the insert (then `event` is the result, not read back), or the row
        already there. A row another transaction committed while this statement waited is not
        in its snapshot: then read it again."""
        row = await self.pool.fetchrow(
            """
            WITH inserted AS (
                INSERT INTO crawls (job_id, url, event) VALUES ($1, $2, $3)
                ON CONFLICT (job_id) DO NOTHING RETURNING NULL::text AS event
            )
            SELECT event FROM inserted
            UNION ALL
            SELECT event::text FROM crawls WHERE job_id = $1
            LIMIT 1
            """,
            event.job_id,
            event.url,
            event.model_dump_json(),
        )
        if row is not None and row["event"] is None:
            return event
        stored = row["event"] if row is not None else None
        if stored is None:
            stored = await self.pool.fetchval(
                "SELECT event FROM crawls WHERE job_id = $1", event.job_id
            )
        return PageCrawled.model_validate_json(stored)

    async def page_text(self, url: str) -> str | None:
        blob = await self.pool.fetchval("SELECT text_z FROM pages WHERE url = $1", url)
        return None if blob is None else unpack(blob)
