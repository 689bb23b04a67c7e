"""A job's experiment variant changes how the generator writes it: model, temperature and
prompt come from the spec's overrides, the variant is part of the generation cache key, and an
override the generator cannot honour fails the job clearly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from generator.app import create_app
from generator.handlers import Knobs
from generator.settings import Settings
from seoblog_contracts import (
    Assignment,
    JobSpec,
    PostGenerated,
    TextTranslated,
    Usage,
    new_event_id,
)
from seoblog_experiments import OVERRIDES
from seoblog_testing import fake_llm_settings, running_app, settings_for, wait_until

TEXT = " ".join(
    "Europa has an ocean under its ice, and Hubble saw plumes of water rising above it."
    for _ in range(40)
)


def translated(*experiments: Assignment) -> TextTranslated:
    return TextTranslated(
        job_id=new_event_id(),
        spec=JobSpec(
            url="https://example.com/a",
            keywords=["water plumes"],
            target_language="en",
            length=300,
            experiments=list(experiments),
        ),
        source_url="https://example.com/a",
        title="Water plumes on Europa",
        text=TEXT,
        source_language="en",
        target_language="en",
        translated=False,
        content_hash="h",
        usage=Usage(),
    )


@pytest.fixture
async def generator(service_env, fake_llm) -> AsyncIterator[None]:
    fake_llm.reset()
    settings = settings_for(Settings, service_env, **fake_llm_settings(fake_llm), revise_below=0)
    async with running_app(create_app(settings)):
        yield


async def outcome(events: Any, job_id: str) -> dict[str, Any]:
    found = await wait_until(
        lambda: events.of("post.generated", job_id) or events.of("job.failed", job_id),
        timeout_s=20,
    )
    data: dict[str, Any] = found[0].data
    return data


async def test_a_variant_writes_with_its_model_and_temperature_and_shares_no_cache(
    generator, bus, events, fake_llm
):
    control = translated(Assignment(experiment_id="m", variant="control"))
    await bus.publish(control)
    first = PostGenerated.model_validate(await outcome(events, control.job_id))
    assert first.experiments[0].variant == "control"
    variant = translated(
        Assignment(
            experiment_id="m",
            variant="mini",
            overrides={"generator.model": "fake-mini", "generator.temperature": 0.3},
        )
    )
    await bus.publish(variant)
    post = PostGenerated.model_validate(await outcome(events, variant.job_id))
    assert post.writer == "llm:fake-mini"
    assert post.experiments[0].variant == "mini"
    assert post.usage.calls == 1  # its own call: the control's cached post is not its post
    bodies = [r for r in fake_llm.requests if r.get("model") == "fake-mini"]
    assert len(bodies) == 1
    assert bodies[0]["temperature"] == 0.3
    # The same variant again is served from its own cache entry.
    again = translated(*variant.spec.experiments)
    await bus.publish(again)
    assert PostGenerated.model_validate(await outcome(events, again.job_id)).usage.calls == 0


async def test_a_prompt_version_the_generator_lacks_fails_the_job_without_a_call(
    generator, bus, events, fake_llm
):
    event = translated(
        Assignment(
            experiment_id="p", variant="v", overrides={"generator.prompt_version": "post_v99"}
        )
    )
    await bus.publish(event)
    failed = await outcome(events, event.job_id)
    assert failed["type"] == "job.failed"
    assert failed["code"] == "unknown_prompt_version"
    assert fake_llm.calls == 0


def test_every_generator_override_the_gateway_accepts_changes_a_knob():
    settings = Settings(revise_below=70)
    values = {
        "prompt_version": "post_v1",
        "revise_prompt_version": "revise_v1",
        "model": "fake-x",
        "temperature": 0.5,
        "revise_below": 10,
    }
    keys = [k.removeprefix("generator.") for k in OVERRIDES if k.startswith("generator.")]
    assert sorted(keys) == sorted(values)
    base = Knobs.of(settings, translated(), None)
    for key in keys:
        overridden = Assignment(
            experiment_id="e", variant="v", overrides={f"generator.{key}": values[key]}
        )
        knobs = Knobs.of(settings, translated(overridden), None)
        assert getattr(knobs, key) == values[key]
        assert getattr(base, key) != values[key] or key.endswith("version")
