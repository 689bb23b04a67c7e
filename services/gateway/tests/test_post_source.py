"""GET /v1/posts/{id}/source: the article a post was written from, read from a real crawler
(in-process, behind uvicorn, over its real store) that crawled a fixture page; the post's
owner (and admins) see it, another key does not; a crawler that does not answer is a 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from courlan import normalize_url

from crawler.app import create_app as create_crawler
from crawler.settings import Settings as CrawlerSettings
from seoblog_testing import settings_for, wait_until
from seoblog_testing.processes import free_port

ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"  # about Europa


@asynccontextmanager
async def crawler_served(service_env: dict[str, str]) -> AsyncIterator[str]:
    settings = settings_for(
        CrawlerSettings, service_env, extract_workers=1, allowed_networks=["127.0.0.0/8"]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_crawler(settings),
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_config=None,
            access_log=False,
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout_s=30)
        assert server.started, "the crawler did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def key(client, *scopes: str) -> dict[str, str]:
    created = await client.post("/v1/keys", json={"name": "reader", "scopes": list(scopes)})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def test_the_owner_reads_the_crawled_source_of_a_post(
    service_env, jobs, bus, events, fixture_site
) -> None:
    url = fixture_site.article_url(ARTICLE)
    async with (
        crawler_served(service_env) as crawler_url,
        jobs.in_process(jobs.settings(service_env, crawler_url=crawler_url)) as (_, gateway),
    ):
        gateway.headers.update(jobs.admin)
        writer = await key(gateway, "jobs:write", "jobs:read")
        other = await key(gateway, "jobs:read")
        submitted = await gateway.post("/v1/jobs", json=jobs.good | {"url": url}, headers=writer)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        # The real crawler crawls and stores the page; the post stands in for the rest.
        await wait_until(lambda: events.of("page.crawled", job_id), timeout_s=30)
        post = jobs.post(job_id, source_url=normalize_url(url))
        await bus.publish(post)
        await jobs.wait_for_state(gateway, job_id, "completed")

        path = f"/v1/posts/{post.post_id}/source"
        mine = await gateway.get(path, headers=writer)
        as_admin = await gateway.get(path)
        theirs = await gateway.get(path, headers=other)
        nobody = await gateway.get(path, headers={"Authorization": "Bearer sk_seo_nope"})
        missing = await gateway.get("/v1/posts/01JNOSUCHPOST0000000000000/source")

    assert mine.status_code == 200, mine.text
    source = mine.json()
    assert source["post_id"] == post.post_id
    assert source["url"] == normalize_url(url)
    assert "Europa" in source["text"]
    assert source["exact"] is True  # the job's own crawl result
    assert source["title"]
    assert source["fetched_at"]
    assert as_admin.json() == source
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "post_not_found"
    assert nobody.status_code == 401
    assert missing.status_code == 404


async def test_a_source_the_crawler_does_not_keep_is_a_404(
    service_env, jobs, bus, events, fixture_site
) -> None:
    async with (
        crawler_served(service_env) as crawler_url,
        jobs.in_process(jobs.settings(service_env, crawler_url=crawler_url)) as (_, gateway),
    ):
        gateway.headers.update(jobs.admin)
        # A page the crawler can fetch here: one it cannot (an outside site, or any site with
        # no network) fails the job before the post comes, and a failed job stays failed.
        job = await jobs.submit(gateway, url=fixture_site.article_url(ARTICLE))
        await wait_until(lambda: events.of("page.crawled", job["id"]), timeout_s=30)
        post = jobs.post(job["id"], source_url="https://example.com/never-crawled")
        await bus.publish(post)
        await jobs.wait_for_state(gateway, job["id"], "completed")

        response = await gateway.get(f"/v1/posts/{post.post_id}/source")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "source_not_found"


async def test_a_crawler_that_does_not_answer_is_a_503(service_env, jobs, bus) -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}"
    settings = jobs.settings(service_env, crawler_url=nothing_there, source_timeout_s=0.5)
    async with jobs.in_process(settings) as (_, gateway):
        gateway.headers.update(jobs.admin)
        job = await jobs.submit(gateway)
        post = jobs.post(job["id"])
        await bus.publish(post)
        await jobs.wait_for_state(gateway, job["id"], "completed")

        response = await gateway.get(f"/v1/posts/{post.post_id}/source")
        the_post = await gateway.get(f"/v1/posts/{post.post_id}")

    assert response.status_code == 503
    body = response.json()["error"]
    assert body["code"] == "source_unavailable"
    assert "crawler" in body["message"]
    assert response.headers["retry-after"]
    assert the_post.status_code == 200  # the post itself is unaffected
