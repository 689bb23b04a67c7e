"""A job's experiment variant may name the translator's model (`translator.model`): its
segments are asked of that model, and cached apart from the default model's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from seoblog_contracts import Assignment, JobSpec, PageCrawled, TextTranslated, new_event_id
from seoblog_testing import fake_llm_settings, running_app, settings_for, wait_until
from translator.app import create_app
from translator.settings import Settings

TEXT = (
    "NASA scientists have confirmed water vapour above the surface of Europa, one of "
    "Jupiter's moons. The finding supports the idea of a liquid ocean under the ice shell."
)


@pytest.fixture
async def translator(service_env, fake_llm) -> AsyncIterator[None]:
    fake_llm.reset()
    settings = settings_for(Settings, service_env, **fake_llm_settings(fake_llm))
    async with running_app(create_app(settings)):
        yield


def crawled(*experiments: Assignment) -> PageCrawled:
    return PageCrawled(
        job_id=new_event_id(),
        spec=JobSpec(
            url="https://example.com/a", target_language="ko", experiments=list(experiments)
        ),
        url="https://example.com/a",
        final_url="https://example.com/a",
        title="Water on Europa",
        text=TEXT,
        language="en",
        content_hash="h",
    )


async def translated(events, job_id: str) -> TextTranslated:  # type: ignore[no-untyped-def]
    await wait_until(lambda: events.of("text.translated", job_id), timeout_s=20)
    return TextTranslated.model_validate(events.of("text.translated", job_id)[0].data)


async def test_a_variant_translates_with_its_model_and_shares_no_segments(
    translator, bus, events, fake_llm
):
    control = crawled()
    await bus.publish(control)
    assert (await translated(events, control.job_id)).usage.calls >= 1
    default_calls = fake_llm.calls
    assert {r["model"] for r in fake_llm.requests} == {"fake-llm"}
    variant = crawled(
        Assignment(experiment_id="t", variant="big", overrides={"translator.model": "fake-big"})
    )
    await bus.publish(variant)
    out = await translated(events, variant.job_id)
    assert out.spec.experiments == variant.spec.experiments  # carried on to the generator
    assert out.usage.calls >= 1  # not the control's cached segments
    asked = [r["model"] for r in fake_llm.requests[default_calls:]]
    assert asked
    assert set(asked) == {"fake-big"}
