"""What a failing segment does to the others (issue 9 E): nothing more is sent, calls already in
flight finish and are recorded (the provider bills them anyway), and a half-open breaker's
probe settles instead of being cancelled, so the breaker recovers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace

from seoblog_runtime import Cache, JobError
from seoblog_runtime.llm import Llm, LlmResult, LlmServiceSettings
from seoblog_runtime.resilience import BreakerState
from seoblog_testing.fake_llm import FakeLLM, default_responder
from translator.translate import translate_document

DOCUMENT = "\n\n".join(
    f"## Part {n}\n\nThe moon number {n} has an ocean of salty water below its ice."
    for n in range(6)
)


class Ledger:
    """Records the calls like the store does, in memory."""

    def __init__(self) -> None:
        self.begun: list[str] = []
        self.answered: list[str] = []
        self.refused: list[str] = []

    async def begin(self, key: str, messages: list[dict[str, str]]) -> int:
        self.begun.append(key)
        return 0

    async def done(self, key: str, attempt: int, result: LlmResult) -> None:
        await asyncio.sleep(0.01)  # a database write takes a moment
        self.answered.append(key)

    async def failed(self, key: str, attempt: int, error: BaseException) -> None:
        self.refused.append(key)


def client(fake_llm: FakeLLM, **overrides: Any) -> Llm:
    settings = LlmServiceSettings(
        _env_file=None,
        llm_base_url=fake_llm.base_url,
        llm_api_key=fake_llm.api_key,
        llm_model="fake-llm",
        llm_max_retries=0,
        **overrides,
    )
    return Llm(settings, trace.get_tracer("test"))


async def translate(llm: Llm, ledger: Ledger, concurrency: int) -> None:
    async def progress(done: int, total: int) -> None:
        return None

    await translate_document(
        DOCUMENT,
        target="de",
        glossary=[],
        llm=llm,
        cache=Cache("t"),
        prompt_version="v",
        max_tokens=20,
        concurrency=concurrency,
        on_segment=progress,
        recorder=ledger,
    )


async def test_a_failed_segment_stops_new_calls_but_keeps_the_answers_in_flight(fake_llm):
    fake_llm.reset()
    fake_llm.latency_s = 0.3

    def part_zero_fails(request: dict[str, Any]) -> str:
        if "moon number 0" in request["messages"][-1]["content"]:
            raise RuntimeError("provider error")  # answered as a 500
        return default_responder(request)

    fake_llm.responder = part_zero_fails
    llm, ledger = client(fake_llm), Ledger()
    try:
        with pytest.raises(JobError) as failed:
            await translate(llm, ledger, concurrency=3)
        assert failed.value.code == "llm_unavailable"
        assert len(ledger.begun) == 3  # the three in flight; the rest were never sent
        assert len(ledger.refused) == 1
        assert len(ledger.answered) == 2 == fake_llm.calls  # the paid answers were recorded
        assert len(asyncio.all_tasks()) == 1  # only this test: no segment left running
    finally:
        await llm.close()
        fake_llm.reset()


async def test_a_half_open_probe_is_not_cancelled_by_its_failing_siblings(fake_llm):
    fake_llm.reset()
    fake_llm.latency_s = 0.3
    # A breaker that fails at once (no waiting), so siblings are refused while the probe runs.
    llm = client(fake_llm, llm_breaker_failures=1, llm_breaker_reset_s=0.2, llm_breaker_wait_s=0)
    ledger = Ledger()
    try:
        llm.breaker.on_failure()  # the provider was down: open
        await asyncio.sleep(0.25)  # half-open: one probe may go out
        assert llm.breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(JobError) as failed:
            await translate(llm, ledger, concurrency=3)
        assert failed.value.code == "circuit_open"  # the siblings were refused at once
        assert len(ledger.answered) == 1  # the probe ran to its answer and was recorded
        assert ledger.refused  # a sibling refused by the half-open breaker failed the document
        assert fake_llm.calls == 1
        assert llm.breaker.state is BreakerState.CLOSED  # its success closed the breaker
        ledger = Ledger()
        await translate(llm, ledger, concurrency=3)  # and the next delivery goes through
        assert fake_llm.calls == 1 + len(ledger.answered) > 1
    finally:
        await llm.close()
        fake_llm.reset()
