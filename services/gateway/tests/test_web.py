"""The web app in headless Chromium (Debian's, driven by playwright) against the gateway in this
process, with the pipeline's events published by the test: a job followed live, the post with
its SEO report, cancel and retry, errors, safe rendering, the static files and their CSP.
test_web_app.py runs the same app against the whole system."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from gateway.schemas import Post
from seoblog_contracts import (
    JobFailed,
    JobProgress,
    PostGenerated,
    SeoReport,
    Stage,
    Usage,
    new_event_id,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

REPORT = SeoReport(
    score=81,
    checks={
        "keyword_in_title": True,
        "keyword_in_first_paragraph": True,
        "keyword_in_heading": False,
        "keyword_in_slug": True,
        "keyword_in_meta": True,
        "keyword_density_ok": False,
        "length_ok": True,
        "title_length_ok": False,
        "meta_length_ok": True,
        "heading_structure_ok": True,
        "readability_ok": True,
        "originality": True,
    },
    reasons=[
        'main keyword "europa" is in no H2-H6 heading',
        'keyword density 2.6% is above 2.5% (13 uses of "europa" in 500 words)',
        "title is 8 characters, outside 50-60",
    ],
)
HTML = (
    "<p>유로파에서 <strong>물기둥</strong>이 관측되었다.</p><h2>발견</h2><p>허블 망원경.</p>"
    "<h2>요점</h2><ul><li>물기둥이 있다</li><li>바다가 있다</li></ul>"
    '<script type="application/ld+json">{"@context":"https://schema.org","@type":"Article",'
    '"headline":"유로파","inLanguage":"ko"}</script>'
    '<script type="application/ld+json">{"@context":"https://schema.org","@type":"FAQPage",'
    '"mainEntity":[{"@type":"Question","name":"물이 있나?","acceptedAnswer":{"@type":"Answer",'
    '"text":"있다."}}]}</script>'
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before the browser starts
        pytest.fail("Chromium is missing: `make browser` installs Debian's chromium")
    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield found
        await found.close()


def watch(page: Page) -> list[str]:
    """Console errors and uncaught exceptions; the app's one probe of /v1/experiments may 404."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        probe = "/v1/experiments" in (message.location or {}).get("url", "")
        if message.type == "error" and not probe:
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


async def use_key(page: Page, key: str) -> None:
    await page.click("#key-box summary")
    await page.fill("#api-key", key)
    await page.click("#save-key")


def post_for(job_id: str, **overrides: object) -> PostGenerated:
    values: dict[str, object] = {
        "job_id": job_id,
        "post_id": new_event_id(),
        "source_url": "https://example.com/blog/europa",
        "language": "ko",
        "title": "유로파의 물기둥",
        "slug": "europa-plumes",
        "meta_description": "유로파에서 물기둥이 관측되었다.",
        "markdown": "유로파에서 **물기둥**이 관측되었다.\n\n## 발견\n\n허블 망원경.",
        "html": HTML,
        "keywords": ["europa", "water plumes"],
        "seo": REPORT,
        "writer": "llm:gpt-4o-mini",
        "usage": Usage(prompt_tokens=5120, completion_tokens=1400, calls=3, cost_usd=0.0016),
    }
    return PostGenerated(**(values | overrides))  # type: ignore[arg-type]


async def test_the_app_follows_a_job_live_and_shows_the_post_with_its_report(
    live_gateway, jobs, bus, browser
):
    _, url = live_gateway
    context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    problems = watch(page)
    await page.goto(url + "/")
    await use_key(page, jobs.admin_key)
    await page.fill("#url", "https://example.com/blog/europa")
    await page.fill("#keywords", "europa, water plumes")
    await page.fill("#language", "ko")
    await expect(page.locator("#language-name")).to_have_text("Korean")
    await page.click("#submit")
    await expect(page.locator("#state")).to_have_text("queued")
    job_id = await page.locator("#job-id").inner_text()
    assert len(job_id) == 32
    assert page.url.endswith(f"#/jobs/{job_id}")

    await bus.publish(JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=40, message="fetching"))
    await expect(page.locator("#state")).to_have_text("crawling")
    await expect(page.locator("#stage")).to_contain_text("40% fetching")
    await expect(page.locator("#steps li.now")).to_have_text("Crawl")
    await expect(page.locator("#bar")).to_have_attribute("aria-valuenow", "35")  # 1.4 of 4
    await expect(page.locator("#live")).to_have_attribute("aria-live", "polite")

    post = post_for(job_id)
    await bus.publish(post)
    await expect(page.locator("#state")).to_have_text("completed")
    await expect(page.locator("#bar")).to_have_attribute("aria-valuenow", "100")
    await page.click("#open-post")
    await expect(page.locator("#post-title")).to_have_text(post.title)
    await expect(page.locator("#post-meta")).to_contain_text("81/100")
    await expect(page.locator("#post-meta")).to_contain_text("Korean (ko)")

    # Every check, pass or fail; each failure with its reason and how to fix it.
    await expect(page.locator("#checks li.check")).to_have_count(12)
    await expect(page.locator("#checks li.check.fail")).to_have_count(3)
    density = page.locator('#checks li[data-check="keyword_density_ok"]')
    await expect(density.locator(".check-reason")).to_have_text(REPORT.reasons[1])
    await expect(density.locator(".check-fix")).to_contain_text("synonyms")
    heading = page.locator('#checks li[data-check="keyword_in_heading"]')
    await expect(heading.locator(".check-reason")).to_have_text(REPORT.reasons[0])
    await expect(page.locator('#checks li[data-check="originality"]')).to_have_class("check pass")
    # Sub-scores by the generator's weights: title & meta 12 + 8 + 8 + 6 of 42 -> 81.
    subs = await page.locator("#sub-scores li").all_inner_texts()
    assert [s.split("\n")[:2] for s in subs] == [
        ["Title & meta", "81"],
        ["Content & keywords", "69"],
        ["Structure & readability", "68"],
        ["Originality", "100"],
    ]
    # The search result preview and its counters.
    await expect(page.locator("#snippet-title-text")).to_have_text(post.title)
    await expect(page.locator("#snippet-url")).to_contain_text("europa-plumes")
    await expect(page.locator("#count-title .count")).to_have_text("8 / 60")
    await expect(page.locator("#count-title .count")).to_have_class("count under")
    await expect(page.locator("#count-meta .count")).to_have_text(
        f"{len(post.meta_description)} / 160"
    )
    await expect(page.locator("#count-slug .count")).to_have_class("count ok")
    # Outline, key takeaways, FAQ, JSON-LD, tokens and cost.
    await expect(page.locator("#outline li")).to_have_text(["H2 발견", "H2 요점"])
    await expect(page.locator("#takeaways li")).to_have_text(["물기둥이 있다", "바다가 있다"])
    await expect(page.locator("#faq dt")).to_have_text(["물이 있나?"])
    await expect(page.locator("#faq dd")).to_have_text(["있다."])
    await expect(page.locator("#jsonld")).to_contain_text('"@type": "FAQPage"')
    usage = await page.locator("#usage dd").all_inner_texts()
    assert usage == ["5120", "1400", "3", "$0.0016"]

    rendered = page.frame_locator("#post-rendered")
    await expect(rendered.locator("h2").first).to_have_text("발견")
    assert await page.get_attribute("#post-rendered", "sandbox") == ""
    await page.click("#tab-markdown")
    await expect(page.locator("#post-markdown")).to_be_visible()
    await expect(page.locator("#post-markdown")).to_contain_text("## 발견")
    await page.click("#copy-markdown")
    await expect(page.locator("#copy-status")).to_have_text("Copied")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == f"# {post.title}\n\n{post.markdown}"
    await page.click("#copy-html")
    async with httpx.AsyncClient(base_url=url, headers=jobs.admin) as client:
        served = (await client.get(f"/v1/posts/{post.post_id}")).json()["html"]
    assert await page.evaluate("navigator.clipboard.readText()") == served
    await page.click("#tab-source")
    await expect(page.locator("#source-url")).to_have_attribute("href", post.source_url)
    # No crawler runs here: the tab says the article could not be loaded (test_web_app.py
    # shows it loaded), and the browser logs the 503.
    await expect(page.locator("#source-none")).to_contain_text("source_unavailable")
    problems.remove(
        "Failed to load resource: the server responded with a status of 503 (Service Unavailable)"
    )
    # The post's tabs follow the ARIA tabs pattern: arrow keys move between them.
    await page.focus("#tab-source")
    await page.keyboard.press("ArrowLeft")
    await expect(page.locator("#tab-markdown")).to_be_focused()
    await expect(page.locator("#tab-markdown")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#panel-markdown")).to_be_visible()
    await page.keyboard.press("Home")
    await expect(page.locator("#tab-rendered")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#panel-source")).to_be_hidden()
    assert problems == []
    await context.close()


async def test_a_failed_job_is_red_with_its_code_and_retry_resubmits_the_spec(
    live_gateway, jobs, bus, browser
):
    app, url = live_gateway
    page = await browser.new_page()
    problems = watch(page)
    await page.goto(url + "/")
    await use_key(page, jobs.admin_key)
    await page.fill("#url", "https://example.com/blog/gone")
    await page.fill("#keywords", "gone")
    await page.fill("#language", "de")
    await page.fill("#length", "500")
    await page.click("#submit")
    await expect(page.locator("#state")).to_have_text("queued")
    job_id = await page.locator("#job-id").inner_text()
    await bus.publish(JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=10))
    await expect(page.locator("#state")).to_have_text("crawling")
    await bus.publish(
        JobFailed(job_id=job_id, stage=Stage.CRAWL, code="not_found", message="HTTP 404")
    )
    await expect(page.locator("#state")).to_have_text("failed")
    await expect(page.locator("#bar")).to_have_class("bar failed")
    assert int(await page.get_attribute("#bar", "aria-valuenow") or 100) < 100
    await expect(page.locator("#bar")).to_have_attribute("aria-valuetext", "failed")
    await expect(page.locator("#steps li.fail")).to_have_text("Crawl")
    await expect(page.locator("#error-code")).to_have_text("not_found")
    await expect(page.locator("#error-message")).to_have_text("HTTP 404")
    await expect(page.locator("#cancel")).to_be_hidden()

    await page.click("#retry")
    await expect(page.locator("#job-id")).not_to_have_text(job_id)
    await expect(page.locator("#state")).to_have_text("queued")
    retried = await page.locator("#job-id").inner_text()
    store = app.state.parts.store
    old, new = await store.job(job_id), await store.job(retried)
    assert old is not None
    assert new is not None
    assert new["spec"] == old["spec"]  # the same url, keywords, language and length

    await page.click("#cancel")
    await expect(page.locator("#state")).to_have_text("cancelled")
    await expect(page.locator("#retry")).to_be_visible()
    await expect(page.locator("#again-form")).to_be_visible()
    await page.fill("#again-keywords", "other words")
    await page.fill("#again-language", "fr")
    await page.click("#again")
    await expect(page.locator("#job-id")).not_to_have_text(retried)
    again = await store.job(await page.locator("#job-id").inner_text())
    assert again is not None
    spec = json.loads(again["spec"])
    assert spec["target_language"] == "fr"
    assert spec["keywords"] == ["other words"]
    assert spec["url"] == "https://example.com/blog/gone"
    assert spec["length"] == 500
    assert problems == []
    await page.close()


async def test_the_app_shows_api_errors_and_checks_the_language(live_gateway, jobs, browser):
    _, url = live_gateway
    page = await browser.new_page()
    await page.goto(url + "/")
    await page.fill("#url", "https://example.com/a")
    await page.fill("#language", "zz")
    await expect(page.locator("#language-name")).to_have_text("Unknown language code")
    assert not await page.evaluate("document.querySelector('#language').checkValidity()")
    await page.fill("#language", "pt-BR")
    await expect(page.locator("#language-name")).to_have_text("Brazilian Portuguese")
    options = await page.locator("#languages option").count()
    assert options > 30

    await use_key(page, "sk_seo_wrong")
    await page.click("#submit")
    await expect(page.locator("#form-error")).to_contain_text("invalid_api_key")
    await use_key(page, jobs.admin_key)
    await page.fill("#language", "Korean")
    await page.evaluate("document.querySelector('#submit-form').noValidate = true")
    await page.click("#submit")
    await expect(page.locator("#form-error")).to_contain_text("target_language")
    await page.close()


async def test_api_text_is_shown_as_text_never_as_markup(live_gateway, jobs, bus, browser):
    _, url = live_gateway
    page = await browser.new_page()
    problems = watch(page)
    await page.goto(url + "/")
    await use_key(page, jobs.admin_key)
    await page.fill("#url", "https://example.com/x")
    await page.click("#submit")
    await expect(page.locator("#state")).to_have_text("queued")
    job_id = await page.locator("#job-id").inner_text()
    evil = '<img src=x onerror="window.pwned=1">'
    post = post_for(
        job_id,
        title=f"Title {evil}",
        meta_description=evil,
        keywords=[evil],
        html=f"<p>ok</p><h2>{evil.replace('<', '&lt;')}</h2>",
        seo=SeoReport(score=10, checks={"keyword_in_title": False}, reasons=[evil]),
    )
    await bus.publish(post)
    await expect(page.locator("#state")).to_have_text("completed")
    await page.click("#open-post")
    await expect(page.locator("#post-title")).to_have_text(post.title)
    await expect(page.locator("#snippet-desc")).to_have_text(evil)
    assert await page.locator("#view-post img").count() == 0
    assert await page.evaluate("window.pwned") is None
    await page.goto(url + "/#/posts")
    await expect(page.locator("#post-list li").first).to_contain_text(evil)
    assert await page.locator("#post-list img").count() == 0
    assert await page.evaluate("window.pwned") is None
    assert problems == []
    await page.close()


@pytest.mark.skipif(
    "requested_language" not in Post.model_fields, reason="the API's post has no requested_language"
)
async def test_a_post_in_another_language_than_asked_says_so(live_gateway, jobs, bus, browser):
    _, url = live_gateway
    page = await browser.new_page()
    await page.goto(url + "/")
    await use_key(page, jobs.admin_key)
    await page.fill("#url", "https://example.com/x")
    await page.fill("#language", "ko")
    await page.click("#submit")
    await expect(page.locator("#state")).to_have_text("queued")
    job_id = await page.locator("#job-id").inner_text()
    await bus.publish(post_for(job_id, language="en", requested_language="ko", writer="offline"))
    await expect(page.locator("#state")).to_have_text("completed")
    await page.click("#open-post")
    notice = page.locator("#post-language")
    await expect(notice).to_contain_text("Requested Korean (ko), written in English (en)")
    await page.close()


async def test_the_experiments_page_lists_experiments_and_compares_the_arms(
    live_gateway, jobs, browser
):
    _, url = live_gateway
    async with httpx.AsyncClient(base_url=url, headers=jobs.admin) as client:
        created = await client.post(
            "/v1/experiments",
            json={
                "id": "prompt-v2",
                "description": "Try the v2 post prompt on 10 % of low-priority jobs",
                "variants": [
                    {
                        "name": "v2",
                        "share": 10,
                        "overrides": {"generator.prompt_version": "post_v2"},
                    }
                ],
                "targeting": {"priorities": ["low"]},
            },
        )
        assert created.status_code == 201, created.text
    page = await browser.new_page()
    problems = watch(page)
    await page.goto(url + "/")
    nav = page.locator("#nav-experiments")
    await expect(nav).to_be_hidden()  # without a key the API answers 401: no page
    await use_key(page, jobs.admin_key)
    await expect(nav).to_be_visible()
    await nav.click()
    item = page.locator('#experiment-list li[data-id="prompt-v2"]')
    await expect(item).to_contain_text("running")
    await expect(item).to_contain_text("v2 10 %")
    await item.locator("a").click()
    await expect(page.locator("#experiments-title")).to_have_text("Experiment prompt-v2")
    await expect(page.locator("#experiment-meta")).to_contain_text("control: control")
    heads = await page.locator("#experiment-table thead th").all_inner_texts()
    assert heads[1:] == ["control (control)", "v2"]
    rows = await page.locator("#experiment-table tbody th").all_inner_texts()
    assert rows[:4] == ["Share", "Jobs", "Completed", "Failed"]
    assert "seo score" in [r.lower() for r in rows]
    shots = os.environ.get("SEOBLOG_SCREENSHOTS")
    if shots:
        await page.screenshot(path=Path(shots) / "webapp-experiment.png")
    assert problems == []
    await page.close()


async def test_the_gateway_serves_the_app_with_a_strict_csp(gateway_app):
    _, client = gateway_app
    page = await client.get("/", headers={"Authorization": ""})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert '<script src="/web/app.js"' in page.text
    assert not re.search(r'(src|href)="(https?:)?//', page.text)  # nothing from a CDN
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = await client.get(f"/web/{name}", headers={"Authorization": ""})
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert "innerHTML" not in asset.text
    for bad in ("/web/index.html", "/web/..%2Fapp.py", "/web/nope.js"):
        assert (await client.get(bad, headers={"Authorization": ""})).status_code == 404


async def test_the_gateway_serves_the_event_contract_without_a_key(gateway_app):
    from seoblog_contracts.asyncapi import document

    _, client = gateway_app
    answer = await client.get("/asyncapi.json", headers={"Authorization": ""})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == document()
    assert answer.json()["asyncapi"] == "3.0.0"
