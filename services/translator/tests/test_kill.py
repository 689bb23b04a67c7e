"""kill -9 of a real translator process while a segment is being translated, then a restart:
segments already answered are not bought again, and the job's usage equals the calls the fake
LLM served for it, the interrupted one included (issue 9 A). No Redis: the database alone
keeps the guarantee."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from seoblog_contracts import JobSpec, PageCrawled, TextTranslated, new_event_id
from seoblog_testing import wait_until
from seoblog_testing.processes import ServiceProcess, Stack, free_port

pytestmark = pytest.mark.slow

ENGLISH = (
    "## Water on Europa\n\nNASA scientists have confirmed water vapour above the surface of "
    "Europa, one of Jupiter's moons. The finding supports the idea of a liquid ocean under "
    "the ice shell.\n\n## The ocean below\n\nBelow the crust a salty sea may move slowly, "
    "kept liquid by the heat of tides.\n\n## What comes next\n\nFuture probes will fly close "
    "and take samples of the plumes.\n\nRead more at [NASA](https://nasa.gov/europa)."
)


@pytest.fixture
def translator_env(service_env, fake_llm) -> Iterator[dict[str, str]]:
    fake_llm.reset()
    fake_llm.latency_s = 1.5  # the kill lands while a segment is being answered
    yield service_env | {
        "REDIS_URL": "",  # no shared cache: only the paid-call records prevent a second call
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_API_KEY": fake_llm.api_key,
        "LLM_MODEL": "fake-llm",
        "TRANSLATOR_SEGMENT_TOKENS": "40",
        "TRANSLATOR_SEGMENT_CONCURRENCY": "1",
        "TRANSLATOR_ACK_WAIT_S": "2",
        "TRANSLATOR_RETRY_BACKOFF_S": "[0.1]",
    }
    fake_llm.reset()


def start(env: dict[str, str]) -> ServiceProcess:
    process = ServiceProcess("translator", free_port(), env)
    process.start()
    Stack({"translator": process}).wait_ready()
    return process


async def test_a_kill_mid_document_rebuys_only_the_interrupted_segment_and_counts_it(
    translator_env, fake_llm, bus, events, pg, namespace
):
    page = PageCrawled(
        job_id=new_event_id(),
        spec=JobSpec(url="https://example.com/a", keywords=["Europa"], target_language="de"),
        url="https://example.com/a",
        final_url="https://example.com/a",
        title="Water on Europa",
        text=ENGLISH,
        language="en",
        content_hash=new_event_id(),
    )
    first = start(translator_env)
    try:
        await bus.publish(page)
        await wait_until(lambda: len(fake_llm.requests) == 2, timeout_s=20)
        assert first.process is not None
        first.process.kill()  # one segment answered and recorded, the next one in flight
        first.process.wait()
    finally:
        first.stop()
    second = start(translator_env)
    try:
        await wait_until(lambda: events.of("text.translated", page.job_id), timeout_s=40)
    finally:
        second.stop()
    out = TextTranslated.model_validate(events.of("text.translated", page.job_id)[0].data)
    assert out.translated is True
    asked = Counter(r["messages"][-1]["content"] for r in fake_llm.requests)
    assert len(asked) >= 3
    assert sorted(asked.values(), reverse=True)[:2] == [2, 1]  # only the interrupted one twice
    await wait_until(lambda: fake_llm.calls == len(asked) + 1, timeout_s=10)
    assert out.usage.calls == fake_llm.calls  # the job pays for exactly what was served
    states = await pg.fetch(
        f'SELECT state, count(*) AS n FROM "{namespace}_translator".segment_calls '
        "WHERE job_id = $1 GROUP BY state",
        page.job_id,
    )
    assert {r["state"]: r["n"] for r in states} == {"done": len(asked), "open": 1}
