"""The shared LLM client against the fake OpenAI-compatible server: retries, Retry-After,
timeouts, the circuit breaker, shared rate limits, prices and streaming progress."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from seoblog_runtime import JobError
from seoblog_runtime.llm import Llm, LlmCollector, LlmServiceSettings, retry_after_of
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
        "llm_breaker_wait_s": 0,  # fail fast on an open breaker unless a test waits for it
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
    assert llm.stats.by_outcome == {"http_429": 2, "ok": 1}
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
    assert llm.stats.by_outcome["timeout"] == 1
    await llm.close()
    fake_llm.reset()


async def test_a_call_waits_out_an_open_breaker_and_goes_through_once_the_provider_is_back(
    fake_llm,
):
    fake_llm.reset()
    fake_llm.fail_next(500, times=2)
    llm = make_llm(
        fake_llm,
        llm_max_retries=0,
        llm_breaker_failures=2,
        llm_breaker_reset_s=0.5,
        llm_breaker_wait_s=10,
    )
    for _ in range(2):
        with pytest.raises(JobError):
            await llm.complete(HELLO, purpose="test")
    assert llm.breaker.state is BreakerState.OPEN
    waiting = [asyncio.create_task(llm.complete(HELLO, purpose="test")) for _ in range(3)]
    answers = await asyncio.wait_for(asyncio.gather(*waiting), timeout=10)
    assert all(a.text for a in answers)  # no delivery burned on the outage
    assert llm.breaker.state is BreakerState.CLOSED
    assert len(fake_llm.requests) == 5  # the provider never saw a call while it was open
    await llm.close()
    fake_llm.reset()


async def test_a_call_that_outwaits_llm_breaker_wait_s_fails_with_circuit_open(fake_llm):
    fake_llm.reset()
    fake_llm.fail_next(500, times=1)
    llm = make_llm(
        fake_llm,
        llm_max_retries=0,
        llm_breaker_failures=1,
        llm_breaker_reset_s=30,
        llm_breaker_wait_s=0.3,
    )
    with pytest.raises(JobError):
        await llm.complete(HELLO, purpose="test")
    with pytest.raises(JobError) as waited:
        await llm.complete(HELLO, purpose="test")
    assert waited.value.code == "circuit_open"
    assert waited.value.retryable is True
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


async def test_a_progress_report_that_times_out_never_costs_the_paid_answer(llm, fake_llm):
    fake_llm.responder = lambda request: " ".join(f"word{i}" for i in range(200))
    tried: list[int] = []

    async def progress(percent: int) -> None:  # a NATS publish timing out, say
        tried.append(percent)
        raise TimeoutError("nats: timeout")

    result = await llm.complete(HELLO, purpose="test", on_progress=progress, expected_tokens=50)
    assert result.text.startswith("word0 word1")
    assert len(fake_llm.requests) == 1  # not made twice
    assert llm.stats.by_outcome == {"ok": 1}
    await wait_until(lambda: tried)


async def test_a_progress_report_that_hangs_does_not_hold_up_the_answer(llm, fake_llm):
    fake_llm.responder = lambda request: " ".join(f"word{i}" for i in range(200))
    release = asyncio.Event()

    async def progress(percent: int) -> None:
        await release.wait()

    try:
        # The bound only turns a hang into a failure; the call itself takes milliseconds.
        result = await asyncio.wait_for(
            llm.complete(HELLO, purpose="test", on_progress=progress, expected_tokens=50), 20
        )
    finally:
        release.set()
    assert result.text.startswith("word0")


async def test_a_provider_that_keeps_timing_out_fails_with_llm_timeout(fake_llm):
    fake_llm.reset()
    fake_llm.hang_next(times=2)
    llm = make_llm(fake_llm, llm_timeout_s=0.3, llm_max_retries=1)
    try:
        with pytest.raises(JobError) as failed:
            await llm.complete(HELLO, purpose="test")
        assert failed.value.code == "llm_timeout"
        assert failed.value.retryable is True
        assert llm.stats.by_outcome == {"timeout": 2}
    finally:
        await llm.close()
        fake_llm.reset()


async def open_then_half_open(llm: Llm, fake_llm) -> None:
    fake_llm.fail_next(500, times=2)
    for _ in range(2):
        with pytest.raises(JobError):
            await llm.complete(HELLO, purpose="test", expected_tokens=1)
    assert llm.breaker.state is BreakerState.OPEN
    await wait_until(lambda: llm.breaker.state is BreakerState.HALF_OPEN, timeout_s=5)


async def test_a_cancelled_probe_hands_its_slot_back_and_the_breaker_recovers(fake_llm):
    fake_llm.reset()
    llm = make_llm(fake_llm, llm_max_retries=0, llm_breaker_failures=2, llm_breaker_reset_s=0.2)
    try:
        await open_then_half_open(llm, fake_llm)
        fake_llm.hang_next()
        probe = asyncio.create_task(llm.complete(HELLO, purpose="test"))
        await wait_until(lambda: len(fake_llm.requests) == 3)  # the probe reached the provider
        probe.cancel()  # as the translator cancels a failed job's sibling segments
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert llm.breaker.state is BreakerState.HALF_OPEN
        assert (await llm.complete(HELLO, purpose="test")).text  # the next call probes
        assert llm.breaker.state is BreakerState.CLOSED
    finally:
        await llm.close()
        fake_llm.reset()


async def test_a_probe_timed_out_in_the_rate_limiter_hands_its_slot_back(fake_llm):
    fake_llm.reset()
    llm = make_llm(
        fake_llm,
        llm_max_retries=0,
        llm_breaker_failures=2,
        llm_breaker_reset_s=0.2,
        llm_tpm=6000,  # 100 tokens a second, a bucket of 6000
        llm_rate_wait_s=0.05,
    )
    try:
        await open_then_half_open(llm, fake_llm)
        assert llm.tokens_bucket is not None  # another caller just spent the whole budget
        await llm.tokens_bucket.acquire("fake-llm", llm.tokens_bucket.capacity, timeout_s=10)
        with pytest.raises(JobError) as throttled:  # the probe cannot get budget in 0.05 s
            await llm.complete(HELLO, purpose="test", expected_tokens=100)
        assert throttled.value.code == "llm_rate_limited"
        assert len(fake_llm.requests) == 2
        await asyncio.sleep(0.5)  # the bucket refills enough for a small call
        assert (await llm.complete(HELLO, purpose="test", expected_tokens=1)).text
        assert llm.breaker.state is BreakerState.CLOSED
    finally:
        await llm.close()
        fake_llm.reset()


def breaker_gauge(llm: Llm | None) -> float | None:
    registry = CollectorRegistry()
    registry.register(LlmCollector("svc", llm))
    return registry.get_sample_value("seoblog_llm_breaker_state", {"service": "svc"})


async def test_breaker_gauge_shows_closed_open_and_half_open(fake_llm):
    fake_llm.reset()
    llm = make_llm(fake_llm, llm_max_retries=0, llm_breaker_failures=2, llm_breaker_reset_s=0.3)
    try:
        assert breaker_gauge(None) == 0  # no LLM configured: the series exists, closed
        assert breaker_gauge(llm) == 0
        fake_llm.fail_next(500, times=2)
        for _ in range(2):
            with pytest.raises(JobError):
                await llm.complete(HELLO, purpose="test")
        assert breaker_gauge(llm) == 1
        await wait_until(lambda: breaker_gauge(llm) == 2, timeout_s=5)
        await llm.complete(HELLO, purpose="test")
        assert breaker_gauge(llm) == 0
    finally:
        await llm.close()
        fake_llm.reset()


async def test_a_stream_cut_mid_answer_is_retried_and_the_answer_is_whole(llm, fake_llm):
    fake_llm.responder = lambda request: " ".join(f"word{i}" for i in range(50))
    fake_llm.cut_next()

    async def progress(percent: int) -> None:
        pass

    result = await llm.complete(HELLO, purpose="test", on_progress=progress, expected_tokens=50)
    assert result.text == " ".join(f"word{i}" for i in range(50))
    assert len(fake_llm.requests) == 2
    assert llm.stats.retries == 1


async def test_a_provider_that_keeps_cutting_streams_fails_as_unavailable_not_as_timed_out(
    fake_llm,
):
    fake_llm.reset()
    fake_llm.responder = lambda request: " ".join(f"word{i}" for i in range(50))
    fake_llm.cut_next(times=2)
    llm = make_llm(fake_llm, llm_max_retries=1)

    async def progress(percent: int) -> None:
        pass

    try:
        with pytest.raises(JobError) as failed:
            await llm.complete(HELLO, purpose="test", on_progress=progress, expected_tokens=50)
        assert failed.value.code == "llm_unavailable"
        assert failed.value.retryable is True
        assert len(fake_llm.requests) == 2
    finally:
        await llm.close()
        fake_llm.reset()


async def test_quick_answers_are_made_whole_and_a_slow_one_brings_streaming_back(fake_llm):
    fake_llm.reset()
    fake_llm.responder = lambda request: " ".join(f"word{i}" for i in range(100))
    llm = make_llm(fake_llm, llm_stream_after_s=0.5)
    percents: list[int] = []

    async def progress(percent: int) -> None:
        percents.append(percent)

    async def post() -> str:
        result = await llm.complete(
            HELLO, purpose="post", on_progress=progress, expected_tokens=100
        )
        return result.text

    try:
        assert (await post()).startswith("word0")  # nothing known yet: streamed
        assert fake_llm.requests[0]["stream"] is True
        assert percents
        percents.clear()
        assert (await post()).endswith("word99")  # that took ms: this one is made whole
        assert not fake_llm.requests[1].get("stream")
        assert percents == []
        fake_llm.latency_s = 0.6  # the provider slows down: one slow call is believed at once
        await post()
        fake_llm.latency_s = 0
        await post()
        assert fake_llm.requests[3]["stream"] is True
        assert percents
        other = await llm.complete(HELLO, purpose="other", on_progress=progress)
        assert other.text
        assert fake_llm.requests[4]["stream"] is True  # each purpose has its own record
    finally:
        await llm.close()
        fake_llm.reset()
