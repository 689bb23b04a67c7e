"""The crawler's SQL against a real PostgreSQL: the first crawl result of a job wins, also when
two deliveries record at once; duplicates found in one query."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crawler.packing import pack
from crawler.similarity import simhash
from crawler.store import Duplicates, PgPageStore
from seoblog_contracts import JobSpec, PageCrawled, new_event_id


@pytest.fixture
async def store(infra, namespace) -> AsyncIterator[PgPageStore]:
    store = PgPageStore(infra.database_url, f"{namespace}_crawler", pool_max=4)
    await store.open()
    yield store
    await store.close()


def crawl(job_id: str, title: str) -> PageCrawled:
    return PageCrawled(
        job_id=job_id,
        spec=JobSpec(url="https://example.com/a", keywords=["x"]),
        url="https://example.com/a",
        final_url="https://example.com/a",
        title=title,
        text="text",
        content_hash="0" * 64,
    )


async def test_the_first_recorded_crawl_of_a_job_wins(store: PgPageStore) -> None:
    job_id = new_event_id()

    first = await store.record_crawl(crawl(job_id, "first"))
    second = await store.record_crawl(crawl(job_id, "second"))

    assert (first.title, second.title) == ("first", "first")


async def test_the_recorded_crawl_is_the_one_a_redelivery_reads_back(store: PgPageStore) -> None:
    job_id = new_event_id()
    event = crawl(job_id, "first").model_copy(
        update={"metadata": {"status": 200, "fetch_ms": 12.3, "links": ["https://a.example/"]}}
    )

    recorded = await store.record_crawl(event)

    assert recorded == event == await store.crawl_of(job_id)


async def test_deliveries_recording_at_once_agree(store: PgPageStore) -> None:
    for _ in range(5):
        job_id = new_event_id()

        results = await asyncio.gather(
            *(store.record_crawl(crawl(job_id, f"{n}")) for n in range(4))
        )

        assert len({r.title for r in results}) == 1


async def test_duplicates_finds_the_oldest_exact_copy_and_the_nearest_near_one(
    store: PgPageStore,
) -> None:
    words = [f"word{i}" for i in range(400)]
    text, near_text = " ".join(words), " ".join([*words[:-1], "changed"])

    async def save(url: str, body: str) -> None:
        page = {
            "final_url": url,
            "title": "t",
            "text": body,
            "language": "en",
            "content_hash": str(hash(body)),
            "metadata": {},
        }
        await store.save_page(url, page, pack("<html/>"), None, simhash(body))

    await save("https://a.example/1", text)
    await save("https://a.example/2", text)
    await save("https://a.example/3", near_text)

    found = await store.duplicates("https://a.example/new", str(hash(text)), simhash(text))

    assert found.exact == "https://a.example/1"
    assert found.near == "https://a.example/3"
    assert found.near_distance is not None
    assert found.near_distance <= 3


async def test_saving_a_page_finds_the_duplicates_it_had_before_and_keeps_them(
    store: PgPageStore,
) -> None:
    words = [f"term{i}" for i in range(400)]
    text, near_text = " ".join(words), " ".join([*words[:-1], "changed"])

    def page(url: str, body: str) -> dict[str, Any]:
        return {
            "final_url": url,
            "title": "t",
            "text": body,
            "language": "en",
            "content_hash": str(hash(body)),
            "metadata": {"status": 200},
        }

    found = [
        await store.save_page_finding_duplicates(
            url, page(url, body), pack("<html/>"), pack(body), simhash(body)
        )
        for url, body in [
            ("https://b.example/1", text),
            ("https://b.example/2", near_text),
            ("https://b.example/3", text),
        ]
    ]
    before = await store.duplicates("https://b.example/3", str(hash(text)), simhash(text))
    stored = await store.stored_page("https://b.example/3")

    assert found[0] == Duplicates()
    assert found[1].near == "https://b.example/1"
    assert found[2] == before
    assert found[2].exact == "https://b.example/1"
    assert found[2].near == "https://b.example/2"  # the exact copy is not counted as near
    assert stored is not None
    assert stored.page["text"] == text
    assert stored.page["metadata"] == {
        "status": 200,
        "duplicate_of": "https://b.example/1",
        "near_duplicate_of": "https://b.example/2",
        "near_duplicate_distance": found[2].near_distance,
    }


async def test_saving_a_page_records_the_crawl_with_the_duplicates_in_its_metadata(
    store: PgPageStore,
) -> None:
    text = " ".join(f"word{i}" for i in range(300))
    page = {
        "final_url": "https://c.example/2",
        "title": "t",
        "text": text,
        "language": "en",
        "content_hash": "c" * 64,
        "metadata": {"status": 200, "fetch_ms": 4.5},
    }
    await store.save_page_finding_duplicates(
        "https://c.example/1", page, pack("<html/>"), pack(text), simhash(text)
    )
    job_id = new_event_id()
    event = crawl(job_id, "t").model_copy(update={"metadata": page["metadata"]})

    found, recorded = await store.save_page_recording_crawl(
        "https://c.example/2", page, pack("<html/>"), pack(text), simhash(text), event
    )
    again, recorded_again = await store.save_page_recording_crawl(
        "https://c.example/2", page, pack("<html/>"), pack(text), simhash(text), crawl(job_id, "2")
    )

    assert (recorded, recorded_again) == (True, False)
    assert found.exact == again.exact == "https://c.example/1"
    dups = {"duplicate_of": "https://c.example/1", "near_duplicate_of": None}
    expected = event.model_copy(
        update={"metadata": page["metadata"] | dups | {"near_duplicate_distance": None}}
    )
    assert await store.crawl_of(job_id) == expected  # the first delivery's, duplicates added
    assert await store.record_crawl(crawl(job_id, "3")) == expected
