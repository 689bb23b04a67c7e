"""Subscriber: write the post for a translated text, score it, store it, announce it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from seoblog_contracts import (
    JobProgress,
    PostGenerated,
    Stage,
    TextTranslated,
    Usage,
    stage_event_id,
)
from seoblog_runtime import Parts
from seoblog_runtime.llm import Llm

from .llm_writer import build_prompt, write_with_llm
from .offline import Draft, write_offline
from .render import render_page
from .seo import seo_report
from .settings import Settings
from .store import PgPostStore

PURPOSE = "generate_post"


def draft_from(data: dict[str, Any]) -> Draft:
    return Draft(**(data | {"faq": [tuple(qa) for qa in data["faq"]]}))


def generation_key(event: TextTranslated, model: str, prompt_version: str) -> str:
    """Everything that changes the output, so identical work is shared and nothing else."""
    spec = event.spec
    material = json.dumps(
        [
            hashlib.sha256(event.text.encode()).hexdigest(),
            event.title,
            spec.keywords,
            event.target_language,
            spec.length,
            model,
            prompt_version,
        ],
        ensure_ascii=False,
    )
    return f"post:{hashlib.sha256(material.encode()).hexdigest()}"


class GeneratePost:
    def __init__(self, parts: Parts[PgPostStore], settings: Settings, llm: Llm | None) -> None:
        self.parts = parts
        self.settings = settings
        self.llm = llm

    async def __call__(self, event: TextTranslated) -> None:
        bus, store = self.parts.bus, self.parts.store
        if (done := await store.post_of(event.job_id)) is not None:
            await bus.publish(done)
            return
        await bus.publish(JobProgress(job_id=event.job_id, stage=Stage.GENERATE, percent=0))
        spec = event.spec
        if self.llm is None:
            draft = write_offline(
                title=event.title,
                text=event.text,
                keywords=spec.keywords,
                language=event.target_language,
                length=spec.length,
            )
            writer, usage = "offline", Usage()
        else:
            draft, usage = await self._write_with_llm(event, self.llm)
            writer = f"llm:{self.llm.settings.task_model}"
        seo = seo_report(
            title=draft.title,
            slug=draft.slug,
            meta_description=draft.meta_description,
            markdown=draft.markdown,
            keywords=spec.keywords,
            target_words=spec.length,
            source_text=event.text,
        )
        html = render_page(
            draft.markdown,
            title=draft.title,
            description=draft.meta_description,
            url=event.source_url,
            language=event.target_language,
            faq=draft.faq,
        )
        post = PostGenerated(
            event_id=stage_event_id(event.job_id, "post.generated"),
            job_id=event.job_id,
            post_id=stage_event_id(event.job_id, "post"),
            source_url=event.source_url,
            language=event.target_language,
            title=draft.title,
            slug=draft.slug,
            meta_description=draft.meta_description,
            markdown=draft.markdown,
            html=html,
            keywords=spec.keywords,
            seo=seo,
            writer=writer,
            usage=event.usage + usage,
        )
        await bus.publish(await store.record_post(post))

    async def _write_with_llm(self, event: TextTranslated, llm: Llm) -> tuple[Draft, Usage]:
        """Reuse a call this job already paid for; else share identical work through the cache."""
        store = self.parts.store
        if (previous := await store.llm_call(event.job_id, PURPOSE)) is not None:
            return draft_from(previous["draft"]), Usage(**previous["usage"])
        model = llm.settings.task_model
        key = generation_key(event, model, self.settings.prompt_version)
        spec = event.spec
        made_call = False

        async def progress(percent: int) -> None:
            await self.parts.bus.publish(
                JobProgress(
                    job_id=event.job_id, stage=Stage.GENERATE, percent=percent, message="writing"
                )
            )

        async def generate() -> bytes:
            nonlocal made_call
            made_call = True
            prompt = build_prompt(
                self.settings.prompt_version,
                title=event.title,
                text=event.text[: self.settings.max_source_chars],
                keywords=spec.keywords,
                language=event.target_language,
                length=spec.length,
            )
            draft, usage = await write_with_llm(
                llm, prompt=prompt, length=spec.length, on_progress=progress
            )
            return json.dumps({"draft": asdict(draft), "usage": usage.model_dump()}).encode()

        data = json.loads(await self.parts.cache.get_or_compute(key, generate))
        usage = Usage(**data["usage"]) if made_call else Usage()  # a cache hit costs nothing
        if made_call:
            await store.record_llm_call(event.job_id, PURPOSE, key, model, usage, data)
        return draft_from(data["draft"]), usage


def register(parts: Parts[PgPostStore], handler: GeneratePost) -> None:
    parts.bus.consume(
        parts.bus.subjects.of(TextTranslated),
        "generator-generate_post",
        TextTranslated,
        handler,
        stage=Stage.GENERATE,
    )
