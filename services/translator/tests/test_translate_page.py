"""The translator in-process with its real lifespan (NATS, PostgreSQL, Redis) and the fake LLM."""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from seoblog_contracts import JobSpec, PageCrawled, Priority, TextTranslated, new_event_id
from seoblog_testing import fake_llm_settings, running_app, settings_for, wait_until
from seoblog_testing.fake_llm import default_responder
from translator.app import create_app
from translator.settings import Settings

ENGLISH = (
    "## Water on Europa\n\nNASA scientists have confirmed water vapour above the surface of "
    "Europa, one of Jupiter's moons. The finding supports the idea of a liquid ocean under "
    "the ice shell.\n\n- Plumes were detected\n- The ocean may be habitable\n\n"
    "Read more at [NASA](https://nasa.gov/europa)."
)


def running(settings: Settings) -> Any:
    return running_app(create_app(settings))


@pytest.fixture
async def offline_translator(service_env) -> AsyncIterator[None]:
    async with running(settings_for(Settings, service_env)):
        yield


@pytest.fixture
async def llm_translator(service_env, fake_llm) -> AsyncIterator[None]:
    fake_llm.reset()
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        segment_tokens=40,
    )
    async with running(settings):
        yield


def crawled(text: str = ENGLISH, target: str = "ko", keywords: list[str] | None = None):
    return PageCrawled(
        job_id=new_event_id(),
        spec=JobSpec(
            url="https://example.com/a", keywords=keywords or ["Europa"], target_language=target
        ),
        url="https://example.com/a",
        final_url="https://example.com/a",
        title="Water on Europa",
        text=text,
        language="en",
        content_hash=new_event_id(),
    )


async def translated(events, job_id: str) -> TextTranslated:
    await wait_until(lambda: events.of("text.translated", job_id), timeout_s=20)
    return TextTranslated.model_validate(events.of("text.translated", job_id)[0].data)


async def test_text_already_in_target_language_passes_through_untouched(
    offline_translator, bus, events
):
    page = crawled(target="en")
    await bus.publish(page)
    out = await translated(events, page.job_id)
    assert out.translated is False
    assert out.text == ENGLISH
    assert out.source_language == "en"
    assert "already" in out.note


async def test_without_llm_text_passes_through_and_says_so(offline_translator, bus, events):
    page = crawled(target="ko")
    await bus.publish(page)
    out = await translated(events, page.job_id)
    assert out.translated is False
    assert out.text == ENGLISH
    assert "no LLM" in out.note
    assert out.usage.calls == 0


async def test_llm_translates_segments_keeping_structure_and_reports_usage(
    llm_translator, bus, events, fake_llm
):
    page = crawled(target="ko")
    await bus.publish(page)
    out = await translated(events, page.job_id)
    assert out.translated is True
    assert out.target_language == "ko"
    assert out.text != ENGLISH
    assert "## " in out.text
    assert "https://nasa.gov/europa" in out.text  # links survive (protected)
    assert out.usage.calls == len(fake_llm.requests) >= 2  # several segments
    assert out.usage.prompt_tokens > 0
    assert out.usage.cost_usd > 0
    percents = [e.data["percent"] for e in events.of("job.progress", page.job_id)]
    assert percents[0] == 0
    assert percents[-1] == 100


async def test_same_segments_are_served_from_cache_and_redelivery_is_not_billed(
    llm_translator, bus, events, fake_llm
):
    first = crawled(target="de")
    await bus.publish(first)
    await translated(events, first.job_id)
    calls = len(fake_llm.requests)
    second = crawled(target="de")  # another job, same text
    await bus.publish(second)
    out = await translated(events, second.job_id)
    assert out.translated is True
    assert out.usage.calls == 0
    await bus.publish(first.model_copy(update={"event_id": new_event_id()}))  # redelivery
    await wait_until(lambda: len(events.of("text.translated", first.job_id)) >= 2, timeout_s=20)
    assert len(fake_llm.requests) == calls
    ids = {e.data["event_id"] for e in events.of("text.translated", first.job_id)}
    assert len(ids) == 1


async def test_llm_down_past_retries_fails_the_job_with_llm_unavailable(
    service_env, fake_llm, bus, events
):
    fake_llm.reset()
    fake_llm.fail_next(500, times=100)
    settings = settings_for(
        Settings,
        service_env,
        llm_base_url=fake_llm.base_url,
        llm_api_key=fake_llm.api_key,
        llm_max_retries=0,
        max_deliver=2,
    )
    async with running(settings):
        page = crawled(target="fr")
        await bus.publish(page)
        await wait_until(lambda: events.of("job.failed", page.job_id), timeout_s=20)
        failed = events.of("job.failed", page.job_id)[0].data
        assert failed["code"] == "llm_unavailable"
        assert failed["stage"] == "translate"
        assert failed["retryable"] is True
    fake_llm.reset()


async def test_a_hundred_identical_jobs_on_two_replicas_make_one_set_of_segment_calls(
    service_env, fake_llm, bus, events
):
    fake_llm.reset()
    fake_llm.latency_s = 0.2
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        segment_tokens=40,
        concurrency=64,
    )
    assert settings.redis_url, "coalescing across replicas goes through Redis"
    pages = [crawled(target="ja") for _ in range(100)]
    async with running(settings), running(settings):
        for page in pages:
            await bus.publish(page)
        await wait_until(lambda: len(events.of("text.translated")) >= 100, timeout_s=60)
    outs = [TextTranslated.model_validate(e.data) for e in events.of("text.translated")]
    asked = [r["messages"][-1]["content"] for r in fake_llm.requests]
    assert len(asked) >= 2  # several segments
    assert len(asked) == len(set(asked))  # each segment translated once, for all jobs
    # and billed once: to whichever job made the call (jobs in flight together share the work)
    assert sum(o.usage.calls for o in outs) == len(asked)
    assert len({o.text for o in outs}) == 1
    fake_llm.reset()


async def test_a_redelivered_job_reuses_the_segments_it_paid_for_even_without_redis(
    service_env, fake_llm, bus, events
):
    fake_llm.reset()
    failed_once: list[bool] = []

    def fail_last_segment_once(request: dict) -> str:
        text = request["messages"][-1]["content"]
        if "Read more" in text and not failed_once:
            failed_once.append(True)
            raise RuntimeError("the provider fell over")  # answered as a 500
        return default_responder(request)

    fake_llm.responder = fail_last_segment_once
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        llm_max_retries=0,
        segment_tokens=40,
        segment_concurrency=1,
        redis_url=None,
        retry_backoff_s=[0.5],
    )
    page = crawled(target="it")
    async with running(settings):  # the first replica pays for all but the last segment
        await bus.publish(page)
        await wait_until(lambda: failed_once, timeout_s=20)
    async with running(settings):  # a fresh one, with an empty cache, gets the redelivery
        out = await translated(events, page.job_id)
    segments = out.usage.calls
    assert segments >= 3
    assert len(fake_llm.requests) == segments + 1  # only the failed segment was asked twice
    assert out.translated is True
    assert "[it] Read more" in out.text
    fake_llm.reset()


async def test_a_low_priority_jobs_segments_go_out_in_one_batch(service_env, fake_llm, bus, events):
    fake_llm.reset()
    settings = settings_for(
        Settings,
        service_env,
        **fake_llm_settings(fake_llm),
        segment_tokens=40,
        llm_batch_max_age_s=0.2,
        llm_batch_poll_s=0.05,
    )
    page = crawled(target="es")
    page = page.model_copy(update={"spec": page.spec.model_copy(update={"priority": Priority.LOW})})
    async with running(settings):
        await bus.publish(page)
        out = await translated(events, page.job_id)
    assert out.translated is True
    assert len(fake_llm.batches) == 1
    assert fake_llm.batches[0]["request_counts"]["completed"] == out.usage.calls >= 2
    fake_llm.reset()
