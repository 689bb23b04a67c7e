import asyncio
import pickle
import socket
import time
from typing import Any

import pytest

from crawler.addresses import AddressPolicy
from crawler.fetch import FetchedPage, Fetcher, FetchError, FetchLimits
from seoblog_testing.plugin import unique_name
from seoblog_testing.site import FixtureSite

PAGE = "<!doctype html><html><head><title>Hello</title></head><body><p>Hello</p></body></html>"


def unique_path() -> str:
    return f"/{unique_name('page')}"


LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])


async def fetch(url: str, **limits: Any) -> FetchedPage:
    """One attempt unless told otherwise: retries have tests of their own."""
    limits.setdefault("attempts", 1)
    async with Fetcher(FetchLimits(**limits), policy=LOOPBACK) as fetcher:
        return await fetcher.fetch(url)


async def fetch_error(url: str, **limits: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch(url, **limits)
    return caught.value


async def test_fetch_returns_html_with_status_headers_and_timing(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(path, body=PAGE, headers={"x-served-by": "fixture"})

    page = await fetch(fixture_site.url(path))

    assert page.url == fixture_site.url(path)
    assert page.final_url == fixture_site.url(path)
    assert page.status == 200
    assert page.content_type == "text/html"
    assert page.html == PAGE
    assert page.headers["x-served-by"] == "fixture"
    assert page.elapsed_ms > 0


async def test_fetch_identifies_itself_with_the_configured_user_agent(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(path, body=PAGE)

    await fetch(fixture_site.url(path), user_agent="seoblog-test/1.0")

    assert fixture_site.requests(path)[0]["headers"]["user-agent"] == "seoblog-test/1.0"


@pytest.mark.parametrize(("status", "phrase"), [(404, "Not Found"), (410, "Gone")])
async def test_fetch_reports_not_found_for_404_and_410(
    fixture_site: FixtureSite, status: int, phrase: str
) -> None:
    path = unique_path()
    fixture_site.route(path, status=status, body="missing")

    error = await fetch_error(fixture_site.url(path))

    assert error.code == "not_found"
    assert error.status == status
    assert not error.retryable
    assert error.message == f"The page returned HTTP {status} {phrase}"


async def test_fetch_reports_other_4xx_as_not_retryable(fixture_site: FixtureSite) -> None:
    path = unique_path()
    fixture_site.route(path, status=403, body="go away")

    error = await fetch_error(fixture_site.url(path))

    assert (error.code, error.status, error.retryable) == ("http_4xx", 403, False)
    assert error.message == "The page returned HTTP 403 Forbidden"


async def test_fetch_reports_500_as_retryable(fixture_site: FixtureSite) -> None:
    path = unique_path()
    fixture_site.route(path, status=500, body="oops")

    error = await fetch_error(fixture_site.url(path))

    assert (error.code, error.status, error.retryable) == ("http_5xx", 500, True)
    assert error.message == "The page returned HTTP 500 Internal Server Error"


async def test_fetch_follows_a_redirect_chain_up_to_the_limit(fixture_site: FixtureSite) -> None:
    final = unique_path()
    fixture_site.route(final, body=PAGE)
    start = fixture_site.redirect_chain(unique_path(), hops=3, final=final)[0]

    page = await fetch(fixture_site.url(start), max_redirects=3)

    assert page.url == fixture_site.url(start)
    assert page.final_url == fixture_site.url(final)
    assert page.html == PAGE


async def test_fetch_gives_up_on_a_redirect_chain_over_the_limit(
    fixture_site: FixtureSite,
) -> None:
    final = unique_path()
    fixture_site.route(final, body=PAGE)
    start = fixture_site.redirect_chain(unique_path(), hops=4, final=final)[0]

    error = await fetch_error(fixture_site.url(start), max_redirects=3)

    assert error.code == "too_many_redirects"
    assert error.message == f"Gave up after 3 redirects fetching {fixture_site.url(start)}"
    assert fixture_site.hits(final) == 0


async def test_fetch_refuses_a_redirect_to_something_that_is_not_a_web_address(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(path, status=302, headers={"location": "ftp://files.example.com/a.html"})

    error = await fetch_error(fixture_site.url(path))

    assert error.code == "bad_url"
    assert "ftp://files.example.com/a.html" in error.message


@pytest.mark.parametrize(
    "url", ["ftp://example.com/page", "mailto:jane@example.com", "http://", "example.com/page"]
)
async def test_fetch_rejects_urls_that_are_not_web_addresses(url: str) -> None:
    error = await fetch_error(url)

    assert error.code == "bad_url"
    assert not error.retryable


async def test_fetch_rejects_content_that_is_not_html(fixture_site: FixtureSite) -> None:
    path = unique_path()
    fixture_site.route(path, body=b"%PDF-1.7", headers={"content-type": "application/pdf"})

    error = await fetch_error(fixture_site.url(path))

    assert (error.code, error.status) == ("not_html", 200)
    assert error.message == "The page is application/pdf, not HTML"


async def test_fetch_rejects_a_body_whose_content_length_exceeds_max_bytes(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(path, body=b"<p>" + b"x" * 5_000 + b"</p>")

    error = await fetch_error(fixture_site.url(path), max_bytes=1_000)

    assert error.code == "too_large"
    assert error.message == "The page is larger than the 1 kB limit"


async def test_fetch_stops_reading_a_chunked_body_as_soon_as_it_passes_max_bytes(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    # Two hundred 1 kB chunks 50 ms apart: reading them all would outlast the 3 s deadline,
    # so too_large (not timeout) shows that reading stopped at the limit.
    fixture_site.route(path, chunks=[b"x" * 1_000] * 200, chunk_delay_s=0.05)

    error = await fetch_error(fixture_site.url(path), max_bytes=2_500, timeout_s=3)

    assert error.code == "too_large"


async def test_fetch_times_out_when_the_server_is_slow_to_answer(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(path, body=PAGE, delay_s=2.0)

    error = await fetch_error(fixture_site.url(path), timeout_s=0.3)

    assert (error.code, error.retryable) == ("timeout", True)
    assert error.message == f"Timed out after 0.3 s fetching {fixture_site.url(path)}"


async def test_fetch_times_out_when_the_body_trickles_past_the_deadline(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    # Each chunk arrives well within timeout_s; the whole body does not.
    fixture_site.route(path, chunks=[b"<p>x</p>"] * 20, chunk_delay_s=0.1)

    error = await fetch_error(fixture_site.url(path), timeout_s=0.5)

    assert error.code == "timeout"


async def test_fetch_reports_dns_failure_for_a_host_that_does_not_resolve() -> None:
    error = await fetch_error("http://seoblog-crawler-test.invalid/page")

    assert (error.code, error.retryable, error.status) == ("dns_failure", False, None)
    assert "seoblog-crawler-test.invalid" in error.message


async def test_fetch_reports_connect_failed_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    error = await fetch_error(f"http://127.0.0.1:{port}/")

    assert (error.code, error.retryable) == ("connect_failed", True)
    assert error.message == "Could not connect to 127.0.0.1: Connection refused"


async def test_fetch_decodes_a_latin1_page_with_the_http_charset(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    text = "<p>Café crème, naïve façade, 20 °C</p>"
    fixture_site.route(
        path,
        body=text.encode("latin-1"),
        headers={"content-type": "text/html; charset=ISO-8859-1"},
    )

    page = await fetch(fixture_site.url(path))

    assert page.html == text


async def test_fetch_decodes_with_the_meta_charset_when_http_gives_none(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    text = '<html><head><meta charset="windows-1252"></head><body>Ça coûte 5 €</body></html>'
    fixture_site.route(path, body=text.encode("cp1252"), headers={"content-type": "text/html"})

    page = await fetch(fixture_site.url(path))

    assert page.html == text


async def test_fetch_falls_back_to_utf8_with_replacement_characters(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(
        path, body="<p>naïve ".encode() + b"\xff</p>", headers={"content-type": "text/html"}
    )

    page = await fetch(fixture_site.url(path))

    assert page.html == "<p>naïve \ufffd</p>"


def test_fetch_error_survives_pickling() -> None:
    error = FetchError("http_5xx", "Bad gateway", retryable=True, status=502)

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes

    assert (copy.code, copy.message) == ("http_5xx", "Bad gateway")
    assert (copy.retryable, copy.status) == (True, 502)


async def test_an_attempt_lasts_the_configured_timeout_not_httpx_default_of_5_s(
    fixture_site: FixtureSite,
) -> None:
    slow, slower = unique_path(), unique_path()
    fixture_site.route(slow, body=PAGE, delay_s=5.5)
    fixture_site.route(slower, body=PAGE, delay_s=30)

    async def timed_error(url: str) -> tuple[FetchError, float]:
        started = time.monotonic()
        error = await fetch_error(url, timeout_s=6.5)
        return error, time.monotonic() - started

    page, (error, waited) = await asyncio.gather(
        fetch(fixture_site.url(slow), timeout_s=9), timed_error(fixture_site.url(slower))
    )

    assert page.html == PAGE
    assert error.code == "timeout"
    assert error.message == f"Timed out after 6.5 s fetching {fixture_site.url(slower)}"
    assert waited >= 6.4
