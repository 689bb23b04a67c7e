"""The web app against the real system: the five services as processes (open mode, the fake LLM
as the only stand-in) and the fixture site, driven in headless Chromium. Submit -> live progress
-> the post with its full SEO report; a failed job and its retry; the library's search; the
keyboard; a phone-sized screen. SEOBLOG_SCREENSHOTS=docs/screenshots keeps the screenshots."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from seoblog_testing import drop_namespace, env_for, unique_name
from seoblog_testing.fake_llm import default_responder
from seoblog_testing.processes import Stack, running_stack

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"  # NASA, Europa
KEYWORD = "water plumes"
ACTIVE = ("queued", "crawling", "translating", "generating")

_SECTIONS = {
    "What the telescopes saw over Europa": (
        "Astronomers pointed the Hubble Space Telescope at Europa many times. "
        "On several passes they saw faint water plumes rising above the icy surface. "
        "The signal was weak, so the team checked it against older images. "
        "Ultraviolet light from Jupiter made the vapour glow for a short moment. "
        "Each sighting lasted only a few hours before it faded again."
    ),
    "Why water plumes matter for life": (
        "Europa hides a salty ocean under a shell of ice many kilometres thick. "
        "If water escapes through cracks, a probe could sample that ocean from orbit. "
        "No drill would be needed to learn what the water contains. "
        "Scientists want to know whether the ocean has the chemistry that life needs. "
        "Salt, heat and organic molecules are the first things they will look for."
    ),
    "What Europa Clipper will do next": (
        "NASA launched the Europa Clipper mission to study the moon up close. "
        "The spacecraft will fly past Europa dozens of times during its tour. "
        "Its cameras will map the surface in great detail. "
        "Radar will look through the ice to find pockets of liquid water. "
        "Other instruments will taste the thin gas around the moon."
    ),
}


def post_writer(request: dict) -> str:
    """The fake LLM's post: a plausible, mostly well-optimised article about Europa."""
    fmt = request.get("response_format") or {}
    if fmt.get("type") != "json_schema":
        return default_responder(request)
    body = "Water plumes on Europa may let us study a hidden ocean without landing. " + (
        "This post explains what was seen, why it matters and what comes next.\n\n"
    )
    body += "\n\n".join(f"## {h}\n\n{t}" for h, t in _SECTIONS.items())
    return json.dumps(
        {
            "title": "Water plumes on Europa: what NASA saw and why it matters",
            "slug": "water-plumes-europa",
            "meta_description": "Hubble saw water plumes above Europa's ice. What they tell us "
            "about the ocean below, and how Europa Clipper will study them.",
            "outline": list(_SECTIONS),
            "markdown": body,
            "faq": [
                {
                    "question": "Are there water plumes on Europa?",
                    "answer": "Hubble saw signs of them several times.",
                },
                {
                    "question": "Will a spacecraft visit Europa?",
                    "answer": "Yes, Europa Clipper will fly past it dozens of times.",
                },
            ],
            "key_takeaways": [
                "Hubble saw faint plumes of water vapour above Europa",
                "The plumes may carry water from the ocean under the ice",
                "Europa Clipper will study the moon up close",
            ],
        }
    )


@pytest.fixture(scope="module")
def stack(infra, fake_llm) -> Iterator[Stack]:
    ns = unique_name()
    env = env_for(infra, ns) | {
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_API_KEY": fake_llm.api_key,
        "LLM_MODEL": "fake-model",
    }
    with running_stack(env) as found:
        yield found
    asyncio.run(drop_namespace(infra, ns))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield found
        await found.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: SEOBLOG_SCREENSHOTS (the README's docs/screenshots) or tmp."""
    wanted = os.environ.get("SEOBLOG_SCREENSHOTS")
    return Path(wanted) if wanted else tmp_path


def watch(page: Page) -> list[str]:
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # The app asks for /v1/experiments once to know whether to show the page: a 404 is fine.
        probe = "/v1/experiments" in (message.location or {}).get("url", "")
        if message.type == "error" and not probe:
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


async def no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390 px"


async def test_submit_watch_and_read_the_full_report(stack, fixture_site, fake_llm, browser, shots):
    fake_llm.responder = post_writer
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    problems = watch(page)
    await page.goto(stack.gateway + "/")
    await page.fill("#url", fixture_site.article_url(ARTICLE))
    await page.fill("#keywords", f"{KEYWORD}, Europa")
    await page.fill("#language", "ko")
    await expect(page.locator("#language-name")).to_have_text("Korean")
    await page.fill("#length", "300")
    await page.screenshot(path=shots / "webapp-write.png")
    fake_llm.latency_s = 1.0  # slow enough to see the job running
    try:
        await page.click("#submit")
        await expect(page).to_have_url(re.compile("#/jobs/[0-9a-f]{32}$"))
        job_id = await page.locator("#job-id").inner_text()
        assert len(job_id) == 32
        await expect(page.locator("#state")).to_have_text(
            re.compile("translating|generating"), timeout=30_000
        )
        running = await page.locator("#bar").get_attribute("aria-valuenow")
        assert 0 < int(running or 0) < 100
        await expect(page.locator("#steps li.now")).to_have_count(1)
        await page.screenshot(path=shots / "webapp-progress.png")
        await expect(page.locator("#state")).to_have_text("completed", timeout=60_000)
    finally:
        fake_llm.latency_s = 0.0
    assert await page.locator("#bar").get_attribute("aria-valuenow") == "100"
    states = await page.locator("#history li").all_text_contents()
    assert [s.split(" ")[0] for s in states] == [
        "queued",
        "crawling",
        "translating",
        "generating",
        "completed",
    ]

    await page.click("#open-post")
    await expect(page.locator("#post-title")).to_contain_text("Water plumes on Europa")
    await expect(page.locator("#post-meta")).to_contain_text("Korean (ko)")
    checks = page.locator("#checks li.check")
    await expect(checks).to_have_count(12)  # every check of services/generator seo.py
    failed = page.locator("#checks li.check.fail")
    for i in range(await failed.count()):  # each failed check: its reason and how to fix it
        await expect(failed.nth(i).locator(".check-reason")).not_to_be_empty()
        await expect(failed.nth(i).locator(".check-fix")).to_contain_text("How to fix")
    meta = page.locator('#checks li[data-check="meta_length_ok"]')
    await expect(meta).to_have_class("check fail")  # the fake post's meta is 124 characters
    await expect(meta.locator(".check-reason")).to_contain_text("124 characters")
    await expect(page.locator('#checks li[data-check="keyword_in_title"]')).to_have_class(
        "check pass"
    )
    await expect(page.locator("#sub-scores li")).to_have_count(4)
    await expect(page.locator("#count-title")).to_contain_text("/ 60")
    await expect(page.locator("#count-meta")).to_contain_text("124 / 160")
    await expect(page.locator("#count-slug")).to_contain_text("water-plumes-europa")
    await expect(page.locator("#snippet-url")).to_contain_text("water-plumes-europa")
    outline = await page.locator("#outline li").all_inner_texts()
    assert "H2 What the telescopes saw over Europa" in outline
    await expect(page.locator("#takeaways li")).to_have_count(3)
    await expect(page.locator("#faq dt").first).to_have_text("Are there water plumes on Europa?")
    ld = await page.locator("#jsonld").inner_text()
    assert '"@type": "FAQPage"' in ld
    assert '"inLanguage": "ko"' in ld
    tokens = await page.locator("#usage dd").first.inner_text()
    assert int(tokens) > 0
    rendered = page.frame_locator("#post-rendered")
    await expect(rendered.locator("h2").first).to_have_text("What the telescopes saw over Europa")
    await page.screenshot(
        path=shots / "webapp-post.png",
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": 1500},
    )

    await page.click("#tab-source")
    await expect(page.locator("#source-url")).to_have_text(fixture_site.article_url(ARTICLE))
    # The crawled article beside the post, read from the crawler through the gateway.
    await expect(page.locator("#source-text")).to_contain_text("Europa")
    await expect(page.locator("#source-title")).not_to_be_empty()
    assert problems == []
    await page.close()


async def test_a_failed_job_shows_failed_with_its_error_and_retry_runs_it_again(
    stack, fixture_site, browser, shots
):
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    problems = watch(page)
    missing = fixture_site.url("/no/such/page")
    await page.goto(stack.gateway + "/")
    await page.fill("#url", missing)
    await page.fill("#keywords", "anything")
    await page.click("#submit")
    await expect(page.locator("#state")).to_have_text("failed", timeout=30_000)
    first = await page.locator("#job-id").inner_text()
    await expect(page.locator("#bar")).to_have_class("bar failed")
    await expect(page.locator("#bar")).to_have_attribute("aria-valuetext", "failed")
    color = await page.evaluate(
        "getComputedStyle(document.querySelector('#bar > span')).backgroundColor"
    )
    assert color == "rgb(217, 48, 37)"  # red, not the blue of a running job
    await expect(page.locator("#error-code")).to_have_text("not_found")
    await expect(page.locator("#error-message")).to_contain_text("404")
    await expect(page.locator("#steps li.fail")).to_have_text("Crawl")
    await page.screenshot(path=shots / "webapp-failed.png")

    await page.click("#retry")
    await expect(page.locator("#job-id")).not_to_have_text(first)
    second = await page.locator("#job-id").inner_text()
    async with httpx.AsyncClient() as client:
        retried = (await client.get(f"{stack.gateway}/v1/jobs/{second}")).json()
    assert retried["spec"]["url"] == missing
    assert retried["spec"]["keywords"] == ["anything"]
    await expect(page.locator("#state")).to_have_text("failed", timeout=30_000)

    await page.goto(stack.gateway + "/#/jobs")
    await page.click('#job-filters button[data-filter="failed"]')
    rows = page.locator("#job-list li.job-item")
    await expect(rows.first).to_be_visible()
    assert set(
        await page.locator("#job-list li.job-item").evaluate_all(
            "rows => rows.map(r => r.dataset.state)"
        )
    ) == {"failed"}
    await expect(page.locator(f'#job-list li[data-id="{second}"] .item-error')).to_contain_text(
        "not_found"
    )
    assert problems == []
    await page.close()


async def submit(stack: Stack, body: dict) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(f"{stack.gateway}/v1/jobs", json=body | {"max_age": 0})
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


async def test_the_jobs_list_updates_live(stack, fixture_site, fake_llm, browser, shots):
    fake_llm.responder = post_writer
    spec = {"url": fixture_site.article_url(ARTICLE), "keywords": [KEYWORD], "length": 300}
    fake_llm.latency_s = 6.0  # two LLM calls: the job runs for 12 s or more
    try:
        running = await submit(stack, spec | {"target_language": "fr"})
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        problems = watch(page)
        await page.goto(stack.gateway + "/#/jobs")
        row = page.locator(f'#job-list li[data-id="{running}"]')
        await expect(row).to_be_visible()
        assert await row.get_attribute("data-state") in ACTIVE
        # No reload from here: the WebSocket brings the job to its end.
        await expect(row).to_have_attribute("data-state", "completed", timeout=60_000)
    finally:
        fake_llm.latency_s = 0.0
    await expect(row.locator("a.button")).to_have_text("Post")
    await expect(row.locator(".item-meta")).to_contain_text(" tokens · $")
    # A job submitted elsewhere joins the list without a reload.
    later = await submit(stack, spec | {"target_language": "es"})
    await expect(page.locator(f'#job-list li[data-id="{later}"]')).to_be_visible(timeout=20_000)
    first = await page.locator("#job-list li.job-item").first.get_attribute("data-id")
    assert first == later
    await expect(page.locator(f'#job-list li[data-id="{later}"]')).to_have_attribute(
        "data-state", "completed", timeout=60_000
    )
    await page.screenshot(path=shots / "webapp-jobs.png")
    assert problems == []
    await page.close()


async def test_the_library_search_finds_a_post(stack, fixture_site, fake_llm, browser, shots):
    fake_llm.responder = post_writer
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            f"{stack.gateway}/v1/jobs",
            json={"url": fixture_site.article_url(ARTICLE), "keywords": [KEYWORD], "length": 300},
        )
        job_id = answer.json()["id"]
        for _ in range(300):
            job = (await client.get(f"{stack.gateway}/v1/jobs/{job_id}")).json()
            if job["state"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
    assert job["state"] == "completed", job
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    problems = watch(page)
    await page.goto(stack.gateway + "/#/posts")
    await page.fill("#posts-q", '"europa clipper" hubble')
    await page.press("#posts-q", "Enter")
    await expect(page.locator("#posts-count")).to_contain_text("match")
    found = page.locator(f'#post-list a[href="#/posts/{job["post_id"]}"]')
    await expect(found).to_have_text("Water plumes on Europa: what NASA saw and why it matters")
    await page.screenshot(path=shots / "webapp-library.png")
    await page.fill("#posts-language", "de")  # the post is in English: none in German
    await page.press("#posts-q", "Enter")
    await expect(page.locator("#posts-count")).to_contain_text("0 posts in German (de) match")
    await page.fill("#posts-language", "en")
    await page.press("#posts-q", "Enter")
    await expect(found).to_be_visible()
    await page.fill("#posts-language", "")
    await page.fill("#posts-q", "zebrafishmarathon")
    await page.press("#posts-q", "Enter")
    await expect(page.locator("#post-list li")).to_have_count(0)
    await expect(page.locator("#posts-count")).to_contain_text("0 posts match")
    await found.count()
    assert problems == []
    await page.close()


async def test_the_keyboard_reaches_the_tabs_and_the_submit_button(stack, browser):
    page = await browser.new_page()
    await page.goto(stack.gateway + "/")
    reached: list[str] = []
    for _ in range(25):
        await page.keyboard.press("Tab")
        reached.append(
            await page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
        if reached[-1] == "submit":
            break
    navigation = [r for r in reached if r.startswith("nav-")]
    assert navigation[:3] == ["nav-write", "nav-jobs", "nav-posts"]
    assert navigation[3:] == ["nav-experiments"]  # open mode is admin: experiments are shown
    assert reached.index("url") < reached.index("keywords") < reached.index("language")
    assert reached[-1] == "submit"
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus ring
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # submitting an empty form: the browser asks for the URL
    assert await page.evaluate("document.activeElement.id") == "url"
    await page.close()


async def test_a_phone_screen_has_no_horizontal_scroll(
    stack, fixture_site, fake_llm, browser, shots
):
    fake_llm.responder = post_writer
    async with httpx.AsyncClient(timeout=10) as client:
        posts = (await client.get(f"{stack.gateway}/v1/posts")).json()["data"]
        if not posts:
            answer = await client.post(
                f"{stack.gateway}/v1/jobs",
                json={"url": fixture_site.article_url(ARTICLE), "keywords": [KEYWORD]},
            )
            job_id = answer.json()["id"]
            for _ in range(300):
                job = (await client.get(f"{stack.gateway}/v1/jobs/{job_id}")).json()
                if job["post_id"]:
                    break
                await asyncio.sleep(0.2)
            posts = (await client.get(f"{stack.gateway}/v1/posts")).json()["data"]
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = await context.new_page()
    job, post = f"#/jobs/{posts[0]['job_id']}", f"#/posts/{posts[0]['id']}"
    views = ("#/", "#/jobs", job, "#/posts", "#/experiments", post)
    for hash_ in views:
        await page.goto(stack.gateway + "/" + hash_)
        await page.wait_for_load_state("networkidle")
        await no_horizontal_scroll(page)
    await expect(page.locator("#checks li.check").first).to_be_visible()
    await page.locator("#report-title").scroll_into_view_if_needed()
    await page.evaluate("window.scrollBy(0, -12)")
    await page.screenshot(path=shots / "webapp-phone.png")
    await context.close()
