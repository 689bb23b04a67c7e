"""The OpenAI-compatible LLM client both LLM-spending services use: settings, a per-model price
table, token-bucket limits on requests and tokens per minute (shared through Redis), retries
with back-off honouring Retry-After, a circuit breaker, per-call timeouts, streaming progress,
the Batch API for low-priority work, and failures mapped to job error codes."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import email.utils
import json
import logging
import math
import random
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from pydantic import AliasChoices, Field, SecretStr, field_validator
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from seoblog_contracts import Usage

from ._lean_imports import aiohttp_hidden
from .bus import JobError
from .llm_http import (
    DEFAULT_BASE_URL,
    LlmAnswerError,
    LlmConnectionError,
    LlmStatusError,
    LlmTimeoutError,
    Transport,
    transport,
)
from .ratelimit import RateLimitTimeout, TokenBucket
from .resilience import BreakerState, CircuitBreaker, CircuitOpenError, wait_retry_after
from .settings import ServiceSettings

log = logging.getLogger("seoblog.llm")

# Requests may burst one second's worth above the steady rate (providers enforce RPM over
# sub-minute windows); tokens may burst a whole minute's worth (TPM is a per-minute budget).
REQUEST_BURST_S = 1.0
TOKEN_BURST_S = 60.0

DEFAULT_PRICES = (
    '{"gpt-4o-mini": [0.15, 0.6], "gpt-4o": [2.5, 10.0], "gpt-4.1-mini": [0.4, 1.6], '
    '"gpt-4.1-nano": [0.1, 0.4], "gpt-4.1": [2.0, 8.0]}'
)


def _shared(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class LlmServiceSettings(ServiceSettings):
    """Settings of a service that calls the LLM; the LLM_* names are shared by both."""

    llm_base_url: str | None = Field(
        None,
        validation_alias=_shared("LLM_BASE_URL"),
        description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1",
    )
    llm_api_key: SecretStr | None = Field(
        None, validation_alias=_shared("LLM_API_KEY"), description="secret; never logged"
    )
    llm_model: str = Field(
        "gpt-4o-mini",
        validation_alias=_shared("LLM_MODEL"),
        description="default model for every LLM task",
    )
    model: str | None = Field(None, description="this service's model; defaults to LLM_MODEL")
    llm_stream_after_s: float = Field(
        1.0,
        ge=0,
        description="stream an answer (progress while it is written) when calls of its "
        "purpose have lately taken this long; quicker ones are made whole, as streaming costs "
        "CPU per chunk (0: always stream)",
    )
    llm_http: Literal["aiohttp", "httpx"] = Field(
        "aiohttp",
        description="HTTP client of the LLM calls: aiohttp (parses in C: half the CPU of "
        "httpx per call and per streamed chunk) or httpx (about 10 MB less memory; aiohttp is "
        "then never loaded)",
    )
    llm_timeout_s: float = Field(
        60.0,
        validation_alias=_shared("LLM_TIMEOUT_S"),
        description="per-call timeout (connect, and each read of a streamed answer)",
    )
    llm_max_retries: int = Field(
        3,
        ge=0,
        validation_alias=_shared("LLM_MAX_RETRIES"),
        description="retries on 429/5xx/timeouts (exponential back-off, honours Retry-After)",
    )
    llm_retry_initial_s: float = Field(
        0.5,
        validation_alias=_shared("LLM_RETRY_INITIAL_S"),
        description="first retry back-off; doubles per retry, plus up to as much jitter",
    )
    llm_retry_max_s: float = Field(
        30.0,
        validation_alias=_shared("LLM_RETRY_MAX_S"),
        description="longest wait between retries, Retry-After included",
    )
    llm_rpm: int = Field(
        0,
        ge=0,
        validation_alias=_shared("LLM_RPM"),
        description="requests per minute per model, shared by all replicas via Redis; 0: no limit",
    )
    llm_tpm: int = Field(
        0,
        ge=0,
        validation_alias=_shared("LLM_TPM"),
        description="tokens per minute per model (prompt + expected completion); 0: no limit",
    )
    llm_rate_wait_s: float = Field(
        300.0,
        validation_alias=_shared("LLM_RATE_WAIT_S"),
        description="longest wait for the rate limiter before the job is retried later",
    )
    llm_breaker_failures: int = Field(
        5,
        ge=1,
        validation_alias=_shared("LLM_BREAKER_FAILURES"),
        description="consecutive failed attempts that open the circuit breaker",
    )
    llm_breaker_reset_s: float = Field(
        30.0,
        validation_alias=_shared("LLM_BREAKER_RESET_S"),
        description="how long an open breaker fails fast before letting a probe through",
    )
    llm_breaker_wait_s: float = Field(
        90.0,
        ge=0,
        validation_alias=_shared("LLM_BREAKER_WAIT_S"),
        description="how long a call waits for an open breaker to let calls through again "
        "before its job is retried later (circuit_open); 0: fail at once",
    )
    llm_price_input_per_mtok: float = Field(
        0.15,
        validation_alias=_shared("LLM_PRICE_INPUT_PER_MTOK"),
        description="USD per million prompt tokens, for models not in LLM_PRICES",
    )
    llm_price_output_per_mtok: float = Field(
        0.60,
        validation_alias=_shared("LLM_PRICE_OUTPUT_PER_MTOK"),
        description="USD per million completion tokens, for models not in LLM_PRICES",
    )
    llm_prices: str = Field(
        DEFAULT_PRICES,
        validation_alias=_shared("LLM_PRICES"),
        description="price table: JSON {model: [USD per M prompt, per M completion tokens]}",
    )
    llm_batch_discount: float = Field(
        0.5,
        ge=0,
        le=1,
        validation_alias=_shared("LLM_BATCH_DISCOUNT"),
        description="share of the price charged for Batch API calls",
    )
    llm_batch: bool = Field(
        True,
        validation_alias=_shared("LLM_BATCH"),
        description="send low-priority jobs' calls through the Batch API",
    )
    llm_batch_max_items: int = Field(
        50,
        ge=1,
        validation_alias=_shared("LLM_BATCH_MAX_ITEMS"),
        description="a batch is sent when it holds this many requests...",
    )
    llm_batch_max_age_s: float = Field(
        10.0,
        validation_alias=_shared("LLM_BATCH_MAX_AGE_S"),
        description="...or when its oldest request has waited this long",
    )
    llm_batch_poll_s: float = Field(
        5.0, validation_alias=_shared("LLM_BATCH_POLL_S"), description="batch status poll period"
    )
    llm_batch_wait_s: float = Field(
        3600.0,
        validation_alias=_shared("LLM_BATCH_WAIT_S"),
        description="a batch not done by then is cancelled and its requests made synchronously",
    )

    @field_validator("llm_base_url", "llm_api_key", "model", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("llm_model", mode="before")
    @classmethod
    def _blank_model_is_default(cls, value: object) -> object:
        return "gpt-4o-mini" if value in ("", None) else value

    @field_validator("llm_prices")
    @classmethod
    def _prices_are_a_table(cls, value: str) -> str:
        table = json.loads(value or "{}")
        if not isinstance(table, dict) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, int | float) for x in p)
            for p in table.values()
        ):
            raise ValueError('LLM_PRICES must be JSON like {"model": [input, output]}')
        return value or "{}"

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url or self.llm_api_key)

    @property
    def task_model(self) -> str:
        return self.model or self.llm_model

    def price_of(self, model: str) -> tuple[float, float]:
        """(USD per million prompt tokens, per million completion tokens) of a model."""
        table: dict[str, list[float]] = json.loads(self.llm_prices)
        found = table.get(model)
        if found is None:  # dated snapshots ("gpt-4o-mini-2024-07-18") price as their family
            family = max((m for m in table if model.startswith(f"{m}-")), key=len, default=None)
            found = table[family] if family else None
        if found is None:
            return self.llm_price_input_per_mtok, self.llm_price_output_per_mtok
        return float(found[0]), float(found[1])


@dataclass(frozen=True)
class LlmResult:
    text: str
    usage: Usage
    model: str
    batched: bool = False

    def json(self) -> Any:
        return json.loads(self.text)


LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class LlmStats:
    """What the client did, for metrics and the bench."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    failed: int = 0
    rejected_open: int = 0
    rate_waited_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    batched: int = 0
    batch_fallbacks: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    # Call time (retries and waits included), per LATENCY_BUCKETS, not cumulative; last: +Inf.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum_s: float = 0.0

    def observe_latency(self, seconds: float) -> None:
        self.latency_sum_s += seconds
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1


Completion = tuple[str, int, int]  # text, prompt tokens, completion tokens
T = TypeVar("T")


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds a provider asked us to wait (Retry-After-Ms / Retry-After), if it said."""
    headers = exc.headers if isinstance(exc, LlmStatusError) else None
    if headers is None:  # the Batch API's calls go through the openai SDK
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


Failure = Literal["timeout", "status", "connection", "answered"]


def failure_of(exc: BaseException) -> tuple[Failure, int | None] | None:
    """What kind of failure `exc` is, and its HTTP status; None for none of the provider's.
    The chat calls raise llm_http's errors; the Batch API's calls, through the openai SDK,
    raise its own (and httpx's, unwrapped, mid-download), looked at only once it is loaded."""
    if isinstance(exc, LlmTimeoutError):
        return "timeout", None
    if isinstance(exc, LlmStatusError):
        return "status", exc.status_code
    if isinstance(exc, LlmConnectionError):
        return "connection", None
    if isinstance(exc, LlmAnswerError):
        return "answered", None
    openai, httpx2 = sys.modules.get("openai"), sys.modules.get("httpx2")
    if openai is not None and isinstance(exc, openai.APIError):
        if isinstance(exc, openai.APITimeoutError):
            return "timeout", None
        if isinstance(exc, openai.APIStatusError):
            return "status", int(exc.status_code)
        if isinstance(exc, openai.APIConnectionError):
            return "connection", None
        return "answered", None
    if httpx2 is not None and isinstance(exc, httpx2.TransportError):
        return ("timeout" if isinstance(exc, httpx2.TimeoutException) else "connection"), None
    return None


def outcome_of(exc: BaseException) -> str:
    """A failed attempt's outcome label (seoblog_llm_attempts): http_429, timeout,
    connection, bad_answer, or the exception's type for anything else."""
    found = failure_of(exc)
    if found is None:
        return type(exc).__name__
    kind, status = found
    return {"status": f"http_{status}", "answered": "bad_answer"}.get(kind, kind)


def is_transient(exc: BaseException) -> bool:
    """429, 408, 409, 5xx, timeouts and lost connections: worth another attempt."""
    found = failure_of(exc)
    if found is None:
        return False
    kind, status = found
    if kind == "status":
        assert status is not None
        return status in (408, 409, 429) or status >= 500
    return kind in ("timeout", "connection")


def _provider_failure(exc: BaseException) -> bool:
    """Counts against the breaker: the provider is down or failing, not merely throttling us."""
    return is_transient(exc) and failure_of(exc) != ("status", 429)


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    return sum(math.ceil(len(str(m.get("content", ""))) / 4) + 4 for m in messages)


class Llm:
    """One OpenAI-compatible endpoint with the resilience and cost rules of ARCHITECTURE.md.

    Chat calls are plain HTTP (llm_http); each attempt passes the rate limiter and the breaker
    and is counted here."""

    def __init__(self, settings: LlmServiceSettings, tracer: Tracer) -> None:
        self.settings = settings
        self.tracer = tracer
        self.http: Transport = transport(
            settings.llm_http, settings.llm_base_url, self._key, settings.llm_timeout_s
        )
        self._sdk_lock = asyncio.Lock()
        self._typical_s: dict[str, float] = {}  # purpose -> recent call duration
        self.breaker = CircuitBreaker(
            "llm",
            failure_threshold=settings.llm_breaker_failures,
            reset_s=settings.llm_breaker_reset_s,
        )
        # Shared by every service and replica that calls the same provider in this namespace.
        prefix = f"{settings.namespace}:llm" if settings.namespace else "llm"
        self.requests_bucket = (
            TokenBucket(
                f"{prefix}:rpm",
                rate_per_s=settings.llm_rpm / 60,
                capacity=max(1.0, settings.llm_rpm / 60 * REQUEST_BURST_S),
            )
            if settings.llm_rpm
            else None
        )
        self.tokens_bucket = (
            TokenBucket(
                f"{prefix}:tpm",
                rate_per_s=settings.llm_tpm / 60,
                capacity=settings.llm_tpm / 60 * TOKEN_BURST_S,
            )
            if settings.llm_tpm
            else None
        )
        self.stats = LlmStats()

    @property
    def _key(self) -> str:
        key = self.settings.llm_api_key
        return key.get_secret_value() if key else "unused"

    @cached_property
    def client(self) -> Any:
        """The openai SDK's client, for the Batch API's file and batch calls only (its import
        is 0.5-1.2 s and 26 MB that a service sending no batch never spends; `_load_sdk` imports
        it off the event loop before the first batch). Its own retries are off: every
        attempt goes through `call`."""
        s = self.settings
        # openai imports aiohttp whenever it is installed (its optional transport): about
        # 10 MB a process that runs httpx anyway.
        hide = aiohttp_hidden("openai._base_client") if s.llm_http == "httpx" else None
        with hide or contextlib.nullcontext():
            import openai
        return openai.AsyncOpenAI(
            base_url=s.llm_base_url or DEFAULT_BASE_URL,
            api_key=self._key,
            timeout=s.llm_timeout_s,
            max_retries=0,
        )

    async def _load_sdk(self) -> None:
        """Import the openai SDK in a thread, once: in the event loop it would stop every
        other job's work for over a second."""
        if "client" in self.__dict__:
            return
        async with self._sdk_lock:
            if "client" not in self.__dict__:
                await asyncio.to_thread(lambda: self.client)

    @cached_property
    def _server(self) -> dict[str, Any]:
        """server.address and server.port of the provider, for the call spans."""
        url = urlsplit(self.settings.llm_base_url or DEFAULT_BASE_URL)
        if not url.hostname:
            return {}
        port = url.port or (443 if url.scheme == "https" else 80)
        return {"server.address": url.hostname, "server.port": port}

    @cached_property
    def batcher(self) -> Any:
        from .batch import BatchQueue  # only services with low-priority work need it

        return BatchQueue(self)

    def use_redis(self, redis: aioredis.Redis | None) -> None:
        """Share the rate limits across replicas (call once the cache has connected)."""
        for bucket in (self.requests_bucket, self.tokens_bucket):
            if bucket is not None:
                bucket.redis = redis

    async def close(self) -> None:
        if "batcher" in self.__dict__:
            await self.batcher.close()
        if "client" in self.__dict__:
            await self.client.close()
        await self.http.close()

    def cost(
        self, prompt_tokens: int, completion_tokens: int, *, model: str | None = None
    ) -> float:
        price_in, price_out = self.settings.price_of(model or self.settings.task_model)
        return round((prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000, 8)

    def usage(
        self, prompt_tokens: int, completion_tokens: int, *, model: str, batched: bool = False
    ) -> Usage:
        cost = self.cost(prompt_tokens, completion_tokens, model=model)
        if batched:
            cost = round(cost * self.settings.llm_batch_discount, 8)
        return Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            calls=1,
            cost_usd=cost,
        )

    def request(
        self,
        messages: list[dict[str, str]],
        *,
        purpose: str,
        json_schema: dict[str, Any] | None = None,
        model: str | None = None,
        temperature: float | None = None,
    ) -> dict[str, Any]:
        """The chat-completions request body for these messages (`model` and `temperature`:
        a job's experiment overrides)."""
        body: dict[str, Any] = {"model": model or self.settings.task_model, "messages": messages}
        if temperature is not None:
            body["temperature"] = temperature
        if json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": purpose, "schema": json_schema, "strict": False},
            }
        return body

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        purpose: str,
        json_schema: dict[str, Any] | None = None,
        on_progress: Callable[[int], Awaitable[None]] | None = None,
        expected_tokens: int = 1000,
        low_priority: bool = False,
        model: str | None = None,
        temperature: float | None = None,
    ) -> LlmResult:
        """One chat completion. With `on_progress`, tokens stream and it is called with the
        percent written (estimated against `expected_tokens`). `low_priority` work goes
        through the Batch API when that is enabled (cheaper, slower, no streaming)."""
        body = self.request(
            messages, purpose=purpose, json_schema=json_schema, model=model, temperature=temperature
        )
        model = str(body["model"])
        # OpenTelemetry GenAI conventions: one CLIENT span "chat <model>" per call.
        with self.tracer.start_as_current_span(
            f"chat {model}",
            kind=SpanKind.CLIENT,
            attributes=_request_attributes(body, purpose, json_schema is not None) | self._server,
        ) as span:
            span.set_attribute("gen_ai.response.model", model)  # the answer's, once it comes
            started = time.perf_counter()
            try:
                batched = False
                if low_priority and self.settings.llm_batch:
                    await self._load_sdk()
                    done = await self.batcher.submit(body)
                    if done is not None:
                        text, prompt_tokens, completion_tokens = done
                        batched = True
                if not batched:
                    expected = estimate_tokens(messages) + expected_tokens
                    if on_progress is None or not self._worth_streaming(purpose):
                        text, prompt_tokens, completion_tokens = await self.call(
                            lambda: self._once(body), expected
                        )
                    else:
                        text, prompt_tokens, completion_tokens = await self.call(
                            lambda: self._streamed(body, on_progress, expected_tokens), expected
                        )
                    self._note_duration(purpose, time.perf_counter() - started)
            finally:
                self.stats.observe_latency(time.perf_counter() - started)
            usage = self.usage(prompt_tokens, completion_tokens, model=model, batched=batched)
            self._count(usage, batched)
            span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": prompt_tokens,
                    "gen_ai.usage.output_tokens": completion_tokens,
                    "seoblog.llm.cost_usd": usage.cost_usd,
                    "seoblog.llm.batched": batched,
                }
            )
            return LlmResult(text=text, usage=usage, model=model, batched=batched)

    def _worth_streaming(self, purpose: str) -> bool:
        """Progress is worth its CPU (a parse per chunk) only for answers that take a while:
        stream unless calls of this purpose have lately been quicker than
        `llm_stream_after_s` (the first one streams)."""
        threshold = self.settings.llm_stream_after_s
        typical = self._typical_s.get(purpose)
        return threshold <= 0 or typical is None or typical >= threshold

    def _note_duration(self, purpose: str, seconds: float) -> None:
        """A slower call is believed at once (progress comes back with a slow provider), a
        quicker one gradually."""
        typical = self._typical_s.get(purpose)
        self._typical_s[purpose] = (
            seconds if typical is None or seconds > typical else 0.7 * typical + 0.3 * seconds
        )

    def _count(self, usage: Usage, batched: bool) -> None:
        s = self.stats
        s.calls += 1
        s.batched += int(batched)
        s.prompt_tokens += usage.prompt_tokens
        s.completion_tokens += usage.completion_tokens
        s.cost_usd = round(s.cost_usd + usage.cost_usd, 8)

    async def call(self, attempt: Callable[[], Awaitable[T]], tokens: int | None) -> T:
        """Run `attempt` under the breaker, retries and (unless `tokens` is None, as for
        Batch API housekeeping) the rate limits; failures become JobErrors."""
        s = self.settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.llm_max_retries + 1),
            wait=wait_retry_after(
                retry_after_of,
                initial_s=s.llm_retry_initial_s,
                max_s=s.llm_retry_max_s,
                jitter_s=s.llm_retry_initial_s,
            ),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            return await self._through_breaker(retrying, attempt, tokens)
        except CircuitOpenError as exc:
            self.stats.rejected_open += 1
            raise JobError(
                "circuit_open",
                f"The language model is failing; calls are paused ({exc}).",
                retryable=True,
            ) from exc
        except RateLimitTimeout as exc:
            raise JobError(
                "llm_rate_limited",
                f"The LLM rate limit (LLM_RPM/LLM_TPM) left no room in time: {exc}",
                retryable=True,
            ) from exc
        except Exception as exc:
            found = failure_of(exc)
            if found is None or found[0] == "answered":
                raise
            raise self._job_error(exc, *found) from exc

    def _job_error(self, exc: BaseException, kind: Failure, status: int | None) -> JobError:
        s = self.settings
        tries = s.llm_max_retries + 1
        if kind == "timeout":
            return JobError(
                "llm_timeout",
                f"The language model did not answer within LLM_TIMEOUT_S "
                f"({s.llm_timeout_s:g} s) in {tries} attempts.",
                retryable=True,
            )
        if kind == "status" and not is_transient(exc):
            return JobError(
                "llm_rejected",
                f"The language model refused the request (HTTP {status}).",
                retryable=False,
            )
        how = f"(HTTP {status})" if kind == "status" else f"{type(exc).__name__}"
        return JobError(
            "llm_unavailable",
            f"The language model did not answer after {tries} attempts"
            + (f" {how}." if kind == "status" else f": {how}"),
            retryable=True,
        )

    async def _through_breaker(
        self,
        retrying: AsyncRetrying,
        attempt: Callable[[], Awaitable[T]],
        tokens: int | None,
    ) -> T:
        """The retried call; while the breaker is open, wait for it (up to LLM_BREAKER_WAIT_S)
        instead of failing the delivery at once: an outage shorter than that costs a job time,
        not its deliveries, and the first call after the reset is the probe."""
        deadline = time.monotonic() + self.settings.llm_breaker_wait_s
        while True:
            try:
                async for tried in retrying:
                    with tried:
                        if tried.retry_state.attempt_number > 1:
                            self.stats.retries += 1
                        result = await self._attempt(attempt, tokens)
                return result
            except CircuitOpenError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                # Until the probe (0 s: another call holds it) or the reset; jitter spreads
                # the waiters so the closed breaker does not meet them all at once.
                await asyncio.sleep(min(left, max(exc.retry_in_s, 0.25) + random.uniform(0, 0.5)))

    async def _attempt(self, attempt: Callable[[], Awaitable[T]], tokens: int | None) -> T:
        ticket = self.breaker.before_call()  # raises CircuitOpenError, which is not retried
        settled = False
        try:
            if tokens is not None:
                await self._take_budget(tokens)
            self.stats.attempts += 1
            try:
                result = await attempt()
            except Exception as exc:
                outcome = outcome_of(exc)
                self.stats.by_outcome[outcome] = self.stats.by_outcome.get(outcome, 0) + 1
                self.stats.failed += 1
                if _provider_failure(exc):
                    self.breaker.on_failure()
                    settled = True
                elif failure_of(exc) is not None:
                    self.breaker.on_success()  # it answered: a 4xx is our problem, not an outage
                    settled = True
                log.warning(
                    "llm attempt failed",
                    extra={
                        "error": f"{outcome}: {exc}"[:300],
                        "breaker": self.breaker.state.value,
                    },
                )
                raise
            self.stats.by_outcome["ok"] = self.stats.by_outcome.get("ok", 0) + 1
            self.breaker.on_success()
            settled = True
            return result
        finally:
            # Cancelled (a sibling segment failed the job), timed out in the rate limiter, or
            # failed on our side: the probe learnt nothing, so its half-open slot goes back.
            if not settled:
                self.breaker.release(ticket)

    async def _take_budget(self, tokens: int) -> None:
        wait = self.settings.llm_rate_wait_s
        if self.requests_bucket is not None:
            self.stats.rate_waited_s += await self.requests_bucket.acquire(
                self.settings.task_model, 1, timeout_s=wait
            )
        if self.tokens_bucket is not None:
            wanted = min(float(tokens), self.tokens_bucket.capacity)
            self.stats.rate_waited_s += await self.tokens_bucket.acquire(
                self.settings.task_model, wanted, timeout_s=wait
            )

    async def _once(self, body: dict[str, Any]) -> Completion:
        answer = await self.http.post_json("/chat/completions", body)
        try:
            choice = answer["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LlmAnswerError(f"the answer has no message: {str(answer)[:200]}") from exc
        _record_response(answer.get("model"), choice.get("finish_reason"))
        usage = answer.get("usage")
        if not isinstance(usage, dict):
            log.warning("answer carried no usage; estimated the tokens")
            return text, estimate_tokens(body["messages"]), max(1, len(text) // 4)
        return text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)

    async def _streamed(
        self,
        body: dict[str, Any],
        on_progress: Callable[[int], Awaitable[None]],
        expected_tokens: int,
    ) -> Completion:
        """Stream the answer, reporting progress every 10 % of `expected_tokens` through a
        fire-and-forget relay: a slow or failing callback never fails or delays the call.

        The server-sent events are read as JSON dicts, not turned into an SDK's models:
        building those was 70 % of the client's time on a long answer."""
        relay = _ProgressRelay(on_progress)
        parts: list[str] = []
        append = parts.append
        chunks = last_percent = 0
        step = max(expected_tokens, 1) / 10  # chunks per 10 %
        next_report = math.ceil(step)
        prompt_tokens = completion_tokens = 0
        streamed = body | {"stream": True, "stream_options": {"include_usage": True}}
        async with self.http.stream_lines("/chat/completions", streamed) as lines:
            async for chunk in _sse_json(lines):
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        append(content)
                        chunks += 1
                    if choice.get("finish_reason"):
                        _record_response(chunk.get("model"), choice["finish_reason"])
                if (usage := chunk.get("usage")) is not None:
                    prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    completion_tokens = int(usage.get("completion_tokens") or 0)
                if chunks >= next_report:
                    percent = min(95, int(100 * chunks / max(expected_tokens, 1)))
                    next_report = math.ceil((percent // 10 + 1) * step)
                    if percent >= last_percent + 10:
                        last_percent = percent
                        await relay.report(percent)
        text = "".join(parts)
        if not completion_tokens:  # provider sent no usage: estimate, and say so in the log
            prompt_tokens = prompt_tokens or estimate_tokens(body["messages"])
            completion_tokens = max(1, len(text) // 4)
            log.warning("stream carried no usage; estimated the tokens")
        return text, prompt_tokens, completion_tokens


def _request_attributes(body: dict[str, Any], purpose: str, structured: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",  # the name before semantic conventions 1.37
        "gen_ai.request.model": str(body["model"]),
        "gen_ai.output.type": "json" if structured else "text",
        "seoblog.llm.purpose": purpose,
    }
    for key in ("temperature", "max_tokens", "top_p"):
        if body.get(key) is not None:
            attributes[f"gen_ai.request.{key}"] = body[key]
    return attributes


def _record_response(model: object, finish_reason: object) -> None:
    """The answer's model and finish reason on the current call's span (GenAI conventions)."""
    current = trace.get_current_span()
    if model:
        current.set_attribute("gen_ai.response.model", str(model))
    if finish_reason:
        current.set_attribute("gen_ai.response.finish_reasons", [str(finish_reason)])


async def _sse_json(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON data of each server-sent event up to `[DONE]`; an `error` payload raises
    LlmAnswerError (as the openai SDK's stream raises its APIError)."""
    data: list[str] = []
    async for line in lines:
        if line:
            if line.startswith("data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(" ") else value)
            continue  # event:, id:, retry: and comments carry nothing we use
        if not data:
            continue
        payload = "\n".join(data)
        data.clear()
        if payload.startswith("[DONE]"):
            # Read the body's end (a few bytes), so HTTP/1.1 can reuse the connection.
            async for _ in lines:
                pass
            return
        chunk = json.loads(payload)
        if isinstance(chunk, dict):
            if chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else None
                raise LlmAnswerError(str(message or "An error occurred during streaming"))
            yield chunk
    if data and not (payload := "\n".join(data)).startswith("[DONE]"):
        chunk = json.loads(payload)
        if isinstance(chunk, dict):
            yield chunk


class _ProgressRelay:
    """Runs a progress callback beside the LLM call, one report at a time and in order; an
    error is logged, never raised. A slow callback only makes reports wait (at most ten a
    call): the call returns at once and what is left is sent in the background. Progress
    is advisory, so one arriving after the stage's next event is harmless (the gateway keeps
    a stage's progress only while the job is in that stage)."""

    _running: ClassVar[set[asyncio.Task[None]]] = set()  # strong references while running

    def __init__(self, callback: Callable[[int], Awaitable[None]]) -> None:
        self.callback = callback
        self.pending: deque[int] = deque()
        self.task: asyncio.Task[None] | None = None

    async def report(self, percent: int) -> None:
        self.pending.append(percent)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._send(), name="llm-progress")
            self._running.add(self.task)
            self.task.add_done_callback(self._running.discard)
        await asyncio.sleep(0)  # let it start now: a quick callback is done before we go on

    async def _send(self) -> None:
        while self.pending:
            percent = self.pending.popleft()
            try:
                await self.callback(percent)
            except Exception as exc:
                log.warning(
                    "progress report failed; the LLM call goes on",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:300], "percent": percent},
                )


class LlmCollector(Collector):
    """The client's figures for Prometheus: calls, attempts by outcome, tokens, cost, breaker.
    Registered with `llm=None` when no LLM is configured, so every LLM-using service exports
    the same series (all zero, breaker closed)."""

    def __init__(self, service: str, llm: Llm | None) -> None:
        self.service, self.llm = service, llm

    def collect(
        self,
    ) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        s = self.llm.stats if self.llm is not None else LlmStats()
        attempts = CounterMetricFamily(
            "seoblog_llm_attempts", "LLM attempts by outcome", labels=["service", "outcome"]
        )
        for outcome, value in ({"ok": 0} | s.by_outcome).items():  # "ok" even before a call
            attempts.add_metric([self.service, outcome], value)
        yield attempts
        calls = CounterMetricFamily(
            "seoblog_llm_calls", "LLM calls that produced an answer", labels=["service", "path"]
        )
        calls.add_metric([self.service, "sync"], s.calls - s.batched)
        calls.add_metric([self.service, "batch"], s.batched)
        yield calls
        tokens = CounterMetricFamily(
            "seoblog_llm_tokens", "LLM tokens used", labels=["service", "kind"]
        )
        tokens.add_metric([self.service, "prompt"], s.prompt_tokens)
        tokens.add_metric([self.service, "completion"], s.completion_tokens)
        yield tokens
        cost = CounterMetricFamily("seoblog_llm_cost_usd", "LLM cost in USD", labels=["service"])
        cost.add_metric([self.service], s.cost_usd)
        yield cost
        state = GaugeMetricFamily(
            "seoblog_llm_breaker_state",
            "LLM circuit breaker: 0 closed, 1 open, 2 half-open",
            labels=["service"],
        )
        breaker = BreakerState.CLOSED if self.llm is None else self.llm.breaker.state
        state.add_metric([self.service], breaker.gauge)
        yield state
        latency = HistogramMetricFamily(
            "seoblog_llm_call_duration_seconds",
            "LLM call time, retries and rate-limit waits included",
            labels=["service"],
            unit="seconds",
        )
        cumulative, buckets = 0, []
        for bound, count in zip(
            (*(str(b) for b in LATENCY_BUCKETS), "+Inf"), s.latency_counts, strict=True
        ):
            cumulative += count
            buckets.append((bound, cumulative))
        latency.add_metric([self.service], buckets, s.latency_sum_s)
        yield latency
