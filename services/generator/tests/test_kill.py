"""kill -9 of a real generator process in the middle of a paid LLM call, then a restart: the
answers already recorded are not bought again, and the job's usage equals the calls the fake
LLM served for it, the interrupted one included (issue 9 A). No Redis: the database alone
keeps the guarantee."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from seoblog_contracts import JobSpec, PostGenerated, TextTranslated, Usage, new_event_id
from seoblog_testing import wait_until
from seoblog_testing.processes import ServiceProcess, Stack, free_port

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared/fixtures/extraction"
ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"
SLOW_S = 1.5  # the fake LLM's answer takes this long: the kill lands while it is answering


def translated_text() -> TextTranslated:
    truth = json.loads((FIXTURES / "ground-truth.json").read_text())
    return TextTranslated(
        job_id=new_event_id(),
        spec=JobSpec(url="https://example.com/a", keywords=["water plumes"], length=400),
        source_url="https://example.com/a",
        title="NASA finds water plumes above Europa",
        text=str(truth[ARTICLE]["articleBody"]),
        source_language="en",
        target_language="en",
        translated=False,
        content_hash=new_event_id(),
        usage=Usage(prompt_tokens=10, completion_tokens=5, calls=1, cost_usd=0.001),
    )


def poor_post() -> dict[str, object]:
    return {
        "title": "A post about a moon and its water plumes",
        "slug": "moon-water-plumes",
        "meta_description": "Water plumes above Europa hint at an ocean below: what was "
        "seen, and what the missions after this one will look at.",
        "outline": ["One", "Two"],
        "markdown": "Short. " * 30,
        "faq": [{"question": "Water?", "answer": "Yes."}] * 2,
        "key_takeaways": ["a", "b", "c"],
    }


@pytest.fixture
def generator_env(service_env, fake_llm) -> Iterator[dict[str, str]]:
    fake_llm.reset()
    fake_llm.latency_s = SLOW_S
    fake_llm.responder = lambda request: json.dumps(poor_post())
    yield service_env | {
        "REDIS_URL": "",  # no shared cache: only the paid-call records prevent a second call
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_API_KEY": fake_llm.api_key,
        "LLM_MODEL": "fake-llm",
        "GENERATOR_ACK_WAIT_S": "2",
        "GENERATOR_RETRY_BACKOFF_S": "[0.1]",
    }
    fake_llm.reset()


def start(env: dict[str, str]) -> ServiceProcess:
    process = ServiceProcess("generator", free_port(), env)
    process.start()
    Stack({"generator": process}).wait_ready()
    return process


def kill(process: ServiceProcess) -> None:
    assert process.process is not None
    process.process.kill()  # SIGKILL: no shutdown, no cleanup
    process.process.wait()


async def calls_recorded(pg, namespace: str, job_id: str) -> list[tuple[str, int, str]]:
    rows = await pg.fetch(
        f'SELECT purpose, attempt, state FROM "{namespace}_generator".llm_calls '
        "WHERE job_id = $1 ORDER BY purpose, attempt",
        job_id,
    )
    return [(r["purpose"], r["attempt"], r["state"]) for r in rows]


async def test_a_kill_while_the_llm_answers_is_counted_and_the_job_pays_for_what_was_served(
    generator_env, fake_llm, bus, events, pg, namespace
):
    first = start(generator_env | {"GENERATOR_REVISE_BELOW": "0"})
    event = translated_text()
    try:
        await bus.publish(event)
        await wait_until(lambda: len(fake_llm.requests) == 1, timeout_s=20)
        kill(first)  # the provider is still writing the answer
    finally:
        first.stop()
    second = start(generator_env | {"GENERATOR_REVISE_BELOW": "0"})
    try:
        await wait_until(lambda: events.of("post.generated", event.job_id), timeout_s=30)
    finally:
        second.stop()
    post = PostGenerated.model_validate(events.of("post.generated", event.job_id)[0].data)
    await wait_until(lambda: fake_llm.calls == 2, timeout_s=10)  # the killed call was served
    assert post.usage.calls - event.usage.calls == fake_llm.calls
    assert post.usage.unconfirmed_calls - event.usage.unconfirmed_calls == 1
    assert await calls_recorded(pg, namespace, event.job_id) == [
        ("generate_post", 0, "open"),  # interrupted: may have been billed, counted apart
        ("generate_post", 1, "done"),
    ]


async def test_a_kill_after_an_answer_was_recorded_does_not_buy_that_answer_again(
    generator_env, fake_llm, bus, events, pg, namespace
):
    fake_llm.responder = lambda request: json.dumps(poor_post())  # scores low: a revision
    first = start(generator_env | {"GENERATOR_REVISE_BELOW": "101"})
    event = translated_text()
    try:
        await bus.publish(event)
        await wait_until(lambda: len(fake_llm.requests) == 2, timeout_s=20)
        kill(first)  # the draft was answered and recorded; the revision is being written
    finally:
        first.stop()
    second = start(generator_env | {"GENERATOR_REVISE_BELOW": "101"})
    try:
        await wait_until(lambda: events.of("post.generated", event.job_id), timeout_s=30)
    finally:
        second.stop()
    post = PostGenerated.model_validate(events.of("post.generated", event.job_id)[0].data)
    drafts = [r for r in fake_llm.requests if len(r["messages"]) == 1]
    assert len(drafts) == 1  # the recorded first draft was parsed again, not bought again
    await wait_until(lambda: fake_llm.calls == 3, timeout_s=10)
    assert post.usage.calls - event.usage.calls == fake_llm.calls
    assert await calls_recorded(pg, namespace, event.job_id) == [
        ("generate_post", 0, "done"),
        ("revise_post", 0, "open"),
        ("revise_post", 1, "done"),
    ]
