"""The crawler in-process with its real lifespan (NATS, PostgreSQL, Redis) against the
fixture web site."""

from collections.abc import AsyncIterator

import pytest

from crawler.app import create_app
from crawler.settings import Settings
from seoblog_contracts import JobSpec, JobSubmitted, PageCrawled, new_event_id
from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing import settings_for, unique_name, wait_until

ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"


@pytest.fixture
async def crawler(service_env) -> AsyncIterator[None]:
    app = create_app(settings_for(Settings, service_env, extract_workers=1, fetch_timeout_s=2))
    async with app.router.lifespan_context(app):
        yield


@pytest.fixture
async def bus(service_env) -> AsyncIterator[Bus]:
    probe = Bus(settings_for(ServiceSettings, service_env, service="probe"))
    await probe.broker.connect()
    yield probe
    await probe.stop()


def job(url: str) -> JobSubmitted:
    return JobSubmitted(job_id=new_event_id(), spec=JobSpec(url=url, keywords=["Europa"]))


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


async def test_timeout_is_retried_then_fails_with_timeout_code(crawler, bus, events, fixture_site):
    path = f"/slow/{unique_name()}"
    fixture_site.route(
        path, body=b"<html></html>", headers={"content-type": "text/html"}, delay_s=5
    )
    submitted = job(fixture_site.url(path))
    await bus.publish(submitted)
    await wait_until(lambda: events.of("job.failed", submitted.job_id), timeout_s=40)
    failed = events.of("job.failed", submitted.job_id)[0].data
    assert failed["code"] == "timeout"
    assert failed["retryable"] is True
    assert fixture_site.hits(path) == 3  # max_deliver in the test settings
    assert events.of("dlq.job.submitted.normal")
