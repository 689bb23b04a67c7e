"""The generator in-process with its real lifespan (NATS, PostgreSQL, Redis) and the fake LLM."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from generator.app import create_app
from generator.settings import Settings
from seoblog_contracts import JobSpec, PostGenerated, Priority, TextTranslated, Usage, new_event_id
from seoblog_testing import fake_llm_settings, running_app, settings_for, wait_until

GROUND_TRUTH = Path(__file__).resolve().parents[3].parent / "shared/fixtures/extraction"
ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"


def article_text() -> str:
    truth = json.loads((GROUND_TRUTH / "ground-truth.json").read_text())
    return str(truth[ARTICLE]["articleBody"])


def running(settings: Settings) -> Any:
    return running_app(create_app(settings))


@pytest.fixture
async def offline_generator(service_env) -> AsyncIterator[None]:
    async with running(settings_for(Settings, service_env)):
        yield


@pytest.fixture
async def llm_generator(service_env, fake_llm) -> AsyncIterator[None]:
    fake_llm.reset()
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        revise_below=0,  # one call per post; the revision pass has tests of its own
    )
    async with running(settings):
        yield


def text_translated(keywords: list[str] | None = None, text: str | None = None):
    return TextTranslated(
        job_id=new_event_id(),
        spec=JobSpec(
            url="https://example.com/a",
            keywords=keywords or ["water plumes"],
            target_language="en",
            length=400,
        ),
        source_url="https://example.com/a",
        title="NASA finds water plumes above Europa",
        text=text or article_text(),
        source_language="en",
        target_language="en",
        translated=False,
        content_hash=new_event_id(),
        usage=Usage(prompt_tokens=10, completion_tokens=5, calls=1, cost_usd=0.001),
    )


async def generated(events, job_id: str) -> PostGenerated:
    await wait_until(lambda: events.of("post.generated", job_id), timeout_s=20)
    return PostGenerated.model_validate(events.of("post.generated", job_id)[0].data)


async def test_offline_writer_post_is_labelled_scored_and_rendered(offline_generator, bus, events):
    event = text_translated()
    await bus.publish(event)
    post = await generated(events, event.job_id)
    assert post.writer == "offline"
    assert "offline" in post.markdown.splitlines()[0].lower()
    assert "water plumes" in post.title.lower()
    assert "<h2" in post.html
    assert "application/ld+json" in post.html
    assert 0 < post.seo.score <= 100
    assert post.usage == event.usage  # the job's earlier usage carries through; no new calls


async def test_llm_post_reports_usage_and_cost_of_the_whole_job(
    llm_generator, bus, events, fake_llm
):
    event = text_translated()
    await bus.publish(event)
    post = await generated(events, event.job_id)
    assert post.writer == "llm:fake-llm"
    assert len(fake_llm.requests) == 1
    assert fake_llm.requests[0]["stream"] is True
    assert post.usage.calls == 2
    assert post.usage.prompt_tokens > event.usage.prompt_tokens
    assert post.usage.cost_usd > event.usage.cost_usd


async def test_redelivery_makes_no_second_post_and_no_second_llm_call(
    llm_generator, bus, events, fake_llm, pg, namespace
):
    event = text_translated(keywords=["Europa ocean"])
    await bus.publish(event)
    first = await generated(events, event.job_id)
    await bus.publish(event.model_copy(update={"event_id": new_event_id()}))
    await wait_until(lambda: len(events.of("post.generated", event.job_id)) >= 2, timeout_s=20)
    ids = {e.data["event_id"] for e in events.of("post.generated", event.job_id)}
    assert ids == {first.event_id}
    assert len(fake_llm.requests) == 1
    schema = f"{namespace}_generator"
    assert await pg.fetchval(f'SELECT count(*) FROM "{schema}".posts') == 1
    assert await pg.fetchval(f'SELECT count(*) FROM "{schema}".llm_calls') == 1


async def test_identical_work_for_another_job_is_served_from_cache_at_no_cost(
    llm_generator, bus, events, fake_llm
):
    text = article_text()
    first, second = text_translated(text=text), text_translated(text=text)
    await bus.publish(first)
    await generated(events, first.job_id)
    await bus.publish(second)
    post = await generated(events, second.job_id)
    assert len(fake_llm.requests) == 1
    assert post.usage == second.usage  # nothing added: the post came from the cache


async def test_post_that_does_not_match_the_schema_fails_with_llm_bad_output(
    service_env, fake_llm, bus, events
):
    fake_llm.reset()
    fake_llm.responder = lambda request: '{"title": "too little"}'
    settings = settings_for(
        Settings,
        service_env,
        llm_base_url=fake_llm.base_url,
        llm_api_key=fake_llm.api_key,
        max_deliver=2,
    )
    async with running(settings):
        event = text_translated()
        await bus.publish(event)
        await wait_until(lambda: events.of("job.failed", event.job_id), timeout_s=20)
        failed = events.of("job.failed", event.job_id)[0].data
        assert failed["code"] == "llm_bad_output"
        assert failed["stage"] == "generate"
    fake_llm.reset()


# -- quality: the revision pass ------------------------------------------------------------

SENTENCES = [
    "Scientists keep a close watch on the icy moon.",
    "Its surface is cracked and young.",
    "Below the crust, a salty sea may move slowly.",
    "Heat from tides keeps that sea liquid.",
    "Future probes will fly close and take samples.",
    "Each pass adds a little more to the picture.",
    "Nobody expects fish, but simple life is possible.",
    "The question drives the next decade of missions.",
]


def good_post(keyword: str = "water plumes") -> dict:
    def section(n: int) -> str:
        return " ".join(SENTENCES[(n + i) % len(SENTENCES)] for i in range(12))

    markdown = (
        f"New {keyword} data changes how we see Europa. {section(0)}\n\n"
        f"## Why {keyword} matter\n\n{section(1)} The {keyword} carry clues.\n\n"
        f"## What comes next\n\n{section(2)}\n\n### Missions\n\n{section(3)}\n\n"
        f"## The bigger picture\n\n{section(4)} Watching {keyword} is cheap science."
    )
    return {
        "title": f"{keyword.capitalize()} on Europa: what the new data really shows"[:60],
        "slug": f"{keyword.replace(' ', '-')}-europa",
        "meta_description": (
            f"{keyword.capitalize()} above Europa hint at a hidden ocean: what was seen, how it "
            "was measured, and which missions will look closer at the icy moon next."
        )[:158],
        "outline": ["Why it matters", "What comes next"],
        "markdown": markdown,
        "faq": [
            {"question": "Is there water on Europa?", "answer": "Very likely, under the ice."},
            {"question": "Will we visit?", "answer": "Yes, probes are on the way."},
        ],
        "key_takeaways": ["Plumes were seen", "An ocean may exist", "Probes will look closer"],
    }


def poor_post() -> dict:
    return good_post() | {"title": "A post about a moon", "markdown": "Short. " * 30}


def first_poor_then_good(request: dict) -> str:
    revising = len(request["messages"]) > 1
    return json.dumps(good_post() if revising else poor_post())


@pytest.fixture
async def revising_generator(service_env, fake_llm) -> AsyncIterator[None]:
    fake_llm.reset()
    fake_llm.responder = first_poor_then_good
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        revise_below=70,
    )
    async with running(settings):
        yield
    fake_llm.reset()


async def test_a_post_below_the_threshold_gets_one_revision_with_the_report_as_feedback(
    revising_generator, bus, events, fake_llm, pg, namespace
):
    event = text_translated()
    await bus.publish(event)
    post = await generated(events, event.job_id)
    assert len(fake_llm.requests) == 2
    feedback = fake_llm.requests[1]["messages"][-1]["content"]
    assert "/100" in feedback
    assert "water plumes" in feedback
    assert post.markdown.startswith("New water plumes data")
    assert post.seo.score >= 70
    assert post.usage.calls == event.usage.calls + 2
    messages = [e.data["message"] for e in events.of("job.progress", event.job_id)]
    assert any(m.startswith("revising (SEO score") for m in messages)
    purposes = await pg.fetch(
        f'SELECT purpose FROM "{namespace}_generator".llm_calls ORDER BY purpose'
    )
    assert [r["purpose"] for r in purposes] == ["generate_post", "revise_post"]


async def test_a_post_at_or_above_the_threshold_is_not_revised(
    revising_generator, bus, events, fake_llm
):
    fake_llm.responder = lambda request: json.dumps(good_post())
    event = text_translated()
    await bus.publish(event)
    post = await generated(events, event.job_id)
    assert len(fake_llm.requests) == 1
    assert post.seo.score >= 70
    writing = [
        e.data["percent"]
        for e in events.of("job.progress", event.job_id)
        if e.data["message"] == "writing"
    ]
    assert len(writing) >= 3  # tokens streamed, and progress carried the percent written
    assert writing == sorted(writing)
    assert writing[0] > 0
    assert writing[-1] <= 95


async def test_a_redelivery_after_a_failed_revision_reuses_the_paid_first_draft(
    service_env, fake_llm, bus, events
):
    fake_llm.reset()
    fake_llm.responder = first_poor_then_good
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        llm_max_retries=0,
        redis_url=None,
    )
    async with running(settings):
        event = text_translated()
        fake_llm.responder = lambda request: (
            "not json" if len(request["messages"]) > 1 else json.dumps(poor_post())
        )
        await bus.publish(event)
        await wait_until(lambda: len(fake_llm.requests) >= 2, timeout_s=20)
        fake_llm.responder = first_poor_then_good
        post = await generated(events, event.job_id)
    first_drafts = [r for r in fake_llm.requests if len(r["messages"]) == 1]
    assert len(first_drafts) == 1  # the paid first draft was not bought again
    assert post.markdown.startswith("New water plumes data")
    assert post.usage.calls == event.usage.calls + 3  # draft, failed revision's output, revision
    fake_llm.reset()


# -- cost: concurrent identical work ---------------------------------------------------------


async def test_a_hundred_identical_jobs_on_two_replicas_make_one_generation_call(
    service_env, fake_llm, bus, events
):
    fake_llm.reset()
    fake_llm.latency_s = 0.3  # long enough for every job to arrive while the call runs
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        revise_below=0,
        concurrency=64,
    )
    assert settings.redis_url, "coalescing across replicas goes through Redis"
    text = article_text()
    jobs = [text_translated(text=text) for _ in range(100)]
    async with running(settings), running(settings):
        for job in jobs:
            await bus.publish(job)
        await wait_until(lambda: len(events.of("post.generated")) >= 100, timeout_s=60)
    assert len(fake_llm.requests) == 1
    posts = [PostGenerated.model_validate(e.data) for e in events.of("post.generated")]
    assert len({p.job_id for p in posts}) == 100
    assert len({p.markdown for p in posts}) == 1
    billed = sum(p.usage.calls for p in posts) - sum(j.usage.calls for j in jobs)
    assert billed == 1  # one job paid; the other 99 were served at no cost
    fake_llm.reset()


async def test_a_low_priority_job_is_written_through_the_batch_api_at_the_batch_price(
    service_env, fake_llm, bus, events
):
    fake_llm.reset()
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        llm_prices='{"fake-llm": [1.0, 1.0]}',
        llm_batch_max_age_s=0.1,
        llm_batch_poll_s=0.05,
        revise_below=0,
    )
    event = text_translated()
    low = event.model_copy(
        update={"spec": event.spec.model_copy(update={"priority": Priority.LOW})}
    )
    async with running(settings):
        await bus.publish(low)
        post = await generated(events, low.job_id)
    assert len(fake_llm.batches) == 1
    assert "stream" not in fake_llm.requests[0]
    paid = post.usage.cost_usd - low.usage.cost_usd
    tokens = post.usage.prompt_tokens + post.usage.completion_tokens
    tokens -= low.usage.prompt_tokens + low.usage.completion_tokens
    assert paid == pytest.approx(tokens / 1e6 * 0.5, rel=1e-3)
    fake_llm.reset()


async def test_while_the_provider_stays_down_the_breaker_opens_and_the_job_fails_circuit_open(
    service_env, fake_llm, bus, events
):
    fake_llm.reset()
    fake_llm.fail_next(503, times=100)
    settings = settings_for(
        Settings,
        service_env,
        llm_base_url=fake_llm.base_url,
        llm_api_key=fake_llm.api_key,
        llm_max_retries=0,
        llm_breaker_failures=2,
        llm_breaker_reset_s=60,
        llm_breaker_wait_s=0,  # fail at once instead of waiting for the reset
        max_deliver=3,
    )
    async with running(settings):
        event = text_translated()
        await bus.publish(event)
        await wait_until(lambda: events.of("job.failed", event.job_id), timeout_s=20)
    failed = events.of("job.failed", event.job_id)[0].data
    assert failed["code"] == "circuit_open"
    assert failed["retryable"] is True
    assert len(fake_llm.requests) == 2  # the third delivery failed fast, without a call
    assert not events.of("post.generated", event.job_id)
    fake_llm.reset()
