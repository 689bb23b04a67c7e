"""Transient failures are retried inside the fetch (tenacity: exponential back-off with jitter,
Retry-After honoured); permanent ones fail at once with their own codes."""

from typing import Any

import pytest

from crawler.addresses import AddressPolicy
from crawler.fetch import FetchedPage, Fetcher, FetchError, FetchLimits
from crawler.metrics import CrawlerMetrics
from seoblog_testing.plugin import unique_name
from seoblog_testing.site import FixtureSite

PAGE = "<!doctype html><html><head><title>Back</title></head><body><p>Back</p></body></html>"
LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])
QUICK = {"attempts": 3, "backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 2.0}


def unique_path() -> str:
    return f"/{unique_name('retry')}"


async def fetch(url: str, metrics: CrawlerMetrics | None = None, **limits: Any) -> FetchedPage:
    async with Fetcher(FetchLimits(**(QUICK | limits)), policy=LOOPBACK, metrics=metrics) as f:
        return await f.fetch(url)


async def fetch_error(url: str, **limits: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch(url, **limits)
    return caught.value


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retried_until_the_page_comes_back(
    fixture_site: FixtureSite, status: int
) -> None:
    path = unique_path()
    fixture_site.route_sequence(
        path, [{"status": status, "body": "down"}, {"status": status}, {"body": PAGE}]
    )
    metrics = CrawlerMetrics()

    page = await fetch(fixture_site.url(path), metrics)

    assert page.html == PAGE
    assert page.attempts == 3
    assert fixture_site.hits(path) == 3
    assert metrics.retries.labels("http_5xx")._value.get() == 2


async def test_5xx_that_persists_fails_retryable_after_the_last_attempt(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(path, status=502, body="bad gateway")

    error = await fetch_error(fixture_site.url(path))

    assert (error.code, error.retryable, error.status) == ("http_5xx", True, 502)
    assert fixture_site.hits(path) == 3


async def test_timeout_is_retried(fixture_site: FixtureSite) -> None:
    path = unique_path()
    fixture_site.route_sequence(path, [{"body": PAGE, "delay_s": 2.0}, {"body": PAGE}])

    page = await fetch(fixture_site.url(path), timeout_s=0.3)

    assert page.html == PAGE
    assert fixture_site.hits(path) == 2


async def test_429_waits_for_retry_after_then_succeeds(fixture_site: FixtureSite) -> None:
    path = unique_path()
    fixture_site.route_sequence(
        path, [{"status": 429, "headers": {"retry-after": "1"}}, {"body": PAGE}]
    )
    metrics = CrawlerMetrics()

    page = await fetch(fixture_site.url(path), metrics, backoff_s=0.0, backoff_max_s=0.0)

    assert page.html == PAGE
    assert fixture_site.hits(path) == 2
    assert metrics.retries.labels("rate_limited")._value.get() == 1


async def test_503_with_retry_after_is_honoured(fixture_site: FixtureSite) -> None:
    path = unique_path()
    fixture_site.route_sequence(
        path, [{"status": 503, "headers": {"retry-after": "1"}}, {"body": PAGE}]
    )

    page = await fetch(fixture_site.url(path))

    assert page.html == PAGE
    assert fixture_site.hits(path) == 2


async def test_retry_after_longer_than_we_wait_fails_at_once_and_leaves_it_to_redelivery(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(path, status=429, headers={"retry-after": "3600"})

    error = await fetch_error(fixture_site.url(path), max_retry_after_s=5)

    assert (error.code, error.retryable, error.retry_after_s) == ("rate_limited", True, 3600)
    assert "retry after 3600 s" in error.message
    assert fixture_site.hits(path) == 1


@pytest.mark.parametrize(
    ("status", "headers", "body", "code"),
    [
        (404, {}, "missing", "not_found"),
        (403, {}, "forbidden", "http_4xx"),
        (200, {"content-type": "application/pdf"}, "%PDF-1.7", "not_html"),
        (200, {"content-length": "999999999"}, "", "too_large"),
    ],
)
async def test_permanent_failures_are_not_retried(
    fixture_site: FixtureSite, status: int, headers: dict[str, str], body: str, code: str
) -> None:
    path = unique_path()
    fixture_site.route(path, status=status, headers=headers, body=body)

    error = await fetch_error(fixture_site.url(path), max_bytes=1000)

    assert (error.code, error.retryable) == (code, False)
    assert fixture_site.hits(path) == 1
