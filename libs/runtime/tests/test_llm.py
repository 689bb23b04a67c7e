"""The shared LLM client against the fake OpenAI-compatible server: retries, Retry-After,
timeouts, the circuit breaker, shared rate limits, prices and streaming progress."""

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace

from seoblog_runtime import JobError
from seoblog_runtime.llm import Llm, LlmServiceSettings, retry_after_of
from seoblog_runtime.resilience import BreakerState
from seoblog_testing import unique_name, wait_until

HELLO = [{"role": "user", "content": "Say hello to the moons of Jupiter."}]


def make_llm(fake_llm, **overrides) -> Llm:
    values = {
        "llm_base_url": fake_llm.base_url,
        "llm_api_key": fake_llm.api_key,
        "llm_model": "fake-llm",
        "llm_retry_initial_s": 0.01,
        "llm_retry_max_s": 0.5,
        "namespace": unique_name(),
    } | overrides
    return Llm(LlmServiceSettings(_env_file=None, **values), trace.get_tracer("test"))


@pytest.fixture
async def llm(fake_llm) -> AsyncIterator[Llm]:
    fake_llm.reset()
    client = make_llm(fake_llm)
    yield client
    await client.close()
    fake_llm.reset()


async def test_429_with_retry_after_is_retried_until_it_succeeds(llm, fake_llm):
    fake_llm.fail_next(429, times=2, retry_after=0.05)
    result = await llm.complete(HELLO, purpose="test")
    assert result.text
    assert len(fake_llm.requests) == 3
    assert llm.stats.retries == 2
    assert llm.stats.by_outcome == {"RateLimitError": 2, "ok": 1}
    assert llm.breaker.state is BreakerState.CLOSED  # throttling is not an outage


async def test_provider_down_past_the_retries_fails_with_llm_unavailable(fake_llm):
    fake_llm.reset()
    fake_llm.fail_next(503, times=10)
    llm = make_llm(fake_llm, llm_max_retries=2)
    with pytest.raises(JobError) as failed:
        await llm.complete(HELLO, purpose="test")
    assert failed.value.code == "llm_unavailable"
    assert failed.value.retryable is True
    assert len(fake_llm.requests) == 3  # one call and two retries, counted by us
    await llm.close()
    fake_llm.reset()


async def test_a_bad_request_is_rejected_without_retrying(llm, fake_llm):
    fake_llm.fail_next(400)
    with pytest.raises(JobError) as failed:
        await llm.complete(HELLO, purpose="test")
    assert failed.value.code == "llm_rejected"
    assert failed.value.retryable is False
    assert len(fake_llm.requests) == 1


async def test_a_call_that_hangs_times_out_and_is_retried(fake_llm):
    fake_llm.reset()
    fake_llm.hang_next()
    llm = make_llm(fake_llm, llm_timeout_s=0.3)
    result = await llm.complete(HELLO, purpose="test")
    assert result.text
    assert llm.stats.by_outcome["APITimeoutError"] == 1
    await llm.close()
    fake_llm.reset()


async def test_breaker_opens_fails_fast_while_down_and_probes_its_way_back(fake_llm):
    fake_llm.reset()
    fake_llm.fail_next(500, times=2)
    llm = make_llm(fake_llm, llm_max_retries=0, llm_breaker_failures=2, llm_breaker_reset_s=0.3)
    for _ in range(2):
        with pytest.raises(JobError):
            await llm.complete(HELLO, purpose="test")
    assert llm.breaker.state is BreakerState.OPEN
    with pytest.raises(JobError) as fast:
        await llm.complete(HELLO, purpose="test")
    assert fast.value.code == "circuit_open"
    assert fast.value.retryable is True
    assert len(fake_llm.requests) == 2  # the provider never saw the rejected call
    await wait_until(lambda: llm.breaker.state is BreakerState.HALF_OPEN, timeout_s=5)
    assert (await llm.complete(HELLO, purpose="test")).text  # the probe succeeds
    assert llm.breaker.state is BreakerState.CLOSED
    await llm.close()
    fake_llm.reset()


async def test_replicas_share_the_requests_per_minute_budget_through_redis(fake_llm, infra):
    fake_llm.reset()
    namespace = unique_name()
    clients = [aioredis.from_url(infra.redis_url) for _ in range(2)]
    replicas = [make_llm(fake_llm, namespace=namespace, llm_rpm=60) for _ in range(2)]
    for replica, client in zip(replicas, clients, strict=True):
        replica.use_redis(client)
    try:
        await replicas[0].complete(HELLO, purpose="test")
        await replicas[1].complete(HELLO, purpose="test")  # one a second: it has to wait
        assert replicas[0].stats.rate_waited_s == 0
        assert replicas[1].stats.rate_waited_s > 0
    finally:
        for replica, client in zip(replicas, clients, strict=True):
            await replica.close()
            await client.aclose()
        fake_llm.reset()


async def test_tokens_per_minute_budget_holds_back_a_large_request(fake_llm):
    fake_llm.reset()
    llm = make_llm(fake_llm, llm_tpm=6000)  # 100 tokens a second
    await llm.complete(HELLO, purpose="test", expected_tokens=6000)  # the whole bucket
    await llm.complete(HELLO, purpose="test", expected_tokens=50)
    assert llm.stats.rate_waited_s > 0
    await llm.close()
    fake_llm.reset()


async def test_cost_comes_from_the_reported_usage_and_the_price_table(fake_llm):
    fake_llm.reset()
    llm = make_llm(fake_llm, llm_prices='{"fake-llm": [1.0, 4.0]}')
    result = await llm.complete(HELLO, purpose="test")
    usage = result.usage
    assert usage.calls == 1
    assert usage.prompt_tokens + usage.completion_tokens == fake_llm.tokens
    assert usage.cost_usd == pytest.approx(
        (usage.prompt_tokens * 1.0 + usage.completion_tokens * 4.0) / 1_000_000
    )
    await llm.close()
    fake_llm.reset()


def test_price_table_covers_dated_snapshots_and_falls_back_for_unknown_models():
    settings = LlmServiceSettings(
        _env_file=None,
        llm_prices='{"gpt-4o": [2.5, 10], "gpt-4o-mini": [0.15, 0.6]}',
        llm_price_input_per_mtok=9,
        llm_price_output_per_mtok=9,
    )
    assert settings.price_of("gpt-4o-mini-2024-07-18") == (0.15, 0.6)
    assert settings.price_of("gpt-4o-2024-08-06") == (2.5, 10)
    assert settings.price_of("llama3.1") == (9, 9)


def test_a_malformed_price_table_is_refused():
    with pytest.raises(ValueError, match="LLM_PRICES"):
        LlmServiceSettings(_env_file=None, llm_prices='{"gpt-4o": 3}')


async def test_streaming_reports_the_percent_written(llm, fake_llm):
    fake_llm.responder = lambda request: " ".join(f"word{i}" for i in range(200))
    percents: list[int] = []

    async def progress(percent: int) -> None:
        percents.append(percent)

    result = await llm.complete(HELLO, purpose="test", on_progress=progress, expected_tokens=200)
    assert fake_llm.requests[0]["stream"] is True
    assert result.text.startswith("word0 word1")
    assert result.usage.completion_tokens > 0
    assert percents == sorted(percents)
    assert len(percents) >= 5
    assert percents[0] > 0
    assert percents[-1] <= 95


def test_retry_after_is_read_in_seconds_milliseconds_or_as_a_date():
    class Response:
        def __init__(self, headers: dict[str, str]) -> None:
            self.headers = headers

    class Failure(Exception):
        def __init__(self, headers: dict[str, str]) -> None:
            super().__init__("x")
            self.response = Response(headers)

    assert retry_after_of(Failure({"retry-after": "2"})) == 2
    assert retry_after_of(Failure({"retry-after-ms": "250"})) == 0.25
    assert retry_after_of(Failure({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    assert retry_after_of(Failure({})) is None
    assert retry_after_of(ValueError()) is None
