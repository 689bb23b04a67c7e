"""The web page in headless Chromium (Debian's, driven by playwright): submit an article, watch
the job live, read the post rendered and as markdown, and copy it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from seoblog_contracts import JobProgress, PostGenerated, SeoReport, Stage, Usage, new_event_id

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before the browser starts
        pytest.fail("Chromium is missing: `make browser` installs Debian's chromium")
    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield found
        await found.close()


async def test_the_page_submits_a_job_shows_it_live_and_shows_and_copies_the_post(
    live_gateway, jobs, bus, browser
):
    _, url = live_gateway
    context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    await page.goto(url + "/")
    await page.fill("#url", "https://example.com/blog/europa")
    await page.fill("#keywords", "europa, water plumes")
    await page.fill("#language", "ko")
    await page.fill("#api-key", jobs.admin_key)
    await page.click("#submit")
    await expect(page.locator("#state")).to_have_text("queued")
    job_id = await page.locator("#job-id").inner_text()
    assert len(job_id) == 32

    await bus.publish(JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=40, message="fetching"))
    await expect(page.locator("#state")).to_have_text("crawling")
    await expect(page.locator("#stage")).to_contain_text("40%")

    post = PostGenerated(
        job_id=job_id,
        post_id=new_event_id(),
        source_url="https://example.com/blog/europa",
        language="ko",
        title="유로파의 물기둥",
        slug="europa-plumes",
        meta_description="유로파에서 물기둥이 관측되었다.",
        markdown="유로파에서 **물기둥**이 관측되었다.\n\n## 발견\n\n허블 망원경.",
        html="<p>유로파에서 <strong>물기둥</strong>이 관측되었다.</p>"
        "<h2>발견</h2><p>허블 망원경.</p>",
        keywords=["europa", "water plumes"],
        seo=SeoReport(score=81),
        writer="offline",
        usage=Usage(),
    )
    await bus.publish(post)
    await expect(page.locator("#state")).to_have_text("completed")
    await expect(page.locator("#post-title")).to_have_text(post.title)
    await expect(page.locator("#post-meta")).to_contain_text("81/100")
    rendered = page.frame_locator("#post-rendered")
    await expect(rendered.locator("h2")).to_have_text("발견")

    await page.click("#show-markdown")
    markdown = page.locator("#post-markdown")
    await expect(markdown).to_be_visible()
    await expect(markdown).to_contain_text("## 발견")
    await page.click("#copy-markdown")
    await expect(page.locator("#copy-status")).to_have_text("Copied")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == f"# {post.title}\n\n{post.markdown}"
    await page.click("#copy-html")
    assert await page.evaluate("navigator.clipboard.readText()") == post.html
    assert problems == []
    await context.close()


async def test_the_page_shows_an_error_for_a_bad_url_and_a_failed_job(live_gateway, jobs, browser):
    _, url = live_gateway
    page = await browser.new_page()
    await page.goto(url + "/")
    await page.fill("#url", "https://example.com/a")
    await page.fill("#language", "Korean")
    await page.fill("#api-key", "sk_seo_wrong")
    await page.evaluate("document.querySelector('#submit-form').noValidate = true")
    await page.click("#submit")
    await expect(page.locator("#form-error")).to_contain_text("invalid_api_key")
    await page.fill("#api-key", jobs.admin_key)
    await page.click("#submit")
    await expect(page.locator("#form-error")).to_contain_text("target_language")
    await page.close()


async def test_the_gateway_serves_the_event_contract_without_a_key(gateway_app):
    from seoblog_contracts.asyncapi import document

    _, client = gateway_app
    answer = await client.get("/asyncapi.json", headers={"Authorization": ""})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == document()
    assert answer.json()["asyncapi"] == "3.0.0"
