"""Low-priority calls through the Batch API of the fake server: sent by size or age, results
mapped back to their callers, and synchronous calls when a batch fails or expires."""

import asyncio

import pytest
from opentelemetry import trace

from seoblog_runtime.llm import Llm, LlmServiceSettings
from seoblog_testing import unique_name


def make_llm(fake_llm, **overrides) -> Llm:
    values = {
        "llm_base_url": fake_llm.base_url,
        "llm_api_key": fake_llm.api_key,
        "llm_model": "fake-llm",
        "llm_prices": '{"fake-llm": [1.0, 1.0]}',
        "llm_batch_max_items": 3,
        "llm_batch_max_age_s": 30,
        "llm_batch_poll_s": 0.05,
        "llm_retry_initial_s": 0.01,
        "namespace": unique_name(),
    } | overrides
    return Llm(LlmServiceSettings(_env_file=None, **values), trace.get_tracer("test"))


def translate(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Translate the user's text into de."},
        {"role": "user", "content": text},
    ]


@pytest.fixture
def fake(fake_llm):
    fake_llm.reset()
    fake_llm.batch_delay_s = 0.2
    yield fake_llm
    fake_llm.reset()


async def test_low_priority_calls_go_out_as_one_batch_and_come_back_to_their_callers(fake):
    llm = make_llm(fake)
    texts = ["Europa has an ocean.", "Io has volcanoes.", "Ganymede has a magnetic field."]
    results = await asyncio.gather(
        *(llm.complete(translate(t), purpose="translate", low_priority=True) for t in texts)
    )
    assert [r.text for r in results] == [f"[de] {t}" for t in texts]
    assert all(r.batched for r in results)
    assert len(fake.batches) == 1
    assert fake.batches[0]["request_counts"]["completed"] == 3
    full_price = (results[0].usage.prompt_tokens + results[0].usage.completion_tokens) / 1e6
    assert results[0].usage.cost_usd == pytest.approx(full_price * 0.5)  # the batch discount
    await llm.close()


async def test_a_batch_that_never_fills_is_sent_when_its_oldest_request_is_old_enough(fake):
    llm = make_llm(fake, llm_batch_max_items=100, llm_batch_max_age_s=0.1)
    result = await llm.complete(
        translate("Callisto is old."), purpose="translate", low_priority=True
    )
    assert result.batched
    assert result.text == "[de] Callisto is old."
    assert len(fake.batches) == 1
    await llm.close()


@pytest.mark.parametrize("knob", ["fail_batches", "expire_batches"])
async def test_a_batch_that_fails_or_expires_falls_back_to_synchronous_calls(fake, knob):
    setattr(fake, knob, True)
    llm = make_llm(fake, llm_batch_max_items=2)
    results = await asyncio.gather(
        *(
            llm.complete(translate(t), purpose="translate", low_priority=True)
            for t in ("Io is hot.", "Europa is icy.")
        )
    )
    assert [r.text for r in results] == ["[de] Io is hot.", "[de] Europa is icy."]
    assert not any(r.batched for r in results)
    assert llm.stats.batch_fallbacks == 2
    assert fake.batches[0]["status"] in {"failed", "expired"}
    await llm.close()


async def test_a_batch_not_done_in_time_is_cancelled_and_made_synchronously(fake):
    fake.batch_delay_s = 30
    llm = make_llm(fake, llm_batch_max_items=1, llm_batch_wait_s=0.2)
    result = await llm.complete(translate("Io."), purpose="translate", low_priority=True)
    assert not result.batched
    assert result.text == "[de] Io."
    assert fake.batches[0]["status"] == "cancelled"
    await llm.close()


async def test_with_batching_off_low_priority_calls_are_synchronous(fake):
    llm = make_llm(fake, llm_batch=False)
    result = await llm.complete(translate("Io."), purpose="translate", low_priority=True)
    assert not result.batched
    assert fake.batches == []
    await llm.close()


async def test_a_provider_without_a_batch_api_is_remembered_and_called_synchronously(fake):
    llm = make_llm(fake, llm_batch_max_items=1)
    # Chat completions work; the files and batches endpoints answer 404.
    llm.batcher.client = llm.client.with_options(base_url=fake.url + "/no-batches/v1")
    first = await llm.complete(translate("Io."), purpose="translate", low_priority=True)
    assert not first.batched
    assert llm.batcher.unsupported
    await llm.complete(translate("Io."), purpose="translate", low_priority=True)
    assert llm.batcher.stats.batches == 1  # the second request did not try again
    await llm.close()
