"""GET /v1/pages?url=…: the stored copy of a page the crawler extracted, read back from its
real store (the gateway shows it beside a post)."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from crawler.app import create_app
from crawler.settings import Settings
from seoblog_contracts import JobSpec, JobSubmitted, new_event_id
from seoblog_testing import running_app, settings_for, wait_until

ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"  # about Europa


@pytest.fixture
async def crawler(service_env) -> AsyncIterator[FastAPI]:
    settings = settings_for(
        Settings, service_env, extract_workers=1, allowed_networks=["127.0.0.0/8"]
    )
    async with running_app(create_app(settings)) as app:
        yield app


def job(url: str) -> JobSubmitted:
    return JobSubmitted(job_id=new_event_id(), spec=JobSpec(url=url, keywords=["Europa"]))


async def test_a_crawled_page_is_read_back_by_url(crawler, bus, events, fixture_site) -> None:
    url = fixture_site.article_url(ARTICLE)
    submitted = job(url)
    await bus.publish(submitted)
    await wait_until(lambda: events.of("page.crawled", submitted.job_id), timeout_s=30)
    crawled = events.of("page.crawled", submitted.job_id)[0].data

    transport = httpx.ASGITransport(app=crawler)
    async with httpx.AsyncClient(transport=transport, base_url="http://crawler") as client:
        found = await client.get("/v1/pages", params={"url": url})
        normalised = await client.get("/v1/pages", params={"url": crawled["url"]})
        unknown = await client.get("/v1/pages", params={"url": fixture_site.url("/never")})
        bad = await client.get("/v1/pages", params={"url": "ftp://example.com/x"})

    assert found.status_code == 200, found.text
    page = found.json()
    assert page["text"] == crawled["text"]  # decompressed from the store
    assert "Europa" in page["text"]
    assert page["title"] == crawled["title"]
    assert page["url"] == crawled["url"]
    assert page["final_url"] == crawled["final_url"]
    assert page["language"] == crawled["language"]
    assert page["fetched_at"]
    assert page["exact"] is False  # no job named: the URL's stored copy
    assert normalised.json() == page
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "page_not_found"
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "bad_url"


async def test_with_a_job_id_it_is_that_jobs_text_after_a_recrawl_changed_the_page(
    service_env, bus, events, fixture_site
) -> None:
    path = f"/changing/{new_event_id()}"
    first_html, second_html = (fixture_site.article_html(a) for a in fixture_site.article_ids()[:2])
    settings = settings_for(
        Settings,
        service_env,
        extract_workers=1,
        allowed_networks=["127.0.0.0/8"],
        page_ttl_s=0.01,  # the second job fetches again
    )
    async with running_app(create_app(settings)) as crawler:
        crawled = []
        for html in (first_html, second_html):
            fixture_site.route(path, body=html)
            submitted = job(fixture_site.url(path))
            await bus.publish(submitted)
            await wait_until(lambda s=submitted: events.of("page.crawled", s.job_id), timeout_s=30)
            crawled.append(events.of("page.crawled", submitted.job_id)[0].data)
        first, second = crawled
        assert first["text"] != second["text"]

        transport = httpx.ASGITransport(app=crawler)
        async with httpx.AsyncClient(transport=transport, base_url="http://crawler") as client:
            url = fixture_site.url(path)
            of_first = (
                await client.get("/v1/pages", params={"url": url, "job_id": first["job_id"]})
            ).json()
            latest = (await client.get("/v1/pages", params={"url": url})).json()
            unknown_job = (
                await client.get("/v1/pages", params={"url": url, "job_id": "nope"})
            ).json()

    assert (of_first["text"], of_first["title"], of_first["exact"]) == (
        first["text"],
        first["title"],
        True,
    )
    assert (latest["text"], latest["exact"]) == (second["text"], False)
    assert (unknown_job["text"], unknown_job["exact"]) == (second["text"], False)
