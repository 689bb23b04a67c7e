"""The post says the language it is written in: offline, the article's own beside the one the job
asked for; with an LLM, the target. The offline writer reports its progress too."""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from generator.app import create_app
from generator.handlers import written_language
from generator.settings import Settings
from seoblog_contracts import JobSpec, PostGenerated, TextTranslated, Usage, new_event_id
from seoblog_testing import fake_llm_settings, running_app, settings_for, wait_until

TEXT = "\n\n".join(
    f"Paragraph {n} says that water plumes rise above Europa and that NASA measured them."
    f" The Hubble telescope saw the plumes twice in {2012 + n}, and the team checked it again."
    for n in range(12)
)


def translated_event(
    target: str, *, source: str | None = "en", translated: bool = False
) -> TextTranslated:
    return TextTranslated(
        job_id=new_event_id(),
        spec=JobSpec(
            url="https://example.com/a",
            keywords=["water plumes"],
            target_language=target,
            length=300,
        ),
        source_url="https://example.com/a",
        title="NASA finds water plumes above Europa",
        text=TEXT,
        source_language=source,
        target_language=target,
        translated=translated,
        content_hash=new_event_id(),
        usage=Usage(),
    )


def in_language(html: str) -> set[str]:
    blocks = re.findall(r'<script type="application/ld\+json">(.*?)</script>', html)
    return {json.loads(block)["inLanguage"] for block in blocks}


@pytest.fixture
async def offline_generator(service_env: Any) -> AsyncIterator[None]:
    async with running_app(create_app(settings_for(Settings, service_env))):
        yield


@pytest.fixture
async def llm_generator(service_env: Any, fake_llm: Any) -> AsyncIterator[None]:
    fake_llm.reset()
    settings = settings_for(Settings, service_env, **fake_llm_settings(fake_llm), revise_below=0)
    async with running_app(create_app(settings)):
        yield


async def generated(events: Any, job_id: str) -> PostGenerated:
    await wait_until(lambda: events.of("post.generated", job_id), timeout_s=20)
    return PostGenerated.model_validate(events.of("post.generated", job_id)[0].data)


async def test_an_offline_post_asked_in_korean_says_it_is_in_english_and_that_korean_was_asked(
    offline_generator: None, bus: Any, events: Any
) -> None:
    event = translated_event("ko")
    await bus.publish(event)
    post = await generated(events, event.job_id)
    assert post.writer == "offline"
    assert (post.language, post.requested_language) == ("en", "ko")
    assert in_language(post.html) == {"en"}
    assert "## Key takeaways" in post.markdown  # framed in the language it is written in


async def test_the_offline_writer_reports_progress_while_it_writes(
    offline_generator: None, bus: Any, events: Any
) -> None:
    event = translated_event("en")
    await bus.publish(event)
    await generated(events, event.job_id)
    await wait_until(lambda: len(events.of("job.progress", event.job_id)) >= 3, timeout_s=10)
    percents = [e.data["percent"] for e in events.of("job.progress", event.job_id)]
    assert percents[0] == 0
    assert any(0 < p < 100 for p in percents)


async def test_an_llm_post_is_in_the_target_language_and_says_so(
    llm_generator: None, bus: Any, events: Any
) -> None:
    event = translated_event("fr", translated=True)
    await bus.publish(event)
    post = await generated(events, event.job_id)
    assert (post.language, post.requested_language) == ("fr", "fr")
    assert in_language(post.html) == {"fr"}


def test_written_language_is_the_articles_own_unless_the_text_was_translated() -> None:
    assert written_language(translated_event("ko")) == "en"
    assert written_language(translated_event("ko", translated=True)) == "ko"
    assert written_language(translated_event("en-GB", source="en")) == "en-GB"
    assert written_language(translated_event("nl", source=None)) == "und"
