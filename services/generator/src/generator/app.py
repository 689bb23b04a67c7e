"""Composition root of the generator: settings in, a running ASGI app out."""

from __future__ import annotations

from fastapi import FastAPI

from seoblog_contracts import Stage
from seoblog_runtime import build_parts
from seoblog_runtime.llm import Llm, LlmCollector

from .handlers import GeneratePost, register
from .settings import Settings
from .store import PgPostStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = build_parts(settings, PgPostStore, stage=Stage.GENERATE)
    llm = Llm(settings, parts.telemetry.tracer) if settings.llm_configured else None
    register(parts, GeneratePost(parts, settings, llm))
    # Registered offline too (all zero, breaker closed): every LLM service has the series.
    parts.registry.register(LlmCollector(settings.service, llm))
    if llm is not None:
        client = llm

        async def share_limits() -> None:
            client.use_redis(parts.cache.redis)  # rate limits shared by every replica

        parts.on_start.append(share_limits)
        parts.on_stop.append(llm.close)
    return parts.ops_app("seoblog generator")
