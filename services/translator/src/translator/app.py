"""Composition root of the translator: settings in, a running ASGI app out."""

from __future__ import annotations

from fastapi import FastAPI

from seoblog_contracts import Stage
from seoblog_runtime import build_parts
from seoblog_runtime.llm import Llm, LlmCollector

from .detect import preload
from .handlers import TranslatePage, register
from .settings import Settings
from .store import PgTranslationStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = build_parts(settings, PgTranslationStore, stage=Stage.TRANSLATE)
    llm = Llm(settings, parts.telemetry.tracer) if settings.llm_configured else None
    register(parts, TranslatePage(parts, settings, llm))

    async def load_detector() -> None:
        preload(tuple(settings.detect_languages))  # so the first job is not the slow one

    parts.on_start.append(load_detector)
    # Registered offline too (all zero, breaker closed): every LLM service has the series.
    parts.registry.register(LlmCollector(settings.service, llm))
    if llm is not None:
        client = llm

        async def share_limits() -> None:
            client.use_redis(parts.cache.redis)  # rate limits shared by every replica

        parts.on_start.append(share_limits)
        parts.on_stop.append(llm.close)
    return parts.ops_app("seoblog translator")
