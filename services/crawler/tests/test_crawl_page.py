"""The crawler in-process with its real lifespan (NATS, PostgreSQL, Redis) against the
fixture web site."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from crawler.app import create_app
from crawler.settings import Settings
from seoblog_contracts import JobSpec, JobSubmitted, PageCrawled, Priority, new_event_id
from seoblog_testing import running_app, settings_for, unique_name, wait_until

ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"


def crawler_settings(service_env: dict[str, str], **overrides: Any) -> Settings:
    """Loopback allowed (the test sites), hosts unthrottled, one fetch attempt per delivery."""
    values: dict[str, Any] = {
        "extract_workers": 1,
        "fetch_timeout_s": 2,
        "fetch_attempts": 1,
        "allowed_networks": ["127.0.0.0/8"],
        "host_rate_per_s": 1000,
        "host_burst": 100,
        "host_concurrency": 16,
    }
    settings: Settings = settings_for(Settings, service_env, **(values | overrides))
    return settings


def running(settings: Settings) -> Any:
    return running_app(create_app(settings))


@pytest.fixture
async def crawler(service_env) -> AsyncIterator[FastAPI]:
    async with running(crawler_settings(service_env)) as app:
        yield app


def job(url: str, priority: Priority = Priority.NORMAL) -> JobSubmitted:
    return JobSubmitted(
        job_id=new_event_id(), spec=JobSpec(url=url, keywords=["Europa"], priority=priority)
    )


async def crawled(events: Any, submitted: JobSubmitted) -> PageCrawled:
    await wait_until(lambda: events.of("page.crawled", submitted.job_id), timeout_s=30)
    return PageCrawled.model_validate(events.of("page.crawled", submitted.job_id)[0].data)


async def failed(events: Any, submitted: JobSubmitted) -> dict[str, Any]:
    await wait_until(lambda: events.of("job.failed", submitted.job_id), timeout_s=30)
    data: dict[str, Any] = events.of("job.failed", submitted.job_id)[0].data
    return data


async def test_crawled_page_carries_the_extracted_article(crawler, bus, events, fixture_site):
    submitted = job(fixture_site.article_url(ARTICLE))
    await bus.publish(submitted)
    await wait_until(lambda: events.of("page.crawled", submitted.job_id), timeout_s=30)
    page = PageCrawled.model_validate(events.of("page.crawled", submitted.job_id)[0].data)
    assert "Europa" in page.text
    assert page.title
    assert page.from_cache is False
    assert len(page.content_hash) == 64
    progress = [e.data["percent"] for e in events.of("job.progress", submitted.job_id)]
    assert progress[0] == 0


async def test_second_job_for_the_same_url_is_served_from_cache(crawler, bus, events, fixture_site):
    path = f"/cached/{unique_name()}"
    fixture_site.route(
        path,
        body=fixture_site.article_html(ARTICLE),
        headers={"content-type": "text/html; charset=utf-8"},
    )
    first, second = job(fixture_site.url(path)), job(fixture_site.url(path))
    await bus.publish(first)
    await wait_until(lambda: events.of("page.crawled", first.job_id), timeout_s=30)
    await bus.publish(second)
    await wait_until(lambda: events.of("page.crawled", second.job_id), timeout_s=30)
    assert events.of("page.crawled", second.job_id)[0].data["from_cache"] is True
    assert fixture_site.hits(path) == 1


async def test_redelivered_submission_produces_the_same_crawl_event(
    crawler, bus, events, fixture_site
):
    submitted = job(fixture_site.article_url(ARTICLE))
    await bus.publish(submitted)
    await wait_until(lambda: events.of("page.crawled", submitted.job_id), timeout_s=30)
    await bus.publish(submitted.model_copy(update={"event_id": new_event_id()}))
    await wait_until(lambda: len(events.of("job.progress", submitted.job_id)) >= 1)
    crawled = {e.data["event_id"] for e in events.of("page.crawled", submitted.job_id)}
    assert len(crawled) == 1


@pytest.mark.parametrize(
    ("status", "headers", "body", "code"),
    [
        (404, {"content-type": "text/html"}, b"<p>gone</p>", "not_found"),
        (200, {"content-type": "application/pdf"}, b"%PDF-1.4", "not_html"),
        (
            200,
            {"content-type": "text/html"},
            b"<html><head><title>x</title></head><body></body></html>",
            "no_content",
        ),
    ],
)
async def test_pages_that_cannot_be_had_fail_the_job_with_a_distinct_code(
    crawler, bus, events, fixture_site, status, headers, body, code
):
    path = f"/bad/{unique_name()}"
    fixture_site.route(path, status=status, body=body, headers=headers)
    submitted = job(fixture_site.url(path))
    await bus.publish(submitted)
    await wait_until(lambda: events.of("job.failed", submitted.job_id), timeout_s=30)
    failed = events.of("job.failed", submitted.job_id)[0].data
    assert failed["code"] == code
    assert failed["stage"] == "crawl"
    assert failed["message"]
    assert not events.of("page.crawled", submitted.job_id)


async def test_unresolvable_host_fails_with_dns_failure(crawler, bus, events):
    submitted = job("http://no-such-host.invalid/article")
    await bus.publish(submitted)
    await wait_until(lambda: events.of("job.failed", submitted.job_id), timeout_s=30)
    assert events.of("job.failed", submitted.job_id)[0].data["code"] == "dns_failure"


async def test_timeout_is_retried_then_fails_with_timeout_code(
    service_env, bus, events, fixture_site
):
    path = f"/slow/{unique_name()}"
    fixture_site.route(
        path, body=b"<html></html>", headers={"content-type": "text/html"}, delay_s=5
    )
    submitted = job(fixture_site.url(path))
    async with running(crawler_settings(service_env, fetch_timeout_s=0.5)):
        await bus.publish(submitted)
        await wait_until(lambda: events.of("job.failed", submitted.job_id), timeout_s=40)
        await wait_until(lambda: events.of("dlq.job.submitted.normal"))
    error = events.of("job.failed", submitted.job_id)[0].data
    assert error["code"] == "timeout"
    assert error["retryable"] is True
    assert fixture_site.hits(path) == 3  # max_deliver in the test settings


async def test_crawler_refuses_an_internal_address_without_an_allowlist(
    service_env, bus, events, fixture_site
):
    path = f"/internal/{unique_name()}"
    fixture_site.route(path, body=fixture_site.article_html(ARTICLE))
    async with running(crawler_settings(service_env, allowed_networks=[])):
        submitted = job(f"http://0x7f.0.0.1:{fixture_site.server.port}{path}")
        await bus.publish(submitted)
        error = await failed(events, submitted)

    assert (error["code"], error["retryable"]) == ("blocked_address", False)
    assert "loopback" in error["message"]
    assert fixture_site.hits(path) == 0


async def test_page_disallowed_by_robots_txt_fails_with_robots_denied(
    crawler, bus, events, own_site
):
    own_site.route("/robots.txt", body="User-agent: seoblog-crawler\nDisallow: /article/\n")
    submitted = job(own_site.article_url(ARTICLE))
    await bus.publish(submitted)

    error = await failed(events, submitted)

    assert (error["code"], error["retryable"]) == ("robots_denied", False)
    assert own_site.hits(f"/article/{ARTICLE}") == 0


async def test_recrawl_after_the_ttl_is_conditional_and_reuses_the_page_on_304(
    service_env, bus, events, fixture_site
):
    path = f"/etag/{unique_name()}"
    html = fixture_site.article_html(ARTICLE)
    validators = {"etag": '"v1"', "last-modified": "Wed, 21 Oct 2026 07:28:00 GMT"}

    async def conditional(request: Request) -> Response:
        if request.headers.get("if-none-match") == validators["etag"]:
            return Response(status_code=304, headers=validators)
        return Response(html, media_type="text/html; charset=utf-8", headers=validators)

    fixture_site.route_handler(path, conditional)
    # A page TTL this short makes every stored page stale: the second job must revalidate.
    async with running(crawler_settings(service_env, page_ttl_s=0.001)):
        first, second = job(fixture_site.url(path)), job(fixture_site.url(path))
        await bus.publish(first)
        fresh = await crawled(events, first)
        await bus.publish(second)
        again = await crawled(events, second)

    revalidation = fixture_site.requests(path)[1]["headers"]
    assert revalidation["if-none-match"] == '"v1"'
    assert revalidation["if-modified-since"] == validators["last-modified"]
    assert fixture_site.hits(path) == 2
    assert (fresh.from_cache, fresh.metadata["not_modified"]) == (False, False)
    assert (again.from_cache, again.metadata["not_modified"]) == (True, True)
    assert (again.text, again.content_hash) == (fresh.text, fresh.content_hash)


async def test_identical_and_near_duplicate_pages_are_recognised(
    crawler, bus, events, fixture_site
):
    html = fixture_site.article_html(ARTICLE).decode()
    original, copy, edited = (f"/dup/{unique_name()}" for _ in range(3))
    fixture_site.route(original, body=html)
    fixture_site.route(copy, body=html)
    fixture_site.route(edited, body=html.replace("lead researcher", "senior researcher", 1))
    pages = []
    for path in (original, copy, edited):
        submitted = job(fixture_site.url(path))
        await bus.publish(submitted)
        pages.append(await crawled(events, submitted))
    first, same, near = pages

    assert first.metadata["duplicate_of"] is None
    assert same.metadata["duplicate_of"] == fixture_site.url(original)
    assert same.content_hash == first.content_hash
    assert near.content_hash != first.content_hash
    assert near.metadata["near_duplicate_of"] in (
        fixture_site.url(original),
        fixture_site.url(copy),
    )
    assert near.metadata["near_duplicate_distance"] <= 3


async def test_every_job_records_the_crawl_event_it_published_duplicates_included(
    crawler, bus, events, fixture_site
):
    path = f"/recorded/{unique_name()}"
    fixture_site.route(path, body=fixture_site.article_html(ARTICLE))
    fetched, cached, copy = (
        job(fixture_site.url(path)),
        job(fixture_site.url(path)),
        job(fixture_site.article_url(ARTICLE) + f"?copy={unique_name()}"),
    )
    published = []
    for submitted in (fetched, cached, copy):
        await bus.publish(submitted)
        published.append(await crawled(events, submitted))
    store = crawler.state.crawl_page.parts.store

    recorded = [await store.crawl_of(j.job_id) for j in (fetched, cached, copy)]

    assert recorded == published
    assert [p.from_cache for p in published] == [False, True, False]
    assert published[2].metadata["duplicate_of"] is not None  # the same article, stored first


async def test_a_latin1_page_is_decoded_by_its_http_charset_in_the_extraction_process(
    crawler, bus, events, fixture_site
):
    path = f"/latin1/{unique_name()}"
    words = "Le café crème de la façade est naïf, et le thé à 20 °C reste très agréable."
    html = f"<html><head><title>Café</title></head><body><article><p>{words * 6}</p></article>"
    fixture_site.route(
        path,
        body=(html + "</body></html>").encode("latin-1"),
        headers={"content-type": "text/html; charset=ISO-8859-1"},
    )
    submitted = job(fixture_site.url(path))

    await bus.publish(submitted)
    page = await crawled(events, submitted)
    stored = await crawler.state.crawl_page.parts.store.stored_page(page.url)

    assert words in page.text
    assert stored is not None
    assert stored.page["text"] == page.text


async def test_concurrent_jobs_for_one_url_on_two_crawler_instances_fetch_it_once(
    service_env, events, fixture_site
):
    path = f"/flight/{unique_name()}"
    fixture_site.route(path, body=fixture_site.article_html(ARTICLE), delay_s=0.5)
    settings = crawler_settings(service_env)
    async with running(settings) as one, running(settings) as other:
        jobs = [job(fixture_site.url(path)) for _ in range(4)]
        handlers = [one.state.crawl_page, other.state.crawl_page] * 2
        await asyncio.gather(*(handle(j) for handle, j in zip(handlers, jobs, strict=True)))
        pages = [await crawled(events, j) for j in jobs]

    assert fixture_site.hits(path) == 1
    assert sorted(p.from_cache for p in pages) == [False, True, True, True]
    assert len({p.content_hash for p in pages}) == 1


@pytest.mark.slow
async def test_backlog_is_served_high_before_normal_before_low_without_starving_low(
    service_env, bus, events, fixture_site
):
    # One slot, held by a slow page while the backlog arrives: the order in which the
    # waiting jobs then get the slot is the scheduler's alone, not the consumers' start-up.
    blocker_path = f"/blocker/{unique_name()}"
    fixture_site.route(blocker_path, body=fixture_site.article_html(ARTICLE), delay_s=2.0)
    url = fixture_site.article_url(ARTICLE)
    settings = crawler_settings(
        service_env, global_concurrency=1, starvation_limit=3, fetch_timeout_s=10
    )
    async with running(settings):
        blocker = job(fixture_site.url(blocker_path), Priority.HIGH)
        await bus.publish(blocker)
        await wait_until(lambda: fixture_site.hits(blocker_path) == 1, timeout_s=30)
        priority_of: dict[str, Priority] = {}
        for priority in (Priority.LOW, Priority.NORMAL, Priority.HIGH):  # worst order first
            for _ in range(6):
                submitted = job(url, priority)
                priority_of[submitted.job_id] = priority
                await bus.publish(submitted)
        await wait_until(lambda: len(events.of("page.crawled")) == 19, timeout_s=60)

    order = [
        priority_of[e.data["job_id"]]
        for e in events.of("page.crawled")
        if e.data["job_id"] != blocker.job_id
    ]
    mean = {p: sum(i for i, q in enumerate(order) if q == p) / 6 for p in Priority}
    assert mean[Priority.HIGH] < mean[Priority.NORMAL] < mean[Priority.LOW]
    last_high = max(i for i, q in enumerate(order) if q == Priority.HIGH)
    assert order.index(Priority.LOW) < last_high  # low got slots while high still waited


async def test_metrics_show_fetches_bytes_cache_hits_and_extraction(
    crawler, bus, events, fixture_site
):
    path = f"/metrics/{unique_name()}"
    fixture_site.route(path, body=fixture_site.article_html(ARTICLE))
    for _ in range(2):
        submitted = job(fixture_site.url(path))
        await bus.publish(submitted)
        await crawled(events, submitted)
    missing = job(fixture_site.url(f"/missing/{unique_name()}"))
    await bus.publish(missing)
    await failed(events, missing)

    transport = httpx.ASGITransport(app=crawler)
    async with httpx.AsyncClient(transport=transport, base_url="http://crawler") as client:
        text = (await client.get("/metrics")).text

    assert 'crawler_pages_fetched_total{status="2xx"}' in text
    assert 'crawler_bytes_fetched_total{kind="wire"}' in text
    assert "crawler_page_cache_hits_total 1.0" in text
    assert 'crawler_failures_total{code="not_found"} 1.0' in text
    assert "crawler_extraction_seconds_count 1.0" in text
    assert 'crawler_robots_fetched_total{outcome="ok"} 1.0' in text
