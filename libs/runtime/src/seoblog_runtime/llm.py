"""The OpenAI-compatible LLM client both LLM-spending services use: settings, one call with
usage and cost, streaming progress, and failures mapped to job error codes."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
from opentelemetry.trace import Tracer
from pydantic import AliasChoices, Field, SecretStr, field_validator

from seoblog_contracts import Usage

from .bus import JobError
from .settings import ServiceSettings

log = logging.getLogger("seoblog.llm")


class LlmServiceSettings(ServiceSettings):
    """Settings of a service that calls the LLM; the LLM_* names are shared by both."""

    llm_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("LLM_BASE_URL", "llm_base_url"),
        description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1",
    )
    llm_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("LLM_API_KEY", "llm_api_key"),
        description="secret; never logged",
    )
    llm_model: str = Field(
        "gpt-4o-mini",
        validation_alias=AliasChoices("LLM_MODEL", "llm_model"),
        description="default model for every LLM task",
    )
    model: str | None = Field(None, description="this service's model; defaults to LLM_MODEL")
    llm_timeout_s: float = Field(
        60.0,
        validation_alias=AliasChoices("LLM_TIMEOUT_S", "llm_timeout_s"),
        description="per-call timeout",
    )
    llm_max_retries: int = Field(
        3,
        validation_alias=AliasChoices("LLM_MAX_RETRIES", "llm_max_retries"),
        description="retries on 429/5xx/timeouts (exponential back-off, honours Retry-After)",
    )
    llm_price_input_per_mtok: float = Field(
        0.15,
        validation_alias=AliasChoices("LLM_PRICE_INPUT_PER_MTOK", "llm_price_input_per_mtok"),
        description="USD per million prompt tokens (cost reporting)",
    )
    llm_price_output_per_mtok: float = Field(
        0.60,
        validation_alias=AliasChoices("LLM_PRICE_OUTPUT_PER_MTOK", "llm_price_output_per_mtok"),
        description="USD per million completion tokens",
    )

    @field_validator("llm_base_url", "llm_api_key", "model", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("llm_model", mode="before")
    @classmethod
    def _blank_model_is_default(cls, value: object) -> object:
        return "gpt-4o-mini" if value in ("", None) else value

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url or self.llm_api_key)

    @property
    def task_model(self) -> str:
        return self.model or self.llm_model


@dataclass(frozen=True)
class LlmResult:
    text: str
    usage: Usage
    model: str

    def json(self) -> Any:
        return json.loads(self.text)


class Llm:
    """One OpenAI-compatible endpoint. The openai client retries 429/5xx/timeouts with
    exponential back-off and honours Retry-After; what still fails becomes a JobError."""

    def __init__(self, settings: LlmServiceSettings, tracer: Tracer) -> None:
        self.settings = settings
        self.tracer = tracer
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "unused"
        self.client = openai.AsyncOpenAI(
            base_url=settings.llm_base_url,
            api_key=key,
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )

    async def close(self) -> None:
        await self.client.close()

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        s = self.settings
        return round(
            (
                prompt_tokens * s.llm_price_input_per_mtok
                + completion_tokens * s.llm_price_output_per_mtok
            )
            / 1_000_000,
            8,
        )

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        purpose: str,
        json_schema: dict[str, Any] | None = None,
        on_progress: Callable[[int], Awaitable[None]] | None = None,
        expected_tokens: int = 1000,
    ) -> LlmResult:
        """One chat completion. With `on_progress`, tokens stream and it is called with the
        percent written (estimated against `expected_tokens`)."""
        model = self.settings.task_model
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": purpose, "schema": json_schema, "strict": False},
            }
        with self.tracer.start_as_current_span(
            f"llm {purpose}",
            attributes={
                "gen_ai.system": "openai",
                "gen_ai.request.model": model,
                "seoblog.llm.purpose": purpose,
            },
        ) as span:
            try:
                if on_progress is None:
                    text, prompt_tokens, completion_tokens = await self._once(kwargs)
                else:
                    text, prompt_tokens, completion_tokens = await self._streamed(
                        kwargs, on_progress, expected_tokens
                    )
            except (
                openai.APIConnectionError,
                openai.RateLimitError,
                openai.InternalServerError,
            ) as exc:
                raise JobError(
                    "llm_unavailable",
                    f"The language model did not answer after retries: {type(exc).__name__}",
                    retryable=True,
                ) from exc
            except openai.APIStatusError as exc:
                raise JobError(
                    "llm_rejected",
                    f"The language model refused the request (HTTP {exc.status_code}).",
                    retryable=False,
                ) from exc
            usage = Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                calls=1,
                cost_usd=self.cost(prompt_tokens, completion_tokens),
            )
            span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", completion_tokens)
            return LlmResult(text=text, usage=usage, model=model)

    async def _once(self, kwargs: dict[str, Any]) -> tuple[str, int, int]:
        response = await self.client.chat.completions.create(**kwargs)
        text = response.choices[0].message.content or ""
        usage = response.usage
        return (
            text,
            (usage.prompt_tokens if usage else 0),
            (usage.completion_tokens if usage else 0),
        )

    async def _streamed(
        self,
        kwargs: dict[str, Any],
        on_progress: Callable[[int], Awaitable[None]],
        expected_tokens: int,
    ) -> tuple[str, int, int]:
        stream = await self.client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        parts: list[str] = []
        chunks = 0
        last_percent = 0
        prompt_tokens = completion_tokens = 0
        async for chunk in stream:
            if chunk.usage is not None:
                prompt_tokens = chunk.usage.prompt_tokens
                completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
                    chunks += 1
            percent = min(95, int(100 * chunks / max(expected_tokens, 1)))
            if percent >= last_percent + 10:
                last_percent = percent
                await on_progress(percent)
        text = "".join(parts)
        if not completion_tokens:  # provider sent no usage: estimate, and say so in the log
            completion_tokens = max(1, len(text) // 4)
            log.warning("stream carried no usage; estimated completion tokens")
        return text, prompt_tokens, completion_tokens
