"""The fixture web site: real article pages, crafted responses, redirects and the hit log."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from seoblog_testing.site import FixtureSite, shared_dir


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def test_shared_dir_is_found_beside_the_repository() -> None:
    assert (shared_dir() / "fixtures" / "extraction" / "ground-truth.json").is_file()


def test_shared_dir_can_be_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEOBLOG_SHARED_DIR", str(tmp_path))
    assert shared_dir() == tmp_path
    assert FixtureSite().article_ids() == []


async def test_article_is_served_as_utf8_html_with_its_ground_truth_text(
    site: FixtureSite, http: httpx.AsyncClient
) -> None:
    ids = site.article_ids()
    assert len(ids) == 121
    article_id = ids[0]

    response = await http.get(site.article_url(article_id))

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == site.article_html(article_id)
    body = site.ground_truth(article_id)
    first_words = " ".join(body.split()[:3])
    assert first_words in response.text
    assert site.hits(f"/article/{article_id}") == 1


async def test_unknown_paths_and_articles_are_not_found(
    site: FixtureSite, http: httpx.AsyncClient
) -> None:
    assert (await http.get(site.url("/article/nope"))).status_code == 404
    assert (await http.get(site.url("/elsewhere"))).status_code == 404
    assert site.hits("/article/nope") == 1


async def test_robots_allows_all_by_default_and_can_be_overridden(
    site: FixtureSite, http: httpx.AsyncClient
) -> None:
    default = await http.get(site.url("/robots.txt"))
    assert default.status_code == 200
    assert "Allow: /" in default.text

    site.route(
        "/robots.txt",
        body="User-agent: *\nDisallow: /private\n",
        headers={"Content-Type": "text/plain"},
    )
    overridden = await http.get(site.url("/robots.txt"))
    assert "Disallow: /private" in overridden.text
    assert site.hits("/robots.txt") == 2


async def test_crafted_route_sets_status_headers_and_body(
    site: FixtureSite, http: httpx.AsyncClient
) -> None:
    site.route("/gone", status=410, body="bye", headers={"X-Reason": "removed"})
    site.route("/page?v=2", body=b"<p>two</p>")

    gone = await http.get(site.url("/gone"))
    assert (gone.status_code, gone.text, gone.headers["x-reason"]) == (410, "bye", "removed")
    assert gone.headers["content-type"] == "text/html; charset=utf-8"
    assert (await http.get(site.url("/page?v=2"))).text == "<p>two</p>"
    assert (await http.get(site.url("/page?v=3"))).status_code == 404
    assert site.hits("/page") == 2
    assert [r["query"] for r in site.requests("/page")] == ["v=2", "v=3"]


async def test_delayed_route_trips_a_client_timeout(
    site: FixtureSite, http: httpx.AsyncClient
) -> None:
    site.route("/slow", body="late", delay_s=1.0)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await http.get(site.url("/slow"), timeout=0.2)
    assert time.monotonic() - started < 1.0


async def test_chunked_route_streams_without_content_length(
    site: FixtureSite, http: httpx.AsyncClient
) -> None:
    chunks = [b"x" * 1000] * 5
    site.route("/big", chunks=chunks)

    received: list[bytes] = []
    async with http.stream("GET", site.url("/big")) as response:
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        async for part in response.aiter_raw():
            received.append(part)
    assert b"".join(received) == b"".join(chunks)


async def test_redirect_chain_reaches_the_final_page_after_each_hop(
    site: FixtureSite, http: httpx.AsyncClient
) -> None:
    article_id = site.article_ids()[1]
    final = f"/article/{article_id}"
    sources = site.redirect_chain("/start", hops=3, final=final)

    response = await http.get(site.url("/start"), follow_redirects=True)

    assert response.status_code == 200
    assert response.url == site.url(final)
    assert len(response.history) == 3
    assert all(site.hits(source) == 1 for source in sources)
    assert site.hits(final) == 1


async def test_requests_log_keeps_headers_and_reset_clears_everything(
    site: FixtureSite, http: httpx.AsyncClient
) -> None:
    site.route("/x", body="x")
    await http.get(site.url("/x"), headers={"User-Agent": "seoblog-crawler/1.0"})
    assert site.requests("/x")[0]["headers"]["user-agent"] == "seoblog-crawler/1.0"

    site.reset()

    assert site.hits("/x") == 0
    assert (await http.get(site.url("/x"))).status_code == 404
