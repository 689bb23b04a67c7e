"""The generator in-process with its real lifespan (NATS, PostgreSQL, Redis) and the fake LLM."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from generator.app import create_app
from generator.settings import Settings
from seoblog_contracts import JobSpec, PostGenerated, TextTranslated, Usage, new_event_id
from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing import settings_for, wait_until

GROUND_TRUTH = Path(__file__).resolve().parents[3].parent / "shared/fixtures/extraction"
ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"


def article_text() -> str:
    truth = json.loads((GROUND_TRUTH / "ground-truth.json").read_text())
    return str(truth[ARTICLE]["articleBody"])


@pytest.fixture
async def bus(service_env) -> AsyncIterator[Bus]:
    probe = Bus(settings_for(ServiceSettings, service_env, service="probe"))
    await probe.broker.connect()
    yield probe
    await probe.stop()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[None]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield


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
        llm_base_url=fake_llm.base_url,
        llm_api_key=fake_llm.api_key,
        llm_model="fake-llm",
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
