"""Posts: list newest first, full-text search by keyword, language and date, with cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seoblog_contracts import PostGenerated, SeoReport, Usage, new_event_id


async def publish_post(gateway, jobs, bus, **overrides: object) -> PostGenerated:
    job = await jobs.submit(gateway, max_age=0)  # the same request each time: no cached result
    values: dict = {
        "job_id": job["id"],
        "post_id": new_event_id(),
        "source_url": "https://example.com/post",
        "language": "en",
        "title": "A post",
        "slug": "a-post",
        "meta_description": "about something",
        "markdown": "Nothing in particular.",
        "html": "<p>Nothing in particular.</p>",
        "keywords": ["misc"],
        "seo": SeoReport(score=60),
        "writer": "offline",
        "usage": Usage(),
    }
    post = PostGenerated(**(values | overrides))
    await bus.publish(post)
    await jobs.wait_for_state(gateway, job["id"], "completed")
    return post


async def test_search_finds_posts_by_words_in_title_keywords_and_body(gateway, jobs, bus):
    europa = await publish_post(
        gateway,
        jobs,
        bus,
        title="Water plumes on Europa",
        markdown="NASA saw vapour rising above the ice of Jupiter's moon.",
        keywords=["europa", "nasa"],
    )
    seoul = await publish_post(
        gateway,
        jobs,
        bus,
        title="서울 여행 가이드",
        language="ko",
        markdown="서울 에서 가볼 만한 곳",
        keywords=["서울", "여행"],
    )
    remote = await publish_post(
        gateway, jobs, bus, title="Remote work", markdown="Working from home, Jupiter aside."
    )

    async def ids(**params: object) -> list[str]:
        response = await gateway.get("/v1/posts", params=params)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()["data"]]

    assert await ids(q="plumes") == [europa.post_id]
    assert await ids(q="서울") == [seoul.post_id]
    assert set(await ids(q="jupiter")) == {europa.post_id, remote.post_id}
    assert await ids(q="jupiter -vapour") == [remote.post_id]
    assert await ids(q="europa") == [europa.post_id]  # the keyword and the title rank it first
    assert await ids(language="ko") == [seoul.post_id]
    assert await ids() == [remote.post_id, seoul.post_id, europa.post_id]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await ids(created_before=tomorrow, language="en") == [remote.post_id, europa.post_id]
    assert await ids(created_after=tomorrow) == []
    found = (await gateway.get("/v1/posts", params={"q": "plumes"})).json()["data"][0]
    assert found["rank"] > 0
    assert found["links"]["self"] == f"/v1/posts/{europa.post_id}"


async def test_post_lists_page_with_cursors(gateway, jobs, bus):
    made = [await publish_post(gateway, jobs, bus, title=f"Cursor post {i}") for i in range(3)]
    for params in ({}, {"q": "cursor"}):
        seen: list[str] = []
        cursor = None
        while True:
            page = (
                await gateway.get(
                    "/v1/posts",
                    params=params | {"limit": 2} | ({"cursor": cursor} if cursor else {}),
                )
            ).json()
            seen += [p["id"] for p in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(p.post_id for p in made)
        assert len(seen) == 3


async def test_post_formats_and_bad_search_input(gateway, jobs, bus):
    post = await publish_post(gateway, jobs, bus, title="Formats", markdown="Body **bold**.")
    markdown = await gateway.get(f"/v1/posts/{post.post_id}", params={"format": "markdown"})
    assert markdown.text == "# Formats\n\nBody **bold**.\n"
    assert markdown.headers["content-type"].startswith("text/markdown")
    as_json = (await gateway.get(f"/v1/posts/{post.post_id}")).json()
    assert as_json["title"] == "Formats"
    assert (await gateway.get("/v1/posts", params={"language": "Korean!"})).status_code == 422
    assert (await gateway.get("/v1/posts", params={"q": "x" * 500})).status_code == 422
    odd = await gateway.get("/v1/posts", params={"q": "!!! & | ( :*"})
    assert odd.status_code == 200  # websearch syntax never errors


async def test_a_post_as_html_is_a_document_in_the_language_it_is_written_in(gateway, jobs, bus):
    # Offline, a post asked for in Korean is written in the article's English: the document
    # says en, and its title is text, not markup.
    post = await publish_post(
        gateway,
        jobs,
        bus,
        language="en",
        requested_language="ko",
        title="Fish & <chips>",
    )
    html = (await gateway.get(f"/v1/posts/{post.post_id}", params={"format": "html"})).text
    assert html.startswith('<!doctype html>\n<html lang="en">')
    assert "<title>Fish &amp; &lt;chips&gt;</title>" in html
    assert "<p>Nothing in particular.</p>" in html
    body = (await gateway.get(f"/v1/posts/{post.post_id}")).json()
    assert (body["language"], body["requested_language"]) == ("en", "ko")
